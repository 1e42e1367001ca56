/**
 * Throughput-latency curves (issue 11 item 4): the figure BFT papers since HotStuff show.
 * Each protocol runs open loop (client/core.ts: batches issued at a fixed rate, latency counted
 * from the intended send time, so queueing is not hidden) at a rising offered load, one
 * `poe-bench run` per point, until latency explodes or the achieved throughput stops following
 * the offered one. The knee is the highest throughput the curve carried (sustained) before
 * its queue grew or its latency passed the bound (CurveRule below says why this definition).
 *
 * Open loop, the knee can sit below the closed loop's peak on a machine the replicas and the
 * client share: evenly spaced arrivals cost more CPU per transaction than the closed loop's
 * convoys (measured on 2 shared cores, issue 11: replicas 17-34% of a core per 10,000 txn/s at
 * carried open-loop points against 9-13% closed loop, 1-3 frames per socket write against
 * 23-48), and an open loop cannot average over another process's stall as a closed loop does:
 * the backlog drains only at the capacity minus the offered load.
 *
 * The stopping rule and the knee are pure functions (tested in curve.test.ts); `runCurve`
 * drives the runs and records every point in runs.jsonl as experiment "curve".
 */
import { appendRun, environment, makeRunLine, writeManifest } from '../infra/run/results.js';
import { executeRun, type RunResult } from '../infra/run/execute.js';
import { makeRunSpec, type RunSpec } from '../infra/run/spec.js';
import { WINDOW_OVER_LATENCY } from '../infra/run/steady.js';
import type { RunRecord } from '../infra/run/records.js';
import type { ProtocolName } from '../replica/types.js';

/**
 * When a point carried its load, when the curve stops rising, and which point is the knee.
 *
 * The knee is the curve's maximum sustainable throughput: the highest throughput the system
 * carried without its queue growing and without its latency passing a bound. Sustainable
 * throughput is "the highest load a system can handle without a continuously increasing
 * latency" (Karimov et al., "Benchmarking Distributed Stream Data Processing Systems", ICDE
 * 2018, §III); with a response-time limit it is what Jain calls the usable capacity ("The Art
 * of Computer Systems Performance Analysis", 1991, §3.3). It is where a latency-throughput
 * curve of the HotStuff and BFT-SMaRt kind turns upward: to its left latency stays bounded
 * whatever the load, to its right it grows with the run.
 *
 * Open loop, a growing queue shows in the throughput itself: by conservation, the batches
 * accepted in a window of D seconds are those issued over D minus the latency's rise across the
 * window, so achieved / offered = 1 - rise / D, and `followFraction` bounds the rise to
 * (1 - followFraction) x D; a point that achieved more than it was offered drained a backlog left
 * by a stall (its latency fell across the window), so it was not in steady state either, and the
 * band is two-sided. A point is also measured in steady state only when its window is at least
 * `windowOverLatency` times its mean latency (issue 11 item 2, infra/run/steady.ts): a shared
 * machine's stall leaves a backlog that a load close to the capacity drains only slowly, and a
 * point seconds deep in it is past the knee whatever its throughput. A fixed multiple of the unloaded latency is no such test: on this
 * machine the unloaded latency is a few ms, while a stable queue on two shared cores runs at tens
 * of ms (the closed loop at its peak runs at 24 batches / 1,500 batches/s = 16 ms, Little's law),
 * so "10 x the lowest mean" put the knee at 42-60% of the closed loop's peak (issue 11). That
 * bound stays available as `latencyFactor`, a latency objective the user sets, off by default.
 */
export interface CurveRule {
  /**
   * Optional latency objective: a point whose mean latency is above this many times the curve's
   * lowest mean does not count as carried. Undefined: no such bound (the default).
   */
  readonly latencyFactor?: number;
  /**
   * A point whose p99 latency is above this (ms) did not carry its load: the default is the
   * client request timeout (2 s), past which latencies measure the timeout machinery.
   */
  readonly p99BoundMs: number;
  /**
   * Throughput follows the offered load (its queue neither grew nor drained) while achieved is
   * at least this fraction of offered and at most offered divided by it.
   */
  readonly followFraction: number;
  /** A point counts only if its window is at least this many times its mean latency (steady state). */
  readonly windowOverLatency: number;
  /**
   * The curve stops after this many points in a row that did not carry their load: one point
   * alone can be a hiccup of a shared machine (a stalled process whose backlog lands in the
   * window), and the next, higher load tells which it was.
   */
  readonly missesToStop: number;
}

export const CURVE_RULE: CurveRule = { p99BoundMs: 2000, followFraction: 0.9, windowOverLatency: WINDOW_OVER_LATENCY, missesToStop: 2 };

/** One measured point of a curve. */
export interface CurvePoint {
  readonly protocol: ProtocolName;
  readonly offeredBatchesPerSec: number;
  readonly offeredTxnPerSec: number;
  readonly achievedTxnPerSec: number;
  readonly latencyMs: { readonly mean: number; readonly p50: number; readonly p99: number };
  readonly valid: boolean;
  readonly reason?: string;
  /** The measured window's length (s); absent: not judged against the latency. */
  readonly windowSec?: number;
}

/** The lowest mean latency among valid points (the curve's unloaded latency), or undefined. */
export function lowestMeanLatencyMs(points: readonly CurvePoint[]): number | undefined {
  const means = points.filter((p) => p.valid).map((p) => p.latencyMs.mean);
  return means.length === 0 ? undefined : Math.min(...means);
}

/** Why `p`'s latency is past the rule's bounds on a curve whose lowest mean is `lowestMs`, or undefined. */
export function latencyExplosion(p: CurvePoint, lowestMs: number | undefined, rule: CurveRule = CURVE_RULE): string | undefined {
  if (p.latencyMs.p99 > rule.p99BoundMs) return `p99 latency ${p.latencyMs.p99.toFixed(0)} ms is above ${rule.p99BoundMs} ms`;
  const factor = rule.latencyFactor;
  if (factor !== undefined && lowestMs !== undefined && lowestMs > 0 && p.latencyMs.mean > factor * lowestMs) {
    return `mean latency ${p.latencyMs.mean.toFixed(1)} ms is above ${factor} x the lowest (${lowestMs.toFixed(1)} ms)`;
  }
  return undefined;
}

/** True when the achieved throughput kept up with the offered load (its queue did not grow). */
export function follows(p: CurvePoint, rule: CurveRule = CURVE_RULE): boolean {
  return p.achievedTxnPerSec >= rule.followFraction * p.offeredTxnPerSec;
}

/** True when the achieved throughput was above the offered load's band: a backlog drained in the window. */
export function drained(p: CurvePoint, rule: CurveRule = CURVE_RULE): boolean {
  return p.achievedTxnPerSec > p.offeredTxnPerSec / rule.followFraction;
}

/**
 * Why `p` did not carry its load, or undefined if it did: invalid, not following (short of the
 * offered load, or above it: a backlog drained), latency past the bounds, or a window too short
 * for its latency.
 */
export function notCarried(p: CurvePoint, lowestMs: number | undefined, rule: CurveRule = CURVE_RULE): string | undefined {
  if (!p.valid) return `invalid run: ${p.reason ?? 'no reason given'}`;
  if (!follows(p, rule)) {
    return `achieved ${Math.round(p.achievedTxnPerSec)} txn/s, below ${Math.round(100 * rule.followFraction)}% of the ${Math.round(p.offeredTxnPerSec)} offered`;
  }
  if (drained(p, rule)) {
    return `achieved ${Math.round(p.achievedTxnPerSec)} txn/s, above the ${Math.round(p.offeredTxnPerSec)} offered by more than 1 / ${rule.followFraction}: a backlog drained in the window`;
  }
  const exploded = latencyExplosion(p, lowestMs, rule);
  if (exploded) return exploded;
  if (p.windowSec !== undefined && p.latencyMs.mean > 0 && (p.windowSec * 1000) / p.latencyMs.mean < rule.windowOverLatency) {
    return `the ${p.windowSec} s window is under ${rule.windowOverLatency} times the mean latency (${p.latencyMs.mean.toFixed(1)} ms): not steady`;
  }
  return undefined;
}

/** True for a point that carried its load: valid, following the offered load, latency within the bounds. */
export function carried(p: CurvePoint, lowestMs: number | undefined, rule: CurveRule = CURVE_RULE): boolean {
  return notCarried(p, lowestMs, rule) === undefined;
}

/**
 * Why the curve stops after its last point, or undefined to go on: the last run was invalid,
 * or none of the last `missesToStop` points carried its load (judged against the lowest mean
 * so far).
 */
export function stopReason(points: readonly CurvePoint[], rule: CurveRule = CURVE_RULE): string | undefined {
  const last = points.at(-1);
  if (!last) return undefined;
  if (!last.valid) return `invalid run at ${Math.round(last.offeredTxnPerSec)} txn/s offered: ${last.reason ?? 'no reason given'}`;
  const tail = points.slice(-rule.missesToStop);
  if (tail.length < rule.missesToStop) return undefined;
  const lowest = lowestMeanLatencyMs(points);
  if (tail.some((p) => carried(p, lowest, rule))) return undefined;
  return `the load was not carried at ${rule.missesToStop} points in a row, the last at ${Math.round(last.offeredTxnPerSec)} txn/s offered: ${notCarried(last, lowest, rule)}`;
}

/**
 * The knee: the carried point with the highest achieved throughput (the one with the lower
 * mean latency of two that achieved the same), or undefined if no point carried its load.
 */
export function knee(points: readonly CurvePoint[], rule: CurveRule = CURVE_RULE): CurvePoint | undefined {
  const lowest = lowestMeanLatencyMs(points);
  let best: CurvePoint | undefined;
  for (const p of points) {
    if (!carried(p, lowest, rule)) continue;
    // Ties (a flat top) go to the lower latency: the knee is where the flat part begins.
    if (!best || p.achievedTxnPerSec > best.achievedTxnPerSec || (p.achievedTxnPerSec === best.achievedTxnPerSec && p.latencyMs.mean < best.latencyMs.mean))
      best = p;
  }
  return best;
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
    windowSec: run.steady?.windowSec ?? run.spec.durationS,
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

/**
 * The curves recorded in a results directory's runs (experiment "curve", one line per point
 * with its `curve` object): one result per replica count, points in the order measured, knees
 * judged again by `rule`. What figure 13's curves panel reads back (plots/report.ts).
 */
export function curvesFromRecords(records: readonly RunRecord[], rule: CurveRule = CURVE_RULE): CurveResult[] {
  const byReplicas = new Map<number, Map<ProtocolName, (CurvePoint & { index: number })[]>>();
  let batch = 0;
  for (const r of records) {
    const point = (r as RunRecord & { curve?: CurvePoint & { index: number } }).curve;
    if (r.experiment !== 'curve' || point === undefined) continue;
    batch = r.point.batch;
    const curves = byReplicas.get(r.point.replicas) ?? new Map<ProtocolName, (CurvePoint & { index: number })[]>();
    byReplicas.set(r.point.replicas, curves);
    const points = curves.get(point.protocol) ?? [];
    curves.set(point.protocol, points);
    points.push(point);
  }
  return [...byReplicas]
    .sort(([a], [b]) => a - b)
    .map(([replicas, curves]) => ({
      replicas,
      batch,
      interrupted: false,
      curves: [...curves].map(([protocol, pts]) => {
        const points = [...pts].sort((a, b) => a.index - b.index);
        return { protocol, points, ...kneeOf(points, rule), stoppedBecause: stopReason(points, rule) ?? 'as recorded' };
      }),
    }));
}
