/**
 * Proof-of-Execution (Gupta, Hellings, Rahnama, Sadoghi: "Proof-of-Execution: Reaching
 * Consensus through Fault-Tolerant Speculation", EDBT 2021), the MAC variant the paper
 * evaluated. Citations "Figure 3, line 15" and "§3.3.4" refer to that paper
 * (../shared/seeds/poe-paper.txt).
 *
 * Normal case (Figure 3 with the §3.5 optimisations):
 *   client  -> primary   REQUEST ⟨T⟩c                         (line 1)
 *   primary -> backups   PROPOSE(v, k, ⟨T⟩c)                  (line 7; counts as its SUPPORT, §3.5(2))
 *   backup  -> replicas  SUPPORT(v, k, D(⟨T⟩c))               (lines 10-13, first PROPOSE for (v, k) only)
 *   nf matching SUPPORTs from distinct replicas view-commit  (lines 15-17)
 *   execute speculatively, strictly in order                  (line 19)
 *   replica -> client    INFORM(v, k, D(⟨T⟩c), result)        (line 22)
 *   the client accepts on nf identical INFORMs               (lines 2-3)
 * Per batch, with no faults, the replicas send (n-1) PROPOSE + (n-1)^2 SUPPORT + n INFORM = n^2
 * messages ("each replica only sends a single message to all the other replicas", §3.5).
 *
 * View change (Figure 5, §3.3): VC-REQUEST(v, E) with the executions E since the last stable
 * checkpoint, VC-ACK(v, id(Q), D(m)) for requests consistent with the acknowledger's state,
 * NV-PROPOSE(v+1, E', V) from the next primary once nf requests are each acknowledged by all of
 * the nf senders, NV-ACK(v+1, D(m)) after full or partial validation, and entry into v+1 on nf
 * NV-ACKs, rolling back speculative executions that E' does not keep (§3.3.5).
 *
 * The INFORM `result` is the replica's ledger block hash after executing k (paper §4(6)): it
 * depends on every batch executed so far, so nf identical results mean nf identical histories.
 *
 * Choices the paper leaves open, each explained where it is implemented:
 * - Checkpoints (§3.5 last paragraph): every VC-REQUEST carries its sender's stable checkpoint
 *   sequence number; E' holds the union of the entries above the highest stable checkpoint of
 *   the nf requests used (the "base"). A replica acknowledges a request only if the claimed
 *   checkpoint is stable at the acknowledger too, so the base is always a stable checkpoint.
 * - Gaps in E': each E is consecutive from its sender's stable checkpoint up (Figure 5, line 9
 *   condition 1), and every sender's checkpoint is at most the base, so the union above the
 *   base is consecutive. A gap therefore cannot arise from valid requests; should one appear
 *   anyway, E' is cut at the first missing sequence number (buildNewView) and the cut is what
 *   validating replicas rebuild and compare, so the replicas still agree.
 * - Failure detection (§3.3.1 (1)): a backup expects progress on every client request it
 *   forwarded to the primary, and on execution whenever it view-committed a batch that cannot
 *   execute because an earlier sequence number is missing (Example 3.4, case 3).
 * - Liveness (Theorem 3.7): the new-view timer starts once nf VC-REQUESTs for the view are in
 *   (as in PBFT, so one isolated replica does not run through views alone); on expiry, or on an
 *   invalid NV-PROPOSE, the replica requests the next view with a doubled timeout. A replica
 *   also joins the highest view that f+1 distinct replicas request (line 6, generalised to
 *   views above the current one as PBFT does).
 *
 * Not implemented: state transfer. A replica that falls behind a stable checkpoint held by
 * others (it missed batches that were garbage-collected everywhere else) cannot catch up.
 */
import { CheckpointTracker, Executor, type Execution } from './common.js';
import type { CryptoProvider } from './crypto.js';
import { DIGEST_BYTES } from './crypto.js';
import { Ledger } from './ledger.js';
import type { Checkpoint, ClientRequest, CommonMessage, FieldCodec } from './messages.js';
import { commonCodecs, isNoop, makeCodec, MSG_CHECKPOINT, MSG_REQUEST, readRequest, requestDigest, writeRequest } from './messages.js';
import type { ClientPolicy, ClientPolicyOptions, PendingRequest, ProtocolModule, ReplyOutcome } from './protocol.js';
import { YcsbStore } from './store.js';
import type {
  ClientOutput,
  Peer,
  ReplicaCore,
  ReplicaDeps,
  ReplicaEvent,
  ReplicaInput,
  ReplicaOptions,
  ReplicaOutput,
  ReplicaStatus,
  WireMessage,
} from './types.js';
import { clientPeer, isClientPeer, primaryOf, quorums } from './types.js';
import type { Reader, Writer } from './wire.js';

// ---------------------------------------------------------------------------------------
// Messages (type ids 10-19)

export const MSG_PROPOSE = 10;
export const MSG_SUPPORT = 11;
export const MSG_INFORM = 12;
export const MSG_VC_REQUEST = 13;
export const MSG_VC_ACK = 14;
export const MSG_NV_PROPOSE = 15;
export const MSG_NV_ACK = 16;

/** PROPOSE(⟨T⟩c, v, k): the primary proposes T as the k-th transaction of view v (Figure 3, line 7). */
export interface Propose extends WireMessage {
  readonly type: typeof MSG_PROPOSE;
  readonly view: number;
  readonly k: number;
  readonly request: ClientRequest;
}

/** SUPPORT(D(⟨T⟩c), v, k): a replica supports the first proposal for (v, k) it accepted (line 13). */
export interface Support extends WireMessage {
  readonly type: typeof MSG_SUPPORT;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
}

/**
 * INFORM(D(⟨T⟩c), v, k, r) to the client machine (line 22). `view` is the view the batch was
 * proposed in (the ledger block's view), so replicas that executed it in different views report
 * the same triple. clientId and reqNo let the client machine route it to its logical client.
 */
export interface Inform extends WireMessage {
  readonly type: typeof MSG_INFORM;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly clientId: number;
  readonly reqNo: number;
  /** The ledger block hash after executing k. */
  readonly result: Buffer;
}

/** One element of a summary E or E': (w, k, ⟨T⟩c), T executed as the k-th transaction of view w (Figure 5, line 3). */
export interface ExecutionEntry {
  readonly view: number;
  readonly k: number;
  readonly request: ClientRequest;
}

/**
 * VC-REQUEST(v, E) (Figure 5, line 4): `replica` detected failure of the primary of `view`.
 * `entries` are its executions from stableK + 1 on, consecutively (§3.5: only information after
 * the last checkpoint is exchanged).
 */
export interface VcRequest extends WireMessage {
  readonly type: typeof MSG_VC_REQUEST;
  readonly view: number;
  readonly replica: number;
  readonly stableK: number;
  readonly entries: readonly ExecutionEntry[];
}

/** VC-ACK(v, id(Q), D(m)): the sender acknowledges Q's VC-REQUEST m (Figure 5, line 10). */
export interface VcAck extends WireMessage {
  readonly type: typeof MSG_VC_ACK;
  readonly view: number;
  readonly replica: number;
  readonly digest: Buffer;
}

/** (id(Q_i), D(m_i)): one element of V (Figure 5, line 13). */
export interface CertificateEntry {
  readonly replica: number;
  readonly digest: Buffer;
}

/**
 * NV-PROPOSE(v+1, E', V) (Figure 5, line 14). `view` is the new view; E' is `entries`,
 * consecutive from stableK + 1, where stableK is the highest stable checkpoint among the
 * requests in V.
 */
export interface NvPropose extends WireMessage {
  readonly type: typeof MSG_NV_PROPOSE;
  readonly view: number;
  readonly stableK: number;
  readonly entries: readonly ExecutionEntry[];
  readonly certificate: readonly CertificateEntry[];
}

/** NV-ACK(v+1, D(m)) (Figure 5, line 18). */
export interface NvAck extends WireMessage {
  readonly type: typeof MSG_NV_ACK;
  readonly view: number;
  readonly digest: Buffer;
}

export type PoeMessage = CommonMessage | Propose | Support | Inform | VcRequest | VcAck | NvPropose | NvAck;

// ---------------------------------------------------------------------------------------
// Codec

/** view, k and the smallest request (empty body, signature) an entry can hold. */
const ENTRY_BYTES_MIN = 8 + 8 + 4 + 64;

function writeEntry(w: Writer, e: ExecutionEntry): void {
  w.u53(e.view).u53(e.k);
  writeRequest(w, e.request);
}

function readEntry(r: Reader): ExecutionEntry {
  const view = r.u53('entry.view');
  const k = r.u53('entry.k');
  return { view, k, request: readRequest(r) };
}

const poeCodecs: Record<number, FieldCodec<PoeMessage>> = {
  ...(commonCodecs as Record<number, FieldCodec<PoeMessage>>),
  [MSG_PROPOSE]: {
    write: (w, m) => {
      const p = m as Propose;
      w.u53(p.view).u53(p.k);
      writeRequest(w, p.request);
    },
    read: (r) => ({ type: MSG_PROPOSE, view: r.u53('propose.view'), k: r.u53('propose.k'), request: readRequest(r) }),
  },
  [MSG_SUPPORT]: {
    write: (w, m) => {
      const s = m as Support;
      w.u53(s.view).u53(s.k).fixed(s.digest, DIGEST_BYTES);
    },
    read: (r) => ({
      type: MSG_SUPPORT,
      view: r.u53('support.view'),
      k: r.u53('support.k'),
      digest: r.fixed(DIGEST_BYTES, 'support.digest'),
    }),
  },
  [MSG_INFORM]: {
    write: (w, m) => {
      const i = m as Inform;
      w.u53(i.view).u53(i.k).fixed(i.digest, DIGEST_BYTES).u32(i.clientId).u32(i.reqNo).fixed(i.result, DIGEST_BYTES);
    },
    read: (r) => ({
      type: MSG_INFORM,
      view: r.u53('inform.view'),
      k: r.u53('inform.k'),
      digest: r.fixed(DIGEST_BYTES, 'inform.digest'),
      clientId: r.u32('inform.clientId'),
      reqNo: r.u32('inform.reqNo'),
      result: r.fixed(DIGEST_BYTES, 'inform.result'),
    }),
  },
  [MSG_VC_REQUEST]: {
    write: (w, m) => {
      const v = m as VcRequest;
      w.u53(v.view).u16(v.replica).u53(v.stableK).list(v.entries, writeEntry);
    },
    read: (r) => ({
      type: MSG_VC_REQUEST,
      view: r.u53('vcRequest.view'),
      replica: r.u16('vcRequest.replica'),
      stableK: r.u53('vcRequest.stableK'),
      entries: r.list(readEntry, 'vcRequest.entries', ENTRY_BYTES_MIN),
    }),
  },
  [MSG_VC_ACK]: {
    write: (w, m) => {
      const a = m as VcAck;
      w.u53(a.view).u16(a.replica).fixed(a.digest, DIGEST_BYTES);
    },
    read: (r) => ({
      type: MSG_VC_ACK,
      view: r.u53('vcAck.view'),
      replica: r.u16('vcAck.replica'),
      digest: r.fixed(DIGEST_BYTES, 'vcAck.digest'),
    }),
  },
  [MSG_NV_PROPOSE]: {
    write: (w, m) => {
      const p = m as NvPropose;
      w.u53(p.view).u53(p.stableK).list(p.entries, writeEntry);
      w.list(p.certificate, (w2, c) => w2.u16(c.replica).fixed(c.digest, DIGEST_BYTES));
    },
    read: (r) => ({
      type: MSG_NV_PROPOSE,
      view: r.u53('nvPropose.view'),
      stableK: r.u53('nvPropose.stableK'),
      entries: r.list(readEntry, 'nvPropose.entries', ENTRY_BYTES_MIN),
      certificate: r.list(
        (r2) => ({ replica: r2.u16('certificate.replica'), digest: r2.fixed(DIGEST_BYTES, 'certificate.digest') }),
        'nvPropose.certificate',
        2 + DIGEST_BYTES,
      ),
    }),
  },
  [MSG_NV_ACK]: {
    write: (w, m) => {
      const a = m as NvAck;
      w.u53(a.view).fixed(a.digest, DIGEST_BYTES);
    },
    read: (r) => ({ type: MSG_NV_ACK, view: r.u53('nvAck.view'), digest: r.fixed(DIGEST_BYTES, 'nvAck.digest') }),
  },
};

export const poeCodec = makeCodec<PoeMessage>(poeCodecs, 'poe');

/** D(m) of a view-change message: SHA-256 of its encoding (the codec is canonical). */
export function messageDigest(crypto: CryptoProvider, msg: PoeMessage): Buffer {
  return crypto.digest(poeCodec.encode(msg));
}

// ---------------------------------------------------------------------------------------
// Replica

/** Named timers (STYLE.md: TigerBeetle's timeout table). */
export const POE_TIMERS = {
  /** Failure detection in the normal case (§3.3.1 (1)). */
  viewChange: 'vc',
  /** A view change that does not complete in time (Theorem 3.7: exponential backoff). */
  newView: 'nv',
} as const;

/** Requests the primary holds while the window is full (fixed bound: TigerBeetle style). */
const QUEUE_MAX = 1 << 16;
/** Client requests a backup forwarded and awaits progress on; one per logical client. */
const FORWARDED_MAX = 1 << 20;
/** View-change messages are kept only for views this close above the current one. */
const VIEW_LOOKAHEAD = 64;
/** VC-REQUESTs kept per sender (its latest views); bounds memory against a replica that spams views. */
const VC_REQUESTS_PER_SENDER = 2;
/** The backoff stops doubling here (2^16 times the base timeout). */
const BACKOFF_EXP_MAX = 16;

/**
 * What a replica knows about sequence number k in the current view: the proposal it supports
 * (Support_r, Figure 3 line 12), the SUPPORTs counted for it, and whether it view-committed.
 * Entries of a new view's E' are slots too (view = the view they were proposed in, committed).
 */
interface Slot {
  readonly view: number;
  request: ClientRequest | undefined;
  digest: Buffer | undefined;
  /** Replicas whose SUPPORT (the primary: PROPOSE) for (view, k) was counted; only the first counts. */
  readonly voted: Uint8Array;
  /** SUPPORTs that arrived before the PROPOSE (at most one per replica, so at most n). */
  early: { from: number; digest: Buffer }[] | undefined;
  /** Distinct replicas whose SUPPORT matches `digest`, the primary's PROPOSE and our own included. */
  matching: number;
  committed: boolean;
}

export interface VcRecord {
  readonly msg: VcRequest;
  readonly digest: Buffer;
  readonly hex: string;
}

interface NvRecord {
  readonly msg: NvPropose;
  readonly digest: Buffer;
  readonly hex: string;
}

type Validation = 'valid' | 'wait' | { readonly invalid: string };

export class PoeReplica implements ReplicaCore<PoeMessage> {
  readonly id: number;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  private readonly n: number;
  private readonly f: number;
  private readonly nf: number;
  private readonly crypto: CryptoProvider;
  private readonly executor: Executor;
  private readonly checkpoints: CheckpointTracker;
  private readonly windowK: number;
  private readonly baseTimeoutMs: number;

  private out: ReplicaOutput<PoeMessage>[] = [];
  private nowMs = 0;

  // --- views
  /** The current view; during a view change, the view whose primary failed. */
  private view = 0;
  /** The highest view this replica entered (normal case ran in it). */
  private enteredView = 0;
  private inViewChange = false;
  /** Failed view changes since the last view entered: the timeout is base * 2^backoffExp. */
  private backoffExp = 0;

  // --- normal case
  private readonly slots = new Map<number, Slot>();
  /** Sequence numbers up to here are fixed by the current view's NV-PROPOSE (§3.3.5). */
  private viewStartK = 0;
  /** Slots, undo records and executor state up to here were garbage-collected. */
  private gcK = 0;
  /** Primary: the next sequence number to assign (Figure 3, line 8). */
  private nextK = 1;
  /** Primary: highest reqNo per client proposed or queued in this view and not yet executed (dedup). */
  private readonly proposedReqNo = new Map<number, number>();
  /** Primary: requests waiting for the window to move (bounded by QUEUE_MAX). */
  private queue: ClientRequest[] = [];
  private queueHead = 0;
  /** Client requests received directly (the client broadcast them) and awaiting execution, oldest first. */
  private readonly forwarded = new Map<number, { request: ClientRequest; deadlineMs: number }>();
  /** Per client, the k at which its latest executed request ran (to re-send the INFORM). */
  private readonly informK = new Map<number, number>();
  /** Since when view-committed batches have waited for a missing earlier one (Example 3.4 case 3). */
  private stallSinceMs: number | undefined = undefined;
  /** Deadline the `vc` timer is armed for, if armed. */
  private vcTimerDeadlineMs: number | undefined = undefined;
  /** PROPOSE and SUPPORT messages of a view not yet entered, replayed on entry (bounded). */
  private future: { from: number; msg: Propose | Support }[] = [];
  private readonly futureMax: number;

  // --- view change
  /** VC-REQUESTs by view and sender (ours included). */
  private readonly vcRequests = new Map<number, Map<number, VcRecord>>();
  /** VC-ACKs we received (only the next primary keeps them): view -> `${q}:${hex}` -> acknowledgers. */
  private readonly vcAcks = new Map<number, Map<string, Set<number>>>();
  /** view -> `${acker}:${q}`: one acknowledgement per acknowledger per request sender. */
  private readonly vcAckSeen = new Map<number, Set<string>>();
  /** VC-ACKs we sent: view -> `${q}:${hex}`. */
  private readonly vcAcked = new Map<number, Set<string>>();
  /** NV-PROPOSEs waiting for VC-REQUESTs we need to validate them. */
  private readonly nvPending = new Map<number, NvPropose>();
  /** The NV-PROPOSE we validated (or built) and now collect NV-ACKs for. */
  private nvAccepted: (NvRecord & { view: number }) | undefined = undefined;
  /** view -> acknowledger -> digest hex of the NV-PROPOSE it acknowledged. */
  private readonly nvAcks = new Map<number, Map<number, string>>();
  /** The view our `nv` timer runs for. */
  private nvTimerView: number | undefined = undefined;
  /** The last view we proposed as new primary. */
  private nvProposedView = -1;

  constructor(
    options: ReplicaOptions,
    private readonly deps: ReplicaDeps,
  ) {
    const q = quorums(options.n);
    if (!Number.isInteger(options.id) || options.id < 0 || options.id >= options.n) throw new RangeError(`replica id ${options.id} outside 0..${options.n - 1}`);
    if (!Number.isInteger(options.windowK) || options.windowK < options.checkpointIntervalK) {
      throw new RangeError(`windowK (${options.windowK}) must be an integer >= checkpointIntervalK (${options.checkpointIntervalK})`);
    }
    this.id = options.id;
    this.n = q.n;
    this.f = q.f;
    this.nf = q.nf;
    this.crypto = deps.crypto;
    this.windowK = options.windowK;
    this.baseTimeoutMs = options.viewChangeTimeoutMs;
    this.store = new YcsbStore(options.records, options.valueBytes);
    this.ledger = new Ledger(deps.crypto, 0);
    // Speculative: PoE executes before it knows the order is final and may roll back (§3.3.5).
    this.executor = new Executor(this.store, this.ledger, true);
    this.checkpoints = new CheckpointTracker(this.nf, options.checkpointIntervalK);
    this.futureMax = this.windowK * this.n;
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: this.view,
      executedK: this.executor.executedK,
      stableK: this.checkpoints.stableK,
      inViewChange: this.inViewChange,
      logEntries: this.slots.size,
    };
  }

  step(input: ReplicaInput<PoeMessage>, nowMs: number): ReplicaOutput<PoeMessage>[] {
    this.nowMs = nowMs;
    this.out = [];
    switch (input.kind) {
      case 'start':
        break;
      case 'message':
        this.onMessage(input.from, input.msg);
        break;
      case 'timer':
        this.onTimer(input.name);
        break;
    }
    this.armViewChangeTimer();
    return this.out;
  }

  // -------------------------------------------------------------------------------------
  // Plumbing

  private get stableK(): number {
    return this.checkpoints.stableK;
  }

  private get timeoutMs(): number {
    return this.baseTimeoutMs * 2 ** this.backoffExp;
  }

  private isPrimary(): boolean {
    return primaryOf(this.view, this.n) === this.id;
  }

  private broadcast(msg: PoeMessage): void {
    this.out.push({ kind: 'broadcast', msg });
  }

  private send(to: Peer, msg: PoeMessage): void {
    this.out.push({ kind: 'send', to, msg });
  }

  private event(event: ReplicaEvent): void {
    this.out.push({ kind: 'event', event });
  }

  private reject(reason: string, from: Peer): void {
    this.event({ name: 'rejected', reason, from });
  }

  /** A client request is acceptable: known client, valid Ed25519 signature, keys inside the table. */
  private validRequest(req: ClientRequest): boolean {
    if (isNoop(req)) return false;
    const verifier = this.deps.clientVerifier(req.origin);
    return verifier !== undefined && this.store.validWrites(req.writes) && verifier.verify(req.body, req.signature);
  }

  private onMessage(from: Peer, msg: PoeMessage): void {
    if (isClientPeer(from)) {
      if (msg.type === MSG_REQUEST) this.onRequest(from, msg);
      else this.reject(`message type ${msg.type} from a client`, from);
      return;
    }
    if (!Number.isInteger(from) || from < 0 || from >= this.n || from === this.id) {
      this.reject('unknown sender', from);
      return;
    }
    switch (msg.type) {
      case MSG_REQUEST:
        this.onRequest(from, msg);
        break;
      case MSG_PROPOSE:
        this.onPropose(from, msg);
        break;
      case MSG_SUPPORT:
        this.onSupport(from, msg);
        break;
      case MSG_CHECKPOINT:
        this.onCheckpoint(from, msg);
        break;
      case MSG_VC_REQUEST:
        this.onViewChangeRequest(from, msg);
        break;
      case MSG_VC_ACK:
        this.onViewChangeAck(from, msg);
        break;
      case MSG_NV_PROPOSE:
        this.onNewViewPropose(from, msg);
        break;
      case MSG_NV_ACK:
        this.onNewViewAck(from, msg);
        break;
      default:
        this.reject(`unexpected message type ${msg.type}`, from);
    }
  }

  private onTimer(name: string): void {
    if (name === POE_TIMERS.viewChange) this.onViewChangeTimer();
    else if (name === POE_TIMERS.newView) this.onNewViewTimer();
  }

  // -------------------------------------------------------------------------------------
  // Client requests (Figure 3, lines 1, 6; §3.2 last paragraphs)

  /**
   * A REQUEST from a client, or one a backup forwarded. Executed already: re-send the INFORM.
   * At the primary: propose it unless it is in flight. At a backup (the client broadcast it
   * after a timeout): forward it to the primary and expect progress on it (§3.3.1 (1)).
   */
  private onRequest(from: Peer, req: ClientRequest): void {
    if (!this.validRequest(req)) {
      this.reject('invalid client request', from);
      return;
    }
    if (this.executor.isExecuted(req)) {
      this.resendInform(req);
      return;
    }
    if (this.isPrimary() && !this.inViewChange) {
      this.proposeOrQueue(req);
      return;
    }
    // Only clients' own broadcasts start a timer here; a forward that reached a non-primary is stale.
    if (!isClientPeer(from)) return;
    const known = this.forwarded.get(req.clientId);
    if (known && known.request.reqNo >= req.reqNo) {
      if (!this.inViewChange) this.send(primaryOf(this.view, this.n), known.request);
      return;
    }
    if (!known && this.forwarded.size >= FORWARDED_MAX) {
      this.reject('forwarded-request table full', from);
      return;
    }
    // Delete first so the map stays ordered by deadline (oldest first).
    this.forwarded.delete(req.clientId);
    this.forwarded.set(req.clientId, { request: req, deadlineMs: this.nowMs + this.timeoutMs });
    if (!this.inViewChange) this.send(primaryOf(this.view, this.n), req);
  }

  /** Re-sends the INFORM of a client's latest executed request (the client timed out and broadcast it). */
  private resendInform(req: ClientRequest): void {
    const k = this.informK.get(req.clientId);
    if (k === undefined || k > this.ledger.height || this.executor.lastExecuted(req.clientId) !== req.reqNo) return;
    this.send(clientPeer(req.origin), {
      type: MSG_INFORM,
      view: this.ledger.viewAt(k),
      k,
      // Copies: ledger columns are reused after a rollback.
      digest: Buffer.from(this.ledger.digestAt(k)),
      clientId: req.clientId,
      reqNo: req.reqNo,
      result: Buffer.from(this.ledger.hashAt(k)),
    });
  }

  private windowFull(): boolean {
    return this.nextK > this.stableK + this.windowK;
  }

  private proposeOrQueue(req: ClientRequest): void {
    if (req.reqNo <= (this.proposedReqNo.get(req.clientId) ?? -1)) return; // in flight
    if (this.queue.length - this.queueHead === 0 && !this.windowFull()) {
      this.proposedReqNo.set(req.clientId, req.reqNo);
      this.propose(req);
      return;
    }
    if (this.queue.length - this.queueHead >= QUEUE_MAX) {
      this.reject('primary queue full', clientPeer(req.origin));
      return;
    }
    this.proposedReqNo.set(req.clientId, req.reqNo);
    this.queue.push(req);
  }

  /** Proposes queued requests while the window has room. */
  private drainQueue(): void {
    if (!this.isPrimary() || this.inViewChange) return;
    while (this.queueHead < this.queue.length && !this.windowFull()) {
      const req = this.queue[this.queueHead++]!;
      if (!this.executor.isExecuted(req)) this.propose(req);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  /** Figure 3, lines 7-8. The PROPOSE is also the primary's SUPPORT (§3.5 (2)). */
  private propose(req: ClientRequest): void {
    const k = this.nextK++;
    const slot = this.newSlot(this.view);
    slot.request = req;
    slot.digest = requestDigest(this.crypto, req);
    slot.voted[this.id] = 1;
    slot.matching = 1;
    this.slots.set(k, slot);
    this.broadcast({ type: MSG_PROPOSE, view: this.view, k, request: req });
  }

  private newSlot(view: number): Slot {
    return { view, request: undefined, digest: undefined, voted: new Uint8Array(this.n), early: undefined, matching: 0, committed: false };
  }

  // -------------------------------------------------------------------------------------
  // Normal case (Figure 3, lines 10-23)

  /**
   * Whether a PROPOSE or SUPPORT of view w is processed now. Messages of a view we are about
   * to enter are kept and replayed on entry (a faster replica may support before we entered).
   */
  private admitNormal(from: number, msg: Propose | Support): boolean {
    const w = msg.view;
    if (w === this.view && !this.inViewChange) return true;
    if (w > this.enteredView && w <= this.view + 1 && this.future.length < this.futureMax) {
      this.future.push({ from, msg });
    } else if (w > this.view + 1) {
      this.reject('message for a future view', from);
    }
    // Older views, or the view whose failure we are handling (normal case halted, Figure 5 line 2): dropped.
    return false;
  }

  /**
   * The window for accepting PROPOSE and SUPPORT. Its low end is what we have both executed and
   * seen stable: a replica whose checkpoint became stable through others' votes before it
   * executed that far still needs the late messages. Its high end leaves a second window of
   * slack over the primary's (which proposes up to stableK + windowK), because our checkpoint
   * may lag the primary's. Memory stays bounded by 2 * windowK slots.
   */
  private inWindow(k: number): boolean {
    return k > this.viewStartK && k > this.lowWatermarkK && k <= this.lowWatermarkK + 2 * this.windowK;
  }

  private get lowWatermarkK(): number {
    return Math.min(this.stableK, this.executor.executedK);
  }

  /** Figure 3, line 10: support the first valid PROPOSE for (v, k) from the primary of the current view. */
  private onPropose(from: number, m: Propose): void {
    if (!this.admitNormal(from, m)) return;
    if (from !== primaryOf(m.view, this.n)) {
      this.reject('PROPOSE from a non-primary', from); // condition (2)
      return;
    }
    if (!this.inWindow(m.k)) {
      if (m.k > this.lowWatermarkK + 2 * this.windowK) this.reject('PROPOSE outside the window', from);
      return;
    }
    let slot = this.slots.get(m.k);
    if (slot && slot.request) {
      // Condition (3): one proposal per (v, k). A different one is the primary equivocating.
      if (!requestDigest(this.crypto, m.request).equals(slot.digest!)) this.reject('equivocating PROPOSE', from);
      return;
    }
    if (!this.validRequest(m.request)) {
      this.reject('PROPOSE with an invalid client request', from);
      return;
    }
    if (!slot) {
      slot = this.newSlot(m.view);
      this.slots.set(m.k, slot);
    }
    const digest = requestDigest(this.crypto, m.request);
    slot.request = m.request;
    slot.digest = digest;
    slot.voted[from] = 1;
    slot.voted[this.id] = 1;
    // The primary's PROPOSE counts as its SUPPORT (§3.5 (2)), ours is the one we send now.
    slot.matching = 2;
    if (slot.early) {
      for (const e of slot.early) if (e.from !== from && e.digest.equals(digest)) slot.matching++;
      slot.early = undefined;
    }
    this.broadcast({ type: MSG_SUPPORT, view: m.view, k: m.k, digest }); // lines 12-13
    this.checkViewCommit(m.k, slot);
  }

  /** Figure 3, line 15: count SUPPORTs, one per replica per (v, k); early ones wait for the PROPOSE. */
  private onSupport(from: number, m: Support): void {
    if (!this.admitNormal(from, m)) return;
    if (!this.inWindow(m.k)) {
      if (m.k > this.lowWatermarkK + 2 * this.windowK) this.reject('SUPPORT outside the window', from);
      return;
    }
    let slot = this.slots.get(m.k);
    if (!slot) {
      slot = this.newSlot(m.view);
      this.slots.set(m.k, slot);
    }
    if (slot.voted[from]) {
      if (slot.digest && !slot.digest.equals(m.digest)) this.reject('second SUPPORT for the same (v, k)', from);
      return;
    }
    slot.voted[from] = 1;
    if (!slot.digest) {
      (slot.early ??= []).push({ from, digest: m.digest });
      return;
    }
    if (!slot.digest.equals(m.digest)) return; // supports another proposal: does not count (line 15)
    slot.matching++;
    this.checkViewCommit(m.k, slot);
  }

  /** Figure 3, lines 15-17: nf matching SUPPORTs from distinct replicas, and we supported it too. */
  private checkViewCommit(k: number, slot: Slot): void {
    if (slot.committed || slot.matching < this.nf || !slot.request) return;
    slot.committed = true;
    this.executor.commit(k, slot.view, slot.request, slot.digest!);
    this.executeReady();
  }

  /** Figure 3, lines 19-22: execute view-committed batches in order, INFORM each client. */
  private executeReady(): void {
    const done = this.executor.drain();
    if (done.length === 0) return;
    this.stallSinceMs = undefined;
    for (const ex of done) this.afterExecute(ex);
    this.collectGarbage();
  }

  private afterExecute(ex: Execution): void {
    const req = ex.request;
    this.event({ name: 'executed', k: ex.k, view: ex.view, txns: ex.duplicate ? 0 : req.writes.length });
    if (!isNoop(req)) {
      const fwd = this.forwarded.get(req.clientId);
      if (fwd && fwd.request.reqNo <= req.reqNo) this.forwarded.delete(req.clientId);
      const proposed = this.proposedReqNo.get(req.clientId);
      if (proposed !== undefined && proposed <= req.reqNo) this.proposedReqNo.delete(req.clientId);
      if (!ex.duplicate) {
        this.informK.set(req.clientId, ex.k);
        this.send(clientPeer(req.origin), {
          type: MSG_INFORM,
          view: ex.view,
          k: ex.k,
          digest: ex.digest,
          clientId: req.clientId,
          reqNo: req.reqNo,
          result: ex.blockHash,
        });
      }
    }
    if (this.checkpoints.isCheckpoint(ex.k)) {
      this.broadcast(this.checkpoints.makeCheckpoint(this.id, ex.k, ex.blockHash));
      this.addCheckpointVote(this.id, ex.k, ex.blockHash);
    }
  }

  // -------------------------------------------------------------------------------------
  // Checkpoints and garbage collection (§3.5 last paragraph)

  private onCheckpoint(from: number, m: Checkpoint): void {
    if (m.replica !== from) {
      this.reject('CHECKPOINT naming another replica', from);
      return;
    }
    this.addCheckpointVote(from, m.k, m.stateDigest);
  }

  private addCheckpointVote(from: number, k: number, digest: Buffer): void {
    const stable = this.checkpoints.add(from, k, digest, this.stableK + 2 * this.windowK);
    if (stable === undefined) return;
    this.event({ name: 'checkpointStable', k: stable });
    this.collectGarbage();
    this.drainQueue();
    // A request claiming this checkpoint may now be acknowledged (see canAcknowledge).
    if (this.inViewChange) this.acknowledgeAll();
  }

  /**
   * Drops per-k state up to the stable checkpoint, but never above what we executed: a replica
   * behind the checkpoint still needs its slots to execute, and its undo records to roll back.
   */
  private collectGarbage(): void {
    const target = Math.min(this.stableK, this.executor.executedK);
    if (target <= this.gcK) return;
    for (let k = this.gcK + 1; k <= target; k++) this.slots.delete(k);
    this.executor.forget(target);
    this.gcK = target;
  }

  // -------------------------------------------------------------------------------------
  // Failure detection (§3.3.1)

  /** The earliest time at which missing progress means the primary failed, if we expect progress. */
  private failureDeadlineMs(): number | undefined {
    if (this.inViewChange || this.isPrimary()) return undefined;
    let deadline: number | undefined;
    const oldest = this.forwarded.values().next();
    if (!oldest.done) deadline = oldest.value.deadlineMs;
    if (this.stallSinceMs !== undefined) {
      const stall = this.stallSinceMs + this.timeoutMs;
      if (deadline === undefined || stall < deadline) deadline = stall;
    }
    return deadline;
  }

  /** Runs at the end of every step: arms `vc` for the earliest deadline (lazily: never cancelled early). */
  private armViewChangeTimer(): void {
    if (this.inViewChange || this.isPrimary()) return;
    if (this.executor.pendingCount > 0) this.stallSinceMs ??= this.nowMs;
    else this.stallSinceMs = undefined;
    const deadline = this.failureDeadlineMs();
    if (deadline === undefined) return;
    if (this.vcTimerDeadlineMs !== undefined && this.vcTimerDeadlineMs <= deadline) return;
    this.vcTimerDeadlineMs = deadline;
    this.out.push({ kind: 'setTimer', name: POE_TIMERS.viewChange, afterMs: Math.max(0, deadline - this.nowMs) });
  }

  private onViewChangeTimer(): void {
    this.vcTimerDeadlineMs = undefined;
    const deadline = this.failureDeadlineMs();
    if (deadline !== undefined && deadline <= this.nowMs) this.startViewChange(this.view);
  }

  private onNewViewTimer(): void {
    if (!this.inViewChange || this.nvTimerView !== this.view) return;
    // The view change to view+1 did not complete: its primary failed too (§3.3, Theorem 3.7).
    this.backoffExp = Math.min(this.backoffExp + 1, BACKOFF_EXP_MAX);
    this.startViewChange(this.view + 1);
  }

  // -------------------------------------------------------------------------------------
  // View change: requests and acknowledgements (Figure 5, lines 1-11)

  /** Figure 5, lines 1-4: R detected failure of the primary of view v. */
  private startViewChange(v: number): void {
    if (this.inViewChange && this.view >= v) return;
    this.view = v;
    this.inViewChange = true;
    this.vcTimerDeadlineMs = undefined;
    this.nvTimerView = undefined;
    this.out.push({ kind: 'cancelTimer', name: POE_TIMERS.viewChange });
    this.out.push({ kind: 'cancelTimer', name: POE_TIMERS.newView });
    this.event({ name: 'viewChangeStarted', view: v + 1 });
    const msg: VcRequest = { type: MSG_VC_REQUEST, view: v, replica: this.id, stableK: this.stableK, entries: this.executionsSinceCheckpoint() };
    const digest = messageDigest(this.crypto, msg);
    this.storeVcRequest({ msg, digest, hex: digest.toString('hex') });
    this.broadcast(msg);
    this.future = this.future.filter((e) => e.msg.view > this.enteredView);
    this.acknowledgeAll();
    this.afterViewChangeProgress(v);
  }

  /** E (Figure 5, line 3), limited to the executions above the stable checkpoint (§3.5). */
  private executionsSinceCheckpoint(): ExecutionEntry[] {
    const entries: ExecutionEntry[] = [];
    for (let k = this.stableK + 1; k <= this.executor.executedK; k++) {
      const slot = this.slots.get(k);
      if (!slot || !slot.request) throw new Error(`poe replica ${this.id}: executed k=${k} has no slot`);
      entries.push({ view: this.ledger.viewAt(k), k, request: slot.request });
    }
    return entries;
  }

  private storeVcRequest(rec: VcRecord): void {
    const { view, replica } = rec.msg;
    let byView = this.vcRequests.get(view);
    if (!byView) {
      byView = new Map();
      this.vcRequests.set(view, byView);
    }
    byView.set(replica, rec);
    if (replica === this.id) return;
    // Keep only a sender's latest VC_REQUESTS_PER_SENDER views.
    const views: number[] = [];
    for (const [w, m] of this.vcRequests) if (m.has(replica)) views.push(w);
    if (views.length <= VC_REQUESTS_PER_SENDER) return;
    views.sort((a, b) => a - b);
    for (let i = 0; i < views.length - VC_REQUESTS_PER_SENDER; i++) this.vcRequests.get(views[i]!)!.delete(replica);
  }

  private onViewChangeRequest(from: number, m: VcRequest): void {
    if (m.replica !== from) {
      this.reject('VC-REQUEST naming another replica', from);
      return;
    }
    if (m.view < this.enteredView) return; // stale
    if (m.view > this.view + VIEW_LOOKAHEAD) {
      this.reject('VC-REQUEST for a view too far ahead', from);
      return;
    }
    const problem = this.checkSummary(m.stableK, m.entries, m.view);
    if (problem) {
      this.reject(`VC-REQUEST: ${problem}`, from);
      return;
    }
    const digest = messageDigest(this.crypto, m);
    const hex = digest.toString('hex');
    const existing = this.vcRequests.get(m.view)?.get(from);
    if (existing) {
      if (existing.hex !== hex) this.reject('second, different VC-REQUEST for the same view', from);
      return;
    }
    const rec = { msg: m, digest, hex };
    this.storeVcRequest(rec);
    this.acknowledge(rec);
    this.checkJoin();
    this.afterViewChangeProgress(m.view);
  }

  /**
   * Structural checks of a summary, whoever sent it: a stable checkpoint at a checkpoint
   * boundary, consecutive entries from there (Figure 5, line 9 condition 1), no more than a
   * window of them, views before `maxView`, and genuine client requests (signatures are checked
   * unless the batch is the one we hold at that k).
   */
  private checkSummary(stableK: number, entries: readonly ExecutionEntry[], maxView: number, strictlyBefore = false): string | undefined {
    if (stableK % this.checkpoints.intervalK !== 0) return 'stable checkpoint not at a checkpoint boundary';
    // A window above the sender's checkpoint, doubled: a replica whose checkpoint lags may have
    // executed a new view's E' beyond its own window.
    if (entries.length > 2 * this.windowK) return 'more entries than two windows';
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.k !== stableK + 1 + i) return 'entries not consecutive from the stable checkpoint';
      if (e.view > maxView || (strictlyBefore && e.view === maxView)) return 'entry from a later view';
      if (!this.holds(e) && !this.validRequest(e.request)) return 'entry with an invalid client request';
    }
    return undefined;
  }

  /** True if we executed or view-committed exactly this entry (so its request was verified). */
  private holds(e: ExecutionEntry): boolean {
    const digest = requestDigest(this.crypto, e.request);
    if (e.k <= this.executor.executedK) return this.ledger.viewAt(e.k) === e.view && this.ledger.digestAt(e.k).equals(digest);
    const slot = this.slots.get(e.k);
    return slot !== undefined && slot.committed && slot.view === e.view && slot.digest!.equals(digest);
  }

  /** True if we executed or view-committed something else at e.k (Figure 5, line 9 condition 3). */
  private contradicts(e: ExecutionEntry): boolean {
    if (e.k <= this.executor.executedK) return !this.holds(e);
    const slot = this.slots.get(e.k);
    return slot !== undefined && slot.committed && !this.holds(e);
  }

  /**
   * Figure 5, line 9. (1) was checked on receipt. (2) we detected failure of the primary of v
   * ourselves. (3) the entries agree with everything we executed or view-committed. Also: the
   * sender's stable checkpoint is stable here too, so E' never starts above a checkpoint that
   * is not stable (it would drop batches clients may have accepted).
   */
  private canAcknowledge(m: VcRequest): boolean {
    const detected = m.view < this.view || (m.view === this.view && this.inViewChange);
    if (!detected || m.view < this.enteredView) return false;
    if (m.stableK > this.stableK) return false;
    for (const e of m.entries) if (this.contradicts(e)) return false;
    return true;
  }

  /** Figure 5, line 10; no acknowledgement of our own request (§3.5 (3)). */
  private acknowledge(rec: VcRecord): void {
    const { view, replica } = rec.msg;
    if (replica === this.id) return;
    let sent = this.vcAcked.get(view);
    const key = `${replica}:${rec.hex}`;
    if (sent?.has(key) || !this.canAcknowledge(rec.msg)) return;
    if (!sent) {
      sent = new Set();
      this.vcAcked.set(view, sent);
    }
    sent.add(key);
    this.recordVcAck(view, this.id, replica, rec.hex);
    this.broadcast({ type: MSG_VC_ACK, view, replica, digest: rec.digest });
  }

  private acknowledgeAll(): void {
    for (const byView of this.vcRequests.values()) for (const rec of byView.values()) this.acknowledge(rec);
  }

  private recordVcAck(view: number, acker: number, replica: number, hex: string): void {
    let seen = this.vcAckSeen.get(view);
    if (!seen) {
      seen = new Set();
      this.vcAckSeen.set(view, seen);
    }
    const guard = `${acker}:${replica}`;
    if (seen.has(guard)) return;
    seen.add(guard);
    let byKey = this.vcAcks.get(view);
    if (!byKey) {
      byKey = new Map();
      this.vcAcks.set(view, byKey);
    }
    const key = `${replica}:${hex}`;
    let ackers = byKey.get(key);
    if (!ackers) {
      ackers = new Set();
      byKey.set(key, ackers);
    }
    ackers.add(acker);
  }

  private onViewChangeAck(from: number, m: VcAck): void {
    if (m.view < this.enteredView || m.view > this.view + VIEW_LOOKAHEAD || m.replica >= this.n) return;
    // Only the next primary uses acknowledgements (Figure 5, line 12); others validate NV-PROPOSE from the requests.
    if (primaryOf(m.view + 1, this.n) !== this.id) return;
    this.recordVcAck(m.view, from, m.replica, m.digest.toString('hex'));
    this.tryProposeNewView(m.view);
  }

  /**
   * Figure 5, line 6, generalised as in PBFT: when f+1 distinct replicas request view changes
   * for views we have not given up yet, one of them is non-faulty; join the highest such view
   * that f+1 of them reached.
   */
  private checkJoin(): void {
    const floor = this.inViewChange ? this.view + 1 : this.view;
    const latest = new Map<number, number>();
    for (const [w, byView] of this.vcRequests) {
      if (w < floor) continue;
      for (const q of byView.keys()) if (q !== this.id && w > (latest.get(q) ?? -1)) latest.set(q, w);
    }
    if (latest.size < this.f + 1) return;
    const views = [...latest.values()].sort((a, b) => b - a);
    this.startViewChange(views[this.f]!);
  }

  /** After any view-change message for view v: start the new-view timer, propose, or validate. */
  private afterViewChangeProgress(v: number): void {
    if (this.inViewChange && v === this.view && this.nvTimerView !== v && (this.vcRequests.get(v)?.size ?? 0) >= this.nf) {
      this.nvTimerView = v;
      this.out.push({ kind: 'setTimer', name: POE_TIMERS.newView, afterMs: this.timeoutMs });
    }
    this.tryProposeNewView(v);
    const pending = this.nvPending.get(v + 1);
    if (pending) this.tryValidate(pending);
  }

  // -------------------------------------------------------------------------------------
  // New view (Figure 5, lines 12-22; §3.3.3 - §3.3.5)

  /**
   * Figure 5, line 12: as next primary, find nf requests for view v whose senders all
   * acknowledged each other's requests. A greedy search: drop the sender with the most missing
   * acknowledgements until the rest is complete. It retries on every new acknowledgement.
   */
  private tryProposeNewView(v: number): void {
    if (primaryOf(v + 1, this.n) !== this.id || !this.inViewChange || this.view !== v || this.nvProposedView === v + 1) return;
    const byView = this.vcRequests.get(v);
    if (!byView || byView.size < this.nf || !byView.has(this.id)) return;
    const acks = this.vcAcks.get(v);
    const members = [...byView.keys()].sort((a, b) => a - b);
    const ackersOf = new Map<number, Set<number> | undefined>();
    for (const q of members) ackersOf.set(q, acks?.get(`${q}:${byView.get(q)!.hex}`));
    const acked = (a: number, q: number): boolean => a === q || (ackersOf.get(q)?.has(a) ?? false);
    let set = members;
    for (;;) {
      if (set.length < this.nf) return;
      let worst = -1;
      let worstMissing = 0;
      for (const c of set) {
        let missing = 0;
        for (const d of set) if (!acked(c, d) || !acked(d, c)) missing++;
        if (missing === 0 || missing < worstMissing) continue;
        // Ties: keep ourselves, otherwise drop the highest id (deterministic).
        if (missing > worstMissing || worst === this.id || (c !== this.id && c > worst)) {
          worst = c;
          worstMissing = missing;
        }
      }
      if (worstMissing === 0) break;
      set = set.filter((c) => c !== worst);
    }
    // Any nf of a complete set qualify; take ourselves and the lowest ids.
    const chosen = [this.id, ...set.filter((c) => c !== this.id)].slice(0, this.nf).sort((a, b) => a - b);
    const msg = buildNewView(this.crypto, v + 1, chosen.map((q) => byView.get(q)!));
    const digest = messageDigest(this.crypto, msg);
    this.nvProposedView = v + 1;
    this.broadcast(msg);
    this.nvAccepted = { view: v + 1, msg, digest, hex: digest.toString('hex') };
    this.checkNewViewAcks(v + 1);
  }

  /** Figure 5, line 16. */
  private onNewViewPropose(from: number, m: NvPropose): void {
    if (from !== primaryOf(m.view, this.n)) {
      this.reject('NV-PROPOSE from a replica that is not the primary of that view', from);
      return;
    }
    if (m.view <= this.enteredView || m.view > this.view + VIEW_LOOKAHEAD) return;
    if (this.nvAccepted?.view === m.view || this.nvPending.has(m.view)) return;
    this.tryValidate(m);
  }

  /** Validates a new-view proposal (§3.3.4); waits if we lack requests it is built from. */
  private tryValidate(m: NvPropose): void {
    const result = this.validateNewView(m);
    if (result === 'wait') {
      this.nvPending.set(m.view, m);
      return;
    }
    this.nvPending.delete(m.view);
    if (result !== 'valid') {
      this.reject(`invalid NV-PROPOSE: ${result.invalid}`, primaryOf(m.view, this.n));
      // "Otherwise, if m != m', then R detects failure of P'" (§3.3.4): ask for the view after.
      // Only while changing to that view: a replica running a healthy view does not leave it
      // because some other replica sent it a bad proposal.
      if (this.inViewChange && m.view === this.view + 1) {
        this.backoffExp = Math.min(this.backoffExp + 1, BACKOFF_EXP_MAX);
        this.startViewChange(m.view);
      }
      return;
    }
    const digest = messageDigest(this.crypto, m);
    this.nvAccepted = { view: m.view, msg: m, digest, hex: digest.toString('hex') };
    this.broadcast({ type: MSG_NV_ACK, view: m.view, digest }); // line 18
    this.checkNewViewAcks(m.view);
  }

  /**
   * §3.3.4. Full validation if our request is in V: rebuild m' from the same requests and
   * compare. Otherwise partial validation: every request of V we hold (at least nf - f of them)
   * must be contained in E'. Either way E' must be well formed and must not roll back anything
   * at or below our garbage-collected stable state.
   */
  private validateNewView(m: NvPropose): Validation {
    const v = m.view - 1;
    const cert = m.certificate;
    if (cert.length !== this.nf) return { invalid: 'V does not have nf entries' };
    for (let i = 0; i < cert.length; i++) {
      if (cert[i]!.replica >= this.n || (i > 0 && cert[i]!.replica <= cert[i - 1]!.replica)) return { invalid: 'V not sorted by distinct replica ids' };
    }
    const problem = this.checkSummary(m.stableK, m.entries, m.view, true);
    if (problem) return { invalid: problem };
    if (this.rollbackPoint(m) < this.gcK) return { invalid: 'E\' contradicts our stable state' };
    const byView = this.vcRequests.get(v);
    const records: VcRecord[] = [];
    for (const c of cert) {
      const rec = byView?.get(c.replica);
      if (rec && rec.digest.equals(c.digest)) records.push(rec);
    }
    const mine = cert.find((c) => c.replica === this.id);
    if (mine) {
      if (records.length < cert.length) return 'wait';
      const rebuilt = buildNewView(this.crypto, m.view, records);
      return messageDigest(this.crypto, rebuilt).equals(messageDigest(this.crypto, m)) ? 'valid' : { invalid: 'm differs from the m\' rebuilt from V' };
    }
    if (records.length < this.nf - this.f) return 'wait';
    for (const rec of records) {
      if (rec.msg.stableK > m.stableK) return { invalid: 'a request in V has a later checkpoint than E\'' };
      for (const e of rec.msg.entries) {
        if (e.k <= m.stableK) continue;
        const x = m.entries[e.k - m.stableK - 1];
        if (!x || x.view !== e.view || !requestDigest(this.crypto, x.request).equals(requestDigest(this.crypto, e.request))) {
          return { invalid: 'E of a request in V is not contained in E\'' };
        }
      }
    }
    return 'valid';
  }

  /**
   * The highest k whose execution here E' keeps (§3.3.5): everything above it is rolled back.
   * Executions above the top of E' are not in E'; the first entry that differs from our ledger
   * (batch or view) and everything after it neither.
   */
  private rollbackPoint(m: NvPropose): number {
    const executed = this.executor.executedK;
    const top = m.stableK + m.entries.length;
    for (const e of m.entries) {
      if (e.k > executed) break;
      if (this.ledger.viewAt(e.k) !== e.view || !this.ledger.digestAt(e.k).equals(requestDigest(this.crypto, e.request))) return e.k - 1;
    }
    return Math.min(executed, Math.max(top, m.stableK));
  }

  private onNewViewAck(from: number, m: NvAck): void {
    if (m.view <= this.enteredView || m.view > this.view + VIEW_LOOKAHEAD) return;
    let byAcker = this.nvAcks.get(m.view);
    if (!byAcker) {
      byAcker = new Map();
      this.nvAcks.set(m.view, byAcker);
    }
    if (byAcker.has(from)) return;
    byAcker.set(from, m.digest.toString('hex'));
    this.checkNewViewAcks(m.view);
  }

  /** Figure 5, line 19: nf NV-ACKs, the new primary's NV-PROPOSE counting as its own (§3.5 (4)). */
  private checkNewViewAcks(view: number): void {
    const acc = this.nvAccepted;
    if (!acc || acc.view !== view) return;
    const primary = primaryOf(view, this.n);
    let count = primary === this.id ? 1 : 2; // the primary's proposal, and our own acknowledgement
    for (const [acker, hex] of this.nvAcks.get(view) ?? []) if (acker !== primary && acker !== this.id && hex === acc.hex) count++;
    if (count >= this.nf) this.enterView(acc.msg);
  }

  /** §3.3.5: roll back what E' does not keep, execute E', resume the normal case in the new view. */
  private enterView(m: NvPropose): void {
    const w = m.view;
    const executed = this.executor.executedK;
    const rb = this.rollbackPoint(m);
    if (rb < this.gcK) {
      // Checked at validation; a checkpoint that became stable since cannot contradict a valid E'.
      this.reject('NV-PROPOSE contradicts a stable checkpoint', primaryOf(w, this.n));
      return;
    }
    if (rb < executed) {
      this.executor.rollbackTo(rb);
      this.event({ name: 'rollback', fromK: executed, toK: rb });
      for (const [clientId, k] of this.informK) if (k > rb) this.informK.delete(clientId);
    } else {
      this.executor.dropPendingAbove(executed);
    }
    const now = this.executor.executedK;
    for (const k of [...this.slots.keys()]) if (k > now) this.slots.delete(k);
    for (const e of m.entries) {
      if (e.k <= now) continue;
      const digest = requestDigest(this.crypto, e.request);
      const slot = this.newSlot(e.view);
      slot.request = e.request;
      slot.digest = digest;
      slot.committed = true;
      this.slots.set(e.k, slot);
      this.executor.commit(e.k, e.view, e.request, digest);
    }
    this.view = w;
    this.enteredView = w;
    this.inViewChange = false;
    this.backoffExp = 0;
    this.viewStartK = m.stableK + m.entries.length;
    this.nextK = this.viewStartK + 1;
    this.proposedReqNo.clear();
    this.queue = [];
    this.queueHead = 0;
    this.nvTimerView = undefined;
    this.vcTimerDeadlineMs = undefined;
    this.stallSinceMs = undefined;
    this.out.push({ kind: 'cancelTimer', name: POE_TIMERS.newView });
    this.pruneViewChangeState(w);
    this.event({ name: 'viewEntered', view: w });
    this.executeReady();
    if (this.isPrimary()) {
      // Requests clients broadcast while the old primary failed: propose them now rather than
      // after the clients' next timeout.
      const waiting = [...this.forwarded.values()].map((x) => x.request);
      this.forwarded.clear();
      for (const req of waiting) if (!this.executor.isExecuted(req)) this.proposeOrQueue(req);
    } else {
      // Give the new primary a full timeout for the requests we still await.
      const waiting = [...this.forwarded.entries()];
      this.forwarded.clear();
      for (const [clientId, x] of waiting) this.forwarded.set(clientId, { request: x.request, deadlineMs: this.nowMs + this.timeoutMs });
    }
    const replay = this.future.filter((e) => e.msg.view === w);
    this.future = this.future.filter((e) => e.msg.view > w);
    for (const e of replay) this.onMessage(e.from, e.msg);
  }

  private pruneViewChangeState(w: number): void {
    for (const map of [this.vcRequests, this.vcAcks, this.vcAckSeen, this.vcAcked] as Map<number, unknown>[]) {
      for (const view of [...map.keys()]) if (view < w) map.delete(view);
    }
    for (const view of [...this.nvAcks.keys()]) if (view <= w) this.nvAcks.delete(view);
    for (const view of [...this.nvPending.keys()]) if (view <= w) this.nvPending.delete(view);
    this.nvAccepted = undefined;
  }
}

/**
 * Figure 5, lines 13-14: NV-PROPOSE(v+1, E_1 ∪ ... ∪ E_nf, V), deterministic so that a
 * replica can rebuild it for full validation (§3.3.4). The base is the highest stable
 * checkpoint among the requests; E' holds the entries above it. Two requests in V never
 * disagree at a k that a non-faulty replica in V executed (each sender acknowledged the
 * other's request, Figure 5 line 9 condition 3); where only faulty replicas disagree, the
 * entry of the highest view wins, then the lower digest. E' ends at the first k no request
 * reports (see the module comment: this cannot happen for consecutive summaries).
 */
export function buildNewView(crypto: CryptoProvider, newView: number, records: readonly VcRecord[]): NvPropose {
  const sorted = [...records].sort((a, b) => a.msg.replica - b.msg.replica);
  let base = 0;
  for (const r of sorted) base = Math.max(base, r.msg.stableK);
  const byK = new Map<number, { entry: ExecutionEntry; digest: Buffer }>();
  for (const r of sorted) {
    for (const e of r.msg.entries) {
      if (e.k <= base) continue;
      const digest = requestDigest(crypto, e.request);
      const cur = byK.get(e.k);
      if (!cur || e.view > cur.entry.view || (e.view === cur.entry.view && Buffer.compare(digest, cur.digest) < 0)) byK.set(e.k, { entry: e, digest });
    }
  }
  const entries: ExecutionEntry[] = [];
  for (let k = base + 1; byK.has(k); k++) entries.push(byK.get(k)!.entry);
  return {
    type: MSG_NV_PROPOSE,
    view: newView,
    stableK: base,
    entries,
    certificate: sorted.map((r) => ({ replica: r.msg.replica, digest: r.digest })),
  };
}

// ---------------------------------------------------------------------------------------
// Client policy (Figure 3, lines 1-3)

interface InformVotes {
  readonly view: number;
  readonly k: number;
  readonly result: Buffer;
  readonly from: Set<number>;
}

/** Distinct (view, k, result) triples tracked per request; more only come from faulty replicas. */
const INFORM_VARIANTS_MAX = 64;

export class PoeClientPolicy implements ClientPolicy<PoeMessage> {
  private readonly n: number;
  private readonly nf: number;
  /** The view of the last batch this client machine accepted: its primary gets new requests. */
  private view = 0;

  constructor(options: ClientPolicyOptions) {
    const q = quorums(options.n);
    this.n = q.n;
    this.nf = q.nf;
  }

  /** Line 1: send ⟨T⟩c to the primary. */
  targets(): readonly Peer[] {
    return [primaryOf(this.view, this.n)];
  }

  replyKey(msg: PoeMessage): { readonly clientId: number; readonly reqNo: number } | undefined {
    return msg.type === MSG_INFORM ? { clientId: msg.clientId, reqNo: msg.reqNo } : undefined;
  }

  /** Lines 2-3: accept on identical INFORM(D(⟨T⟩c), v, k, r) from nf distinct replicas. */
  onReply(p: PendingRequest, from: Peer, msg: PoeMessage, nowMs: number): ReplyOutcome<PoeMessage> | undefined {
    void nowMs;
    if (msg.type !== MSG_INFORM || !Number.isInteger(from) || from < 0 || from >= this.n) return undefined;
    if (!msg.digest.equals(p.digest)) return undefined;
    let votes = p.policyState as InformVotes[] | undefined;
    if (!votes) {
      votes = [];
      p.policyState = votes;
    }
    let match = votes.find((x) => x.view === msg.view && x.k === msg.k && x.result.equals(msg.result));
    if (!match) {
      if (votes.length >= INFORM_VARIANTS_MAX) return undefined;
      match = { view: msg.view, k: msg.k, result: Buffer.from(msg.result), from: new Set() };
      votes.push(match);
    }
    match.from.add(from);
    if (match.from.size < this.nf) return undefined;
    if (msg.view > this.view) this.view = msg.view;
    return { accepted: { k: msg.k, view: msg.view, digest: p.digest, path: 'inform' } };
  }

  /** §3.2: "it can broadcast its request to all replicas". */
  onTimeout(p: PendingRequest, nowMs: number): readonly ClientOutput<PoeMessage>[] {
    void nowMs;
    return [{ kind: 'broadcast', msg: p.request }];
  }
}

// ---------------------------------------------------------------------------------------
// Module

export const poe: ProtocolModule<PoeMessage> = {
  name: 'poe',
  codec: poeCodec,
  createReplica: (options: ReplicaOptions, deps: ReplicaDeps) => new PoeReplica(options, deps),
  createClientPolicy: (options: ClientPolicyOptions) => new PoeClientPolicy(options),
};
