/**
 * One point in the cost model (issue 12): the simulator running the real cores, with every
 * step charged the CPU of what it did on a testbed (infra/sim/cost-model.ts, testbed.ts), so
 * throughput and latency are PREDICTIONS for that testbed, never measurements. Closed loop as in
 * the real runs: `clients` logical clients over `clientProcs` client machines, one batch
 * outstanding each. The first `warmupShare` of the accepted batches' virtual time is left out,
 * and so is the drain after the first client's last acceptance (see `windowEndedBy`).
 */
import type { KeyGeneratorKind } from '../client/generators.js';
import type { ReplicaFault } from '../replica/byzantine.js';
import { CostModel, type OpCosts } from '../infra/sim/cost-model.js';
import type { ExtraValue } from '../infra/sim/options.js';
import { Simulation } from '../infra/sim/simulator.js';
import { costModelConfig, type Testbed } from '../infra/sim/testbed.js';
import type { CalibrationFile } from '../infra/sim/calibration.js';
import { pointId, type RunMetrics } from '../infra/run/records.js';
import { specPoint, type Environment, type RunLine } from '../infra/run/results.js';
import type { RunSpec } from '../infra/run/spec.js';
import { formatReplicaFault } from '../replica/byzantine.js';
import { clientOrigin, isClientPeer, quorums } from '../replica/types.js';

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
  /** Silent backups from the start (the highest ids), as a run's --crashed. */
  readonly crashed?: number;
  /** Replicas wrapped in a crash or Byzantine behaviour, as a run's --faults. */
  readonly faults?: readonly ReplicaFault[];
  readonly generator?: KeyGeneratorKind;
  /** Default 2000 ms each, as a real run's (infra/run/spec.ts defaults). */
  readonly clientTimeoutMs?: number;
  readonly viewChangeTimeoutMs?: number;
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
  /** Messages and bytes the replicas sent, per second of the whole modelled run (as figure --backend model records them). */
  readonly messagesPerSec: number;
  readonly bytesPerSec: number;
  readonly viewChanges: number;
  readonly rollbacks: number;
  readonly clientTimeouts: number;
  readonly acceptedByPath: Record<string, number>;
  /** Client machines modelled and logical clients on each: the clients in all are their product (rounded up from `clients`). */
  readonly clientMachines: number;
  readonly clientsPerMachine: number;
  /**
   * The measured part of the modelled run: after the warm-up share, up to the moment the first
   * client had its last batch accepted (`first-client-done`), or, in a run too short for that or
   * with crashed or faulty replicas, to the last acceptance.
   */
  readonly windowMs: number;
  readonly windowEndedBy: 'first-client-done' | 'last-acceptance';
  readonly warmupShare: number;
  /** Accepted transactions per second in buckets of `seriesBucketMs` from the window's start (negative times are warm-up): figure 11b's throughput over time. */
  readonly throughputSeries: readonly { readonly tSec: number; readonly txnPerSec: number }[];
  readonly seriesBucketMs: number;
  /** Messages per accepted batch, all and the protocol's own (without client traffic), and the highest view reached. */
  readonly messagesPerBatch: number;
  readonly protocolMessagesPerBatch: number;
  readonly highestView: number;
  readonly stopReason: string;
  /** The model's socket work over the whole run, replicas and clients apart (CostModel.ioByNode), and its turns. */
  readonly io: ModelIo;
}

export interface ModelIoTotals {
  framesOut: number;
  writes: number;
  messagesIn: number;
  reads: number;
}

export interface ModelIo {
  readonly replica: ModelIoTotals;
  readonly client: ModelIoTotals;
  readonly turns: number;
}

function ioTotals(model: CostModel): ModelIo {
  const replica = { framesOut: 0, writes: 0, messagesIn: 0, reads: 0 };
  const client = { framesOut: 0, writes: 0, messagesIn: 0, reads: 0 };
  let turns = 0;
  for (const [peer, io] of model.ioByNode()) {
    const x = isClientPeer(peer) ? client : replica;
    x.framesOut += io.framesOut;
    x.writes += io.writes;
    x.messagesIn += io.messagesIn;
    x.reads += io.reads;
    turns += io.turns;
  }
  return { replica, client, turns };
}

/** When the first client had its last batch accepted: the start of the run's drain. */
export function drainStartMs(accepted: readonly { readonly clientId: number; readonly acceptedMs: number }[]): number {
  const last = new Map<number, number>();
  for (const a of accepted) last.set(a.clientId, Math.max(last.get(a.clientId) ?? 0, a.acceptedMs));
  let first = Number.POSITIVE_INFINITY;
  for (const t of last.values()) first = Math.min(first, t);
  return first;
}

/** A bucket width of 1, 2 or 5 times a power of ten ms, about a fortieth of the run (also --backend sim's: experiments/sweep-sim.ts). */
export function bucketMs(totalMs: number): number {
  const raw = Math.max(totalMs / 40, 0.001);
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

/** Accepted transactions per second in buckets of `widthMs`, from the first bucket of the warm-up to the last acceptance; times from the window's start. */
export function throughputSeries(
  accepted: readonly { readonly acceptedMs: number; readonly txns: number }[],
  warmupMs: number,
  endMs: number,
  widthMs: number,
): { tSec: number; txnPerSec: number }[] {
  const buckets = new Map<number, number>();
  for (const a of accepted) {
    const b = Math.floor((a.acceptedMs - warmupMs) / widthMs);
    buckets.set(b, (buckets.get(b) ?? 0) + a.txns);
  }
  const r = (x: number, digits: number): number => Math.round(x * 10 ** digits) / 10 ** digits;
  const series: { tSec: number; txnPerSec: number }[] = [];
  for (let b = Math.floor(-warmupMs / widthMs); b <= Math.floor((endMs - warmupMs) / widthMs); b++)
    series.push({ tSec: r((b * widthMs) / 1000, 6), txnPerSec: r(((buckets.get(b) ?? 0) * 1000) / widthMs, 1) });
  return series;
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
      requestTimeoutMs: p.clientTimeoutMs ?? 2000,
      viewChangeTimeoutMs: p.viewChangeTimeoutMs ?? 2000,
      ...(p.crashed === undefined ? {} : { crashed: p.crashed }),
      ...(p.faults === undefined ? {} : { faults: p.faults }),
      ...(p.generator === undefined ? {} : { generator: p.generator }),
    },
    model,
  );
  const result = sim.run();
  const accepted = [...sim.acceptedList()].sort((a, b) => a.acceptedMs - b.acceptedMs);
  const lastMs = accepted.at(-1)?.acceptedMs ?? 0;
  const warmupShare = p.warmupShare ?? 0.2;
  const warmupMs = lastMs * warmupShare;
  const drain = drainStartMs(accepted);
  // The window ends when the first client has had its last batch accepted: from then on fewer
  // clients issue and the offered load falls, which a real run's window never sees (its clients
  // run past the window's end). A run too short for that (fewer than two batches per client
  // between the warm-up and the drain, or a starved client whose drain starts within the
  // warm-up) keeps the whole run after the warm-up as the window, and says so.
  const clientCount = new Set(accepted.map((a) => a.clientId)).size;
  const beforeDrain = accepted.filter((a) => a.acceptedMs > warmupMs && a.acceptedMs <= drain).length;
  // A run with crashed or faulty replicas keeps the whole run too: a client held up by the fault
  // (a view change, Zyzzyva's slow path) can see its last acceptance before the recovery, and a
  // window ending there would hide the recovery it exists to show (figure 11b).
  const faulty = (p.crashed ?? 0) > 0 || (p.faults?.length ?? 0) > 0;
  const endedByDrain = !faulty && drain > warmupMs && drain < lastMs && beforeDrain >= 2 * clientCount;
  const endMs = endedByDrain ? drain : lastMs;
  const inWindow = accepted.filter((a) => a.acceptedMs > warmupMs && a.acceptedMs <= endMs);
  const txns = inWindow.reduce((s, a) => s + a.txns, 0);
  const lat = inWindow.map((a) => a.acceptedMs - a.firstSentMs).sort((a, b) => a - b);
  const pct = (q: number): number => (lat.length === 0 ? 0 : lat[Math.min(lat.length - 1, Math.max(0, Math.ceil(q * lat.length) - 1))]!);
  const mean = txns === 0 ? 0 : inWindow.reduce((s, a) => s + (a.acceptedMs - a.firstSentMs) * a.txns, 0) / txns;
  const cpu: Record<string, number> = {};
  const vt = Math.max(result.virtualTimeMs, 1e-9);
  for (const [peer, ms] of model.cpuMsByNode())
    cpu[isClientPeer(peer) ? `client ${clientOrigin(peer)}` : `replica ${peer}`] = Math.round((1000 * ms) / vt) / 10;
  const r3 = (x: number): number => Math.round(x * 1000) / 1000;
  const widthMs = bucketMs(lastMs);
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
    messagesPerSec: Math.round((10 * result.replicaMessages * 1000) / vt) / 10,
    bytesPerSec: Math.round((10 * result.bytesSent * 1000) / vt) / 10,
    viewChanges: result.viewChanges,
    rollbacks: result.rollbacks,
    clientTimeouts: result.clientTimeouts,
    acceptedByPath: result.acceptedByPath,
    clientMachines: machines,
    clientsPerMachine: perMachine,
    windowMs: r3(Math.max(0, endMs - warmupMs)),
    windowEndedBy: endedByDrain ? 'first-client-done' : 'last-acceptance',
    warmupShare,
    throughputSeries: throughputSeries(accepted, warmupMs, lastMs, widthMs),
    seriesBucketMs: widthMs,
    messagesPerBatch: Math.round(result.messagesPerBatch * 100) / 100,
    protocolMessagesPerBatch: Math.round(result.protocolMessagesPerBatch * 100) / 100,
    highestView: result.highestView,
    stopReason: result.stopReason,
    io: ioTotals(model),
  };
}

// ---------------------------------------------------------------------------------------
// `poe-bench run --backend model` (issue 12 item 3): one run's spec through modelPoint above,
// recorded with the marking of figure --backend model's runs (experiments/sweep-sim.ts,
// experiments/sweep.ts sweepManifest): `backend: 'model'`, `modelled: true`, `testbed`,
// `calibration`, `virtualTime: false` on the runs.jsonl line, the same keys in the manifest.

/** What a modelled run is: the run's spec without what only real processes have, plus the model's own settings. */
export type ModelRunSpec = Omit<RunSpec, 'backend' | 'host' | 'basePort' | 'link' | 'infra' | 'keySeed' | 'clientTimeoutFixed' | 'nodeFlags'> & {
  readonly backend: 'model';
  readonly testbed: string;
  readonly calibration: string;
  /** Batches the clients issue in all (--sim-batches). */
  readonly simBatches: number;
};

export interface ModelRun {
  readonly spec: ModelRunSpec;
  /** The testbed as modelled (the profile's description and sources are in infra/sim/testbed.ts). */
  readonly testbed: Testbed;
  /** The calibration file's machine and date, and whether `model validate` has checked it. */
  readonly calibration: { readonly path: string; readonly machine: string; readonly date: string; readonly validated: boolean };
  readonly point: ModelPointResult;
  readonly valid: boolean;
  readonly reason?: string;
  readonly startedAt: string;
  readonly durationSec: number;
}

/** The modelled spec of a run spec: its real-only fields (host, ports, links, placement, key material, adaptive timeouts) left out. */
export function modelRunSpec(spec: RunSpec, testbed: string, calibration: string, simBatches: number): ModelRunSpec {
  const { backend: _b, host: _h, basePort: _p, link: _l, infra: _i, keySeed: _k, clientTimeoutFixed: _t, nodeFlags: _f, ...rest } = spec;
  return { ...rest, backend: 'model', testbed, calibration, simBatches };
}

/** The model point of a run's spec: its protocol, sizes, workload and seed, on `testbed` with `costs`, over `batches`. */
export function pointInputOf(
  spec: Pick<
    RunSpec,
    'protocol' | 'replicas' | 'batch' | 'clients' | 'clientProcs' | 'records' | 'valueBytes' | 'checkpointInterval' | 'window' | 'extra' | 'seed'
  >,
  testbed: Testbed,
  costs: OpCosts,
  batches: number,
): ModelPointInput {
  return {
    protocol: spec.protocol,
    replicas: spec.replicas,
    batch: spec.batch,
    clients: spec.clients,
    clientProcs: spec.clientProcs,
    batches,
    records: spec.records,
    valueBytes: spec.valueBytes,
    checkpointInterval: spec.checkpointInterval,
    window: spec.window,
    extra: spec.extra,
    seed: spec.seed,
    testbed,
    costs,
  };
}

/** Runs a run's spec in the cost model (modelPoint), the warm-up share as the run's warm-up over warm-up plus duration (as figure --backend model). */
export function modelRun(spec: ModelRunSpec, testbed: Testbed, calibration: CalibrationFile): ModelRun {
  const startedAt = new Date().toISOString();
  const point = modelPoint({
    ...pointInputOf(spec, testbed, calibration.costs, spec.simBatches),
    warmupShare: spec.warmupS / (spec.warmupS + spec.durationS),
    crashed: spec.crashed,
    faults: spec.faults,
    generator: spec.generator,
    clientTimeoutMs: spec.clientTimeoutMs,
    viewChangeTimeoutMs: spec.viewChangeTimeoutMs,
  });
  const problems = [...point.violations, ...(point.txnPerSec > 0 ? [] : ['no transaction was accepted inside the modelled measurement window'])];
  const m = calibration.machine;
  return {
    spec,
    testbed,
    calibration: {
      path: spec.calibration,
      machine: `${m.cpuModel}, ${m.cores} cores, Node ${m.node}`,
      date: calibration.date,
      validated: calibration.validation !== undefined,
    },
    point,
    valid: point.valid,
    ...(point.valid ? {} : { reason: `model: ${problems.slice(0, 3).join('; ')}` }),
    startedAt,
    durationSec: Math.round(point.wallMs) / 1000,
  };
}

/** The RunMetrics of a modelled run, as figure --backend model records them; undefined when nothing was accepted. */
export function modelRunMetrics(r: ModelRun): RunMetrics | undefined {
  return r.point.txnPerSec === 0 ? undefined : pointFigures(r.point);
}

/** A modelled point's figures under the names a run's metrics use. */
export function pointFigures(p: ModelRun['point']): RunMetrics {
  return {
    throughputTxnPerSec: p.txnPerSec,
    latencyMs: p.latencyMs,
    messagesPerSec: p.messagesPerSec,
    bytesPerSec: p.bytesPerSec,
    viewChanges: p.viewChanges,
    rollbacks: p.rollbacks,
    clientTimeouts: p.clientTimeouts,
  };
}

/** The marking every modelled result carries (runs.jsonl, manifest, --json): figure --backend model's keys. */
export function modelMarking(
  testbed: string,
  calibration: string,
): { backend: 'model'; modelled: true; testbed: string; calibration: string; virtualTime: false } {
  return { backend: 'model', modelled: true, testbed, calibration, virtualTime: false };
}

/**
 * The load modelled, in transactions (as infra/run/execute.ts loadOf says a real run's): the
 * clients modelled, which round up to a whole number per client machine of the testbed.
 */
function modelLoad(r: ModelRun): { load: { readonly closedLoopTxns: number; readonly askedTxns?: number } } {
  const txns = r.point.clientMachines * r.point.clientsPerMachine * r.spec.batch;
  return { load: { closedLoopTxns: txns, ...(r.spec.loadTxns === undefined ? {} : { askedTxns: r.spec.loadTxns }) } };
}

/** The model's own detail of a run: what it simulated, and the modelled CPU per node. */
function modelDetail(r: ModelRun): Record<string, unknown> {
  const p = r.point;
  return {
    testbedDescription: r.testbed.description,
    calibrationMachine: r.calibration.machine,
    calibrationDate: r.calibration.date,
    calibrationValidated: r.calibration.validated,
    batches: r.spec.simBatches,
    acceptedBatches: p.acceptedBatches,
    warmupShare: Math.round(p.warmupShare * 1000) / 1000,
    windowMs: p.windowMs,
    windowEndedBy: p.windowEndedBy,
    virtualTimeMs: p.virtualTimeMs,
    clientMachines: p.clientMachines,
    clientsPerMachine: p.clientsPerMachine,
    cpuPercentByNode: p.cpuPercentByNode,
    cpuMsPerBatch: p.cpuMsPerBatch,
    acceptedByPath: p.acceptedByPath,
    simReplay: p.replay,
  };
}

/** The runs.jsonl line of a modelled run: the run line's shape (makeRunLine), figure's model marking, the model's detail; no real-run fields. */
export function modelRunLine(r: ModelRun, env: Environment): RunLine {
  const metrics = modelRunMetrics(r);
  // specPoint reads only the point's fields (protocol, replicas, crashed, batch, faults), which a modelled spec keeps.
  const point = specPoint(r.spec as unknown as RunSpec);
  return {
    experiment: 'run',
    pointId: pointId(point),
    point,
    rep: 0,
    valid: r.valid,
    ...(r.reason ? { reason: r.reason } : {}),
    startedAt: r.startedAt,
    durationSec: r.durationSec,
    ...(metrics ? { metrics } : {}),
    ...modelMarking(r.spec.testbed, r.spec.calibration),
    model: modelDetail(r),
    ...modelLoad(r),
    violations: r.point.violations,
    spec: r.spec,
    commit: env.commit,
    dirty: env.dirty,
  };
}

/** The manifest fields that override a run's (writeManifest's extra): figure's model manifest keys, and no hosts or key seeds. */
export function modelManifestExtra(r: ModelRun, replay: string): Record<string, unknown> {
  return {
    backend: 'model',
    hosts: [],
    spec: r.spec,
    seeds: { seed: r.spec.seed, rule: 'the simulator: every random choice (network, client keys) derives from seed' },
    replay,
    modelled: true,
    testbed: r.spec.testbed,
    calibration: r.spec.calibration,
    notes: [
      `MODELLED: this run ran in the calibrated cost model (poe-bench run --backend model --testbed ${r.spec.testbed}): the simulator running the real cores, each step charged the CPU its counted operations cost (calibration ${r.spec.calibration}), on the testbed's cores and NICs.`,
      `Throughput and latency are PREDICTIONS for the testbed ${r.spec.testbed}, not measurements; see the model validation table for how far the model was from real runs on this machine.`,
      `The run issues a fixed number of batches (${r.spec.simBatches}); the first ${Math.round(1000 * r.point.warmupShare) / 10}% of its time is warm-up (--warmup over --warmup + --duration).`,
    ],
  };
}

/** What `run --backend model --json` prints: the marking first, the predicted numbers, the model's detail; no field only a real run has. */
export function modelRunJson(r: ModelRun, replay: string, recordedIn?: string): Record<string, unknown> {
  const p = r.point;
  return {
    modelled: { testbed: r.spec.testbed, calibration: r.spec.calibration, note: 'predictions of the calibrated cost model, not measurements' },
    valid: r.valid,
    ...(r.reason ? { reason: r.reason } : {}),
    violations: p.violations,
    ...pointFigures(p),
    spec: r.spec,
    startedAt: r.startedAt,
    durationSec: r.durationSec,
    model: modelDetail(r),
    ...modelLoad(r),
    replay,
    ...(recordedIn ? { recordedIn } : {}),
  };
}

const num = (x: number, digits = 0): string => x.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });

/** The readable summary of `run --backend model`: its first lines say it is modelled, for which testbed, with which calibration. */
export function formatModelRun(r: ModelRun, recordedIn?: string): string {
  const s = r.spec;
  const p = r.point;
  const { f } = quorums(s.replicas);
  const crashed = s.crashedReplicas.length ? `replica${s.crashedReplicas.length > 1 ? 's' : ''} ${s.crashedReplicas.join(', ')} crashed` : 'no crashed replica';
  const faults = s.faults.length ? `, faults ${s.faults.map(formatReplicaFault).join(' ')}` : '';
  const clients = p.clientMachines * p.clientsPerMachine;
  const lines = [
    `poe-bench run: ${s.protocol}, n=${s.replicas} (f=${f}), ${crashed}${faults}, batch ${s.batch}, ${clients} clients on ${p.clientMachines} client machine${p.clientMachines > 1 ? 's' : ''}` +
      `${clients === s.clients ? '' : ` (${s.clients} asked, ${p.clientsPerMachine} per machine)`}, ${num(s.simBatches)} batches of which the first ${num(100 * p.warmupShare, 1)}% of the time is warm-up, model`,
    `  MODELLED for testbed ${s.testbed} with calibration ${s.calibration}, not measured: every number below is a prediction of the calibrated cost model`,
    `  testbed      ${r.testbed.description}`,
    `  calibration  ${r.calibration.machine}, ${r.calibration.date}${r.calibration.validated ? '' : `; NOT VALIDATED: run \`poe-bench model validate --calibration ${s.calibration}\``}`,
    `  result       ${r.valid ? 'VALID' : 'INVALID'} (the simulator's safety checks of the ledgers)`,
  ];
  if (p.txnPerSec > 0) {
    lines.push(
      `  throughput   ${num(p.txnPerSec)} txn/s predicted (${num(p.acceptedBatches)} batches accepted, window ${num(p.windowMs, 3)} ms of modelled time)`,
      `  latency      mean ${num(p.latencyMs.mean, 2)} ms, p50 ${num(p.latencyMs.p50, 2)} ms, p99 ${num(p.latencyMs.p99, 2)} ms, max ${num(p.latencyMs.max, 2)} ms (predicted)`,
      `  replicas     ${num(p.messagesPerSec)} messages/s, ${num(p.bytesPerSec / 2 ** 20, 1)} MiB/s (predicted, whole run)`,
      `  faults       view changes ${p.viewChanges}, rollbacks ${p.rollbacks}, client timeouts ${p.clientTimeouts}`,
      `  modelled CPU ${Object.entries(p.cpuPercentByNode)
        .filter(([node]) => node.startsWith('replica'))
        .map(([node, pct]) => `${node.replace('replica ', 'r')} ${num(pct, 1)}%`)
        .join(', ')} of one calibration-machine core (${num(p.cpuMsPerBatch, 2)} CPU ms per batch over every node)`,
    );
  }
  if (!r.valid) for (const v of p.violations.slice(0, 10)) lines.push(`    - ${v}`);
  if (r.reason && p.violations.length === 0) lines.push(`  why          ${r.reason}`);
  lines.push(`  simulator    ${p.replay} (wall ${num(p.wallMs)} ms)`);
  if (recordedIn) lines.push(`  recorded in  ${recordedIn}`);
  return lines.join('\n');
}
