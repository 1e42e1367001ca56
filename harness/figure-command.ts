/**
 * `poe-bench figure <10|11a|11b|12|13|all>`: one command per paper figure (issue 5). Plans the
 * figure's sweep under a profile (experiments/figures.ts), runs every point on the real
 * harness (infra/run/execute.ts) or in the simulator (--backend sim), appends each run to
 * <out>/runs.jsonl the moment it ends (experiments/sweep.ts), and finally renders the charts
 * and writes the report (plots/) into the same directory.
 *
 * Backends (issue 6): local, netns, docker and ssh run each point through the run backend of
 * that name (infra/run/launch.ts) with the run command's --link, --hosts, --pin, --cpus,
 * --subnet and --base-image. aws provisions EC2 machines once for the whole sweep
 * (infra/aws withAwsHosts: as many replica machines as the largest point has replicas, plus
 * --client-machines), prints the cost of the predicted sweep time and asks first, runs every
 * point over the ssh backend on them (the n replicas of a point on the first n replica
 * machines), and terminates everything when the sweep ends, fails or is interrupted.
 *
 * Resuming: pointing --out at an existing directory skips every run it already holds. Ctrl-C
 * kills the run in progress (executeRun's AbortSignal; the simulator's worker thread) and
 * exits 130 with every finished run on disk; a second Ctrl-C exits at once, except while EC2
 * machines exist: then it only says that teardown is still running (leaving would leak them).
 *
 * Exit codes: 0 every planned run valid; 1 some run failed or was invalid (everything is still
 * written); 2 bad flags or a directory made by an incompatible sweep; 130 interrupted.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { Command } from 'commander';
import { FIGURE_IDS, FIGURES, figureOfExperiment, parseProtocol, PROFILES, type ProfileName } from '../experiments/figures.js';
import { loadRuns } from '../experiments/runs.js';
import { AwsBackendError, type AwsDeps } from '../infra/aws/index.js';
import { DEFAULT_CLIENT_TYPE, DEFAULT_REPLICA_TYPE, MAX_CLIENT_MACHINES, type AwsEnv } from '../infra/aws/options.js';
import {
  AWS_CLIENT_MACHINES,
  awsDryRun,
  planAwsSweep,
  sweepOnAws,
  type AwsSweep,
  type AwsSweepFlags,
  type AwsSweepIo,
  type RemoteHosts,
} from '../experiments/aws-sweep.js';
import { hostFor, loadHostsFile, type SshHosts } from '../infra/ssh/hosts.js';
import {
  figureModelRecord,
  figurePointInput,
  pooledExecutor,
  runFigureSensitivity,
  SENSITIVITY_FILE,
  wantsSensitivity,
  type ModelSetup,
  type SensitivityFile,
} from '../experiments/model-figure.js';
import { PointPool } from '../experiments/point-pool.js';
import type { ModelPointInput, ModelPointResult } from '../experiments/model-point.js';
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
  runPointSaturated,
  chosenLoadsFrom,
  FIGURE_LOAD_TXNS,
  isSimulatedBackend,
  remainingRuns,
  RUNS_FILE,
  runSweep,
  runWarmupSec,
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
  type SweepOutcome,
  type SweepRun,
  primaryFailureNote,
} from '../experiments/sweep.js';
import type { FigureId, RunRecord } from '../infra/run/records.js';
import { DEFAULT_BASELINE, writeReport } from '../plots/index.js';
import { CURVES_DIR, curvesDirFor } from '../plots/curves-panel.js';
import { runCurve } from '../experiments/curve.js';
import { parseCurveFlags } from './curve-command.js';
import { resolveModelSetup } from './model-setup.js';
import type { ProtocolName } from '../replica/types.js';
import { defaultAwsCommandIo } from './infra-aws-command.js';
import { INFRA_FLAG_NAMES, parseInfraFlags, type InfraFlags, type InfraSpec } from '../infra/run/placement.js';
import { environment, outDirProblem } from '../infra/run/results.js';
import { executeRun } from '../infra/run/execute.js';
import type { LoadProbe } from '../infra/run/bottleneck.js';
import { liveReplicas, type RunSpec } from '../infra/run/spec.js';
import { canonicalFlags, commaList, defineParams, describeParamIssues, paramDefault, paramSchema, paramsFor, replayArgs, replayLine } from '../infra/params.js';

/** Flags as commander hands them over; aws: the provisioning flags of `poe-bench infra aws up` (--subnet is the EC2 subnet id there). */
export interface FigureFlags extends InfraFlags, AwsSweepFlags {
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
  readonly loadTxns?: string;
  readonly simBatches?: string;
  /** --backend model: testbed profile and calibration file (issue 12). */
  readonly testbed?: string;
  readonly calibration?: string;
  readonly retryFailed?: boolean;
  readonly baseline?: string;
  readonly logs?: boolean;
  /** Figure 13: also measure throughput-latency curves (always in the default and paper profiles). */
  readonly curves?: boolean;
  /** Client processes per run; aws: client machines to provision. */
  readonly clientMachines?: string;
}

/** The aws flags of the figure (every table entry `infra aws` shares with it but --subnet), by key: passed to `infra aws up`'s option parser as they are. */
const AWS_FLAG_NAMES: Readonly<Record<string, string>> = Object.fromEntries(
  paramsFor('figure')
    .filter((p) => p.commands.includes('aws') && p.key !== 'subnet')
    .map((p) => [p.key, p.flag]),
);

/** The figure flags as the table's schemas read them; --protocols parses with the figures' protocol names. */
const figureSchema = paramSchema('figure').extend({ protocols: commaList(parseProtocol) });

/** What the schema makes of the figure flags (the others stay text, checked where they are used). */
interface ParsedFigureFlags {
  readonly reps?: number;
  readonly warmup?: number;
  readonly duration?: number;
  readonly seed?: number;
  readonly clients?: number;
  readonly simBatches?: number;
  readonly loadTxns?: number;
  readonly clientMachines?: number;
  readonly replicas?: number[];
  readonly protocols?: ProtocolName[];
  readonly batches?: number[];
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
  const parsed = figureSchema.safeParse(flags);
  if (!parsed.success) throw new SweepConfigError(describeParamIssues('figure', parsed.error));
  const o = parsed.data as ParsedFigureFlags;
  const clients = o.clients ?? (paramDefault('figure', 'clients') as number);
  const placement = parsePlacement(backend, flags, clients, o.clientMachines);
  const filter: { replicas?: number[]; protocols?: ProtocolName[]; batches?: number[] } = {};
  if (o.replicas !== undefined) filter.replicas = o.replicas;
  if (o.protocols !== undefined) filter.protocols = o.protocols;
  if (o.batches !== undefined) filter.batches = o.batches;
  const config: SweepConfig = {
    figures: figureArg === 'all' ? FIGURE_IDS : [figureArg],
    figureArg,
    profile,
    reps: o.reps ?? profile.reps,
    warmupSec: o.warmup ?? profile.warmupSec,
    warmupCapSec: o.warmup ?? profile.warmupCapSec,
    measuredSec: o.duration ?? profile.measuredSec,
    backend,
    filter,
    seed: o.seed ?? (paramDefault('figure', 'seed') as number),
    clients,
    simBatches: o.simBatches ?? SIM_BATCHES[profileName],
    ...modelFlags(backend, flags),
    ...(flags.clients !== undefined ? { clientsGiven: true } : {}),
    loadTxns: o.loadTxns ?? FIGURE_LOAD_TXNS,
    ...(flags.loadTxns !== undefined ? { loadGiven: true } : {}),
    retryFailed: flags.retryFailed ?? false,
    ...placement,
  };
  planSweep(config); // a filter that leaves nothing is a flag error, not an empty sweep
  return config;
}

/** --testbed and --calibration: only for --backend model, where they default to c5.2xlarge and results/calibration.json (harness/model-setup.ts). */
function modelFlags(backend: SweepBackend, flags: FigureFlags): Pick<SweepConfig, 'testbed' | 'calibration'> {
  if (backend !== 'model') {
    if (flags.testbed !== undefined || flags.calibration !== undefined) throw new SweepConfigError('--testbed, --calibration: only for --backend model');
    return {};
  }
  const setup = resolveModelSetup(flags);
  if (!setup.ok) throw new SweepConfigError(setup.message);
  return { testbed: setup.testbedName, calibration: setup.calibrationPath };
}

/**
 * Where the runs of a real backend go: --link, the backend's own flags, client processes, and
 * for aws the machine types. Each flag is refused on a backend that would ignore it.
 */
function parsePlacement(
  backend: SweepBackend,
  flags: FigureFlags,
  clients: number,
  clientMachines: number | undefined,
): Pick<SweepConfig, 'link' | 'infra' | 'clientProcs' | 'machines'> {
  const given = (keys: readonly string[]): string[] => keys.filter((k) => (flags as Record<string, unknown>)[k] !== undefined);
  const awsOnly = given(Object.keys(AWS_FLAG_NAMES)).map((k) => AWS_FLAG_NAMES[k]!);
  if (backend !== 'aws' && awsOnly.length > 0) throw new SweepConfigError(`${awsOnly.join(', ')}: only for --backend aws (this sweep uses ${backend})`);
  if (backend === 'sim' || backend === 'model') {
    const real = given([...Object.keys(INFRA_FLAG_NAMES), 'clientMachines']).map((k) =>
      k === 'clientMachines' ? '--client-machines' : INFRA_FLAG_NAMES[k as keyof InfraFlags],
    );
    if (real.length > 0) throw new SweepConfigError(`${real.join(', ')}: only for real backends (the simulator models its own network)`);
    return {};
  }
  let link: string;
  let infra: InfraSpec = {};
  if (backend === 'aws') {
    const notHere = given(['hosts', 'pin', 'cpus', 'baseImage']).map((k) => INFRA_FLAG_NAMES[k as keyof InfraFlags]);
    if (notHere.length > 0)
      throw new SweepConfigError(`${notHere.join(', ')}: not for --backend aws (it makes its own hosts; --subnet there is an EC2 subnet id)`);
    const placed = parseInfraFlags(backend, { ...(flags.link === undefined ? {} : { link: flags.link }) });
    if (placed.issues.length > 0) throw new SweepConfigError(placed.issues.join('\n'));
    link = placed.link;
  } else {
    const placed = parseInfraFlags(backend, flags);
    if (placed.issues.length > 0) throw new SweepConfigError(placed.issues.join('\n'));
    link = placed.link;
    infra = placed.infra;
  }
  const max = backend === 'aws' ? MAX_CLIENT_MACHINES : 64;
  let clientProcs: number;
  if (clientMachines !== undefined) {
    clientProcs = clientMachines;
    if (clientProcs > max) throw new SweepConfigError(`--client-machines: at most ${max}, got ${clientProcs}`);
    if (clientProcs > clients)
      throw new SweepConfigError(`--client-machines: ${clientProcs} client machines cannot each run one of ${clients} logical clients (--clients)`);
  } else {
    // ssh: one client process per client host of the file; aws: the paper's ten machines.
    const wanted = backend === 'aws' ? AWS_CLIENT_MACHINES : backend === 'ssh' && infra.hosts !== undefined ? loadHostsFile(infra.hosts).clients.length : 1;
    clientProcs = Math.min(wanted, clients, max);
  }
  // The region without --region comes from the environment: runFigureCommand resolves it.
  const machines =
    backend === 'aws'
      ? { region: flags.region ?? '(default)', instanceType: flags.instanceType ?? DEFAULT_REPLICA_TYPE, clientType: flags.clientType ?? DEFAULT_CLIENT_TYPE }
      : undefined;
  return { link, infra, clientProcs, ...(machines ? { machines } : {}) };
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
    this.log(
      `${info.planned} runs planned, ${info.skipped} already recorded (skipped), ${info.toRun.length} to run; about ${eta} (a first guess, refined as runs finish)`,
    );
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
    const what =
      record.valid && m
        ? `valid, ${Math.round(m.throughputTxnPerSec).toLocaleString('en-US')} txn/s, mean latency ${formatLatency(m.latencyMs.mean)}`
        : `${record.valid ? 'no metrics' : 'FAILED'}: ${record.reason ?? ''}`;
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

/** Where a point of an ssh or aws sweep ran: the hosts of its live replicas, then of its client machines. */
function hostsUsed(hosts: SshHosts, spec: RunSpec): { replicas: string[]; clients: string[] } {
  return {
    replicas: liveReplicas(spec).map((id) => hostFor(hosts, 'replica', id).name),
    clients: Array.from({ length: spec.clientProcs }, (_, o) => hostFor(hosts, 'client', o).name),
  };
}

/**
 * The executor of a simulated sweep (--backend sim, or model with its setup): every run still to
 * do is queued on `pool` at once, and each record is made from its own run's result.
 */
function simulatedExecutor(config: SweepConfig, pool: PointPool, toRun: readonly SweepRun[], model?: ModelSetup): RunExecutor {
  if (model === undefined) {
    return pooledExecutor(
      toRun,
      pool,
      (run) => {
        const spec = specFor(run, config);
        return { kind: 'sim', input: { run, config, records: spec.records, valueBytes: spec.valueBytes, windowK: spec.window } };
      },
      (_run, record) => record as RunRecord,
    );
  }
  // The model's one driver (experiments/model-point.ts modelPoint), as run --backend model and model validate use it.
  const inputs = new Map<SweepRun, ModelPointInput>();
  return pooledExecutor(
    toRun,
    pool,
    (run) => {
      const input = figurePointInput(run, config, model);
      inputs.set(run, input);
      return { kind: 'model', input };
    },
    (run, result) => {
      const r = result as ModelPointResult;
      return figureModelRecord(run, inputs.get(run)!, r, model, new Date(Date.now() - r.wallMs).toISOString());
    },
  );
}

/** The executor of a real backend. */
function executorFor(config: SweepConfig, dir: string, logs: boolean, remote?: RemoteHosts): RunExecutor {
  const chosen = chosenLoadsFrom(loadRuns(dir));
  const probed = new Map<string, LoadProbe>();
  return async (run, signal, onPhase) => {
    // Figure 11b's points come with their fault: specFor wraps the primary in stopAfter. Each
    // point runs at its saturation (experiments/saturation.ts): probes are extra runs.
    const logDir = logs ? join(dir, 'logs', `${run.pointId.replace(/[^\w.=-]+/g, '_')}.rep${run.rep}`) : undefined;
    const runSpec = (spec: RunSpec, what: string) =>
      executeRun(spec, {
        signal,
        onProgress: (line) => onPhase(`${what}: ${line}`),
        ...(logDir ? { logDir: what === 'run' ? logDir : `${logDir}.${what.replace(/\W+/g, '_')}` } : {}),
        ...(remote?.launch ? { launch: remote.launch } : {}),
      });
    const out = await runPointSaturated(run, config, runSpec, chosen, probed);
    if (!out) return undefined;
    const record = { ...recordFromRunResult(run, out.result, config.backend), saturation: out.saturation };
    return remote ? { ...record, hosts: hostsUsed(remote.hosts, out.spec), ...remote.extra } : record;
  };
}

/** The manifest's `hosts` of an ssh sweep: every host of the file, with its role. */
function hostsFileManifest(path: string): Record<string, unknown> {
  const hosts = loadHostsFile(path);
  return { hosts: [...hosts.replicas, ...hosts.clients].map((h) => `${h.name} (${h.role})`), hostsFile: path };
}

// ---------------------------------------------------------------------------------------
// The command

export interface FigureCommandIo {
  readonly signal: AbortSignal;
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream & { isTTY?: boolean };
  /** The words after `poe-bench`, for the manifest. */
  readonly argv?: readonly string[];
  /** aws: what to use instead of the real EC2 client, environment and SSH port (tests). */
  readonly aws?: {
    /** Dependency overrides for a region; default: the real EC2 client and a question on the terminal. */
    readonly deps?: (region: string) => Partial<AwsDeps>;
    readonly env?: AwsEnv;
    /** The machines' SSH port instead of 22 (tests: the test sshd). */
    readonly sshPort?: number;
  };
  /** aws: told when EC2 resources start and stop existing (their teardown must not be cut short). */
  readonly onAwsSection?: (active: boolean) => void;
}

function readJson(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch {
    return undefined;
  }
}

/** A figure command under way: what every step after parsing needs. */
interface FigureJob {
  config: SweepConfig;
  readonly figureText: string;
  readonly flags: FigureFlags;
  readonly io: FigureCommandIo;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream & { isTTY?: boolean };
  readonly baseline: ProtocolName;
  readonly dir: string;
  readonly resuming: boolean;
  readonly existing: RunRecord[];
  readonly runs: SweepRun[];
  readonly figures: string;
}

/** Flags, output directory and resume state; an exit code when the command cannot go on. */
function prepareFigure(figureText: string, flags: FigureFlags, io: FigureCommandIo): FigureJob | number {
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
  const dirProblem = outDirProblem(dir);
  if (dirProblem !== undefined) {
    stderr.write(`poe-bench figure: --out: ${dirProblem}\n`);
    return 2;
  }
  const manifestPath = join(dir, MANIFEST_FILE);
  if (existsSync(manifestPath)) {
    const problems = incompatibilities(readJson(manifestPath), config);
    if (problems.length > 0) {
      stderr.write(
        `poe-bench figure: ${dir} was written by a different sweep, whose runs cannot be averaged with these:\n${problems.map((p) => `  ${p}`).join('\n')}\nUse another --out directory.\n`,
      );
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
  const resuming = existsSync(join(dir, RUNS_FILE));
  const figures = config.figures.map((f) => `figure ${f}`).join(', ');
  return { config, figureText, flags, io, stdout, stderr, baseline, dir, resuming, existing, runs: planSweep(config), figures };
}

/** The lifecycle's view of the command's io. */
function awsIo(job: FigureJob): AwsSweepIo {
  const { io } = job;
  return {
    signal: io.signal,
    deps: io.aws?.deps ?? defaultAwsCommandIo().deps,
    env: io.aws?.env ?? process.env,
    ...(io.aws?.sshPort !== undefined ? { sshPort: io.aws.sshPort } : {}),
    ...(io.onAwsSection ? { onAwsSection: io.onAwsSection } : {}),
    stdout: job.stdout,
    stderr: job.stderr,
  };
}

/** aws: the machines and their cost, said before anything is created; an exit code on a bad plan or --dry-run. */
async function planAws(job: FigureJob): Promise<AwsSweep | number> {
  const { config, stderr } = job;
  const toRun = remainingRuns(job.runs, job.existing, config.retryFailed);
  let aws: AwsSweep;
  try {
    aws = planAwsSweep(config, job.flags, toRun, job.runs, awsIo(job).env);
  } catch (err) {
    if (!(err instanceof SweepConfigError || err instanceof AwsBackendError)) throw err;
    stderr.write(`poe-bench figure: ${err.message}\n`);
    return 2;
  }
  const o = aws.options;
  job.config = { ...config, machines: { region: o.region, instanceType: o.instanceType, clientType: o.clientType } };
  stderr.write(
    `poe-bench figure: ${job.figures} on aws: ${toRun.length} run${toRun.length === 1 ? '' : 's'} to do, predicted ${formatDuration(aws.runSec)}; ` +
      `${o.replicas} replica machines (${o.instanceType}) and ${o.clients} client machines (${o.clientType}) in ${o.region} for about ${o.expectedHours} h, powering off after ${o.ttlHours} h at the latest\n`,
  );
  if (o.dryRun) return awsDryRun(o, awsIo(job));
  if (toRun.length === 0) stderr.write('  every run is already recorded: no machines needed\n');
  return aws;
}

/** What the sweep is about to do, on stderr. */
function describeSweep(job: FigureJob): void {
  const { config } = job;
  const filter = describeFilter(config.filter);
  const link = config.link !== undefined && config.link !== 'none' ? `, links ${config.link}` : '';
  const procs = config.clientProcs !== undefined && config.clientProcs > 1 ? `, ${config.clientProcs} client machines per run` : '';
  job.stderr.write(
    `poe-bench figure: ${job.figures}, profile ${config.profile.name} (${isSimulatedBackend(config.backend) ? `warm-up ${config.warmupSec} s + ${config.measuredSec} s measured, as shares of each run's simulated time` : `warm-up until settled, at most ${runWarmupSec(config)} s, + ${config.measuredSec} s measured`}, ${config.reps} repetition${config.reps > 1 ? 's' : ''}), backend ${config.backend}${link}${procs}${filter ? `, only ${filter}` : ''}\n` +
      `  ${job.resuming ? 'resuming' : 'writing'} ${job.dir}\n` +
      (config.backend === 'sim' ? '  SIMULATED: numbers are in virtual time (the simulator charges no computing time); a preview, not a measurement\n' : '') +
      (config.backend === 'model'
        ? `  MODELLED: predictions of the calibrated cost model for testbed ${config.testbed} (calibration ${config.calibration}), not measurements\n`
        : '') +
      (config.backend !== 'sim' && config.backend !== 'model' && config.figures.includes('11b')
        ? `  figure 11b: ${primaryFailureNote(config.backend, FIGURES['11b'].points()[0]!.primaryStopsAfter ?? 0, config.warmupSec)['fault']}; checkpoints every ${FIGURES['11b'].checkpointInterval}, client timeout ${PRIMARY_FAILURE_TIMEOUTS.clientTimeoutMs} ms, view-change timeout ${PRIMARY_FAILURE_TIMEOUTS.viewChangeTimeoutMs} ms\n`
        : ''),
  );
}

/** The sweep's end as the machines saw it: an exit code when the command ends here. */
interface SweepEnd {
  readonly outcome?: SweepOutcome;
  readonly awsStarted: boolean;
  readonly awsRunId?: string | undefined;
  readonly exitCode?: number;
}

/** Runs the sweep: here, over ssh hosts, or on EC2 machines provisioned for it. */
async function runFigureSweep(job: FigureJob, aws: AwsSweep | undefined): Promise<SweepEnd> {
  const { config, io, dir, stderr } = job;
  const startedAt = new Date().toISOString();
  const writeManifestFor = (c: SweepConfig, extra: Record<string, unknown>): void => {
    mkdirSync(dir, { recursive: true });
    writeManifestOnce(dir, { ...sweepManifest(c, { ...environment() }, startedAt, io.argv ?? ['figure', job.figureText]), ...extra });
  };
  // aws writes its manifest once its machines are up, so that it names them.
  if (config.backend !== 'aws') writeManifestFor(config, config.backend === 'ssh' && config.infra?.hosts ? hostsFileManifest(config.infra.hosts) : {});
  describeSweep(job);
  const progress = new Progress(
    stderr.isTTY === true,
    stderr,
    config.reps,
    config.backend === 'sim' || config.backend === 'model' ? 'simulating' : 'starting processes',
    (run) => predictedRunSec(run, config),
  );
  const sweep = (c: SweepConfig, signal: AbortSignal, remote?: RemoteHosts): Promise<SweepOutcome> =>
    runSweep(job.runs, job.existing, {
      dir,
      backend: config.backend,
      execute: executorFor(c, dir, job.flags.logs ?? false, remote),
      signal,
      retryFailed: config.retryFailed,
      listener: progress,
    });
  if (isSimulatedBackend(config.backend)) {
    try {
      return await simulatedSweep(job, progress);
    } finally {
      progress.stop();
    }
  }
  try {
    if (aws === undefined || remainingRuns(job.runs, job.existing, config.retryFailed).length === 0) {
      const sshHosts = config.backend === 'ssh' && config.infra?.hosts !== undefined ? { hosts: loadHostsFile(config.infra.hosts) } : undefined;
      return { outcome: await sweep(config, io.signal, sshHosts), awsStarted: false };
    }
    try {
      const { outcome, runId } = await sweepOnAws({ aws, config, planned: job.runs.length, writeManifest: writeManifestFor, sweep }, awsIo(job));
      return { outcome, awsStarted: true, awsRunId: runId };
    } catch (err) {
      if (!(err instanceof AwsBackendError)) throw err;
      progress.stop();
      stderr.write(`poe-bench figure: ${err.message}\n`);
      if (existsSync(join(dir, RUNS_FILE)))
        stderr.write(`  the runs finished before are in ${join(dir, RUNS_FILE)}; resume with the same command and --out ${dir}\n`);
      return { awsStarted: true, exitCode: 1 };
    }
  } finally {
    progress.stop();
  }
}

/** The model's testbed and calibration of a sweep whose flags were checked (parseFigureFlags). */
function modelSetupOf(config: SweepConfig): ModelSetup {
  const setup = resolveModelSetup({ testbed: config.testbed, calibration: config.calibration });
  if (!setup.ok) throw new SweepConfigError(setup.message);
  return { testbed: setup.testbed, costs: setup.calibration.costs, calibration: setup.calibrationPath };
}

/**
 * --backend sim and model: every run still to do on a pool of worker threads, one per core
 * (experiments/point-pool.ts), recorded in the sweep's order. A model figure 13 on a testbed of
 * separate machines also gets its sensitivity (issue 12 item 5), queued on the same pool behind
 * the sweep's runs and written beside runs.jsonl for the report. Ctrl-C terminates the workers.
 */
async function simulatedSweep(job: FigureJob, progress: Progress): Promise<SweepEnd> {
  const { config, io, dir, stderr } = job;
  const pool = new PointPool();
  const stopPool = (): void => void pool.terminate();
  io.signal.addEventListener('abort', stopPool, { once: true });
  try {
    const toRun = remainingRuns(job.runs, job.existing, config.retryFailed);
    if (toRun.length > 1)
      stderr.write(
        `  ${pool.inThread ? 'one point at a time, in this thread (no compiled worker)' : `points on ${pool.size} worker thread${pool.size > 1 ? 's' : ''} (one per core), recorded in order`}\n`,
      );
    const model = config.backend === 'model' ? modelSetupOf(config) : undefined;
    const execute = simulatedExecutor(config, pool, toRun, model);
    const sensitivity = model !== undefined && wantsSensitivity(job.runs, model) ? runFigureSensitivity(dir, job.runs, config, model, pool) : undefined;
    sensitivity?.catch(() => undefined);
    const outcome = await runSweep(job.runs, job.existing, {
      dir,
      backend: config.backend,
      execute,
      signal: io.signal,
      retryFailed: config.retryFailed,
      listener: progress,
    });
    if (sensitivity === undefined || outcome.interrupted) return { outcome, awsStarted: false };
    progress.stop();
    stderr.write(
      `poe-bench figure: figure 13's sensitivity on ${model!.testbed.name} (one resource varied at a time), finishing on ${pool.size} worker${pool.size > 1 ? 's' : ''}...\n`,
    );
    try {
      const s: SensitivityFile | undefined = await sensitivity;
      if (s === undefined) return { outcome: { ...outcome, interrupted: true }, awsStarted: false };
      stderr.write(
        `  ${s.rows.length} points, ${s.rows.length * (s.variants.length + 1)} modelled runs (${s.runSec} s of worker time), in ${join(dir, SENSITIVITY_FILE)}\n`,
      );
    } catch (err) {
      stderr.write(`poe-bench figure: the sensitivity failed, and the report goes without it: ${(err as Error).message}\n`);
    }
    return { outcome, awsStarted: false };
  } finally {
    io.signal.removeEventListener('abort', stopPool);
    await pool.terminate();
  }
}

/** The summary after the sweep: report, charts, claims, failed runs; returns the exit code. */
async function finishFigure(job: FigureJob, end: SweepEnd & { outcome: SweepOutcome }, wall: string): Promise<number> {
  const { config, dir, runs, stderr, stdout } = job;
  const { outcome } = end;
  const { missing, bad } = unsuccessful(runs, loadRuns(dir));
  const machines =
    !end.awsStarted || (end.awsRunId === undefined && !outcome.interrupted)
      ? ''
      : end.awsRunId === undefined
        ? '  every EC2 resource created so far was removed\n'
        : `  the EC2 machines of run ${end.awsRunId} were terminated, and its security group and key pair deleted\n`;
  if (outcome.interrupted) {
    stderr.write(
      `poe-bench figure: interrupted after ${wall}; the run in progress was stopped and not recorded. ${runs.length - missing.length} of ${runs.length} runs are in ${join(dir, RUNS_FILE)}.\n` +
        machines +
        `  resume with the same command and --out ${dir}\n`,
    );
    return 130;
  }
  if (machines) stderr.write(machines);
  const report = await writeReport(dir, { baseline: job.baseline });
  const svgs = report.charts.filter((c) => c.endsWith('.svg')).length;
  const pngs = report.charts.filter((c) => c.endsWith('.png')).length;
  const verdicts = (v: string): number => report.claims.filter((c) => c.verdict === v).length;
  const lines = [
    `poe-bench figure ${config.figureArg}: ${outcome.ran} run${outcome.ran === 1 ? '' : 's'} in ${wall}, ${outcome.skipped} skipped (already recorded); ${runs.length - missing.length - bad.length} of ${runs.length} valid`,
    `  results    ${dir}`,
    `  runs       ${join(dir, RUNS_FILE)}`,
    `  manifest   ${join(dir, MANIFEST_FILE)}`,
    `  charts     ${svgs} SVG, ${pngs} PNG (fig<panel>.svg/.png, vega-lite specs in fig<panel>.vl.json)`,
    `  report     ${report.markdown}, ${report.html}`,
    `  claims     ${verdicts('holds')} hold, ${verdicts('does not hold')} do not hold, ${verdicts('not measured')} not measured (of ${report.claims.length})`,
    `  replay     ${figureReplayCommand(job.figureText, job.flags, dir)}`,
  ];
  if (config.backend === 'sim') lines.push('  SIMULATED: virtual-time numbers from the deterministic simulator, not a measurement');
  if (config.backend === 'model') lines.push(`  MODELLED: predictions for testbed ${config.testbed} from the calibrated cost model, not measurements`);
  stdout.write(`${lines.join('\n')}\n`);
  if (bad.length > 0 || missing.length > 0) {
    stderr.write(`poe-bench figure: ${bad.length} run${bad.length === 1 ? '' : 's'} failed or invalid:\n`);
    for (const r of bad.slice(0, 20)) stderr.write(`  ${r.experiment} ${r.pointId} rep ${r.rep}: ${r.reason ?? 'no metrics'}\n`);
    if (bad.length > 20) stderr.write(`  ... and ${bad.length - 20} more (see runs.jsonl and the report)\n`);
    return 1;
  }
  return 0;
}

/** Runs `poe-bench figure`; returns the exit code. */
export async function runFigureCommand(figureText: string, flags: FigureFlags, io: FigureCommandIo): Promise<number> {
  const job = prepareFigure(figureText, flags, io);
  if (typeof job === 'number') return job;
  let aws: AwsSweep | undefined;
  if (job.config.backend === 'aws') {
    const planned = await planAws(job);
    if (typeof planned === 'number') return planned;
    aws = planned;
  }
  const t0 = Date.now();
  const end = await runFigureSweep(job, aws);
  if (end.outcome === undefined) return end.exitCode ?? 1;
  if (!end.outcome.interrupted && curvesWanted(job) && (await runFigureCurves(job)) === 'interrupted') {
    job.stderr.write(
      `poe-bench figure: interrupted while measuring curves; the points so far are under ${join(job.dir, CURVES_DIR)}; resume with --out ${job.dir}\n`,
    );
    return 130;
  }
  return finishFigure(job, { ...end, outcome: end.outcome }, formatDuration((Date.now() - t0) / 1000));
}

/**
 * Figure 13's curves panel (issue 11 item 4): in the default and paper profiles, or with
 * --curves in quick, on the local backend (the curve command's runs are local processes).
 */
function curvesWanted(job: FigureJob): boolean {
  const { config, flags } = job;
  if (!config.figures.includes('13') || (config.profile.name === 'quick' && !flags.curves)) return false;
  if ((config.backend ?? 'local') !== 'local') {
    if (flags.curves) job.stderr.write(`poe-bench figure: --curves: curves run on the local backend only, not ${config.backend}; skipped\n`);
    return false;
  }
  return true;
}

/**
 * One curve per replica count of figure 13's sweep, over its protocols, into
 * <out>/curves/n<N>/ (plots/curves-panel.ts draws them into the report). A replica count whose
 * curve directory exists is not measured again (a resumed figure).
 */
async function runFigureCurves(job: FigureJob): Promise<'done' | 'interrupted'> {
  const fig13 = job.runs.filter((r) => r.figure === '13');
  const protocols = [...new Set(fig13.map((r) => r.point.protocol))];
  for (const replicas of [...new Set(fig13.map((r) => r.point.replicas))].sort((a, b) => a - b)) {
    const outDir = curvesDirFor(job.dir, replicas);
    if (existsSync(outDir)) continue;
    job.stderr.write(`poe-bench figure: curves at ${replicas} replicas (${protocols.join(', ')}), into ${outDir}\n`);
    const options = { ...parseCurveFlags({ protocol: protocols.join(','), replicas: String(replicas) }), outDir };
    const result = await runCurve(options, {
      ...(job.io.signal ? { signal: job.io.signal } : {}),
      onPoint: (p, i) =>
        job.stderr.write(
          `  ${p.protocol} n=${replicas} point ${i + 1}: offered ${Math.round(p.offeredTxnPerSec)} txn/s, achieved ${Math.round(p.achievedTxnPerSec)}\n`,
        ),
    });
    if (result.interrupted) return 'interrupted';
  }
  return 'done';
}

/** Declares the flags (without an action, so tests can parse flags alone), from the table of run parameters. */
export function defineFigureCommand(cmd: Command): Command {
  const p = PROFILES;
  cmd
    .description("regenerate a figure of the paper's evaluation (§5): run its sweep, record every run, draw the charts, write the report")
    .argument('<figure>', `${FIGURE_IDS.join(' | ')} | all (every figure into one directory)`);
  // The sweep's own flags first, then where its runs go, then the EC2 machines of --backend aws.
  const first = [
    'backend',
    'quick',
    'paper',
    'reps',
    'out',
    'replicas',
    'protocols',
    'batches',
    'warmup',
    'duration',
    'seed',
    'clients',
    'loadTxns',
    'simBatches',
    'testbed',
    'calibration',
    'retryFailed',
    'baseline',
    'logs',
  ];
  defineParams(cmd, 'figure', first);
  defineParams(
    cmd,
    'figure',
    paramsFor('figure')
      .map((p) => p.key)
      .filter((k) => !first.includes(k)),
  );
  return cmd.addHelpText(
    'after',
    `\nProfiles: quick: ${p.quick.description}; default: ${p.default.description}; paper: ${p.paper.description}.` +
      `\nsim backend: --sim-batches by profile: quick ${SIM_BATCHES.quick}, default ${SIM_BATCHES.default}, paper ${SIM_BATCHES.paper}. Report baseline: ${DEFAULT_BASELINE}.` +
      `\nFigures: ${FIGURE_IDS.map((id) => `${id} (${FIGURES[id].faults})`).join('; ')}.\nThe --link, --hosts, --pin, --cpus, --subnet and --base-image flags are those of \`poe-bench run\` (docs/backends.md).\nExit codes: 0 every run valid, 1 a run failed or was invalid (all is still written), 2 invalid flags, 130 interrupted (finished runs are kept; rerun with --out to resume).`,
  );
}

/** `poe-bench figure <id> ...`: the command that repeats (or resumes) this sweep into `dir`. */
export function figureReplayCommand(figureText: string, flags: FigureFlags, dir: string): string {
  return replayLine(['figure', figureText], replayArgs('figure', { ...canonicalFlags('figure', flags), out: dir }));
}

/** Adds `poe-bench figure` to the program. */
export function registerFigureCommand(program: Command): void {
  defineFigureCommand(program.command('figure')).action(async (figure: string, flags: FigureFlags) => {
    const controller = new AbortController();
    let signals = 0;
    // While EC2 resources exist, infra/aws's own listeners tear them down on the same signal,
    // and a second one must not end the process before that is done.
    let awsSection = false;
    const onSignal = (): void => {
      signals++;
      if (signals === 1) {
        process.stderr.write(
          awsSection
            ? '\npoe-bench figure: stopping: killing the run in progress, then terminating the EC2 machines\n'
            : '\npoe-bench figure: stopping: killing the run in progress (Ctrl-C again to quit at once)\n',
        );
        controller.abort();
      } else if (!awsSection) process.exit(130);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      process.exitCode = await runFigureCommand(figure, flags, {
        signal: controller.signal,
        argv: process.argv.slice(2),
        onAwsSection: (active) => {
          awsSection = active;
        },
      });
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  });
}
