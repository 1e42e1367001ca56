/**
 * What bound a run (DESIGN.md "Metrics": attribution; issue 11 item 3): the machine's CPU, the
 * clients (the offered load, or the client processes as a serial stage: rule 4), latency (waiting: link delay, timers) or the network (an emulated
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
 *     batches); otherwise nothing on the machine was busy and nothing made requests wait, and
 *     the clients bound it, in one of two ways that only a probe at more load tells apart
 *     (`loadProbe`, experiments/saturation.ts):
 *     - the load: a probe at more outstanding transactions gained throughput (the saturation
 *       rule's GAIN_PERCENT or more): more outstanding transactions would raise throughput;
 *     - the client process(es) as a serial stage: the probe gained less. Then neither the load,
 *       nor a core, nor a link or timer held the run, and the cores stood partly idle while the
 *       processes waited on one another. A client process takes a wave of replies in one
 *       event-loop turn and sends the next wave in one flush while the replicas wait (and they
 *       run while it waits), so spreading the same logical clients over more client processes
 *       can raise throughput; the verdict says this is the likely reading, not a fact the run
 *       shows, since it was measured at n = 4 only. Measured on this machine (2 cores shared with other programs),
 *       `run --replicas 4 --load-txns 4800 --warmup 8 --duration 8` with --client-procs 1 and 2
 *       (figure 13 --quick had PoE's probe gain 3.6% and PBFT's 1.1% at n = 4, machine at
 *       156% and 155% of 200%, busiest process at 35%): PoE about 277K against 318K txn/s,
 *       Zyzzyva 227K against 265K (README, "Measured on this machine").
 *     Without a probe (a load given with --load-txns or --clients, `run`), or with an invalid
 *     one, the verdict says that the run does not show which of the two it was, instead of
 *     guessing.
 *     The probe's gain is quoted in every verdict that has a valid probe.
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

/**
 * A run of the same spec at `factor` times the outstanding transactions (the saturation probe,
 * experiments/saturation.ts), as that rule judged it.
 */
export interface LoadProbe {
  readonly factor: number;
  /** The probe's throughput over the run's, minus one, in %. */
  readonly gainPercent: number;
  /** The saturation rule found that more load raised throughput; null when the probe could not show it (not valid). */
  readonly gained: boolean | null;
  /** The saturation rule's words (e.g. "double load gained 3.6% (< 5%)"). */
  readonly why: string;
  /** Whose probe: absent for the run's own, else e.g. "repetition 1's" (a repetition at the same load). */
  readonly whose?: string;
}

export interface BottleneckInput {
  readonly machineCpuPercent: number | null;
  /** CPUs of the machine (os.availableParallelism). */
  readonly cores: number;
  /** Every process of the run with its CPU over the window (100 = one core); role absent: counted as a replica. */
  readonly processes: readonly { readonly name: string; readonly cpuPercent: number | null; readonly role?: 'replica' | 'client' }[];
  /** The probe at more load, when one was run (the verdict is then made again with it). */
  readonly loadProbe?: LoadProbe;
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
  const probe = input.loadProbe;
  const probeWords =
    probe === undefined ? '' : `${probe.whose === undefined ? 'a' : probe.whose} probe at ${probe.factor}x the outstanding transactions: ${probe.why}`;
  const verdict = (kind: BottleneckKind, detail: string): Bottleneck => ({ kind, ...base, detail });
  /** A verdict the probe does not decide, with the probe quoted. */
  const withProbe = (kind: BottleneckKind, detail: string): Bottleneck => verdict(kind, probe === undefined ? detail : `${detail} (${probeWords})`);
  const capacity = 100 * input.cores;
  const processSum = withCpu.reduce((s, p) => s + p.cpuPercent, 0);
  const count = input.processes.length;

  if (input.machineCpuPercent !== null && input.machineCpuPercent >= CPU_BOUND_FRACTION * capacity)
    return withProbe(
      'cpu',
      `CPU-bound: the machine at ${pct(input.machineCpuPercent)} of ${capacity}% (${count} processes of the run on ${input.cores} cores, together ${pct(processSum)})`,
    );
  if (input.pinnedCpus !== undefined && processSum >= CPU_BOUND_FRACTION * 100 * input.pinnedCpus)
    return withProbe('cpu', `CPU-bound: ${count} processes pinned to ${input.pinnedCpus} CPU(s) used ${pct(processSum)} of ${100 * input.pinnedCpus}%`);
  if (busiest && busiest.cpuPercent >= CPU_BOUND_FRACTION * 100)
    return withProbe('cpu', `CPU-bound: ${busiest.name} used ${pct(busiest.cpuPercent)} of its one core (a Node process runs its protocol on one thread)`);
  if (input.linkRateBitsPerSec > 0 && input.busiestSenderBitsPerSecPerLink >= NETWORK_BOUND_FRACTION * input.linkRateBitsPerSec)
    return withProbe(
      'network',
      `network-bound: the busiest replica sent ${(input.busiestSenderBitsPerSecPerLink / 1e6).toFixed(1)} Mbit/s per link of the emulated ${(input.linkRateBitsPerSec / 1e6).toFixed(1)} Mbit/s`,
    );
  const machine = input.machineCpuPercent === null ? `processes ${pct(processSum)}` : `machine ${pct(input.machineCpuPercent)}`;
  const idle = `${machine} of ${capacity}% CPU`;
  if (input.offeredTxnPerSec !== undefined) {
    const ratio = input.offeredTxnPerSec > 0 ? input.throughputTxnPerSec / input.offeredTxnPerSec : 0;
    return ratio >= OPEN_LOOP_KEPT_UP
      ? withProbe(
          'clients',
          `client-bound: the replicas carried the offered ${Math.round(input.offeredTxnPerSec)} txn/s (${pct(100 * ratio)} of it) with ${idle}`,
        )
      : withProbe(
          'latency',
          `latency-bound: ${pct(100 * ratio)} of the offered load carried with ${idle}; requests waited (mean ${input.meanLatencyMs.toFixed(1)} ms)`,
        );
  }
  const roundTripsMs = 4 * input.linkDelayMs;
  if (input.linkDelayMs > 0 && roundTripsMs >= LINK_SHARE_OF_LATENCY * input.meanLatencyMs)
    return withProbe(
      'latency',
      `latency-bound: link delay ${input.linkDelayMs} ms one way against a mean latency of ${input.meanLatencyMs.toFixed(1)} ms, with ${idle}`,
    );
  if (input.acceptedBatches > 0 && input.clientTimeouts >= TIMEOUT_SHARE * input.acceptedBatches)
    return withProbe(
      'latency',
      `latency-bound: ${input.clientTimeouts} client timeouts for ${input.acceptedBatches} accepted batches (mean latency ${input.meanLatencyMs.toFixed(1)} ms), with ${idle}`,
    );
  return idleClosedLoop(input, idle, probeWords, busiest?.cpuPercent ?? null, verdict);
}

/** Rule 4's last case: closed loop, nothing busy, nothing waiting; the probe tells load from a serial client stage (header). */
function idleClosedLoop(
  input: BottleneckInput,
  idle: string,
  probeWords: string,
  busiest: number | null,
  verdict: (kind: BottleneckKind, detail: string) => Bottleneck,
): Bottleneck {
  const probe = input.loadProbe;
  const clients = input.processes.filter((p) => p.role === 'client');
  const clientCpu = clients.map((p) => p.cpuPercent).filter((x): x is number => x !== null);
  const procs = clients.length === 0 ? 'the client process(es)' : clients.length === 1 ? 'the 1 client process' : `the ${clients.length} client processes`;
  const cpus =
    clientCpu.length === 0
      ? ''
      : clientCpu.length === 1
        ? `, ${procs} at ${pct(clientCpu[0]!)}`
        : `, ${procs} at ${pct(Math.min(...clientCpu))} to ${pct(Math.max(...clientCpu))} each`;
  const noCore = busiest === null ? '' : `, no process at a full core (the busiest at ${pct(busiest)})`;
  const spread = '--client-procs (run) or --client-machines (figure) spreads the same logical clients over more client processes';
  if (probe === undefined)
    return verdict(
      'clients',
      `client-bound, not probed: ${idle}${noCore} and no waiting on links or timers; this run does not show whether more outstanding transactions or more client processes would raise throughput (a probe at double load tells them apart; ${spread})`,
    );
  if (probe.gained === true)
    return verdict(
      'clients',
      `client-bound: ${idle} and no waiting on links or timers, and ${probeWords}: more outstanding transactions would raise throughput`,
    );
  if (probe.gained === null)
    return verdict(
      'clients',
      `client-bound, not shown how: ${idle}${noCore} and no waiting on links or timers; ${probeWords}, so this run does not show whether more load or more client processes would raise throughput (${spread})`,
    );
  return verdict(
    'clients',
    `client-bound, not load-bound: ${probeWords}; ${idle}${noCore}${cpus}, and no waiting on links or timers: the processes waited on one another, which points to a serial stage, most likely the client process(es) (a client process takes a wave of replies in one event-loop turn and sends the next in one flush while the replicas wait); a run with more client processes tests this: ${spread}`,
  );
}

/** Busy and total jiffies of the whole machine (the `cpu` line of /proc/stat). */
export interface CpuSample {
  readonly busy: number;
  readonly total: number;
}

/**
 * Parses /proc/stat's `cpu` line (the whole machine), or another CPU's (`cpu0`, ...): user nice
 * system idle iowait irq softirq steal (guest counted in user).
 */
export function parseProcStat(text: string, cpu = 'cpu'): CpuSample | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${cpu} `));
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
