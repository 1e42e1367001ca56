/**
 * Throughput-latency curves (issue 11 item 4): the figure BFT papers since HotStuff show.
 * Each protocol runs open loop (client/core.ts: batches issued at a fixed rate, latency counted
 * from the intended send time, so queueing is not hidden) at a rising offered load, one
 * `poe-bench run` per point, until latency explodes or the achieved throughput stops following
 * the offered one. The knee is the highest achieved throughput before latency explodes.
 *
 * The stopping rule and the knee are pure functions (tested in curve.test.ts); `runCurve`
 * drives the runs and records every point in runs.jsonl as experiment "curve".
 */
import { appendRun, environment, makeRunLine, writeManifest } from '../infra/run/results.js';
import { executeRun, type RunResult } from '../infra/run/execute.js';
import { makeRunSpec, type RunSpec } from '../infra/run/spec.js';
import type { ProtocolName } from '../replica/types.js';

/** When a curve stops rising. */
export interface CurveRule {
  /** Latency has exploded once a point's mean latency exceeds this many times the lowest mean of the curve. */
  readonly latencyFactor: number;
  /** ... or once its p99 latency exceeds this (ms). */
  readonly p99BoundMs: number;
  /** Throughput follows the offered load while achieved >= this fraction of offered. */
  readonly followFraction: number;
  /**
   * The curve stops after this many points in a row whose latency exploded, or that did not
   * follow: one point alone can be a hiccup of a shared machine (a stalled process whose
   * backlog lands in the window), and the next, higher load tells which it was.
   */
  readonly missesToStop: number;
}

export const CURVE_RULE: CurveRule = { latencyFactor: 10, p99BoundMs: 2000, followFraction: 0.9, missesToStop: 2 };

/** One measured point of a curve. */
export interface CurvePoint {
  readonly protocol: ProtocolName;
  readonly offeredBatchesPerSec: number;
  readonly offeredTxnPerSec: number;
  readonly achievedTxnPerSec: number;
  readonly latencyMs: { readonly mean: number; readonly p50: number; readonly p99: number };
  readonly valid: boolean;
  readonly reason?: string;
}

/** The lowest mean latency among valid points (the curve's unloaded latency), or undefined. */
export function lowestMeanLatencyMs(points: readonly CurvePoint[]): number | undefined {
  const means = points.filter((p) => p.valid).map((p) => p.latencyMs.mean);
  return means.length === 0 ? undefined : Math.min(...means);
}

/** Why `p`'s latency counts as exploded on a curve whose lowest mean is `lowestMs`, or undefined. */
export function latencyExplosion(p: CurvePoint, lowestMs: number | undefined, rule: CurveRule = CURVE_RULE): string | undefined {
  if (lowestMs !== undefined && lowestMs > 0 && p.latencyMs.mean > rule.latencyFactor * lowestMs) {
    return `mean latency ${p.latencyMs.mean.toFixed(1)} ms is above ${rule.latencyFactor} x the lowest (${lowestMs.toFixed(1)} ms)`;
  }
  if (p.latencyMs.p99 > rule.p99BoundMs) return `p99 latency ${p.latencyMs.p99.toFixed(0)} ms is above ${rule.p99BoundMs} ms`;
  return undefined;
}

/** True when the achieved throughput kept up with the offered load. */
export function follows(p: CurvePoint, rule: CurveRule = CURVE_RULE): boolean {
  return p.achievedTxnPerSec >= rule.followFraction * p.offeredTxnPerSec;
}

/**
 * Why the curve stops after its last point, or undefined to go on: the last run was invalid,
 * or latency exploded at the last `missesToStop` points (judged against the lowest mean so
 * far), or they all fell short of their offered load.
 */
export function stopReason(points: readonly CurvePoint[], rule: CurveRule = CURVE_RULE): string | undefined {
  const last = points.at(-1);
  if (!last) return undefined;
  if (!last.valid) return `invalid run at ${Math.round(last.offeredTxnPerSec)} txn/s offered: ${last.reason ?? 'no reason given'}`;
  const tail = points.slice(-rule.missesToStop);
  if (tail.length < rule.missesToStop) return undefined;
  const lowest = lowestMeanLatencyMs(points);
  if (tail.every((p) => p.valid && latencyExplosion(p, lowest, rule) !== undefined)) {
    return `latency exploded at ${rule.missesToStop} points in a row, the last at ${Math.round(last.offeredTxnPerSec)} txn/s offered: ${latencyExplosion(last, lowest, rule)}`;
  }
  if (tail.every((p) => p.valid && !follows(p, rule))) {
    return `throughput stopped following the offered load: below ${Math.round(100 * rule.followFraction)}% of it at ${rule.missesToStop} points in a row`;
  }
  return undefined;
}

/**
 * The knee: the valid point with the highest achieved throughput among those whose latency has
 * not exploded (judged against the whole curve's lowest mean), the one with the lower mean
 * latency of two that achieved the same, or undefined if there is none.
 */
export function knee(points: readonly CurvePoint[], rule: CurveRule = CURVE_RULE): CurvePoint | undefined {
  const lowest = lowestMeanLatencyMs(points);
  let best: CurvePoint | undefined;
  for (const p of points) {
    if (!p.valid || latencyExplosion(p, lowest, rule) !== undefined) continue;
    // Ties (a flat top) go to the lower latency: the knee is where the flat part begins.
    if (!best || p.achievedTxnPerSec > best.achievedTxnPerSec || (p.achievedTxnPerSec === best.achievedTxnPerSec && p.latencyMs.mean < best.latencyMs.mean))
      best = p;
  }
  return best;
}

/** True for a point that carried its load: valid, following the offered load, latency not exploded. */
export function carried(p: CurvePoint, lowestMs: number | undefined, rule: CurveRule = CURVE_RULE): boolean {
  return p.valid && follows(p, rule) && latencyExplosion(p, lowestMs, rule) === undefined;
}

/**
 * The next offered load (batches/s) that narrows down where the curve stops carrying its load,
 * or undefined when there is nothing left to narrow: the geometric mean of the highest carried
 * load below the lowest load not carried, and that load, until the two are within `ratio`.
 * (Rising by a factor of 1.5 alone would place the knee only to within 50%.)
 */
export function refinement(points: readonly CurvePoint[], ratio: number, rule: CurveRule = CURVE_RULE): number | undefined {
  const lowest = lowestMeanLatencyMs(points);
  const bad = points.filter((p) => !carried(p, lowest, rule)).map((p) => p.offeredBatchesPerSec);
  if (bad.length === 0) return undefined;
  const hi = Math.min(...bad);
  const good = points.filter((p) => carried(p, lowest, rule) && p.offeredBatchesPerSec < hi).map((p) => p.offeredBatchesPerSec);
  if (good.length === 0) return undefined;
  const lo = Math.max(...good);
  if (hi / lo <= ratio) return undefined;
  return Math.round(100 * Math.sqrt(lo * hi)) / 100;
}

/** The offered load of point `i` (0-based), in batches per second: start x factor^i. */
export function offeredBatchesPerSec(i: number, startBatchesPerSec: number, factor: number): number {
  return Math.round(100 * startBatchesPerSec * factor ** i) / 100;
}

export interface CurveOptions {
  readonly protocols: readonly ProtocolName[];
  readonly replicas: number;
  readonly batch: number;
  /** Logical clients: the pool the open loop draws from (at most this many batches in flight). */
  readonly clients: number;
  readonly warmupS: number;
  readonly durationS: number;
  /** The first point's offered load, batches per second. */
  readonly startBatchesPerSec: number;
  /** Each point offers this many times the previous one's load. */
  readonly factor: number;
  /** At most this many points per protocol, whatever the stopping rule says. */
  readonly maxPoints: number;
  /**
   * After the rising points stop, points are added between the highest load carried and the
   * lowest not carried until the two are within this ratio (1 or below: no refinement).
   */
  readonly refineRatio: number;
  readonly rule: CurveRule;
  /** Results directory: runs.jsonl and manifest.json. */
  readonly outDir: string;
}

export interface ProtocolCurve {
  readonly protocol: ProtocolName;
  readonly points: readonly CurvePoint[];
  readonly knee?: CurvePoint;
  /** Why the curve ended: the stopping rule's reason, or the point budget. */
  readonly stoppedBecause: string;
}

export interface CurveResult {
  readonly replicas: number;
  readonly batch: number;
  readonly curves: readonly ProtocolCurve[];
  readonly interrupted: boolean;
}

/** A curve point from one run's result. */
export function curvePoint(run: RunResult): CurvePoint {
  const offered = run.spec.openLoopBatchesPerSec ?? 0;
  return {
    protocol: run.spec.protocol,
    offeredBatchesPerSec: offered,
    offeredTxnPerSec: offered * run.spec.batch,
    achievedTxnPerSec: run.throughputTxnPerSec,
    latencyMs: { mean: run.latencyMs.mean, p50: run.latencyMs.p50, p99: run.latencyMs.p99 },
    valid: run.valid,
    ...(run.reason ? { reason: run.reason } : {}),
  };
}

/** Appends one curve point to <outDir>/runs.jsonl: the run's full record plus `curve`. */
function recordPoint(outDir: string, run: RunResult, point: CurvePoint, index: number): void {
  const env = environment();
  const line = makeRunLine(
    run.spec,
    {
      valid: run.valid,
      ...(run.reason ? { reason: run.reason } : {}),
      startedAt: run.startedAt,
      durationSec: run.durationSec,
      ...(run.metrics ? { metrics: run.metrics } : {}),
      violations: run.violations,
      implausible: run.implausible,
      failed: run.failed,
      commit: env.commit,
      dirty: env.dirty,
      curve: { index, ...point },
    },
    'curve',
  );
  // One point of the sweep per offered load, so resuming and aggregation keep them apart.
  const sweepPoint = { ...line.point, openLoopBatchesPerSec: point.offeredBatchesPerSec };
  appendRun(outDir, { ...line, pointId: `${line.pointId}/open=${point.offeredBatchesPerSec}`, point: sweepPoint });
}

export interface CurveHooks {
  readonly signal?: AbortSignal;
  /** Progress of the current run. */
  readonly onProgress?: (line: string) => void;
  /** After each point. */
  readonly onPoint?: (point: CurvePoint, index: number) => void;
  /** Runs one point (tests replace the real run). */
  readonly execute?: (spec: RunSpec) => Promise<RunResult>;
}

/** Runs every protocol's curve in turn; records each point as it is measured. */
export async function runCurve(o: CurveOptions, hooks: CurveHooks = {}): Promise<CurveResult> {
  const execute =
    hooks.execute ??
    ((spec: RunSpec) => executeRun(spec, { ...(hooks.signal ? { signal: hooks.signal } : {}), ...(hooks.onProgress ? { onProgress: hooks.onProgress } : {}) }));
  const curves: ProtocolCurve[] = [];
  let manifestWritten = false;
  for (const protocol of o.protocols) {
    const points: CurvePoint[] = [];
    let stoppedBecause = `the point budget (${o.maxPoints} points)`;
    /** Runs one point at `offered` batches/s; false if interrupted. */
    const measure = async (offered: number): Promise<boolean> => {
      const spec = makeRunSpec({
        protocol,
        replicas: o.replicas,
        batch: o.batch,
        clients: o.clients,
        warmupS: o.warmupS,
        durationS: o.durationS,
        openLoopBatchesPerSec: offered,
      });
      const run = await execute(spec);
      if (run.interrupted) return false;
      if (!manifestWritten) {
        writeManifest(o.outDir, spec, environment(), run.startedAt, { experiment: 'curve', curve: { ...o, protocols: [...o.protocols] } });
        manifestWritten = true;
      }
      const point = curvePoint(run);
      points.push(point);
      recordPoint(o.outDir, run, point, points.length - 1);
      hooks.onPoint?.(point, points.length - 1);
      return true;
    };
    let interrupted = false;
    // Rising load until the stopping rule says so.
    for (let i = 0; i < o.maxPoints; i++) {
      if (!(await measure(offeredBatchesPerSec(i, o.startBatchesPerSec, o.factor)))) {
        interrupted = true;
        break;
      }
      const reason = stopReason(points, o.rule);
      if (reason) {
        stoppedBecause = reason;
        break;
      }
    }
    // Then narrow down the load where it stopped being carried.
    while (!interrupted && points.length < o.maxPoints) {
      const next = refinement(points, o.refineRatio, o.rule);
      if (next === undefined) break;
      if (!(await measure(next))) interrupted = true;
    }
    curves.push({ protocol, points, ...kneeOf(points, o.rule), stoppedBecause: interrupted ? 'interrupted' : stoppedBecause });
    if (interrupted) return { replicas: o.replicas, batch: o.batch, curves, interrupted: true };
  }
  return { replicas: o.replicas, batch: o.batch, curves, interrupted: false };
}

function kneeOf(points: readonly CurvePoint[], rule: CurveRule): { knee?: CurvePoint } {
  const k = knee(points, rule);
  return k ? { knee: k } : {};
}
