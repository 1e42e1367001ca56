/**
 * From what every process reported to the run's metrics (DESIGN.md "Metrics, the same
 * definition for every protocol"), and the checks that refuse impossible numbers.
 *
 * - throughput: transactions in batches accepted inside the window, over the window in seconds;
 * - latency: per transaction, from the merged HdrHistograms of every client process;
 * - messages and bytes sent by all replicas inside their windows, per second;
 * - CPU% and peak RSS per process;
 * - failures: view changes (distinct views the correct replicas started or entered), the view
 *   change's duration (the first correct replica's viewChangeStarted to the last correct
 *   replica's viewEntered), rollbacks, client timeouts, and throughput in 1-second buckets
 *   from the window's start, so a view change's dip shows.
 */
import * as hdr from 'hdr-histogram-js';
import type { ClientMetricsReport } from '../process/client.js';
import type { ReplicaMetricsReport } from '../process/replica.js';
import type { TransportCounters } from '../process/transport.js';

export interface LatencySummaryMs {
  readonly mean: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

export interface ProcessFigures {
  readonly name: string;
  readonly role: 'replica' | 'client';
  readonly id: number;
  readonly pid: number;
  /** CPU time in the window over the window's wall time (100 = one core busy). */
  readonly cpuPercent: number | null;
  readonly peakRssMB: number;
  /**
   * The process's transport counters over the whole run (not the window): frames and socket
   * reads and writes, so frames per read and per write can be told per process (the cost
   * model's calibration, experiments/calibrate.ts). Absent in runs recorded before.
   */
  readonly io?: Pick<TransportCounters, 'framesSent' | 'framesReceived' | 'writes' | 'reads'>;
}

export interface RunMetricsReport {
  readonly throughputTxnPerSec: number;
  readonly latencyMs: LatencySummaryMs;
  readonly messagesPerSec: number;
  readonly bytesPerSec: number;
  /** Split of messagesPerSec. */
  readonly replicaToReplicaPerSec: number;
  readonly replicaToClientPerSec: number;
  readonly acceptedTxns: number;
  readonly acceptedBatches: number;
  readonly windowSec: number;
  /** Distinct views above 0 that correct replicas started a view change to or entered. */
  readonly viewChanges: number;
  /**
   * From the first correct replica's viewChangeStarted to the last correct replica's last
   * viewEntered, in ms (times from the processes' clocks, exact on one machine); absent when no
   * view change began or none completed.
   */
  readonly viewChangeMs?: number;
  /** Where that view change begins and ends on the series' axis (seconds from the window's start). */
  readonly viewChangeStartSec?: number;
  readonly viewChangeEndSec?: number;
  /** Each replica's view when the run ended, and whether it was still changing view. */
  readonly replicaViews: Record<string, { readonly view: number; readonly inViewChange: boolean }>;
  readonly rollbacks: number;
  readonly clientTimeouts: number;
  /**
   * Accepted transactions per second in 1-second buckets; tSec is the bucket's start from the
   * start of the window (warm-up buckets negative), up to the window's end. A bucket the run's
   * start or the window's end cuts is divided by the part that was measured.
   */
  readonly throughputSeries: readonly { readonly tSec: number; readonly txnPerSec: number }[];
  readonly acceptedByPath: Record<string, number>;
  readonly processes: readonly ProcessFigures[];
  /** Hostile or broken input seen by replicas: dropped and counted. */
  readonly dropped: {
    readonly badMac: number;
    readonly badFrame: number;
    readonly badHello: number;
    readonly decodeErrors: number;
    readonly unroutable: number;
    readonly queueFull: number;
  };
  readonly rejectedByReplicas: Record<string, number>;
  /** Frames per socket write over the whole run, all replicas: how well output bursts coalesce. */
  readonly framesPerWrite: number;
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0);
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}

/** Accepted transactions per 1-second bucket, summed over client processes, from the window's start (see ClientMetricsReport). */
function throughputSeries(clients: readonly ClientMetricsReport[], warmupMs: number, windowMs: number): { tSec: number; txnPerSec: number }[] {
  if (clients.length === 0) return [];
  const first = Math.min(...clients.map((c) => c.firstBucketSec));
  const end = Math.max(...clients.map((c) => c.firstBucketSec + c.txnsPerSecond.length));
  const series: { tSec: number; txnPerSec: number }[] = [];
  for (let t = first; t < end; t++) {
    const txns = sum(clients.map((c) => c.txnsPerSecond[t - c.firstBucketSec] ?? 0));
    const measuredMs = Math.min(t * 1000 + 1000, windowMs) - Math.max(t * 1000, -warmupMs);
    series.push({ tSec: t, txnPerSec: measuredMs > 0 ? round((txns * 1000) / measuredMs, 1) : 0 });
  }
  return series;
}

interface ViewChangeFigures {
  readonly viewChanges: number;
  readonly viewChangeMs?: number;
  readonly viewChangeStartSec?: number;
  readonly viewChangeEndSec?: number;
}

/**
 * View changes as the correct replicas saw them; faulty replicas are left out, since a Byzantine
 * one may start view changes of its own and a crashed one reports nothing after its crash.
 */
function viewChangeFigures(replicas: readonly ReplicaMetricsReport[], faulty: readonly number[], windowStartEpochMs: number | undefined): ViewChangeFigures {
  const correct = replicas.filter((r) => !faulty.includes(r.id));
  const views = new Set<number>();
  for (const r of correct) for (const e of [...r.viewChangesStarted, ...r.viewsEntered]) if (e.view > 0) views.add(e.view);
  const starts = correct.flatMap((r) => r.viewChangesStarted.map((e) => e.atEpochMs));
  const ends = correct.flatMap((r) =>
    r.viewsEntered
      .filter((e) => e.view > 0)
      .slice(-1)
      .map((e) => e.atEpochMs),
  );
  if (starts.length === 0 || ends.length === 0) return { viewChanges: views.size };
  const startMs = Math.min(...starts);
  const endMs = Math.max(...ends);
  if (endMs < startMs) return { viewChanges: views.size };
  const onAxis = (t: number): number | undefined => (windowStartEpochMs === undefined ? undefined : round((t - windowStartEpochMs) / 1000));
  const startSec = onAxis(startMs);
  const endSec = onAxis(endMs);
  return {
    viewChanges: views.size,
    viewChangeMs: round(endMs - startMs, 1),
    ...(startSec === undefined ? {} : { viewChangeStartSec: startSec }),
    ...(endSec === undefined ? {} : { viewChangeEndSec: endSec }),
  };
}

/**
 * The run's metrics from every process's report; `faulty` names the replicas that are not
 * correct (crashed backups are not among the reports; replicas with --faults are).
 */
export function aggregateMetrics(
  replicas: readonly ReplicaMetricsReport[],
  clients: readonly ClientMetricsReport[],
  warmupS: number,
  faulty: readonly number[] = [],
): RunMetricsReport {
  const histogram = hdr.build({ numberOfSignificantValueDigits: 3 });
  for (const c of clients) histogram.add(hdr.decodeFromCompressedBase64(c.latencyHistogram));
  const acceptedTxns = sum(clients.map((c) => c.acceptedTxnsInWindow));
  // Every client process measures the same window length; take the longest (they are equal).
  const windowMs = Math.max(0, ...clients.map((c) => c.windowMs));
  const windowSec = round(windowMs / 1000, 6);
  const latencyMs: LatencySummaryMs =
    histogram.totalCount === 0
      ? { mean: 0, p50: 0, p99: 0, max: 0 }
      : {
          mean: round(histogram.mean / 1000),
          p50: round(histogram.getValueAtPercentile(50) / 1000),
          p99: round(histogram.getValueAtPercentile(99) / 1000),
          max: round(histogram.maxValue / 1000),
        };

  let messagesPerSec = 0;
  let bytesPerSec = 0;
  let toReplicas = 0;
  let toClients = 0;
  for (const r of replicas) {
    const w = r.window;
    if (!w || w.elapsedMs <= 0) continue;
    const perSec = 1000 / w.elapsedMs;
    messagesPerSec += w.framesSent * perSec;
    bytesPerSec += w.bytesSent * perSec;
    toReplicas += w.messagesToReplicas * perSec;
    toClients += w.messagesToClients * perSec;
  }

  const series = throughputSeries(clients, warmupS * 1000, windowMs);
  const windowStarts = clients.map((c) => c.windowStartEpochMs).filter((t): t is number => t !== null);
  const viewChange = viewChangeFigures(replicas, faulty, windowStarts.length > 0 ? Math.min(...windowStarts) : undefined);

  const acceptedByPath: Record<string, number> = {};
  for (const c of clients) addCounts(acceptedByPath, c.paths);
  const rejectedByReplicas: Record<string, number> = {};
  for (const r of replicas) addCounts(rejectedByReplicas, r.rejected);

  const processes: ProcessFigures[] = [
    ...replicas.map((r) => ({
      name: `replica ${r.id}`,
      role: 'replica' as const,
      id: r.id,
      pid: r.pid,
      cpuPercent: r.window && r.window.elapsedMs > 0 ? round((100 * r.window.cpuMs) / r.window.elapsedMs, 1) : null,
      peakRssMB: round(r.peakRssBytes / 2 ** 20, 1),
      io: ioOf(r.transport),
    })),
    ...clients.map((c) => ({
      name: `client ${c.origin}`,
      role: 'client' as const,
      id: c.origin,
      pid: c.pid,
      cpuPercent: c.windowCpuMs !== null && c.windowElapsedMs ? round((100 * c.windowCpuMs) / c.windowElapsedMs, 1) : null,
      peakRssMB: round(c.peakRssBytes / 2 ** 20, 1),
      io: ioOf(c.transport),
    })),
  ];

  return {
    throughputTxnPerSec: windowSec > 0 ? round(acceptedTxns / windowSec, 1) : 0,
    latencyMs,
    messagesPerSec: round(messagesPerSec, 1),
    bytesPerSec: round(bytesPerSec, 0),
    replicaToReplicaPerSec: round(toReplicas, 1),
    replicaToClientPerSec: round(toClients, 1),
    acceptedTxns,
    acceptedBatches: sum(clients.map((c) => c.acceptedBatchesInWindow)),
    windowSec,
    ...viewChange,
    replicaViews: Object.fromEntries(replicas.map((r) => [String(r.id), { view: r.status.view, inViewChange: r.status.inViewChange }])),
    rollbacks: sum(replicas.map((r) => r.events['rollback'] ?? 0)),
    clientTimeouts: sum(clients.map((c) => c.timeouts)),
    throughputSeries: series,
    acceptedByPath,
    processes,
    dropped: {
      badMac: sum(replicas.map((r) => r.transport.badMac)),
      badFrame: sum(replicas.map((r) => r.transport.badFrame)),
      badHello: sum(replicas.map((r) => r.transport.badHello)),
      decodeErrors: sum(replicas.map((r) => r.decodeErrors)),
      unroutable: sum(replicas.map((r) => r.transport.unroutable)),
      queueFull: sum(replicas.map((r) => r.transport.queueFull)),
    },
    rejectedByReplicas,
    framesPerWrite: round(sum(replicas.map((r) => r.transport.framesSent)) / Math.max(1, sum(replicas.map((r) => r.transport.writes))), 2),
  };
}

const ioOf = (t: TransportCounters): NonNullable<ProcessFigures['io']> => ({
  framesSent: t.framesSent,
  framesReceived: t.framesReceived,
  writes: t.writes,
  reads: t.reads,
});

/**
 * Why the numbers cannot be trusted, if they cannot (DESIGN.md: a run whose clients accept
 * nothing, or whose numbers are impossible, fails loudly instead of printing zeros).
 */
export function implausibilities(
  m: RunMetricsReport,
  replicas: readonly ReplicaMetricsReport[],
  clients: readonly ClientMetricsReport[],
  runSec: number,
): string[] {
  const out: string[] = [];
  for (const c of clients) {
    if (!c.windowClosed) out.push(`client ${c.origin} never reached the end of the measurement window`);
    else if (c.acceptedTxnsInWindow === 0) out.push(`client ${c.origin} accepted no transaction inside the measurement window`);
    if (c.latencyMsMin !== null && c.latencyMsMin < 0) out.push(`client ${c.origin} measured a negative latency (${c.latencyMsMin} ms)`);
    if (c.acceptedBatchesTotal > c.issuedBatches) out.push(`client ${c.origin} accepted ${c.acceptedBatchesTotal} batches but issued only ${c.issuedBatches}`);
  }
  for (const r of replicas) if (!r.window) out.push(`replica ${r.id} never reached the end of the measurement window`);
  if (m.acceptedTxns === 0) out.push('no transaction was accepted inside the measurement window');
  const values = [m.throughputTxnPerSec, m.latencyMs.mean, m.latencyMs.p50, m.latencyMs.p99, m.latencyMs.max, m.messagesPerSec, m.bytesPerSec];
  if (values.some((v) => !Number.isFinite(v) || v < 0))
    out.push(`impossible figures: ${JSON.stringify({ throughput: m.throughputTxnPerSec, latencyMs: m.latencyMs })}`);
  if (m.latencyMs.max > runSec * 1000) out.push(`a latency of ${m.latencyMs.max} ms is longer than the run (${runSec} s)`);
  return out;
}
