/**
 * `poe-bench sim` through the built CLI: the command exits as soon as its output is flushed,
 * without node's wind-down of the heap (harness/exit-flushed.ts), so what matters here is that
 * nothing it printed is lost on the way out, through a pipe whose reader is slow, and that the
 * exit codes stay as documented (0 all valid, 2 invalid flags).
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const CLI = join(ROOT, 'dist', 'harness', 'cli.js');

describe('poe-bench sim exits once its output is flushed', () => {
  it('prints all of a JSON report larger than a pipe buffer to a reader that waits before reading', () => {
    // 150 seeds of 20 batches print about 140 KB of JSON, more than a 64 KB pipe buffer, into
    // a shell pipe whose reader sleeps first: the command's writes block until it reads.
    const sim = `"${process.execPath}" "${CLI}" sim --protocol pbft --replicas 4 --batches 20 --seeds 150 --json`;
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `${sim} | (sleep 0.5; cat)`], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024, timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.length).toBeGreaterThan(64 * 1024);
    const report = JSON.parse(r.stdout) as { valid: boolean; runs: number; results: { seed: number; valid: boolean }[] };
    expect(report.valid).toBe(true);
    expect(report.runs).toBe(150);
    expect(report.results.map((x) => x.seed)).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
  }, 120_000);

  it('keeps exit code 2 and its message for invalid flags', () => {
    const r = spawnSync(process.execPath, [CLI, 'sim', '--protocol', 'poe', '--replicas', '3'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('--replicas: must be in [4, 1024]');
  });
});
