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
import { type Command, Option } from 'commander';
import { FIGURE_IDS, FIGURES, figureOfExperiment, parseProtocol, PROFILES, type ProfileName } from '../experiments/figures.js';
import { loadRuns } from '../experiments/runs.js';
import {
  awsUp,
  AwsBackendError,
  defaultAwsDeps,
  HOSTS_FILE,
  InterruptedError,
  parseUpOptions,
  withAwsHosts,
  type AwsDeps,
  type AwsUpOptions,
  type ProvisionedHosts,
  type SignalSource,
} from '../infra/aws/index.js';
import { DEFAULT_CLIENT_TYPE, DEFAULT_REPLICA_TYPE, DEFAULT_TTL_HOURS, MAX_CLIENT_MACHINES, MAX_TTL_HOURS, type AwsEnv } from '../infra/aws/options.js';
import { hostFor, hostsFromProvisioned, loadHostsFile, type SshHosts } from '../infra/ssh/hosts.js';
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
  runPointSaturated,
  chosenLoadsFrom,
  FIGURE_LOAD_TXNS,
  remainingRuns,
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
  type SweepOutcome,
  type SweepRun,
} from '../experiments/sweep.js';
import type { FigureId, RunRecord } from '../infra/run/records.js';
import { DEFAULT_BASELINE, writeReport } from '../plots/index.js';
import type { ProtocolName } from '../replica/types.js';
import { defaultAwsCommandIo } from './infra-aws-command.js';
import { defineInfraRunOptions, INFRA_FLAG_NAMES, parseInfraFlags, type InfraFlags, type InfraSpec } from '../infra/run/placement.js';
import { sshLauncher, type Launcher } from '../infra/run/launch.js';
import { environment } from '../infra/run/results.js';
import { executeRun } from '../infra/run/execute.js';
import { liveReplicas, RUN_DEFAULTS, type RunSpec } from '../infra/run/spec.js';

/** Flags as commander hands them over. */
export interface FigureFlags extends InfraFlags {
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
  readonly retryFailed?: boolean;
  readonly baseline?: string;
  readonly logs?: boolean;
  /** Client processes per run; aws: client machines to provision. */
  readonly clientMachines?: string;
  // aws: the provisioning flags of `poe-bench infra aws up` (--subnet is the EC2 subnet id there).
  readonly region?: string;
  readonly instanceType?: string;
  readonly clientType?: string;
  readonly os?: string;
  readonly ami?: string;
  readonly sshUser?: string;
  readonly vpc?: string;
  readonly myIp?: string;
  readonly ttlHours?: string;
  readonly yes?: boolean;
  readonly dryRun?: boolean;
  readonly stateDir?: string;
}

/** The aws flags, by FigureFlags key: passed to `infra aws up`'s option parser as they are. */
const AWS_FLAG_NAMES = {
  region: '--region',
  instanceType: '--instance-type',
  clientType: '--client-type',
  os: '--os',
  ami: '--ami',
  sshUser: '--ssh-user',
  vpc: '--vpc',
  myIp: '--my-ip',
  ttlHours: '--ttl-hours',
  yes: '--yes',
  dryRun: '--dry-run',
  stateDir: '--state-dir',
} as const satisfies Partial<Record<keyof FigureFlags, string>>;

/** The paper's client machines (§5, line 411: "10 4-core machines"): the aws default. */
export const AWS_CLIENT_MACHINES = 10;

function positiveInt(flag: string, text: string, min = 1): number {
  const v = Number(text);
  if (!Number.isInteger(v) || v < min) throw new SweepConfigError(`${flag}: must be an integer >= ${min}, got '${text}'`);
  return v;
}

function seconds(flag: string, text: string, allowZero: boolean): number {
  const v = Number(text);
  if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0))
    throw new SweepConfigError(`${flag}: must be a number of seconds ${allowZero ? '>= 0' : '> 0'}, got '${text}'`);
  return v;
}

function list<T>(flag: string, text: string, parse: (s: string) => T): T[] {
  const items = text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
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
  const clients = flags.clients === undefined ? RUN_DEFAULTS.clients : positiveInt('--clients', flags.clients);
  const placement = parsePlacement(backend, flags, clients);
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
    clients,
    ...(flags.clients !== undefined ? { clientsGiven: true } : {}),
    loadTxns: flags.loadTxns === undefined ? FIGURE_LOAD_TXNS : positiveInt('--load-txns', flags.loadTxns),
    ...(flags.loadTxns !== undefined ? { loadGiven: true } : {}),
    simBatches: flags.simBatches === undefined ? SIM_BATCHES[profileName] : positiveInt('--sim-batches', flags.simBatches),
    retryFailed: flags.retryFailed ?? false,
    ...placement,
  };
  planSweep(config); // a filter that leaves nothing is a flag error, not an empty sweep
  return config;
}

/**
 * Where the runs of a real backend go: --link, the backend's own flags, client processes, and
 * for aws the machine types. Each flag is refused on a backend that would ignore it.
 */
function parsePlacement(backend: SweepBackend, flags: FigureFlags, clients: number): Pick<SweepConfig, 'link' | 'infra' | 'clientProcs' | 'machines'> {
  const given = (keys: readonly string[]): string[] => keys.filter((k) => (flags as Record<string, unknown>)[k] !== undefined);
  const awsOnly = given(Object.keys(AWS_FLAG_NAMES)).map((k) => AWS_FLAG_NAMES[k as keyof typeof AWS_FLAG_NAMES]);
  if (backend !== 'aws' && awsOnly.length > 0) throw new SweepConfigError(`${awsOnly.join(', ')}: only for --backend aws (this sweep uses ${backend})`);
  if (backend === 'sim') {
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
  if (flags.clientMachines !== undefined) {
    clientProcs = positiveInt('--client-machines', flags.clientMachines);
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

/** An ssh or aws sweep's hosts: recorded with every run; aws also launches on them directly. */
interface RemoteHosts {
  readonly hosts: SshHosts;
  readonly launch?: Launcher;
  /** More fields for every record (aws: the EC2 run). */
  readonly extra?: Record<string, unknown>;
}

/** The executor of one backend. */
function executorFor(config: SweepConfig, dir: string, logs: boolean, remote?: RemoteHosts): RunExecutor {
  if (config.backend === 'sim') {
    return async (run, signal) => {
      const spec = specFor(run, config);
      return simulatePointAbortable({ run, config, records: spec.records, valueBytes: spec.valueBytes, windowK: spec.window }, signal);
    };
  }
  const chosen = chosenLoadsFrom(loadRuns(dir));
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
    const out = await runPointSaturated(run, config, runSpec, chosen);
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
// aws: one set of machines for the whole sweep

/** Launching the machines, waiting for sshd, and terminating them: added to the predicted run time. */
export const AWS_SETUP_SEC = 600;

interface AwsSweep {
  /** What withAwsHosts parses: the up flags plus replicas, clients, hours and TTL. */
  readonly input: Record<string, unknown>;
  readonly options: AwsUpOptions;
  readonly runSec: number;
}

/** The `infra aws up` flags among the figure's, under the names parseUpOptions takes. */
function awsUpFlags(flags: FigureFlags): Record<string, unknown> {
  const keys = [...Object.keys(AWS_FLAG_NAMES), 'subnet'] as (keyof FigureFlags)[];
  return Object.fromEntries(keys.filter((k) => flags[k] !== undefined).map((k) => [k, flags[k]]));
}

/**
 * The machines an aws sweep needs: replica machines for its largest point still to run, the
 * client machines, and the hours the cost estimate uses (the predicted time of the runs left
 * plus AWS_SETUP_SEC). The TTL after which the instances power off defaults to leave room for
 * a slow sweep; one shorter than the predicted time is refused.
 */
function planAwsSweep(config: SweepConfig, flags: FigureFlags, toRun: readonly SweepRun[], all: readonly SweepRun[], env: AwsEnv): AwsSweep {
  const replicas = Math.max(...(toRun.length > 0 ? toRun : all).map((r) => r.point.replicas));
  const runSec = toRun.reduce((sum, r) => sum + predictedRunSec(r, config), 0);
  const hours = Math.ceil(((runSec + AWS_SETUP_SEC) / 3600) * 100) / 100;
  const needs = `the sweep needs about ${hours} h (${formatDuration(runSec)} of runs plus about ${AWS_SETUP_SEC / 60} min to start and remove the machines)`;
  if (hours > MAX_TTL_HOURS)
    throw new SweepConfigError(
      `${needs}, more than the ${MAX_TTL_HOURS} h instances may live: run it in parts (--replicas, --protocols) into one --out directory`,
    );
  let ttlHours: number | string = Math.min(MAX_TTL_HOURS, Math.max(DEFAULT_TTL_HOURS, Math.ceil(hours * 1.5 + 1)));
  if (flags.ttlHours !== undefined) {
    ttlHours = flags.ttlHours;
    const ttl = Number(flags.ttlHours);
    if (Number.isFinite(ttl) && ttl < hours) throw new SweepConfigError(`--ttl-hours: the instances would power off after ${ttl} h, but ${needs}`);
  }
  const input = { ...awsUpFlags(flags), replicas, clients: config.clientProcs ?? AWS_CLIENT_MACHINES, hours, ttlHours };
  return { input, options: parseUpOptions(input, env), runSec };
}

/** The aws dependencies for a region, with progress on our stderr and the section's signal listeners watched. */
function awsDeps(region: string, io: FigureCommandIo, stderr: NodeJS.WritableStream): Partial<AwsDeps> {
  const base = io.aws?.deps?.(region) ?? defaultAwsCommandIo().deps(region);
  const signals: SignalSource = base.signals ?? process;
  let installed = 0;
  const watched: SignalSource = {
    // provisionedSection listens from its first create call to the end of its teardown: while
    // it does, a second Ctrl-C must not end the process (registerFigureCommand asks).
    on(sig, listener) {
      if (installed++ === 0) io.onAwsSection?.(true);
      // Interrupted while planning or asking: stop before creating more than the first resource.
      if (sig === 'SIGINT' && io.signal.aborted) setImmediate(listener);
      return signals.on(sig, listener);
    },
    off(sig, listener) {
      if (--installed === 0) io.onAwsSection?.(false);
      return signals.off(sig, listener);
    },
  };
  return { ...base, log: (line) => stderr.write(`${line}\n`), signals: watched };
}

/**
 * --dry-run: the plan and its cost (deps.log), then EC2's DryRun answer to each create call.
 * Nothing is created, not even the results directory.
 */
async function awsDryRun(options: AwsUpOptions, io: FigureCommandIo, stdout: NodeJS.WritableStream, stderr: NodeJS.WritableStream): Promise<number> {
  try {
    const result = await awsUp(options, defaultAwsDeps(options.region, awsDeps(options.region, io, stderr)));
    if (result.kind !== 'dry-run') throw new Error('awsUp created machines on a dry run');
    const { report } = result;
    for (const c of report.checks) stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.step}: ${c.detail}\n`);
    stdout.write(
      report.ok ? 'dry run: EC2 would accept every call; nothing was created\n' : 'dry run: EC2 would refuse some calls (above); nothing was created\n',
    );
    return report.ok ? 0 : 1;
  } catch (err) {
    if (!(err instanceof AwsBackendError)) throw err;
    stderr.write(`poe-bench figure: ${err.message}\n`);
    return 1;
  }
}

/** The manifest's record of the machines an aws sweep ran on (the first invocation's, when resumed). */
function awsManifest(hosts: ProvisionedHosts, config: SweepConfig, options: AwsUpOptions): Record<string, unknown> {
  return {
    hosts: [
      ...hosts.replicas.map((h) => `${h.publicIp} (replica, ${h.instanceId}, private ${h.privateIp})`),
      ...hosts.clients.map((h) => `${h.publicIp} (client, ${h.instanceId}, private ${h.privateIp})`),
    ],
    aws: {
      runId: hosts.runId,
      region: hosts.region,
      instanceType: options.instanceType,
      clientType: options.clientType,
      replicaMachines: hosts.replicas.length,
      clientMachines: hosts.clients.length,
      clientProcsPerRun: config.clientProcs,
      expiresAt: hosts.expiresAt,
      note: 'the machines were terminated when the sweep ended; a resumed sweep provisions new ones (each run records its hosts and aws.runId)',
    },
  };
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
  const runs = planSweep(config);
  const figures = config.figures.map((f) => `figure ${f}`).join(', ');

  let aws: AwsSweep | undefined;
  if (config.backend === 'aws') {
    const toRun = remainingRuns(runs, existing, config.retryFailed);
    try {
      aws = planAwsSweep(config, flags, toRun, runs, io.aws?.env ?? process.env);
    } catch (err) {
      if (!(err instanceof SweepConfigError || err instanceof AwsBackendError)) throw err;
      stderr.write(`poe-bench figure: ${err.message}\n`);
      return 2;
    }
    config = { ...config, machines: { region: aws.options.region, instanceType: aws.options.instanceType, clientType: aws.options.clientType } };
    const o = aws.options;
    stderr.write(
      `poe-bench figure: ${figures} on aws: ${toRun.length} run${toRun.length === 1 ? '' : 's'} to do, predicted ${formatDuration(aws.runSec)}; ` +
        `${o.replicas} replica machines (${o.instanceType}) and ${o.clients} client machines (${o.clientType}) in ${o.region} for about ${o.expectedHours} h, powering off after ${o.ttlHours} h at the latest\n`,
    );
    if (o.dryRun) return awsDryRun(o, io, stdout, stderr);
    if (toRun.length === 0) stderr.write('  every run is already recorded: no machines needed\n');
  }

  const startedAt = new Date().toISOString();
  const manifestFor = (c: SweepConfig, extra: Record<string, unknown>): Record<string, unknown> => ({
    ...sweepManifest(c, { ...environment() }, startedAt, io.argv ?? ['figure', figureText]),
    ...extra,
  });
  if (config.backend !== 'aws') {
    // aws writes its manifest once its machines are up, so that it names them.
    mkdirSync(dir, { recursive: true });
    writeManifestOnce(dir, manifestFor(config, config.backend === 'ssh' && config.infra?.hosts ? hostsFileManifest(config.infra.hosts) : {}));
  }

  const filter = describeFilter(config.filter);
  const link = config.link !== undefined && config.link !== 'none' ? `, links ${config.link}` : '';
  const procs = config.clientProcs !== undefined && config.clientProcs > 1 ? `, ${config.clientProcs} client machines per run` : '';
  stderr.write(
    `poe-bench figure: ${figures}, profile ${config.profile.name} (${config.warmupSec} s warm-up + ${config.measuredSec} s measured, ${config.reps} repetition${config.reps > 1 ? 's' : ''}), backend ${config.backend}${link}${procs}${filter ? `, only ${filter}` : ''}\n` +
      `  ${resuming ? 'resuming' : 'writing'} ${dir}\n` +
      (config.backend === 'sim' ? '  SIMULATED: numbers are in virtual time (the simulator charges no computing time); a preview, not a measurement\n' : '') +
      (config.backend !== 'sim' && config.figures.includes('11b')
        ? `  figure 11b: the primary stops after ${FIGURES['11b'].points()[0]!.primaryStopsAfter} batches (--faults primary=stopAfter); checkpoints every ${FIGURES['11b'].checkpointInterval}, client timeout ${PRIMARY_FAILURE_TIMEOUTS.clientTimeoutMs} ms, view-change timeout ${PRIMARY_FAILURE_TIMEOUTS.viewChangeTimeoutMs} ms\n`
        : ''),
  );

  const progress = new Progress(stderr.isTTY === true, stderr, config.reps, config.backend === 'sim' ? 'simulating' : 'starting processes', (run) =>
    predictedRunSec(run, config),
  );
  const sweepWith = (c: SweepConfig, signal: AbortSignal, remote?: RemoteHosts): Promise<SweepOutcome> =>
    runSweep(runs, existing, {
      dir,
      backend: config.backend,
      execute: executorFor(c, dir, flags.logs ?? false, remote),
      signal,
      retryFailed: config.retryFailed,
      listener: progress,
    });
  const t0 = Date.now();
  let outcome: SweepOutcome;
  let awsStarted = false;
  let awsRunId: string | undefined;
  try {
    if (aws === undefined || remainingRuns(runs, existing, config.retryFailed).length === 0) {
      const sshHosts = config.backend === 'ssh' && config.infra?.hosts !== undefined ? { hosts: loadHostsFile(config.infra.hosts) } : undefined;
      outcome = await sweepWith(config, io.signal, sshHosts);
    } else {
      const { options, input } = aws;
      const onMachines = config;
      let sweeping: Promise<SweepOutcome> | undefined;
      awsStarted = true;
      try {
        outcome = await withAwsHosts(
          input,
          async (provisioned, sectionSignal) => {
            awsRunId = provisioned.runId;
            const hosts = hostsFromProvisioned({ ...provisioned, sshPort: io.aws?.sshPort ?? provisioned.sshPort });
            // Each run's spec names the hosts file infra/aws wrote for these machines (ssh backend).
            const c: SweepConfig = { ...onMachines, infra: { hosts: join(options.stateDir, provisioned.runId, HOSTS_FILE) } };
            mkdirSync(dir, { recursive: true });
            writeManifestOnce(dir, manifestFor(c, awsManifest(provisioned, c, options)));
            const extra = { aws: { runId: provisioned.runId, region: provisioned.region, instanceType: options.instanceType, clientType: options.clientType } };
            sweeping = sweepWith(c, AbortSignal.any([io.signal, sectionSignal]), { hosts, launch: sshLauncher(hosts), extra });
            return await sweeping;
          },
          awsDeps(options.region, io, stderr),
          io.aws?.env ?? process.env,
        );
      } catch (err) {
        // withAwsHosts stops waiting for the sweep on a signal and tears down at once: let the
        // run in progress finish being stopped (it records nothing) before saying so.
        if (sweeping) await sweeping.catch(() => undefined);
        if (err instanceof InterruptedError) outcome = { planned: runs.length, skipped: 0, ran: 0, interrupted: true };
        else if (err instanceof AwsBackendError) {
          progress.stop();
          stderr.write(`poe-bench figure: ${err.message}\n`);
          if (existsSync(join(dir, RUNS_FILE)))
            stderr.write(`  the runs finished before are in ${join(dir, RUNS_FILE)}; resume with the same command and --out ${dir}\n`);
          return 1;
        } else throw err;
      }
    }
  } finally {
    progress.stop();
  }
  const wall = formatDuration((Date.now() - t0) / 1000);
  const records = loadRuns(dir);
  const { missing, bad } = unsuccessful(runs, records);
  const machines =
    !awsStarted || (awsRunId === undefined && !outcome.interrupted)
      ? ''
      : awsRunId === undefined
        ? '  every EC2 resource created so far was removed\n'
        : `  the EC2 machines of run ${awsRunId} were terminated, and its security group and key pair deleted\n`;
  if (outcome.interrupted) {
    stderr.write(
      `poe-bench figure: interrupted after ${wall}; the run in progress was stopped and not recorded. ${runs.length - missing.length} of ${runs.length} runs are in ${join(dir, RUNS_FILE)}.\n` +
        machines +
        `  resume with the same command and --out ${dir}\n`,
    );
    return 130;
  }
  if (machines) stderr.write(machines);

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
  cmd
    .description("regenerate a figure of the paper's evaluation (§5): run its sweep, record every run, draw the charts, write the report")
    .argument('<figure>', `${FIGURE_IDS.join(' | ')} | all (every figure into one directory)`)
    .addOption(
      new Option(
        '--backend <name>',
        'local: processes on this machine; netns | docker: one namespace or container per node; ssh: the hosts of --hosts; aws: fresh EC2 machines for the whole sweep, terminated at its end; sim: the deterministic simulator (virtual time, a preview)',
      ).default('local'),
    )
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
    .option(
      '--clients <c>',
      `batch-level closed loop: logical clients per run, one batch outstanding each, at least one per replica; given, no saturation probe (simulator default ${RUN_DEFAULTS.clients})`,
    )
    .option(
      '--load-txns <t>',
      `closed loop in transactions outstanding, the same at every batch size; given, no saturation probe (default: start at ${FIGURE_LOAD_TXNS} and probe at double load until it gains < 5%)`,
    )
    .option(
      '--sim-batches <m>',
      `sim backend: batches per run (default by profile: quick ${SIM_BATCHES.quick}, default ${SIM_BATCHES.default}, paper ${SIM_BATCHES.paper})`,
    )
    .option('--retry-failed', 'on resume, run again the repetitions recorded as failed or invalid')
    .option('--baseline <protocol>', `protocol the report compares against (default ${DEFAULT_BASELINE})`)
    .option('--logs', 'keep every process stderr under <out>/logs/');
  return defineInfraRunOptions(cmd)
    .option(
      '--client-machines <m>',
      `client processes per run, each on its own client host (default: 1; ssh: the client hosts of --hosts; aws: ${AWS_CLIENT_MACHINES} machines, as the paper)`,
    )
    .option('--region <region>', 'aws: region (default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1)')
    .option('--instance-type <type>', `aws: replica machines (default ${DEFAULT_REPLICA_TYPE}, as in the paper)`)
    .option('--client-type <type>', `aws: client machines (default ${DEFAULT_CLIENT_TYPE})`)
    .option('--my-ip <cidr>', 'aws: your address; SSH and the harness ports open only to it and the run (or POE_BENCH_MY_IP)')
    .option('--ttl-hours <h>', 'aws: the instances power off (and terminate) after this long (default: 1.5 x the predicted sweep time + 1 h, at least 4)')
    .option('--os <os>', 'aws: image family debian12 (default) or al2023')
    .option('--ami <id>', 'aws: this image instead of the newest of --os')
    .option('--ssh-user <user>', 'aws: login user (default: that of --os)')
    .option('--vpc <id>', 'aws: a VPC other than the default (with --subnet, an EC2 subnet id there)')
    .option('--state-dir <dir>', 'aws: where the run directory (private key, hosts.json) lives while the machines do (default ~/.poe-bench/aws)')
    .option('--yes', 'aws: do not ask before creating the machines')
    .option('--dry-run', 'aws: print the plan and the cost, ask EC2 (DryRun) whether it would work; create nothing')
    .addHelpText(
      'after',
      `\nFigures: ${FIGURE_IDS.map((id) => `${id} (${FIGURES[id].faults})`).join('; ')}.\nThe --link, --hosts, --pin, --cpus, --subnet and --base-image flags are those of \`poe-bench run\` (docs/backends.md).\nExit codes: 0 every run valid, 1 a run failed or was invalid (all is still written), 2 invalid flags, 130 interrupted (finished runs are kept; rerun with --out to resume).`,
    );
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
