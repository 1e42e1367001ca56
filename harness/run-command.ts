/**
 * `poe-bench run`: the command. The run itself (processes, window, safety check) is
 * infra/run/execute.ts; this file parses flags, prints progress and the summary, and records.
 * `--backend model` (issue 12 item 3) starts no process: the run's spec goes through the cost
 * model's one driver (experiments/model-point.ts) and is recorded as modelled.
 */
import type { Command } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatModelRun, modelManifestExtra, modelRun, modelRunJson, modelRunLine, modelRunSpec, type ModelRun } from '../experiments/model-point.js';
import { NOMINAL_WARMUP_SEC } from '../infra/run/steady.js';
import { executeRun, formatRunResult, recordRun, runResultJson, type RunResult } from '../infra/run/execute.js';
import { canonicalFlags, defineParams, describeParamIssues, MODEL_BACKEND, paramDefault, paramSchema, replayArgs, replayLine } from '../infra/params.js';
import { appendRun, environment, outDirProblem, RUNS_FILE, writeManifest } from '../infra/run/results.js';
import { parseRunFlags, runReplayArgs, runReplayCommand, RunSpecError, type RunFlags, type RunSpec } from '../infra/run/spec.js';
import type { CalibrationFile } from '../infra/sim/calibration.js';
import type { Testbed } from '../infra/sim/testbed.js';
import { resolveModelSetup } from './model-setup.js';

export interface RunCommandFlags extends RunFlags {
  readonly out?: string;
  readonly json?: boolean;
  readonly logDir?: string;
  /** --backend model (issue 12 item 3): the testbed, the calibration file, and the batches to model. */
  readonly testbed?: string;
  readonly calibration?: string;
  readonly simBatches?: string;
}

/** The flags that only `--backend model` takes. */
const MODEL_ONLY = { testbed: '--testbed', calibration: '--calibration', simBatches: '--sim-batches' } as const;

/**
 * The flags a modelled run refuses, and why: what only real processes have (as figure --backend
 * model refuses the real backends' flags), and the open loop, which the simulator's clients lack.
 */
const NOT_FOR_MODEL: Readonly<Record<string, readonly [string, string]>> = {
  link: ['--link', 'only for real backends (the model simulates its own network: the testbed says its links)'],
  hosts: ['--hosts', 'only for real backends (the model starts no process)'],
  pin: ['--pin', 'only for real backends (the model starts no process: the testbed says its cores)'],
  cpus: ['--cpus', 'only for real backends (the model starts no process: the testbed says its cores)'],
  subnet: ['--subnet', 'only for real backends (the model starts no process)'],
  baseImage: ['--base-image', 'only for real backends (the model starts no process)'],
  basePort: ['--base-port', 'only for real backends (the model opens no port)'],
  nodeFlags: ['--node-flags', 'only for real backends (the model starts no process)'],
  logDir: ['--log-dir', 'only for real backends (the model starts no process, so there is no stderr to keep)'],
  openLoop: ['--open-loop', "the model runs closed loop only (the simulator's clients keep one batch outstanding each)"],
};

/** `run --backend model`'s --warmup when none is given: its warm-up share is that over it + --duration. */
const MODEL_WARMUP_S = String(NOMINAL_WARMUP_SEC);

/** Where `run --backend model` records by default: apart from measured runs, since a results directory is judged as one kind. */
export const DEFAULT_MODEL_OUT = join('results', 'run-model');

/** Declares the `run` flags (without an action, so tests can parse flags alone), from the table of run parameters. */
export function defineRunCommand(cmd: Command): Command {
  return defineParams(
    cmd.description(
      'one measured run of a protocol on real replica and client processes, with a safety check of the final ledgers (--backend model: one PREDICTED run in the calibrated cost model instead)',
    ),
    'run',
  ).addHelpText(
    'after',
    '\n--backend model: no processes; the run is modelled for --testbed with --calibration and recorded as modelled (default --out results/run-model). ' +
      'It issues --sim-batches batches; --warmup and --duration set only the share of them left out as warm-up. --link, --hosts, --pin, --cpus, --subnet, --base-image, --base-port, --node-flags, --log-dir and --open-loop are refused.' +
      '\nExit codes: 0 valid run, 1 invalid or failed run (the reason is printed), 2 invalid flags (or no calibration file), 130 interrupted.',
  );
}

export interface RunCommandOutput {
  readonly exitCode: number;
  readonly result?: RunResult;
}

/** Runs `poe-bench run` with parsed flags; prints the progress, summary or JSON. */
export async function runRunCommand(given: RunCommandFlags, signal?: AbortSignal): Promise<RunCommandOutput> {
  const flags = canonicalFlags('run', given);
  if (flags.backend === MODEL_BACKEND) return runModelCommand(flags);
  const modelOnly = Object.entries(MODEL_ONLY)
    .filter(([key]) => (flags as Record<string, unknown>)[key] !== undefined)
    .map(([, flag]) => flag);
  if (modelOnly.length > 0) {
    process.stderr.write(`poe-bench run: invalid flags\n${modelOnly.join(', ')}: only for --backend model\n`);
    return { exitCode: 2 };
  }
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
  const mixed = mixedKindProblem(flags.out ?? join('results', 'run'), undefined);
  if (mixed !== undefined) {
    process.stderr.write(`poe-bench run: --out: ${mixed}\n`);
    return { exitCode: 2 };
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

/**
 * Why a run of this kind (measured, or modelled for a testbed with a calibration) cannot be
 * recorded in `dir`, or undefined. One directory holds one kind: its manifest says which, and the
 * report judges every run in it as measured or as predicted for one testbed (experiments/claims.ts
 * claimContextOf), so a measured run beside modelled ones would be misjudged, or the reverse.
 */
function mixedKindProblem(dir: string, model: { readonly testbed: string; readonly calibration: string } | undefined): string | undefined {
  const file = join(dir, RUNS_FILE);
  if (!existsSync(file)) return undefined;
  const kindOf = (line: Record<string, unknown>): string =>
    line['modelled'] === true ? `runs modelled for testbed ${String(line['testbed'])} with calibration ${String(line['calibration'])}` : 'measured runs';
  const wanted = model === undefined ? 'measured runs' : kindOf({ modelled: true, ...model });
  for (const text of readFileSync(file, 'utf8').split('\n')) {
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      continue; // an empty or interrupted line says nothing about the kind
    }
    if (typeof line !== 'object' || line === null) continue;
    const kind = kindOf(line as Record<string, unknown>);
    if (kind !== wanted)
      return `${dir} holds ${kind}; this run would add ${wanted}, and a results directory holds one kind (its manifest and report judge them as one): give another --out`;
  }
  return undefined;
}

/** The flags that repeat a modelled run: the run's own (from its spec), then the model's, all from the table of run parameters. */
export function modelReplayCommand(spec: RunSpec, model: { readonly testbed: string; readonly calibration: string; readonly simBatches: number }): string {
  const { testbed, calibration, simBatches } = model;
  return replayLine(['run'], [...runReplayArgs(spec), ...replayArgs('run', { backend: MODEL_BACKEND, testbed, calibration, simBatches })]);
}

const modelFlagSchema = paramSchema('run').pick({ testbed: true, calibration: true, simBatches: true });

/** What `run --backend model` needs before it models anything, or the exit code of a flag error (the message printed). */
function parseModelRun(
  flags: RunCommandFlags,
): { spec: RunSpec; model: ModelRun['spec']; testbed: Testbed; calibration: CalibrationFile; outDir: string } | number {
  const invalid = (text: string): number => {
    process.stderr.write(`poe-bench run: invalid flags\n${text}\n`);
    return 2;
  };
  const refused = Object.entries(NOT_FOR_MODEL)
    .filter(([key]) => (flags as Record<string, unknown>)[key] !== undefined)
    .map(([, [flag, why]]) => `${flag}: ${why}`);
  if (refused.length > 0) return invalid(refused.join('\n'));
  const parsedModel = modelFlagSchema.safeParse(flags);
  if (!parsedModel.success) return invalid(describeParamIssues('run', parsedModel.error));
  let spec: RunSpec;
  try {
    // The run's own flags, checked as for a real run; the placement they get is not recorded.
    // The model's warm-up is a share of its batches (modelRun), not a cap to wait out: without
    // --warmup it keeps the share real runs had before their cap grew for the memory rule.
    spec = parseRunFlags({ ...flags, backend: undefined, ...(flags.warmup === undefined ? { warmup: MODEL_WARMUP_S } : {}) });
  } catch (err) {
    if (err instanceof RunSpecError) return invalid(err.message);
    throw err;
  }
  const o = parsedModel.data as { testbed?: string; calibration?: string; simBatches?: number };
  const simBatches = o.simBatches ?? (paramDefault('run', 'simBatches') as number);
  const setup = resolveModelSetup(o);
  if (!setup.ok) {
    if (!setup.missing) return invalid(setup.message);
    process.stderr.write(`poe-bench run: ${setup.message}\n`);
    return 2;
  }
  const { testbed, calibration, testbedName, calibrationPath } = setup;
  if (flags.clientProcs !== undefined && testbed.clientMachines !== undefined && testbed.clientMachines !== spec.clientProcs)
    return invalid(
      `--client-procs: the testbed ${testbed.name} has its own ${testbed.clientMachines} client machines (infra/sim/testbed.ts); leave --client-procs out, or use a testbed file without clientMachines`,
    );
  const outDir = flags.out ?? DEFAULT_MODEL_OUT;
  const problem = outDirProblem(outDir) ?? mixedKindProblem(outDir, { testbed: testbedName, calibration: calibrationPath });
  if (problem !== undefined) {
    process.stderr.write(`poe-bench run: --out: ${problem}\n`);
    return 2;
  }
  return { spec, model: modelRunSpec(spec, testbedName, calibrationPath, simBatches), testbed, calibration, outDir };
}

/**
 * `run --backend model` (issue 12 item 3): the run's spec in the calibrated cost model for
 * --testbed (experiments/model-point.ts), recorded and printed as modelled, never as measured.
 */
async function runModelCommand(flags: RunCommandFlags): Promise<RunCommandOutput> {
  const parsed = parseModelRun(flags);
  if (typeof parsed === 'number') return { exitCode: parsed };
  const { spec, model, testbed, calibration, outDir } = parsed;
  process.stderr.write(`poe-bench run: modelling ${spec.protocol} n=${spec.replicas} for testbed ${model.testbed} (${model.simBatches} batches)...\n`);
  const r = modelRun(model, testbed, calibration);
  const replay = modelReplayCommand(spec, model);
  const env = environment();
  writeManifest(outDir, spec, env, r.startedAt, modelManifestExtra(r, replay));
  const recordedIn = appendRun(outDir, modelRunLine(r, env));
  if (flags.json) process.stdout.write(`${JSON.stringify(modelRunJson(r, replay, recordedIn))}\n`);
  else process.stdout.write(`${formatModelRun(r, recordedIn)}\n`);
  (flags.json ? process.stderr : process.stdout).write(`replay: ${replay}\n`);
  if (!r.valid) process.stderr.write(`poe-bench run: INVALID: ${r.reason}\n`);
  return { exitCode: r.valid ? 0 : 1 };
}

/** Adds `poe-bench run` to the program. */
export function registerRunCommand(program: Command): void {
  defineRunCommand(program.command('run')).action(async (flags: RunCommandFlags) => {
    // A modelled run starts no process and records only at its end: Ctrl-C ends it at once.
    if (canonicalFlags('run', flags).backend === MODEL_BACKEND) {
      process.exitCode = (await runRunCommand(flags)).exitCode;
      return;
    }
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
