/**
 * The shape every protocol core has (DESIGN.md "One protocol core, many worlds").
 *
 * A core is a deterministic state machine: `step(input, nowMs)` takes one input (a decoded,
 * already authenticated message, a timer that fired, or the start signal) and returns outputs
 * (sends, broadcasts, timers, metric events). It does no I/O, reads no clock and draws no
 * randomness; the same core runs over TCP in `infra/process/replica-main.ts` and in virtual time in
 * `infra/sim`. This is etcd raft's Step/Ready and TigerBeetle's replica, in TypeScript.
 */
import type { CryptoProvider, Signer, Verifier } from './crypto.js';
import type { Ledger } from './ledger.js';
import type { YcsbStore } from './store.js';

export type ProtocolName = 'poe' | 'pbft' | 'zyzzyva' | 'hotstuff';
export const PROTOCOLS: readonly ProtocolName[] = ['poe', 'pbft', 'zyzzyva', 'hotstuff'];

/**
 * A peer address. Replicas are 0..n-1; client machines (processes that multiplex many
 * logical clients) are CLIENT_PEER_BASE + origin, so one number routes any message.
 */
export type Peer = number;
export const CLIENT_PEER_BASE = 1 << 16;
export const clientPeer = (origin: number): Peer => CLIENT_PEER_BASE + origin;
export const isClientPeer = (peer: Peer): boolean => peer >= CLIENT_PEER_BASE;
export const clientOrigin = (peer: Peer): number => peer - CLIENT_PEER_BASE;

/** Every message has a numeric type; the codec of its protocol knows the rest. */
export interface WireMessage {
  readonly type: number;
}

/** n replicas tolerate f = floor((n-1)/3) faults; nf = n - f (DESIGN.md "Protocols"). */
export interface Quorums {
  readonly n: number;
  readonly f: number;
  readonly nf: number;
}

export function quorums(n: number): Quorums {
  if (!Number.isInteger(n) || n < 4) throw new RangeError(`n must be an integer >= 4, got ${n}`);
  const f = Math.floor((n - 1) / 3);
  return { n, f, nf: n - f };
}

/** The primary of view v is replica v mod n (paper §3.1). */
export const primaryOf = (view: number, n: number): number => view % n;

// ---------------------------------------------------------------------------------------
// Core inputs and outputs

export type ReplicaInput<M extends WireMessage> =
  | { readonly kind: 'start' }
  | { readonly kind: 'message'; readonly from: Peer; readonly msg: M }
  | { readonly kind: 'timer'; readonly name: string };

/** Metric and trace events a core reports; the runtime counts them, the simulator checks them. */
export type ReplicaEvent =
  | { readonly name: 'executed'; readonly k: number; readonly view: number; readonly txns: number }
  | { readonly name: 'checkpointStable'; readonly k: number }
  | { readonly name: 'viewChangeStarted'; readonly view: number }
  | { readonly name: 'viewEntered'; readonly view: number }
  | { readonly name: 'rollback'; readonly fromK: number; readonly toK: number }
  | { readonly name: 'rejected'; readonly reason: string; readonly from: Peer };

export type ReplicaOutput<M extends WireMessage> =
  /** To one replica or client machine. */
  | { readonly kind: 'send'; readonly to: Peer; readonly msg: M }
  /** To every other replica; replicas never send to themselves (paper §3.5 (1)). */
  | { readonly kind: 'broadcast'; readonly msg: M }
  /** (Re)arm the named timer: it fires once, afterMs from now, unless cancelled or re-armed. */
  | { readonly kind: 'setTimer'; readonly name: string; readonly afterMs: number }
  | { readonly kind: 'cancelTimer'; readonly name: string }
  | { readonly kind: 'event'; readonly event: ReplicaEvent };

export interface ReplicaStatus {
  readonly id: number;
  readonly view: number;
  /** Highest sequence number executed, in order. */
  readonly executedK: number;
  /** Highest stable checkpoint. */
  readonly stableK: number;
  /** True while a view change is in progress. */
  readonly inViewChange: boolean;
  /** Entries held in the protocol's log (bounded by the window). */
  readonly logEntries: number;
}

export interface ReplicaCore<M extends WireMessage> {
  readonly id: number;
  step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[];
  /** The ledger of executed batches (paper §4(6)); safety checks compare these. */
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  status(): ReplicaStatus;
}

export interface ReplicaOptions {
  readonly id: number;
  readonly n: number;
  /** A checkpoint every this many sequence numbers (paper §5: 600). */
  readonly checkpointIntervalK: number;
  /** Sequence numbers in flight above the last stable checkpoint (watermark window). */
  readonly windowK: number;
  /** YCSB table size (paper §5: 600K) and bytes per value. */
  readonly records: number;
  readonly valueBytes: number;
  /** How long a backup waits for progress on a request before it suspects the primary. */
  readonly viewChangeTimeoutMs: number;
  /** Protocol-specific switches, e.g. HotStuff's `mode`. */
  readonly extra?: Readonly<Record<string, string | number | boolean>>;
}

export const DEFAULT_REPLICA_OPTIONS = {
  checkpointIntervalK: 600,
  windowK: 1200,
  records: 600_000,
  valueBytes: 64,
  viewChangeTimeoutMs: 2000,
} as const;

/** Keys a replica holds: its own signer, everybody's verifiers. */
export interface ReplicaDeps {
  readonly crypto: CryptoProvider;
  readonly signer: Signer;
  readonly replicaVerifiers: readonly Verifier[];
  /** The verifier of client machine `origin`, or undefined for an unknown client. */
  clientVerifier(origin: number): Verifier | undefined;
}

// ---------------------------------------------------------------------------------------
// Client side

export type ClientInput<M extends WireMessage> =
  | { readonly kind: 'start' }
  | { readonly kind: 'message'; readonly from: Peer; readonly msg: M }
  | { readonly kind: 'timer'; readonly name: string };

/** A batch a client accepted by its protocol's own rule (DESIGN.md "Metrics"). */
export interface AcceptedBatch {
  readonly clientId: number;
  readonly reqNo: number;
  readonly txns: number;
  /** When the batch was first sent (or, in open loop, was meant to be sent). */
  readonly firstSentMs: number;
  readonly acceptedMs: number;
  /** The position the client was told: sequence number, view and batch digest. */
  readonly k: number;
  readonly view: number;
  readonly digest: Buffer;
  /** Which rule accepted it, e.g. 'fast' or 'slow' for Zyzzyva. */
  readonly path: string;
}

export type ClientOutput<M extends WireMessage> =
  | { readonly kind: 'send'; readonly to: Peer; readonly msg: M }
  /** To every replica. */
  | { readonly kind: 'broadcast'; readonly msg: M }
  | { readonly kind: 'setTimer'; readonly name: string; readonly afterMs: number }
  | { readonly kind: 'cancelTimer'; readonly name: string }
  | { readonly kind: 'accepted'; readonly batch: AcceptedBatch }
  | { readonly kind: 'event'; readonly event: ClientEvent };

export type ClientEvent =
  | { readonly name: 'timeout'; readonly clientId: number; readonly reqNo: number }
  | { readonly name: 'rejected'; readonly reason: string; readonly from: Peer };

export interface MessageCodec<M extends WireMessage> {
  encode(msg: M): Buffer;
  /** Throws CodecError, and only CodecError, on any malformed input. */
  decode(frame: Buffer): M;
}
