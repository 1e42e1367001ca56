#!/usr/bin/env node
/**
 * `poe-bench`: the command-line entry point. Each subcommand lives in its own module and
 * exports `registerXCommand(program)`; adding one is one line in COMMANDS.
 *
 * Only `sim` is imported up front: the other commands' modules (AWS SDK, charts, the run
 * machinery) took longer to load than the simulator takes to run 2,000 batches (issue 12 item
 * 6), so `poe-bench sim` loads none of them and the others load them when the program is built.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { registerSimCommand } from '../infra/sim/command.js';
import { exitFlushed } from './exit-flushed.js';

type Register = (program: Command) => void;

/** Every command after `sim`, in help order, each loaded with its module. */
const COMMANDS: readonly (() => Promise<Register>)[] = [
  async () => (await import('./run-command.js')).registerRunCommand,
  async () => (await import('./figure-command.js')).registerFigureCommand,
  async () => (await import('./report-command.js')).registerReportCommand,
  async () => (await import('./curve-command.js')).registerCurveCommand,
  async () => {
    const { registerAwsCommand } = await import('./infra-aws-command.js');
    return (program) => registerAwsCommand(program);
  },
  async () => (await import('./infra-command.js')).registerInfraCommand,
  async () => (await import('./model-command.js')).registerModelCommands,
];

/** The program with every command, or with `sim` alone (what `poe-bench sim ...` needs). */
export async function buildProgram(only?: 'sim'): Promise<Command> {
  const program = new Command('poe-bench')
    .description('reproduce the Proof-of-Execution (EDBT 2021) evaluation and compare PoE, PBFT, Zyzzyva and HotStuff')
    .showHelpAfterError();
  registerSimCommand(program);
  if (only !== 'sim') for (const load of COMMANDS) (await load())(program);
  return program;
}

/** True when this file is the process entry (also through npm's bin symlink), not imported. */
function isEntryPoint(): boolean {
  const entry = process.argv[1];
  if (!entry) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  const sim = process.argv[2] === 'sim';
  await (await buildProgram(sim ? 'sim' : undefined)).parseAsync(process.argv);
  // `sim` is synchronous and has printed everything: skip node's wind-down of its heap (exit-flushed.ts).
  if (sim) await exitFlushed();
}
