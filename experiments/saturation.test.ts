/**
 * Saturation probing (issue 11 item 1): the load is doubled while a probe at double load gains
 * at least 5%; the run kept is the one at the load that no longer gained.
 */
import { describe, expect, it } from 'vitest';
import type { RunResult } from '../infra/run/execute.js';
import type { RunSpec } from '../infra/run/spec.js';
import { attributeBottleneck } from '../infra/run/bottleneck.js';
import { closedLoopInput } from '../test/fixtures.js';
import { cpuFull, judgeProbe, runSaturated, withLoadProbe } from './saturation.js';

/** A fake protocol whose throughput follows the load up to `capacity` txn/s (Little's law with 10 ms latency). */
function fakeRunner(capacity: number, calls: { load: number; measuredSec?: number }[]) {
  const atLoad = (loadTxns: number, measuredSec?: number) => ({ loadTxns, durationS: measuredSec ?? 6 }) as unknown as RunSpec;
  const run = async (spec: RunSpec): Promise<RunResult> => {
    const load = spec.loadTxns!;
    calls.push({ load, ...(spec.durationS !== 6 ? { measuredSec: spec.durationS } : {}) });
    const throughput = Math.min(capacity, load / 0.01);
    const mean = (1000 * load) / throughput;
    return {
      valid: true,
      interrupted: false,
      throughputTxnPerSec: throughput,
      latencyMs: { mean, p50: mean, p99: mean, max: mean },
      spec,
    } as unknown as RunResult;
  };
  return { atLoad, run };
}

describe('runSaturated', () => {
  it('doubles the load until double load gains < 5%, keeps the run at that load', async () => {
    const calls: { load: number; measuredSec?: number }[] = [];
    const { atLoad, run } = fakeRunner(300_000, calls);
    // 1000 txns -> 100K/s; 2000 -> 200K/s; 4000 -> 300K/s (capped); 8000 -> 300K/s.
    const out = await runSaturated(1000, atLoad, run, { maxDoublings: 3, probeMeasuredSec: 3 });
    expect(out!.saturation).toMatchObject({ loadTxns: 4000, how: 'probed', saturated: true });
    expect(out!.result.throughputTxnPerSec).toBe(300_000);
    expect(out!.saturation.probes.map((p) => [p.loadTxns, p.gainPercent])).toEqual([
      [2000, 100],
      [4000, 50],
      [8000, 0],
    ]);
    // Full runs at 1000, 2000, 4000; each probe is short.
    expect(calls).toEqual([
      { load: 1000 },
      { load: 2000, measuredSec: 3 },
      { load: 2000 },
      { load: 4000, measuredSec: 3 },
      { load: 4000 },
      { load: 8000, measuredSec: 3 },
    ]);
  });

  it('probes a CPU-bound run too, and moves up when more load lowered the CPU per batch (issue 10)', async () => {
    const calls: { load: number; measuredSec?: number }[] = [];
    const { atLoad, run } = fakeRunner(300_000, calls);
    // Every run fills the CPU, but the fake's throughput still follows the load up to 300K/s, as
    // coalescing lets a CPU-bound protocol do: the probe, not the CPU, decides.
    const cpuBound = async (spec: RunSpec): Promise<RunResult> =>
      ({
        ...(await run(spec)),
        bottleneck: { kind: 'cpu', cores: 2, machineCpuPercent: 199, busiestProcess: 'replica 0', busiestCpuPercent: 60, detail: '' },
        metrics: { processes: [60, 60, 60, 15].map((cpuPercent, i) => ({ name: `replica ${i}`, cpuPercent })) },
      }) as unknown as RunResult;
    const out = await runSaturated(2000, atLoad, cpuBound, { maxDoublings: 3, probeMeasuredSec: 3 });
    expect(out!.saturation).toMatchObject({ loadTxns: 4000, how: 'probed', saturated: true });
    expect(out!.saturation.probes.map((p) => [p.loadTxns, p.gainPercent])).toEqual([
      [4000, 50],
      [8000, 0],
    ]);
    expect(out!.saturation.note).toMatch(/CPU-bound: its 4 processes used 195% of the machine's 200%/);
  });

  it('stops at the profile cap and records the point as not shown saturated', async () => {
    const { atLoad, run } = fakeRunner(1e9, []);
    const out = await runSaturated(1000, atLoad, run, { maxDoublings: 1, probeMeasuredSec: 3 });
    expect(out!.saturation).toMatchObject({ loadTxns: 2000, saturated: false });
    expect(out!.saturation.note).toMatch(/NOT shown saturated/);
  });

  it("makes the run's bottleneck verdict again with its probe: a flat probe is not told that more load would help (issue 11 item 3)", async () => {
    // Idle CPU, closed loop, nothing waiting: the verdict the probe decides (infra/run/bottleneck.ts rule 4).
    const input = closedLoopInput({ machineCpuPercent: 156, replicaCpuPercent: 35, clientCpuPercent: 23, throughputTxnPerSec: 0, meanLatencyMs: 10 });
    const verdictAt = async (capacity: number) => {
      const { atLoad, run } = fakeRunner(capacity, []);
      const withInput = async (spec: RunSpec): Promise<RunResult> => {
        const r = await run(spec);
        return { ...r, bottleneckInput: input, bottleneck: attributeBottleneck(input) };
      };
      const out = await runSaturated(2000, atLoad, withInput, { maxDoublings: 1, probeMeasuredSec: 3 });
      return out!.result.bottleneck!;
    };
    // 2000 txns already at capacity: the probe at 4000 gains 0%.
    const flat = await verdictAt(200_000);
    expect(flat.detail).toMatch(/^client-bound, not load-bound: a probe at 2x the outstanding transactions: double load gained 0% \(< 5%\)/);
    expect(flat.detail).not.toMatch(/more outstanding transactions would raise throughput/);
    // Far from capacity: the probes gain 100% up to the cap; the verdict says the load bound it.
    const rising = await verdictAt(1e9);
    expect(rising.detail).toMatch(/double load gained 100%: more outstanding transactions would raise throughput$/);
    // A result without the verdict's inputs is left as it is.
    expect(withLoadProbe({ bottleneck: flat }, { factor: 2, gainPercent: 50, gained: true, why: '' })).toEqual({ bottleneck: flat });
  });

  it('a probe whose latency explodes, or that is invalid, shows saturation', () => {
    const base = { throughputTxnPerSec: 100, latencyMs: { mean: 10, p50: 10, p99: 10, max: 10 } };
    expect(judgeProbe(base, { valid: true, throughputTxnPerSec: 120, latencyMs: { mean: 50, p50: 0, p99: 0, max: 0 } }).saturated).toBe(true);
    expect(judgeProbe(base, { valid: false, throughputTxnPerSec: 0, latencyMs: base.latencyMs }).saturated).toBe(true);
    expect(judgeProbe(base, { valid: true, throughputTxnPerSec: 104, latencyMs: base.latencyMs })).toMatchObject({ saturated: true, gainPercent: 4 });
    expect(judgeProbe(base, { valid: true, throughputTxnPerSec: 106, latencyMs: base.latencyMs })).toMatchObject({ saturated: false, gainPercent: 6 });
  });
});

describe('cpuFull', () => {
  const metrics = (cpus: number[]) => ({ processes: cpus.map((cpuPercent, i) => ({ name: `replica ${i}`, cpuPercent })) }) as unknown as RunResult['metrics'];
  const cpu = { kind: 'cpu', cores: 2, machineCpuPercent: 199, busiestProcess: 'replica 0', busiestCpuPercent: 60, detail: '' } as const;
  it('says so only when the run itself filled the machine', () => {
    expect(cpuFull({ bottleneck: cpu, metrics: metrics([60, 60, 60, 15]) })).toMatch(/195% of the machine's 200%/);
    // The machine was full, but mostly of other programs: probe.
    expect(cpuFull({ bottleneck: cpu, metrics: metrics([20, 20, 20, 20]) })).toBeUndefined();
    expect(cpuFull({ bottleneck: { ...cpu, kind: 'clients' }, metrics: metrics([60, 60, 60, 15]) })).toBeUndefined();
  });
});
