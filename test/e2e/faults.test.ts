/**
 * Failures on real processes (issue 4, "Real processes"): `poe-bench run --faults` wraps a
 * replica's core in replica/byzantine.ts's wrappers inside its own process.
 *
 * - PoE and PBFT, 4 replicas, the primary stops after K requests (K = 300 with a checkpoint
 *   every 100 so that a run of a few seconds holds the stop, the view change and the recovery;
 *   figure 11b's values are 900 and 600, test/e2e/faults-figure.test.ts): the run completes, the
 *   view changes exactly once, throughput after the view change is non-zero in the series, the
 *   safety check passes, and no process is left.
 * - Zyzzyva with one crashed backup: clients never see n replies, time out and finish through
 *   the commit-certificate slow path; the client timeout is recorded with the results.
 * - A Byzantine primary keeping a replica in the dark: the run stays valid.
 *
 * Each run lasts a few seconds: this machine has 2 cores shared with other test files.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { executeRun, recordRun, type RunResult } from '../../infra/run/execute.js';
import { makeRunSpec } from '../../infra/run/spec.js';
import type { ProtocolName } from '../../replica/types.js';
import { alivePids, ensureBuilt, ROOT } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const CLI = join(ROOT, 'dist', 'harness', 'cli.js');
const SHORT = { clients: 16, records: 100_000 } as const;

/** `poe-bench run <args>` at SHORT's load, its results under `out`, its result as JSON on stdout; a failure is returned, not thrown. */
const runJson = (out: string, ...args: string[]) =>
  execa(process.execPath, [CLI, 'run', ...args, '--clients', String(SHORT.clients), '--records', String(SHORT.records), '--out', out, '--json'], {
    reject: false,
  });

/** Figure 11b's shape, scaled down: 300 requests before the stop, a checkpoint every 100. */
const STOP_AFTER = 300;
const PRIMARY_STOPS = {
  warmupS: 1,
  durationS: 5,
  faults: [{ replica: 0, fault: { kind: 'stopAfter', batches: STOP_AFTER } }],
  checkpointInterval: 100,
  // Detection takes one client timeout and one view-change timeout: about 2 s after the stop.
  clientTimeoutMs: 1000,
  viewChangeTimeoutMs: 1000,
} as const;

function why(r: RunResult): string {
  return `${r.reason ?? ''} ${JSON.stringify({ violations: r.violations.slice(0, 3), views: r.metrics?.replicaViews, heights: r.ledgerHeights })}`;
}

describe.each<ProtocolName>(['poe', 'pbft'])('%s: the primary stops after K requests', (protocol) => {
  it('completes, changes view exactly once, recovers throughput, passes the safety check and leaves no process', async () => {
    const r = await executeRun(makeRunSpec({ protocol, ...SHORT, ...PRIMARY_STOPS }));
    expect(r.valid, why(r)).toBe(true);
    expect(r.violations).toEqual([]);
    const m = r.metrics!;
    // The primary's ledger is a prefix: exactly K batches; the others went on without it.
    expect(r.ledgerHeights!['0']).toBe(STOP_AFTER);
    for (const id of ['1', '2', '3']) expect(r.ledgerHeights![id]!, why(r)).toBeGreaterThan(STOP_AFTER);
    expect(m.viewChanges, why(r)).toBe(1);
    for (const id of ['1', '2', '3']) expect(m.replicaViews[id]).toEqual({ view: 1, inViewChange: false });
    expect(m.viewChangeMs).toBeGreaterThan(0);
    expect(m.clientTimeouts).toBeGreaterThan(0);
    // The whole seconds after the view change ended, inside the window, accepted transactions.
    const end = m.viewChangeEndSec!;
    const after = m.throughputSeries.filter((b) => b.tSec >= Math.ceil(end));
    expect(after.length, `view change ended ${end} s into a ${PRIMARY_STOPS.durationS} s window`).toBeGreaterThan(0);
    expect(Math.max(...after.map((b) => b.txnPerSec)), JSON.stringify(m.throughputSeries)).toBeGreaterThan(0);
    expect(alivePids(r.pids)).toEqual([]);
    // Recorded as figure 11b's kind of point, with the failure metrics.
    const out = mkdtempSync(join(tmpdir(), `poe-bench-stop-${protocol}-`));
    const line = JSON.parse(readFileSync(recordRun(out, r), 'utf8').trim()) as { pointId: string; metrics: Record<string, unknown> };
    expect(line.pointId).toBe(`${protocol}/n=4/crashed=0/batch=100/stop=${STOP_AFTER}`);
    for (const key of ['viewChanges', 'viewChangeMs', 'rollbacks', 'clientTimeouts', 'throughputSeries']) expect(line.metrics).toHaveProperty(key);
  });
});

describe('zyzzyva with one crashed backup', () => {
  it('finishes every request through the slow path after the client timeout, recorded with the results', async () => {
    const out = mkdtempSync(join(tmpdir(), 'poe-bench-zyz-'));
    const p = await runJson(out, '--protocol', 'zyzzyva', '--crashed', '1', '--client-timeout-ms', '300', '--warmup', '1', '--duration', '3');
    expect(p.exitCode, p.stderr).toBe(0);
    const json = JSON.parse(p.stdout) as Record<string, unknown>;
    expect(json['valid']).toBe(true);
    const paths = json['acceptedByPath'] as Record<string, number>;
    // n = 4 replies never come from 3 replicas: no fast path, every acceptance is a slow one.
    expect(paths['slow']).toBeGreaterThan(0);
    expect(paths['fast']).toBeUndefined();
    expect(json['clientTimeouts']).toBeGreaterThan(0);
    expect(json['throughputTxnPerSec']).toBeGreaterThan(0);
    const spec = json['spec'] as Record<string, unknown>;
    expect(spec['clientTimeoutMs']).toBe(300);
    expect(spec['crashedReplicas']).toEqual([3]);
    const line = JSON.parse(readFileSync(join(out, 'runs.jsonl'), 'utf8').trim()) as { spec: Record<string, unknown>; metrics: { clientTimeouts: number } };
    expect(line.spec['clientTimeoutMs']).toBe(300);
    expect(line.metrics.clientTimeouts).toBe(json['clientTimeouts']);
  });
});

describe('a Byzantine primary on real processes', () => {
  it('PoE with the primary keeping replica 3 in the dark stays valid; the fault is recorded', async () => {
    const out = mkdtempSync(join(tmpdir(), 'poe-bench-dark-'));
    const p = await runJson(out, '--protocol', 'poe', '--faults', '0=inTheDark:3', '--warmup', '1', '--duration', '2');
    expect(p.exitCode, p.stderr).toBe(0);
    const json = JSON.parse(p.stdout) as { valid: boolean; violations: string[]; spec: { faults: unknown }; ledgerHeights: Record<string, number> };
    expect(json.valid).toBe(true);
    expect(json.violations).toEqual([]);
    const faults = [{ replica: 0, fault: { kind: 'inTheDark', victims: [3] } }];
    expect(json.spec.faults).toEqual(faults);
    // Replica 3 hears of batches only through checkpoints: never ahead of the others.
    expect(json.ledgerHeights['3']).toBeLessThanOrEqual(json.ledgerHeights['1']!);
    const line = JSON.parse(readFileSync(join(out, 'runs.jsonl'), 'utf8').trim()) as { spec: { faults: unknown } };
    expect(line.spec.faults).toEqual(faults);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as { spec: { faults: unknown } };
    expect(manifest.spec.faults).toEqual(faults);
  });

  it('refuses a fault on a replica that does not exist, with exit code 2', async () => {
    const p = await execa(process.execPath, [CLI, 'run', '--protocol', 'poe', '--faults', '9=silent'], { reject: false });
    expect(p.exitCode).toBe(2);
    expect(p.stderr).toMatch(/--faults: '9=silent': replica 9 does not exist \(replicas are 0..3\)/);
  });
});
