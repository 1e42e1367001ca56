/**
 * The pure parts of throughput-latency curves: the stopping rule, the knee, the load schedule,
 * and the driver's bookkeeping with a fake run (no processes).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CURVE_RULE, follows, knee, latencyExplosion, notCarried, offeredBatchesPerSec, refinement, runCurve, stopReason, type CurvePoint } from './curve.js';
import { openLoopSystem } from '../test/fixtures.js';

function pt(offered: number, achieved: number, mean: number, p99 = mean * 2, valid = true): CurvePoint {
  return {
    protocol: 'poe',
    offeredBatchesPerSec: offered / 100,
    offeredTxnPerSec: offered,
    achievedTxnPerSec: achieved,
    latencyMs: { mean, p50: mean, p99 },
    valid,
    ...(valid ? {} : { reason: 'no batch accepted' }),
  };
}

describe('stopping rule', () => {
  it('goes on while throughput follows the offered load and the p99 stays within its bound', () => {
    const pts = [pt(5_000, 5_000, 10), pt(7_500, 7_480, 11), pt(11_250, 11_200, 12), pt(16_875, 16_800, 30)];
    for (let i = 1; i <= pts.length; i++) expect(stopReason(pts.slice(0, i))).toBeUndefined();
  });

  it('does not stop at a stable queue whose mean latency is far above the unloaded one (issue 11: 2 ms unloaded, tens of ms at the peak)', () => {
    // The shape measured here: a few ms at low load, tens of ms near the closed loop's peak, the load still carried.
    const pts = [pt(20_000, 20_000, 2), pt(60_000, 59_900, 8), pt(90_000, 89_700, 35, 300), pt(110_000, 109_400, 60, 310)];
    expect(latencyExplosion(pts[3]!, 2)).toBeUndefined();
    expect(stopReason(pts)).toBeUndefined();
  });

  it('stops after two points in a row below 90% of the offered load, not after one', () => {
    const lagging = [pt(5_000, 5_000, 10), pt(7_500, 6_000, 20)];
    expect(follows(lagging[1]!)).toBe(false);
    expect(notCarried(lagging[1]!, 10)).toMatch(/below 90% of the 7500 offered/);
    expect(stopReason(lagging)).toBeUndefined();
    // One short point then one that follows again: the count restarts.
    expect(stopReason([...lagging, pt(11_250, 10_200, 25)])).toBeUndefined();
    expect(stopReason([...lagging, pt(11_250, 6_100, 40)])).toMatch(/not carried at 2 points in a row, the last at 11250 txn\/s offered: achieved 6100/);
  });

  it('stops when the p99 passes its bound at two points in a row, and counts a p99 miss and a throughput miss alike', () => {
    expect(latencyExplosion(pt(5_000, 5_000, 10, 2_500), 10)).toMatch(/p99/);
    expect(stopReason([pt(5_000, 5_000, 10), pt(7_500, 7_500, 20, 2_001), pt(11_250, 11_250, 20, 2_100)])).toMatch(/p99 latency 2100 ms/);
    expect(stopReason([pt(5_000, 5_000, 10), pt(7_500, 7_500, 20, 2_001), pt(11_250, 11_250, 20, 1_999)])).toBeUndefined();
    expect(stopReason([pt(5_000, 5_000, 10), pt(7_500, 7_500, 20, 2_001), pt(11_250, 8_000, 20, 1_999)])).toMatch(/achieved 8000/);
  });

  it('applies a latency objective relative to the lowest mean only when one is given', () => {
    const pts = [pt(5_000, 5_000, 12), pt(7_500, 7_500, 10), pt(11_250, 11_200, 101), pt(16_875, 16_000, 150)];
    expect(stopReason(pts)).toBeUndefined();
    const objective = { ...CURVE_RULE, latencyFactor: 10 };
    expect(latencyExplosion(pts[2]!, 10, objective)).toMatch(/above 10 x the lowest/);
    // 10x exactly is within the objective.
    expect(latencyExplosion(pt(7_500, 7_500, 100), 10, objective)).toBeUndefined();
    expect(stopReason(pts.slice(0, 3), objective)).toBeUndefined();
    expect(stopReason(pts, objective)).toMatch(/150.0 ms is above 10 x the lowest \(10.0 ms\)/);
  });

  it('does not count a point that drained a backlog (achieved above offered / 0.9), nor one whose window is under 20 mean latencies', () => {
    // Measured (PoE, loaded machine): 16,875 offered, 19,075 achieved at 442 ms mean: a stall's backlog draining.
    const draining = pt(16_875, 19_075, 442, 1_513);
    expect(notCarried(draining, 5)).toMatch(/above the 16875 offered by more than 1 \/ 0.9: a backlog drained/);
    expect(notCarried(pt(20_000, 22_200, 30), 5)).toBeUndefined();
    // Measured (PoE, same sitting): 17,752 offered, 16,550 achieved, 936 ms mean in an 8 s window.
    const deep = { ...pt(17_752, 16_550, 936, 1_362), windowSec: 8 };
    expect(notCarried(deep, 5)).toMatch(/8 s window is under 20 times the mean latency \(936.0 ms\)/);
    expect(notCarried({ ...deep, latencyMs: { mean: 400, p50: 400, p99: 900 } }, 5)).toBeUndefined();
    expect(notCarried({ ...deep, latencyMs: { mean: 401, p50: 400, p99: 900 } }, 5)).toMatch(/not steady/);
    expect(stopReason([pt(5_000, 5_000, 10), draining, deep])).toMatch(/not carried at 2 points in a row.*not steady/);
  });

  it('stops at an invalid run', () => {
    expect(stopReason([pt(5_000, 5_000, 10), pt(7_500, 0, 0, 0, false)])).toMatch(/invalid run .* no batch accepted/);
  });
});

describe('knee', () => {
  it('is the highest throughput carried: following the offered load with the p99 within its bound, whatever the mean latency', () => {
    const pts = [
      pt(20_000, 20_000, 2),
      pt(60_000, 59_900, 8),
      pt(90_000, 89_700, 35, 300),
      // Past the peak: still within 90% of the offered load but the p99 passed 2 s (a growing queue).
      pt(135_000, 125_000, 900, 2_400),
      // Higher still: the most achieved of all, but it fell short of its offered load.
      pt(200_000, 128_000, 1_500, 1_900),
    ];
    expect(knee(pts)?.achievedTxnPerSec).toBe(89_700);
    // Where the curve carried more with a higher latency, that point is the knee, not the one before its latency rose.
    expect(knee([...pts, pt(112_000, 111_000, 60, 400)])?.achievedTxnPerSec).toBe(111_000);
  });

  it('skips invalid points and is undefined when nothing carried its load', () => {
    expect(knee([pt(5_000, 5_000, 30), pt(7_500, 7_500, 3), pt(16_875, 16_800, 0, 0, false)])?.achievedTxnPerSec).toBe(7_500);
    expect(knee([pt(5_000, 0, 0, 0, false)])).toBeUndefined();
    expect(knee([pt(5_000, 3_000, 10)])).toBeUndefined();
    expect(knee([])).toBeUndefined();
  });

  it('follows the rule it is given', () => {
    const pts = [pt(5_000, 5_000, 10), pt(7_500, 7_500, 45)];
    expect(knee(pts)?.achievedTxnPerSec).toBe(7_500);
    expect(knee(pts, { ...CURVE_RULE, latencyFactor: 4 })?.achievedTxnPerSec).toBe(5_000);
    expect(knee([pt(5_000, 4_800, 10)], { ...CURVE_RULE, followFraction: 0.99 })).toBeUndefined();
    expect(knee([{ ...pt(5_000, 5_000, 300), windowSec: 8 }], { ...CURVE_RULE, windowOverLatency: 40 })).toBeUndefined();
    expect(knee([{ ...pt(5_000, 5_000, 300), windowSec: 8 }])?.achievedTxnPerSec).toBe(5_000);
  });
});

describe('refinement', () => {
  it('narrows the gap between the highest load carried and the lowest not carried, by geometric means, down to the ratio', () => {
    // Offered batches/s are offered txn/s / 100 here.
    const rising = [pt(10_000, 10_000, 10), pt(20_000, 19_900, 12), pt(40_000, 30_000, 80), pt(80_000, 30_000, 900)];
    expect(refinement(rising, 1.1)).toBe(Math.round(100 * Math.sqrt(200 * 400)) / 100);
    // A point at 282.84 carried: the gap is now 282.84-400.
    const more = [...rising, pt(28_284, 28_000, 15)];
    expect(refinement(more, 1.1)).toBeCloseTo(Math.sqrt(282.84 * 400), 1);
    // Within the ratio: done.
    expect(refinement([pt(10_000, 10_000, 10), pt(10_500, 9_000, 20)], 1.1)).toBeUndefined();
    // Nothing failed, or nothing carried: nothing to narrow.
    expect(refinement([pt(10_000, 10_000, 10), pt(20_000, 20_000, 10)], 1.1)).toBeUndefined();
    expect(refinement([pt(10_000, 5_000, 10), pt(20_000, 5_000, 900)], 1.1)).toBeUndefined();
  });

  it('treats a p99 past its bound as not carried even when the throughput followed', () => {
    const pts = [pt(10_000, 10_000, 10), pt(20_000, 20_000, 150, 2_500)];
    expect(refinement(pts, 1.1)).toBe(141.42);
    // A high mean alone, with the load carried, is not a reason to narrow down.
    expect(refinement([pt(10_000, 10_000, 10), pt(20_000, 20_000, 150)], 1.1)).toBeUndefined();
  });
});

describe('offered load schedule', () => {
  it('rises geometrically from the start', () => {
    expect([0, 1, 2, 3].map((i) => offeredBatchesPerSec(i, 50, 1.5))).toEqual([50, 75, 112.5, 168.75]);
  });
});

describe('runCurve with a fake run', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('raises the load until the rule stops it, records every point, and reports the knee', async () => {
    const outDir = mkdtempSync(join(tmpdir(), 'curve-test-'));
    dirs.push(outDir);
    // A system that carries 30,000 txn/s: latency 10 ms below it, growing with the backlog above it.
    const capacity = 30_000;
    const execute = openLoopSystem(capacity);
    const result = await runCurve(
      {
        refineRatio: 1.1,
        protocols: ['poe', 'pbft'],
        replicas: 4,
        batch: 100,
        clients: 100,
        warmupS: 1,
        durationS: 1,
        startBatchesPerSec: 50,
        factor: 1.5,
        maxPoints: 20,
        rule: CURVE_RULE,
        outDir,
      },
      { execute },
    );
    expect(result.curves.map((c) => c.protocol)).toEqual(['poe', 'pbft']);
    const poe = result.curves[0]!;
    // Offered 5,000 x 1.5^i txn/s: 5,000 ... 25,313 follow; 37,969 falls short (79% of its load),
    // 56,953 too: two points in a row not carried end the rise. Then the gap 25,313-37,969 is
    // narrowed by geometric means: 31,002 carried (16.7 ms), 34,309 short, 32,614 carried; 34,309 / 32,614 < 1.1.
    expect(poe.points.map((p) => Math.round(p.offeredTxnPerSec))).toEqual([5_000, 7_500, 11_250, 16_875, 25_313, 37_969, 56_953, 31_002, 34_309, 32_614]);
    expect(poe.stoppedBecause).toMatch(/not carried at 2 points in a row.*below 90%/);
    // The flat top at 30,000 txn/s begins at 31,002 offered, the lowest latency of the points that reached it.
    expect(poe.knee?.achievedTxnPerSec).toBe(capacity);
    expect(poe.knee?.offeredTxnPerSec).toBe(31_002);
    const lines = readFileSync(join(outDir, 'runs.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(20);
    expect(lines.every((l) => l.experiment === 'curve')).toBe(true);
    expect(new Set(lines.map((l) => l.pointId)).size).toBe(20);
    expect(lines[0].curve).toMatchObject({ index: 0, offeredTxnPerSec: 5_000, achievedTxnPerSec: 5_000 });
    expect(lines[0].pointId).toBe('poe/n=4/crashed=0/batch=100/open=50');
  });
});
