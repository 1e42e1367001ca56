/**
 * `poe-bench run`: the command. The run itself (processes, window, safety check) is
 * infra/run/execute.ts; this file parses flags, prints progress and the summary, and records.
 */
import type { Command } from 'commander';
import { join } from 'node:path';
import { executeRun, formatRunResult, recordRun, runResultJson, type RunResult } from '../infra/run/execute.js';
import { defineInfraRunOptions } from '../infra/run/placement.js';
import { parseRunFlags, RUN_DEFAULTS, RunSpecError, type RunFlags, type RunSpec } from '../infra/run/spec.js';
import { registeredProtocols } from '../replica/protocols.js';

export interface RunCommandFlags extends RunFlags {
  readonly out?: string;
  readonly json?: boolean;
  readonly logDir?: string;
}

/** Declares the `run` flags (without an action, so tests can parse flags alone). */
export function defineRunCommand(cmd: Command): Command {
  const d = RUN_DEFAULTS;
  const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
  return defineInfraRunOptions(cmd)
    .description('one measured run of a protocol on real replica and client processes, with a safety check of the final ledgers')
    .option('--protocol <name>', `protocol: ${registeredProtocols().join(' | ') || 'none registered'}`)
    .option('--replicas <n>', `replicas, n >= 4 (default ${d.replicas})`)
    .option('--crashed <k>', 'backups that never take part: the highest ids, never the primary (at most f unless --force)')
    .option('--force', 'allow --crashed (and --faults) above what the protocol tolerates')
    .option(
      '--faults <replica=fault>',
      'a replica that misbehaves, repeatable: REPLICA (an id, or primary for the view-0 primary) = silent | stopAfter:K (batches executed) | crashAt:MS (after start) | slow:MS | inTheDark:IDS | equivocate; e.g. primary=stopAfter:900',
      collect,
    )
    .option('--batch <b>', `writes per client batch (default ${d.batch})`)
    .option('--clients <c>', `batch-level closed loop: logical clients in total, one batch outstanding each (default ${d.clients})`)
    .option('--load-txns <t>', 'closed loop in transactions, as the paper: t transactions outstanding, batched into requests of --batch (instead of --clients)')
    .option('--client-procs <p>', `client processes the logical clients are spread over (default ${d.clientProcs})`)
    .option('--warmup <s>', `warm-up seconds, not measured (default ${d.warmupS})`)
    .option('--duration <s>', `measured seconds (default ${d.durationS})`)
    .option('--generator <kind>', `key generator: ycsb | resilientdb (default ${d.generator})`)
    .option('--records <r>', `YCSB table size (default ${d.records})`)
    .option('--value-bytes <b>', `bytes per written value (default ${d.valueBytes})`)
    .option('--seed <x>', `seed of the key generators and key material (default ${d.seed})`)
    .option('--backend <name>', `where processes run: local | netns | docker | ssh (default ${d.backend}; docs/backends.md)`)
    .option('--base-port <p>', 'replica i listens on p + i (default: free ports chosen by the OS)')
    .option('--open-loop <batchesPerSec>', 'open loop at this many batches per second in total (latency from the intended send time)')
    .option(
      '--client-timeout-ms <ms>',
      `client request timeout, fixed when given; by default at least ${d.clientTimeoutMs} ms and otherwise following the observed latency (4x its p99)`,
    )
    .option('--fixed-client-timeout', 'every request times out after exactly --client-timeout-ms (default when it is given, for zyzzyva, and with --faults)')
    .option('--view-change-timeout-ms <ms>', `replica view-change timeout (default ${d.viewChangeTimeoutMs})`)
    .option('--checkpoint-interval <k>', `checkpoint every k sequence numbers (default ${d.checkpointInterval})`)
    .option('--window <k>', `watermark window (default ${d.window})`)
    .option('--extra <key=value>', 'protocol switch passed to replicas and clients (e.g. mode=chained); repeatable', collect)
    .option('--out <dir>', 'results directory: appends runs.jsonl, writes manifest.json', join('results', 'run'))
    .option('--log-dir <dir>', 'also write every process stderr to files here')
    .option('--json', 'print one JSON object on stdout')
    .addHelpText('after', '\nExit codes: 0 valid run, 1 invalid or failed run (the reason is printed), 2 invalid flags, 130 interrupted.');
}

export interface RunCommandOutput {
  readonly exitCode: number;
  readonly result?: RunResult;
}

/** Runs `poe-bench run` with parsed flags; prints the progress, summary or JSON. */
export async function runRunCommand(flags: RunCommandFlags, signal?: AbortSignal): Promise<RunCommandOutput> {
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
