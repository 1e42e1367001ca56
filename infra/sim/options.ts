/**
 * What one simulation is: the protocol, the cluster, the workload, the network and the faults,
 * with the defaults `poe-bench sim` uses. `simArgs` turns a configuration back into the
 * command-line flags that reproduce it, which is what every failing run prints as its replay
 * line (STYLE.md: "you can reproduce this failure with seed=...").
 */
import type { KeyGeneratorKind } from '../../client/generators.js';
import { FaultConfigError, formatReplicaFault, parseFault, type ReplicaFault } from '../../replica/byzantine.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import { clientOrigin, clientPeer, isClientPeer, type Peer, type WireMessage } from '../../replica/types.js';
import { DEFAULT_NETWORK, type DelaySpec, type LinkOverride, type Partition } from './network.js';

export type { ExtraValue } from '../flags.js';
import type { ExtraValue } from '../flags.js';

/** A replica that stops (drops every input, fires no timer) at `atMs` of virtual time. */
export interface CrashSpec {
  readonly replica: number;
  readonly atMs: number;
}

/**
 * A crash or Byzantine behaviour of one replica (replica/byzantine.ts). Several for the same
 * replica compose in the order given: the first wraps the core, the next wraps that.
 */
export type FaultAssignment = ReplicaFault;

export interface SimConfig {
  /** A registered protocol name (replica/protocols.ts). */
  readonly protocol: string;
  /** Replicas. */
  readonly n: number;
  /** The one seed every random choice of the run derives from. */
  readonly seed: number;
  /** Total batches the clients issue (M); the run is done when all are accepted. */
  readonly batches: number;
  /** Client machines, and logical clients (C) in each, one batch outstanding per logical client. */
  readonly clientMachines: number;
  readonly clients: number;
  /** Writes per batch (paper: 100; smaller by default here to keep simulations fast). */
  readonly batchSize: number;
  readonly keyGenerator: KeyGeneratorKind;
  /**
   * Silent backups from the start: the highest-numbered replicas, never the primary of view 0
   * (DESIGN.md figures 10, 11a, 12: "n-3f backups crashed").
   */
  readonly crashed: number;
  /** Further replicas that crash during the run. */
  readonly crashes: readonly CrashSpec[];
  /** Replicas wrapped in a crash or Byzantine behaviour; they count as faulty in every check. */
  readonly faults: readonly FaultAssignment[];
  readonly delay: DelaySpec;
  readonly links: readonly LinkOverride[];
  readonly dropProbability: number;
  readonly duplicateProbability: number;
  readonly partitions: readonly Partition[];
  /** From this virtual time on, no message is lost or duplicated (undefined: only in the settle phase). */
  readonly healAtMs: number | undefined;
  readonly requestTimeoutMs: number;
  readonly viewChangeTimeoutMs: number;
  readonly checkpointIntervalK: number;
  readonly windowK: number;
  readonly records: number;
  readonly valueBytes: number;
  /** Stop when virtual time passes this, or after this many events, whichever is first. */
  readonly maxTimeMs: number;
  readonly maxEvents: number;
  /** Protocol switches passed to replicas and client policies as `extra` (e.g. HotStuff's mode). */
  readonly extra: Readonly<Record<string, ExtraValue>>;
  /** After the clients are done, deliver the messages still in flight (no timers) before counting. */
  readonly drain: boolean;
  /**
   * The settle phase: once the clients are done and the last partition has healed, the network
   * stops dropping and duplicating, and if the non-faulty replicas' ledgers differ (height or
   * head), the run goes on with timers for up to this much virtual time until they agree, so
   * replicas left behind catch up by their protocol's own means. Not converging is a violation
   * (DESIGN.md: "the non-faulty replicas converge once faults stop"). 0 turns it off, and with
   * it the requirement: an accepted batch may then be missing from a lagging replica's ledger
   * (never replaced), e.g. while a Byzantine primary that keeps replicas in the dark stays.
   */
  readonly settleMs: number;
  /** Stop the moment the online checker finds a violation (TigerBeetle: fail fast). */
  readonly stopOnViolation: boolean;
}

/** What a caller must say; everything else has a default. `module` bypasses the registry (tests). */
export type SimInput = Partial<SimConfig> &
  Pick<SimConfig, 'protocol' | 'n' | 'seed' | 'batches'> & {
    readonly module?: ProtocolModule<WireMessage>;
    /** Names for message type ids in `messagesByType`; registered protocols have theirs. */
    readonly typeNames?: ReadonlyMap<number, string>;
  };

export const SIM_DEFAULTS = {
  clientMachines: 1,
  clients: 8,
  batchSize: 10,
  keyGenerator: 'ycsb',
  crashed: 0,
  crashes: [],
  faults: [],
  delay: DEFAULT_NETWORK.delay,
  links: [],
  dropProbability: 0,
  duplicateProbability: 0,
  partitions: [],
  healAtMs: undefined,
  // Virtual latency is a few network hops of ~1.5 ms, so these leave ample slack in fault-free
  // runs while keeping runs with crashes (Zyzzyva's slow path waits one client timeout per
  // batch) short in virtual time.
  requestTimeoutMs: 200,
  viewChangeTimeoutMs: 500,
  // Small, so that the compliance suite's runs of 1000-2000 batches cross many checkpoints.
  checkpointIntervalK: 50,
  windowK: 200,
  records: 1000,
  valueBytes: 16,
  maxTimeMs: 3_600_000,
  maxEvents: 50_000_000,
  extra: {},
  drain: true,
  // Long enough for PoE's and PBFT's view changes with a few rounds of exponential backoff from
  // the 500 ms default, and for fetching through several checkpoint intervals.
  settleMs: 60_000,
  stopOnViolation: true,
} as const satisfies Omit<SimConfig, 'protocol' | 'n' | 'seed' | 'batches'>;

export function resolveSimConfig(input: SimInput): SimConfig {
  const { module, typeNames, ...rest } = input;
  void module;
  void typeNames;
  const defined = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined)) as Partial<SimConfig>;
  return { ...SIM_DEFAULTS, ...defined } as SimConfig;
}

/** The silent backups for `crashed` = K: replicas n-1, n-2, ..., n-K (ascending). */
export function silentBackups(n: number, crashed: number): number[] {
  if (!Number.isInteger(crashed) || crashed < 0 || crashed > n - 1) {
    throw new RangeError(`crashed must be an integer in [0, ${n - 1}], got ${crashed}`);
  }
  const out: number[] = [];
  for (let i = n - crashed; i < n; i++) out.push(i);
  return out;
}

// ---------------------------------------------------------------------------------------
// Flags: the configuration as `poe-bench sim` arguments and back

/** A node in flags: replicas by number, client machines as `c<origin>`. */
export function formatPeer(p: Peer): string {
  return isClientPeer(p) ? `c${clientOrigin(p)}` : String(p);
}

export function parsePeer(s: string): Peer {
  const m = /^(c?)(\d+)$/.exec(s.trim());
  if (!m) throw new RangeError(`'${s}' is not a replica number or a client machine c<origin>`);
  return m[1] ? clientPeer(Number(m[2])) : Number(m[2]);
}

/** `--partition 2,3@1000-3000`: replicas 2 and 3 cut off from the rest during [1000, 3000) ms. */
export function formatPartition(p: Partition): string {
  return `${p.nodes.map(formatPeer).join(',')}@${p.fromMs}-${p.toMs}`;
}

export function parsePartition(s: string): Partition {
  const m = /^([^@]+)@(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)$/.exec(s.trim());
  if (!m) throw new RangeError(`'${s}' is not NODES@FROM-TO (e.g. 2,3@1000-3000)`);
  const nodes = m[1]!.split(',').map(parsePeer);
  const fromMs = Number(m[2]);
  const toMs = Number(m[3]);
  if (toMs < fromMs) throw new RangeError(`'${s}': the partition ends before it starts`);
  return { nodes, fromMs, toMs };
}

/** `--crash 0@500`: replica 0 crashes at 500 ms. */
export function formatCrash(c: CrashSpec): string {
  return `${c.replica}@${c.atMs}`;
}

export function parseCrash(s: string): CrashSpec {
  const m = /^(\d+)@(\d+(?:\.\d+)?)$/.exec(s.trim());
  if (!m) throw new RangeError(`'${s}' is not REPLICA@TIME_MS (e.g. 0@500)`);
  return { replica: Number(m[1]), atMs: Number(m[2]) };
}

/** A fault as `parseFault` (replica/byzantine.ts) reads it: silent, stopAfter:900, inTheDark:2,3, ... */

export function parseFaultAssignment(s: string): FaultAssignment {
  const m = /^(\d+)=(.+)$/.exec(s.trim());
  if (!m) throw new FaultConfigError(`'${s}' is not REPLICA=FAULT (e.g. 0=equivocate, 0=inTheDark:3, 0=stopAfter:50)`);
  return { replica: Number(m[1]), fault: parseFault(m[2]!) };
}

/**
 * Why a fault assignment cannot run in a cluster of n, or undefined: the replica and the
 * victims must exist, and a replica cannot keep itself in the dark.
 */
export function faultAssignmentProblem(a: FaultAssignment, n: number): string | undefined {
  if (!Number.isInteger(a.replica) || a.replica < 0 || a.replica >= n) return `fault on replica ${a.replica}: replicas are 0..${n - 1}`;
  if (a.fault.kind === 'inTheDark') {
    for (const v of a.fault.victims) {
      if (!Number.isInteger(v) || v < 0 || v >= n) return `fault ${formatReplicaFault(a)}: victim ${v} does not exist (replicas are 0..${n - 1})`;
      if (v === a.replica) return `fault ${formatReplicaFault(a)}: a replica cannot keep itself in the dark`;
    }
  }
  return undefined;
}

/** The replicas a configuration makes faulty: silent backups, crashes and faults, ascending. */
export function faultyReplicas(config: Pick<SimConfig, 'n' | 'crashed' | 'crashes' | 'faults'>): number[] {
  const ids = new Set<number>();
  for (let i = config.n - config.crashed; i < config.n; i++) ids.add(i);
  for (const c of config.crashes) ids.add(c.replica);
  for (const a of config.faults) ids.add(a.replica);
  return [...ids].sort((a, b) => a - b);
}

export { parseExtra } from '../flags.js';

/**
 * The flags that reproduce `config`: the required ones always, the rest only where they differ
 * from the defaults, so replay lines stay short. Link overrides have no flag; a configuration
 * with them says so in its replay line.
 */
export function simArgs(config: SimConfig): string[] {
  const args = ['--protocol', config.protocol, '--replicas', String(config.n), '--batches', String(config.batches), '--seed', String(config.seed)];
  const d = SIM_DEFAULTS;
  const opt = (flag: string, value: number | string, def: number | string): void => {
    if (value !== def) args.push(flag, String(value));
  };
  opt('--crashed', config.crashed, d.crashed);
  opt('--clients', config.clients, d.clients);
  opt('--client-machines', config.clientMachines, d.clientMachines);
  opt('--batch', config.batchSize, d.batchSize);
  opt('--keys', config.keyGenerator, d.keyGenerator);
  opt('--drop', config.dropProbability, d.dropProbability);
  opt('--dup', config.duplicateProbability, d.duplicateProbability);
  opt('--delay-ms', config.delay.baseMs, d.delay.baseMs);
  opt('--jitter-ms', config.delay.jitterMs, d.delay.jitterMs);
  opt('--tail-ms', config.delay.tailMeanMs, d.delay.tailMeanMs);
  for (const p of config.partitions) args.push('--partition', formatPartition(p));
  if (config.healAtMs !== undefined) args.push('--heal-at-ms', String(config.healAtMs));
  for (const c of config.crashes) args.push('--crash', formatCrash(c));
  for (const a of config.faults) args.push('--fault', formatReplicaFault(a));
  opt('--client-timeout-ms', config.requestTimeoutMs, d.requestTimeoutMs);
  opt('--view-change-timeout-ms', config.viewChangeTimeoutMs, d.viewChangeTimeoutMs);
  opt('--checkpoint-interval', config.checkpointIntervalK, d.checkpointIntervalK);
  opt('--window', config.windowK, d.windowK);
  opt('--records', config.records, d.records);
  opt('--value-bytes', config.valueBytes, d.valueBytes);
  opt('--max-time-ms', config.maxTimeMs, d.maxTimeMs);
  opt('--max-events', config.maxEvents, d.maxEvents);
  for (const [k, v] of Object.entries(config.extra)) args.push('--extra', `${k}=${String(v)}`);
  if (faultyReplicas(config).length > Math.floor((config.n - 1) / 3)) args.push('--force');
  if (!config.drain) args.push('--no-drain');
  opt('--settle-ms', config.settleMs, d.settleMs);
  return args;
}

const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** `poe-bench sim ...`: the command that replays this configuration. */
export function replayCommand(config: SimConfig): string {
  const line = `poe-bench sim ${simArgs(config).map(shellQuote).join(' ')}`;
  return config.links.length > 0 ? `${line}  # plus ${config.links.length} per-link delay override(s) set in code` : line;
}
