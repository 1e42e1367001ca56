/**
 * One measured run of one protocol on real processes (issue 3).
 *
 * The run, in order: start the replica and client processes (crashed backups are simply not
 * started: they never take part; replicas with --faults wrap their core in replica/byzantine.ts's
 * wrappers), configure them (replicas bind their ports), connect them,
 * start the replicas then the clients, warm up, measure, stop the clients, wait until the
 * replicas converge, stop the replicas, collect metrics, ledgers and accepted batches, check
 * safety on the real ledgers of the correct replicas (infra/sim/safety.ts; a faulty replica's
 * ledger may be a prefix or anything else), shut everything down. Each process times
 * its own window from its `start`, so the harness's own scheduling cannot skew the numbers.
 *
 * Whatever happens (Ctrl-C, an error, a process that dies) every process is stopped before
 * `executeRun` returns or throws, and a run that did not complete is never valid.
 */
import type { AcceptedReport, ClientMetricsReport, ClientProgress } from '../process/client.js';
import { describeExit, launchLocal, type Cluster, type ClusterNode, type LaunchPlan, type NodeRole } from '../local/backend.js';
import { checkSafety, type AcceptedRecord, type LedgerLike, type ReplicaLedger } from '../sim/safety.js';
import { createCrypto } from '../../replica/crypto.js';
import { blockHash, genesisHash } from '../../replica/ledger.js';
import type { ClientProcessConfig, PeerAddress, ProcessMemory, ReplicaProcessConfig, WindowExtended, WindowOpened } from '../process/control.js';
import type { LedgerReport, ReplicaMetricsReport, ReplicaProgress } from '../process/replica.js';
import { clientPeer, quorums } from '../../replica/types.js';
import { aggregateMetrics, implausibilities, type LatencySummaryMs, type RunMetricsReport } from './metrics.js';
import { launchCluster } from './launch.js';
import { appendRun, environment, makeRunLine, writeManifest } from './results.js';
import { faultsOf, faultyReplicas, liveReplicas, mayLagReplicas, outstandingTxns, processExtra, type RunSpec } from './spec.js';
import { formatReplicaFault } from '../../replica/byzantine.js';
import { availableParallelism } from 'node:os';
import { linkBetween, parseLinkSpec } from '../link.js';
import {
  extendedWindowMs,
  judgeSteady,
  type MemorySample,
  type MemoryVerdict,
  memorySettled,
  type Steady,
  type WarmupEnd,
  type WindowPlan,
  warmupPoll,
} from './steady.js';
import { attributeBottleneck, machineCpuPercent, sampleMachineCpu, type Bottleneck, type BottleneckInput, type CpuSample } from './bottleneck.js';

export interface RunOptions {
  /** Called about once a second with a progress line. */
  readonly onProgress?: (line: string) => void;
  /** Aborts the run (Ctrl-C); every process is stopped. */
  readonly signal?: AbortSignal;
  readonly nodeArgs?: Partial<Record<NodeRole, readonly string[]>>;
  /** Each process's stderr is also written here. */
  readonly logDir?: string;
  /** After the clients stop: how long replicas may go without executing anything before the run fails to converge (at most twelve such periods in all). */
  readonly convergeTimeoutMs?: number;
  /** Called once the processes are started (tests use it to find PIDs, or to kill one). */
  readonly onStarted?: (cluster: Cluster) => void;
  /** Starts the processes; default: the local backend (infra/local). Other backends plug in here. */
  readonly launch?: (spec: RunSpec, plan: LaunchPlan) => Promise<Cluster> | Cluster;
  /** Called once every process is connected, before the cores start (tests inject bad input). */
  readonly onConnected?: (addresses: readonly PeerAddress[]) => Promise<void> | void;
}

export interface RunResult {
  readonly valid: boolean;
  /** Why the run is invalid; absent when valid. */
  readonly reason?: string;
  /** Safety violations (ledgers disagree, accepted batch missing, no convergence). */
  readonly violations: readonly string[];
  /** Numbers that cannot be trusted (nothing accepted, impossible values). */
  readonly implausible: readonly string[];
  /** The run did not complete (a process died, a port was taken, it was interrupted). */
  readonly failed: boolean;
  readonly interrupted: boolean;
  readonly throughputTxnPerSec: number;
  readonly latencyMs: LatencySummaryMs;
  readonly messagesPerSec: number;
  readonly bytesPerSec: number;
  readonly metrics?: RunMetricsReport;
  readonly ledgerHeights?: Record<string, number>;
  /** What bound the run (infra/run/bottleneck.ts); absent when it did not complete. */
  readonly bottleneck?: Bottleneck;
  /**
   * What the verdict was made from, so that a caller who probes the run at more load can make it
   * again with the probe (experiments/saturation.ts); not recorded.
   */
  readonly bottleneckInput?: BottleneckInput;
  /** Whether the run was in steady state (infra/run/steady.ts); absent when it did not complete. */
  readonly steady?: Steady;
  readonly spec: RunSpec;
  readonly startedAt: string;
  readonly durationSec: number;
  /** Every process started, for the no-orphan checks. */
  readonly pids: readonly number[];
}

export class RunAborted extends Error {
  constructor(
    message: string,
    readonly interrupted: boolean,
  ) {
    super(message);
    this.name = 'RunAborted';
  }
}

const CONNECT_TIMEOUT_MS = 15_000;
const WINDOW_MARGIN_MS = 500;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function replicaConfig(spec: RunSpec, id: number): ReplicaProcessConfig {
  const faults = faultsOf(spec, id);
  return {
    ...(faults.length > 0 ? { faults } : {}),
    role: 'replica',
    protocol: spec.protocol,
    n: spec.replicas,
    id,
    clientMachines: spec.clientProcs,
    keySeed: spec.keySeed,
    records: spec.records,
    valueBytes: spec.valueBytes,
    extra: processExtra(spec),
    listenHost: spec.host,
    listenPort: spec.basePort === 0 ? 0 : spec.basePort + id,
    checkpointIntervalK: spec.checkpointInterval,
    windowK: spec.window,
    viewChangeTimeoutMs: spec.viewChangeTimeoutMs,
  };
}

function clientConfig(spec: RunSpec, origin: number): ClientProcessConfig {
  // Spread the logical clients evenly; ids are disjoint across processes.
  const per = Math.floor(spec.clients / spec.clientProcs);
  const extraOne = origin < spec.clients % spec.clientProcs ? 1 : 0;
  const base = origin * per + Math.min(origin, spec.clients % spec.clientProcs);
  return {
    role: 'client',
    protocol: spec.protocol,
    n: spec.replicas,
    origin,
    clientMachines: spec.clientProcs,
    keySeed: spec.keySeed,
    records: spec.records,
    valueBytes: spec.valueBytes,
    extra: processExtra(spec),
    clients: per + extraOne,
    clientIdBase: base,
    batchSize: spec.batch,
    requestTimeoutMs: spec.clientTimeoutMs,
    ...(spec.clientTimeoutFixed ? {} : { adaptiveTimeout: true }),
    ...(spec.openLoopBatchesPerSec !== undefined ? { openLoopBatchesPerSec: spec.openLoopBatchesPerSec / spec.clientProcs } : {}),
    generator: spec.generator,
    seed: (spec.seed + origin) >>> 0,
  };
}

/** A ledger as a replica reported it, checkable by infra/sim/safety.ts (chain recomputed). */
export function ledgerFromReport(r: LedgerReport): LedgerLike {
  const hashes = Buffer.from(r.hashes, 'base64');
  const digests = Buffer.from(r.digests, 'base64');
  const at = (buf: Buffer, k: number): Buffer => {
    if (!Number.isInteger(k) || k < 0 || k > r.height) throw new RangeError(`no block at height ${k} (height ${r.height})`);
    return buf.subarray(k * 32, k * 32 + 32);
  };
  return {
    height: r.height,
    hashAt: (k) => at(hashes, k),
    digestAt: (k) => at(digests, k),
    viewAt: (k) => r.views[k] ?? -1,
    verifyChain: () => {
      if (hashes.length !== (r.height + 1) * 32 || digests.length !== (r.height + 1) * 32) return false;
      const crypto = createCrypto('node');
      let prev = genesisHash(crypto, 0);
      if (!prev.equals(at(hashes, 0))) return false;
      for (let k = 1; k <= r.height; k++) {
        prev = blockHash(crypto, k, at(digests, k), r.views[k] ?? -1, prev);
        if (!prev.equals(at(hashes, k))) return false;
      }
      return true;
    },
  };
}

export function acceptedRecords(reports: readonly AcceptedReport[]): AcceptedRecord[] {
  const out: AcceptedRecord[] = [];
  for (const r of reports) {
    const digests = Buffer.from(r.digests, 'base64');
    for (let i = 0; i < r.k.length; i++) {
      out.push({ k: r.k[i]!, view: r.view[i]!, clientId: r.clientId[i]!, reqNo: r.reqNo[i]!, digest: digests.subarray(i * 32, i * 32 + 32) });
    }
  }
  return out;
}

/** Races every step of a run against its abort: Ctrl-C or a process that died. */
class Guard {
  private abortError: RunAborted | undefined;
  private rejectAbort: ((e: RunAborted) => void) | undefined;
  readonly aborted: Promise<never>;

  constructor() {
    this.aborted = new Promise<never>((_, reject) => (this.rejectAbort = reject));
    this.aborted.catch(() => undefined);
  }

  abort(err: RunAborted): void {
    if (this.abortError) return;
    this.abortError = err;
    this.rejectAbort!(err);
  }

  get error(): RunAborted | undefined {
    return this.abortError;
  }

  run<T>(p: Promise<T>): Promise<T> {
    if (this.abortError) return Promise.reject(this.abortError);
    return Promise.race([p, this.aborted]);
  }

  sleep(ms: number): Promise<void> {
    return this.run(sleep(ms));
  }
}

const emptyLatency: LatencySummaryMs = { mean: 0, p50: 0, p99: 0, max: 0 };

/** Runs one spec on the local backend; always stops every process before it returns. */
export async function executeRun(spec: RunSpec, options: RunOptions = {}): Promise<RunResult> {
  const startedAt = new Date().toISOString();
  const t0 = Date.now();
  const guard = new Guard();
  const onAbort = (): void => guard.abort(new RunAborted('interrupted', true));
  if (options.signal?.aborted) onAbort();
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const live = liveReplicas(spec);
  const origins = Array.from({ length: spec.clientProcs }, (_, o) => o);
  let cluster: Cluster | undefined;
  let launching: Promise<Cluster> | undefined;
  const base = { spec, startedAt, violations: [] as string[], implausible: [] as string[] };
  try {
    // The spec's node flags (--node-flags) first, then the caller's (the bench's --cpu-prof).
    const flags = spec.nodeFlags ?? [];
    const plan: LaunchPlan = {
      replicas: live,
      clients: origins,
      nodeArgs: { replica: [...flags, ...(options.nodeArgs?.replica ?? [])], client: [...flags, ...(options.nodeArgs?.client ?? [])] },
      ...(options.logDir ? { logDir: options.logDir } : {}),
    };
    launching = Promise.resolve().then(() =>
      (options.launch ?? (spec.backend === 'local' && spec.link === 'none' && !spec.infra.pinCpus ? (_, p) => launchLocal(p) : launchCluster))(spec, plan),
    );
    cluster = await guard.run(launching);
    const c = cluster;
    c.onUnexpectedExit((node, info) => {
      const tail = node.stderrTail();
      guard.abort(new RunAborted(`${node.name} (pid ${node.pid}) exited ${describeExit(info)} during the run${tail ? `:\n${indent(tail)}` : ''}`, false));
    });
    options.onStarted?.(c);
    const outcome = await measure(spec, c, guard, options);
    return { ...base, ...outcome, startedAt, durationSec: (Date.now() - t0) / 1000, pids: c.pids() };
  } catch (err) {
    const aborted = guard.error ?? (err instanceof RunAborted ? err : undefined);
    const message = aborted?.message ?? (err as Error).message;
    return {
      ...base,
      valid: false,
      reason: aborted?.interrupted ? 'interrupted' : `the run failed: ${message}`,
      failed: true,
      interrupted: aborted?.interrupted ?? false,
      throughputTxnPerSec: 0,
      latencyMs: emptyLatency,
      messagesPerSec: 0,
      bytesPerSec: 0,
      durationSec: (Date.now() - t0) / 1000,
      pids: cluster?.pids() ?? [],
    };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    trace('shutdown');
    // Aborted while a launcher was still starting processes: wait for it, then stop them.
    if (!cluster && launching) cluster = await launching.catch(() => undefined);
    if (cluster) await (guard.error ? cluster.kill() : cluster.shutdown());
    trace('done');
  }
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

type MeasureOutcome = Pick<
  RunResult,
  | 'valid'
  | 'reason'
  | 'violations'
  | 'implausible'
  | 'failed'
  | 'interrupted'
  | 'throughputTxnPerSec'
  | 'latencyMs'
  | 'messagesPerSec'
  | 'bytesPerSec'
  | 'metrics'
  | 'ledgerHeights'
  | 'bottleneck'
  | 'bottleneckInput'
  | 'steady'
>;

/** POE_BENCH_TRACE=1 prints when each phase of a run begins (stderr). */
const trace = (phase: string): void => {
  if (process.env['POE_BENCH_TRACE']) process.stderr.write(`[${new Date().toISOString().slice(11, 23)}] ${phase}\n`);
};

async function measure(spec: RunSpec, cluster: Cluster, guard: Guard, options: RunOptions): Promise<MeasureOutcome> {
  trace('configure');
  const replicas = cluster.nodes.filter((n) => n.role === 'replica');
  const clients = cluster.nodes.filter((n) => n.role === 'client');
  const ask = <T>(node: ClusterNode, req: Parameters<ClusterNode['control']['request']>[0], timeoutMs?: number): Promise<T> =>
    guard.run(node.control.request<T>(req, timeoutMs));

  // Configure: replicas bind (the port each got is the answer).
  const ports = await guard.run(
    Promise.all(
      replicas.map((r) =>
        ask<{ port: number }>(r, {
          cmd: 'configure',
          config: { ...replicaConfig(spec, r.id), ...(r.host ? { listenHost: r.host } : {}), ...(r.listenPort ? { listenPort: r.listenPort } : {}) },
        }),
      ),
    ),
  );
  await guard.run(Promise.all(clients.map((cl) => ask(cl, { cmd: 'configure', config: clientConfig(spec, cl.id) }))));
  const addresses: PeerAddress[] = replicas.map((r, i) => ({ peer: r.id, host: r.host ?? spec.host, port: ports[i]!.port }));

  trace('connect');
  // Connect: every live replica pair and every client to every live replica.
  const clientPeers = clients.map((cl) => clientPeer(cl.id));
  await guard.run(
    Promise.all([
      ...replicas.map((r) =>
        ask(
          r,
          { cmd: 'connect', peers: addresses, expect: [...live(replicas, r.id), ...clientPeers], timeoutMs: CONNECT_TIMEOUT_MS },
          CONNECT_TIMEOUT_MS + 5000,
        ),
      ),
      ...clients.map((cl) =>
        ask(cl, { cmd: 'connect', peers: addresses, expect: replicas.map((r) => r.id), timeoutMs: CONNECT_TIMEOUT_MS }, CONNECT_TIMEOUT_MS + 5000),
      ),
    ]),
  );

  if (options.onConnected) await guard.run(Promise.resolve(options.onConnected(addresses)));

  const win = await driveWindow(spec, replicas, clients, guard, ask, options.onProgress);
  const { cpuAtOpen, cpuAtClose } = win;

  trace('stop clients');
  // Stop the clients; the replicas finish what is in flight and the correct ones must converge
  // (a replica that stopped after k batches holds a prefix, an equivocating one anything).
  await guard.run(Promise.all(clients.map((cl) => ask(cl, { cmd: 'stop' }))));
  const faulty = faultyReplicas(spec);
  const lagging = mayLagReplicas(spec);
  const converging = replicas.filter((r) => !faulty.includes(r.id) && !lagging.includes(r.id));
  const convergence = await waitForConvergence(converging, guard, options.convergeTimeoutMs ?? 5000);
  trace('stop replicas');
  await guard.run(Promise.all(replicas.map((r) => ask(r, { cmd: 'stop' }))));

  const replicaMetrics = await guard.run(Promise.all(replicas.map((r) => ask<ReplicaMetricsReport>(r, { cmd: 'metrics' }))));
  const clientMetrics = await guard.run(Promise.all(clients.map((cl) => ask<ClientMetricsReport>(cl, { cmd: 'metrics' }))));
  const ledgers = await guard.run(Promise.all(replicas.map((r) => ask<LedgerReport>(r, { cmd: 'ledger' }, 60_000))));
  const accepted = await guard.run(Promise.all(clients.map((cl) => ask<AcceptedReport>(cl, { cmd: 'ledger' }, 60_000))));

  trace('safety check');
  // The warm-up each client process had (from its start to its window's opening): the longest.
  const warmupSec = Math.max(0, ...clientMetrics.map((c) => c.warmupMs)) / 1000;
  // A process that got to its cap before the harness's open-window made driveWindow record 'cap'.
  const plan: WindowPlan = win.plan;
  const metrics = aggregateMetrics(replicaMetrics, clientMetrics, warmupSec, faulty);
  const correctLedgers: ReplicaLedger[] = ledgers.filter((l) => !faulty.includes(l.id)).map((l) => ({ replica: l.id, ledger: ledgerFromReport(l) }));
  const acceptedBatches = acceptedRecords(accepted);
  // Every correct ledger agrees with the others and replaces no accepted batch; those not kept
  // behind by a Byzantine primary also hold every accepted batch.
  const violations = [
    ...new Set([
      ...checkSafety({ ledgers: correctLedgers, accepted: acceptedBatches, requireAcceptedInLedgers: false }),
      ...checkSafety({ ledgers: correctLedgers.filter((l) => !lagging.includes(l.replica)), accepted: acceptedBatches }),
    ]),
  ];
  if (!convergence.converged) violations.unshift(convergence.detail);
  const implausible = implausibilities(metrics, replicaMetrics, clientMetrics, warmupSec + metrics.windowSec);
  const valid = violations.length === 0 && implausible.length === 0;
  const reasons = [...violations.slice(0, 3), ...implausible.slice(0, 3)];
  const bottleneckInput = runBottleneckInput(
    spec,
    metrics,
    replicaMetrics,
    onThisMachine(spec) ? machineCpuPercent(cpuAtOpen, cpuAtClose, availableParallelism()) : null,
  );
  return {
    valid,
    ...(valid ? {} : { reason: reasons.join('; ') }),
    violations,
    implausible,
    failed: false,
    interrupted: false,
    throughputTxnPerSec: metrics.throughputTxnPerSec,
    latencyMs: metrics.latencyMs,
    messagesPerSec: metrics.messagesPerSec,
    bytesPerSec: metrics.bytesPerSec,
    metrics,
    ledgerHeights: Object.fromEntries(ledgers.map((l) => [String(l.id), l.height])),
    bottleneck: attributeBottleneck(bottleneckInput),
    bottleneckInput,
    steady: judgeSteady(metrics, warmupSec, Math.max(0, ...clientMetrics.map((c) => c.requestTimeoutMs ?? spec.clientTimeoutMs)), plan),
  };
}

/** How often the harness looks at the clients' throughput while it waits for the warm-up to settle. */
const WARMUP_POLL_MS = 250;
/** How often the harness samples every process's resident memory during the warm-up (steady.ts memorySettled). */
const MEMORY_POLL_MS = 1000;
/** No `open-window` this close to the cap: the processes open by themselves then, all at their cap. */
const CAP_GUARD_MS = 500;
/** The window's extension is decided this long before its planned end (at its half when shorter). */
const EXTEND_DECIDE_BEFORE_END_MS = 1500;

type Ask = <T>(node: ClusterNode, req: Parameters<ClusterNode['control']['request']>[0], timeoutMs?: number) => Promise<T>;

/** The clients' whole seconds since their start, summed second by second (issue 11 item 2's live series). */
function sumSeconds(progress: readonly Pick<ClientProgress, 'txnsPerSecondSinceStart'>[]): number[] {
  if (progress.length === 0) return [];
  const length = Math.min(...progress.map((p) => p.txnsPerSecondSinceStart.length));
  return Array.from({ length }, (_, i) => progress.reduce((s, p) => s + p.txnsPerSecondSinceStart[i]!, 0));
}

/**
 * Starts the cores and runs the warm-up and the window (issue 11 item 2). The spec's warm-up is
 * a cap: the harness watches the clients' 1-second throughput, and once a second every
 * process's resident memory, and as soon as the last whole seconds have settled and the memory
 * has stopped growing (infra/run/steady.ts warmupSettledAt and memorySettled, the rules the
 * judgement uses too) it tells every process to open its window now; each process opens by itself at the cap if
 * not told by then (a fixed warm-up is always that). Near the window's planned end, a window
 * shorter than WINDOW_OVER_LATENCY mean latencies so far is extended (steady.ts
 * extendedWindowMs), unless the warm-up is fixed: then the window is as given, and only flagged. The machine's CPU is sampled when the window opens and when it closes,
 * by this clock (timers at the cap and at the end, so that a progress request that takes long
 * on a loaded machine cannot delay them).
 *
 * The harness's own window (openAt, windowMs, capTimer, armClose) looks like a second
 * MeasurementWindow (infra/process/support.ts), and is not one. The processes' windows decide
 * what is measured: which acceptances, messages and process CPU count, and each process's
 * opening (command or cap, which makes the verdict `endedBy`). The harness's copy counts
 * nothing; it only says when to sample the machine's CPU (/proc/stat, which only the harness
 * reads), when to decide an extension, and when every process's window has surely ended so
 * that the clients may be stopped. For that it must be kept here, on this clock: the processes
 * report no closing (the control channel only answers requests), a window opened at its cap
 * sends no answer at all, and processes on other hosts have other clocks. And it differs from
 * MeasurementWindow on purpose: it follows the processes' extension answers even after its own
 * end has passed (MeasurementWindow.extend refuses then), and it waits openLatencyMs and
 * WINDOW_MARGIN_MS longer than its own end for the last process's window to close.
 */
async function driveWindow(
  spec: RunSpec,
  replicas: readonly ClusterNode[],
  clients: readonly ClusterNode[],
  guard: Guard,
  ask: Ask,
  onProgress: ((line: string) => void) | undefined,
): Promise<{ plan: WindowPlan; cpuAtOpen: CpuSample | undefined; cpuAtClose: CpuSample | undefined }> {
  trace('start');
  const capMs = spec.warmupS * 1000;
  const plannedMs = spec.durationS * 1000;
  const fixed = spec.warmupFixed === true;
  // Start replicas first so the first request finds them all running.
  await guard.run(Promise.all(replicas.map((r) => ask(r, { cmd: 'start', warmupMs: capMs, durationMs: plannedMs }))));
  await guard.run(Promise.all(clients.map((cl) => ask(cl, { cmd: 'start', warmupMs: capMs, durationMs: plannedMs }))));
  const startMs = Date.now();

  let openAt: number | undefined;
  let endedBy: WarmupEnd = fixed ? 'fixed' : 'cap';
  let windowMs = plannedMs;
  let windowExtended = false;
  let extensionRefused = false;
  let extensionDecided = false;
  let settledTail: readonly number[] | undefined;
  let openLatencyMs = 0;
  let cpuAtOpen: CpuSample | undefined;
  let cpuAtClose: CpuSample | undefined;
  let closeTimer: NodeJS.Timeout | undefined;
  const armClose = (): void => {
    clearTimeout(closeTimer);
    closeTimer = setTimeout(() => (cpuAtClose = sampleMachineCpu()), Math.max(0, openAt! + windowMs - Date.now())).unref();
  };
  const openNow = (at: number): void => {
    cpuAtOpen = sampleMachineCpu();
    openAt = at;
    armClose();
  };
  // The memory rule (steady.ts memorySettled): every process's resident memory, summed, once a second of the warm-up.
  const memory: MemorySample[] = [];
  let memoryAt = 0;
  let memoryAtOpen: MemoryVerdict | undefined;
  let fromSec = 0;
  const capTimer = setTimeout(() => {
    if (openAt !== undefined) return;
    openNow(startMs + capMs);
    // Memory is sampled until CAP_GUARD_MS before the cap; its last samples are judged here.
    if (!fixed) memoryAtOpen = memorySettled(memory);
  }, capMs).unref();
  const decideAfterMs = Math.max(plannedMs / 2, plannedMs - EXTEND_DECIDE_BEFORE_END_MS);
  const everyone = [...replicas, ...clients];
  let lastTxns = 0;
  let lastAt = startMs;
  let lastPrinted = startMs;
  try {
    for (;;) {
      const until = openAt === undefined ? startMs + capMs : openAt + openLatencyMs + windowMs + WINDOW_MARGIN_MS;
      if (openAt !== undefined && Date.now() >= until) break;
      await guard.sleep(Math.max(0, Math.min(WARMUP_POLL_MS, until - Date.now())));
      const now = Date.now();
      const watching = openAt === undefined && !fixed && now < startMs + capMs - CAP_GUARD_MS;
      // A fixed warm-up keeps its window as given too (figure 11b's crash is placed in it; old runs are repeated as they were).
      const deciding = openAt !== undefined && !fixed && !extensionDecided && now >= openAt + decideAfterMs;
      const printing = onProgress !== undefined && now - lastPrinted >= 1000;
      if (!watching && !deciding && !printing) continue;
      const sampling = watching && now - memoryAt >= MEMORY_POLL_MS;
      const [progress, rss] = await Promise.all([
        guard.run(Promise.all(clients.map((cl) => ask<ClientProgress>(cl, { cmd: 'progress' })))),
        sampling ? guard.run(Promise.all(everyone.map((n) => ask<ProcessMemory>(n, { cmd: 'memory' })))) : undefined,
      ]);
      if (rss) {
        memoryAt = now;
        memory.push({ atMs: Date.now(), rssBytes: rss.reduce((a, m) => a + m.rssBytes, 0) });
      }
      // Re-checked after the poll, which a loaded machine may have slowed down to near the cap.
      const stillBeforeCap = Date.now() < startMs + capMs - CAP_GUARD_MS;
      // Judged only at polls that watched the warm-up (a poll for printing or for the extension has no seconds).
      const poll = watching && stillBeforeCap ? warmupPoll(sumSeconds(progress), memory, fromSec) : undefined;
      if (poll) fromSec = poll.fromSec;
      if (openAt === undefined && poll?.settledTail !== undefined) {
        trace('open window (settled)');
        openNow(Date.now());
        endedBy = 'settled';
        memoryAtOpen = poll.memory;
        settledTail = poll.settledTail;
        const answers = await guard.run(Promise.all(everyone.map((n) => ask<WindowOpened>(n, { cmd: 'open-window' }))));
        // A process that reached its cap first opened there (at most CAP_GUARD_MS and a control round trip earlier).
        if (answers.some((a) => !a.byCommand)) endedBy = 'cap';
        // The last process opened by the time it answered: wait for its window to end too.
        openLatencyMs = Date.now() - openAt!;
      }
      if (deciding) {
        extensionDecided = true;
        const txns = progress.reduce((a, p) => a + p.windowTxns, 0);
        const next = extendedWindowMs(plannedMs, txns > 0 ? progress.reduce((a, p) => a + p.windowLatencyMsSum, 0) / txns : undefined);
        if (next !== undefined && next > windowMs) {
          trace(`extend window to ${next} ms`);
          const answers = await guard.run(Promise.all(everyone.map((n) => ask<WindowExtended>(n, { cmd: 'extend-window', durationMs: next }))));
          // A process whose window had already closed keeps the planned one: flagged, and the
          // harness waits for the longest so that none is cut short.
          if (answers.some((a) => a.extended)) {
            windowMs = next;
            windowExtended = true;
            extensionRefused = answers.some((a) => !a.extended);
            armClose();
          }
        }
      }
      if (printing && onProgress) {
        const txns = progress.reduce((a, p) => a + p.acceptedTxns, 0);
        const at = Date.now();
        const rate = at > lastAt ? ((txns - lastTxns) * 1000) / (at - lastAt) : 0;
        [lastTxns, lastAt, lastPrinted] = [txns, at, at];
        const phase =
          openAt === undefined
            ? `warm-up ${((at - startMs) / 1000).toFixed(0)} s (${fixed ? 'fixed' : 'cap'} ${spec.warmupS} s)`
            : `measuring ${(Math.max(0, Math.min(windowMs, at - openAt)) / 1000).toFixed(0)}/${windowMs / 1000} s (warm-up ${((openAt - startMs) / 1000).toFixed(1)} s, ${endedBy})`;
        onProgress(
          `${spec.protocol} n=${spec.replicas}: ${phase}, ${Math.round(rate).toLocaleString('en-US')} txn/s, ${txns.toLocaleString('en-US')} txns accepted`,
        );
      }
    }
  } finally {
    clearTimeout(capTimer);
    clearTimeout(closeTimer);
  }
  return {
    plan: {
      warmupEndedBy: endedBy,
      warmupCapSec: spec.warmupS,
      plannedWindowSec: spec.durationS,
      windowExtended,
      ...(extensionRefused ? { extensionRefused } : {}),
      ...(settledTail && endedBy === 'settled' ? { settledTail } : {}),
      ...(memoryAtOpen ? { memory: memoryAtOpen } : {}),
    },
    cpuAtOpen,
    cpuAtClose,
  };
}

/** Backends whose processes all run on this machine, so /proc/stat here is theirs. */
function onThisMachine(spec: RunSpec): boolean {
  return spec.backend === 'local' || spec.backend === 'netns' || spec.backend === 'docker';
}

/** The inputs of the bottleneck rule from a finished run. */
function runBottleneckInput(spec: RunSpec, m: RunMetricsReport, replicas: readonly ReplicaMetricsReport[], machine: number | null): BottleneckInput {
  const link = parseLinkSpec(spec.link);
  const peers = [...liveReplicas(spec), ...Array.from({ length: spec.clientProcs }, (_, o) => clientPeer(o))];
  let linkDelayMs = 0;
  let linkRateBitsPerSec = 0;
  for (const a of peers)
    for (const b of peers) {
      if (a === b) continue;
      const l = linkBetween(link, a, b);
      linkDelayMs = Math.max(linkDelayMs, l.delayMs);
      if (l.rateBitsPerSec > 0) linkRateBitsPerSec = linkRateBitsPerSec === 0 ? l.rateBitsPerSec : Math.min(linkRateBitsPerSec, l.rateBitsPerSec);
    }
  const links = Math.max(1, peers.length - 1);
  const busiestSenderBitsPerSecPerLink = Math.max(
    0,
    ...replicas.map((r) => (r.window && r.window.elapsedMs > 0 ? (8 * r.window.bytesSent * 1000) / r.window.elapsedMs / links : 0)),
  );
  const pinned = spec.infra.pinCpus;
  return {
    machineCpuPercent: machine,
    cores: availableParallelism(),
    processes: m.processes.map((p) => ({ name: p.name, cpuPercent: p.cpuPercent, role: p.role })),
    ...(pinned && pinned.length > 0 ? { pinnedCpus: new Set(pinned).size } : {}),
    linkDelayMs,
    linkRateBitsPerSec,
    busiestSenderBitsPerSecPerLink,
    ...(spec.openLoopBatchesPerSec !== undefined ? { offeredTxnPerSec: spec.openLoopBatchesPerSec * spec.batch } : {}),
    throughputTxnPerSec: m.throughputTxnPerSec,
    meanLatencyMs: m.latencyMs.mean,
    clientTimeouts: m.clientTimeouts,
    acceptedBatches: m.acceptedBatches,
  };
}

function live(replicas: readonly ClusterNode[], self: number): number[] {
  return replicas.map((r) => r.id).filter((id) => id !== self);
}

/**
 * Waits until every live replica has executed the same prefix (same height, same head hash)
 * and nothing moved since the previous poll: equal heights seen once could be a moment when
 * every replica happens to be at k while k + 1 is still in flight.
 */
async function waitForConvergence(replicas: readonly ClusterNode[], guard: Guard, stallMs: number): Promise<{ converged: boolean; detail: string }> {
  // A slow cluster (32 replicas on 2 cores, HotStuff's signatures) may still be executing a
  // backlog when the clients stop: that is not a failure to converge. Nor is a view change that
  // is still going on (PBFT at 32 replicas on 2 overloaded cores recovers after seconds of views
  // without execution: infra/sim/pbft-overload.test.ts). Give up only when no replica has
  // executed anything or moved to another view or out of a view change for `stallMs`, or after
  // a hard cap of twelve stall periods.
  const hardDeadline = Date.now() + 12 * stallMs;
  let stalledSince = Date.now();
  let last: ReplicaProgress[] = [];
  let previousHead = '';
  let previousHeights = '';
  for (;;) {
    last = await guard.run(Promise.all(replicas.map((r) => r.control.request<ReplicaProgress>({ cmd: 'progress' }))));
    const heads = new Set(last.map((p) => `${p.executedK}/${p.headHash}`));
    const head = heads.size === 1 ? [...heads][0]! : '';
    if (head !== '' && head === previousHead) return { converged: true, detail: '' };
    previousHead = head;
    const heights = last.map((p) => `${p.executedK}/${p.view}/${p.inViewChange ? 1 : 0}`).join(',');
    if (heights !== previousHeights) stalledSince = Date.now();
    previousHeights = heights;
    if (Date.now() - stalledSince > stallMs || Date.now() > hardDeadline) break;
    await guard.sleep(100);
  }
  const where = last.map((p) => `replica ${p.id} at ${p.executedK} (view ${p.view}${p.inViewChange ? ', in view change' : ''})`).join(', ');
  return {
    converged: false,
    detail: `non-faulty replicas did not converge after the clients stopped (no progress for ${stallMs} ms, or ${12 * stallMs} ms in all): ${where}`,
  };
}

// ---------------------------------------------------------------------------------------
// Presentation

const num = (x: number, digits = 0): string => x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

function bytesRate(bps: number): string {
  if (bps >= 2 ** 20) return `${num(bps / 2 ** 20, 1)} MiB/s`;
  if (bps >= 2 ** 10) return `${num(bps / 2 ** 10, 1)} KiB/s`;
  return `${num(bps)} B/s`;
}

/** The readable summary printed at the end of `poe-bench run`. */
export function formatRunResult(r: RunResult, recordedIn?: string): string {
  const s = r.spec;
  const { f } = quorums(s.replicas);
  const lines: string[] = [];
  const crashed =
    (s.crashedReplicas.length ? `replica${s.crashedReplicas.length > 1 ? 's' : ''} ${s.crashedReplicas.join(', ')} crashed` : 'no crashed replica') +
    (s.faults.length ? `, faults ${s.faults.map(formatReplicaFault).join(' ')}` : '');
  const load =
    s.openLoopBatchesPerSec !== undefined
      ? `open loop at ${num(s.openLoopBatchesPerSec)} batches/s`
      : `closed loop, ${num(s.clients * s.batch)} txns outstanding${s.loadTxns === undefined ? '' : ` (--load-txns ${num(s.loadTxns)})`}`;
  lines.push(
    `poe-bench run: ${s.protocol}, n=${s.replicas} (f=${f}), ${crashed}, batch ${s.batch}, ${s.clients} clients in ${s.clientProcs} process${s.clientProcs > 1 ? 'es' : ''} (${load}), ` +
      `${s.warmupFixed ? `${s.warmupS} s warm-up (fixed)` : `warm-up until settled (cap ${s.warmupS} s)`} + ${s.durationS} s measured, ${s.backend}`,
  );
  lines.push(`  result       ${r.valid ? 'VALID' : r.interrupted ? 'INTERRUPTED' : r.failed ? 'FAILED' : 'INVALID'}`);
  const m = r.metrics;
  if (m) {
    lines.push(
      `  throughput   ${num(m.throughputTxnPerSec)} txn/s (${num(m.acceptedBatches / Math.max(m.windowSec, 1e-9), 1)} batches/s, ${num(m.acceptedTxns)} txns in ${m.windowSec} s)`,
    );
    lines.push(
      `  latency      mean ${num(m.latencyMs.mean, 2)} ms, p50 ${num(m.latencyMs.p50, 2)} ms, p99 ${num(m.latencyMs.p99, 2)} ms, max ${num(m.latencyMs.max, 2)} ms`,
    );
    lines.push(
      `  replicas     ${num(m.messagesPerSec)} messages/s (${num(m.replicaToReplicaPerSec)} to replicas, ${num(m.replicaToClientPerSec)} to clients), ${bytesRate(m.bytesPerSec)}`,
    );
    const vc =
      m.viewChangeMs === undefined
        ? ''
        : ` (${num(m.viewChangeMs, 1)} ms${m.viewChangeStartSec === undefined ? '' : `, from ${num(m.viewChangeStartSec, 2)} s to ${num(m.viewChangeEndSec ?? 0, 2)} s of the window`})`;
    lines.push(
      `  faults       view changes ${m.viewChanges}${vc}, rollbacks ${m.rollbacks}, client timeouts ${m.clientTimeouts} ` +
        `(client timeout ${num(s.clientTimeoutMs)} ms, view-change timeout ${num(s.viewChangeTimeoutMs)} ms)`,
    );
    const paths = Object.entries(m.acceptedByPath);
    if (paths.length > 0) lines.push(`  accepted by  ${paths.map(([p, c]) => `${p} ${num(c)}`).join(', ')} batches`);
    const d = m.dropped;
    const drops = d.badMac + d.badFrame + d.badHello + d.decodeErrors + d.queueFull;
    if (drops > 0)
      lines.push(
        `  dropped      bad MAC ${d.badMac}, bad frame ${d.badFrame}, bad hello ${d.badHello}, undecodable ${d.decodeErrors}, queue full ${d.queueFull}`,
      );
    for (const [i, p] of m.processes.entries()) {
      const cpu = p.cpuPercent === null ? 'n/a' : `${num(p.cpuPercent, 1)}%`;
      lines.push(
        `  ${i === 0 ? 'processes' : '         '}    ${p.name.padEnd(10)} pid ${String(p.pid).padEnd(8)} CPU ${cpu.padStart(7)}  peak RSS ${num(p.peakRssMB, 1)} MB`,
      );
    }
    if (r.bottleneck) lines.push(`  bound by     ${r.bottleneck.kind}: ${r.bottleneck.detail}`);
    if (r.steady) {
      const st = r.steady;
      const ended =
        st.warmupEndedBy === undefined
          ? ''
          : st.warmupEndedBy === 'settled'
            ? st.memorySettled
              ? ', throughput and memory settled'
              : ', throughput settled' // records from before the memory rule
            : st.warmupEndedBy === 'cap'
              ? ', at its cap, not settled'
              : ', fixed';
      lines.push(
        `  window       warm-up ${num(st.warmupSec, 1)} s${ended}; measured ${num(st.windowSec, 1)} s` +
          `${st.windowExtended ? ` (extended from ${num(st.plannedWindowSec ?? 0, 1)} s: the mean latency wanted a longer one)` : ''}`,
      );
      lines.push(
        `  steady       ${r.steady.settled ? 'settled' : 'NOT settled'}, trend ${r.steady.trendPercent}% across the window, window ${r.steady.windowOverLatency}x the mean latency` +
          `${r.steady.clientTimeoutMs === undefined ? '' : `, client timeout ${num(r.steady.clientTimeoutMs)} ms at the end`}${r.steady.flags.length ? ` (${r.steady.flags.join('; ')})` : ''}`,
      );
    }
    if (r.ledgerHeights) {
      const faulty = faultyReplicas(s);
      const lagging = mayLagReplicas(s);
      const notes = [
        ...(faulty.length > s.crashedReplicas.length ? [`faulty ${faulty.filter((id) => !s.crashedReplicas.includes(id)).join(', ')} not checked`] : []),
        ...(lagging.length > 0 ? [`${lagging.join(', ')} kept behind by a Byzantine primary: agreement only`] : []),
      ];
      lines.push(
        `  ledgers      heights ${Object.entries(r.ledgerHeights)
          .map(([id, h]) => `${id}:${h}`)
          .join(' ')}${notes.length ? ` (${notes.join('; ')})` : ''}`,
      );
    }
  }
  if (!r.valid) {
    if (r.violations.length) {
      lines.push(`  violations   ${r.violations.length}`);
      for (const v of r.violations.slice(0, 10)) lines.push(`    - ${v}`);
    }
    for (const v of r.implausible) lines.push(`    - ${v}`);
    if (r.failed || r.interrupted) lines.push(`  why          ${r.reason}`);
  }
  if (recordedIn) lines.push(`  recorded in  ${recordedIn}`);
  return lines.join('\n');
}

/**
 * The load a run offered, in transactions (DESIGN.md "Workload"): closed loop, the transactions
 * outstanding (and the --load-txns asked for, if given); open loop, the offered rate.
 */
export function loadOf(spec: RunSpec): { load: { readonly closedLoopTxns?: number; readonly askedTxns?: number; readonly openLoopTxnPerSec?: number } } {
  const closed = outstandingTxns(spec);
  return {
    load:
      closed === undefined
        ? { openLoopTxnPerSec: (spec.openLoopBatchesPerSec ?? 0) * spec.batch }
        : { closedLoopTxns: closed, ...(spec.loadTxns === undefined ? {} : { askedTxns: spec.loadTxns }) },
  };
}

/** What --json prints: the headline numbers first, then everything else. */
export function runResultJson(r: RunResult, recordedIn?: string): Record<string, unknown> {
  return {
    valid: r.valid,
    ...(r.reason ? { reason: r.reason } : {}),
    violations: r.violations,
    implausible: r.implausible,
    failed: r.failed,
    throughputTxnPerSec: r.throughputTxnPerSec,
    latencyMs: r.latencyMs,
    messagesPerSec: r.messagesPerSec,
    bytesPerSec: r.bytesPerSec,
    ...(r.metrics
      ? {
          viewChanges: r.metrics.viewChanges,
          ...(r.metrics.viewChangeMs === undefined ? {} : { viewChangeMs: r.metrics.viewChangeMs }),
          rollbacks: r.metrics.rollbacks,
          clientTimeouts: r.metrics.clientTimeouts,
          acceptedByPath: r.metrics.acceptedByPath,
          throughputSeries: r.metrics.throughputSeries,
        }
      : {}),
    spec: r.spec,
    startedAt: r.startedAt,
    durationSec: r.durationSec,
    ...(r.metrics ? { metrics: r.metrics } : {}),
    ...(r.ledgerHeights ? { ledgerHeights: r.ledgerHeights } : {}),
    ...(r.bottleneck ? { bottleneck: r.bottleneck } : {}),
    ...(r.steady ? { steady: r.steady } : {}),
    ...loadOf(r.spec),
    ...(recordedIn ? { recordedIn } : {}),
  };
}

/** Appends the run to <out>/runs.jsonl and writes <out>/manifest.json; returns the runs file. */
export function recordRun(outDir: string, r: RunResult): string {
  const env = environment();
  writeManifest(outDir, r.spec, env, r.startedAt);
  const line = makeRunLine(r.spec, {
    valid: r.valid,
    ...(r.reason ? { reason: r.reason } : {}),
    startedAt: r.startedAt,
    durationSec: r.durationSec,
    ...(r.metrics ? { metrics: r.metrics } : {}),
    ...(r.bottleneck ? { bottleneck: r.bottleneck } : {}),
    ...(r.steady ? { steady: r.steady } : {}),
    ...loadOf(r.spec),
    violations: r.violations,
    implausible: r.implausible,
    failed: r.failed,
    commit: env.commit,
    dirty: env.dirty,
  });
  return appendRun(outDir, line);
}
