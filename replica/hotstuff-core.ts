/**
 * What HotStuff's two modes share (hotstuff.ts's header describes the protocol, after the PoE
 * paper §4(8) and Yin et al., PODC 2019): the options (mode, certificate rule, leaders), request
 * intake and deduplication, execution strictly in k order, replies, checkpoints, and the vote
 * collector a leader fills. Outputs go to the shared Outbox (replica/outbox.ts).
 */
import { CheckpointTracker, type Execution, Executor, hex } from './common.js';
import type { CryptoProvider, Signer, Verifier } from './crypto.js';
import type { HotStuffMessage, HotStuffRule, HsReply, Phase, QcSignature, QuorumCert } from './hotstuff-wire.js';
import { genesisQcProblem, makeReply, paperQcProblem, qcProblem } from './hotstuff-wire.js';
import { Ledger } from './ledger.js';
import type { Checkpoint, ClientRequest } from './messages.js';
import { isNoop, MSG_CHECKPOINT, MSG_REQUEST } from './messages.js';
import { Outbox } from './outbox.js';
import { YcsbStore } from './store.js';
import type { Peer, Quorums, ReplicaCore, ReplicaDeps, ReplicaInput, ReplicaOptions, ReplicaOutput, ReplicaStatus } from './types.js';
import { clientPeer, isClientPeer, quorums } from './types.js';

export type HotStuffMode = 'parallel' | 'chained';

export function hotstuffMode(extra: ReplicaOptions['extra']): HotStuffMode {
  const mode = extra?.['mode'] ?? 'parallel';
  if (mode !== 'parallel' && mode !== 'chained') throw new RangeError(`hotstuff: extra.mode must be 'parallel' or 'chained', got ${String(mode)}`);
  return mode;
}

/**
 * The certificate rule, `extra.hotstuffRule` (hotstuff.ts's header): 'paper' (the default, as
 * the PoE paper ran HotStuff) or 'qc' (forwarded quorum certificates, as Yin et al. specify).
 */
export function hotstuffRule(extra: ReplicaOptions['extra']): HotStuffRule {
  const rule = extra?.['hotstuffRule'] ?? 'paper';
  if (rule !== 'paper' && rule !== 'qc') throw new RangeError(`hotstuff: extra.hotstuffRule must be 'paper' or 'qc', got ${String(rule)}`);
  return rule;
}

/** How parallel mode deals slots to leaders, `extra.hotstuffSlots` (hotstuff-owners.ts). */
export type HotStuffSlots = 'byLoad' | 'roundRobin';

export function hotstuffSlots(extra: ReplicaOptions['extra']): HotStuffSlots {
  const slots = extra?.['hotstuffSlots'] ?? 'byLoad';
  if (slots !== 'byLoad' && slots !== 'roundRobin')
    throw new RangeError(`hotstuff: extra.hotstuffSlots must be 'byLoad' or 'roundRobin', got ${String(slots)}`);
  return slots;
}

/**
 * The parallel-mode leaders: `extra.leaders` as comma-separated replica ids (or one number),
 * sorted so that every node derives the same slot owners; default every replica.
 */
export function hotstuffLeaders(n: number, extra: ReplicaOptions['extra']): number[] {
  const raw = extra?.['leaders'];
  if (raw === undefined || raw === '') return Array.from({ length: n }, (_, i) => i);
  const ids =
    typeof raw === 'number'
      ? [raw]
      : String(raw)
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '')
          .map(Number);
  const unique = [...new Set(ids)].sort((a, b) => a - b);
  if (unique.length === 0 || unique.length !== ids.length || unique.some((id) => !Number.isInteger(id) || id < 0 || id >= n)) {
    throw new RangeError(`hotstuff: extra.leaders must be distinct replica ids in [0, ${n}), got '${String(raw)}'`);
  }
  return unique;
}

/** Requests a leader queues before it has a slot for them (closed-loop clients bound it too). */
export const PENDING_REQUESTS_MAX = 1 << 16;
/** Client requests a chained backup waits on before suspecting the leader. */
export const AWAITED_REQUESTS_MAX = 1 << 16;
/** Proposals held until their parent arrives (the network may reorder). */
export const ORPHANS_MAX = 256;
/** The view-change timer doubles per failed view, up to 2^6 = 64 times (replica/backoff.ts). */
export const BACKOFF_EXP_MAX_HOTSTUFF = 6;
/**
 * Chained mode: heights the chain may run past the window. A batch at the window's top only
 * commits once three more blocks certify it, and the checkpoint that moves the window needs it
 * executed.
 */
export const CHAIN_SLACK_K = 3;
/** NEW-VIEWs for views further ahead than this are ignored (bounds the memory a sender can take). */
export const NEW_VIEW_AHEAD_MAX = 64;
export const VIEW_CHANGE_TIMER = 'view-change';

/** A FIFO of client requests with O(1) removal at the head. */
export class RequestQueue {
  private items: ClientRequest[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(req: ClientRequest): void {
    this.items.push(req);
  }

  shift(): ClientRequest | undefined {
    if (this.head >= this.items.length) return undefined;
    const req = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return req;
  }
}

/** Votes a leader collects for one (phase, view, k, digest); `done` once the QC is formed. */
export interface VoteCollector {
  readonly phase: Phase;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly sigs: Map<number, Buffer>;
  done: boolean;
}

export function newCollector(phase: Phase, view: number, k: number, digest: Buffer): VoteCollector {
  return { phase, view, k, digest, sigs: new Map(), done: false };
}

/** The signatures of every 'paper' certificate: none, one shared frozen list rather than one per certificate. */
const NO_SIGNATURES: readonly QcSignature[] = Object.freeze([]);

/**
 * The certificate a leader forms from nf votes it verified: under 'qc' the signatures it
 * forwards; under 'paper' none (the leader forwards no votes, paper §4(8)).
 */
export function collectorQC(c: VoteCollector, rule: HotStuffRule): QuorumCert {
  const sigs = rule === 'qc' ? [...c.sigs].map(([replica, signature]) => ({ replica, signature })) : NO_SIGNATURES;
  return { phase: c.phase, view: c.view, k: c.k, digest: c.digest, sigs };
}

/** (view, k) rounds are ordered lexicographically. */
export function rankAbove(view: number, k: number, than: { readonly view: number; readonly k: number }): boolean {
  return view > than.view || (view === than.view && k > than.k);
}

// ---------------------------------------------------------------------------------------
// What both modes share: request intake, execution, replies, checkpoints

export abstract class HotStuffReplica implements ReplicaCore<HotStuffMessage> {
  readonly id: number;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  protected readonly q: Quorums;
  protected readonly crypto: CryptoProvider;
  protected readonly signer: Signer;
  protected readonly verifiers: readonly Verifier[];
  protected readonly executor: Executor;
  protected readonly checkpoints: CheckpointTracker;
  protected readonly windowK: number;
  /** Leader side: client requests waiting for a slot or block. */
  protected readonly pending = new RequestQueue();
  /** Leader side: highest reqNo queued per client, so a request is proposed once (dedup). */
  protected readonly proposedReqNo = new Map<number, number>();
  /** Certificates this replica verified or formed, by what they certify, with their k. */
  private readonly verifiedCertificates = new Map<string, number>();
  /** The last reply per client, re-sent when the client retransmits an executed request. */
  private readonly lastReply = new Map<number, HsReply>();
  /** Where every handler, in both modes, puts its outputs; `step` drains it. */
  protected readonly out = new Outbox<HotStuffMessage>();
  /** The certificate rule (hotstuff.ts's header). */
  protected readonly rule: HotStuffRule;

  constructor(
    protected readonly options: ReplicaOptions,
    protected readonly deps: ReplicaDeps,
  ) {
    this.id = options.id;
    this.q = quorums(options.n);
    if (!Number.isInteger(options.id) || options.id < 0 || options.id >= options.n)
      throw new RangeError(`hotstuff: id ${options.id} outside [0, ${options.n})`);
    if (!Number.isInteger(options.windowK) || options.windowK < options.checkpointIntervalK) {
      throw new RangeError(`hotstuff: windowK (${options.windowK}) must be an integer >= checkpointIntervalK (${options.checkpointIntervalK})`);
    }
    this.windowK = options.windowK;
    this.crypto = deps.crypto;
    this.signer = deps.signer;
    this.verifiers = deps.replicaVerifiers;
    this.ledger = new Ledger(deps.crypto, 0);
    this.store = new YcsbStore(options.records, options.valueBytes);
    this.executor = new Executor(this.store, this.ledger, false);
    this.checkpoints = new CheckpointTracker(this.q.nf, options.checkpointIntervalK);
    this.rule = hotstuffRule(options.extra);
  }

  step(input: ReplicaInput<HotStuffMessage>, nowMs: number): ReplicaOutput<HotStuffMessage>[] {
    void nowMs;
    switch (input.kind) {
      case 'start':
        break;
      case 'timer':
        this.onTimer(input.name);
        break;
      case 'message':
        this.onMessage(input.from, input.msg);
        break;
    }
    return this.out.drain();
  }

  abstract status(): ReplicaStatus;
  /** Which replica proposes a request of this client now. */
  protected abstract clientLeader(clientId: number): number;
  protected abstract onProtocolMessage(from: Peer, msg: HotStuffMessage): void;
  protected abstract tryPropose(): void;
  protected abstract collectGarbage(stableK: number): void;
  protected onTimer(name: string): void {
    void name;
  }
  /** A client sent a request straight to this replica, which is not its leader (the client timed out). */
  protected onClientRetransmission(req: ClientRequest): void {
    void req;
  }
  protected onExecuted(e: Execution): void {
    void e;
  }

  /**
   * Why a certificate is not valid, or undefined. One verified once is not verified again
   * (a NEW-VIEW often carries a QC this replica checked in a proposal or formed itself).
   * Under 'paper' a certificate carries no signature, so its check costs nothing and is not
   * remembered (the key and the table cost more than the check, for every phase message).
   */
  protected certificateProblem(qc: QuorumCert, selfVoted: boolean, genesisHash?: Buffer): string | undefined {
    // Under 'paper' a certificate is its empty list (three per slot at each backup), the chained
    // genesis QC aside; neither builds a QcCheck.
    if (this.rule === 'paper') return genesisHash !== undefined && qc.k === 0 ? genesisQcProblem(qc, genesisHash) : paperQcProblem(qc);
    const key = certificateKey(qc);
    if (this.verifiedCertificates.has(key)) return undefined;
    const problem = qcProblem(qc, this.q, this.verifiers, { self: this.id, selfVoted, genesisHash });
    if (problem === undefined) this.verifiedCertificates.set(key, qc.k);
    return problem;
  }

  /** A certificate this replica formed from votes it verified: never to be checked again. */
  protected formedCertificate(qc: QuorumCert): void {
    if (this.rule === 'paper') return;
    this.verifiedCertificates.set(certificateKey(qc), qc.k);
  }

  /** Forgets the checked certificates for slots or heights up to k. */
  protected forgetCertificates(k: number): void {
    for (const [key, qk] of this.verifiedCertificates) if (qk <= k) this.verifiedCertificates.delete(key);
  }

  /**
   * Whether this replica handed this client batch to another leader already, so that a copy
   * from the client (the network duplicates, or the client retransmits) is not proposed here
   * too: one batch, one slot. Parallel mode's leaders change with the epochs; a chained
   * backup that becomes primary must take retransmissions, so the base class keeps no record.
   */
  protected handedOn(req: ClientRequest): boolean {
    void req;
    return false;
  }

  protected noteHandedOn(req: ClientRequest): void {
    void req;
  }

  /** Whether this replica proposes batches other replicas forward to it (parallel mode's idle homes do). */
  protected takesForwarded(): boolean {
    return false;
  }

  protected get stableK(): number {
    return this.checkpoints.stableK;
  }

  /** The highest sequence number that may be proposed now (watermark window). */
  protected get highK(): number {
    return this.checkpoints.stableK + this.windowK;
  }

  /** A replica's message claims a sender; the transport authenticated `from`. */
  protected fromReplica(from: Peer, claimed: number): boolean {
    return !isClientPeer(from) && from < this.q.n && from === claimed && from !== this.id;
  }

  private onMessage(from: Peer, msg: HotStuffMessage): void {
    switch (msg.type) {
      case MSG_REQUEST:
        this.onRequest(from, msg);
        return;
      case MSG_CHECKPOINT:
        this.onCheckpoint(from, msg);
        return;
      default:
        if (isClientPeer(from) || from >= this.q.n) {
          this.out.reject(`message type ${msg.type} from a client`, from);
          return;
        }
        this.onProtocolMessage(from, msg);
    }
  }

  // --- requests

  /** Why a batch in a proposal for k is not acceptable, or undefined. */
  protected proposedRequestProblem(req: ClientRequest, k: number): string | undefined {
    if (isNoop(req)) return req.reqNo === k >>> 0 ? undefined : 'no-op for another sequence number';
    return this.clientRequestProblem(req);
  }

  /** Client batches are Ed25519-signed by their client machine (paper §4(7)). */
  protected clientRequestProblem(req: ClientRequest): string | undefined {
    if (isNoop(req)) return 'no-op from a client';
    const verifier = this.deps.clientVerifier(req.origin);
    if (!verifier) return `unknown client machine ${req.origin}`;
    if (!verifier.verify(req.body, req.signature)) return 'bad client signature';
    if (!this.store.validWrites(req.writes)) return 'write outside the table';
    return undefined;
  }

  private onRequest(from: Peer, req: ClientRequest): void {
    if (this.executor.isExecuted(req)) {
      // A retransmission of an executed request: the reply was lost or is slow (paper §3.1).
      const reply = this.lastReply.get(req.clientId);
      if (reply && reply.reqNo === req.reqNo && isClientPeer(from)) this.out.send(from, reply);
      return;
    }
    const leader = this.clientLeader(req.clientId);
    const forwarded = !isClientPeer(from);
    if (leader === this.id ? forwarded || !this.handedOn(req) : forwarded && this.takesForwarded()) {
      this.acceptRequest(req, from);
      return;
    }
    if (leader === this.id) return;
    // A client broadcasts only after its timer fired: pass the request to its leader. Requests
    // other replicas forward are not forwarded again, so nothing circulates.
    if (isClientPeer(from)) {
      this.out.send(leader, req);
      this.noteHandedOn(req);
      this.onClientRetransmission(req);
    }
  }

  /** The leader takes a new, valid request of a client once (dedup on (clientId, reqNo)). */
  protected acceptRequest(req: ClientRequest, from: Peer): void {
    if (req.reqNo <= (this.proposedReqNo.get(req.clientId) ?? -1)) return;
    if (this.pending.size >= PENDING_REQUESTS_MAX) {
      this.out.reject('request queue full', from);
      return;
    }
    const problem = this.clientRequestProblem(req);
    if (problem) {
      this.out.reject(`request: ${problem}`, from);
      return;
    }
    this.proposedReqNo.set(req.clientId, req.reqNo);
    this.pending.push(req);
    this.tryPropose();
  }

  /** The next queued request that was not executed in the meantime. */
  protected takePending(): ClientRequest | undefined {
    for (;;) {
      const req = this.pending.shift();
      if (!req || !this.executor.isExecuted(req)) return req;
    }
  }

  // --- execution

  /** Commits batch k and executes whatever now continues the ledger, strictly in k order. */
  protected commitBatch(k: number, view: number, request: ClientRequest, digest: Buffer): void {
    this.executor.commit(k, view, request, digest);
    for (const e of this.executor.drain()) this.afterExecution(e);
  }

  private afterExecution(e: Execution): void {
    const noop = isNoop(e.request);
    this.out.event({ name: 'executed', k: e.k, view: e.view, txns: noop || e.duplicate ? 0 : e.request.writes.length });
    if (!noop && !e.duplicate) this.reply(e);
    this.onExecuted(e);
    if (this.checkpoints.isCheckpoint(e.k)) {
      const cp = this.checkpoints.makeCheckpoint(this.id, e.k, e.blockHash);
      this.out.broadcast(cp);
      this.addCheckpoint(this.id, cp);
    }
  }

  private reply(e: Execution): void {
    const body = { view: e.view, k: e.k, digest: e.digest, clientId: e.request.clientId, reqNo: e.request.reqNo, result: e.blockHash };
    const reply = makeReply(this.signer, this.id, body);
    this.lastReply.set(e.request.clientId, reply);
    this.out.send(clientPeer(e.request.origin), reply);
  }

  // --- checkpoints

  private onCheckpoint(from: Peer, c: Checkpoint): void {
    if (!this.fromReplica(from, c.replica)) {
      this.out.reject('checkpoint: sender mismatch', from);
      return;
    }
    this.addCheckpoint(from, c);
  }

  private addCheckpoint(from: number, c: Checkpoint): void {
    const stable = this.checkpoints.add(from, c.k, c.stateDigest, this.highK);
    if (stable === undefined) return;
    this.out.event({ name: 'checkpointStable', k: stable });
    this.executor.forget(stable);
    this.collectGarbage(stable);
    this.tryPropose();
  }

  /** Size of the client tables (for the memory-bound tests). */
  get clientTableSize(): number {
    return Math.max(this.lastReply.size, this.proposedReqNo.size);
  }

  get pendingRequests(): number {
    return this.pending.size;
  }
}

/** What a certificate certifies: (phase, view, k, digest). */
function certificateKey(qc: QuorumCert): string {
  return `${qc.phase}:${qc.view}:${qc.k}:${hex(qc.digest)}`;
}
