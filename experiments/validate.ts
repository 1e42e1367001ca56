/**
 * `poe-bench model validate` (issue 12 item 4): runs points for real on the local backend and in
 * the cost model with `--testbed local`, and reports the error per point (throughput and mean
 * latency) and whether the model orders the protocols as the real runs do. The points are at
 * n = 4, 8, 16; the calibration's fit points are at other n (experiments/calibrate.ts), so the
 * model is judged on configurations it was not fitted to. The check is on n alone, whatever the
 * client processes of either: a fit point and a validation point at the same n share every
 * replica-side count, so a different client setting would not make the validation independent.
 *
 * `clientProcs` (default 1, what validation always ran before): the real runs spread their
 * logical clients over that many client processes (`run --client-procs`), and the model gets
 * the same (model-point.ts clientProcs), so the one client process's serial stage can be taken
 * out of both sides (infra/run/bottleneck.ts). Recorded in every point and in the summary.
 */
import { cpus } from 'node:os';
import { executeRun, type RunOptions } from '../infra/run/execute.js';
import { makeRunSpec } from '../infra/run/spec.js';
import type { CalibrationFile } from '../infra/sim/calibration.js';
import { localTestbed } from '../infra/sim/testbed.js';
import type { ProtocolName } from '../replica/types.js';
import type { ProcessFigures } from '../infra/run/metrics.js';
import { MODEL_RUN_DURATION_S, MODEL_RUN_WARMUP_S } from './calibrate.js';
import { type ModelIo, modelPoint, pointInputOf } from './model-point.js';

export interface ValidationPoint {
  readonly protocol: string;
  readonly replicas: number;
  /** Client processes the logical clients were spread over, in the real run and in the model; absent in validations before it was recorded (1 then). */
  readonly clientProcs?: number;
  readonly realTxnPerSec: number;
  readonly modelTxnPerSec: number;
  /** (model - real) / real, percent. */
  readonly errorPercent: number;
  readonly realLatencyMs: number;
  readonly modelLatencyMs: number;
  readonly latencyErrorPercent: number;
  readonly realValid: boolean;
  readonly modelValid: boolean;
  /**
   * The real run's warm-up (s), whether it was in steady state (infra/run/steady.ts: throughput and
   * memory settled, no drift) and, if not, why; absent in validations before they were recorded.
   * The model predicts a steady state, so a real run that was not in one is not a fair comparison.
   */
  readonly realWarmupSec?: number;
  readonly realSteady?: boolean;
  readonly realSteadyFlags?: readonly string[];
  /** Cores the real run's processes got together (sum of their CPU% / 100): how much of the machine was theirs. */
  readonly realCpuCores: number;
  /**
   * CPU ms per accepted batch over every process, real (CPU% x window / batches) and modelled:
   * what the model predicts independently of how much of a shared machine a run got.
   */
  readonly realCpuMsPerBatch: number;
  readonly modelCpuMsPerBatch: number;
  readonly cpuErrorPercent: number;
  /**
   * Cores the model gave the point's host: the machine's, lowered to
   * what other work left of the machine during the real run's window (machine CPU from
   * /proc/stat minus the run's own processes), so that a busy machine is modelled as it was.
   */
  readonly modelHostCores?: number;
  /**
   * Cores the modelled run's nodes used together in its window: its CPU per accepted batch times
   * the window's batches per second, as realCpuCores is the real window's (not the whole virtual
   * run, whose ramp-up and drain leave cores idle). Below modelHostCores where processes wait on
   * one another (a closed loop moving in waves, cost-model.ts turnEnd).
   */
  readonly modelCpuCores?: number;
  /**
   * How the replicas' frames coalesce, real (transport counters over the run) and modelled (the
   * cost model's turns, cost-model.ts): frames sent per socket write and frames received per
   * socket read, over every replica. Absent when a run did not report them.
   */
  readonly realFramesPerWrite?: number;
  readonly modelFramesPerWrite?: number;
  readonly realFramesPerRead?: number;
  readonly modelFramesPerRead?: number;
  /** The same for the client processes. */
  readonly realClientFramesPerWrite?: number;
  readonly modelClientFramesPerWrite?: number;
  /** Modelled turns (wake-ups) per accepted batch, every node. */
  readonly modelTurnsPerBatch?: number;
  /** The client processes' share of CPU ms per batch, real and modelled: whether the model's client machines cost what the real ones do. */
  readonly realClientCpuMsPerBatch?: number;
  readonly modelClientCpuMsPerBatch?: number;
}

export interface RankingCheck {
  readonly replicas: number;
  readonly realOrder: readonly string[];
  readonly modelOrder: readonly string[];
  /** Pairs the real runs separate by more than 10% that the model orders the other way. */
  readonly disagreements: readonly string[];
}

export interface ValidationSummary {
  /** Client processes of every point (the points' own); absent in validations stored before it was recorded (they ran 1). */
  readonly clientProcs?: number;
  readonly points: readonly ValidationPoint[];
  /** Points left out of the statistics because their real run was invalid or accepted nothing. */
  readonly excluded: readonly string[];
  readonly medianAbsErrorPercent: number;
  readonly maxAbsErrorPercent: number;
  readonly medianAbsLatencyErrorPercent: number;
  /** Median |error| of CPU ms per batch: the model's cost accounting, independent of the machine's load. */
  readonly medianAbsCpuErrorPercent: number;
  readonly rankings: readonly RankingCheck[];
  readonly rankingAgrees: boolean;
}

export const errorPercent = (model: number, real: number): number => (real === 0 ? (model === 0 ? 0 : Infinity) : ((model - real) / real) * 100);

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * The ranking rule of the issue: wherever two protocols differ by more than `margin` (10%) in
 * the real runs at the same n, the model must order them the same way.
 */
export function rankingAt(points: readonly ValidationPoint[], replicas: number, margin = 0.1): RankingCheck {
  const at = points.filter((p) => p.replicas === replicas);
  const order = (key: 'realTxnPerSec' | 'modelTxnPerSec'): string[] => [...at].sort((a, b) => b[key] - a[key]).map((p) => p.protocol);
  const disagreements: string[] = [];
  for (let i = 0; i < at.length; i++) {
    for (let j = i + 1; j < at.length; j++) {
      const a = at[i]!;
      const b = at[j]!;
      const hi = Math.max(a.realTxnPerSec, b.realTxnPerSec);
      const lo = Math.min(a.realTxnPerSec, b.realTxnPerSec);
      if (hi <= lo * (1 + margin)) continue;
      const realSign = Math.sign(a.realTxnPerSec - b.realTxnPerSec);
      const modelSign = Math.sign(a.modelTxnPerSec - b.modelTxnPerSec);
      if (realSign !== modelSign) disagreements.push(`${a.protocol} vs ${b.protocol}`);
    }
  }
  return { replicas, realOrder: order('realTxnPerSec'), modelOrder: order('modelTxnPerSec'), disagreements };
}

/** Points whose real run is invalid or accepted nothing have no error to speak of: listed, left out of the statistics. */
export function summarise(all: readonly ValidationPoint[]): ValidationSummary {
  const points = all.filter((p) => p.realValid && p.realTxnPerSec > 0);
  const abs = points.map((p) => Math.abs(p.errorPercent));
  const rankings = [...new Set(points.map((p) => p.replicas))].sort((a, b) => a - b).map((n) => rankingAt(points, n));
  return {
    clientProcs: clientProcsOf(all),
    points: all,
    excluded: all.filter((p) => !points.includes(p)).map((p) => `${p.protocol} n=${p.replicas}`),
    medianAbsErrorPercent: round1(median(abs)),
    maxAbsErrorPercent: round1(abs.length === 0 ? 0 : Math.max(...abs)),
    medianAbsLatencyErrorPercent: round1(median(points.map((p) => Math.abs(p.latencyErrorPercent)))),
    medianAbsCpuErrorPercent: round1(median(points.map((p) => Math.abs(p.cpuErrorPercent)))),
    rankings,
    rankingAgrees: rankings.every((r) => r.disagreements.length === 0),
  };
}

/** The client processes of a validation's points: 1 where not recorded (validations before `--client-procs`). */
export function clientProcsOf(points: readonly Pick<ValidationPoint, 'clientProcs'>[]): number {
  const procs = new Set(points.map((p) => p.clientProcs ?? 1));
  if (procs.size > 1) throw new RangeError(`a validation mixes client processes (${[...procs].join(', ')}): validate each setting on its own`);
  return procs.values().next().value ?? 1;
}

const pair = (real: number | undefined, model: number | undefined): string => `${real ?? '-'}, ${model ?? '-'}`;
const round1 = (x: number): number => Math.round(x * 10) / 10;
const round2 = (x: number): number => Math.round(x * 100) / 100;

export interface ValidateOptions {
  readonly protocols?: readonly ProtocolName[];
  readonly replicas?: readonly number[];
  readonly warmupS?: number;
  readonly durationS?: number;
  readonly modelBatches?: number;
  /** Client processes per real run and per modelled point (default 1). */
  readonly clientProcs?: number;
  readonly onProgress?: (line: string) => void;
  readonly signal?: AbortSignal;
}

/**
 * The host cores to model for a real run: the machine's `cores`, or fewer when other processes
 * used the machine during the run's window (`machineCpuPercent`, 100 per core, minus the run's
 * own `runCores`), never below a tenth of a core.
 */
export function coresLeft(cores: number, machineCpuPercent: number | null, runCores: number): number {
  if (machineCpuPercent === null) return cores;
  const others = Math.max(0, machineCpuPercent / 100 - runCores);
  return Math.max(0.1, Math.min(cores, cpus().length - others));
}

export async function validate(calibration: CalibrationFile, options: ValidateOptions = {}): Promise<ValidationSummary> {
  const log = options.onProgress ?? (() => {});
  // The machine's cores: the model's turn-end flush produces the idle time of saturated runs itself (cost-model.ts turnEnd).
  const machine = localTestbed();
  log(`model testbed: ${machine.description} (${machine.sources['sharedHostCores']}), less what other work used during each real run`);
  const points: ValidationPoint[] = [];
  const clientProcs = options.clientProcs ?? 1;
  const replicaCounts = options.replicas ?? [4, 8, 16];
  checkDisjoint(calibration, replicaCounts);
  log(`${procsPerRun(clientProcs)}, real and modelled`);
  for (const n of replicaCounts) {
    for (const protocol of options.protocols ?? (['poe', 'pbft', 'zyzzyva', 'hotstuff'] as const)) {
      const spec = makeRunSpec({
        protocol,
        replicas: n,
        clientProcs,
        warmupS: options.warmupS ?? MODEL_RUN_WARMUP_S,
        durationS: options.durationS ?? MODEL_RUN_DURATION_S,
      });
      log(`${protocol} n=${n}: real run on the local backend...`);
      const runOptions: RunOptions = options.signal ? { signal: options.signal } : {};
      const real = await executeRun(spec, runOptions);
      const realCores = (real.metrics?.processes ?? []).reduce((s, x) => s + (x.cpuPercent ?? 0), 0) / 100;
      const hostCores = coresLeft(machine.sharedHostCores!, real.bottleneck?.machineCpuPercent ?? null, realCores);
      const testbed = hostCores === machine.sharedHostCores ? machine : localTestbed(hostCores);
      const input = pointInputOf(spec, testbed, calibration.costs, options.modelBatches ?? 400);
      const model = modelPoint(input);
      const realIo = ioRatios(real.metrics?.processes ?? []);
      const modelIo = modelCoalescing(model.io, model.acceptedBatches);
      const batches = real.metrics?.acceptedBatches ?? 0;
      const realCpuMsPerBatch = batches > 0 ? (realCores * (real.metrics?.windowSec ?? 0) * 1000) / batches : 0;
      const realClientCores = (real.metrics?.processes ?? []).filter((x) => x.role === 'client').reduce((s, x) => s + (x.cpuPercent ?? 0), 0) / 100;
      const modelClientPercent = Object.entries(model.cpuPercentByNode)
        .filter(([name]) => name.startsWith('client'))
        .reduce((s, [, pct]) => s + pct, 0);
      const p: ValidationPoint = {
        protocol,
        replicas: n,
        clientProcs: spec.clientProcs,
        realTxnPerSec: Math.round(real.throughputTxnPerSec),
        modelTxnPerSec: model.txnPerSec,
        errorPercent: round1(errorPercent(model.txnPerSec, real.throughputTxnPerSec)),
        realLatencyMs: round1(real.latencyMs.mean),
        modelLatencyMs: round1(model.latencyMs.mean),
        latencyErrorPercent: round1(errorPercent(model.latencyMs.mean, real.latencyMs.mean)),
        realValid: real.valid,
        ...(real.steady
          ? { realWarmupSec: real.steady.warmupSec, realSteady: real.steady.settled, ...(real.steady.settled ? {} : { realSteadyFlags: real.steady.flags }) }
          : {}),
        modelValid: model.valid,
        realCpuCores: round2(realCores),
        realCpuMsPerBatch: round2(realCpuMsPerBatch),
        modelCpuMsPerBatch: round2(model.cpuMsPerBatch),
        cpuErrorPercent: round1(errorPercent(model.cpuMsPerBatch, realCpuMsPerBatch)),
        modelHostCores: round2(hostCores),
        modelCpuCores: round2((model.cpuMsPerBatch * model.txnPerSec) / spec.batch / 1000),
        ...defined({
          realFramesPerWrite: realIo.replicaPerWrite,
          realFramesPerRead: realIo.replicaPerRead,
          realClientFramesPerWrite: realIo.clientPerWrite,
          modelFramesPerWrite: modelIo.replicaPerWrite,
          modelFramesPerRead: modelIo.replicaPerRead,
          modelClientFramesPerWrite: modelIo.clientPerWrite,
          modelTurnsPerBatch: modelIo.turnsPerBatch,
          realClientCpuMsPerBatch: batches > 0 ? (realClientCores * (real.metrics?.windowSec ?? 0) * 1000) / batches : undefined,
          modelClientCpuMsPerBatch: model.acceptedBatches > 0 ? ((modelClientPercent / 100) * model.virtualTimeMs) / model.acceptedBatches : undefined,
        }),
      };
      log(
        `  real ${p.realTxnPerSec} txn/s (${p.realLatencyMs} ms), model ${p.modelTxnPerSec} txn/s (${p.modelLatencyMs} ms): ${p.errorPercent}%${real.valid ? '' : `; the real run is ${real.failed ? 'FAILED' : 'INVALID'}: ${real.reason ?? 'no reason given'}`}`,
      );
      points.push(p);
    }
  }
  return summarise(points);
}

/**
 * Fit and validation points must be disjoint (issue 12 item 4): no validation at a replica count
 * the calibration was fitted at (header: whatever the client processes).
 */
export function checkDisjoint(calibration: Pick<CalibrationFile, 'fitPoints'>, replicas: readonly number[]): void {
  const fitted = new Set(calibration.fitPoints.map((p) => p.replicas));
  const both = replicas.filter((n) => fitted.has(n));
  if (both.length > 0)
    throw new RangeError(
      `validation at n=${both.join(', ')}: the calibration was fitted there (${calibration.fitPoints.map((p) => `${p.protocol} n=${p.replicas}`).join(', ')}); fit and validation points must be disjoint`,
    );
}

const defined = (o: Record<string, number | undefined>): Record<string, number> =>
  Object.fromEntries(
    Object.entries(o)
      .filter((e): e is [string, number] => e[1] !== undefined && Number.isFinite(e[1]))
      .map(([k, v]) => [k, round2(v)]),
  );

interface Coalescing {
  replicaPerWrite?: number;
  replicaPerRead?: number;
  clientPerWrite?: number;
  turnsPerBatch?: number;
}

/** Frames per write and per read of the real run's replicas (and per write of its clients), from each process's transport counters. */
export function ioRatios(processes: readonly ProcessFigures[]): Coalescing {
  const sum = (role: 'replica' | 'client', k: 'framesSent' | 'framesReceived' | 'writes' | 'reads'): number =>
    processes.filter((p) => p.role === role).reduce((s, p) => s + (p.io?.[k] ?? 0), 0);
  const ratio = (a: number, b: number): number | undefined => (b > 0 ? a / b : undefined);
  return {
    replicaPerWrite: ratio(sum('replica', 'framesSent'), sum('replica', 'writes')),
    replicaPerRead: ratio(sum('replica', 'framesReceived'), sum('replica', 'reads')),
    clientPerWrite: ratio(sum('client', 'framesSent'), sum('client', 'writes')),
  };
}

/** The same ratios in the cost model, from the modelled point's own counters (modelPoint's `io`). */
function modelCoalescing(io: ModelIo, acceptedBatches: number): Coalescing {
  const ratio = (a: number, b: number): number | undefined => (b > 0 ? a / b : undefined);
  return {
    replicaPerWrite: ratio(io.replica.framesOut, io.replica.writes),
    replicaPerRead: ratio(io.replica.messagesIn, io.replica.reads),
    clientPerWrite: ratio(io.client.framesOut, io.client.writes),
    turnsPerBatch: ratio(io.turns, acceptedBatches),
  };
}

/** The real run's warm-up and, when it was not in steady state, a mark saying so ('' for validations before it was recorded). */
export function realWarmup(p: Pick<ValidationPoint, 'realWarmupSec' | 'realSteady'>): string {
  if (p.realWarmupSec === undefined) return '';
  return `${p.realWarmupSec.toFixed(1)}${p.realSteady === false ? ' (NOT steady)' : ''}`;
}

/** `n client process(es) per run`, as the validation table and the report name them. */
export function procsPerRun(n: number): string {
  return `${n} client process${n === 1 ? '' : 'es'} per run`;
}

export function formatValidation(s: ValidationSummary, calibrationPath?: string): string {
  const lines = [
    `Model validation (testbed local${calibrationPath ? `, calibration ${calibrationPath}` : ''}, ${procsPerRun(s.clientProcs ?? 1)}): real runs on the local backend against the cost model`,
    '',
    '| protocol | n | real warm-up s | real txn/s | model txn/s | error | real mean latency ms | model mean latency ms | latency error | cores used real, model | cores of the modelled host | real CPU ms/batch | model CPU ms/batch | CPU error | replica frames/write real, model | replica frames/read real, model | client frames/write real, model | client CPU ms/batch real, model |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const p of s.points) {
    lines.push(
      `| ${p.protocol}${p.realValid ? '' : ' (real run INVALID)'}${p.modelValid ? '' : ' (model run INVALID)'} | ${p.replicas} | ${realWarmup(p)} | ${p.realTxnPerSec} | ${p.modelTxnPerSec} | ${p.errorPercent}% | ${p.realLatencyMs} | ${p.modelLatencyMs} | ${p.latencyErrorPercent}% | ${pair(p.realCpuCores, p.modelCpuCores)} | ${p.modelHostCores ?? ''} | ${p.realCpuMsPerBatch} | ${p.modelCpuMsPerBatch} | ${p.cpuErrorPercent}% | ${pair(p.realFramesPerWrite, p.modelFramesPerWrite)} | ${pair(p.realFramesPerRead, p.modelFramesPerRead)} | ${pair(p.realClientFramesPerWrite, p.modelClientFramesPerWrite)} | ${pair(p.realClientCpuMsPerBatch, p.modelClientCpuMsPerBatch)} |`,
    );
  }
  if (s.excluded.length > 0) lines.push('', `Left out of the statistics (real run invalid or nothing accepted): ${s.excluded.join(', ')}.`);
  const unsteady = s.points.filter((p) => p.realSteady === false);
  if (unsteady.length > 0)
    lines.push(
      '',
      `Real runs NOT in steady state (the model predicts one): ${unsteady.map((p) => `${p.protocol} n=${p.replicas} (${(p.realSteadyFlags ?? []).join('; ')})`).join(', ')}.`,
    );
  lines.push(
    '',
    `Throughput: median |error| ${s.medianAbsErrorPercent}%, max |error| ${s.maxAbsErrorPercent}%. Mean latency: median |error| ${s.medianAbsLatencyErrorPercent}%. CPU per batch: median |error| ${s.medianAbsCpuErrorPercent}%.`,
    '',
  );
  for (const r of s.rankings) {
    lines.push(
      `- n=${r.replicas}: real order ${r.realOrder.join(' > ')}; model order ${r.modelOrder.join(' > ')}${r.disagreements.length ? `; DISAGREE on ${r.disagreements.join(', ')} (real gap > 10%)` : '; agrees wherever the real gap is > 10%'}`,
    );
  }
  lines.push('', `Ranking agrees: ${s.rankingAgrees ? 'yes' : 'NO'}`);
  return lines.join('\n');
}
