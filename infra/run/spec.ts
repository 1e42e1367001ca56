/**
 * What one measured run is (`poe-bench run`): the spec, its defaults, and the validation of
 * command-line flags with zod, so every bad flag is named in the error.
 *
 * The spec is recorded in full with every result (DESIGN.md "Results"): a run can be repeated
 * from its runs.jsonl line alone.
 */
import type { KeyGeneratorKind } from '../../client/generators.js';
import {
  describeParamIssues,
  formatNodeFlags,
  MODEL_BACKEND,
  paramDefault,
  paramSchema,
  parseExtra,
  parseNodeFlags,
  replayArgs,
  replayLine,
  type ExtraValue,
} from '../params.js';
import { FaultConfigError, formatReplicaFault, parseFault, type FaultSpec, type ReplicaFault } from '../../replica/byzantine.js';
import { getProtocol } from '../../replica/protocols.js';
import { primaryOf, quorums, type ProtocolName } from '../../replica/types.js';
import { INFRA_BACKENDS, parseInfraFlags, type InfraBackend, type InfraFlags, type InfraSpec } from './placement.js';
import { hotstuffRecordedExtra } from '../../replica/hotstuff.js';

export type BackendName = InfraBackend;
export const BACKENDS: readonly BackendName[] = INFRA_BACKENDS;
export type { ExtraValue };

/**
 * A crash or Byzantine behaviour of one replica that is started (replica/byzantine.ts), from
 * `--faults REPLICA=FAULT`. The replica's process wraps its core with `withFault`.
 */
export type RunFault = ReplicaFault;

export interface RunSpec {
  readonly protocol: ProtocolName;
  readonly replicas: number;
  /** Backups that never take part: the highest ids, never the view-0 primary. */
  readonly crashed: number;
  readonly crashedReplicas: readonly number[];
  /** True when --force allowed more crashed replicas than the protocol tolerates. */
  readonly force: boolean;
  /**
   * Started replicas that misbehave (--faults), in the order given; several on one replica
   * compose, the first innermost. crashAt times count from the replica's start.
   */
  readonly faults: readonly RunFault[];
  /** Writes per client batch (paper: 100). */
  readonly batch: number;
  /** Logical clients in total (closed loop: one batch outstanding each). */
  readonly clients: number;
  /** Client processes (client machines) the logical clients are spread over. */
  readonly clientProcs: number;
  readonly warmupS: number;
  readonly durationS: number;
  readonly generator: KeyGeneratorKind;
  readonly records: number;
  readonly valueBytes: number;
  /** Seeds the key generators (client process o uses seed + o) and the key material. */
  readonly seed: number;
  readonly keySeed: string;
  readonly backend: BackendName;
  /** Emulated links, canonical --link text (infra/link.ts); 'none' when not emulated. */
  readonly link: string;
  /** Backend-specific settings (infra/run/placement.ts). */
  readonly infra: InfraSpec;
  readonly host: string;
  /** Replica i listens on basePort + i; 0 lets the OS choose free ports. */
  readonly basePort: number;
  /**
   * The node/V8 flags every replica and client process starts with, on every backend
   * (--node-flags; infra/params.ts NODE_FLAGS_DEFAULT). Absent in records from before: none.
   */
  readonly nodeFlags?: readonly string[];
  /** Open loop: batches per second over all client processes; absent for closed loop. */
  readonly openLoopBatchesPerSec?: number;
  readonly clientTimeoutMs: number;
  readonly viewChangeTimeoutMs: number;
  readonly checkpointInterval: number;
  readonly window: number;
  readonly extra: Readonly<Record<string, ExtraValue>>;
  // --- issue 11 (helper "measure"): the load in transactions, and client timeouts ------------
  /**
   * Closed loop counted as the paper counts it (§5: 200K clients with one transaction each,
   * batched by the client machines; DESIGN.md "Workload"): this many transactions outstanding
   * in all, batched into ceil(loadTxns / batch) requests of `batch`, so `clients` (requests
   * outstanding) follows from it and a batch sweep holds the load fixed. Absent: `clients` was
   * given directly (the batch-level closed loop: one batch outstanding per logical client).
   */
  readonly loadTxns?: number;
  /**
   * True: every client request times out after exactly `clientTimeoutMs` (figure 11b's primary
   * failure, Zyzzyva's slow path). False: the timeout follows the observed latency (at least
   * `clientTimeoutMs`, and ADAPTIVE_TIMEOUT_MULTIPLE times the latency's recent p99), so a
   * slow protocol is not measured through its own timeouts.
   */
  readonly clientTimeoutFixed: boolean;
  // --- issue 11 item 2 (helper "warmup"): the warm-up ends when throughput has settled -------
  /**
   * True: the warm-up lasts exactly `warmupS` and the window exactly `durationS` (--fixed-warmup;
   * runs with a crashAt fault, whose time counts from the start). False or absent (records from
   * before): `warmupS` is a cap, the window opens once the clients' 1-second throughput has
   * settled and the processes' resident memory has stopped growing, and a window shorter than
   * 20 mean latencies is extended (infra/run/steady.ts).
   */
  readonly warmupFixed?: boolean;
}

/** Transactions outstanding in a closed-loop run (batches outstanding times the batch size); undefined in open loop. */
export function outstandingTxns(spec: Pick<RunSpec, 'clients' | 'batch' | 'openLoopBatchesPerSec'>): number | undefined {
  return spec.openLoopBatchesPerSec === undefined ? spec.clients * spec.batch : undefined;
}

/** Requests outstanding for a load in transactions: at least one per client machine. */
export function clientsForLoad(loadTxns: number, batch: number, clientProcs: number): number {
  return Math.max(clientProcs, Math.ceil(loadTxns / batch));
}

/** A run's default, from the table of run parameters (infra/params.ts). */
const d = <T>(key: string): T => paramDefault('run', key) as T;

export const RUN_DEFAULTS = {
  replicas: d<number>('replicas'),
  crashed: d<number>('crashed'),
  batch: d<number>('batch'),
  clients: d<number>('clients'),
  clientProcs: d<number>('clientProcs'),
  warmupS: d<number>('warmup'),
  durationS: d<number>('duration'),
  generator: d<KeyGeneratorKind>('generator'),
  records: d<number>('records'),
  valueBytes: d<number>('valueBytes'),
  seed: d<number>('seed'),
  backend: d<BackendName>('backend'),
  host: '127.0.0.1',
  basePort: d<number>('basePort'),
  nodeFlags: d<string>('nodeFlags'),
  clientTimeoutMs: d<number>('clientTimeoutMs'),
  viewChangeTimeoutMs: d<number>('viewChangeTimeoutMs'),
  checkpointInterval: d<number>('checkpointInterval'),
  window: d<number>('window'),
} as const;

/** Flags as commander hands them over (strings; repeatable ones as arrays). */
export interface RunFlags extends InfraFlags {
  readonly protocol?: string;
  readonly replicas?: string;
  readonly crashed?: string;
  readonly force?: boolean;
  readonly batch?: string;
  readonly clients?: string;
  readonly clientProcs?: string;
  readonly warmup?: string;
  readonly duration?: string;
  readonly generator?: string;
  readonly records?: string;
  readonly valueBytes?: string;
  readonly seed?: string;
  readonly backend?: string;
  readonly basePort?: string;
  readonly nodeFlags?: string;
  readonly openLoop?: string;
  readonly clientTimeoutMs?: string;
  readonly viewChangeTimeoutMs?: string;
  readonly checkpointInterval?: string;
  readonly window?: string;
  readonly extra?: readonly string[];
  /** REPLICA=FAULT, repeatable: 0=stopAfter:900, primary=equivocate, 0=inTheDark:3, 1=slow:20, 3=crashAt:5000. */
  readonly faults?: readonly string[];
  // issue 11 (measure)
  readonly loadTxns?: string;
  readonly fixedClientTimeout?: boolean;
  readonly fixedWarmup?: boolean;
}

export class RunSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunSpecError';
  }
}

export { parseExtra };

const flagSchema = paramSchema('run');

/** What the table's schemas make of the run flags. */
interface ParsedRunFlags {
  readonly protocol: string;
  readonly replicas?: number;
  readonly crashed?: number;
  readonly force?: boolean;
  readonly batch?: number;
  readonly clients?: number;
  readonly loadTxns?: number;
  readonly fixedClientTimeout?: boolean;
  readonly fixedWarmup?: boolean;
  readonly clientProcs?: number;
  readonly warmup?: number;
  readonly duration?: number;
  readonly generator?: string;
  readonly records?: number;
  readonly valueBytes?: number;
  readonly seed?: number;
  readonly backend?: string;
  readonly basePort?: number;
  readonly nodeFlags?: string;
  readonly openLoop?: number;
  readonly clientTimeoutMs?: number;
  readonly viewChangeTimeoutMs?: number;
  readonly checkpointInterval?: number;
  readonly window?: number;
  readonly extra: [string, ExtraValue][];
  readonly faults?: string[];
}

const describeIssues = (error: Parameters<typeof describeParamIssues>[1]): string => describeParamIssues('run', error);

/** The crashed backups for K: replicas n-1, ..., n-K (never replica 0, the view-0 primary). */
export function crashedBackups(n: number, crashed: number): number[] {
  const out: number[] = [];
  for (let i = n - crashed; i < n; i++) out.push(i);
  return out;
}

/** A fault as `parseFault` (replica/byzantine.ts) reads it: silent, stopAfter:900, inTheDark:2,3, ... */

const FAULT_SYNTAX =
  'REPLICA=FAULT, REPLICA a replica id or primary (the view-0 primary), FAULT one of silent, stopAfter:K, crashAt:MS, slow:MS, inTheDark:IDS, equivocate';

/**
 * The --faults values as RunFaults; every problem goes to `issues`, prefixed with the flag:
 * the replica must exist and be started (a crashed backup never runs, so a fault on it would
 * be a silent no-op), victims kept in the dark must exist and not be the replica itself, the
 * protocol must have proposal hooks for inTheDark and equivocate, and crashed backups plus
 * faulty replicas (and the victims kept in the dark) must stay within f unless --force.
 */
function parseRunFaults(
  texts: readonly string[],
  protocol: ProtocolName,
  n: number,
  crashedReplicas: readonly number[],
  force: boolean,
  issues: string[],
): RunFault[] {
  const out: RunFault[] = [];
  const { f } = quorums(n);
  for (const text of texts) {
    const m = /^\s*(\d+|primary)\s*=\s*(.+?)\s*$/.exec(text);
    if (!m) {
      issues.push(`--faults: '${text}' is not ${FAULT_SYNTAX}`);
      continue;
    }
    const replica = m[1] === 'primary' ? primaryOf(0, n) : Number(m[1]);
    let fault: FaultSpec;
    try {
      fault = parseFault(m[2]!);
    } catch (err) {
      if (!(err instanceof FaultConfigError)) throw err;
      issues.push(`--faults: ${err.message}`);
      continue;
    }
    const problem = faultProblem({ replica, fault }, protocol, n, crashedReplicas);
    if (problem) issues.push(`--faults: '${text}': ${problem}`);
    else out.push({ replica, fault });
  }
  const faulty = new Set([...crashedReplicas, ...out.map((a) => a.replica)]);
  if (out.length > 0 && faulty.size > f && !force) {
    const ids = [...faulty].sort((a, b) => a - b).join(', ');
    const counted = crashedReplicas.length > 0 ? `, the crashed backups ${crashedReplicas.join(', ')} included` : '';
    issues.push(
      `--faults: ${faulty.size} faulty replicas (${ids}${counted}) exceed what ${protocol} tolerates with n = ${n} (f = ${f}); pass --force to run it anyway`,
    );
  }
  return out;
}

function faultProblem(a: RunFault, protocol: ProtocolName, n: number, crashedReplicas: readonly number[]): string | undefined {
  if (!Number.isInteger(a.replica) || a.replica >= n) return `replica ${a.replica} does not exist (replicas are 0..${n - 1})`;
  if (crashedReplicas.includes(a.replica)) return `replica ${a.replica} is a crashed backup (--crashed): it is never started, so it cannot misbehave`;
  const fault = a.fault;
  switch (fault.kind) {
    case 'stopAfter':
      if (!Number.isInteger(fault.batches)) return `stopAfter counts batches: give an integer, not ${fault.batches}`;
      return undefined;
    case 'inTheDark': {
      const { f } = quorums(n);
      for (const v of fault.victims) {
        if (v >= n) return `victim ${v} does not exist (replicas are 0..${n - 1})`;
        if (v === a.replica) return 'a replica cannot keep itself in the dark';
      }
      if (new Set(fault.victims).size > f) return `a primary keeps at most f = ${f} replicas in the dark (paper Example 3.4); ${fault.victims.length} given`;
      return hooksProblem(protocol, fault.kind);
    }
    case 'equivocate':
      return hooksProblem(protocol, fault.kind);
    default:
      return undefined;
  }
}

function hooksProblem(protocol: ProtocolName, kind: string): string | undefined {
  return getProtocol(protocol).faults === undefined ? `protocol ${protocol} has no proposal hooks for '${kind}' (replica/byzantine.ts)` : undefined;
}

/** Validates flags into a full spec; throws RunSpecError naming every bad flag. */
export function parseRunFlags(flags: RunFlags): RunSpec {
  const parsed = flagSchema.safeParse(flags);
  if (!parsed.success) throw new RunSpecError(describeIssues(parsed.error));
  const o = parsed.data as ParsedRunFlags;
  const d = RUN_DEFAULTS;
  const n = o.replicas ?? d.replicas;
  const crashed = o.crashed ?? d.crashed;
  const issues: string[] = [];
  const { f } = quorums(n);
  if (crashed > n - 1) issues.push(`--crashed: ${crashed} crashed backups leave no replica to be the primary (n = ${n})`);
  else if (crashed > f && !o.force) {
    issues.push(`--crashed: ${crashed} exceeds what ${o.protocol} tolerates with n = ${n} (f = ${f}); pass --force to run it anyway`);
  }
  const clientProcs = o.clientProcs ?? d.clientProcs;
  if (o.loadTxns !== undefined && o.clients !== undefined)
    issues.push('--load-txns: give the load in transactions or --clients (batches outstanding), not both');
  if (o.loadTxns !== undefined && o.openLoop !== undefined) issues.push('--load-txns: a closed-loop load; --open-loop sets the rate instead');
  const clients = o.loadTxns !== undefined ? clientsForLoad(o.loadTxns, o.batch ?? d.batch, clientProcs) : (o.clients ?? d.clients);
  if (clients < clientProcs) issues.push(`--clients: ${clients} logical clients cannot fill ${clientProcs} client processes`);
  const basePort = o.basePort ?? d.basePort;
  if (basePort !== 0 && basePort < 1024) issues.push(`--base-port: ${basePort} is a privileged port; use 1024 or above, or 0 for free ports`);
  if (basePort !== 0 && basePort + n - 1 > 65_535) issues.push(`--base-port: ${basePort} + ${n} replicas runs past port 65535`);
  const checkpointInterval = o.checkpointInterval ?? d.checkpointInterval;
  const window = o.window ?? d.window;
  if (window < checkpointInterval) issues.push(`--window: the window (${window}) must hold at least one checkpoint interval (${checkpointInterval})`);
  const crashedReplicas = crashedBackups(n, crashed);
  const faults = parseRunFaults(o.faults ?? [], o.protocol as ProtocolName, n, crashedReplicas, o.force ?? false, issues);
  // `run --backend model` is modelled by harness/run-command.ts before this; a RunSpec always places real processes.
  if (o.backend === MODEL_BACKEND) issues.push('--backend: model starts no process: only `poe-bench run` itself runs a spec in the cost model');
  const placed = parseInfraFlags(o.backend ?? d.backend, flags);
  issues.push(...placed.issues);
  if (issues.length > 0) throw new RunSpecError(issues.join('\n'));
  const seed = o.seed ?? d.seed;
  const given: Record<string, ExtraValue> = Object.fromEntries(o.extra);
  // Every HotStuff result names its certificate rule (issue 10), the default included.
  const extra = o.protocol === 'hotstuff' ? hotstuffRecordedExtra(given) : given;
  return {
    protocol: o.protocol as ProtocolName,
    replicas: n,
    crashed,
    crashedReplicas,
    force: o.force ?? false,
    faults,
    batch: o.batch ?? d.batch,
    clients,
    clientProcs,
    warmupS: o.warmup ?? d.warmupS,
    durationS: o.duration ?? d.durationS,
    generator: (o.generator ?? d.generator) as KeyGeneratorKind,
    records: o.records ?? d.records,
    valueBytes: o.valueBytes ?? d.valueBytes,
    seed,
    keySeed: `poe-bench-run-${seed}`,
    backend: (o.backend ?? d.backend) as BackendName,
    link: placed.link,
    infra: placed.infra,
    host: d.host,
    basePort,
    nodeFlags: parseNodeFlags(o.nodeFlags ?? d.nodeFlags),
    ...(o.openLoop !== undefined ? { openLoopBatchesPerSec: o.openLoop } : {}),
    clientTimeoutMs: o.clientTimeoutMs ?? d.clientTimeoutMs,
    viewChangeTimeoutMs: o.viewChangeTimeoutMs ?? d.viewChangeTimeoutMs,
    checkpointInterval,
    window,
    extra,
    ...(o.loadTxns !== undefined ? { loadTxns: o.loadTxns } : {}),
    // Zyzzyva's slow path and a faulty replica's effect are defined by their timeouts.
    clientTimeoutFixed: o.fixedClientTimeout ?? (o.clientTimeoutMs !== undefined || o.protocol === 'zyzzyva' || faults.length > 0),
    // A crashAt is placed relative to the window by time from the start (figure 11b): the window must open where it was planned.
    warmupFixed: o.fixedWarmup ?? faults.some((a) => a.fault.kind === 'crashAt'),
  };
}

type RunSpecInput = Partial<Omit<RunSpec, 'crashedReplicas' | 'keySeed'>>;

/** A spec (or part of one) as the run flags that give it, by table key (infra/params.ts). */
function runFlagValues(input: RunSpecInput): Record<string, unknown> {
  return {
    protocol: input.protocol,
    replicas: input.replicas,
    crashed: input.crashed,
    force: input.force,
    faults: input.faults?.map(formatReplicaFault),
    batch: input.batch,
    // A spec handed back (a runs.jsonl line replayed) carries clients derived from loadTxns: drop them.
    clients: input.loadTxns === undefined ? input.clients : undefined,
    clientProcs: input.clientProcs,
    warmup: input.warmupS,
    duration: input.durationS,
    generator: input.generator,
    records: input.records,
    valueBytes: input.valueBytes,
    seed: input.seed,
    openLoop: input.openLoopBatchesPerSec,
    clientTimeoutMs: input.clientTimeoutMs,
    viewChangeTimeoutMs: input.viewChangeTimeoutMs,
    checkpointInterval: input.checkpointInterval,
    window: input.window,
    extra: input.extra === undefined ? undefined : Object.entries(input.extra),
    backend: input.backend,
    basePort: input.basePort,
    nodeFlags: input.nodeFlags === undefined ? undefined : formatNodeFlags(input.nodeFlags),
    link: input.link,
    hosts: input.infra?.hosts,
    pin: input.infra?.pinCpus?.join(','),
    cpus: input.infra?.cpus,
    subnet: input.infra?.subnet,
    baseImage: input.infra?.baseImage,
    loadTxns: input.loadTxns,
    fixedClientTimeout: input.clientTimeoutFixed,
    fixedWarmup: input.warmupFixed,
  };
}

/** A spec from code (bench, tests): the same checks as flags. */
export function makeRunSpec(input: RunSpecInput & { protocol: ProtocolName }): RunSpec {
  const flags = { ...runFlagValues(input), extra: Object.entries(input.extra ?? {}).map(([k, v]) => `${k}=${v}`) };
  const defined = Object.fromEntries(
    Object.entries(flags)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => [k, typeof v === 'number' ? String(v) : v]),
  );
  return parseRunFlags(defined as RunFlags);
}

/** The `poe-bench run` flags that repeat this run: those that differ from the defaults. */
export function runReplayArgs(spec: RunSpec): string[] {
  return replayArgs('run', runFlagValues(spec));
}

/** `poe-bench run ...`: the command that repeats this run (printed as its replay line, kept in the manifest). */
export function runReplayCommand(spec: RunSpec): string {
  return replayLine(['run'], runReplayArgs(spec));
}

/** The replicas that take part (are started). */
export function liveReplicas(spec: RunSpec): number[] {
  const out: number[] = [];
  for (let i = 0; i < spec.replicas; i++) if (!spec.crashedReplicas.includes(i)) out.push(i);
  return out;
}

/** Replicas that are not correct: crashed backups and replicas with a fault, ascending. */
export function faultyReplicas(spec: Pick<RunSpec, 'crashedReplicas' | 'faults'>): number[] {
  return [...new Set([...spec.crashedReplicas, ...spec.faults.map((a) => a.replica)])].sort((a, b) => a - b);
}

/**
 * Correct replicas that a Byzantine primary may keep behind for as long as it stays: the
 * victims it keeps in the dark (paper Example 3.4, case 2), and the backups an equivocating
 * primary deceives (case 1; the second half of its backups, as replica/byzantine.ts's Equivocate
 * picks them). They learn of the batches they missed only through certified checkpoints (paper
 * §4(6)), so they may end up to a checkpoint interval behind: a run asks of their ledgers
 * agreement with the others, not convergence (as the simulator's in-the-dark scenario does).
 */
export function mayLagReplicas(spec: Pick<RunSpec, 'replicas' | 'crashedReplicas' | 'faults'>): number[] {
  const faulty = faultyReplicas(spec);
  const out = new Set<number>();
  for (const a of spec.faults) {
    if (a.fault.kind === 'inTheDark') for (const v of a.fault.victims) out.add(v);
    if (a.fault.kind === 'equivocate') {
      const backups = Array.from({ length: spec.replicas }, (_, i) => i).filter((i) => i !== a.replica);
      for (const v of backups.slice(Math.ceil(backups.length / 2))) out.add(v);
    }
  }
  return [...out].filter((id) => !faulty.includes(id)).sort((a, b) => a - b);
}

/** The faults replica `id` wraps its core with, in order (empty for a correct replica). */
export function faultsOf(spec: Pick<RunSpec, 'faults'>, id: number): FaultSpec[] {
  return spec.faults.filter((a) => a.replica === id).map((a) => a.fault);
}

/** `extra` for the processes: HotStuff's parallel leaders are the replicas that take part. */
export function processExtra(spec: RunSpec): Record<string, ExtraValue> {
  const extra: Record<string, ExtraValue> = {};
  if (spec.protocol === 'hotstuff') extra['leaders'] = liveReplicas(spec).join(',');
  return { ...extra, ...spec.extra };
}
