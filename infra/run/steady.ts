/**
 * Was the run in steady state (DESIGN.md "Metrics": steady state; issue 11 item 2)? Judged from
 * the 1-second throughput series the clients report (metrics.ts throughputSeries), by one pure
 * function:
 * - the warm-up settled: its last WARMUP_TAIL_SEC full seconds stay within SETTLED_PERCENT of
 *   their mean (the warm-up is the profile's, a cap: a warm-up that had not settled is flagged);
 * - trendPercent: the least-squares slope of the measured seconds, times the window's length,
 *   as a percentage of their mean: how much throughput drifted from the window's start to its
 *   end (positive: still rising). `settled` holds when both the warm-up settled and the drift
 *   is within SETTLED_PERCENT;
 * - the window is at least WINDOW_OVER_LATENCY times the mean latency (else too few round
 *   trips of each client were measured), flagged otherwise.
 */
import type { RunMetricsReport } from './metrics.js';

export const SETTLED_PERCENT = 10;
export const WARMUP_TAIL_SEC = 3;
export const WINDOW_OVER_LATENCY = 20;

export interface Steady {
  readonly settled: boolean;
  /** Drift of throughput across the window, % of its mean (see the header). */
  readonly trendPercent: number;
  /** The warm-up's last seconds were within SETTLED_PERCENT of their mean. */
  readonly warmupSettled: boolean;
  readonly warmupSec: number;
  readonly windowSec: number;
  /** The window over the mean latency. */
  readonly windowOverLatency: number;
  readonly windowLongEnough: boolean;
  /** The largest request timeout the clients used at the end (adaptive ones follow the latency). */
  readonly clientTimeoutMs?: number;
  /** What was not steady, in words; empty when steady. */
  readonly flags: readonly string[];
}

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Relative least-squares drift of ys over their span, % of their mean; 0 for fewer than 2 points. */
export function trendPercent(ys: readonly number[]): number {
  const n = ys.length;
  if (n < 2) return 0;
  const mean = ys.reduce((a, b) => a + b, 0) / n;
  if (mean <= 0) return 0;
  const xMean = (n - 1) / 2;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (i - xMean) * (ys[i]! - mean);
    den += (i - xMean) ** 2;
  }
  return round((100 * (num / den) * n) / mean);
}

function spreadPercent(ys: readonly number[]): number {
  if (ys.length === 0) return 0;
  const mean = ys.reduce((a, b) => a + b, 0) / ys.length;
  return mean > 0 ? (100 * (Math.max(...ys) - Math.min(...ys))) / mean : 0;
}

export function judgeSteady(m: Pick<RunMetricsReport, 'throughputSeries' | 'windowSec' | 'latencyMs'>, warmupSec: number, clientTimeoutMs?: number): Steady {
  const full = (t: number): boolean => t >= -Math.floor(warmupSec) && t + 1 <= m.windowSec + 1e-9;
  const measured = m.throughputSeries.filter((b) => b.tSec >= 0 && full(b.tSec)).map((b) => b.txnPerSec);
  const warm = m.throughputSeries
    .filter((b) => b.tSec < 0 && full(b.tSec))
    .slice(-WARMUP_TAIL_SEC)
    .map((b) => b.txnPerSec);
  const trend = trendPercent(measured);
  const warmupSpread = spreadPercent(warm);
  const warmupSettled = warm.length >= 2 && warmupSpread <= 2 * SETTLED_PERCENT;
  const windowOverLatency = m.latencyMs.mean > 0 ? round((m.windowSec * 1000) / m.latencyMs.mean) : 0;
  const windowLongEnough = windowOverLatency >= WINDOW_OVER_LATENCY;
  const nothing = measured.every((t) => t <= 0);
  const flags = [
    ...(nothing ? ["nothing was accepted in the window's whole seconds"] : []),
    ...(warmupSettled ? [] : [`the warm-up (${warmupSec} s, the profile's cap) had not settled: its last seconds spread ${round(warmupSpread)}%`]),
    ...(Math.abs(trend) <= SETTLED_PERCENT ? [] : [`throughput drifted ${trend > 0 ? '+' : ''}${trend}% across the window`]),
    ...(windowLongEnough
      ? []
      : [`the window (${m.windowSec} s) is only ${windowOverLatency} times the mean latency (${m.latencyMs.mean} ms); ${WINDOW_OVER_LATENCY} wanted`]),
  ];
  return {
    settled: !nothing && warmupSettled && Math.abs(trend) <= SETTLED_PERCENT,
    trendPercent: trend,
    warmupSettled,
    warmupSec,
    windowSec: m.windowSec,
    windowOverLatency,
    windowLongEnough,
    ...(clientTimeoutMs === undefined ? {} : { clientTimeoutMs }),
    flags,
  };
}
