/**
 * The sweep runner behind `poe-bench figure` (issue 5; DESIGN.md "Results"): a figure and a
 * profile become planned runs (figures.ts planRuns), each run becomes a RunSpec for the real
 * harness (infra/run/execute.ts executeRun) or an input for the simulator, and each finished run is
 * appended to runs.jsonl at once, with an fsync, so that a sweep killed at any moment loses
 * no finished point. Rerunning the same sweep into the same directory skips every
 * (experiment, point, repetition) already recorded.
 *
 * The loop itself (`runSweep`) takes the executor as a parameter: the command wires in the
 * real or the simulated backend, tests wire in fakes.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { loadOf, type RunResult } from '../infra/run/execute.js';
import type { InfraSpec } from '../infra/run/placement.js';
import { makeRunSpec, outstandingTxns, RUN_DEFAULTS, type BackendName, type RunSpec } from '../infra/run/spec.js';
import { formatReplicaFault } from '../replica/byzantine.js';
import { primaryOf, type ProtocolName } from '../replica/types.js';
import { BATCH_SIZES, FIGURES, figureOfExperiment, planRuns, PROTOCOL_LABEL, type PlannedRun, type Profile } from './figures.js';
import { latestPerRepetition } from './stats.js';
import { runSaturated, withLoadProbe, type Saturation, type SaturationPolicy, type SpecRunner } from './saturation.js';
import type { FigureId, RunMetrics, RunRecord } from '../infra/run/records.js';
import type { LoadProbe } from '../infra/run/bottleneck.js';

/**
 * Where a sweep's runs go: the simulator, or real processes on one of the run backends
 * (infra/run/launch.ts); `aws` provisions EC2 machines once for the whole sweep and runs
 * every point on them over the ssh backend (harness/figure-command.ts).
 */
export type SweepBackend = 'local' | 'sim' | 'model' | 'netns' | 'docker' | 'ssh' | 'aws';
export const SWEEP_BACKENDS: readonly SweepBackend[] = ['local', 'sim', 'model', 'netns', 'docker', 'ssh', 'aws'];

/** Backends that run in the simulator: `sim` (virtual time, no CPU) and `model` (the calibrated cost model, issue 12). */
export const isSimulatedBackend = (b: SweepBackend): boolean => b === 'sim' || b === 'model';

/**
 * The warm-up a sweep's runs are given: real runs (but figure 11b's, whose warm-up is fixed) a
 * cap (warmupCapSec, the window opening once settled: infra/run/steady.ts), the simulator and
 * the model the nominal warmupSec as a share of their time.
 */
export function runWarmupSec(config: Pick<SweepConfig, 'warmupSec' | 'warmupCapSec'> & Partial<Pick<SweepConfig, 'backend'>>): number {
  return warmupCapOf(config) ?? config.warmupSec;
}

/** The real runs' warm-up cap (runWarmupSec); undefined for the simulator and the model, which have none (and JSON records leave it out). */
export function warmupCapOf(config: Pick<SweepConfig, 'warmupSec' | 'warmupCapSec'> & Partial<Pick<SweepConfig, 'backend'>>): number | undefined {
  return config.backend !== undefined && isSimulatedBackend(config.backend) ? undefined : (config.warmupCapSec ?? config.warmupSec);
}

/** The run backend a sweep backend's points use: aws machines are driven over ssh. */
export function runBackendOf(backend: SweepBackend): BackendName {
  return backend === 'aws' ? 'ssh' : backend === 'sim' || backend === 'model' ? 'local' : backend;
}

/** The EC2 machines of an aws sweep: part of its identity (other types give other numbers). */
export interface SweepMachines {
  readonly region: string;
  readonly instanceType: string;
  readonly clientType: string;
}

/**
 * Figure 11b on real processes: the clients' request timeout and the replicas' view-change
 * timeout (the paper gives neither). The view-0 primary stops after 900 batches, which at 4
 * replicas on a 2-core machine is 0.5 to 2 s into a run; the clients then wait one client
 * timeout before they broadcast their requests, and the backups one view-change timeout before
 * they suspect the primary. With 2 s each the view change begins about 4.5 to 6 s into the run:
 * inside the quick profile's measured window (4 s warm-up + 6 s), with seconds of recovery
 * after it. Measured on this machine: PoE's and PBFT's view changes began 1.2 s into the
 * window and took 0.3 to 0.8 s. With 500 ms each the view change fell in the warm-up, and on a
 * loaded machine PoE ran through several views before it settled. Longer profiles put the
 * failure in their warm-up: their measured throughput is the recovered system's.
 */
export const PRIMARY_FAILURE_TIMEOUTS = { clientTimeoutMs: 2000, viewChangeTimeoutMs: 2000 } as const;

/**
 * Figure 11b on real processes, placed by time (issue 11 item 7): the view-0 primary crashes
 * PRIMARY_CRASH_BEFORE_WINDOW_MS before the measured window opens (at the run's start when the
 * warm-up is shorter), so that, one client timeout and one view-change timeout later, the view
 * change begins about 2 s into the window at every replica count and in every profile. The
 * paper's "up to 900 transactions" (§5.1 (3), line 458) was taken as the failure's place
 * relative to its checkpoints (every 600 requests): after the first stable checkpoint, so that
 * the view change carries the requests since it. Counted in batches (stopAfter:900) it put
 * the failure at a throughput-dependent time: before the window at 4 replicas and after it at 32
 * in the quick profile, where no view change was measured at all. By time, the view change
 * carries whatever the primary ordered since its last checkpoint (0 to 599 batches, about half
 * an interval on average, as the paper's 900 - 600 = 300). The simulator keeps stopAfter:900.
 */
export const PRIMARY_CRASH_BEFORE_WINDOW_MS = 2000;

export function primaryCrashAtMs(warmupSec: number): number {
  return Math.max(0, warmupSec * 1000 - PRIMARY_CRASH_BEFORE_WINDOW_MS);
}

/** Restricts a figure's sweep to some of its points (`--replicas 4,8 --protocols poe,pbft --batches 100`). */
export interface SweepFilter {
  readonly replicas?: readonly number[];
  readonly protocols?: readonly ProtocolName[];
  readonly batches?: readonly number[];
}

export interface SweepConfig {
  /** The figures to run, in order (`figure all`: every one, into one directory). */
  readonly figures: readonly FigureId[];
  /** What the user named: one figure or 'all'; written to the manifest. */
  readonly figureArg: FigureId | 'all';
  readonly profile: Profile;
  readonly reps: number;
  /** Run length; the profile's unless overridden (--warmup, --duration). */
  readonly warmupSec: number;
  /** Real runs' warm-up cap (Profile.warmupCapSec; --warmup sets it too); absent: warmupSec. */
  readonly warmupCapSec?: number;
  readonly measuredSec: number;
  readonly backend: SweepBackend;
  readonly filter: SweepFilter;
  /** Repetition r runs with seed + r: repetitions differ, points of one repetition share their seed. */
  readonly seed: number;
  /** Closed-loop logical clients per run (batch-level; the simulator's, and the real runs' when clientsGiven or no loadTxns). */
  readonly clients: number;
  /** --clients was given: it wins over loadTxns and saturation probing, and is recorded as given. */
  readonly clientsGiven?: boolean;
  /** Real backends: the closed-loop load in transactions a point starts from (DESIGN.md "Workload"); saturation probes raise it. */
  readonly loadTxns?: number;
  /** --load-txns was given: used as is, no probing. */
  readonly loadGiven?: boolean;
  /** Simulator only: batches each run issues (figure 11b adds the batches before the primary stops). */
  readonly simBatches: number;
  /** Rerun repetitions recorded as failed or invalid instead of skipping them. */
  readonly retryFailed: boolean;
  /** Real backends: emulated links, canonical --link text (default 'none'). */
  readonly link?: string;
  /** Real backends: --hosts, --pin, --cpus, --subnet, --base-image (infra/run/placement.ts); aws sets hosts once its machines are up. */
  readonly infra?: InfraSpec;
  /** Client processes (client machines) per run (default 1). */
  readonly clientProcs?: number;
  /** aws: the region and instance types. */
  readonly machines?: SweepMachines;
  /** --backend model: the testbed profile (local, c5.2xlarge, c5.2xlarge-pipeline or a file) and the calibration file. */
  readonly testbed?: string;
  readonly calibration?: string;
}

/** Batches per simulated run, by profile: long enough for a steady state, short enough for a preview. */
export const SIM_BATCHES: Readonly<Record<Profile['name'], number>> = { quick: 300, default: 1000, paper: 3000 };

/** One run of a sweep: a planned run of one figure. */
export interface SweepRun extends PlannedRun {
  readonly figure: FigureId;
  readonly experiment: string;
}

export class SweepConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SweepConfigError';
  }
}

function matches(filter: SweepFilter, run: PlannedRun): boolean {
  const p = run.point;
  if (filter.replicas !== undefined && !filter.replicas.includes(p.replicas)) return false;
  if (filter.protocols !== undefined && !filter.protocols.includes(p.protocol)) return false;
  if (filter.batches !== undefined && !filter.batches.includes(p.batch)) return false;
  return true;
}

/** Every run of the sweep, figure by figure, each figure repetition-major (planRuns). */
export function planSweep(config: Pick<SweepConfig, 'figures' | 'profile' | 'reps' | 'filter'>): SweepRun[] {
  const out: SweepRun[] = [];
  for (const id of config.figures) {
    const fig = FIGURES[id];
    for (const run of planRuns(fig, config.profile, config.reps)) {
      if (matches(config.filter, run)) out.push({ ...run, figure: id, experiment: fig.experiment });
    }
  }
  if (out.length === 0) {
    throw new SweepConfigError(`no point of figure ${config.figures.join(', ')} matches the filters (${describeFilter(config.filter) || 'none'})`);
  }
  return out;
}

export function describeFilter(filter: SweepFilter): string {
  const parts: string[] = [];
  if (filter.replicas !== undefined) parts.push(`--replicas ${filter.replicas.join(',')}`);
  if (filter.protocols !== undefined) parts.push(`--protocols ${filter.protocols.join(',')}`);
  if (filter.batches !== undefined) parts.push(`--batches ${filter.batches.join(',')}`);
  return parts.join(' ');
}

/** The identity a resumed sweep skips on: experiment, point and repetition. */
export function runKey(r: Pick<RunRecord, 'experiment' | 'pointId' | 'rep'>): string {
  return `${r.experiment}\u0000${r.pointId}\u0000${r.rep}`;
}

/** "PoE n=16 crashed=1 batch=100 rep 2" for progress lines. */
export function describeRun(run: SweepRun, reps?: number): string {
  const p = run.point;
  const stop = p.primaryStopsAfter === undefined ? '' : ` primary stops after ${p.primaryStopsAfter}`;
  const rep = reps === undefined || reps > 1 ? ` rep ${run.rep + 1}${reps === undefined ? '' : `/${reps}`}` : '';
  return `fig ${run.figure}: ${PROTOCOL_LABEL[p.protocol]} n=${p.replicas} crashed=${p.crashed} batch=${p.batch}${stop}${rep}`;
}

/**
 * The RunSpec of a run on the real harness: the point, the profile's run length, the figure's
 * checkpoint interval; for figure 11b, the view-0 primary wrapped to stop after the point's
 * batches (replica/byzantine.ts stopAfter) and PRIMARY_FAILURE_TIMEOUTS.
 */
export function specFor(
  run: SweepRun,
  config: Pick<SweepConfig, 'warmupSec' | 'measuredSec' | 'seed' | 'clients'> &
    Partial<Pick<SweepConfig, 'warmupCapSec' | 'backend' | 'link' | 'infra' | 'clientProcs' | 'loadTxns' | 'clientsGiven'>>,
  loadTxns?: number,
): RunSpec {
  const p = run.point;
  const primaryFailure =
    p.primaryStopsAfter === undefined
      ? {}
      : {
          faults: [{ replica: primaryOf(0, p.replicas), fault: { kind: 'crashAt' as const, atMs: primaryCrashAtMs(config.warmupSec) } }],
          ...PRIMARY_FAILURE_TIMEOUTS,
        };
  return makeRunSpec({
    ...primaryFailure,
    protocol: p.protocol,
    replicas: p.replicas,
    crashed: p.crashed,
    batch: p.batch,
    // At least one logical client per replica: HotStuff's parallel leaders each serve their own
    // clients, and a leader without any fills its slots with no-ops (the paper's 200K clients
    // kept every leader busy). In transactions (the load is the same at every batch size):
    // startLoadTxns, at least one request per replica and a full pipeline per HotStuff leader.
    ...(config.loadTxns !== undefined && !config.clientsGiven
      ? { loadTxns: Math.max(loadTxns ?? startLoadTxns(run, config.loadTxns), p.replicas * p.batch) }
      : { clients: Math.max(config.clients, p.replicas) }),
    // Figure 11b's warm-up is fixed (its crash is placed just before the window); the others' is a cap.
    warmupS: p.primaryStopsAfter === undefined ? runWarmupSec(config) : config.warmupSec,
    durationS: config.measuredSec,
    seed: config.seed + run.rep,
    checkpointInterval: FIGURES[run.figure].checkpointInterval,
    backend: runBackendOf(config.backend ?? 'local'),
    ...(config.link === undefined ? {} : { link: config.link }),
    ...(config.infra === undefined ? {} : { infra: config.infra }),
    ...(config.clientProcs === undefined ? {} : { clientProcs: config.clientProcs }),
  });
}

/** The spec shared by a sweep's runs, with the fields that vary per run named (manifest.json). */
export function specTemplate(config: SweepConfig): Record<string, unknown> {
  const first = planSweep(config)[0]!;
  const spec = specFor(first, config);
  const with11b = config.figures.includes('11b');
  const stopsAfter = FIGURES['11b'].points()[0]!.primaryStopsAfter!;
  return {
    ...spec,
    backend: config.backend,
    variesPerRun: [
      'protocol',
      'replicas',
      'crashed',
      'crashedReplicas',
      'batch',
      'seed',
      'keySeed',
      ...(with11b && config.figures.length > 1 ? ['faults', 'clientTimeoutMs', 'viewChangeTimeoutMs'] : []),
    ],
    seedRule: `seed = ${config.seed} + repetition; keySeed = poe-bench-run-<seed>`,
    ...(with11b ? { primaryFailure: primaryFailureNote(config.backend, stopsAfter, config.warmupSec) } : {}),
  };
}

/** What figure 11b's runs do, for the manifest: the fault, the checkpoints and the timeouts. */
export function primaryFailureNote(backend: SweepBackend, stopsAfter: number, warmupSec = 0): Record<string, unknown> {
  const checkpointIntervalK = FIGURES['11b'].checkpointInterval;
  if (isSimulatedBackend(backend))
    return {
      fault: `the view-0 primary stops after ${stopsAfter} requests (client batches, i.e. sequence numbers), then stays silent`,
      checkpointIntervalK,
      how: 'replica 0 wrapped in stopAfter in the simulator; timeouts are the simulator defaults',
    };
  const atMs = primaryCrashAtMs(warmupSec);
  return {
    fault: `the view-0 primary crashes ${atMs} ms after its start, ${PRIMARY_CRASH_BEFORE_WINDOW_MS} ms before the measured window (or at the start of a shorter warm-up)`,
    checkpointIntervalK,
    faults: [formatReplicaFault({ replica: 0, fault: { kind: 'crashAt', atMs } })],
    ...PRIMARY_FAILURE_TIMEOUTS,
    paper900: `the paper's "up to ${stopsAfter} transactions" (§5.1, line 458) read as the failure's place after the first checkpoint (every ${checkpointIntervalK} requests); placed by time here so that the view change falls inside the window at every replica count and profile (experiments/sweep.ts primaryCrashAtMs)`,
    why: 'one client timeout plus one view-change timeout after the crash, the view change begins about 2 s into the window; a point without one is flagged and not judged',
    command: `poe-bench run --warmup ${warmupSec} --faults primary=crashAt:${atMs} --checkpoint-interval ${checkpointIntervalK} --client-timeout-ms ${PRIMARY_FAILURE_TIMEOUTS.clientTimeoutMs} --view-change-timeout-ms ${PRIMARY_FAILURE_TIMEOUTS.viewChangeTimeoutMs}`,
  };
}

const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** A finished run of the real harness as a runs.jsonl line: the RunRecord plus the run's detail. */
export function recordFromRunResult(run: SweepRun, result: RunResult, backend: SweepBackend = 'local'): RunRecord & Record<string, unknown> {
  const m = result.metrics;
  const metrics: RunMetrics | undefined =
    m === undefined
      ? undefined
      : {
          throughputTxnPerSec: m.throughputTxnPerSec,
          latencyMs: m.latencyMs,
          messagesPerSec: m.messagesPerSec,
          bytesPerSec: m.bytesPerSec,
          viewChanges: m.viewChanges,
          rollbacks: m.rollbacks,
          clientTimeouts: m.clientTimeouts,
          throughputSeries: m.throughputSeries,
          ...(m.viewChangeMs === undefined ? {} : { viewChangeMs: m.viewChangeMs }),
        };
  return {
    experiment: run.experiment,
    pointId: run.pointId,
    point: run.point,
    rep: run.rep,
    valid: result.valid,
    ...(result.valid ? {} : { reason: result.reason ?? 'invalid (no reason given by the harness)' }),
    startedAt: result.startedAt,
    durationSec: round(result.durationSec),
    ...(metrics === undefined ? {} : { metrics }),
    backend,
    failed: result.failed,
    violations: result.violations,
    implausible: result.implausible,
    ...(m === undefined
      ? {}
      : {
          acceptedTxns: m.acceptedTxns,
          windowSec: m.windowSec,
          processes: m.processes,
          acceptedByPath: m.acceptedByPath,
          replicaViews: m.replicaViews,
          ...(m.viewChangeStartSec === undefined ? {} : { viewChangeStartSec: m.viewChangeStartSec, viewChangeEndSec: m.viewChangeEndSec }),
        }),
    ...loadOf(result.spec),
    ...(result.bottleneck ? { bottleneck: result.bottleneck } : {}),
    ...(result.steady ? { steady: result.steady } : {}),
    spec: result.spec,
  };
}

/** A run that could not be attempted or did not complete, as a runs.jsonl line. */
export function failedRecord(
  run: SweepRun,
  reason: string,
  backend: SweepBackend,
  startedAt = new Date().toISOString(),
  durationSec = 0,
): RunRecord & Record<string, unknown> {
  return {
    experiment: run.experiment,
    pointId: run.pointId,
    point: run.point,
    rep: run.rep,
    valid: false,
    reason,
    startedAt,
    durationSec: round(durationSec),
    backend,
    failed: true,
  };
}

// ---------------------------------------------------------------------------------------
// runs.jsonl and manifest.json

export const RUNS_FILE = 'runs.jsonl';
export const MANIFEST_FILE = 'manifest.json';

/**
 * Appends one line and fsyncs it before returning: once a run is reported done, a crash of the
 * machine cannot take it back. One write call per line, so an interrupted append leaves at
 * worst an unterminated last line, which the reader drops (experiments/runs.ts).
 */
export function appendRecord(dir: string, record: RunRecord): void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, RUNS_FILE);
  dropUnterminatedTail(path);
  const fd = openSync(path, 'a');
  try {
    writeSync(fd, `${JSON.stringify(record)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Cuts an unterminated last line (a sweep killed mid-append): it is an incomplete record the
 * reader already ignores, and appending after it would turn it into a corrupt middle line.
 */
function dropUnterminatedTail(path: string): void {
  if (!existsSync(path)) return;
  const text = readFileSync(path);
  if (text.length === 0 || text[text.length - 1] === 0x0a) return;
  truncateSync(path, text.lastIndexOf(0x0a) + 1);
}

/** What a resumed sweep must share with the sweep that made the directory, or its numbers would not be comparable. */
export interface SweepIdentity {
  readonly backend: SweepBackend;
  readonly warmupSec: number;
  /** Real backends: the warm-up cap, which came with the memory rule (infra/run/steady.ts); a directory without it was measured before, and is refused. */
  readonly warmupCapSec?: number;
  readonly measuredSec: number;
  readonly clients: number;
  readonly simBatches?: number;
  /** Present only when they differ from the defaults, so directories written before them still resume. */
  readonly link?: string;
  readonly clientProcs?: number;
  readonly instanceType?: string;
  readonly clientType?: string;
  readonly testbed?: string;
  readonly calibration?: string;
}

export function identityOf(config: SweepConfig): SweepIdentity {
  return {
    backend: config.backend,
    warmupSec: config.warmupSec,
    warmupCapSec: warmupCapOf(config),
    measuredSec: config.measuredSec,
    clients: config.clients,
    ...(isSimulatedBackend(config.backend) ? { simBatches: config.simBatches } : {}),
    ...(config.backend === 'model' ? { testbed: config.testbed, calibration: config.calibration } : {}),
    ...(config.link !== undefined && config.link !== 'none' ? { link: config.link } : {}),
    ...(config.clientProcs !== undefined && config.clientProcs !== 1 ? { clientProcs: config.clientProcs } : {}),
    ...(config.machines ? { instanceType: config.machines.instanceType, clientType: config.machines.clientType } : {}),
  };
}

/**
 * Differences between the sweep asked for and the one that wrote `manifest`; empty when the
 * directory may be resumed. A directory without a manifest, or one from another tool, has no
 * `sweep` entry and is accepted.
 */
export function incompatibilities(manifest: unknown, config: SweepConfig): string[] {
  if (typeof manifest !== 'object' || manifest === null) return [];
  const sweep = (manifest as { sweep?: unknown }).sweep;
  if (typeof sweep !== 'object' || sweep === null) return [];
  const old = sweep as Record<string, unknown>;
  const now = identityOf(config) as unknown as Record<string, unknown>;
  const out: string[] = [];
  for (const key of [
    'backend',
    'warmupSec',
    'warmupCapSec',
    'measuredSec',
    'clients',
    'simBatches',
    'link',
    'clientProcs',
    'instanceType',
    'clientType',
    'testbed',
    'calibration',
  ]) {
    if (old[key] === now[key]) continue;
    const had =
      key === 'warmupCapSec' && old[key] === undefined
        ? "none (its runs' windows opened without waiting for the processes' memory to settle)"
        : String(old[key]);
    out.push(`${key}: the directory has ${had}, this sweep asks for ${String(now[key])}`);
  }
  return out;
}

/** manifest.json of a sweep directory: written once, when the directory is created. */
export function sweepManifest(config: SweepConfig, env: Record<string, unknown>, startedAt: string, argv: readonly string[]): Record<string, unknown> {
  const sim = isSimulatedBackend(config.backend);
  const model = config.backend === 'model';
  return {
    experiment: config.figureArg === 'all' ? 'figure-all' : FIGURES[config.figureArg].experiment,
    figure: config.figureArg,
    figures: config.figures,
    profile: config.profile.name,
    profileDef: {
      ...config.profile,
      warmupSec: config.warmupSec,
      warmupCapSec: warmupCapOf(config),
      measuredSec: config.measuredSec,
      reps: config.reps,
    },
    startedAt,
    ...env,
    backend: config.backend,
    hosts: sim ? [] : [RUN_DEFAULTS.host],
    sweep: identityOf(config),
    filter: config.filter,
    command: ['poe-bench', ...argv].join(' '),
    spec: specTemplate(config),
    seeds: {
      base: config.seed,
      rule: sim
        ? 'repetition r simulates with seed base + r (network, client keys); every random choice derives from it'
        : 'repetition r runs with seed base + r: client process o draws keys with seed + o; key material from keySeed poe-bench-run-<seed>',
    },
    ...(model
      ? {
          modelled: true,
          testbed: config.testbed,
          calibration: config.calibration,
          notes: [
            `MODELLED: every run of this directory ran in the calibrated cost model (poe-bench figure --backend model --testbed ${config.testbed}): the simulator running the real cores, each step charged the CPU its counted operations cost (calibration ${config.calibration}), on the testbed's cores and NICs.`,
            `Throughput and latency are PREDICTIONS for the testbed ${config.testbed}, not measurements; see the model validation table for how far the model was from real runs on this machine.`,
            `Each run issues a fixed number of batches (${config.simBatches}); the first ${round((100 * config.warmupSec) / (config.warmupSec + config.measuredSec), 1)}% of its time is warm-up, the profile's share.`,
          ],
        }
      : sim
        ? {
            notes: [
              'SIMULATED: every run of this directory ran in the deterministic simulator (poe-bench figure --backend sim), not on real processes.',
              'Throughput, latency and messages/s are in VIRTUAL time: the simulated network delays messages but processing costs no time, so the numbers preview message patterns and view changes, not what a machine attains.',
              `Each run issues a fixed number of batches (${config.simBatches}; figure 11b adds the batches before the primary stops); the first ${round((100 * config.warmupSec) / (config.warmupSec + config.measuredSec), 1)}% of virtual time is warm-up, the profile's share. Messages/s counts the whole run.`,
            ],
          }
        : {}),
  };
}

export function writeManifestOnce(dir: string, manifest: Record<string, unknown>): boolean {
  const path = join(dir, MANIFEST_FILE);
  if (existsSync(path)) return false;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path, `${JSON.stringify(manifest, null, 2)}\n`);
  return true;
}

// ---------------------------------------------------------------------------------------
// The loop

/** Runs one planned run; returns its record, or undefined when it was interrupted (nothing to record). */
export type RunExecutor = ((run: SweepRun, signal: AbortSignal, onPhase: (text: string) => void) => Promise<RunRecord | undefined>) & {
  /**
   * An executor that runs points ahead of the one asked for (a pool of workers): the record of
   * `run` if it has already finished, without waiting. On an interrupt the sweep keeps these:
   * nothing already measured is lost.
   */
  readonly finished?: (run: SweepRun) => RunRecord | undefined;
};

export interface SweepListener {
  /** Before the first run: the plan, and what is already done. */
  onPlan?(info: { readonly planned: number; readonly skipped: number; readonly toRun: readonly SweepRun[] }): void;
  onRunStart?(run: SweepRun, index: number, of: number): void;
  onPhase?(text: string): void;
  onRunEnd?(run: SweepRun, record: RunRecord, wallSec: number): void;
}

export interface SweepOutcome {
  readonly planned: number;
  readonly skipped: number;
  /** Runs done (and recorded) by this invocation. */
  readonly ran: number;
  readonly interrupted: boolean;
}

/** Runs still to do: the planned runs with no record yet (or only failed ones, with retryFailed). */
export function remainingRuns(runs: readonly SweepRun[], existing: readonly RunRecord[], retryFailed: boolean): SweepRun[] {
  const done = new Set<string>();
  for (const r of latestPerRepetition(existing)) if (r.valid || !retryFailed) done.add(runKey(r));
  return runs.filter((run) => !done.has(runKey(run)));
}

/**
 * Runs what is left of `runs`, appending each record the moment its run ends. Stops, without
 * recording, when `signal` aborts: the run in progress is killed by its executor and is done
 * again on resume. A failed run is recorded with its reason and the sweep goes on.
 */
export async function runSweep(
  runs: readonly SweepRun[],
  existing: readonly RunRecord[],
  io: {
    readonly dir: string;
    readonly backend: SweepBackend;
    readonly execute: RunExecutor;
    readonly signal: AbortSignal;
    readonly retryFailed: boolean;
    readonly listener?: SweepListener;
  },
): Promise<SweepOutcome> {
  const toRun = remainingRuns(runs, existing, io.retryFailed);
  const skipped = runs.length - toRun.length;
  io.listener?.onPlan?.({ planned: runs.length, skipped, toRun });
  let ran = 0;
  // Interrupted: the records of runs a pooled executor already finished ahead are kept too.
  const interrupted = (from: number): SweepOutcome => {
    for (const run of toRun.slice(from)) {
      const record = io.execute.finished?.(run);
      if (record === undefined) continue;
      appendRecord(io.dir, record);
      ran++;
    }
    return { planned: runs.length, skipped, ran, interrupted: true };
  };
  for (const [i, run] of toRun.entries()) {
    if (io.signal.aborted) return interrupted(i);
    io.listener?.onRunStart?.(run, i, toRun.length);
    const t0 = Date.now();
    let record: RunRecord | undefined;
    try {
      record = await io.execute(run, io.signal, (text) => io.listener?.onPhase?.(text));
    } catch (err) {
      // An executor that throws is a failed point, not a failed sweep (issue 5: "the sweep goes on").
      record = io.signal.aborted
        ? undefined
        : failedRecord(run, `the sweep could not run this point: ${(err as Error).message}`, io.backend, new Date(t0).toISOString(), (Date.now() - t0) / 1000);
    }
    if (record === undefined) return interrupted(i);
    if (io.signal.aborted) {
      // A real run cut short by the interrupt is not kept; a pooled run that had finished is.
      if (io.execute.finished === undefined) return interrupted(i);
      appendRecord(io.dir, record);
      ran++;
      return interrupted(i + 1);
    }
    appendRecord(io.dir, record);
    ran++;
    io.listener?.onRunEnd?.(run, record, (Date.now() - t0) / 1000);
  }
  return { planned: runs.length, skipped, ran, interrupted: false };
}

/** The planned runs whose latest record is failed or invalid, or that have none, after a sweep. */
export function unsuccessful(runs: readonly SweepRun[], records: readonly RunRecord[]): { missing: SweepRun[]; bad: RunRecord[] } {
  const latest = new Map(latestPerRepetition(records).map((r) => [runKey(r), r]));
  const missing: SweepRun[] = [];
  const bad: RunRecord[] = [];
  for (const run of runs) {
    const r = latest.get(runKey(run));
    if (r === undefined) missing.push(run);
    else if (!r.valid || r.metrics === undefined) bad.push(r);
  }
  return { missing, bad };
}

// ---------------------------------------------------------------------------------------
// Time estimates for the progress bar

/**
 * A rough wall time of one run before any has been timed: the run length plus start-up and
 * teardown, which grow with the processes started (measured on a 2-core machine: about 13 s
 * of overhead at 32 replicas). Simulated runs cost CPU per message, about n^2 per batch.
 */
export function predictedRunSec(run: SweepRun, config: Pick<SweepConfig, 'backend' | 'warmupSec' | 'warmupCapSec' | 'measuredSec' | 'simBatches'>): number {
  const n = run.point.replicas;
  if (isSimulatedBackend(config.backend)) {
    const batches = config.simBatches + (run.point.primaryStopsAfter ?? 0);
    return 0.5 + (batches * n * n) / 100_000;
  }
  // ssh (and aws, over ssh): logging in and checking the shipped build on every host.
  const remote = config.backend === 'ssh' || config.backend === 'aws' ? 5 : 0;
  // The warm-up's cap: an upper bound, as an AWS budget must be (the window opens once settled).
  return runWarmupSec(config) + config.measuredSec + 2 + 0.4 * n + remote;
}

/** Remaining seconds: predictions scaled by how the runs so far compared with theirs. */
export class EtaEstimator {
  private actualSec = 0;
  private predictedSec = 0;
  constructor(private readonly predict: (run: SweepRun) => number) {}
  record(run: SweepRun, wallSec: number): void {
    this.actualSec += wallSec;
    this.predictedSec += this.predict(run);
  }
  remainingSec(left: readonly SweepRun[]): number {
    const scale = this.predictedSec > 0 ? this.actualSec / this.predictedSec : 1;
    return left.reduce((s, r) => s + this.predict(r), 0) * scale;
  }
}

/** 75 -> "1m15s", 3725 -> "1h02m". */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return '?';
  const s = Math.round(sec);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

// ---------------------------------------------------------------------------------------
// Saturation (experiments/saturation.ts): which load each point runs at

/**
 * Where a sweep's closed loop starts, in transactions outstanding: 24 requests of 100, the
 * harness's earlier 24 clients (issue 11 measured PoE at n = 4 within 6% of its best there);
 * probes raise it. Measured on this machine (2 cores shared with other programs), PoE n = 4
 * ran slower from 4800 than from 2400 (ABBA, 3 s + 4 s runs: 44,400 and 34,200 txn/s at 2400,
 * 29,025 and 28,800 at 4800), and probes only ever raise the load.
 */
export const FIGURE_LOAD_TXNS = 2400;

/**
 * Requests outstanding per leader that HotStuff's parallel leaders start from (issue 10 item 2:
 * "figure runs give every leader enough load to keep its pipeline full"): a slot passes four
 * phases (prepare, pre-commit, commit, decide) and a leader proposes slots ahead of execution
 * (hotstuff-parallel.ts). The more slots a leader has in flight, the more of its phase messages
 * and of the votes answering them leave in one socket write and are handled in one wake-up.
 * Measured at n = 16 (machine shared with other work, load average 20-35, client timeout fixed
 * at 60 s so that no retransmission counts, runs interleaved, CPU of all processes per accepted
 * batch): 4 per leader 20.05, 21.25, 17.72, 20.19, 18.72 ms (mean 19.6), 8 per leader 14.69,
 * 14.34, 17.55, 18.64, 15.70, 18.70 ms (mean 16.6); at n = 4, 6 per leader (the sweep's 2400
 * txns) 3.49 and 3.65 ms, 8 per leader 3.37 and 3.32 ms. Earlier
 * (issue 10 notes): 1.5 per leader 22.0-22.7 ms, 4 per leader 20.1-20.8 ms. A CPU-bound point
 * is probed at double load like any other (experiments/saturation.ts). Single-leader
 * protocols already give their one leader every request outstanding (24 at the default load).
 */
export const HOTSTUFF_REQUESTS_PER_LEADER = 8;

/**
 * HotStuff's requests in flight times replicas, at most: n = 32 starts at 64 requests (two per
 * leader), n = 16 at 128, n <= 8 at HOTSTUFF_REQUESTS_PER_LEADER per leader. The client's
 * first requests time out after the run's initial client timeout (2 s) before it has seen any
 * latency to adapt to (client/core.ts adaptiveTimeout), and in a closed loop the latency is
 * the load over the throughput (Little's law); a slot's messages and verifications grow with
 * n (paper rule: 22 verifications at n = 4, 106 at n = 16, replica/hotstuff.ts), so the
 * throughput falls about as 1/n and the load that keeps one latency does too. At n = 32, 128
 * requests (12,800 txns) in flight gave 2.0 s of latency (so about 6,400 txn/s) and 220
 * client timeouts on healthy replicas (issue 10 notes, quiet machine); 64 requests gave 1.10 s
 * and no client timeout (figure 13 --quick on a quiet machine, 2026-12-04 23:41, README).
 */
export const HOTSTUFF_START_REQUESTS_TIMES_N_MAX = 2048;

/**
 * A point's starting load: at least one request per replica, and for HotStuff, whose parallel
 * leaders each serve their own clients (a leader without any fills its slots with no-ops),
 * HOTSTUFF_REQUESTS_PER_LEADER per replica, at most HOTSTUFF_START_REQUESTS_TIMES_N_MAX / n
 * in all; in figure 12, one load for every batch size, so counted in requests of the largest
 * batch, one per replica.
 */
export function startLoadTxns(run: Pick<SweepRun, 'figure' | 'point'>, loadTxns: number): number {
  const batch = run.figure === '12' ? Math.max(...BATCH_SIZES) : run.point.batch;
  const n = run.point.replicas;
  // Not in figure 12: its one load serves batch 10 to 300, and eight requests of 300 per leader
  // would put 240 per leader in flight at batch 10.
  if (run.point.protocol !== 'hotstuff' || run.figure === '12') return Math.max(loadTxns, n * batch);
  const requests = Math.max(n, Math.min(n * HOTSTUFF_REQUESTS_PER_LEADER, Math.floor(HOTSTUFF_START_REQUESTS_TIMES_N_MAX / n)));
  return Math.max(loadTxns, requests * batch);
}

/** The probing a profile allows: quick keeps to one doubling and 3-second probes (figure 13 --quick stays within minutes). */
export function saturationPolicy(config: Pick<SweepConfig, 'profile' | 'measuredSec'>): SaturationPolicy {
  const maxDoublings = config.profile.name === 'quick' ? 1 : config.profile.name === 'default' ? 2 : 3;
  return { maxDoublings, probeMeasuredSec: Math.max(2, Math.min(config.measuredSec / 2, 10)) };
}

/**
 * The points that share one load: a point's repetitions; and in figure 12 all batch sizes of a
 * protocol, since a batch sweep holds the load in transactions fixed (DESIGN.md "Workload").
 */
export function loadGroup(run: Pick<SweepRun, 'figure' | 'experiment' | 'pointId' | 'point'>): string {
  return run.figure === '12' ? `${run.experiment}/${run.point.protocol}` : run.pointId;
}

/**
 * The loads earlier runs of a sweep settled on, by load group (a resumed sweep keeps them): a
 * probed load, and the repetitions that reused it. Records from before issue 10's rule may say
 * 'cpu-full' (a CPU-bound load taken as saturated without a probe): neither it nor the
 * repetitions that reused it are kept, so the point is probed again.
 */
export function chosenLoadsFrom(records: readonly RunRecord[]): Map<string, number> {
  const out = new Map<string, number>();
  const unprobed = new Set<string>();
  for (const r of records) {
    const sat = (r as RunRecord & { saturation?: Saturation }).saturation;
    const figure = figureOfExperiment(r.experiment);
    if (!r.valid || sat === undefined || figure === undefined) continue;
    const group = loadGroup({ figure, experiment: r.experiment, pointId: r.pointId, point: r.point });
    const how: string = sat.how;
    if (how === 'cpu-full') {
      unprobed.add(group);
      out.delete(group);
    } else if (how === 'probed') {
      unprobed.delete(group);
      out.set(group, sat.loadTxns);
    } else if (how === 'reused' && !unprobed.has(group)) out.set(group, sat.loadTxns);
  }
  return out;
}

/**
 * One point of a real-backend sweep at its saturation: the run and its record with `saturation`.
 * `runSpec` runs one spec (executeRun with the sweep's signal and logs); `chosen` remembers the
 * load each point settled on, so later repetitions reuse it; `probed` remembers the probe that
 * settled it, so that a later repetition's bottleneck verdict (infra/run/bottleneck.ts) reads
 * repetition 1's probe at the same load (not across figure 12's batch sizes: another point).
 * A resumed sweep does not have it: its reused repetitions are said to be not probed.
 */
export async function runPointSaturated(
  run: SweepRun,
  config: SweepConfig,
  runSpec: SpecRunner,
  chosen: Map<string, number>,
  probed: Map<string, LoadProbe>,
): Promise<{ result: RunResult; spec: RunSpec; saturation: Saturation } | undefined> {
  const fixed = (how: Saturation['how'], note: string, loadTxns?: number, probe?: LoadProbe) => async () => {
    const spec = specFor(run, config, loadTxns);
    const measured = await runSpec(spec, 'run');
    if (measured.interrupted) return undefined;
    const result = probe === undefined ? measured : withLoadProbe(measured, probe);
    const load = outstandingTxns(spec) ?? 0;
    return { result, spec, saturation: { loadTxns: load, how, saturated: null, probes: [], note } };
  };
  if (config.clientsGiven) return fixed('given', `--clients ${config.clients} as given (batch-level closed loop), not probed`)();
  if (config.loadTxns === undefined) return fixed('given', 'no load in transactions configured, not probed')();
  if (config.loadGiven) return fixed('given', `--load-txns ${config.loadTxns} as given, not probed`)();
  if (run.point.primaryStopsAfter !== undefined) return fixed('unprobed', 'figure 11b: a primary failure at a fixed place is the point; not probed')();
  const group = loadGroup(run);
  const earlier = chosen.get(group);
  if (earlier !== undefined) {
    const whose = run.figure === '12' ? `${run.point.protocol}'s first batch size` : 'repetition 1';
    const probe = probed.get(group);
    return fixed('reused', `the load ${whose} settled on (${earlier} txns), held`, earlier, probe)();
  }
  const start = specFor(run, config).loadTxns ?? config.loadTxns;
  const atLoad = (loadTxns: number, measuredSec?: number): RunSpec => specFor(run, measuredSec === undefined ? config : { ...config, measuredSec }, loadTxns);
  const out = await runSaturated(start, atLoad, runSpec, saturationPolicy(config));
  if (!out) return undefined;
  chosen.set(group, out.saturation.loadTxns);
  const probe = out.result.bottleneckInput?.loadProbe;
  // Figure 12's groups span batch sizes: a probe at one batch size says nothing of another.
  if (probe !== undefined && run.figure !== '12') probed.set(group, { ...probe, whose: "repetition 1's" });
  return { result: out.result, spec: out.result.spec, saturation: out.saturation };
}
