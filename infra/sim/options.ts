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

import { paramDefault, replayArgs, replayLine, type ExtraValue } from '../param-table.js';

export type { ExtraValue };

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
  /** Replicas (n). */
  readonly replicas: number;
  /** The one seed every random choice of the run derives from. */
  readonly seed: number;
  /** Total batches the clients issue (M); the run is done when all are accepted. */
  readonly batches: number;
  /**
   * Client processes (client machines), and logical clients (C) in each, one batch outstanding
   * per logical client. (A real run's --clients counts them in total.)
   */
  readonly clientProcs: number;
  readonly clients: number;
  /** Writes per batch (paper: 100; smaller by default here to keep simulations fast). */
  readonly batch: number;
  readonly generator: KeyGeneratorKind;
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
  readonly clientTimeoutMs: number;
  readonly viewChangeTimeoutMs: number;
  readonly checkpointInterval: number;
  readonly window: number;
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

/**
 * The names SimConfig used before it took the run's names (issue 9): still accepted from code,
 * so older callers and tests keep working. New code uses the new names.
 */
export interface LegacySimNames {
  /** Use `replicas`. */
  readonly n?: number;
  /** Use `batch`. */
  readonly batchSize?: number;
  /** Use `clientTimeoutMs`. */
  readonly requestTimeoutMs?: number;
  /** Use `checkpointInterval`. */
  readonly checkpointIntervalK?: number;
  /** Use `window`. */
  readonly windowK?: number;
  /** Use `generator`. */
  readonly keyGenerator?: KeyGeneratorKind;
  /** Use `clientProcs`. */
  readonly clientMachines?: number;
}

const LEGACY_NAMES: Readonly<Record<keyof LegacySimNames, keyof SimConfig>> = {
  n: 'replicas',
  batchSize: 'batch',
  requestTimeoutMs: 'clientTimeoutMs',
  checkpointIntervalK: 'checkpointInterval',
  windowK: 'window',
  keyGenerator: 'generator',
  clientMachines: 'clientProcs',
};

/** What a caller must say (the replicas as `replicas` or the old `n`); everything else has a default. `module` bypasses the registry (tests). */
export type SimInput = Partial<SimConfig> &
  LegacySimNames &
  Pick<SimConfig, 'protocol' | 'seed' | 'batches'> & {
    readonly module?: ProtocolModule<WireMessage>;
    /** Names for message type ids in `messagesByType`; registered protocols have theirs. */
    readonly typeNames?: ReadonlyMap<number, string>;
    /** Compute crypto, or charge it without computing (simCryptoMode); default 'auto'. */
    readonly crypto?: SimCryptoRequest;
  };

/** How a simulation does its crypto: computed (SimCrypto: HMAC-SHA256, SHA-256) or charged (infra/sim/charged-crypto.ts). */
export type SimCryptoMode = 'computed' | 'charged';
export type SimCryptoRequest = SimCryptoMode | 'auto';

/** Faults that only stop or slow a replica: it never sends anything its protocol would not. */
const CRASH_FAULTS: ReadonlySet<string> = new Set(['silent', 'stopAfter', 'crashAt', 'slow']);

/** The Byzantine faults of a run: those that make a replica send what its protocol would not. */
export function byzantineFaults(faults: readonly FaultAssignment[]): FaultAssignment[] {
  return faults.filter((a) => !CRASH_FAULTS.has(a.fault.kind));
}

/**
 * Charged crypto answers honest callers as real crypto would but lets anyone forge, so it is
 * used only when no replica is Byzantine (issue 12 item 1): 'auto' charges in such runs and
 * computes in every other; 'computed' always computes; 'charged' in a run with a Byzantine
 * replica is refused, because forged signatures must fail to verify there.
 */
export function simCryptoMode(request: SimCryptoRequest | undefined, faults: readonly FaultAssignment[]): SimCryptoMode {
  const byzantine = byzantineFaults(faults);
  if (request === 'computed') return 'computed';
  if (byzantine.length === 0) return 'charged';
  if (request === 'charged') {
    throw new RangeError(
      `crypto 'charged' cannot run with Byzantine replicas (${byzantine.map(formatReplicaFault).join(' ')}): their forgeries must fail to verify, which needs computed crypto`,
    );
  }
  return 'computed';
}

/** A simulation's default, from the table of run parameters (infra/params.ts, which says why it differs from a real run's). */
const d = <T>(key: string): T => paramDefault('sim', key) as T;

export const SIM_DEFAULTS = {
  clientProcs: d<number>('clientProcs'),
  clients: d<number>('clients'),
  batch: d<number>('batch'),
  generator: d<KeyGeneratorKind>('generator'),
  crashed: d<number>('crashed'),
  crashes: [] as readonly CrashSpec[],
  faults: [] as readonly FaultAssignment[],
  delay: DEFAULT_NETWORK.delay,
  links: [] as readonly LinkOverride[],
  dropProbability: d<number>('drop'),
  duplicateProbability: d<number>('dup'),
  partitions: [] as readonly Partition[],
  healAtMs: undefined,
  clientTimeoutMs: d<number>('clientTimeoutMs'),
  viewChangeTimeoutMs: d<number>('viewChangeTimeoutMs'),
  checkpointInterval: d<number>('checkpointInterval'),
  window: d<number>('window'),
  records: d<number>('records'),
  valueBytes: d<number>('valueBytes'),
  maxTimeMs: d<number>('maxTimeMs'),
  maxEvents: d<number>('maxEvents'),
  extra: {} as Readonly<Record<string, ExtraValue>>,
  drain: d<boolean>('drain'),
  // Long enough for PoE's and PBFT's view changes with a few rounds of exponential backoff from
  // the 500 ms default, and for fetching through several checkpoint intervals.
  settleMs: d<number>('settleMs'),
  stopOnViolation: true,
} as const satisfies Omit<SimConfig, 'protocol' | 'replicas' | 'seed' | 'batches'>;

/** The replicas an input names, under the new name or the old. */
export function inputReplicas(input: Pick<SimInput, 'replicas' | 'n'>): number {
  const n = input.replicas ?? input.n;
  if (n === undefined) throw new RangeError('a simulation needs its number of replicas (replicas)');
  return n;
}

export function resolveSimConfig(input: SimInput): SimConfig {
  const { module, typeNames, crypto, ...rest } = input;
  void module;
  void typeNames;
  void crypto;
  const defined: Record<string, unknown> = Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
  for (const [old, now] of Object.entries(LEGACY_NAMES)) {
    if (old in defined) {
      if (!(now in defined)) defined[now] = defined[old];
      delete defined[old];
    }
  }
  return { ...SIM_DEFAULTS, ...defined, replicas: inputReplicas(input) } as SimConfig;
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
export function faultyReplicas(config: Pick<SimConfig, 'replicas' | 'crashed' | 'crashes' | 'faults'>): number[] {
  const ids = new Set<number>();
  for (let i = config.replicas - config.crashed; i < config.replicas; i++) ids.add(i);
  for (const c of config.crashes) ids.add(c.replica);
  for (const a of config.faults) ids.add(a.replica);
  return [...ids].sort((a, b) => a - b);
}

export { parseExtra } from '../param-table.js';

/** The configuration as `poe-bench sim` flag values, by table key (infra/params.ts). */
export function simFlagValues(config: SimConfig): Record<string, unknown> {
  return {
    protocol: config.protocol,
    replicas: config.replicas,
    batches: config.batches,
    seed: config.seed,
    crashed: config.crashed,
    force: faultyReplicas(config).length > Math.floor((config.replicas - 1) / 3),
    faults: config.faults.map(formatReplicaFault),
    batch: config.batch,
    clients: config.clients,
    clientProcs: config.clientProcs,
    generator: config.generator,
    records: config.records,
    valueBytes: config.valueBytes,
    clientTimeoutMs: config.clientTimeoutMs,
    viewChangeTimeoutMs: config.viewChangeTimeoutMs,
    checkpointInterval: config.checkpointInterval,
    window: config.window,
    extra: Object.entries(config.extra),
    drop: config.dropProbability,
    dup: config.duplicateProbability,
    delayMs: config.delay.baseMs,
    jitterMs: config.delay.jitterMs,
    tailMs: config.delay.tailMeanMs,
    partition: config.partitions.map(formatPartition),
    healAtMs: config.healAtMs,
    crash: config.crashes.map(formatCrash),
    maxTimeMs: config.maxTimeMs,
    maxEvents: config.maxEvents,
    drain: config.drain,
    settleMs: config.settleMs,
  };
}

/**
 * The flags that reproduce `config`: the required ones always, the rest only where they differ
 * from the defaults, so replay lines stay short. Link overrides have no flag; a configuration
 * with them says so in its replay line.
 */
export function simArgs(config: SimConfig): string[] {
  return replayArgs('sim', simFlagValues(config));
}

/** `poe-bench sim ...`: the command that replays this configuration. */
export function replayCommand(config: SimConfig): string {
  const line = replayLine(['sim'], simArgs(config));
  return config.links.length > 0 ? `${line}  # plus ${config.links.length} per-link delay override(s) set in code` : line;
}
