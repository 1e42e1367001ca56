import { describe, expect, it } from 'vitest';
import { judgeSteady, trendPercent } from './steady.js';

const series = (warm: number[], measured: number[]) => [
  ...warm.map((txnPerSec, i) => ({ tSec: i - warm.length, txnPerSec })),
  ...measured.map((txnPerSec, i) => ({ tSec: i, txnPerSec })),
];
const latency = { mean: 20, p50: 18, p99: 60, max: 90 };

describe('steady state', () => {
  it('trend: the drift across the window as a % of the mean', () => {
    expect(trendPercent([100, 100, 100, 100])).toBe(0);
    // 90 -> 110 over 5 points: slope 5 per second, times 5 seconds, over a mean of 100.
    expect(trendPercent([90, 95, 100, 105, 110])).toBe(25);
    expect(trendPercent([110, 105, 100, 95, 90])).toBe(-25);
    expect(trendPercent([5])).toBe(0);
  });

  it('settled when the warm-up levelled off and the window does not drift', () => {
    const s = judgeSteady({ throughputSeries: series([50, 100, 101, 99], [100, 102, 98, 101, 99, 100]), windowSec: 6, latencyMs: latency }, 4);
    expect(s).toMatchObject({ settled: true, warmupSettled: true, windowLongEnough: true, flags: [] });
  });

  it('not settled: the issue 11 series still rising inside the window', () => {
    // The quick PoE run of issue 11: 96,000 -> 95,700 -> 123,600 -> 115,500 -> 126,300 -> 116,700 txn/s.
    const s = judgeSteady(
      { throughputSeries: series([40e3, 70e3, 90e3], [96e3, 95.7e3, 123.6e3, 115.5e3, 126.3e3, 116.7e3]), windowSec: 6, latencyMs: latency },
      3,
    );
    expect(s.settled).toBe(false);
    expect(s.trendPercent).toBeGreaterThan(10);
    expect(s.flags.join(' ')).toMatch(/drifted/);
  });

  it('flags a window shorter than 20 mean latencies (HotStuff at n = 32: 5.7 s in 6 s)', () => {
    const s = judgeSteady({ throughputSeries: series([10, 10, 10], [10, 10, 10, 10, 10, 10]), windowSec: 6, latencyMs: { ...latency, mean: 5700 } }, 3);
    expect(s.windowLongEnough).toBe(false);
    expect(s.windowOverLatency).toBeCloseTo(1.1, 1);
  });

  it('a run that accepted nothing in its window is not steady', () => {
    const s = judgeSteady({ throughputSeries: series([0, 0, 0], [0, 0, 0, 0, 0, 0]), windowSec: 6, latencyMs: { mean: 0, p50: 0, p99: 0, max: 0 } }, 3);
    expect(s.settled).toBe(false);
    expect(s.flags[0]).toMatch(/nothing was accepted/);
  });
});
