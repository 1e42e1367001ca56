/**
 * The record a sweep appends to runs.jsonl, one line per run (DESIGN.md "Results"), and what
 * charts, reports and claim checks read. The sweep runner maps a `poe-bench run --json` result
 * (or a simulator result) onto it.
 */
import type { ProtocolName } from '../../replica/types.js';

export type FigureId = '10' | '11a' | '11b' | '12' | '13';

/** One point of a sweep: what varies between runs of a figure. */
export interface SweepPoint {
  readonly protocol: ProtocolName;
  readonly replicas: number;
  /** Backups that never take part (figures 10, 11a, 12). */
  readonly crashed: number;
  readonly batch: number;
  /** Figure 11b: the primary stops after this many requests. */
  readonly primaryStopsAfter?: number;
}

export interface RunMetrics {
  readonly throughputTxnPerSec: number;
  readonly latencyMs: { readonly mean: number; readonly p50: number; readonly p99: number; readonly max: number };
  /** Messages and bytes sent by all replicas inside the window, per second (figure 10c). */
  readonly messagesPerSec: number;
  readonly bytesPerSec: number;
  readonly viewChanges?: number;
  readonly rollbacks?: number;
  readonly clientTimeouts?: number;
  /** Figure 11b: throughput in 1-second buckets, time from the start of the measurement window. */
  readonly throughputSeries?: readonly { readonly tSec: number; readonly txnPerSec: number }[];
  /** Figure 11b: how long the view change took, from the first replica that suspected to the last that entered. */
  readonly viewChangeMs?: number;
}

export interface RunRecord {
  readonly experiment: string;
  /** Stable identity of the point, e.g. "poe/n=4/crashed=1/batch=100": resuming skips points already recorded. */
  readonly pointId: string;
  readonly point: SweepPoint;
  readonly rep: number;
  readonly valid: boolean;
  /** Why a run is invalid or failed; absent for valid runs. */
  readonly reason?: string;
  readonly startedAt: string;
  readonly durationSec?: number;
  readonly metrics?: RunMetrics;
}

export function pointId(p: SweepPoint): string {
  const stop = p.primaryStopsAfter === undefined ? '' : `/stop=${p.primaryStopsAfter}`;
  return `${p.protocol}/n=${p.replicas}/crashed=${p.crashed}/batch=${p.batch}${stop}`;
}
