/**
 * Statistics over runs.jsonl records: the mean of the repetitions of each sweep point and its
 * error bar. The paper averages three runs (§5, paper line 411: "We
 * average our results over three runs"); we add an interval so a reader can tell a difference from noise:
 * - 3 or more repetitions: the 95% confidence interval of the mean, Student t with n-1 degrees
 *   of freedom (mean ± t(0.975, n-1) · s / √n, s the sample standard deviation);
 * - 1 or 2 repetitions: the minimum and maximum, since a t interval on 2 values is too wide to
 *   mean anything (t(0.975, 1) = 12.7) and on 1 value undefined.
 * Pure functions only: no I/O here (loading lives in runs.ts).
 */
import type { ProtocolName } from '../replica/types.js';
import { belongsTo, figureOfExperiment, PROTOCOL_ORDER, xOf, type FigureDef } from './figures.js';
import type { RunMetrics, RunRecord, SweepPoint } from '../infra/run/records.js';
import type { Bottleneck, BottleneckKind } from '../infra/run/bottleneck.js';
import type { Steady } from '../infra/run/steady.js';
import type { Saturation } from './saturation.js';

export type IntervalKind = 'ci95' | 'minmax';

/** Mean of the repetitions of one quantity and its error bar [lo, hi]. */
export interface Summary {
  readonly n: number;
  readonly mean: number;
  readonly lo: number;
  readonly hi: number;
  readonly min: number;
  readonly max: number;
  /** Sample standard deviation (n - 1 in the denominator); 0 for a single value. */
  readonly stdDev: number;
  readonly interval: IntervalKind;
}

export function mean(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('mean of no values');
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Sample standard deviation, n - 1 in the denominator; 0 for fewer than 2 values. */
export function sampleStdDev(values: readonly number[]): number {
  if (values.length < 2) return 0;
  const m = mean(values);
  let squares = 0;
  for (const v of values) squares += (v - m) * (v - m);
  return Math.sqrt(squares / (values.length - 1));
}

/** t(0.975, df) for df = 1..30, the two-sided 95% quantiles of Student's t distribution. */
const T_975: readonly number[] = [
  12.706205, 4.302653, 3.182446, 2.776445, 2.570582, 2.446912, 2.364624, 2.306004, 2.262157, 2.228139, 2.200985, 2.178813, 2.160369, 2.144787, 2.13145,
  2.119905, 2.109816, 2.100922, 2.093024, 2.085963, 2.079614, 2.073873, 2.068658, 2.063899, 2.059539, 2.055529, 2.051831, 2.048407, 2.04523, 2.042272,
];

const Z_975 = 1.959964;

/**
 * The 0.975 quantile of Student's t with `df` degrees of freedom: a table up to 30, beyond it
 * the Cornish-Fisher expansion around the normal quantile (error below 1e-4 for df > 30).
 */
export function tQuantile975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`degrees of freedom must be a positive integer, got ${df}`);
  if (df <= T_975.length) return T_975[df - 1]!;
  const z = Z_975;
  const z3 = z ** 3;
  const z5 = z ** 5;
  const z7 = z ** 7;
  return z + (z3 + z) / (4 * df) + (5 * z5 + 16 * z3 + 3 * z) / (96 * df ** 2) + (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * df ** 3);
}

/** Mean and error bar of one quantity over the repetitions of a point. */
export function summarize(values: readonly number[]): Summary {
  if (values.length === 0) throw new RangeError('summary of no values');
  for (const v of values) if (!Number.isFinite(v)) throw new RangeError(`not a finite number: ${v}`);
  const n = values.length;
  const m = mean(values);
  const min = Math.min(...values);
  const max = Math.max(...values);
  const stdDev = sampleStdDev(values);
  if (n < 3) return { n, mean: m, lo: min, hi: max, min, max, stdDev, interval: 'minmax' };
  const halfWidth = (tQuantile975(n - 1) * stdDev) / Math.sqrt(n);
  return { n, mean: m, lo: m - halfWidth, hi: m + halfWidth, min, max, stdDev, interval: 'ci95' };
}

/** One bucket of the mean throughput-over-time series (figure 11b). */
export interface SeriesBucket {
  readonly tSec: number;
  readonly txnPerSec: Summary;
}

const MS_PER_SEC = 1000;
const sec = (ms: number | undefined): number | undefined => (ms === undefined ? undefined : ms / MS_PER_SEC);

/** The metrics summarized per point, each read from one repetition's metrics (times in seconds). */
const SUMMARIZED = {
  throughputTxnPerSec: (x) => x.throughputTxnPerSec,
  latencyMeanSec: (x) => sec(x.latencyMs.mean),
  latencyP50Sec: (x) => sec(x.latencyMs.p50),
  latencyP99Sec: (x) => sec(x.latencyMs.p99),
  latencyMaxSec: (x) => sec(x.latencyMs.max),
  messagesPerSec: (x) => x.messagesPerSec,
  bytesPerSec: (x) => x.bytesPerSec,
  viewChanges: (x) => x.viewChanges,
  viewChangeSec: (x) => sec(x.viewChangeMs),
  rollbacks: (x) => x.rollbacks,
  clientTimeouts: (x) => x.clientTimeouts,
} as const satisfies Record<string, (m: RunMetrics) => number | undefined>;

/** A metric summarized per point (over its valid repetitions). */
export type SummarizedMetric = keyof typeof SUMMARIZED;

/** All repetitions of one sweep point, reduced to means with error bars (one Summary per SummarizedMetric). */
export interface AggregatedPoint extends Readonly<Partial<Record<SummarizedMetric, Summary>>> {
  readonly experiment: string;
  readonly pointId: string;
  readonly point: SweepPoint;
  /** Valid repetitions that carried metrics: what the summaries below are over. */
  readonly reps: number;
  /** Repetitions recorded as invalid or failed, with their reasons (loud, never averaged in). */
  readonly failed: number;
  readonly reasons: readonly string[];
  /** Figure 11b: throughput per 1-second bucket, mean over the repetitions that have the bucket. */
  readonly throughputSeries?: readonly SeriesBucket[];
  // issue 11: how each number was made
  /** What bound the point: the kind most of its valid repetitions got, with one of their sentences. */
  readonly bottleneck?: PointBottleneck;
  /** The closed-loop load (transactions outstanding) of its valid repetitions, as recorded. */
  readonly loadTxns?: readonly number[];
  /** How its load was chosen (experiments/saturation.ts), from its first repetition that has it. */
  readonly saturation?: Saturation;
  /** Repetitions not in steady state, with why (infra/run/steady.ts). */
  readonly notSteady: readonly string[];
  /** The warm-up and window its valid repetitions used, and how the warm-up ended (issue 11 item 2). */
  readonly warmup?: string;
  /** The throughput's 95% interval is wider than NOISY_FRACTION of its mean. */
  readonly noisy: boolean;
  /** Figure 11b: why the point does not contain the view change it measures (never judged then). */
  readonly eventMissing?: string;
}

/** A point whose 95% interval of throughput is wider than this fraction of its mean is flagged noisy (issue 11 item 5). */
export const NOISY_FRACTION = 0.1;

export interface PointBottleneck {
  readonly kind: BottleneckKind;
  /** Repetitions with that kind, of those with a verdict. */
  readonly count: number;
  readonly of: number;
  readonly detail: string;
  /** Processes of the run (replicas and client machines). */
  readonly processes?: number;
}

/** The extra fields a real run's runs.jsonl line carries beside RunRecord (experiments/sweep.ts recordFromRunResult). */
interface MeasuredExtras {
  readonly bottleneck?: Bottleneck;
  readonly steady?: Steady;
  readonly saturation?: Saturation;
  readonly load?: { readonly closedLoopTxns?: number };
  readonly processes?: readonly unknown[];
  readonly windowSec?: number;
  readonly viewChangeStartSec?: number;
}

const extrasOf = (r: RunRecord): MeasuredExtras => r as RunRecord & MeasuredExtras;

function bottleneckOf(records: readonly RunRecord[]): PointBottleneck | undefined {
  const withVerdict = records.map(extrasOf).filter((r) => r.bottleneck !== undefined);
  if (withVerdict.length === 0) return undefined;
  const counts = new Map<BottleneckKind, MeasuredExtras[]>();
  for (const r of withVerdict) counts.set(r.bottleneck!.kind, [...(counts.get(r.bottleneck!.kind) ?? []), r]);
  const [kind, list] = [...counts.entries()].sort((a, b) => b[1].length - a[1].length)[0]!;
  const first = list[0]!;
  return {
    kind,
    count: list.length,
    of: withVerdict.length,
    detail: first.bottleneck!.detail,
    ...(first.processes === undefined ? {} : { processes: first.processes.length }),
  };
}

/**
 * Figure 11b's point measures a view change: each valid repetition must have one that began
 * inside its measured window, or the point is flagged and left out of the claims.
 */
function eventMissingOf(point: SweepPoint, records: readonly RunRecord[]): string | undefined {
  if (point.primaryStopsAfter === undefined || records.length === 0) return undefined;
  const missing = records.filter((r) => {
    const e = extrasOf(r);
    if (r.metrics?.viewChanges === 0) return true;
    const start = e.viewChangeStartSec;
    return start !== undefined && e.windowSec !== undefined && (start < 0 || start >= e.windowSec);
  });
  if (missing.length === 0) return undefined;
  return `${missing.length} of ${records.length} repetition(s) had no view change beginning inside the measured window: the point does not measure a primary failure`;
}

/**
 * The record that counts for each (experiment, point, repetition): a resumed sweep may have
 * written the same repetition twice (a failed attempt, then a good one). The last valid record
 * wins; a repetition with no valid record keeps its last failure. Only sweeps of a figure
 * number their repetitions: lines of any other experiment (`poe-bench run` appends rep 0 every
 * time) each count as a run of their own.
 */
export function latestPerRepetition(records: readonly RunRecord[]): RunRecord[] {
  const byKey = new Map<string, RunRecord>();
  records.forEach((r, line) => {
    const rep = figureOfExperiment(r.experiment) === undefined ? `line ${line}` : String(r.rep);
    const key = `${r.experiment}\u0000${r.pointId}\u0000${rep}`;
    const prev = byKey.get(key);
    if (prev === undefined || r.valid || !prev.valid) byKey.set(key, r);
  });
  return [...byKey.values()];
}

/**
 * Failed or invalid records that a later valid record of the same repetition replaced
 * (`figure --retry-failed`). They do not enter the means, but a report lists them: a protocol
 * that needed retries must not look as reliable as one that did not.
 */
export function supersededFailures(records: readonly RunRecord[]): RunRecord[] {
  const kept = new Set(latestPerRepetition(records));
  return records.filter((r) => !r.valid && !kept.has(r));
}

function summaryOf(values: readonly (number | undefined)[]): Summary | undefined {
  const present = values.filter((v): v is number => v !== undefined && Number.isFinite(v));
  return present.length === 0 ? undefined : summarize(present);
}

function seriesOf(records: readonly RunRecord[]): SeriesBucket[] | undefined {
  const byBucket = new Map<number, number[]>();
  for (const r of records) {
    for (const b of r.metrics?.throughputSeries ?? []) {
      const list = byBucket.get(b.tSec) ?? [];
      list.push(b.txnPerSec);
      byBucket.set(b.tSec, list);
    }
  }
  if (byBucket.size === 0) return undefined;
  return [...byBucket.entries()].sort((a, b) => a[0] - b[0]).map(([tSec, values]) => ({ tSec, txnPerSec: summarize(values) }));
}

/**
 * Groups records by (experiment, pointId) and summarizes each group's valid repetitions.
 * Latencies come in milliseconds (RunMetrics.latencyMs) and leave in seconds, the unit of the
 * paper's figures (13.24 s for Zyzzyva, §5.1). Points come out in first-seen order.
 */
export function aggregate(records: readonly RunRecord[]): AggregatedPoint[] {
  const groups = new Map<string, RunRecord[]>();
  for (const r of latestPerRepetition(records)) {
    const key = `${r.experiment}\u0000${r.pointId}`;
    const list = groups.get(key) ?? [];
    list.push(r);
    groups.set(key, list);
  }
  const out: AggregatedPoint[] = [];
  for (const list of groups.values()) {
    const first = list[0]!;
    const ok = list.filter((r) => r.valid && r.metrics !== undefined);
    const bad = list.filter((r) => !(r.valid && r.metrics !== undefined));
    const m = ok.map((r) => r.metrics!);
    const series = seriesOf(ok);
    out.push({
      experiment: first.experiment,
      pointId: first.pointId,
      point: first.point,
      reps: ok.length,
      failed: bad.length,
      reasons: bad.map((r) => r.reason ?? (r.valid ? 'no metrics recorded' : 'invalid (no reason recorded)')),
      ...Object.fromEntries(Object.entries(SUMMARIZED).map(([key, read]) => [key, summaryOf(m.map(read))])),
      ...(series === undefined ? {} : { throughputSeries: series }),
      ...measuredExtras(first.point, ok, list),
    });
  }
  return out;
}

function measuredExtras(
  point: SweepPoint,
  ok: readonly RunRecord[],
  all: readonly RunRecord[],
): Pick<AggregatedPoint, 'bottleneck' | 'loadTxns' | 'saturation' | 'notSteady' | 'warmup' | 'noisy' | 'eventMissing'> {
  // An invalid run that completed still says what bound it (a point with no valid run too).
  const bottleneck = bottleneckOf(ok.length > 0 ? ok : all);
  const loads = [...new Set(ok.map((r) => extrasOf(r).load?.closedLoopTxns).filter((x): x is number => x !== undefined))];
  const saturation = ok.map((r) => extrasOf(r).saturation).find((x) => x !== undefined);
  const notSteady = ok.flatMap((r) => {
    const st = extrasOf(r).steady;
    return st === undefined || (st.settled && st.windowLongEnough) ? [] : [`repetition ${r.rep + 1}: ${st.flags.join('; ')}`];
  });
  const warmups = ok.map((r) => extrasOf(r).steady).filter((st): st is Steady => st?.warmupEndedBy !== undefined);
  const warmup =
    warmups.length === 0
      ? undefined
      : warmups
          .map(
            (st) =>
              `warm-up ${st.warmupSec.toFixed(1)} s (${st.warmupEndedBy === 'settled' ? 'settled' : st.warmupEndedBy === 'cap' ? `cap ${st.warmupCapSec} s, not settled` : 'fixed'}), window ${st.windowSec} s${st.windowExtended ? ` (extended from ${st.plannedWindowSec} s)` : ''}`,
          )
          .join(' | ');
  const t = summaryOf(ok.map((r) => r.metrics!.throughputTxnPerSec));
  const noisy = t !== undefined && t.interval === 'ci95' && t.mean > 0 && t.hi - t.lo > NOISY_FRACTION * t.mean;
  const eventMissing = eventMissingOf(point, ok);
  return {
    ...(bottleneck === undefined ? {} : { bottleneck }),
    ...(loads.length === 0 ? {} : { loadTxns: loads }),
    ...(saturation === undefined ? {} : { saturation }),
    notSteady,
    ...(warmup === undefined ? {} : { warmup }),
    noisy,
    ...(eventMissing === undefined ? {} : { eventMissing }),
  };
}

/** The quantities charts, tables, sentences and claims read from an aggregated point. */
export type MetricName = 'throughput' | 'latencyMean' | 'latencyP99' | 'messages';

export function metricOf(p: AggregatedPoint, metric: MetricName): Summary | undefined {
  switch (metric) {
    case 'throughput':
      return p.throughputTxnPerSec;
    case 'latencyMean':
      return p.latencyMeanSec;
    case 'latencyP99':
      return p.latencyP99Sec;
    case 'messages':
      return p.messagesPerSec;
  }
}

/** The aggregated points of one figure, looked up by protocol and x value. */
export interface FigureData {
  readonly figure: FigureDef;
  readonly points: readonly AggregatedPoint[];
}

/** Selects a figure's points (see belongsTo in figures.ts) from aggregated points of any figures. */
export function figureData(figure: FigureDef, points: readonly AggregatedPoint[]): FigureData {
  return { figure, points: points.filter((p) => belongsTo(figure, p)) };
}

/** The point of `protocol` at `x` on the figure's axis, if it was run. */
export function pointAt(data: FigureData, protocol: ProtocolName, x: number): AggregatedPoint | undefined {
  return data.points.find((p) => p.point.protocol === protocol && xOf(data.figure, p.point) === x);
}

/** Mean of a metric at (protocol, x); undefined when the point is missing or has no valid repetition. */
export function valueAt(data: FigureData, protocol: ProtocolName, x: number, metric: MetricName): number | undefined {
  const p = pointAt(data, protocol, x);
  return p === undefined ? undefined : metricOf(p, metric)?.mean;
}

/** The x values present in a figure's data, ascending. */
export function xValues(data: FigureData): number[] {
  return [...new Set(data.points.map((p) => xOf(data.figure, p.point)))].sort((a, b) => a - b);
}

/** The protocols present in a figure's data, in legend order. */
export function protocolsIn(data: FigureData): ProtocolName[] {
  const present = new Set(data.points.map((p) => p.point.protocol));
  return PROTOCOL_ORDER.filter((p) => present.has(p));
}
