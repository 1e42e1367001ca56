import { describe, expect, it } from 'vitest';
import { attributeBottleneck, machineCpuPercent, parseProcStat, type BottleneckInput, type LoadProbe } from './bottleneck.js';

const idle: BottleneckInput = {
  machineCpuPercent: 40,
  cores: 2,
  processes: [
    { name: 'replica 0', cpuPercent: 20 },
    { name: 'client 0', cpuPercent: 10 },
  ],
  linkDelayMs: 0,
  linkRateBitsPerSec: 0,
  busiestSenderBitsPerSecPerLink: 1e6,
  throughputTxnPerSec: 50_000,
  meanLatencyMs: 10,
  clientTimeouts: 0,
  acceptedBatches: 5000,
};

describe('attributeBottleneck', () => {
  it('cpu when the machine is at 90% of its cores, whoever used it', () => {
    const b = attributeBottleneck({ ...idle, machineCpuPercent: 197 });
    expect(b.kind).toBe('cpu');
    expect(b.detail).toMatch(/197% of 200%/);
    expect(attributeBottleneck({ ...idle, machineCpuPercent: 179 }).kind).not.toBe('cpu');
  });

  it('cpu when one process fills its one core, even on an idle machine', () => {
    const b = attributeBottleneck({ ...idle, processes: [...idle.processes, { name: 'client 1', cpuPercent: 95 }] });
    expect(b).toMatchObject({ kind: 'cpu', busiestProcess: 'client 1', busiestCpuPercent: 95 });
  });

  it('cpu when the processes fill the CPUs they were pinned to', () => {
    const pinned = {
      ...idle,
      pinnedCpus: 1,
      processes: [
        { name: 'replica 0', cpuPercent: 50 },
        { name: 'client 0', cpuPercent: 45 },
      ],
    };
    expect(attributeBottleneck(pinned).kind).toBe('cpu');
    expect(attributeBottleneck({ ...pinned, pinnedCpus: 2 }).kind).not.toBe('cpu');
  });

  it('network when the busiest sender fills an emulated rate', () => {
    expect(attributeBottleneck({ ...idle, linkRateBitsPerSec: 10e6, busiestSenderBitsPerSecPerLink: 9e6 }).kind).toBe('network');
    expect(attributeBottleneck({ ...idle, linkRateBitsPerSec: 100e6, busiestSenderBitsPerSecPerLink: 9e6 }).kind).toBe('clients');
  });

  it('open loop: clients when the replicas kept up, latency when they did not', () => {
    expect(attributeBottleneck({ ...idle, offeredTxnPerSec: 51_000 }).kind).toBe('clients');
    expect(attributeBottleneck({ ...idle, offeredTxnPerSec: 100_000 }).kind).toBe('latency');
  });

  it('closed loop: latency when link round trips or timeouts make the latency, clients otherwise', () => {
    expect(attributeBottleneck({ ...idle, linkDelayMs: 20, meanLatencyMs: 90 }).kind).toBe('latency');
    expect(attributeBottleneck({ ...idle, linkDelayMs: 0.25, meanLatencyMs: 90 }).kind).toBe('clients');
    expect(attributeBottleneck({ ...idle, clientTimeouts: 100 }).kind).toBe('latency');
    expect(attributeBottleneck(idle).kind).toBe('clients');
  });

  it('closed loop, idle CPU, no probe: clients, and it says the run does not show whether more load or more client processes would help', () => {
    const b = attributeBottleneck(idle);
    expect(b.kind).toBe('clients');
    expect(b.detail).toMatch(/^client-bound, not probed: /);
    expect(b.detail).not.toMatch(/more outstanding transactions would raise throughput/);
    expect(b.detail).toMatch(/--client-procs/);
  });

  // figure 13 --quick (/work/meas/s17/fig13/runs.jsonl): PoE at n = 4, 2,400 txns outstanding,
  // machine 156% of 200%, busiest replica 0 at 35.5%, client 0 at 22.8%; its probe at 4,800 gained 3.6%.
  const poeN4: BottleneckInput = {
    ...idle,
    machineCpuPercent: 156.1,
    processes: [
      { name: 'replica 0', cpuPercent: 35.5, role: 'replica' },
      { name: 'replica 1', cpuPercent: 31.9, role: 'replica' },
      { name: 'replica 2', cpuPercent: 33.2, role: 'replica' },
      { name: 'replica 3', cpuPercent: 32.6, role: 'replica' },
      { name: 'client 0', cpuPercent: 22.8, role: 'client' },
    ],
  };
  const flat: LoadProbe = { factor: 2, gainPercent: 3.6, gained: false, why: 'double load gained 3.6% (< 5%)' };

  it('a probe at double load that gained < 5% is not told "more outstanding transactions would raise throughput": the client process as a serial stage, with the figures', () => {
    const b = attributeBottleneck({ ...poeN4, loadProbe: flat });
    expect(b.kind).toBe('clients');
    expect(b.detail).not.toMatch(/more outstanding transactions would raise throughput/);
    expect(b.detail).toMatch(/^client-bound, not load-bound: /);
    expect(b.detail).toMatch(/double load gained 3\.6% \(< 5%\)/);
    expect(b.detail).toMatch(/machine 156% of 200% CPU/);
    expect(b.detail).toMatch(/busiest at 36%/);
    expect(b.detail).toMatch(/the 1 client process at 23%/);
    expect(b.detail).toMatch(/--client-procs .*--client-machines/);
    // Two client processes: both named with their range.
    const two = attributeBottleneck({
      ...poeN4,
      processes: [...poeN4.processes, { name: 'client 1', cpuPercent: 14.3, role: 'client' }],
      loadProbe: { ...flat, whose: "repetition 1's" },
    });
    expect(two.detail).toMatch(/the 2 client processes at 14% to 23% each/);
    expect(two.detail).toMatch(/repetition 1's probe at 2x/);
  });

  it('a probe at double load that gained 5% or more: the load, with the gain', () => {
    const b = attributeBottleneck({ ...poeN4, loadProbe: { factor: 2, gainPercent: 13, gained: true, why: 'double load gained 13%' } });
    expect(b.kind).toBe('clients');
    expect(b.detail).toMatch(/^client-bound: .*double load gained 13%: more outstanding transactions would raise throughput$/);
  });

  it('an invalid probe shows nothing: neither cause is claimed', () => {
    const b = attributeBottleneck({ ...poeN4, loadProbe: { factor: 2, gainPercent: -100, gained: null, why: 'the probe at double load was not valid' } });
    expect(b.kind).toBe('clients');
    expect(b.detail).toMatch(/^client-bound, not shown how: /);
    expect(b.detail).not.toMatch(/would raise throughput$|serial stage/);
  });

  it('a verdict the probe does not decide still quotes it', () => {
    const b = attributeBottleneck({
      ...idle,
      machineCpuPercent: 197,
      loadProbe: { factor: 2, gainPercent: 25.3, gained: true, why: 'double load gained 25.3%' },
    });
    expect(b.kind).toBe('cpu');
    expect(b.detail).toMatch(/^CPU-bound: .* \(a probe at 2x the outstanding transactions: double load gained 25\.3%\)$/);
  });

  it('unknown machine CPU still judges by the processes', () => {
    const b = attributeBottleneck({ ...idle, machineCpuPercent: null });
    expect(b).toMatchObject({ kind: 'clients', machineCpuPercent: null, busiestProcess: 'replica 0' });
  });
});

describe('/proc/stat', () => {
  it('busy and total jiffies, 100 per core between two samples', () => {
    const a = parseProcStat('cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 2 3 4\n')!;
    const b = parseProcStat('cpu  250 0 150 1000 0 0 0 0 0 0\n')!;
    expect(a).toEqual({ busy: 200, total: 1000 });
    // 200 busy of 400 jiffies: half of 2 cores
    expect(machineCpuPercent(a, b, 2)).toBe(100);
    expect(machineCpuPercent(b, a, 2)).toBeNull();
    expect(parseProcStat('nothing')).toBeUndefined();
  });
});
