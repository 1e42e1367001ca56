/**
 * What a protocol module provides: its replica core, its client-side acceptance rule, and its
 * codec. One module per protocol (replica/poe.ts, pbft.ts, zyzzyva.ts, hotstuff.ts); the
 * registry in replica/protocols.ts maps names to modules.
 */
import type { CryptoProvider } from './crypto.js';
import type { ClientRequest } from './messages.js';
import type { ClientOutput, MessageCodec, Peer, ProtocolName, ReplicaCore, ReplicaDeps, ReplicaOptions, WireMessage } from './types.js';

/** A request a logical client has outstanding. The policy owns `policyState`. */
export interface PendingRequest {
  readonly request: ClientRequest;
  readonly digest: Buffer;
  readonly firstSentMs: number;
  /** How many times its timer fired. */
  timeouts: number;
  policyState?: unknown;
}

/** What a reply did to a pending request. */
export interface ReplyOutcome<M extends WireMessage> {
  /** Set when the protocol's acceptance rule is met. */
  readonly accepted?: { readonly k: number; readonly view: number; readonly digest: Buffer; readonly path: string };
  /** Messages the client sends in response (e.g. Zyzzyva's commit certificate). */
  readonly send?: readonly ClientOutput<M>[];
}

export interface ClientPolicyOptions {
  readonly n: number;
  /** Client machine id: replies are addressed to it. */
  readonly origin: number;
  readonly extra?: Readonly<Record<string, string | number | boolean>>;
  /** The crypto provider to verify replies with; absent: one made from extra.cryptoProvider (the simulator passes its counted one). */
  readonly crypto?: CryptoProvider;
}

/**
 * The client half of a protocol: where a request goes and when it counts as executed
 * (PoE: nf identical INFORMs; PBFT: f+1 matching replies; Zyzzyva: n, or nf after the commit
 * certificate; HotStuff: its rule).
 */
export interface ClientPolicy<M extends WireMessage> {
  /** The replicas a fresh request is sent to (normally the primary the client believes in). */
  targets(request: ClientRequest): readonly Peer[];
  /** Which request a message answers, or undefined if it is not a reply. */
  replyKey(msg: M): { readonly clientId: number; readonly reqNo: number } | undefined;
  /** A reply from replica `from` for pending request `p`. */
  onReply(p: PendingRequest, from: Peer, msg: M, nowMs: number): ReplyOutcome<M> | undefined;
  /**
   * The request's timer fired. Returns what to send; the usual answer is to broadcast the
   * request to all replicas (paper §3.1: "it can broadcast its request to all replicas").
   */
  onTimeout(p: PendingRequest, nowMs: number): readonly ClientOutput<M>[];
}

export interface ProtocolModule<M extends WireMessage> {
  readonly name: ProtocolName;
  readonly codec: MessageCodec<M>;
  createReplica(options: ReplicaOptions, deps: ReplicaDeps): ReplicaCore<M>;
  createClientPolicy(options: ClientPolicyOptions): ClientPolicy<M>;
  /** How the Byzantine wrappers recognise and forge this protocol's proposals (replica/byzantine.ts). */
  readonly faults?: FaultHooks<M>;
}

/** What a protocol module tells the wrappers about its proposals. */
export interface FaultHooks<M extends WireMessage> {
  /** The (view, k) of a primary's proposal message, or undefined for any other message. */
  proposalSlot(msg: M): { readonly view: number; readonly k: number } | undefined;
  /** Proposal `target` (same view and k) carrying the batch of proposal `source`. */
  withBatchOf(target: M, source: M): M;
}

/**
 * What a protocol tells the lying-backup wrappers (replica/byzantine.ts: forgeViewChange,
 * conflictingVotes): one `Liar` per Byzantine replica, which remembers what that replica saw and
 * forges from it. Implemented per protocol in replica/byzantine-hooks-<protocol>.ts, looked up by
 * name in replica/byzantine-hooks.ts (not through ProtocolModule, so the protocol modules stay
 * unaware of them).
 */
export interface AdversaryHooks<M extends WireMessage> {
  /** A fresh liar for replica `id` of `n`, holding that replica's own keys (`deps`). */
  liar(id: number, n: number, deps: ReplicaDeps): Liar<M>;
}

export interface Liar<M extends WireMessage> {
  /** Sees every message the replica receives (`incoming`) or sends. */
  observe(msg: M, incoming: boolean): void;
  /** The view an outgoing view-change message of this replica asks for, or undefined for any other message. */
  viewChangeView(msg: M): number | undefined;
  /**
   * The view-change message with made-up content: certificates or executions the replica does
   * not have, claimed for slots it knows others committed, with genuinely client-signed batches
   * it saw elsewhere. Undefined when there is nothing to forge from yet.
   */
  forgeViewChange(msg: M): M | undefined;
  /** An old view-change message re-sent as if current (stale checkpoint, stale claims), or undefined. */
  staleViewChange(msg: M): M | undefined;
  /** For an outgoing vote: the same vote (same slot, signed by this replica) for another value; undefined for other messages. */
  conflictingVote(msg: M): M | undefined;
}
