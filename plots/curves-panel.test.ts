/**
 * Figure 13's curves panel (issue 11 item 4): the curves a figure measured are read back from
 * <dir>/curves/n<N>/runs.jsonl with the knees runCurve reported, drawn, and set beside the
 * figure's closed loop.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CURVE_RULE, curvesFromRecords, runCurve } from '../experiments/curve.js';
import { loadRuns } from '../experiments/runs.js';
import { curveReplicaCounts, curvesDirFor, curvesPanel } from './curves-panel.js';
import { openLoopSystem } from '../test/fixtures.js';

describe('figure 13 curves panel', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('reads back the recorded curves with the knees runCurve reported, draws them and compares with the closed loop', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curves-panel-'));
    dirs.push(dir);
    // A system that carries 30,000 txn/s (as experiments/curve.test.ts: its knee is at 31,002 offered, 16.7 ms).
    const capacity = 30_000;
    const execute = openLoopSystem(capacity);
    const options = { refineRatio: 1.1, protocols: ['poe', 'pbft'] as const, replicas: 4, batch: 100, clients: 100, warmupS: 1, durationS: 1 };
    const measured = await runCurve(
      { ...options, protocols: [...options.protocols], startBatchesPerSec: 50, factor: 1.5, maxPoints: 20, rule: CURVE_RULE, outDir: curvesDirFor(dir, 4) },
      { execute },
    );
    expect(curveReplicaCounts(dir)).toEqual([4]);
    const [back] = curvesFromRecords(loadRuns(curvesDirFor(dir, 4)));
    expect(back?.replicas).toBe(4);
    expect(back?.curves.map((c) => c.protocol)).toEqual(['poe', 'pbft']);
    for (const [i, c] of back!.curves.entries()) {
      expect(c.points.map((p) => p.offeredTxnPerSec)).toEqual(measured.curves[i]!.points.map((p) => p.offeredTxnPerSec));
      expect(c.knee?.achievedTxnPerSec).toBe(measured.curves[i]!.knee?.achievedTxnPerSec);
    }
    const panel = await curvesPanel(dir, (protocol) => (protocol === 'poe' ? 25_000 : undefined));
    expect(existsSync(join(dir, 'fig13-curves-n4.svg'))).toBe(true);
    const table = panel.blocks.find((b) => b.kind === 'table');
    expect(table?.kind === 'table' ? table.rows : []).toEqual([
      ['PoE', '4', '10', '30,000', '16.7 ms', '25,000', '1.20x'],
      ['PBFT', '4', '10', '30,000', '16.7 ms', 'not measured', ''],
    ]);
  });

  it('has nothing to show where no curve was measured', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'curves-panel-'));
    dirs.push(dir);
    expect(await curvesPanel(dir, () => 1)).toEqual({ blocks: [], charts: [] });
  });
});
