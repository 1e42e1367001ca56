import { describe, expect, it } from 'vitest';
import { FIGURE_IDS, FIGURES, PROFILES, parseProtocol, belongsTo, figureOfExperiment, planRuns, crashedForThreeF, crashedForF } from './figures.js';
import { pointId } from '../infra/run/records.js';

// Reference: DESIGN.md "The evaluation to reproduce" and paper §5.
describe('figure sweeps', () => {
  it('figure 10 crashes n-3f backups: 4:1, 8:2, 16:1, 32:2, all four protocols, batch 100', () => {
    expect([4, 8, 16, 32].map(crashedForThreeF)).toEqual([1, 2, 1, 2]);
    const pts = FIGURES['10'].points();
    expect(pts).toHaveLength(16);
    expect(new Set(pts.map((p) => `${p.replicas}:${p.crashed}`))).toEqual(new Set(['4:1', '8:2', '16:1', '32:2']));
    expect(new Set(pts.map((p) => p.protocol))).toEqual(new Set(['poe', 'pbft', 'zyzzyva', 'hotstuff']));
    expect(pts.every((p) => p.batch === 100 && p.primaryStopsAfter === undefined)).toBe(true);
  });

  it('figure 11a crashes f backups', () => {
    expect([4, 8, 16, 32].map(crashedForF)).toEqual([1, 2, 5, 10]);
    const pts = FIGURES['11a'].points();
    expect(pts).toHaveLength(16);
    expect(pts.every((p) => p.crashed === crashedForF(p.replicas))).toBe(true);
  });

  it('figure 11b runs PoE and PBFT with a primary that stops after 900 requests and checkpoints every 600', () => {
    const f = FIGURES['11b'];
    expect(f.checkpointInterval).toBe(600);
    const pts = f.points();
    expect(pts).toHaveLength(8);
    expect(new Set(pts.map((p) => p.protocol))).toEqual(new Set(['poe', 'pbft']));
    expect(pts.every((p) => p.primaryStopsAfter === 900 && p.crashed === 0)).toBe(true);
    expect(pointId(pts[0]!)).toBe('poe/n=4/crashed=0/batch=100/stop=900');
  });

  it('figure 12 sweeps batch sizes 10 to 300 on 16 replicas with one crashed backup', () => {
    const pts = FIGURES['12'].points();
    expect(pts).toHaveLength(20);
    expect([...new Set(pts.map((p) => p.batch))]).toEqual([10, 50, 100, 200, 300]);
    expect(pts.every((p) => p.replicas === 16 && p.crashed === 1)).toBe(true);
  });

  it('figure 13 is fault-free', () => {
    const pts = FIGURES['13'].points();
    expect(pts).toHaveLength(16);
    expect(pts.every((p) => p.crashed === 0)).toBe(true);
  });

  it('has the panels the paper has, plus the view-change timeline', () => {
    const panels = FIGURE_IDS.flatMap((id) => FIGURES[id].panels.map((p) => p.id));
    expect(panels).toEqual(['10a', '10b', '10c', '11a', '11b', '11b-time', '12a', '12b', '13a', '13b']);
  });
});

describe('profiles', () => {
  it('paper: 60 s warm-up, 120 s measured, 3 repetitions (paper line 411)', () => {
    expect(PROFILES.paper).toMatchObject({ warmupSec: 60, measuredSec: 120, reps: 3 });
  });

  it('quick is shorter than default, default shorter than paper', () => {
    const total = (p: { warmupSec: number; measuredSec: number; reps: number }): number => (p.warmupSec + p.measuredSec) * p.reps;
    expect(total(PROFILES.quick)).toBeLessThan(total(PROFILES.default));
    expect(total(PROFILES.default)).toBeLessThan(total(PROFILES.paper));
    // Figure 13 --quick: 16 runs of 10 s of load.
    expect(planRuns(FIGURES['13'], PROFILES.quick)).toHaveLength(16);
  });

  it('plans every first repetition before any second one', () => {
    const plan = planRuns(FIGURES['11b'], PROFILES.paper);
    expect(plan).toHaveLength(24);
    expect(plan.slice(0, 8).every((r) => r.rep === 0)).toBe(true);
    expect(plan[8]!.rep).toBe(1);
    expect(planRuns(FIGURES['11b'], PROFILES.quick, 2)).toHaveLength(16);
    expect(() => planRuns(FIGURES['13'], PROFILES.quick, 0)).toThrow(RangeError);
  });
});

describe('experiment names', () => {
  it('accepts the usual spellings of a figure', () => {
    expect(['13', 'fig13', 'figure-13', 'Figure 13', 'figure_11a'].map(figureOfExperiment)).toEqual(['13', '13', '13', '13', '11a']);
    expect(figureOfExperiment('smoke')).toBeUndefined();
  });

  it('tells figure 10 from 11a by name where their points coincide (n = 4, 8)', () => {
    const point = { protocol: 'poe' as const, replicas: 4, crashed: 1, batch: 100 };
    expect(belongsTo(FIGURES['10'], { experiment: 'figure-10', point })).toBe(true);
    expect(belongsTo(FIGURES['11a'], { experiment: 'figure-10', point })).toBe(false);
    // Without a figure name the point fits both shapes.
    expect(belongsTo(FIGURES['11a'], { experiment: 'custom', point })).toBe(true);
    expect(belongsTo(FIGURES['13'], { experiment: 'custom', point })).toBe(false);
  });
});

describe('--baseline', () => {
  it('takes a protocol by name or by the paper label, in any case', () => {
    expect(['pbft', 'PBFT', 'hs', 'HotStuff', 'ZYZ', 'poe'].map(parseProtocol)).toEqual(['pbft', 'pbft', 'hotstuff', 'hotstuff', 'zyzzyva', 'poe']);
    expect(() => parseProtocol('raft')).toThrow(/choose one of poe \(PoE\), pbft \(PBFT\), zyzzyva \(ZYZ\), hotstuff \(HS\)/);
  });
});
