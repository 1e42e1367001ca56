/**
 * `poe-bench figure <10|11a|11b|12|13|all>`: one command per paper figure (issue 5). Plans the
 * figure's sweep under a profile (experiments/figures.ts), runs every point on the real
 * harness (harness/run.ts) or in the simulator (--backend sim), appends each run to
 * <out>/runs.jsonl the moment it ends (experiments/sweep.ts), and finally renders the charts
 * and writes the report (plots/) into the same directory.
 *
 * Resuming: pointing --out at an existing directory skips every run it already holds. Ctrl-C
 * kills the run in progress (executeRun's AbortSignal; the simulator's worker thread) and
 * exits 130 with every finished run on disk; a second Ctrl-C exits at once.
 *
 * Exit codes: 0 every planned run valid; 1 some run failed or was invalid (everything is still
 * written); 2 bad flags or a directory made by an incompatible sweep; 130 interrupted.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { Command, Option } from 'commander';
import { FIGURE_IDS, FIGURES, figureOfExperiment, parseProtocol, PROFILES, type ProfileName } from '../experiments/figures.js';
import { loadRuns } from '../experiments/runs.js';
import { simulatePointAbortable } from '../experiments/sweep-sim.js';
import {
  describeFilter,
  describeRun,
  EtaEstimator,
  formatDuration,
  incompatibilities,
  MANIFEST_FILE,
  planSweep,
  predictedRunSec,
  PRIMARY_FAILURE_TIMEOUTS,
  recordFromRunResult,
  RUNS_FILE,
  runSweep,
  SIM_BATCHES,
  specFor,
  SWEEP_BACKENDS,
  SweepConfigError,
  sweepManifest,
  unsuccessful,
  writeManifestOnce,
  type RunExecutor,
  type SweepBackend,
  type SweepConfig,
  type SweepListener,
  type SweepRun,
} from '../experiments/sweep.js';
import type { FigureId, RunRecord } from '../experiments/types.js';
import { DEFAULT_BASELINE, writeReport } from '../plots/index.js';
import type { ProtocolName } from '../replica/types.js';
import { environment } from './results.js';
import { executeRun } from './run.js';
import { RUN_DEFAULTS } from './spec.js';

/** Flags as commander hands them over. */
export interface FigureFlags {
  readonly backend?: string;
  readonly quick?: boolean;
  readonly paper?: boolean;
  readonly reps?: string;
  readonly out?: string;
  readonly replicas?: string;
  readonly protocols?: string;
  readonly batches?: string;
  readonly warmup?: string;
  readonly duration?: string;
  readonly seed?: string;
  readonly clients?: string;
  readonly simBatches?: string;
  readonly retryFailed?: boolean;
  readonly baseline?: string;
  readonly logs?: boolean;
}

function positiveInt(flag: string, text: string, min = 1): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min) throw new SweepConfigError(`${flag}: must be an integer >= ${min}, got '${text}'`);
  return v;
}

function seconds(flag: string, text: string, allowZero: boolean): number {
  const v = Number(text);
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw new SweepConfigError(`${flag}: must be a number of seconds ${allowZero ? '>= 0' : '> 0'}, got '${text}'`);
  return v;
}

function list<T>(flag: string, text: string, parse: (s: string) => T): T[] {
  const items = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (items.length === 0) throw new SweepConfigError(`${flag}: give a comma-separated list`);
  return items.map((s) => {
    try {
      return parse(s);
    } catch (err) {
      throw new SweepConfigError(`${flag}: ${(err as Error).message}`);
    }
  });
}

/** The figures a figure argument names: one, or all five for "all". */
export function parseFigureArg(text: string): FigureId | 'all' {
  if (text.trim().toLowerCase() === 'all') return 'all';
  const id = figureOfExperiment(text);
  if (id === undefined) throw new SweepConfigError(`unknown figure '${text}': choose one of ${FIGURE_IDS.join(', ')} or all`);
  return id;
}

/** Validates the flags into a sweep configuration; throws SweepConfigError naming the bad flag. */
export function parseFigureFlags(figureText: string, flags: FigureFlags): SweepConfig {
  const figureArg = parseFigureArg(figureText);
  if (flags.quick && flags.paper) throw new SweepConfigError('--quick and --paper: choose one profile');
  const profileName: ProfileName = flags.quick ? 'quick' : flags.paper ? 'paper' : 'default';
  const profile = PROFILES[profileName];
  const backend = (flags.backend ?? 'local') as SweepBackend;
  if (!SWEEP_BACKENDS.includes(backend)) throw new SweepConfigError(`--backend: unknown backend '${flags.backend}' (available: ${SWEEP_BACKENDS.join(', ')})`);
  const filter: { replicas?: number[]; protocols?: ProtocolName[]; batches?: number[] } = {};
  if (flags.replicas !== undefined) filter.replicas = list('--replicas', flags.replicas, (s) => positiveInt('--replicas', s, 4));
  if (flags.protocols !== undefined) filter.protocols = list('--protocols', flags.protocols, parseProtocol);
  if (flags.batches !== undefined) filter.batches = list('--batches', flags.batches, (s) => positiveInt('--batches', s));
  const config: SweepConfig = {
    figures: figureArg === 'all' ? FIGURE_IDS : [figureArg],
    figureArg,
    profile,
    reps: flags.reps === undefined ? profile.reps : positiveInt('--reps', flags.reps),
    warmupSec: flags.warmup === undefined ? profile.warmupSec : seconds('--warmup', flags.warmup, true),
    measuredSec: flags.duration === undefined ? profile.measuredSec : seconds('--duration', flags.duration, false),
    backend,
    filter,
    seed: flags.seed === undefined ? RUN_DEFAULTS.seed : positiveInt('--seed', flags.seed, 0),
    clients: flags.clients === undefined ? RUN_DEFAULTS.clients : positiveInt('--clients', flags.clients),
    simBatches: flags.simBatches === undefined ? SIM_BATCHES[profileName] : positiveInt('--sim-batches', flags.simBatches),
    retryFailed: flags.retryFailed ?? false,
  };
  planSweep(config); // a filter that leaves nothing is a flag error, not an empty sweep
  return config;
}

/** "20251121-144207": sortable, and safe in every file system. */
export function runId(now = new Date()): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${now.getFullYear()}${p(now.getMonth() + 1)}${p(now.getDate())}-${p(now.getHours())}${p(now.getMinutes())}${p(now.getSeconds())}`;
}

/** results/figure-<id>/<run-id>/, with a suffix when two sweeps start in the same second. */
export function defaultOutDir(figureArg: FigureId | 'all', now = new Date()): string {
  const base = join('results', `figure-${figureArg}`, runId(now));
  let dir = base;
  for (let i = 2; existsSync(dir); i++) dir = `${base}-${i}`;
  return dir;
}

// ---------------------------------------------------------------------------------------
// Progress: a bar on a terminal, plain lines otherwise (CI logs, pipes)

interface ProgressPayload {
  readonly point: string;
  readonly phase: string;
  readonly etaText: string;
}

/** 6.109 -> "6.11 ms", 13240 -> "13.2 s". */
function formatLatency(ms: number): string {
  return ms < 1000 ? `${ms.toPrecision(3)} ms` : `${(ms / 1000).toPrecision(3)} s`;
}

class Progress implements SweepListener {
  private multi: MultiBar | undefined;
  private bar: SingleBar | undefined;
  private left: SweepRun[] = [];
  private current = '';
  private total = 0;
  private done = 0;
  private readonly t0 = Date.now();
  private readonly eta: EtaEstimator;

  constructor(
    private readonly tty: boolean,
    private readonly out: NodeJS.WritableStream,
    private readonly reps: number,
    private readonly startPhase: string,
    predict: (run: SweepRun) => number,
  ) {
    this.eta = new EtaEstimator(predict);
  }

  private elapsed(): string {
    return formatDuration((Date.now() - this.t0) / 1000);
  }

  private payload(phase: string): ProgressPayload {
    return { point: this.current, phase, etaText: formatDuration(this.eta.remainingSec(this.left)) };
  }

  log(line: string): void {
    if (this.multi) this.multi.log(`${line}\n`);
    else this.out.write(`${line}\n`);
  }

  onPlan(info: { planned: number; skipped: number; toRun: readonly SweepRun[] }): void {
    this.left = [...info.toRun];
    this.total = info.planned;
    this.done = info.skipped;
    const eta = formatDuration(this.eta.remainingSec(this.left));
    this.log(`${info.planned} runs planned, ${info.skipped} already recorded (skipped), ${info.toRun.length} to run; about ${eta} (a first guess, refined as runs finish)`);
    if (this.tty && info.toRun.length > 0) {
      this.multi = new MultiBar(
        {
          stream: this.out,
          format: '{bar} {value}/{total} | {point} | {phase} | elapsed {duration_formatted} | ETA {etaText}',
          barsize: 20,
          hideCursor: true,
          clearOnComplete: true,
          stopOnComplete: false,
          fps: 2,
          autopadding: true,
        },
        Presets.shades_classic,
      );
      this.bar = this.multi.create(this.total, this.done, this.payload('starting'));
    }
  }

  onRunStart(run: SweepRun): void {
    this.current = describeRun(run, this.reps);
    if (this.bar) this.bar.update(this.done, this.payload(this.startPhase));
    else this.log(`[${this.done + 1}/${this.total}] ${this.current}: started (elapsed ${this.elapsed()}, ETA ${this.payload('').etaText})`);
  }

  onPhase(text: string): void {
    // executeRun's line repeats the point; keep its phase and rate only.
    const phase = text.replace(/^[a-z]+ n=\d+: /, '');
    this.bar?.update(this.done, this.payload(phase));
  }

  onRunEnd(run: SweepRun, record: RunRecord, wallSec: number): void {
    this.done++;
    this.left = this.left.filter((r) => r !== run);
    this.eta.record(run, wallSec);
    const m = record.metrics;
    const what = record.valid && m ? `valid, ${Math.round(m.throughputTxnPerSec).toLocaleString('en-US')} txn/s, mean latency ${formatLatency(m.latencyMs.mean)}` : `${record.valid ? 'no metrics' : 'FAILED'}: ${record.reason ?? ''}`;
    const line = `[${this.done}/${this.total}] ${describeRun(run, this.reps)}: ${what} (${formatDuration(wallSec)}; elapsed ${this.elapsed()}, ETA ${this.payload('').etaText})`;
    if (this.bar) {
      this.bar.update(this.done, this.payload(record.valid ? 'done' : 'failed'));
      if (!record.valid) this.log(line);
    } else this.log(line);
  }

  stop(): void {
    this.multi?.stop();
    this.multi = undefined;
    this.bar = undefined;
  }
}

// ---------------------------------------------------------------------------------------
// The command

export interface FigureCommandIo {
  readonly signal: AbortSignal;
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream & { isTTY?: boolean };
  /** The words after `poe-bench`, for the manifest. */
  readonly argv?: readonly string[];
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** The executor of one backend. */
function executorFor(config: SweepConfig, dir: string, logs: boolean): RunExecutor {
  if (config.backend === 'sim') {
    return async (run, signal) => {
      const spec = specFor(run, config);
      return simulatePointAbortable({ run, config, records: spec.records, valueBytes: spec.valueBytes, windowK: spec.window }, signal);
    };
  }
  return async (run, signal, onPhase) => {
    // Figure 11b's points come with their fault: specFor wraps the primary in stopAfter.
    const spec = specFor(run, config);
    const logDir = logs ? join(dir, 'logs', `${run.pointId.replace(/[^\w.=-]+/g, '_')}.rep${run.rep}`) : undefined;
    const result = await executeRun(spec, { signal, onProgress: onPhase, ...(logDir ? { logDir } : {}) });
    if (result.interrupted) return undefined;
    return recordFromRunResult(run, result);
  };
}

/** Runs `poe-bench figure`; returns the exit code. */
export async function runFigureCommand(figureText: string, flags: FigureFlags, io: FigureCommandIo): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let config: SweepConfig;
  let baseline: ProtocolName;
  try {
    config = parseFigureFlags(figureText, flags);
    baseline = flags.baseline === undefined ? DEFAULT_BASELINE : parseProtocol(flags.baseline);
  } catch (err) {
    if (err instanceof SweepConfigError || err instanceof RangeError) {
      stderr.write(`poe-bench figure: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const dir = flags.out ?? defaultOutDir(config.figureArg);
  const manifestPath = join(dir, MANIFEST_FILE);
  const resuming = existsSync(join(dir, RUNS_FILE));
  if (existsSync(manifestPath)) {
    const problems = incompatibilities(readJson(manifestPath), config);
    if (problems.length > 0) {
      stderr.write(`poe-bench figure: ${dir} was written by a different sweep, whose runs cannot be averaged with these:\n${problems.map((p) => `  ${p}`).join('\n')}\nUse another --out directory.\n`);
      return 2;
    }
  }
  let existing: RunRecord[];
  try {
    existing = loadRuns(dir);
  } catch (err) {
    stderr.write(`poe-bench figure: cannot resume ${dir}: ${(err as Error).message}\n`);
    return 2;
  }
  mkdirSync(dir, { recursive: true });
  const startedAt = new Date().toISOString();
  writeManifestOnce(dir, sweepManifest(config, { ...environment() }, startedAt, io.argv ?? ['figure', figureText]));

  const runs = planSweep(config);
  const figures = config.figures.map((f) => `figure ${f}`).join(', ');
  const filter = describeFilter(config.filter);
  stderr.write(
    `poe-bench figure: ${figures}, profile ${config.profile.name} (${config.warmupSec} s warm-up + ${config.measuredSec} s measured, ${config.reps} repetition${config.reps > 1 ? 's' : ''}), backend ${config.backend}${filter ? `, only ${filter}` : ''}\n` +
      `  ${resuming ? 'resuming' : 'writing'} ${dir}\n` +
      (config.backend === 'sim' ? '  SIMULATED: numbers are in virtual time (the simulator charges no computing time); a preview, not a measurement\n' : '') +
      (config.backend === 'local' && config.figures.includes('11b')
        ? `  figure 11b: the primary stops after ${FIGURES['11b'].points()[0]!.primaryStopsAfter} batches (--faults primary=stopAfter); checkpoints every ${FIGURES['11b'].checkpointInterval}, client timeout ${PRIMARY_FAILURE_TIMEOUTS.clientTimeoutMs} ms, view-change timeout ${PRIMARY_FAILURE_TIMEOUTS.viewChangeTimeoutMs} ms\n`
        : ''),
  );

  const progress = new Progress(stderr.isTTY === true, stderr, config.reps, config.backend === 'sim' ? 'simulating' : 'starting processes', (run) => predictedRunSec(run, config));
  const t0 = Date.now();
  let outcome;
  try {
    outcome = await runSweep(runs, existing, {
      dir,
      backend: config.backend,
      execute: executorFor(config, dir, flags.logs ?? false),
      signal: io.signal,
      retryFailed: config.retryFailed,
      listener: progress,
    });
  } finally {
    progress.stop();
  }
  const wall = formatDuration((Date.now() - t0) / 1000);
  const records = loadRuns(dir);
  const { missing, bad } = unsuccessful(runs, records);
  if (outcome.interrupted) {
    stderr.write(
      `poe-bench figure: interrupted after ${wall}; the run in progress was stopped and not recorded. ${runs.length - missing.length} of ${runs.length} runs are in ${join(dir, RUNS_FILE)}.\n` +
        `  resume with the same command and --out ${dir}\n`,
    );
    return 130;
  }

  const report = await writeReport(dir, { baseline });
  const svgs = report.charts.filter((c) => c.endsWith('.svg')).length;
  const pngs = report.charts.filter((c) => c.endsWith('.png')).length;
  const verdicts = (v: string): number => report.claims.filter((c) => c.verdict === v).length;
  const lines = [
    `poe-bench figure ${config.figureArg}: ${outcome.ran} run${outcome.ran === 1 ? '' : 's'} in ${wall}, ${outcome.skipped} skipped (already recorded); ${runs.length - missing.length - bad.length} of ${runs.length} valid`,
    `  results    ${dir}`,
    `  runs       ${join(dir, RUNS_FILE)}`,
    `  manifest   ${manifestPath}`,
    `  charts     ${svgs} SVG, ${pngs} PNG (fig<panel>.svg/.png, vega-lite specs in fig<panel>.vl.json)`,
    `  report     ${report.markdown}, ${report.html}`,
    `  claims     ${verdicts('holds')} hold, ${verdicts('does not hold')} do not hold, ${verdicts('not measured')} not measured (of ${report.claims.length})`,
  ];
  if (config.backend === 'sim') lines.push('  SIMULATED: virtual-time numbers from the deterministic simulator, not a measurement');
  stdout.write(`${lines.join('\n')}\n`);
  if (bad.length > 0 || missing.length > 0) {
    stderr.write(`poe-bench figure: ${bad.length} run${bad.length === 1 ? '' : 's'} failed or invalid:\n`);
    for (const r of bad.slice(0, 20)) stderr.write(`  ${r.experiment} ${r.pointId} rep ${r.rep}: ${r.reason ?? 'no metrics'}\n`);
    if (bad.length > 20) stderr.write(`  ... and ${bad.length - 20} more (see runs.jsonl and the report)\n`);
    return 1;
  }
  return 0;
}

/** Declares the flags (without an action, so tests can parse flags alone). */
export function defineFigureCommand(cmd: Command): Command {
  const p = PROFILES;
  return cmd
    .description("regenerate a figure of the paper's evaluation (§5): run its sweep, record every run, draw the charts, write the report")
    .argument('<figure>', `${FIGURE_IDS.join(' | ')} | all (every figure into one directory)`)
    .addOption(new Option('--backend <name>', 'local: real processes on this machine; sim: the deterministic simulator (virtual time, a preview)').default('local'))
    .option('--quick', `profile quick: ${p.quick.description}`)
    .option('--paper', `profile paper: ${p.paper.description}`)
    .option('--reps <n>', `repetitions per point (default: the profile's; default profile: ${p.default.description})`)
    .option('--out <dir>', 'results directory; an existing one is resumed (default: results/figure-<figure>/<timestamp>/)')
    .option('--replicas <list>', 'only these replica counts, e.g. 4,8')
    .option('--protocols <list>', 'only these protocols, e.g. poe,pbft (names or the paper labels PoE, PBFT, ZYZ, HS)')
    .option('--batches <list>', 'only these batch sizes (figure 12), e.g. 10,100')
    .option('--warmup <s>', "warm-up seconds of every run (overrides the profile's)")
    .option('--duration <s>', "measured seconds of every run (overrides the profile's)")
    .option('--seed <x>', `base seed: repetition r uses seed + r (default ${RUN_DEFAULTS.seed})`)
    .option('--clients <c>', `closed-loop logical clients per run (default ${RUN_DEFAULTS.clients})`)
    .option('--sim-batches <m>', `sim backend: batches per run (default by profile: quick ${SIM_BATCHES.quick}, default ${SIM_BATCHES.default}, paper ${SIM_BATCHES.paper})`)
    .option('--retry-failed', 'on resume, run again the repetitions recorded as failed or invalid')
    .option('--baseline <protocol>', `protocol the report compares against (default ${DEFAULT_BASELINE})`)
    .option('--logs', 'keep every process stderr under <out>/logs/')
    .addHelpText(
      'after',
      `\nFigures: ${FIGURE_IDS.map((id) => `${id} (${FIGURES[id].faults})`).join('; ')}.\nExit codes: 0 every run valid, 1 a run failed or was invalid (all is still written), 2 invalid flags, 130 interrupted (finished runs are kept; rerun with --out to resume).`,
    );
}

/** Adds `poe-bench figure` to the program. */
export function registerFigureCommand(program: Command): void {
  defineFigureCommand(program.command('figure')).action(async (figure: string, flags: FigureFlags) => {
    const controller = new AbortController();
    let signals = 0;
    const onSignal = (): void => {
      signals++;
      if (signals === 1) {
        process.stderr.write('\npoe-bench figure: stopping: killing the run in progress (Ctrl-C again to quit at once)\n');
        controller.abort();
      } else process.exit(130);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      process.exitCode = await runFigureCommand(figure, flags, { signal: controller.signal, argv: process.argv.slice(2) });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
}
