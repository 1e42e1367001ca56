import { describe, expect, it } from 'vitest';
import { attributeBottleneck, machineCpuPercent, parseProcStat, type BottleneckInput } from './bottleneck.js';

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
