/**
 * `poe-bench curve` end to end through the built CLI, at small scale: PoE on 4 real replica
 * processes, three short open-loop points at rising load. Checks the JSON (points, knee), the
 * runs.jsonl lines and the chart files; the stopping rule and the knee are unit-tested in
 * experiments/curve.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const CLI = join(ROOT, 'dist', 'harness', 'cli.js');
const base = mkdtempSync(join(tmpdir(), 'poe-curve-cli-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

interface Point {
  readonly offeredBatchesPerSec: number;
  readonly offeredTxnPerSec: number;
  readonly achievedTxnPerSec: number;
  readonly latencyMs: { readonly mean: number; readonly p50: number; readonly p99: number };
  readonly valid: boolean;
}

describe('poe-bench curve', () => {
  it('runs open-loop points at rising load, records each, draws the chart and reports the knee', () => {
    const out = join(base, 'curve');
    const args = ['curve', '--protocol', 'poe', '--replicas', '4', '--start', '20', '--factor', '2', '--max-points', '3', '--refine', '1'];
    const r = spawnSync(process.execPath, [CLI, ...args, '--warmup', '1', '--duration', '2', '--json', '--out', out], {
      cwd: base,
      encoding: 'utf8',
      timeout: 240_000,
    });
    expect(r.status, r.stderr).toBe(0);
    const json = JSON.parse(r.stdout) as {
      curves: Record<string, { points: Point[]; knee: Point | null; stoppedBecause: string }>;
      knees: Record<string, number | null>;
      charts: string[];
    };
    const poe = json.curves.poe!;
    // 20, 40, 80 batches/s of 100 writes. What the machine carries is not asserted (a shared
    // machine may be saturated even at these rates, and the rule may then stop after 2 points).
    const offered = poe.points.map((p) => p.offeredTxnPerSec);
    expect(offered).toEqual([2_000, 4_000, 8_000].slice(0, offered.length));
    expect(offered.length).toBeGreaterThanOrEqual(2);
    expect(poe.stoppedBecause).toMatch(offered.length === 3 ? /point budget|in a row/ : /in a row/);
    for (const p of poe.points) {
      expect(p.valid).toBe(true);
      expect(p.achievedTxnPerSec).toBeGreaterThan(0);
      expect(p.latencyMs.p50).toBeGreaterThan(0);
      expect(p.latencyMs.p99).toBeGreaterThanOrEqual(p.latencyMs.p50);
    }
    expect(json.knees.poe).toBe(poe.knee!.achievedTxnPerSec);
    expect(poe.points.map((p) => p.achievedTxnPerSec)).toContain(json.knees.poe);

    const lines = readFileSync(join(out, 'runs.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { experiment: string; pointId: string; valid: boolean; curve: Point; spec: { openLoopBatchesPerSec: number } });
    expect(lines.map((l) => l.experiment)).toEqual(offered.map(() => 'curve'));
    expect(lines.map((l) => l.spec.openLoopBatchesPerSec)).toEqual([20, 40, 80].slice(0, offered.length));
    expect(lines.map((l) => l.curve.achievedTxnPerSec)).toEqual(poe.points.map((p) => p.achievedTxnPerSec));
    expect(new Set(lines.map((l) => l.pointId)).size).toBe(offered.length);
    expect(existsSync(join(out, 'manifest.json'))).toBe(true);

    expect(json.charts.map((f) => f.slice(out.length + 1))).toEqual(['curve.vl.json', 'curve.svg', 'curve.png']);
    expect(readFileSync(join(out, 'curve.svg'), 'utf8')).toContain('Throughput (txn/s)');
    expect(readFileSync(join(out, 'curve.png')).subarray(1, 4).toString()).toBe('PNG');
  }, 300_000);

  it('refuses bad flags with exit code 2 and names them', () => {
    const r = spawnSync(process.execPath, [CLI, 'curve', '--protocol', 'paxos', '--factor', '1'], { cwd: base, encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--protocol: unknown protocol "paxos"/);
    expect(r.stderr).toMatch(/--factor: must be > 1/);
  });
});
