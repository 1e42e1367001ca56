#!/usr/bin/env node
/**
 * `poe-bench`: the command-line entry point. Each subcommand lives in its own module and
 * exports `registerXCommand(program)`; adding one is one line in COMMANDS (plus its import).
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { registerSimCommand } from '../infra/sim/command.js';
import { registerFigureCommand } from './figure-command.js';
import { registerCurveCommand } from './curve-command.js';
import { registerAwsCommand } from './infra-aws-command.js';
import { registerInfraCommand } from './infra-command.js';
import { registerModelCommands } from './model-command.js';
import { registerReportCommand } from './report-command.js';
import { registerRunCommand } from './run-command.js';

const COMMANDS: readonly ((program: Command) => void)[] = [
  registerSimCommand,
  registerRunCommand,
  registerFigureCommand,
  registerReportCommand,
  registerCurveCommand,
  (program) => registerAwsCommand(program),
  registerInfraCommand,
  registerModelCommands,
];

export function buildProgram(): Command {
  const program = new Command('poe-bench')
    .description('reproduce the Proof-of-Execution (EDBT 2021) evaluation and compare PoE, PBFT, Zyzzyva and HotStuff')
    .showHelpAfterError();
  for (const register of COMMANDS) register(program);
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
  await buildProgram().parseAsync(process.argv);
}
