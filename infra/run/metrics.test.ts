/**
 * Metrics from process reports (DESIGN.md "Metrics"): throughput counts only the window,
 * latency histograms merge across client processes, replica rates use each replica's own
 * window, and impossible numbers are refused instead of printed.
 */
import * as hdr from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import type { ClientMetricsReport } from '../process/client.js';
import type { ReplicaMetricsReport } from '../process/replica.js';
import { newTransportCounters } from '../process/transport.js';
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
    txnsPerSecond: [500, (latenciesMs.length * txnsEach) / 2, (latenciesMs.length * txnsEach) / 2],
    firstBucketSec: -1,
    windowStartEpochMs: WINDOW_START_EPOCH_MS,
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

const WINDOW_START_EPOCH_MS = 1_700_000_000_000;
const at = (view: number, sec: number) => ({ view, atEpochMs: WINDOW_START_EPOCH_MS + sec * 1000 });

function replica(id: number, framesSent: number, elapsedMs: number, extra: Partial<ReplicaMetricsReport> = {}): ReplicaMetricsReport {
  return {
    role: 'replica',
    id,
    pid: 10 + id,
    faults: [],
    // Replica 1 went through two view changes: view 1 failed, view 2 was entered.
    viewChangesStarted: id === 1 ? [at(1, 0.5), at(2, 0.9)] : [],
    viewsEntered: id === 1 ? [at(2, 1.2)] : [],
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
    ...extra,
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
    expect(m.throughputSeries.map((b) => b.tSec)).toEqual([-1, 0, 1]);
    expect(m.viewChangeMs).toBe(700);
    expect(m.viewChangeStartSec).toBe(0.5);
    expect(m.viewChangeEndSec).toBe(1.2);
    expect(m.processes.find((p) => p.name === 'replica 0')!.cpuPercent).toBe(25);
    expect(m.processes.find((p) => p.name === 'client 1')!.peakRssMB).toBe(50);
  });
});

describe('failure metrics', () => {
  it('counts distinct views of correct replicas and times the view change from the first start to the last entry', () => {
    const rs = [
      replica(0, 10, 1000, { viewChangesStarted: [at(1, 2.0)], viewsEntered: [] }),
      replica(1, 10, 1000, { viewChangesStarted: [at(1, 2.1), at(1, 2.2)], viewsEntered: [at(1, 2.4)] }),
      replica(2, 10, 1000, { viewChangesStarted: [at(1, 2.05)], viewsEntered: [at(1, 2.3)] }),
      // A faulty replica's own view changes (here, a Byzantine one running ahead) are left out.
      replica(3, 10, 1000, { viewChangesStarted: [at(5, 0.1)], viewsEntered: [at(5, 9)] }),
    ];
    const m = aggregateMetrics(rs, [client(0, [10], 100)], 1, [3]);
    expect(m.viewChanges).toBe(1);
    expect(m.viewChangeMs).toBe(400);
    expect(m.viewChangeStartSec).toBe(2);
    expect(m.viewChangeEndSec).toBe(2.4);
    // Counting replica 3 would have found view 5 and an 8.9 s view change.
    expect(aggregateMetrics(rs, [client(0, [10], 100)], 1).viewChanges).toBe(2);
  });

  it('reports no duration when no view change began or none completed', () => {
    const none = aggregateMetrics([replica(0, 10, 1000, { viewChangesStarted: [], viewsEntered: [] })], [client(0, [10], 100)], 1);
    expect(none.viewChanges).toBe(0);
    expect(none.viewChangeMs).toBeUndefined();
    const stuck = aggregateMetrics([replica(0, 10, 1000, { viewChangesStarted: [at(1, 1)], viewsEntered: [] })], [client(0, [10], 100)], 1);
    expect(stuck.viewChanges).toBe(1);
    expect(stuck.viewChangeMs).toBeUndefined();
  });

  it('sums the series over client processes and scales buckets cut by the start or the window end', () => {
    // Warm-up 1.5 s: bucket -2 holds only 0.5 s of the run; window 2.5 s: bucket 2 holds 0.5 s.
    const c = (origin: number) => client(origin, [10], 100, { firstBucketSec: -2, txnsPerSecond: [50, 100, 100, 100, 50], warmupMs: 1500, windowMs: 2500 });
    const m = aggregateMetrics([], [c(0), c(1)], 1.5);
    expect(m.throughputSeries).toEqual([
      { tSec: -2, txnPerSec: 200 },
      { tSec: -1, txnPerSec: 200 },
      { tSec: 0, txnPerSec: 200 },
      { tSec: 1, txnPerSec: 200 },
      { tSec: 2, txnPerSec: 200 },
    ]);
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
