/**
 * `poe-bench figure --backend sim`: one sweep point in the deterministic simulator
 * (infra/sim/simulator.ts), reduced to a RunRecord. For previews of large sweeps (32 replicas
 * of four protocols in seconds) and of figure 11b's view change; never a substitute for real
 * runs: the simulated network delays messages but computing costs no time, so throughput and
 * latency are in VIRTUAL time. Every record says so (`backend: 'sim'`, `virtualTime: true`).
 *
 * The measurement mirrors the real harness: the profile's warm-up share of the virtual run is
 * left out, throughput counts the transactions accepted in the rest, latency is acceptance
 * minus first send per transaction, and the throughput series is bucketed from the window's
 * start (negative times are warm-up).
 *
 * `--backend model` does not come here: its points go through the cost model's one driver
 * (experiments/model-figure.ts, model-point.ts).
 */
import { withFault } from '../replica/byzantine.js';
import type { ProtocolModule } from '../replica/protocol.js';
import { getProtocol } from '../replica/protocols.js';
import type { WireMessage } from '../replica/types.js';
import { Simulation } from '../infra/sim/simulator.js';
import { SIM_DEFAULTS } from '../infra/sim/options.js';
import { FIGURES } from './figures.js';
import { bucketMs, throughputSeries } from './model-point.js';
import type { RunMetrics, RunRecord } from '../infra/run/records.js';
import type { SweepConfig, SweepRun } from './sweep.js';

/** Everything a simulated point needs; plain data, so it can cross to a worker thread. */
export interface SimPointInput {
  readonly run: SweepRun;
  readonly config: Pick<SweepConfig, 'warmupSec' | 'measuredSec' | 'seed' | 'clients' | 'simBatches'>;
  /** The RunSpec's table size and value bytes, so message sizes match the real runs'. */
  readonly records: number;
  readonly valueBytes: number;
  readonly windowK: number;
}

/** The module with its view-0 primary wrapped to stop after `batches` executed batches (replica/byzantine.ts stopAfter). */
function withStoppingPrimary(base: ProtocolModule<WireMessage>, batches: number): ProtocolModule<WireMessage> {
  return {
    ...base,
    createReplica: (options, deps) => {
      const core = base.createReplica(options, deps);
      return options.id === 0 ? withFault(core, { kind: 'stopAfter', batches }, base, options.n) : core;
    },
  };
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

/** Simulates one point; synchronous and CPU-bound (the point pool runs it off the main thread: experiments/point-pool.ts). */
export function simulatePoint(input: SimPointInput): RunRecord & Record<string, unknown> {
  const { run, config } = input;
  const p = run.point;
  const startedAt = new Date().toISOString();
  const t0 = Date.now();
  const stopAfter = p.primaryStopsAfter;
  const batches = config.simBatches + (stopAfter ?? 0);
  const seed = config.seed + run.rep;
  const base = getProtocol(p.protocol);
  const sim = new Simulation({
    protocol: p.protocol,
    n: p.replicas,
    seed,
    batches,
    crashed: p.crashed,
    clients: config.clients,
    batchSize: p.batch,
    records: input.records,
    valueBytes: input.valueBytes,
    checkpointIntervalK: FIGURES[run.figure].checkpointInterval,
    windowK: input.windowK,
    ...(stopAfter === undefined
      ? {}
      : {
          module: withStoppingPrimary(base, stopAfter),
          // Marks replica 0 faulty for the safety checks (its ledger stops short); the crash
          // event itself lies past the time limit and never fires: the wrapper does the stopping.
          crashes: [{ replica: 0, atMs: SIM_DEFAULTS.maxTimeMs + 1 }],
        }),
  });
  const result = sim.run();
  const accepted = sim.acceptedList();
  const endMs = accepted.reduce((m, a) => Math.max(m, a.acceptedMs), 0);
  const warmupMs = (endMs * config.warmupSec) / (config.warmupSec + config.measuredSec);
  const windowMs = endMs - warmupMs;
  const inWindow = accepted.filter((a) => a.acceptedMs > warmupMs);
  const txns = inWindow.reduce((s, a) => s + a.txns, 0);
  const latencies = inWindow.map((a) => a.acceptedMs - a.firstSentMs).sort((a, b) => a - b);
  // Every transaction of a batch has its batch's latency: weight by transactions.
  const latencyMean = txns === 0 ? 0 : inWindow.reduce((s, a) => s + (a.acceptedMs - a.firstSentMs) * a.txns, 0) / txns;
  const widthMs = bucketMs(endMs);
  const series = throughputSeries(accepted, warmupMs, endMs, widthMs);
  const virtualSec = result.virtualTimeMs / 1000;
  const metrics: RunMetrics | undefined =
    txns === 0 || windowMs <= 0
      ? undefined
      : {
          throughputTxnPerSec: round((txns * 1000) / windowMs, 1),
          latencyMs: {
            mean: round(latencyMean),
            p50: round(percentile(latencies, 50)),
            p99: round(percentile(latencies, 99)),
            max: round(latencies[latencies.length - 1] ?? 0),
          },
          messagesPerSec: virtualSec > 0 ? round(result.replicaMessages / virtualSec, 1) : 0,
          bytesPerSec: virtualSec > 0 ? round(result.bytesSent / virtualSec, 1) : 0,
          viewChanges: result.viewChanges,
          rollbacks: result.rollbacks,
          clientTimeouts: result.clientTimeouts,
          throughputSeries: series,
        };
  const problems = [...result.violations];
  if (metrics === undefined) problems.push('no transaction was accepted inside the (virtual) measurement window');
  const valid = result.valid && metrics !== undefined;
  return {
    experiment: run.experiment,
    pointId: run.pointId,
    point: p,
    rep: run.rep,
    valid,
    ...(valid ? {} : { reason: `simulation: ${problems.slice(0, 3).join('; ')}` }),
    startedAt,
    durationSec: round((Date.now() - t0) / 1000),
    ...(metrics === undefined ? {} : { metrics }),
    backend: 'sim',
    virtualTime: true,
    sim: {
      seed,
      batches,
      acceptedBatches: result.acceptedBatches,
      virtualTimeMs: round(result.virtualTimeMs),
      messagesPerBatch: round(result.messagesPerBatch, 2),
      protocolMessagesPerBatch: round(result.protocolMessagesPerBatch, 2),
      highestView: result.highestView,
      stopReason: result.stopReason,
      seriesBucketMs: widthMs,
      replay: result.replay,
      ...(stopAfter === undefined
        ? {}
        : {
            primaryStopsAfterBatches: stopAfter,
            replayNote: 'the primary-stop fault is applied in code (replica/byzantine.ts stopAfter); the replay line cannot express it',
          }),
    },
  };
}
