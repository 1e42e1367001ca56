/**
 * Attribution end to end (issue 11 item 3, "How it is checked"): short runs pushed into each
 * bottleneck kind, and the verdict `run --json` carries (infra/run/bottleneck.ts has the rule).
 * - clients: an open-loop rate far below what 4 PoE replicas carry;
 * - cpu: 32 replicas on this machine; and every process pinned to one CPU (--pin 0);
 * - latency: a 20 ms delay on every link, closed loop.
 * The machine is shared: when other programs fill its CPU, the idle-CPU verdicts cannot be
 * reached, and those tests say so and skip instead of passing or failing on someone else's load.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, runResultJson, type RunResult } from '../../infra/run/execute.js';
import { makeRunSpec } from '../../infra/run/spec.js';
import { type Bottleneck, type CpuSample, machineCpuPercent, parseProcStat } from '../../infra/run/bottleneck.js';
import { alivePids, ensureBuilt } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const SHORT = { protocol: 'poe', warmupS: 1, durationS: 3, records: 100_000 } as const;
const pids: number[] = [];
afterAll(() => expect(alivePids(pids), 'processes left behind').toEqual([]));

/** Runs a spec; a run that completed but is invalid (32 replicas on 2 busy cores may not converge) still has a verdict. */
async function run(spec: Omit<Parameters<typeof makeRunSpec>[0], 'protocol'>, requireValid = true): Promise<{ r: RunResult; b: Bottleneck }> {
  const r = await executeRun(makeRunSpec({ ...SHORT, ...spec }));
  pids.push(...r.pids);
  const why = `${r.reason ?? ''} ${r.violations.slice(0, 2).join('; ')} ${r.implausible.join('; ')}`;
  expect(r.failed, why).toBe(false);
  if (requireValid) expect(r.valid, why).toBe(true);
  const json = runResultJson(r);
  const b = json['bottleneck'] as Bottleneck;
  expect(b, 'run --json carries the bottleneck').toBeDefined();
  expect(['cpu', 'clients', 'latency', 'network']).toContain(b.kind);
  console.log(`${r.spec.replicas} replicas, link ${r.spec.link}, ${Math.round(r.throughputTxnPerSec)} txn/s: ${b.kind}: ${b.detail}`);
  return { r, b };
}

/** CPU 0's busy and total jiffies since boot (/proc/stat), to see who used it during a pinned run. */
const cpu0 = (): CpuSample | undefined => parseProcStat(readFileSync('/proc/stat', 'utf8'), 'cpu0');

/** Another program filled the machine: an idle-CPU verdict cannot be reached. */
function machineBusyElsewhere(b: Bottleneck): boolean {
  return b.kind === 'cpu' && b.machineCpuPercent !== null && b.machineCpuPercent >= 0.9 * 100 * b.cores && (b.busiestCpuPercent ?? 0) < 90;
}

describe('bottleneck verdicts', () => {
  it('clients: an open-loop rate far below capacity', async (ctx) => {
    // 50 batches/s of 100 txns: 5,000 txn/s, a few percent of what PoE carries at n = 4.
    const { r, b } = await run({ replicas: 4, clients: 8, openLoopBatchesPerSec: 50 });
    if (machineBusyElsewhere(b)) ctx.skip();
    expect(b.kind, b.detail).toBe('clients');
    expect(b.machineCpuPercent).not.toBeNull();
    expect(r.throughputTxnPerSec).toBeGreaterThan(0.9 * 5000);
  }, 60_000);

  it('latency: a 20 ms delay on every link, closed loop', async (ctx) => {
    const { b } = await run({ replicas: 4, clients: 4, link: 'delay=20ms' });
    if (machineBusyElsewhere(b)) ctx.skip();
    expect(b.kind, b.detail).toBe('latency');
  }, 60_000);

  it('cpu: every process pinned to one CPU', async (ctx) => {
    const before = cpu0();
    const { r, b } = await run({ replicas: 4, clients: 24, infra: { pinCpus: [0] } });
    const after = cpu0();
    // Another program shared CPU 0 (in `npm test`, another test file; seen on 2026-12-05: the
    // machine at 178% while the pinned processes' busiest used 20%): CPU 0 was busy, but not
    // with them, so they could not use 90% of it. CPU 0 idle while they were short of it is a
    // failure, not a skip.
    const ours = (r.metrics?.processes ?? []).reduce((s, p) => s + (p.cpuPercent ?? 0), 0);
    if (b.kind !== 'cpu' && (machineCpuPercent(before, after, 1) ?? 0) >= 90 && ours < 90) ctx.skip();
    expect(b.kind, b.detail).toBe('cpu');
  }, 60_000);

  it('cpu: 32 replicas on this machine', async () => {
    // Long timeouts: a view change on an overloaded machine is not what this test is about.
    const { b } = await run({ replicas: 32, clients: 32, warmupS: 2, viewChangeTimeoutMs: 30_000, clientTimeoutMs: 30_000 }, false);
    expect(b.kind, b.detail).toBe('cpu');
    expect(b.busiestProcess).toMatch(/^(replica|client) \d+$/);
  }, 120_000);
});
