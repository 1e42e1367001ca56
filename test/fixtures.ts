/**
 * TEST DATA ONLY. Invented RunRecords for the tests of statistics, charts, sentences, claims
 * and reports. None of these numbers was measured; they must never be shown as results. The
 * experiment names carry a "fixture" marker only when asked to (tests of experiment-name
 * matching need real names), and `startedAt` always says "fixture".
 */
import type { ProtocolName } from '../replica/types.js';
import { FIGURES } from '../experiments/figures.js';
import { pointId, type FigureId, type RunMetrics, type RunRecord, type SweepPoint } from '../infra/run/records.js';
import type { RunResult } from '../infra/run/execute.js';
import type { RunSpec } from '../infra/run/spec.js';
import type { BottleneckInput } from '../infra/run/bottleneck.js';

export const FIXTURE_STARTED_AT = 'fixture (invented test data, not a measurement)';

/** Invented metrics: milliseconds for latency as RunMetrics has them. */
export interface FixtureValues {
  readonly throughputTxnPerSec: number;
  readonly latencyMeanMs: number;
  readonly latencyP99Ms?: number;
  readonly messagesPerSec?: number;
  readonly throughputSeries?: readonly { readonly tSec: number; readonly txnPerSec: number }[];
}

export function fixtureMetrics(v: FixtureValues): RunMetrics {
  return {
    throughputTxnPerSec: v.throughputTxnPerSec,
    latencyMs: { mean: v.latencyMeanMs, p50: v.latencyMeanMs * 0.9, p99: v.latencyP99Ms ?? v.latencyMeanMs * 2, max: v.latencyMeanMs * 3 },
    messagesPerSec: v.messagesPerSec ?? 1000,
    bytesPerSec: (v.messagesPerSec ?? 1000) * 250,
    ...(v.throughputSeries === undefined ? {} : { throughputSeries: v.throughputSeries }),
  };
}

export function fixtureRecord(experiment: string, point: SweepPoint, rep: number, v: FixtureValues | { failed: string }): RunRecord {
  const base = { experiment, pointId: pointId(point), point, rep, startedAt: FIXTURE_STARTED_AT };
  if ('failed' in v) return { ...base, valid: false, reason: v.failed };
  return { ...base, valid: true, durationSec: 6, metrics: fixtureMetrics(v) };
}

/** Invented per-protocol factors shaped like the paper's orderings (PoE > PBFT > HS up to 16, ZYZ slow under failures). */
const SHAPE: Readonly<Record<ProtocolName, { tput: number; latMs: number; msgs: number }>> = {
  poe: { tput: 1.3, latMs: 300, msgs: 2 },
  pbft: { tput: 1.0, latMs: 400, msgs: 3 },
  zyzzyva: { tput: 0.2, latMs: 13_000, msgs: 1.5 },
  hotstuff: { tput: 0.6, latMs: 700, msgs: 1 },
};

/**
 * Invented records for a whole figure: every point of its sweep, `reps` repetitions with a
 * small deterministic spread (±2% by repetition). Not a model of any protocol.
 */
export function fixtureFigure(figure: FigureId, reps = 3, experiment = FIGURES[figure].experiment): RunRecord[] {
  const out: RunRecord[] = [];
  const def = FIGURES[figure];
  for (const point of def.points()) {
    const s = SHAPE[point.protocol];
    const scale = def.x === 'replicas' ? 40_000 / Math.sqrt(point.replicas) : 10_000 * Math.min(point.batch, 100) ** 0.5;
    for (let rep = 0; rep < reps; rep++) {
      const jitter = 1 + 0.02 * (rep - (reps - 1) / 2);
      const series =
        point.primaryStopsAfter === undefined ? undefined : [0, 1, 2, 3, 4, 5].map((tSec) => ({ tSec, txnPerSec: tSec === 2 ? 0 : s.tput * scale * jitter }));
      out.push(
        fixtureRecord(experiment, point, rep, {
          throughputTxnPerSec: s.tput * scale * jitter,
          latencyMeanMs: (s.latMs * jitter * point.replicas) / 4,
          messagesPerSec: s.msgs * point.replicas * 1000,
          ...(series === undefined ? {} : { throughputSeries: series }),
        }),
      );
    }
  }
  return out;
}

/**
 * One open-loop point of a system that carries `capacity` txn/s: 10 ms of latency below it,
 * growing with the backlog above it (the curve tests' stand-in for executeRun).
 */
export function openLoopSystem(capacity: number): (spec: RunSpec) => Promise<RunResult> {
  return async (spec) => {
    const offered = spec.openLoopBatchesPerSec! * spec.batch;
    const mean = offered <= capacity ? 10 : 10 + (offered / capacity - 1) * 200;
    return {
      valid: true,
      violations: [],
      implausible: [],
      failed: false,
      interrupted: false,
      throughputTxnPerSec: Math.min(offered, capacity),
      latencyMs: { mean, p50: mean, p99: mean * 1.5, max: mean * 2 },
      messagesPerSec: 0,
      bytesPerSec: 0,
      spec,
      startedAt: new Date(0).toISOString(),
      durationSec: 1,
      pids: [],
    };
  };
}

/**
 * A run's bottleneck inputs with idle CPU, a closed loop and nothing waiting (no link delay or
 * rate, no client timeouts): the case whose verdict a load probe decides (infra/run/bottleneck.ts
 * rule 4). One replica and one client process, at the CPU figures given.
 */
export function closedLoopInput(v: {
  machineCpuPercent: number;
  replicaCpuPercent: number;
  clientCpuPercent: number;
  throughputTxnPerSec: number;
  meanLatencyMs: number;
}): BottleneckInput {
  return {
    machineCpuPercent: v.machineCpuPercent,
    cores: 2,
    processes: [
      { name: 'replica 0', cpuPercent: v.replicaCpuPercent, role: 'replica' },
      { name: 'client 0', cpuPercent: v.clientCpuPercent, role: 'client' },
    ],
    linkDelayMs: 0,
    linkRateBitsPerSec: 0,
    busiestSenderBitsPerSecPerLink: 0,
    throughputTxnPerSec: v.throughputTxnPerSec,
    meanLatencyMs: v.meanLatencyMs,
    clientTimeouts: 0,
    acceptedBatches: 1000,
  };
}
