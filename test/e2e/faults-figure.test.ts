/**
 * `poe-bench figure 11b --quick --replicas 4` on real processes (issue 4, item 2; issue 5):
 * PoE and PBFT with the view-0 primary crashing 2 s before the measured window and a checkpoint
 * every 600, so that the view change falls inside the window (issue 11 item 7; experiments/sweep.ts
 * primaryCrashAtMs and PRIMARY_FAILURE_TIMEOUTS). A crashAt is placed by time from the start, so
 * these runs keep the quick profile's warm-up fixed (issue 11 item 2). Two runs of 14 s each.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROFILES } from '../../experiments/figures.js';
import { PRIMARY_FAILURE_TIMEOUTS, primaryCrashAtMs } from '../../experiments/sweep.js';
import { ensureBuilt, ROOT } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const CLI = join(ROOT, 'dist', 'harness', 'cli.js');
const base = mkdtempSync(join(tmpdir(), 'poe-figure-11b-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

interface Line {
  readonly pointId: string;
  readonly valid: boolean;
  readonly reason?: string;
  readonly spec: {
    readonly faults: unknown;
    readonly warmupFixed?: boolean;
    readonly checkpointInterval: number;
    readonly clientTimeoutMs: number;
    readonly viewChangeTimeoutMs: number;
  };
  readonly metrics?: { readonly viewChanges?: number; readonly viewChangeMs?: number; readonly throughputSeries?: { tSec: number; txnPerSec: number }[] };
  readonly viewChangeStartSec?: number;
  readonly windowSec?: number;
  readonly steady?: { readonly warmupEndedBy?: string; readonly warmupSec: number };
}

const WARMUP_SEC = PROFILES.quick.warmupSec;
const CRASH_AT_MS = primaryCrashAtMs(WARMUP_SEC);

describe('poe-bench figure 11b on the local backend', () => {
  it('runs PoE and PBFT for real: the primary crashes, the view change begins inside the window, the timeouts are recorded', () => {
    const dir = join(base, 'local-11b');
    const r = spawnSync(process.execPath, [CLI, 'figure', '11b', '--quick', '--replicas', '4', '--out', dir], {
      cwd: base,
      encoding: 'utf8',
      timeout: 150_000,
    });
    const lines = readFileSync(join(dir, 'runs.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    expect(r.status, `${r.stderr}\n${lines.map((l) => l.reason ?? '').join('\n')}`).toBe(0);
    expect(r.stderr).toContain(
      `client timeout ${PRIMARY_FAILURE_TIMEOUTS.clientTimeoutMs} ms, view-change timeout ${PRIMARY_FAILURE_TIMEOUTS.viewChangeTimeoutMs} ms`,
    );
    expect(lines.map((l) => l.pointId)).toEqual(['poe/n=4/crashed=0/batch=100/stop=900', 'pbft/n=4/crashed=0/batch=100/stop=900']);
    for (const l of lines) {
      expect(l.valid, l.reason).toBe(true);
      expect(l.spec.faults).toEqual([{ replica: 0, fault: { kind: 'crashAt', atMs: CRASH_AT_MS } }]);
      expect(l.spec.warmupFixed).toBe(true);
      expect(l.steady?.warmupEndedBy).toBe('fixed');
      expect(l.spec.checkpointInterval).toBe(600);
      expect(l.spec.clientTimeoutMs).toBe(PRIMARY_FAILURE_TIMEOUTS.clientTimeoutMs);
      expect(l.spec.viewChangeTimeoutMs).toBe(PRIMARY_FAILURE_TIMEOUTS.viewChangeTimeoutMs);
      expect(l.metrics!.viewChanges).toBeGreaterThanOrEqual(1);
      expect(l.metrics!.viewChangeMs).toBeGreaterThan(0);
      // The event the point measures lies inside the measured window.
      expect(l.viewChangeStartSec, l.pointId).toBeGreaterThanOrEqual(0);
      expect(l.viewChangeStartSec!, l.pointId).toBeLessThan(l.windowSec!);
      // The fixed warm-up and 6 s measured, in 1-second buckets.
      expect(l.metrics!.throughputSeries!.map((b) => b.tSec)).toEqual(Array.from({ length: WARMUP_SEC + 6 }, (_, i) => i - WARMUP_SEC));
    }
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { spec: { primaryFailure: Record<string, unknown> } };
    expect(manifest.spec.primaryFailure).toMatchObject({ faults: [`0=crashAt:${CRASH_AT_MS}`], checkpointIntervalK: 600, ...PRIMARY_FAILURE_TIMEOUTS });
    expect(readFileSync(join(dir, 'report.md'), 'utf8')).toContain('11b');
  });
});
