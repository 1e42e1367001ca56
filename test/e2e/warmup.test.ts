/**
 * The adaptive warm-up and the window's extension end to end (issue 11 item 2): short runs of
 * PoE on 4 local replicas.
 * - an open-loop rate far below capacity gives the same throughput every second, so the warm-up
 *   settles (infra/run/steady.ts: the throughput, and the processes' resident memory) and the
 *   window opens well before the cap;
 * - --fixed-warmup keeps the old fixed warm-up;
 * - a slow primary (every message it sends 150 ms late) makes the mean latency too long for a
 *   2 s window (20 mean latencies wanted): the window is extended, at most 3x.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRun, runResultJson, type RunResult } from '../../infra/run/execute.js';
import { makeRunSpec } from '../../infra/run/spec.js';
import { MEMORY_GROWTH_PERCENT, MIN_WARMUP_SEC, type Steady } from '../../infra/run/steady.js';
import { alivePids, ensureBuilt } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const pids: number[] = [];
afterAll(() => expect(alivePids(pids), 'processes left behind').toEqual([]));

async function run(spec: Omit<Parameters<typeof makeRunSpec>[0], 'protocol'>): Promise<{ r: RunResult; steady: Steady }> {
  const r = await executeRun(makeRunSpec({ protocol: 'poe', records: 100_000, ...spec }));
  pids.push(...r.pids);
  const why = `${r.reason ?? ''} ${r.violations.slice(0, 2).join('; ')} ${r.implausible.join('; ')}`;
  expect(r.failed, why).toBe(false);
  expect(r.valid, why).toBe(true);
  const steady = runResultJson(r)['steady'] as Steady;
  expect(steady, 'run --json carries steady').toBeDefined();
  console.log(
    `warm-up ${steady.warmupSec} s (${steady.warmupEndedBy}, cap ${steady.warmupCapSec} s), window ${steady.windowSec} s of ${steady.plannedWindowSec} s planned, ${Math.round(r.throughputTxnPerSec)} txn/s; ${steady.flags.join('; ')}`,
  );
  return { r, steady };
}

/** Every replica measured the window the clients did (the processes' windows are aligned). */
function expectAlignedWindows(r: RunResult, windowSec: number): void {
  for (const p of r.metrics!.processes) expect(p.cpuPercent, `${p.name} measured a window`).not.toBeNull();
  expect(r.metrics!.windowSec).toBeCloseTo(windowSec, 1);
}

describe('adaptive warm-up on 4 local replicas', () => {
  it('a steady open-loop load: the warm-up settles and the window opens before the cap', async () => {
    const { r, steady } = await run({ openLoopBatchesPerSec: 100, batch: 10, clients: 16, warmupS: 20, durationS: 3 });
    expect(steady.warmupEndedBy).toBe('settled');
    expect(steady.warmupSec).toBeGreaterThanOrEqual(MIN_WARMUP_SEC);
    expect(steady.warmupSec).toBeLessThan(20);
    expect(steady.warmupSettled).toBe(true);
    // The processes' memory had stopped growing too (every process answered `memory`).
    expect(steady.memorySettled).toBe(true);
    expect(steady.memoryGrowthPercent).toBeLessThanOrEqual(MEMORY_GROWTH_PERCENT);
    expect(steady.windowSec).toBeCloseTo(3, 1);
    expectAlignedWindows(r, 3);
    // The series' axis starts at the warm-up actually used (its whole seconds), not at the cap.
    expect(r.metrics!.throughputSeries[0]!.tSec).toBe(-Math.floor(steady.warmupSec + 0.05));
    // 100 batches of 10 every second.
    expect(r.throughputTxnPerSec).toBeGreaterThan(900);
    expect(r.throughputTxnPerSec).toBeLessThan(1100);
  }, 90_000);

  it('--fixed-warmup: the window opens at the warm-up given', async () => {
    const { r, steady } = await run({ clients: 8, batch: 10, warmupS: 2, durationS: 2, warmupFixed: true });
    expect(r.spec.warmupFixed).toBe(true);
    expect(steady.warmupEndedBy).toBe('fixed');
    expect(steady.warmupSec).toBeCloseTo(2, 1);
    expectAlignedWindows(r, 2);
  }, 90_000);

  it('a window shorter than 20 mean latencies is extended, at most 3x', async () => {
    const { r, steady } = await run({ clients: 4, batch: 10, warmupS: 8, durationS: 2, faults: [{ replica: 0, fault: { kind: 'slow', delayMs: 150 } }] });
    expect(r.latencyMs.mean).toBeGreaterThan(100);
    expect(steady.windowExtended).toBe(true);
    expect(steady.plannedWindowSec).toBe(2);
    expect(steady.windowSec).toBeGreaterThan(2);
    expect(steady.windowSec).toBeLessThanOrEqual(6);
    expectAlignedWindows(r, steady.windowSec);
  }, 120_000);
});
