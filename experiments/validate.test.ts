import { cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import { fitThroughOrigin } from './calibrate.js';
import { coresLeft, errorPercent, median, rankingAt, summarise, type ValidationPoint } from './validate.js';

const pt = (protocol: string, replicas: number, realTxnPerSec: number, modelTxnPerSec: number): ValidationPoint => ({
  protocol,
  replicas,
  realTxnPerSec,
  modelTxnPerSec,
  errorPercent: errorPercent(modelTxnPerSec, realTxnPerSec),
  realLatencyMs: 10,
  modelLatencyMs: 12,
  latencyErrorPercent: errorPercent(12, 10),
  realValid: true,
  modelValid: true,
  realCpuCores: 1,
  realCpuMsPerBatch: 2,
  modelCpuMsPerBatch: 2,
  cpuErrorPercent: 0,
});

describe('validation math', () => {
  it('error is (model - real) / real in percent', () => {
    expect(errorPercent(110, 100)).toBeCloseTo(10, 9);
    expect(errorPercent(70, 100)).toBeCloseTo(-30, 9);
    expect(errorPercent(0, 0)).toBe(0);
    expect(errorPercent(5, 0)).toBe(Infinity);
  });

  it('models the cores other work left to a real run, never more than the calibration gave', () => {
    const cores = cpus().length;
    // Nothing else ran: the machine's CPU is the run's own: the calibrated share stays.
    expect(coresLeft(1.7, 170, 1.7)).toBe(Math.min(1.7, cores));
    // Other work took 0.9 of a core during the window.
    expect(coresLeft(cores, 100 * cores, cores - 0.9)).toBeCloseTo(cores - 0.9, 9);
    // Unknown machine CPU: the calibrated share.
    expect(coresLeft(1.5, null, 0.3)).toBe(1.5);
    expect(coresLeft(1.5, 100 * cores + 500, 0)).toBe(0.1);
  });

  it('median of odd and even lists', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBe(0);
  });

  it('summarises median and max absolute error', () => {
    const s = summarise([pt('poe', 4, 100, 110), pt('pbft', 4, 100, 80), pt('zyzzyva', 4, 100, 95)]);
    expect(s.medianAbsErrorPercent).toBe(10);
    expect(s.maxAbsErrorPercent).toBe(20);
    expect(s.medianAbsLatencyErrorPercent).toBe(20);
  });

  it('leaves a point whose real run is invalid or empty out of the statistics, but lists it', () => {
    const s = summarise([pt('poe', 4, 100, 110), { ...pt('pbft', 4, 0, 80), realValid: false }]);
    expect(s.maxAbsErrorPercent).toBe(10);
    expect(s.excluded).toEqual(['pbft n=4']);
    expect(s.points).toHaveLength(2);
  });

  it('ranking: a pair more than 10% apart in the real runs must keep its order in the model', () => {
    // poe 20% above pbft for real, below it in the model: a disagreement.
    const bad = rankingAt([pt('poe', 4, 120, 90), pt('pbft', 4, 100, 100)], 4);
    expect(bad.disagreements).toEqual(['poe vs pbft']);
    expect(summarise([pt('poe', 4, 120, 90), pt('pbft', 4, 100, 100)]).rankingAgrees).toBe(false);
    // 5% apart for real: either order is acceptable.
    expect(rankingAt([pt('poe', 4, 105, 90), pt('pbft', 4, 100, 100)], 4).disagreements).toEqual([]);
    // Only points at the same n are compared.
    const s = summarise([pt('poe', 4, 120, 130), pt('pbft', 4, 100, 100), pt('poe', 8, 50, 10), pt('pbft', 8, 100, 100)]);
    expect(s.rankings.map((r) => [r.replicas, r.disagreements.length])).toEqual([
      [4, 0],
      [8, 0],
    ]);
    expect(s.rankings[1]!.realOrder).toEqual(['pbft', 'poe']);
    expect(s.rankingAgrees).toBe(true);
  });

  it('fits the fixed cost through the origin by least squares', () => {
    expect(fitThroughOrigin([20, 40], [10, 20])).toBeCloseTo(2, 9);
    expect(fitThroughOrigin([10, 30], [10, 10])).toBeCloseTo(2, 9);
    expect(fitThroughOrigin([-5], [10])).toBe(0);
  });
});
