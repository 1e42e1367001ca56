/**
 * What one simulation is: the protocol, the cluster, the workload, the network and the faults,
 * with the defaults `poe-bench sim` uses. `simArgs` turns a configuration back into the
 * command-line flags that reproduce it, which is what every failing run prints as its replay
 * line (STYLE.md: "you can reproduce this failure with seed=...").
 */
import type { KeyGeneratorKind } from '../../client/generators.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import { clientOrigin, clientPeer, isClientPeer, type Peer, type WireMessage } from '../../replica/types.js';
import { DEFAULT_NETWORK, type DelaySpec, type LinkOverride, type Partition } from './network.js';

export type ExtraValue = string | number | boolean;

/** A replica that stops (drops every input, fires no timer) at `atMs` of virtual time. */
export interface CrashSpec {
  readonly replica: number;
  readonly atMs: number;
}

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
  readonly delay: DelaySpec;
  readonly links: readonly LinkOverride[];
  readonly dropProbability: number;
  readonly duplicateProbability: number;
  readonly partitions: readonly Partition[];
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
  /** Stop the moment the online checker finds a violation (TigerBeetle: fail fast). */
  readonly stopOnViolation: boolean;
}

/** What a caller must say; everything else has a default. `module` bypasses the registry (tests). */
export type SimInput = Partial<SimConfig> & Pick<SimConfig, 'protocol' | 'n' | 'seed' | 'batches'> & {
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
  delay: DEFAULT_NETWORK.delay,
  links: [],
  dropProbability: 0,
  duplicateProbability: 0,
  partitions: [],
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

/** `--extra mode=chained`: numbers and booleans keep their type. */
export function parseExtra(s: string): [string, ExtraValue] {
  const i = s.indexOf('=');
  if (i <= 0) throw new RangeError(`'${s}' is not KEY=VALUE`);
  const key = s.slice(0, i);
  const raw = s.slice(i + 1);
  if (raw === 'true' || raw === 'false') return [key, raw === 'true'];
  if (raw !== '' && Number.isFinite(Number(raw))) return [key, Number(raw)];
  return [key, raw];
}

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
  for (const c of config.crashes) args.push('--crash', formatCrash(c));
  opt('--client-timeout-ms', config.requestTimeoutMs, d.requestTimeoutMs);
  opt('--view-change-timeout-ms', config.viewChangeTimeoutMs, d.viewChangeTimeoutMs);
  opt('--checkpoint-interval', config.checkpointIntervalK, d.checkpointIntervalK);
  opt('--window', config.windowK, d.windowK);
  opt('--records', config.records, d.records);
  opt('--value-bytes', config.valueBytes, d.valueBytes);
  opt('--max-time-ms', config.maxTimeMs, d.maxTimeMs);
  opt('--max-events', config.maxEvents, d.maxEvents);
  for (const [k, v] of Object.entries(config.extra)) args.push('--extra', `${k}=${String(v)}`);
  if (config.crashed > 0 && config.crashed > Math.floor((config.n - 1) / 3)) args.push('--force');
  if (!config.drain) args.push('--no-drain');
  return args;
}

const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** `poe-bench sim ...`: the command that replays this configuration. */
export function replayCommand(config: SimConfig): string {
  const line = `poe-bench sim ${simArgs(config).map(shellQuote).join(' ')}`;
  return config.links.length > 0 ? `${line}  # plus ${config.links.length} per-link delay override(s) set in code` : line;
}
