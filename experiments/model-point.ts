/**
 * One point in the cost model (issue 12): the simulator running the real cores, with every
 * step charged the CPU of what it did on a testbed (infra/sim/cost-model.ts, testbed.ts), so
 * throughput and latency are PREDICTIONS for that testbed, never measurements. Closed loop as in
 * the real runs: `clients` logical clients over `clientProcs` client machines, one batch
 * outstanding each. The first `warmupShare` of the accepted batches' virtual time is left out.
 */
import { CostModel, type OpCosts } from '../infra/sim/cost-model.js';
import type { ExtraValue } from '../infra/sim/options.js';
import { Simulation } from '../infra/sim/simulator.js';
import { costModelConfig, type Testbed } from '../infra/sim/testbed.js';

export interface ModelPointInput {
  readonly protocol: string;
  readonly replicas: number;
  readonly batch: number;
  /** Logical clients in total. */
  readonly clients: number;
  /** Client processes; a testbed with its own client machine count overrides it. */
  readonly clientProcs: number;
  readonly batches: number;
  readonly records: number;
  readonly valueBytes: number;
  readonly checkpointInterval: number;
  readonly window: number;
  readonly extra?: Readonly<Record<string, ExtraValue>>;
  readonly seed: number;
  readonly testbed: Testbed;
  readonly costs: OpCosts;
  readonly warmupShare?: number;
}

export interface ModelPointResult {
  readonly valid: boolean;
  readonly violations: readonly string[];
  readonly txnPerSec: number;
  readonly latencyMs: { readonly mean: number; readonly p50: number; readonly p99: number; readonly max: number };
  readonly acceptedBatches: number;
  readonly virtualTimeMs: number;
  /** Modelled CPU per node over the run, in calibration-machine core percent (100 = one such core busy). */
  readonly cpuPercentByNode: Record<string, number>;
  /** Modelled CPU ms per accepted batch over every node (replicas and clients), the whole run. */
  readonly cpuMsPerBatch: number;
  readonly replay: string;
  readonly wallMs: number;
}

export function modelPoint(p: ModelPointInput): ModelPointResult {
  const t0 = performance.now();
  const machines = Math.max(1, p.testbed.clientMachines ?? p.clientProcs);
  const perMachine = Math.max(1, Math.ceil(p.clients / machines));
  const model = new CostModel(costModelConfig(p.testbed, p.costs));
  const sim = new Simulation(
    {
      protocol: p.protocol,
      n: p.replicas,
      seed: p.seed,
      batches: p.batches,
      clientMachines: machines,
      clients: perMachine,
      batchSize: p.batch,
      records: p.records,
      valueBytes: p.valueBytes,
      checkpointIntervalK: p.checkpointInterval,
      windowK: p.window,
      delay: p.testbed.delay,
      extra: p.extra ?? {},
      // Timeouts as in the real runs (infra/run/spec.ts defaults): the model's latencies are real-time scale.
      requestTimeoutMs: 2000,
      viewChangeTimeoutMs: 2000,
    },
    model,
  );
  const result = sim.run();
  const accepted = [...sim.acceptedList()].sort((a, b) => a.acceptedMs - b.acceptedMs);
  const endMs = accepted.at(-1)?.acceptedMs ?? 0;
  const warmupMs = endMs * (p.warmupShare ?? 0.2);
  const inWindow = accepted.filter((a) => a.acceptedMs > warmupMs);
  const txns = inWindow.reduce((s, a) => s + a.txns, 0);
  const lat = inWindow.map((a) => a.acceptedMs - a.firstSentMs).sort((a, b) => a - b);
  const pct = (q: number): number => (lat.length === 0 ? 0 : lat[Math.min(lat.length - 1, Math.max(0, Math.ceil(q * lat.length) - 1))]!);
  const mean = txns === 0 ? 0 : inWindow.reduce((s, a) => s + (a.acceptedMs - a.firstSentMs) * a.txns, 0) / txns;
  const cpu: Record<string, number> = {};
  const vt = Math.max(result.virtualTimeMs, 1e-9);
  for (const [peer, ms] of model.cpuMsByNode()) cpu[peer >= 1 << 16 ? `client ${peer - (1 << 16)}` : `replica ${peer}`] = Math.round((1000 * ms) / vt) / 10;
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  return {
    valid: result.valid && txns > 0,
    violations: result.violations,
    txnPerSec: endMs > warmupMs ? Math.round((txns * 1000) / (endMs - warmupMs)) : 0,
    latencyMs: { mean: r3(mean), p50: r3(pct(0.5)), p99: r3(pct(0.99)), max: r3(lat.at(-1) ?? 0) },
    acceptedBatches: result.acceptedBatches,
    virtualTimeMs: r3(result.virtualTimeMs),
    cpuPercentByNode: cpu,
    cpuMsPerBatch: r3([...model.cpuMsByNode().values()].reduce((s, x) => s + x, 0) / Math.max(1, result.acceptedBatches)),
    replay: result.replay,
    wallMs: Math.round(performance.now() - t0),
  };
}
