/**
 * What bound a run (DESIGN.md "Metrics": attribution; issue 11 item 3): the machine's CPU, the
 * clients (the offered load), latency (waiting: link delay, timers) or the network (an emulated
 * link's rate). One pure rule, `attributeBottleneck`, with the thresholds named below; the
 * /proc/stat sampling that feeds it is beside it (the only I/O here, done by the harness).
 *
 * The rule, in order (the first that holds wins):
 *  1. cpu: the machine was busy (at least CPU_BOUND_FRACTION of its cores, 100% per core, from
 *     /proc/stat: other programs on the machine count, since they took the CPU from the run),
 *     or one process used at least CPU_BOUND_FRACTION of a core (a single-threaded Node process
 *     cannot use more), or the processes pinned to a set of CPUs used that fraction of the set;
 *  2. network: an emulated link has a rate, and the busiest replica sent, per link, at least
 *     NETWORK_BOUND_FRACTION of it;
 *  3. open loop: the clients offered a fixed rate; if the replicas kept up with it (achieved at
 *     least OPEN_LOOP_KEPT_UP of offered), the clients bound the run; if they did not, with idle
 *     CPU, the requests waited (latency);
 *  4. closed loop with idle CPU: throughput = outstanding / latency. The bound is latency when the
 *     latency is mostly waiting (an emulated link's round trips make at least
 *     LINK_SHARE_OF_LATENCY of it, or client timeouts fired on at least TIMEOUT_SHARE of the
 *     batches); otherwise nothing on the machine was busy and nothing made requests wait, so
 *     only more outstanding transactions would raise throughput: the clients bound it.
 */
import { readFileSync } from 'node:fs';

export type BottleneckKind = 'cpu' | 'clients' | 'latency' | 'network';

export interface Bottleneck {
  readonly kind: BottleneckKind;
  /** The machine's CPU over the measured window, from /proc/stat, 100 per core; null when unknown. */
  readonly machineCpuPercent: number | null;
  readonly cores: number;
  readonly busiestProcess: string;
  readonly busiestCpuPercent: number | null;
  /** Why, in one sentence (the report quotes it). */
  readonly detail: string;
}

/** A machine, process or CPU set at or above this fraction of what it has is CPU-bound. */
export const CPU_BOUND_FRACTION = 0.9;
/** A link carrying this fraction of its emulated rate is the bound. */
export const NETWORK_BOUND_FRACTION = 0.7;
/** Open loop: achieved / offered at or above this means the replicas kept up with the clients. */
export const OPEN_LOOP_KEPT_UP = 0.9;
/** Closed loop: emulated round trips that make this share of the mean latency make it latency-bound. */
export const LINK_SHARE_OF_LATENCY = 0.25;
/** Closed loop: client timeouts on this share of the accepted batches make it latency-bound. */
export const TIMEOUT_SHARE = 0.01;

export interface BottleneckInput {
  readonly machineCpuPercent: number | null;
  /** CPUs of the machine (os.availableParallelism). */
  readonly cores: number;
  /** Every process of the run with its CPU over the window (100 = one core). */
  readonly processes: readonly { readonly name: string; readonly cpuPercent: number | null }[];
  /** Distinct CPUs the processes were pinned to (--pin); absent when not pinned. */
  readonly pinnedCpus?: number;
  /** The largest one-way delay of an emulated link, ms (0 when none). */
  readonly linkDelayMs: number;
  /** The smallest emulated link rate, bits per second (0 when unlimited). */
  readonly linkRateBitsPerSec: number;
  /** The busiest replica's bits sent per second, over the links it sends on. */
  readonly busiestSenderBitsPerSecPerLink: number;
  /** Open loop: the offered load in transactions per second; absent in closed loop. */
  readonly offeredTxnPerSec?: number;
  readonly throughputTxnPerSec: number;
  readonly meanLatencyMs: number;
  readonly clientTimeouts: number;
  readonly acceptedBatches: number;
}

const pct = (x: number): string => `${Math.round(x)}%`;

/** The verdict (the rule is in the header). */
export function attributeBottleneck(input: BottleneckInput): Bottleneck {
  const withCpu = input.processes.filter((p): p is { name: string; cpuPercent: number } => p.cpuPercent !== null);
  const busiest = withCpu.reduce<{ name: string; cpuPercent: number } | undefined>((b, p) => (b && b.cpuPercent >= p.cpuPercent ? b : p), undefined);
  const base = {
    machineCpuPercent: input.machineCpuPercent,
    cores: input.cores,
    busiestProcess: busiest?.name ?? 'none',
    busiestCpuPercent: busiest?.cpuPercent ?? null,
  };
  const verdict = (kind: BottleneckKind, detail: string): Bottleneck => ({ kind, ...base, detail });
  const capacity = 100 * input.cores;
  const processSum = withCpu.reduce((s, p) => s + p.cpuPercent, 0);
  const count = input.processes.length;

  if (input.machineCpuPercent !== null && input.machineCpuPercent >= CPU_BOUND_FRACTION * capacity)
    return verdict(
      'cpu',
      `CPU-bound: the machine at ${pct(input.machineCpuPercent)} of ${capacity}% (${count} processes of the run on ${input.cores} cores, together ${pct(processSum)})`,
    );
  if (input.pinnedCpus !== undefined && processSum >= CPU_BOUND_FRACTION * 100 * input.pinnedCpus)
    return verdict('cpu', `CPU-bound: ${count} processes pinned to ${input.pinnedCpus} CPU(s) used ${pct(processSum)} of ${100 * input.pinnedCpus}%`);
  if (busiest && busiest.cpuPercent >= CPU_BOUND_FRACTION * 100)
    return verdict('cpu', `CPU-bound: ${busiest.name} used ${pct(busiest.cpuPercent)} of its one core (a Node process runs its protocol on one thread)`);
  if (input.linkRateBitsPerSec > 0 && input.busiestSenderBitsPerSecPerLink >= NETWORK_BOUND_FRACTION * input.linkRateBitsPerSec)
    return verdict(
      'network',
      `network-bound: the busiest replica sent ${(input.busiestSenderBitsPerSecPerLink / 1e6).toFixed(1)} Mbit/s per link of the emulated ${(input.linkRateBitsPerSec / 1e6).toFixed(1)} Mbit/s`,
    );
  const machine = input.machineCpuPercent === null ? `processes ${pct(processSum)}` : `machine ${pct(input.machineCpuPercent)}`;
  const idle = `${machine} of ${capacity}% CPU`;
  if (input.offeredTxnPerSec !== undefined) {
    const ratio = input.offeredTxnPerSec > 0 ? input.throughputTxnPerSec / input.offeredTxnPerSec : 0;
    return ratio >= OPEN_LOOP_KEPT_UP
      ? verdict(
          'clients',
          `client-bound: the replicas carried the offered ${Math.round(input.offeredTxnPerSec)} txn/s (${pct(100 * ratio)} of it) with ${idle}`,
        )
      : verdict(
          'latency',
          `latency-bound: ${pct(100 * ratio)} of the offered load carried with ${idle}; requests waited (mean ${input.meanLatencyMs.toFixed(1)} ms)`,
        );
  }
  const roundTripsMs = 4 * input.linkDelayMs;
  if (input.linkDelayMs > 0 && roundTripsMs >= LINK_SHARE_OF_LATENCY * input.meanLatencyMs)
    return verdict(
      'latency',
      `latency-bound: link delay ${input.linkDelayMs} ms one way against a mean latency of ${input.meanLatencyMs.toFixed(1)} ms, with ${idle}`,
    );
  if (input.acceptedBatches > 0 && input.clientTimeouts >= TIMEOUT_SHARE * input.acceptedBatches)
    return verdict(
      'latency',
      `latency-bound: ${input.clientTimeouts} client timeouts for ${input.acceptedBatches} accepted batches (mean latency ${input.meanLatencyMs.toFixed(1)} ms), with ${idle}`,
    );
  return verdict('clients', `client-bound: ${idle} and no waiting on links or timers; more outstanding transactions would raise throughput`);
}

/** Busy and total jiffies of the whole machine (the `cpu` line of /proc/stat). */
export interface CpuSample {
  readonly busy: number;
  readonly total: number;
}

/** Parses /proc/stat's first line: user nice system idle iowait irq softirq steal (guest counted in user). */
export function parseProcStat(text: string): CpuSample | undefined {
  const line = text.split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return undefined;
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return undefined;
  const idle = (f[3] ?? 0) + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

/** The machine's CPU between two samples, 100 per core; null when unknown. */
export function machineCpuPercent(a: CpuSample | undefined, b: CpuSample | undefined, cores: number): number | null {
  if (!a || !b || b.total <= a.total) return null;
  return Math.round(((100 * cores * (b.busy - a.busy)) / (b.total - a.total)) * 10) / 10;
}

/** Reads /proc/stat; undefined where there is none (not Linux). */
export function sampleMachineCpu(): CpuSample | undefined {
  try {
    return parseProcStat(readFileSync('/proc/stat', 'utf8'));
  } catch {
    return undefined;
  }
}
