/**
 * `poe-bench run`: the command. The run itself (processes, window, safety check) is
 * infra/run/execute.ts; this file parses flags, prints progress and the summary, and records.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { executeRun, formatRunResult, recordRun, runResultJson, type RunResult } from '../infra/run/execute.js';
import { canonicalFlags, defineParams } from '../infra/params.js';
import { outDirProblem } from '../infra/run/results.js';
import { parseRunFlags, runReplayCommand, RunSpecError, type RunFlags, type RunSpec } from '../infra/run/spec.js';

export interface RunCommandFlags extends RunFlags {
  readonly out?: string;
  readonly json?: boolean;
  readonly logDir?: string;
}

/** Declares the `run` flags (without an action, so tests can parse flags alone), from the table of run parameters. */
export function defineRunCommand(cmd: Command): Command {
  return defineParams(
    cmd.description('one measured run of a protocol on real replica and client processes, with a safety check of the final ledgers'),
    'run',
  ).addHelpText('after', '\nExit codes: 0 valid run, 1 invalid or failed run (the reason is printed), 2 invalid flags, 130 interrupted.');
}

export interface RunCommandOutput {
  readonly exitCode: number;
  readonly result?: RunResult;
}

/** Runs `poe-bench run` with parsed flags; prints the progress, summary or JSON. */
export async function runRunCommand(given: RunCommandFlags, signal?: AbortSignal): Promise<RunCommandOutput> {
  const flags = canonicalFlags('run', given);
  let spec: RunSpec;
  try {
    spec = parseRunFlags(flags);
  } catch (err) {
    if (err instanceof RunSpecError) {
      process.stderr.write(`poe-bench run: invalid flags\n${err.message}\n`);
      return { exitCode: 2 };
    }
    throw err;
  }
  // Before anything starts: a run that cannot be recorded is not worth measuring.
  for (const [flag, dir] of [
    ['--out', flags.out ?? join('results', 'run')],
    ['--log-dir', flags.logDir],
  ] as const) {
    const problem = dir === undefined ? undefined : outDirProblem(dir);
    if (problem !== undefined) {
      process.stderr.write(`poe-bench run: ${flag}: ${problem}\n`);
      return { exitCode: 2 };
    }
  }
  const tty = process.stderr.isTTY === true;
  let lastPrinted = 0;
  const onProgress = (line: string): void => {
    if (tty) process.stderr.write(`\r\x1b[2K${line}`);
    else if (Date.now() - lastPrinted >= 5000) {
      process.stderr.write(`${line}\n`);
      lastPrinted = Date.now();
    }
  };
  const result = await executeRun(spec, { onProgress, ...(signal ? { signal } : {}), ...(flags.logDir ? { logDir: flags.logDir } : {}) });
  if (tty) process.stderr.write('\r\x1b[2K');
  if (result.interrupted) {
    process.stderr.write('poe-bench run: interrupted; every process was stopped and nothing was recorded\n');
    return { exitCode: 130, result };
  }
  const outDir = flags.out ?? join('results', 'run');
  const recordedIn = recordRun(outDir, result);
  if (flags.json) process.stdout.write(`${JSON.stringify(runResultJson(result, recordedIn))}\n`);
  else process.stdout.write(`${formatRunResult(result, recordedIn)}\n`);
  // The flags that repeat this run (also in the manifest); stdout stays one JSON object with --json.
  (flags.json ? process.stderr : process.stdout).write(`replay: ${runReplayCommand(spec)}\n`);
  if (!result.valid) process.stderr.write(`poe-bench run: ${result.failed ? 'FAILED' : 'INVALID'}: ${result.reason}\n`);
  return { exitCode: result.valid ? 0 : 1, result };
}

/** Adds `poe-bench run` to the program. */
export function registerRunCommand(program: Command): void {
  defineRunCommand(program.command('run')).action(async (flags: RunCommandFlags) => {
    // Ctrl-C and SIGTERM stop every process before the harness exits.
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const { exitCode } = await runRunCommand(flags, controller.signal);
      process.exitCode = exitCode;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
}
