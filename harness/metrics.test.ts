/**
 * Metrics from process reports (DESIGN.md "Metrics"): throughput counts only the window,
 * latency histograms merge across client processes, replica rates use each replica's own
 * window, and impossible numbers are refused instead of printed.
 */
import * as hdr from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import type { ClientMetricsReport } from '../client/runtime.js';
import type { ReplicaMetricsReport } from '../replica/runtime.js';
import { newTransportCounters } from '../replica/transport.js';
import { aggregateMetrics, implausibilities } from './metrics.js';

function client(origin: number, latenciesMs: readonly number[], txnsEach: number, extra: Partial<ClientMetricsReport> = {}): ClientMetricsReport {
  const h = hdr.build();
  for (const l of latenciesMs) h.recordValueWithCount(l * 1000, txnsEach);
  return {
    role: 'client',
    origin,
    pid: 100 + origin,
    windowOpened: true,
    windowClosed: true,
    windowMs: 2000,
    acceptedTxnsInWindow: latenciesMs.length * txnsEach,
    acceptedBatchesInWindow: latenciesMs.length,
    acceptedBatchesTotal: latenciesMs.length + 5,
    issuedBatches: latenciesMs.length + 10,
    latencyHistogram: hdr.encodeIntoCompressedBase64(h),
    latencyMsMin: Math.min(...latenciesMs),
    txnsPerSecond: [500, latenciesMs.length * txnsEach / 2, latenciesMs.length * txnsEach / 2],
    warmupMs: 1000,
    windowCpuMs: 500,
    windowElapsedMs: 2000,
    peakRssBytes: 50 * 2 ** 20,
    timeouts: 1,
    paths: { fast: latenciesMs.length },
    rejected: {},
    decodeErrors: 0,
    transport: newTransportCounters(),
    ...extra,
  };
}

function replica(id: number, framesSent: number, elapsedMs: number): ReplicaMetricsReport {
  return {
    role: 'replica',
    id,
    pid: 10 + id,
    window: {
      elapsedMs,
      cpuMs: elapsedMs / 4,
      framesSent,
      bytesSent: framesSent * 100,
      framesReceived: 0,
      bytesReceived: 0,
      messagesToReplicas: framesSent - 10,
      messagesToClients: 10,
      executedBatches: 0,
      executedTxns: 0,
    },
    transport: { ...newTransportCounters(), badMac: id, framesSent: 100, writes: 10 },
    decodeErrors: 0,
    earlyDropped: 0,
    events: { viewChangeStarted: id === 1 ? 2 : 0, rollback: 1 },
    rejected: {},
    peakRssBytes: 100 * 2 ** 20,
    status: { id, view: 0, executedK: 10, stableK: 0, inViewChange: false, logEntries: 0 },
  };
}

describe('aggregateMetrics', () => {
  it('throughput over the window, merged latency percentiles, replica rates over their own windows', () => {
    const m = aggregateMetrics([replica(0, 1000, 2000), replica(1, 500, 1000)], [client(0, [10, 20, 30], 100), client(1, [40], 100)], 1);
    expect(m.acceptedTxns).toBe(400);
    expect(m.throughputTxnPerSec).toBe(200); // 400 txns in a 2 s window
    expect(m.latencyMs.mean).toBeCloseTo(25, 1);
    expect(m.latencyMs.max).toBeCloseTo(40, 1);
    expect(m.latencyMs.p50).toBeCloseTo(20, 1);
    expect(m.messagesPerSec).toBe(500 + 500);
    expect(m.bytesPerSec).toBe(100_000);
    expect(m.viewChanges).toBe(2);
    expect(m.rollbacks).toBe(2);
    expect(m.clientTimeouts).toBe(2);
    expect(m.dropped.badMac).toBe(1);
    expect(m.framesPerWrite).toBe(10);
    expect(m.throughputSeries[0]).toEqual({ tSec: -1, txnPerSec: 1000 });
    expect(m.processes.find((p) => p.name === 'replica 0')!.cpuPercent).toBe(25);
    expect(m.processes.find((p) => p.name === 'client 1')!.peakRssMB).toBe(50);
  });
});

describe('implausibilities', () => {
  it('accepts a sane run', () => {
    const rs = [replica(0, 100, 1000)];
    const cs = [client(0, [5, 6], 100)];
    expect(implausibilities(aggregateMetrics(rs, cs, 1), rs, cs, 3)).toEqual([]);
  });

  it('refuses zero accepted, negative latency, a window never reached, latency longer than the run', () => {
    const rs = [replica(0, 100, 1000), { ...replica(1, 1, 1), window: undefined }];
    const cs = [
      client(0, [], 100, { latencyMsMin: null }),
      client(1, [1], 100, { latencyMsMin: -3 }),
      client(2, [1], 100, { windowClosed: false }),
      client(3, [9000], 100),
    ];
    const why = implausibilities(aggregateMetrics(rs, cs, 1), rs, cs, 5).join('\n');
    expect(why).toMatch(/client 0 accepted no transaction inside the measurement window/);
    expect(why).toMatch(/client 1 measured a negative latency/);
    expect(why).toMatch(/client 2 never reached the end of the measurement window/);
    expect(why).toMatch(/replica 1 never reached the end of the measurement window/);
    expect(why).toMatch(/longer than the run/);
    const none = [client(0, [], 100, { latencyMsMin: null })];
    expect(implausibilities(aggregateMetrics([], none, 1), [], none, 5).join('\n')).toMatch(/no transaction was accepted inside the measurement window/);
  });
});
