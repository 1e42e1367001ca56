/**
 * Every figure point at the protocol's saturation, or shown to be there (DESIGN.md "Metrics":
 * saturation; issue 11 item 1). The paper measured each protocol under 200K closed-loop clients,
 * i.e. at its peak; here a point's load (transactions outstanding) starts at the sweep's load
 * and is raised as long as a probe at PROBE_FACTOR times the load gains throughput:
 *
 *   run the point at load L (the full profile length);
 *   probe at 2L (same warm-up, half the measured window: probes are cheap), also when the run
 *   filled the machine's CPU (see below);
 *   the probe gained less than GAIN_PERCENT, or its mean latency passed LATENCY_BOUND_FACTOR
 *   times the run's -> L is the saturation point: keep the run, record the probe;
 *   it gained more -> L := 2L and again, at most `maxDoublings` times (the profile's); a point
 *   that still gained at the cap is recorded as not shown saturated.
 *
 * A run whose own processes filled the CPU is probed like any other (issue 10). Before, such a
 * point was taken as saturated without a probe ('cpu-full': "more load cannot get more CPU"),
 * but more outstanding work lowers the CPU each batch costs: every event-loop turn of a process
 * then handles and writes more frames, so the syscalls, wake-ups and per-turn work are shared
 * by more batches. Measured on this machine (2 cores shared with other programs, load average
 * 13-26; `poe-bench run --replicas 16 --load-txns L --warmup 6 --duration 8`, order 2400, 4800,
 * 4800, 2400): PBFT at n = 16, which figure 13 judged CPU-full at 2,400 txns, used 8.2 and 7.7 ms
 * of CPU per accepted batch (all processes) at 2,400 and 5.6 and 5.8 ms at 4,800, its frames per
 * socket write rising from 24 to 42-44; HotStuff at n = 16 went from 19.6 to 16.6 ms per batch
 * from four to eight requests per leader (experiments/sweep.ts). The CPU-full observation is kept
 * in the note.
 *
 * The probe also decides what the run's bottleneck verdict may say (`withLoadProbe`): a run with
 * idle CPU and nothing waiting is client-bound, by the load only when more load gained; when it
 * did not, by its client process(es) as a serial stage (infra/run/bottleneck.ts rule 4).
 *
 * A load the user gave (--clients, --load-txns) wins: no probe, recorded as given. Later
 * repetitions of a point reuse the load its first repetition settled on (no probe again).
 * Figure 11b is not probed: its point is defined by a primary failure at a fixed place, and a
 * different load moves the failure (its probe would measure another event).
 */
import type { RunResult } from '../infra/run/execute.js';
import type { RunSpec } from '../infra/run/spec.js';
import { attributeBottleneck, CPU_BOUND_FRACTION, type LoadProbe } from '../infra/run/bottleneck.js';

export const PROBE_FACTOR = 2;
export const GAIN_PERCENT = 5;
export const LATENCY_BOUND_FACTOR = 4;

export interface SaturationProbe {
  readonly loadTxns: number;
  readonly valid: boolean;
  readonly throughputTxnPerSec: number;
  readonly meanLatencyMs: number;
  /** Throughput of the probe over the run it probes, minus one, in %. */
  readonly gainPercent: number;
}

export interface Saturation {
  /** The load (transactions outstanding) of the recorded run. */
  readonly loadTxns: number;
  /**
   * given: the user's load, not probed; probed: shown saturated or not by probes (CPU-bound
   * runs included); reused: the load of repetition 1; unprobed: not applicable (figure 11b, an
   * invalid run). Records written before issue 10's rule may say 'cpu-full' (a CPU-bound run
   * taken as saturated without a probe).
   */
  readonly how: 'given' | 'probed' | 'reused' | 'unprobed';
  /** True when a probe at PROBE_FACTOR times the load gained less than GAIN_PERCENT (or passed the latency bound). */
  readonly saturated: boolean | null;
  /** Every run at a lower load that a probe showed was not saturated, then the probes. */
  readonly probes: readonly SaturationProbe[];
  readonly note: string;
}

export interface SaturationPolicy {
  readonly maxDoublings: number;
  readonly probeMeasuredSec: number;
}

/** Runs one spec (the caller wires executeRun with its signal and progress). */
export type SpecRunner = (spec: RunSpec, what: string) => Promise<RunResult>;

const round = (x: number, digits = 1): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Did the probe show that `base` is saturated? (the rule in the header) */
export function judgeProbe(
  base: Pick<RunResult, 'throughputTxnPerSec' | 'latencyMs'>,
  probe: Pick<RunResult, 'valid' | 'throughputTxnPerSec' | 'latencyMs'>,
): {
  saturated: boolean;
  gainPercent: number;
  why: string;
} {
  const gainPercent = base.throughputTxnPerSec > 0 ? round(100 * (probe.throughputTxnPerSec / base.throughputTxnPerSec - 1)) : 0;
  if (!probe.valid) return { saturated: true, gainPercent, why: 'the probe at double load was not valid (the protocol did not carry it)' };
  if (probe.latencyMs.mean > LATENCY_BOUND_FACTOR * base.latencyMs.mean)
    return { saturated: true, gainPercent, why: `double load raised the mean latency more than ${LATENCY_BOUND_FACTOR}-fold` };
  if (gainPercent < GAIN_PERCENT) return { saturated: true, gainPercent, why: `double load gained ${gainPercent}% (< ${GAIN_PERCENT}%)` };
  return { saturated: false, gainPercent, why: `double load gained ${gainPercent}%` };
}

/**
 * The run's own processes used at least CPU_BOUND_FRACTION of the machine's cores (not other
 * programs): said in the saturation note. It no longer stands in for a probe (header).
 */
export function cpuFull(result: Pick<RunResult, 'bottleneck' | 'metrics'>): string | undefined {
  const b = result.bottleneck;
  if (b === undefined || b.kind !== 'cpu' || result.metrics === undefined) return undefined;
  const own = result.metrics.processes.reduce((s, p) => s + (p.cpuPercent ?? 0), 0);
  if (own < CPU_BOUND_FRACTION * 100 * b.cores) return undefined;
  return `its ${result.metrics.processes.length} processes used ${Math.round(own)}% of the machine's ${100 * b.cores}%`;
}

/**
 * The probe as the bottleneck rule reads it (infra/run/bottleneck.ts rule 4): whether more load
 * raised throughput is this rule's verdict, not a second one; an invalid probe shows nothing.
 */
function loadProbeOf(verdict: ReturnType<typeof judgeProbe>, probeValid: boolean): LoadProbe {
  return {
    factor: PROBE_FACTOR,
    gainPercent: verdict.gainPercent,
    gained: probeValid ? !verdict.saturated : null,
    why: verdict.why,
  };
}

/**
 * The run's verdict made again with what a probe at more load showed (issue 11 item 3: a verdict
 * that says more outstanding transactions would help must not contradict the probe that tried).
 * A result without the verdict's inputs (a model run, a test's fake) is returned as it is.
 */
export function withLoadProbe<R extends Pick<RunResult, 'bottleneck' | 'bottleneckInput'>>(result: R, probe: LoadProbe): R {
  if (result.bottleneckInput === undefined) return result;
  const bottleneckInput = { ...result.bottleneckInput, loadProbe: probe };
  return { ...result, bottleneckInput, bottleneck: attributeBottleneck(bottleneckInput) };
}

/** A spec at another load, keeping everything else. */
export type AtLoad = (loadTxns: number, measuredSec?: number) => RunSpec;

/**
 * The run at the point's saturation, and how it was found; the probes are extra runs. Returns
 * undefined when a run was interrupted.
 */
export async function runSaturated(
  startLoadTxns: number,
  atLoad: AtLoad,
  run: SpecRunner,
  policy: SaturationPolicy,
): Promise<{ result: RunResult; saturation: Saturation } | undefined> {
  let load = startLoadTxns;
  const probes: SaturationProbe[] = [];
  for (let doubling = 0; ; doubling++) {
    const measured = await run(atLoad(load), `load ${load} txns`);
    if (measured.interrupted) return undefined;
    if (!measured.valid)
      return { result: measured, saturation: { loadTxns: load, how: 'unprobed', saturated: null, probes, note: 'the run is not valid: no probe' } };
    // CPU-bound or not, the probe decides (header): more load can still lower CPU per batch.
    const full = cpuFull(measured);
    const cpuNote = full === undefined ? '' : ` (CPU-bound: ${full})`;
    const probeLoad = load * PROBE_FACTOR;
    const probe = await run(atLoad(probeLoad, policy.probeMeasuredSec), `probe at ${probeLoad} txns`);
    if (probe.interrupted) return undefined;
    const verdict = judgeProbe(measured, probe);
    const result = withLoadProbe(measured, loadProbeOf(verdict, probe.valid));
    probes.push({
      loadTxns: probeLoad,
      valid: probe.valid,
      throughputTxnPerSec: probe.throughputTxnPerSec,
      meanLatencyMs: probe.latencyMs.mean,
      gainPercent: verdict.gainPercent,
    });
    if (verdict.saturated)
      return { result, saturation: { loadTxns: load, how: 'probed', saturated: true, probes, note: `saturated at ${load} txns: ${verdict.why}${cpuNote}` } };
    if (doubling >= policy.maxDoublings)
      return {
        result,
        saturation: {
          loadTxns: load,
          how: 'probed',
          saturated: false,
          probes,
          note: `NOT shown saturated at ${load} txns: ${verdict.why}, and the profile allows ${policy.maxDoublings} doubling(s)${cpuNote}`,
        },
      };
    load = probeLoad;
  }
}
