/**
 * A client machine's accepted transactions per second (DESIGN.md "Metrics"), in the two forms
 * the process runtime reports (infra/process/client.ts): whole seconds since its `start`, which
 * the harness watches to end the warm-up (infra/run/steady.ts warmupSettledAt), and seconds from
 * the measurement window's start, warm-up seconds negative, which the results carry.
 *
 * The window's start is known only once it opens (at the harness's `open-window`, or at the
 * warm-up's cap), and need not fall on a whole second since `start`. So acceptances are kept one
 * by one (time, transactions) until the window opens, then folded into per-second buckets from
 * its start, and every later one goes straight into a bucket: after the warm-up, one copy per
 * second instead of one per accepted batch for the whole run.
 *
 * Pure like the client core: times are the caller's clock (ms), passed in; nothing is read here.
 */

/** The measurement window as this series needs it (infra/process/support.ts MeasurementWindow). */
export interface WindowEdges {
  /** When the process started (its `start`): the warm-up begins here. */
  readonly startedAtMs: number;
  readonly opened: boolean;
  /**
   * [startMs, endMs): the cap's until the window opens; once open, startMs is fixed, and endMs
   * only grows, never past a time already reached (an extension is refused once the end passed).
   */
  readonly startMs: number;
  readonly endMs: number;
}

/** The per-second series from the window's start: bucket i covers [start + (firstBucketSec + i) s, + 1 s). */
export interface WindowSeries {
  readonly firstBucketSec: number;
  readonly txnsPerSecond: number[];
}

export class AcceptanceSeries {
  /** Transactions accepted in second i since the start. */
  private readonly sinceStart: number[] = [];
  /** Until the window opens: each acceptance's time and transactions. */
  private pendingAtMs: number[] = [];
  private pendingTxns: number[] = [];
  /** Once the window opened: its buckets (txnsPerSecond, without the trailing empty seconds). */
  private opened: Buckets | undefined;

  /** A batch of `txns` transactions accepted at `acceptedMs` (not before `window.startedAtMs`'s clock). */
  add(acceptedMs: number, txns: number, window: WindowEdges): void {
    const second = Math.floor((acceptedMs - window.startedAtMs) / 1000);
    if (second >= 0) {
      while (this.sinceStart.length <= second) this.sinceStart.push(0);
      this.sinceStart[second]! += txns;
    }
    if (!window.opened) {
      this.pendingAtMs.push(acceptedMs);
      this.pendingTxns.push(txns);
      return;
    }
    addTo(this.fold(window), acceptedMs, txns, window);
  }

  /** The whole seconds since the start by `nowMs` (the second under way left out), with the empty ones. */
  secondsSinceStart(nowMs: number, window: WindowEdges): number[] {
    const whole = Math.max(0, Math.floor((nowMs - window.startedAtMs) / 1000));
    const seconds = this.sinceStart.slice(0, whole);
    while (seconds.length < whole) seconds.push(0);
    return seconds;
  }

  /**
   * Accepted transactions per 1-second bucket from the window's start, up to its end (the last
   * bucket cut by it); warm-up buckets first, with negative seconds, the first cut by the start.
   * A window not opened yet is taken at its cap.
   */
  window(window: WindowEdges): WindowSeries {
    const { firstBucketSec, buckets } = window.opened ? this.fold(window) : this.bucketsOfPending(window);
    const txnsPerSecond = new Array<number>(-firstBucketSec + Math.ceil((window.endMs - window.startMs) / 1000)).fill(0);
    for (let i = 0; i < Math.min(buckets.length, txnsPerSecond.length); i++) txnsPerSecond[i] = buckets[i]!;
    return { firstBucketSec, txnsPerSecond };
  }

  /** The window opened: the acceptances kept one by one go into its buckets, and are dropped. */
  private fold(window: WindowEdges): Buckets {
    if (this.opened) return this.opened;
    this.opened = this.bucketsOfPending(window);
    this.pendingAtMs = [];
    this.pendingTxns = [];
    return this.opened;
  }

  private bucketsOfPending(window: WindowEdges): Buckets {
    // Whole seconds of warm-up only: a fixed warm-up's window opens when its timer fires, a few
    // ms after the cap (8.003 s made a ninth bucket of 3 ms); a timer a hair early still counts.
    const wholeWarmupSec = Math.floor((window.startMs - window.startedAtMs) / 1000 + 0.05);
    const firstBucketSec = wholeWarmupSec === 0 ? 0 : -wholeWarmupSec;
    const into: Buckets = { firstBucketSec, buckets: [] };
    for (let i = 0; i < this.pendingAtMs.length; i++) addTo(into, this.pendingAtMs[i]!, this.pendingTxns[i]!, window);
    return into;
  }
}

interface Buckets {
  readonly firstBucketSec: number;
  readonly buckets: number[];
}

/**
 * One acceptance into the bucket of its second, unless at or after the window's end. Deciding
 * that when it is added is final: the end only grows, and not once a time at or after it has
 * been reached (WindowEdges).
 */
function addTo(into: Buckets, acceptedMs: number, txns: number, window: WindowEdges): void {
  if (acceptedMs >= window.endMs) return;
  const bucket = Math.floor((acceptedMs - window.startMs) / 1000) - into.firstBucketSec;
  if (bucket < 0) return;
  while (into.buckets.length <= bucket) into.buckets.push(0);
  into.buckets[bucket]! += txns;
}
