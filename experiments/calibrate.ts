/**
 * `poe-bench calibrate` (issue 12 item 2): measures the per-operation costs on this machine
 * (infra/sim/calibration.ts) and fits the fixed costs the micro-benchmarks cannot see (event
 * loop, socket reads and writes, framing, core bookkeeping, GC) from a few short real runs on
 * the local backend, then writes a calibration file.
 *
 * The fit: for each fit point, the real run gives CPU milliseconds per accepted batch over every
 * process (replicas and clients: cpuPercent x window / batches); the simulator, running the same
 * configuration with a WorkCounter, gives what each batch did (operations and bytes) and how many
 * messages were received and frames sent per batch. The micro-benchmarked operations explain part
 * of the CPU; the rest, per message event (a message received or a frame sent), is one fixed
 * cost, fitted by least squares through the origin over the fit points. The fit points are
 * chosen at replica counts the validation never uses (n = 5 and 7; validation uses 4, 8, 16), so
 * fitting and validating stay disjoint.
 */
import { cpus } from 'node:os';
import { executeRun, type RunOptions } from '../infra/run/execute.js';
import { makeRunSpec, RUN_DEFAULTS } from '../infra/run/spec.js';
import { CALIBRATION_VERSION, type CalibrationFile, type FitPoint, machineInfo, measureOperations } from '../infra/sim/calibration.js';
import type { OpCosts } from '../infra/sim/cost-model.js';
import { Simulation } from '../infra/sim/simulator.js';
import { WorkCounter, workCpuUs } from '../infra/sim/work-counter.js';
import type { ProtocolName } from '../replica/types.js';

export interface FitSpec {
  readonly protocol: ProtocolName;
  readonly replicas: number;
}

/** Disjoint from validation's n = 4, 8, 16 (experiments/validate.ts). */
export const FIT_POINTS: readonly FitSpec[] = [
  { protocol: 'poe', replicas: 5 },
  { protocol: 'pbft', replicas: 7 },
  { protocol: 'zyzzyva', replicas: 5 },
];

export interface CalibrateOptions {
  readonly fitPoints?: readonly FitSpec[];
  readonly warmupS?: number;
  readonly durationS?: number;
  readonly batch?: number;
  readonly clients?: number;
  readonly onProgress?: (line: string) => void;
  readonly signal?: AbortSignal;
  /** Skip the real runs (the fixed costs then stay 0 and say so). */
  readonly skipFit?: boolean;
  /** Reuse the real runs' measurements of an earlier calibration (re-measure operations, recount, refit). */
  readonly reuseFitPoints?: readonly FitPoint[];
}

/** What the simulator counts per accepted batch for a configuration, all nodes together. */
export function countedPerBatch(
  protocol: string,
  replicas: number,
  batch: number,
  clients: number,
  costs: OpCosts,
  extra: Readonly<Record<string, string | number | boolean>> = {},
): { messages: number; ioBytes: number; opCpuUs: number } {
  const counter = new WorkCounter();
  const sim = new Simulation(
    {
      protocol,
      n: replicas,
      seed: 1,
      batches: 400,
      clients,
      batchSize: batch,
      records: RUN_DEFAULTS.records,
      valueBytes: RUN_DEFAULTS.valueBytes,
      checkpointIntervalK: RUN_DEFAULTS.checkpointInterval,
      windowK: RUN_DEFAULTS.window,
      extra,
    },
    counter,
  );
  const r = sim.run();
  const b = Math.max(1, r.acceptedBatches);
  const all = [counter.replicas, counter.clients];
  const messages = all.reduce((s, t) => s + t.messagesIn + t.framesOut, 0) / b;
  const ioBytes = all.reduce((s, t) => s + t.frameBytesOut + t.frameMacVerifyBytes, 0) / b;
  const opCpuUs = all.reduce((s, t) => s + workCpuUs(costs, t), 0) / b;
  return { messages, ioBytes, opCpuUs };
}

/**
 * Non-negative least squares for r_i = a m_i + b y_i (per message event and per I/O byte); if
 * the unconstrained fit makes one negative, it is 0 and the other is fitted alone.
 */
export function fitTwo(r: readonly number[], m: readonly number[], y: readonly number[]): { a: number; b: number } {
  const dot = (u: readonly number[], v: readonly number[]): number => u.reduce((s, x, i) => s + x * v[i]!, 0);
  const mm = dot(m, m);
  const yy = dot(y, y);
  const my = dot(m, y);
  const det = mm * yy - my * my;
  if (det > 1e-12 * mm * yy) {
    const a = (dot(r, m) * yy - dot(r, y) * my) / det;
    const b = (dot(r, y) * mm - dot(r, m) * my) / det;
    if (a >= 0 && b >= 0) return { a, b };
  }
  const aOnly = fitThroughOrigin(r, m);
  const bOnly = fitThroughOrigin(r, y);
  const sse = (a: number, b: number): number => r.reduce((s, x, i) => s + (x - a * m[i]! - b * y[i]!) ** 2, 0);
  return sse(aOnly, 0) <= sse(0, bOnly) ? { a: aOnly, b: 0 } : { a: 0, b: bOnly };
}

/** Least squares through the origin: the x minimising sum (r_i - x m_i)^2. */
export function fitThroughOrigin(residuals: readonly number[], messages: readonly number[]): number {
  let num = 0;
  let den = 0;
  residuals.forEach((r, i) => {
    num += r * messages[i]!;
    den += messages[i]! ** 2;
  });
  return den > 0 ? Math.max(0, num / den) : 0;
}

export async function calibrate(options: CalibrateOptions = {}): Promise<CalibrationFile> {
  const log = options.onProgress ?? (() => {});
  const batch = options.batch ?? RUN_DEFAULTS.batch;
  const clients = options.clients ?? RUN_DEFAULTS.clients;
  log('measuring per-operation costs (Ed25519, HMAC, SHA-256, codecs, store)...');
  const micro = measureOperations(['poe', 'pbft', 'zyzzyva', 'hotstuff'], RUN_DEFAULTS.valueBytes);
  const opOnly: OpCosts = { ...micro.costs, perMessageInUs: 0, perFrameOutUs: 0, perStepUs: 0, ioPerByteUs: 0 };
  const fitPoints: FitPoint[] = [];
  for (const fp of options.reuseFitPoints ?? []) {
    const counted = countedPerBatch(fp.protocol, fp.replicas, fp.batch, fp.clients, opOnly);
    fitPoints.push({ ...fp, messagesPerBatch: counted.messages, ioBytesPerBatch: counted.ioBytes, opCpuMsPerBatch: counted.opCpuUs / 1000 });
  }
  if (!options.skipFit && !options.reuseFitPoints) {
    for (const fp of options.fitPoints ?? FIT_POINTS) {
      log(`fit run: ${fp.protocol} n=${fp.replicas} on the local backend...`);
      const spec = makeRunSpec({
        protocol: fp.protocol,
        replicas: fp.replicas,
        batch,
        clients,
        warmupS: options.warmupS ?? 3,
        durationS: options.durationS ?? 5,
      });
      const runOptions: RunOptions = options.signal ? { signal: options.signal } : {};
      const r = await executeRun(spec, runOptions);
      const m = r.metrics;
      if (!r.valid || !m || m.acceptedBatches === 0) {
        log(`  invalid run, left out of the fit: ${r.reason ?? 'no metrics'}`);
        continue;
      }
      const cpuMs = m.processes.reduce((s, p) => s + ((p.cpuPercent ?? 0) / 100) * m.windowSec * 1000, 0);
      const counted = countedPerBatch(fp.protocol, fp.replicas, batch, Math.ceil(clients / spec.clientProcs), opOnly);
      fitPoints.push({
        protocol: fp.protocol,
        replicas: fp.replicas,
        batch,
        clients,
        cpuMsPerBatch: cpuMs / m.acceptedBatches,
        txnPerSec: r.throughputTxnPerSec,
        messagesPerBatch: counted.messages,
        ioBytesPerBatch: counted.ioBytes,
        opCpuMsPerBatch: counted.opCpuUs / 1000,
        cpuCores: cpuMs / 1000 / m.windowSec,
      });
      log(
        `  ${r.throughputTxnPerSec.toFixed(0)} txn/s, ${(cpuMs / m.acceptedBatches).toFixed(3)} CPU ms/batch measured, ${(counted.opCpuUs / 1000).toFixed(3)} explained by counted operations, ${counted.messages.toFixed(1)} message events/batch`,
      );
    }
  }
  const fit = fitTwo(
    fitPoints.map((p) => (p.cpuMsPerBatch - p.opCpuMsPerBatch) * 1000),
    fitPoints.map((p) => p.messagesPerBatch),
    fitPoints.map((p) => p.ioBytesPerBatch),
  );
  const perMessageUs = fit.a;
  const fitted =
    fitPoints.length === 0
      ? 'NOT FITTED (no valid fit run): 0, so the model undercharges'
      : `fitted by non-negative least squares: (measured CPU per batch - counted operations' CPU) = a x message events (received or sent) + b x frame bytes (sent + received), over the real runs in fitPoints (${fitPoints.map((p) => `${p.protocol} n=${p.replicas}`).join(', ')}), local backend, ${cpus().length} cores`;
  return {
    version: CALIBRATION_VERSION,
    machine: machineInfo(),
    date: new Date().toISOString(),
    costs: { ...micro.costs, perMessageInUs: perMessageUs, perFrameOutUs: perMessageUs, perStepUs: 0, ioPerByteUs: fit.b },
    sources: {
      ...micro.sources,
      perMessageInUs: { source: `${fitted}: a` },
      perFrameOutUs: { source: `${fitted}; the same fixed cost per frame sent as per message received` },
      perStepUs: { source: 'folded into the per-message costs (not fitted separately)' },
      ioPerByteUs: { source: `${fitted}: b` },
    },
    fitPoints,
    ...(fitPoints.length === 0 ? {} : { hostCoresAvailable: median(fitPoints.map((p) => p.cpuCores)) }),
  };
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
