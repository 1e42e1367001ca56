import { cpus } from 'node:os';
import { describe, expect, it } from 'vitest';
import type { FitProcess } from '../infra/sim/calibration.js';
import { fitFixedCosts, fitNonNegative, ioPerBatch } from './calibrate.js';
import { checkDisjoint, clientProcsOf, coresLeft, errorPercent, formatValidation, median, rankingAt, summarise, type ValidationPoint } from './validate.js';

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

/** A fit point of one run whose fixed costs come from its processes alone (the run's totals are 0). */
function fitPointOf<P extends FitProcess>(protocol: string, replicas: number, processes: P[]) {
  return {
    protocol,
    replicas,
    batch: 100,
    clients: 24,
    cpuMsPerBatch: 0,
    txnPerSec: 0,
    messagesPerBatch: 0,
    ioBytesPerBatch: 0,
    opCpuMsPerBatch: 0,
    cpuCores: 1,
    processes,
  };
}

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

  it('shows the cores each real run used beside the cores its model used, and the modelled host apart', () => {
    const table = formatValidation(summarise([{ ...pt('zyzzyva', 4, 189000, 187609), realCpuCores: 1.4, modelCpuCores: 1.32, modelHostCores: 2 }]));
    expect(table).toContain('| cores used real, model | cores of the modelled host |');
    expect(table).toContain('| 1.4, 1.32 | 2 |');
  });

  it("shows each real run's warm-up and names the ones not in steady state, which the model cannot be compared with", () => {
    const steady = { ...pt('pbft', 16, 58170, 58163), realWarmupSec: 16.23, realSteady: true };
    const capped = { ...pt('hotstuff', 16, 14690, 17367), realWarmupSec: 40, realSteady: false, realSteadyFlags: ["the processes' resident memory grew 3.4%"] };
    const table = formatValidation(summarise([steady, capped, pt('poe', 4, 300, 310)]));
    expect(table).toContain('| protocol | n | real warm-up s | real txn/s |');
    expect(table).toContain('| pbft | 16 | 16.2 | 58170 |');
    expect(table).toContain('| hotstuff | 16 | 40.0 (NOT steady) | 14690 |');
    // A stored validation from before the warm-up was recorded: an empty cell.
    expect(table).toContain('| poe | 4 |  | 300 |');
    expect(table).toContain("Real runs NOT in steady state (the model predicts one): hotstuff n=16 (the processes' resident memory grew 3.4%).");
    expect(formatValidation(summarise([steady]))).not.toContain('NOT in steady state');
  });

  it('records the client processes of its points, 1 where a stored validation did not say, and refuses a mix', () => {
    const two = [pt('poe', 4, 300, 310), pt('pbft', 4, 260, 250)].map((p) => ({ ...p, clientProcs: 2 }));
    const s = summarise(two);
    expect(s.clientProcs).toBe(2);
    expect(formatValidation(s)).toMatch(/^Model validation \(testbed local, 2 client processes per run\)/);
    expect(summarise([pt('poe', 4, 300, 310)]).clientProcs).toBe(1);
    expect(formatValidation(summarise([pt('poe', 4, 300, 310)]))).toMatch(/, 1 client process per run\)/);
    expect(() => clientProcsOf([two[0]!, pt('poe', 8, 100, 100)])).toThrow(/mixes client processes \(2, 1\)/);
  });

  it('fit and validation points stay disjoint by replica count, whatever the client processes (issue 12 item 4)', () => {
    // The calibration's fit points (experiments/calibrate.ts FIT_POINTS) are at n = 5 and 7.
    const cal = { fitPoints: [fitPointOf('poe', 5, []), fitPointOf('pbft', 7, [])] };
    expect(() => checkDisjoint(cal, [4, 8, 16])).not.toThrow();
    expect(() => checkDisjoint(cal, [4, 7])).toThrow(/validation at n=7: the calibration was fitted there \(poe n=5, pbft n=7\)/);
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

  it('fits non-negative costs: exact on consistent data, a negative coefficient clamped to 0', () => {
    // y = 2 a + 3 b exactly.
    const rows = [
      [1, 0],
      [0, 1],
      [1, 1],
      [2, 1],
    ];
    const y = rows.map(([a, b]) => 2 * a! + 3 * b!);
    const [a, b] = fitNonNegative(rows, y);
    expect(a).toBeCloseTo(2, 9);
    expect(b).toBeCloseTo(3, 9);
    // y = 5 a - 1 b: the best fit with b >= 0 leaves b at 0.
    const y2 = rows.map(([a, b]) => 5 * a! - b!);
    const fit2 = fitNonNegative(rows, y2);
    expect(fit2[1]).toBe(0);
    expect(fit2[0]).toBeGreaterThan(0);
  });

  it('fits the fixed costs per process: a sender of large frames and its receivers apart', () => {
    // Invented processes of one run: 10 us per message in, 5 per frame out, 0.02 per byte in, 0.001 per byte out.
    const proc = (name: string, messagesIn: number, framesOut: number, bytesIn: number, bytesOut: number) => ({
      name,
      messagesIn,
      framesOut,
      bytesIn,
      bytesOut,
      opCpuMsPerBatch: 0.1,
      cpuMsPerBatch: 0.1 + (10 * messagesIn + 5 * framesOut + 0.02 * bytesIn + 0.001 * bytesOut) / 1000,
    });
    const processes = [
      proc('replica 0', 4, 4, 7000, 21000),
      proc('replica 1', 3, 4, 7300, 400),
      proc('replica 2', 3, 4, 7300, 400),
      proc('client 0', 4, 1, 400, 7000),
      proc('replica 3', 9, 2, 500, 100),
    ];
    const f = fitFixedCosts([fitPointOf('poe', 4, processes)]);
    expect(f.perMessageInUs).toBeCloseTo(10, 6);
    expect(f.perFrameOutUs).toBeCloseTo(5, 6);
    expect(f.perByteInUs).toBeCloseTo(0.02, 9);
    expect(f.perByteOutUs).toBeCloseTo(0.001, 9);
  });

  it('fits per-read and per-write costs when the processes count them, and leaves them 0 when they do not', () => {
    // Invented: 10 us per message in, 5 per frame out, 30 per read, 40 per write, no per-byte cost.
    // Frames per write vary across processes (a broadcast-heavy primary, a chatty backup), as across protocols.
    const proc = (name: string, messagesIn: number, framesOut: number, reads: number, writes: number) => ({
      name,
      messagesIn,
      framesOut,
      bytesIn: 100 * messagesIn,
      bytesOut: 100 * framesOut,
      reads,
      writes,
      opCpuMsPerBatch: 0.2,
      cpuMsPerBatch: 0.2 + (10 * messagesIn + 5 * framesOut + 30 * reads + 40 * writes) / 1000,
    });
    const point = (processes: ReturnType<typeof proc>[]) => fitPointOf('hotstuff', 7, processes);
    const processes = [
      proc('replica 0', 6, 30, 5, 6),
      proc('replica 1', 12, 12, 10, 3),
      proc('replica 2', 12, 12, 2, 11),
      proc('replica 3', 20, 4, 18, 4),
      proc('client 0', 8, 2, 7, 2),
      proc('client 1', 30, 9, 6, 9),
      proc('replica 4', 9, 9, 9, 9),
    ];
    const f = fitFixedCosts([point(processes)]);
    expect(f.perReadUs).toBeCloseTo(30, 5);
    expect(f.perWriteUs).toBeCloseTo(40, 5);
    expect(f.perMessageInUs).toBeCloseTo(10, 5);
    expect(f.perFrameOutUs).toBeCloseTo(5, 5);
    // A fit point recorded before reads and writes were counted: those two are not fitted.
    const old = processes.map(({ reads: _r, writes: _w, ...q }) => q);
    const g = fitFixedCosts([point(processes), { ...point(processes), processes: old }]);
    expect(g.perReadUs).toBe(0);
    expect(g.perWriteUs).toBe(0);
  });

  it('takes a real process\u2019s reads and writes per batch from its frames per read and per write', () => {
    const io = { framesSent: 1000, framesReceived: 600, writes: 250, reads: 300 };
    expect(ioPerBatch(io, { messagesIn: 12, framesOut: 8 })).toEqual({ reads: 6, writes: 2 });
    expect(ioPerBatch({ ...io, writes: 0 }, { messagesIn: 12, framesOut: 8 })).toBeUndefined();
    expect(ioPerBatch(undefined, { messagesIn: 12, framesOut: 8 })).toBeUndefined();
  });
});
