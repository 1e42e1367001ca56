/**
 * Steady state (DESIGN.md "Metrics": steady state; issue 11 item 2): when the warm-up ends, and
 * whether the run was in steady state.
 *
 * One rule says when the 1-second throughput series has settled (`tailSettled`): its last
 * WARMUP_TAIL_SEC whole seconds spread (max - min) by at most 2 x SETTLED_PERCENT of their mean,
 * and their mean is above zero. The same rule ends the warm-up while the run goes on
 * (`warmupSettledAt`, which infra/run/execute.ts asks at every poll: the window opens at once
 * when it holds and so does the memory rule below, at the earliest MIN_WARMUP_SEC after the
 * start, else at the warm-up's cap) and judges it
 * afterwards (`judgeSteady`, on the whole seconds before the window the clients report).
 *
 * Judged from the 1-second throughput series the clients report (metrics.ts throughputSeries):
 * - the warm-up settled: its last whole seconds before the window pass `tailSettled` (a
 *   warm-up that reached its cap, or a fixed one, without settling is flagged);
 * - trendPercent: the least-squares slope of the measured seconds, times the window's length,
 *   as a percentage of their mean: how much throughput drifted from the window's start to its
 *   end (positive: still rising). `settled` holds when both the warm-up settled and the drift
 *   is within SETTLED_PERCENT;
 * - the window is at least WINDOW_OVER_LATENCY times the mean latency (else too few round
 *   trips of each client were measured): the harness extends a window that is too short, up
 *   to WINDOW_EXTENSION_CAP times its planned length (`extendedWindowMs`), and flags it if
 *   even that is too short.
 *
 * And one rule the throughput cannot see (`memorySettled`): the resident memory of all the
 * run's processes together grew by at most MEMORY_GROWTH_PERCENT over the warm-up's last
 * WARMUP_TAIL_SEC seconds. Each process reports its own (the control channel's `memory`), so
 * the rule holds on every backend. Why: measured on this machine (2026-12-05, PBFT, 16
 * replicas, 2,400 transactions outstanding), the 1-second throughput sat flat at 29-39K txn/s
 * for 12 s, which the throughput rule calls settled at 4-6 s, while the replicas grew from 55
 * to about 205 MB each (30-50K minor page faults a second in all); `perf record -a` over those
 * seconds put 27% of the machine's CPU in the kernel zeroing fresh pages (clear_page_erms),
 * against 1.2% once the growth stopped, and the same 190% of CPU then gave 53-62K txn/s. A
 * window opened during the growth measured that start-up, not the protocol.
 */
import type { RunMetricsReport } from './metrics.js';

export const SETTLED_PERCENT = 10;
export const WARMUP_TAIL_SEC = 3;
/**
 * The most the run's processes' resident memory may grow, in all, over the warm-up's last
 * WARMUP_TAIL_SEC seconds, % of where it was (see the header): 1% a second. In the run above it
 * grew 3-7% a second while the throughput was held down, and 0.1-0.3% a second after. PoE at 4
 * replicas grew 36% in its first 3 s, then in steps of 25-40 MB (V8's heap, 3-5%) until about
 * 10 s, with its throughput within 5% from 5 s on.
 */
export const MEMORY_GROWTH_PERCENT = 3;
/**
 * Real runs' warm-up cap, the default of `run`, `bench`, calibrate and validate and of the quick
 * and default figure profiles: the window opens as soon as both rules hold, which on this 2-core
 * machine took 8-19 s at 4 and 8 replicas, 15-17 s at 16 and 27-37 s at 32 (2026-12-05).
 */
export const WARMUP_CAP_SEC = 40;
/**
 * The nominal warm-up of a simulated or modelled run (the default figure profile's, and `run
 * --backend model`'s without --warmup): a share of its time, not a cap to wait out.
 */
export const NOMINAL_WARMUP_SEC = 10;
/** The shortest warm-up: one whole tail of seconds. */
export const MIN_WARMUP_SEC = WARMUP_TAIL_SEC;
export const WINDOW_OVER_LATENCY = 20;
/** A window too short for WINDOW_OVER_LATENCY mean latencies is extended to at most this many times its planned length. */
export const WINDOW_EXTENSION_CAP = 3;

/** How the warm-up ended: its 1-second throughput settled, it reached its cap, or it was fixed (--fixed-warmup). */
export type WarmupEnd = 'settled' | 'cap' | 'fixed';

/**
 * The settled rule, the one definition: the last WARMUP_TAIL_SEC of `seconds` (throughput of
 * whole seconds, oldest first) spread by at most 2 x SETTLED_PERCENT of their mean, and their
 * mean is above zero (a run accepting nothing has not settled). Fewer seconds: not settled.
 */
export function tailSettled(seconds: readonly number[]): { settled: boolean; spreadPercent: number } {
  const tail = seconds.slice(-WARMUP_TAIL_SEC);
  const mean = tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length);
  const spread = spreadPercent(tail);
  return { settled: tail.length === WARMUP_TAIL_SEC && mean > 0 && spread <= 2 * SETTLED_PERCENT, spreadPercent: round(spread) };
}

/**
 * The live decision: given the throughput of the whole seconds since the run's start (second
 * i covers [i, i + 1) s), the first k >= MIN_WARMUP_SEC (and >= fromSec) at which seconds
 * k - WARMUP_TAIL_SEC .. k - 1 have settled (`tailSettled`); undefined if none yet. The harness
 * asks with the seconds so far and opens the window at the answer if the memory rule holds too;
 * while it does not, the harness moves fromSec to the seconds so far, so that the throughput
 * must be settled over the seconds up to the moment memory has.
 */
export function warmupSettledAt(seconds: readonly number[], fromSec = 0): number | undefined {
  // Only each prefix's tail is judged: a poll costs WARMUP_TAIL_SEC per second so far.
  for (let k = Math.max(MIN_WARMUP_SEC, fromSec); k <= seconds.length; k++) {
    if (tailSettled(seconds.slice(Math.max(0, k - WARMUP_TAIL_SEC), k)).settled) return k;
  }
  return undefined;
}

/** The resident memory of all the run's processes at one moment (harness clock). */
export interface MemorySample {
  readonly atMs: number;
  readonly rssBytes: number;
}

/** The memory rule's verdict (`memorySettled`): growthPercent is undefined while the samples span less than the tail. */
export interface MemoryVerdict {
  readonly settled: boolean;
  readonly growthPercent: number | undefined;
}

/**
 * The memory rule (see the header) on samples oldest first: the growth from the last sample at
 * least WARMUP_TAIL_SEC seconds before the newest one to the newest, % of the older. Not
 * settled, and no growth, while the samples span less than that.
 */
export function memorySettled(samples: readonly MemorySample[]): MemoryVerdict {
  const last = samples[samples.length - 1];
  if (!last) return { settled: false, growthPercent: undefined };
  let from: MemorySample | undefined;
  for (const s of samples) if (s.atMs <= last.atMs - WARMUP_TAIL_SEC * 1000) from = s;
  if (!from || from.rssBytes <= 0) return { settled: false, growthPercent: undefined };
  const growth = (100 * (last.rssBytes - from.rssBytes)) / from.rssBytes;
  return { settled: growth <= MEMORY_GROWTH_PERCENT, growthPercent: round(growth, 2) };
}

/**
 * The live decision at one poll of an adaptive warm-up (infra/run/execute.ts driveWindow),
 * given the whole seconds' throughput so far, the memory samples so far and the `fromSec` the
 * previous poll returned (0 at the first). While memory still grows the window stays shut and
 * fromSec moves to the seconds so far, so that the throughput's tail is judged from there once
 * memory has settled (warmupSettledAt). `settledTail`: the seconds that settled, when the
 * window should open now; absent otherwise. `memory`: the memory rule now. No seconds (the
 * harness no longer watching, near the cap): never open.
 */
export function warmupPoll(
  seconds: readonly number[],
  memory: readonly MemorySample[],
  fromSec: number,
): { readonly fromSec: number; readonly settledTail?: readonly number[]; readonly memory: MemoryVerdict } {
  const mem = memorySettled(memory);
  const from = !mem.settled && seconds.length > 0 ? seconds.length : fromSec;
  const at = mem.settled ? warmupSettledAt(seconds, from) : undefined;
  return at === undefined ? { fromSec: from, memory: mem } : { fromSec: from, settledTail: seconds.slice(at - WARMUP_TAIL_SEC, at), memory: mem };
}

/**
 * The window's new length when, near its planned end, it holds fewer than WINDOW_OVER_LATENCY
 * mean latencies: WINDOW_OVER_LATENCY times the mean latency so far, rounded up to whole
 * seconds, at most WINDOW_EXTENSION_CAP times the planned length; undefined when the planned
 * window is long enough. No latency yet (nothing accepted in the window) means the latency is
 * longer than the window so far: extended to the cap.
 */
export function extendedWindowMs(plannedMs: number, meanLatencyMs: number | undefined): number | undefined {
  if (meanLatencyMs !== undefined && plannedMs >= WINDOW_OVER_LATENCY * meanLatencyMs) return undefined;
  const wanted = meanLatencyMs === undefined ? Infinity : Math.ceil((WINDOW_OVER_LATENCY * meanLatencyMs) / 1000) * 1000;
  return Math.min(WINDOW_EXTENSION_CAP * plannedMs, wanted);
}

/** How the warm-up and the window went, as the harness ran them (infra/run/execute.ts). */
export interface WindowPlan {
  readonly warmupEndedBy: WarmupEnd;
  /** The warm-up's cap (the spec's --warmup), s. */
  readonly warmupCapSec: number;
  /** The window asked for (the spec's --duration), s. */
  readonly plannedWindowSec: number;
  /** The window was extended because it held too few mean latencies. */
  readonly windowExtended: boolean;
  /** Some process refused the extension (its window had closed): windows may differ. */
  readonly extensionRefused?: boolean;
  /** A settled warm-up: the whole seconds (txn/s, since the start) the live decision found settled. */
  readonly settledTail?: readonly number[];
  /**
   * The memory rule when the window opened (`memorySettled`): absent when the harness did not
   * watch the warm-up (a fixed one) or in records from before the rule.
   */
  readonly memory?: MemoryVerdict;
}

export interface Steady {
  readonly settled: boolean;
  /** Drift of throughput across the window, % of its mean (see the header). */
  readonly trendPercent: number;
  /** The warm-up's last seconds passed the settled rule (`tailSettled`). */
  readonly warmupSettled: boolean;
  /** Those seconds, txn/s (a settled warm-up's as the live decision saw them). */
  readonly warmupTail?: readonly number[];
  /** The warm-up actually used, s: from the start to the window's opening. */
  readonly warmupSec: number;
  /** How the warm-up ended; absent in records made before the warm-up was adaptive. */
  readonly warmupEndedBy?: WarmupEnd;
  /** The warm-up's cap, s (the spec's --warmup). */
  readonly warmupCapSec?: number;
  /** The window actually measured, s. */
  readonly windowSec: number;
  /** The window asked for, s; windowSec is longer when it was extended. */
  readonly plannedWindowSec?: number;
  readonly windowExtended?: boolean;
  /** The window over the mean latency. */
  readonly windowOverLatency: number;
  readonly windowLongEnough: boolean;
  /** The largest request timeout the clients used at the end (adaptive ones follow the latency). */
  readonly clientTimeoutMs?: number;
  /** The memory rule when the window opened (absent: not watched, see WindowPlan.memory). */
  readonly memorySettled?: boolean;
  /** The processes' resident memory growth over the warm-up's last seconds, % (absent: fewer seconds sampled). */
  readonly memoryGrowthPercent?: number;
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

function memoryFlag(growthPercent: number | undefined): string {
  return growthPercent === undefined
    ? `the window opened before the processes' memory had been watched for ${WARMUP_TAIL_SEC} s`
    : `the processes' resident memory grew ${growthPercent}% over the warm-up's last ${WARMUP_TAIL_SEC} s (at most ${MEMORY_GROWTH_PERCENT}% wanted): first touches of fresh memory still cost CPU`;
}

/**
 * The judgement after the run. `warmupSec` is the warm-up actually used; `plan` says how it
 * ended and whether the window was extended (absent: a fixed warm-up of warmupSec, the window
 * as measured).
 */
export function judgeSteady(
  m: Pick<RunMetricsReport, 'throughputSeries' | 'windowSec' | 'latencyMs'>,
  warmupSec: number,
  clientTimeoutMs?: number,
  plan?: WindowPlan,
): Steady {
  const full = (t: number): boolean => t >= -Math.floor(warmupSec + 1e-9) && t + 1 <= m.windowSec + 1e-9;
  const measured = m.throughputSeries.filter((b) => b.tSec >= 0 && full(b.tSec)).map((b) => b.txnPerSec);
  // A settled warm-up is judged on the seconds the live decision saw (whole seconds since the
  // start); a warm-up that reached its cap, or a fixed one, on the whole seconds before the window.
  const warm =
    plan?.warmupEndedBy === 'settled' && plan.settledTail
      ? [...plan.settledTail]
      : m.throughputSeries.filter((b) => b.tSec < 0 && full(b.tSec)).map((b) => b.txnPerSec);
  const trend = trendPercent(measured);
  const { settled: warmupSettled, spreadPercent: warmupSpread } = tailSettled(warm);
  const warmupShown = round(warmupSec, 1);
  const endedBy = plan?.warmupEndedBy ?? 'fixed';
  const warmupWhy =
    warm.length < WARMUP_TAIL_SEC
      ? `only ${warm.length} whole second${warm.length === 1 ? '' : 's'} before the window, ${WARMUP_TAIL_SEC} wanted`
      : `its last seconds spread ${warmupSpread}%`;
  const warmupFlag =
    endedBy === 'cap'
      ? `the warm-up reached its cap (${warmupShown} s) before it settled: ${warmupWhy}`
      : endedBy === 'settled'
        ? `the warm-up ended at ${warmupShown} s as settled, but its seconds had not: ${warmupWhy}`
        : `the warm-up (${warmupShown} s, fixed) had not settled: ${warmupWhy}`;
  const windowOverLatency = m.latencyMs.mean > 0 ? round((m.windowSec * 1000) / m.latencyMs.mean) : 0;
  const windowLongEnough = windowOverLatency >= WINDOW_OVER_LATENCY;
  const nothing = measured.every((t) => t <= 0);
  const memoryOk = plan?.memory?.settled !== false;
  const flags = [
    ...(nothing ? ["nothing was accepted in the window's whole seconds"] : []),
    ...(warmupSettled ? [] : [warmupFlag]),
    ...(Math.abs(trend) <= SETTLED_PERCENT ? [] : [`throughput drifted ${trend > 0 ? '+' : ''}${trend}% across the window`]),
    ...(windowLongEnough
      ? []
      : [
          `the window (${m.windowSec} s${plan?.windowExtended ? `, extended from ${plan.plannedWindowSec} s, at most ${WINDOW_EXTENSION_CAP}x` : ''}) is only ${windowOverLatency} times the mean latency (${m.latencyMs.mean} ms); ${WINDOW_OVER_LATENCY} wanted`,
        ]),
    ...(plan?.extensionRefused ? ['a process refused the window extension (its window had already closed): the processes measured different windows'] : []),
    ...(memoryOk ? [] : [memoryFlag(plan!.memory!.growthPercent)]),
  ];
  return {
    settled: !nothing && warmupSettled && Math.abs(trend) <= SETTLED_PERCENT && memoryOk,
    trendPercent: trend,
    warmupSettled,
    warmupTail: warm.slice(-WARMUP_TAIL_SEC),
    warmupSec: round(warmupSec, 3),
    ...(plan ? { warmupEndedBy: plan.warmupEndedBy, warmupCapSec: plan.warmupCapSec } : {}),
    windowSec: m.windowSec,
    ...(plan ? { plannedWindowSec: plan.plannedWindowSec, windowExtended: plan.windowExtended } : {}),
    windowOverLatency,
    windowLongEnough,
    ...(clientTimeoutMs === undefined ? {} : { clientTimeoutMs }),
    ...(plan?.memory ? { memorySettled: plan.memory.settled } : {}),
    ...(plan?.memory?.growthPercent === undefined ? {} : { memoryGrowthPercent: plan.memory.growthPercent }),
    flags,
  };
}
