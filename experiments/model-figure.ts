/**
 * `poe-bench figure --backend model` (issue 12 item 3): a sweep's run in the cost model through
 * the model's one driver (experiments/model-point.ts modelPoint, as `run --backend model` and
 * `model validate` use it), recorded as a RunRecord marked as modelled (modelMarking).
 *
 * The load is the sweep's: `--clients` logical clients in all (default 24), spread over the
 * testbed's client machines, one batch outstanding each (as the simulator's figure runs have
 * always had it). Figure 11b's primary stops after its batches (replica/byzantine.ts stopAfter),
 * and the run issues those batches on top of --sim-batches.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OpCosts } from '../infra/sim/cost-model.js';
import type { Testbed } from '../infra/sim/testbed.js';
import type { RunMetrics, RunRecord } from '../infra/run/records.js';
import { primaryOf } from '../replica/types.js';
import { modelMarking, pointFigures, pointInputOf, type ModelPointInput, type ModelPointResult } from './model-point.js';
import type { PointPool, PointTask } from './point-pool.js';
import { sensitivityOn, sensitivityVariants, type SensitivityRow } from './sensitivity.js';
import { runKey, specFor, type RunExecutor, type SweepConfig, type SweepRun } from './sweep.js';

/** What every modelled point of a figure shares: the testbed, the calibration's costs and its path. */
export interface ModelSetup {
  readonly testbed: Testbed;
  readonly costs: OpCosts;
  /** The calibration file, as given (recorded with every run). */
  readonly calibration: string;
}

type FigureConfig = Pick<SweepConfig, 'warmupSec' | 'measuredSec' | 'seed' | 'clients' | 'simBatches'>;

/** The model input of one sweep run: its point's spec (experiments/sweep.ts specFor), the sweep's load, `batches` batches (default --sim-batches). */
export function figurePointInput(run: SweepRun, config: FigureConfig, setup: ModelSetup, batches = config.simBatches): ModelPointInput {
  const p = run.point;
  // specFor gives the point's sizes, checkpoint interval, window and seed (seed + repetition);
  // its load and its real-time primary crash are a real run's, replaced below.
  const spec = specFor(run, { warmupSec: config.warmupSec, measuredSec: config.measuredSec, seed: config.seed, clients: config.clients });
  const stopAfter = p.primaryStopsAfter;
  return {
    ...pointInputOf(spec, setup.testbed, setup.costs, batches + (stopAfter ?? 0)),
    records: MODEL_TABLE_RECORDS,
    clients: config.clients,
    warmupShare: config.warmupSec / (config.warmupSec + config.measuredSec),
    crashed: p.crashed,
    ...(stopAfter === undefined ? {} : { faults: [{ replica: primaryOf(0, p.replicas), fault: { kind: 'stopAfter' as const, batches: stopAfter } }] }),
  };
}

/** The runs.jsonl record of a modelled sweep run: figure's record shape, the model's marking and detail. */
export function figureModelRecord(
  run: SweepRun,
  input: ModelPointInput,
  result: ModelPointResult,
  setup: ModelSetup,
  startedAt: string,
): RunRecord & Record<string, unknown> {
  const metrics: RunMetrics | undefined = result.txnPerSec === 0 ? undefined : { ...pointFigures(result), throughputSeries: [...result.throughputSeries] };
  const problems = [...result.violations, ...(metrics === undefined ? ['no transaction was accepted inside the modelled measurement window'] : [])];
  const valid = result.valid && metrics !== undefined;
  const stopAfter = run.point.primaryStopsAfter;
  return {
    experiment: run.experiment,
    pointId: run.pointId,
    point: run.point,
    rep: run.rep,
    valid,
    ...(valid ? {} : { reason: `model: ${problems.slice(0, 3).join('; ')}` }),
    startedAt,
    durationSec: Math.round(result.wallMs) / 1000,
    ...(metrics === undefined ? {} : { metrics }),
    ...modelMarking(setup.testbed.name, setup.calibration),
    model: {
      seed: input.seed,
      batches: input.batches,
      clientMachines: result.clientMachines,
      clientsPerMachine: result.clientsPerMachine,
      acceptedBatches: result.acceptedBatches,
      warmupShare: Math.round(result.warmupShare * 1000) / 1000,
      windowMs: result.windowMs,
      windowEndedBy: result.windowEndedBy,
      tableRecords: input.records,
      virtualTimeMs: result.virtualTimeMs,
      messagesPerBatch: result.messagesPerBatch,
      protocolMessagesPerBatch: result.protocolMessagesPerBatch,
      highestView: result.highestView,
      stopReason: result.stopReason,
      seriesBucketMs: result.seriesBucketMs,
      cpuPercentByNode: result.cpuPercentByNode,
      cpuMsPerBatch: result.cpuMsPerBatch,
      acceptedByPath: result.acceptedByPath,
      simReplay: result.replay,
      ...(stopAfter === undefined ? {} : { primaryStopsAfterBatches: stopAfter }),
    },
  };
}

/**
 * An executor for runSweep (which takes one run at a time, in order) that puts every run still
 * to do on the pool at once, when it is made, so the pool's workers run them side by side; each
 * call then waits for its own run. Work queued on the pool after it (figure 13's sensitivity)
 * runs behind these. Resolves undefined once the signal aborts (the pool is terminated).
 */
export function pooledExecutor(
  toRun: readonly SweepRun[],
  pool: PointPool,
  taskOf: (run: SweepRun) => PointTask,
  recordOf: (run: SweepRun, result: unknown) => RunRecord,
): RunExecutor {
  const pending = new Map<string, Promise<unknown>>();
  /** Results of runs that finished, by run key, until their record is taken. */
  const done = new Map<string, unknown>();
  const submit = (run: SweepRun): Promise<unknown> => {
    const key = runKey(run);
    const p = pool.run(taskOf(run));
    // A run that fails is reported when its turn comes, not as an unhandled rejection before.
    p.then(
      (result) => {
        if (result !== undefined) done.set(key, result);
      },
      () => undefined,
    );
    pending.set(key, p);
    return p;
  };
  for (const r of toRun) submit(r);
  const execute = async (run: SweepRun, signal: AbortSignal): Promise<RunRecord | undefined> => {
    if (signal.aborted) return undefined;
    const key = runKey(run);
    const p = pending.get(key) ?? submit(run);
    pending.delete(key);
    const result = await p;
    done.delete(key);
    // A run that finished is kept even if the signal aborted meanwhile (runSweep records it).
    return result === undefined ? undefined : recordOf(run, result);
  };
  const finished = (run: SweepRun): RunRecord | undefined => {
    const key = runKey(run);
    if (!done.has(key)) return undefined;
    const result = done.get(key);
    done.delete(key);
    pending.delete(key);
    return recordOf(run, result);
  };
  return Object.assign(execute, { finished });
}

/** The sensitivity section's data (issue 12 item 5), beside runs.jsonl: plots/sensitivity.ts reads it into the report. */
export const SENSITIVITY_FILE = 'sensitivity.json';

/**
 * Batches per sensitivity run: fewer than the figure's where the model's numbers no longer move
 * with the run's length (a variant only has to show which way and how far throughput moves), and
 * never more than the figure's (--sim-batches). Measured on c5.2xlarge with the figure's load,
 * every protocol at 4 to 32 replicas (calibration of 2026-12-04, against the figure's 1000):
 * at 300 batches PoE and Zyzzyva are within 1% of their 1000-batch throughput and PBFT within 6%;
 * HotStuff is not: -11% at 4 replicas, -56% at 32 (its modelled throughput still climbs between
 * 1000 and 2000 batches), so HotStuff's sensitivity runs as long as the figure's runs.
 */
export const SENSITIVITY_BATCHES = 300;

/**
 * The YCSB table of a model figure's runs, its sensitivity's included: 1,000 records instead of
 * the paper's 600,000. The model's numbers do not depend on the table's size (execution is
 * charged per transaction and a key has a fixed size; the same throughput, latency and bytes to
 * the last digit for every protocol at 4 and 16 replicas and PBFT at 32, and checked by
 * harness/figure-model.test.ts against a run on the full table), while filling 600,000 records
 * per replica was most of a modelled run's CPU (2 to 3.6 times) and kept figure 13 on
 * c5.2xlarge above two minutes. Each record says so (`model.tableRecords`).
 */
export const MODEL_TABLE_RECORDS = 1000;

/** The batches of one protocol's sensitivity runs: see SENSITIVITY_BATCHES. */
export function sensitivityBatchesFor(protocol: string, figureBatches: number, batches = SENSITIVITY_BATCHES): number {
  return protocol === 'hotstuff' ? figureBatches : Math.min(batches, figureBatches);
}

export interface SensitivityFile {
  readonly testbed: string;
  readonly calibration: string;
  /** Batches of each protocol's runs (sensitivityBatchesFor). */
  readonly batches: Readonly<Record<string, number>>;
  readonly clients: number;
  readonly seed: number;
  /** Records of the YCSB table of its runs (MODEL_TABLE_RECORDS). */
  readonly records: number;
  readonly variants: readonly { readonly label: string; readonly resource: string; readonly more: boolean }[];
  readonly rows: readonly SensitivityRow[];
  /** Seconds the sensitivity's runs took, summed over the workers. */
  readonly runSec: number;
}

/** Whether a figure's model sweep gets a sensitivity section: figure 13 on a testbed whose nodes have their own machines (not `local`, whose nodes share one host). */
export function wantsSensitivity(runs: readonly SweepRun[], setup: ModelSetup): boolean {
  return setup.testbed.sharedHostCores === undefined && runs.some((r) => r.figure === '13');
}

/** The sensitivity's base points: figure 13's points of repetition 0, each with the sweep's load and seed and its protocol's batches. */
export function figureSensitivityBases(
  runs: readonly SweepRun[],
  config: FigureConfig,
  setup: ModelSetup,
  batches = SENSITIVITY_BATCHES,
): { protocol: string; replicas: number; input: ModelPointInput }[] {
  return runs
    .filter((r) => r.figure === '13' && r.rep === 0)
    .map((r) => ({
      protocol: r.point.protocol,
      replicas: r.point.replicas,
      input: figurePointInput(r, config, setup, sensitivityBatchesFor(r.point.protocol, config.simBatches, batches)),
    }));
}

/** A sensitivity file already in `dir` for the same testbed, calibration, load and points, or undefined. */
export function existingSensitivity(
  dir: string,
  expected: Omit<SensitivityFile, 'rows' | 'runSec' | 'variants'>,
  points: readonly string[],
): SensitivityFile | undefined {
  const file = join(dir, SENSITIVITY_FILE);
  if (!existsSync(file)) return undefined;
  try {
    const s = JSON.parse(readFileSync(file, 'utf8')) as SensitivityFile;
    const same =
      s.testbed === expected.testbed &&
      s.calibration === expected.calibration &&
      JSON.stringify(s.batches) === JSON.stringify(expected.batches) &&
      s.clients === expected.clients &&
      s.seed === expected.seed &&
      s.records === expected.records &&
      Array.isArray(s.rows) &&
      s.rows
        .map((r) => `${r.protocol}/${r.replicas}`)
        .sort()
        .join() === [...points].sort().join();
    return same ? s : undefined;
  } catch {
    return undefined;
  }
}

export function readSensitivity(dir: string): SensitivityFile | undefined {
  const file = join(dir, SENSITIVITY_FILE);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as SensitivityFile;
}

/**
 * Figure 13's sensitivity on the pool: every base point and variant queued at once (behind the
 * sweep's runs, so no worker idles while the sweep ends), written to `dir` when all are done.
 * Resolves undefined if the pool was terminated first; reuses a file already in `dir` for the same setup.
 */
export async function runFigureSensitivity(
  dir: string,
  runs: readonly SweepRun[],
  config: FigureConfig,
  setup: ModelSetup,
  pool: PointPool,
  batches = SENSITIVITY_BATCHES,
): Promise<SensitivityFile | undefined> {
  const bases = figureSensitivityBases(runs, config, setup, batches);
  const head = {
    testbed: setup.testbed.name,
    calibration: setup.calibration,
    batches: Object.fromEntries(bases.map((b) => [b.protocol, b.input.batches])),
    clients: config.clients,
    seed: config.seed,
    records: MODEL_TABLE_RECORDS,
  };
  const reused = existingSensitivity(
    dir,
    head,
    bases.map((b) => `${b.protocol}/${b.replicas}`),
  );
  if (reused) return reused;
  const done = await sensitivityOn(pool, bases);
  if (done === undefined) return undefined;
  const file: SensitivityFile = {
    ...head,
    variants: sensitivityVariants(setup.testbed).map(({ label, resource, more }) => ({ label, resource, more })),
    rows: done.rows,
    runSec: done.runSec,
  };
  writeFileSync(join(dir, SENSITIVITY_FILE), `${JSON.stringify(file, null, 2)}\n`);
  return file;
}
