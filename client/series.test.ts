/**
 * The acceptance series (DESIGN.md "Metrics": throughput per second, warm-up seconds before the
 * window) against the rule it replaced in infra/process/client.ts, which kept every acceptance
 * and cut the series from all of them when the metrics were taken: same buckets, whatever the
 * window did (opened by command or at its cap, late timer, extension).
 */
import { describe, expect, it } from 'vitest';
import { Rng } from './random.js';
import { AcceptanceSeries, type WindowEdges } from './series.js';

/** The series as infra/process/client.ts cut it before, from every acceptance, at the end. */
function referenceSeries(accepted: ReadonlyArray<readonly [number, number]>, w: WindowEdges): { firstBucketSec: number; txnsPerSecond: number[] } {
  const wholeWarmupSec = Math.floor((w.startMs - w.startedAtMs) / 1000 + 0.05);
  const firstBucketSec = wholeWarmupSec === 0 ? 0 : -wholeWarmupSec;
  const txnsPerSecond = new Array<number>(-firstBucketSec + Math.ceil((w.endMs - w.startMs) / 1000)).fill(0);
  for (const [t, txns] of accepted) {
    if (t >= w.endMs) continue;
    const bucket = Math.floor((t - w.startMs) / 1000) - firstBucketSec;
    if (bucket >= 0 && bucket < txnsPerSecond.length) txnsPerSecond[bucket]! += txns;
  }
  return { firstBucketSec, txnsPerSecond };
}

function referenceSinceStart(accepted: ReadonlyArray<readonly [number, number]>, nowMs: number, w: WindowEdges): number[] {
  const whole = Math.max(0, Math.floor((nowMs - w.startedAtMs) / 1000));
  const seconds = new Array<number>(whole).fill(0);
  for (const [t, txns] of accepted) {
    const s = Math.floor((t - w.startedAtMs) / 1000);
    if (s >= 0 && s < whole) seconds[s]! += txns;
  }
  return seconds;
}

/** MeasurementWindow's edges (infra/process/support.ts) on a simulated clock. */
class FakeWindow implements WindowEdges {
  opened = false;
  startMs: number;
  endMs: number;
  constructor(
    readonly startedAtMs: number,
    capMs: number,
    private readonly durationMs: number,
  ) {
    this.startMs = startedAtMs + capMs;
    this.endMs = this.startMs + durationMs;
  }
  /** Opens at `atMs` (a command) or at the cap if that has passed (its timer late). */
  open(nowMs: number): void {
    if (this.opened) return;
    if (nowMs < this.startMs) this.startMs = nowMs;
    this.endMs = this.startMs + this.durationMs;
    this.opened = true;
  }
  extend(durationMs: number, nowMs: number): void {
    if (!this.opened || nowMs >= this.endMs) return;
    this.endMs = Math.max(this.endMs, this.startMs + durationMs);
  }
}

const rnd = (rng: Rng, below: number): number => rng.nextU32() % below;

describe('AcceptanceSeries', () => {
  it('buckets a small run by hand: warm-up seconds negative, the window cut at its end', () => {
    const w = new FakeWindow(100, 3000, 2000);
    const s = new AcceptanceSeries();
    s.add(100, 1, w); // second 0 since start, bucket -3
    s.add(1600, 2, w); // second 1, bucket -2
    w.open(2850); // by command: start 2850, end 4850; whole warm-up seconds: floor(2.75 + 0.05) = 2
    s.add(2900, 4, w); // bucket 0
    s.add(4849, 8, w); // bucket 1
    s.add(4850, 16, w); // at the end: outside
    // bucket -2 covers [850, 1850): holds 1600; 100 is before bucket -2, cut by the start.
    expect(s.window(w)).toEqual({ firstBucketSec: -2, txnsPerSecond: [2, 0, 4, 8] });
    // Since the start: seconds 0..3 whole by 4900 (second 4, under way, left out).
    expect(s.secondsSinceStart(4900, w)).toEqual([1, 2, 4, 0]);
  });

  const SEED = 20211117;
  it(`equals the cut-at-the-end rule for random runs (seed ${SEED})`, () => {
    const rng = new Rng(SEED);
    for (let run = 0; run < 400; run++) {
      const startedAtMs = rnd(rng, 100_000) + rnd(rng, 1000) / 1000;
      const capMs = [0, 1000, 2500, 3000, 8000][rnd(rng, 5)]!;
      const durationMs = [1000, 2000, 3500][rnd(rng, 3)]!;
      const w = new FakeWindow(startedAtMs, capMs, durationMs);
      // Opened by command before the cap, or at the cap by a timer up to 40 ms late.
      const openAtMs = rnd(rng, 2) === 0 ? startedAtMs + rnd(rng, capMs + 1) : startedAtMs + capMs + rnd(rng, 40);
      const extendAtMs = startedAtMs + rnd(rng, capMs + 2 * durationMs + 1);
      const s = new AcceptanceSeries();
      const accepted: Array<[number, number]> = [];
      let now = startedAtMs;
      const endAtMs = startedAtMs + capMs + 4 * durationMs;
      while (now < endAtMs) {
        now += rnd(rng, 300) + rnd(rng, 1000) / 997;
        if (now >= openAtMs) w.open(now);
        if (now >= extendAtMs) w.extend(durationMs * 2, now);
        const txns = 1 + rnd(rng, 100);
        accepted.push([now, txns]);
        s.add(now, txns, w);
        if (rnd(rng, 50) === 0) expect(s.window(w), `run ${run}, midway at ${now}`).toEqual(referenceSeries(accepted, w));
      }
      expect(s.window(w), `run ${run}`).toEqual(referenceSeries(accepted, w));
      expect(s.secondsSinceStart(now, w), `run ${run}`).toEqual(referenceSinceStart(accepted, now, w));
    }
  });

  it('a window that never opened is cut at its cap, as before', () => {
    const w = new FakeWindow(0, 2000, 1000);
    const s = new AcceptanceSeries();
    const accepted: Array<[number, number]> = [
      [10, 1],
      [1990, 2],
      [2500, 3],
      [3100, 4],
    ];
    for (const [t, x] of accepted) s.add(t, x, w);
    expect(s.window(w)).toEqual(referenceSeries(accepted, w));
    expect(s.window(w)).toEqual({ firstBucketSec: -2, txnsPerSecond: [1, 2, 3] });
  });
});
