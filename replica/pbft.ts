/**
 * PBFT (Castro and Liskov, OSDI'99), as the PoE paper's §4(8) describes its implementation in
 * ResilientDB: PRE-PREPARE from the primary, all-to-all PREPARE, all-to-all COMMIT, execution
 * on nf COMMITs, and a client that accepts on f+1 matching replies. The view change is the one
 * of the MAC-based PBFT (Castro and Liskov, TOCS 2002 §4, "BFT-PR"; replica/pbft-view-change.ts
 * holds its log and decision rule): VIEW-CHANGE with the stable checkpoint, the checkpoints
 * taken above it and the P and Q sets; VIEW-CHANGE-ACKs to the new primary, which uses a
 * VIEW-CHANGE only once nf-2 third replicas acked it; NEW-VIEW with V and O, O chosen by the
 * rule A1/A2 (a batch) or B (the null request); backups accept it only after checking V against
 * the VIEW-CHANGEs they received from the senders themselves and recomputing O. A view change
 * without faults costs n(n-1) VIEW-CHANGEs + (n-1)(n-2) VIEW-CHANGE-ACKs + (n-1) NEW-VIEWs, then
 * O's PREPAREs and COMMITs. Wire types and codec: replica/pbft-wire.ts.
 *
 * Quorums. PBFT (§4.2) is prepared on the PRE-PREPARE plus 2f PREPAREs and committed on 2f+1
 * COMMITs, for n = 3f+1. For any n, two quorums must share a non-faulty replica, so we count
 * nf: prepared = PRE-PREPARE + (nf - 1) PREPAREs from distinct backups, committed = nf COMMITs
 * from distinct replicas, its own included (paper §4(8): "waits for nf Commit messages").
 * Both equal PBFT's numbers when n = 3f+1.
 *
 * The origin view. A block in the ledger is {k, d, v, H(prev)} (paper §4(6)). A batch that
 * commits in view v at one replica can commit at another only after a view change, in view
 * v+1, through the NEW-VIEW's re-proposal. If each replica wrote the view it committed in, the
 * two ledgers' hashes would differ although they agree on every batch. So every pre-prepare
 * carries `originView`, the view in which sequence number k was first given this batch; a
 * NEW-VIEW re-proposal keeps the origin view of the certificate it re-proposes, and PREPARE
 * and COMMIT match on (digest, originView). The ledger records the origin view, which is then
 * agreed exactly like the digest (PBFT's safety argument applies to the pair).
 *
 * Authentication. Replica messages are authenticated point to point with MACs by the runtime,
 * so what one replica says another sent proves nothing: a VIEW-CHANGE's P and Q are its
 * sender's claims, which is why the view change needs the ACKs and the A1/A2 rule (one
 * Byzantine replica's claim alone never decides), and why a backup checks every VIEW-CHANGE
 * forwarded inside a NEW-VIEW against its own copy from the sender. Client requests carry
 * Ed25519 signatures and are verified by every replica that accepts them (paper §4(7)).
 *
 * Lossy links. PBFT assumes links that retransmit; these do not, so a request a client re-sends
 * makes every replica re-send what it sent for that request's slot (retransmitFor), a backup
 * that executed a request the client keeps re-sending suspects the primary once nothing
 * executes for a timeout (noteUnfinished, as in PoE), a replica in a view change re-sends its
 * VIEW-CHANGE and starts the NEW-VIEW wait only with nf VIEW-CHANGEs in (PBFT §4.5.2), and a
 * replica that runs the view answers one that asks again for it with its own VIEW-CHANGE (and
 * the new primary with its NEW-VIEW). None of this adds a message to a run without client
 * timeouts.
 *
 * Catching up. A replica that missed messages (a primary that crashed half-way through a
 * broadcast, a lost link) fetches the executed batches it lacks: checked against the stable
 * checkpoint's certified ledger hash when one overtook it, otherwise taken when f+1 replicas
 * return the same batch. Replicas keep executed batches two windows below their stable
 * checkpoint for this. Not implemented: state transfer of the store itself, so a replica that
 * falls further behind than that cannot catch up.
 */
import { backoffMs, nextBackoffExp } from './backoff.js';
import { AWAITED_MAX, PBFT_TIMERS } from './pbft-state.js';
import type { FaultHooks } from './byzantine.js';
import { CheckpointTracker, Executor, type Execution, sameBytes } from './common.js';
import { Ledger } from './ledger.js';
import { isNoop, MSG_CHECKPOINT, MSG_REQUEST, NOOP_CLIENT_ID, requestDigest, type ClientRequest } from './messages.js';
import { Outbox } from './outbox.js';
import { PbftClientPolicy } from './pbft-client.js';
import { BatchFetcher } from './pbft-fetch.js';
import { decideNewView, LaggardAnswers, notePrePrepared, ViewChangeLog, wellFormedViewChange, type NewViewPlan } from './pbft-view-change.js';
import {
  MSG_BATCHES,
  MSG_COMMIT,
  MSG_FETCH,
  MSG_NEW_VIEW,
  MSG_PRE_PREPARE,
  MSG_PREPARE,
  MSG_REPLY,
  MSG_VIEW_CHANGE,
  MSG_VIEW_CHANGE_ACK,
  pbftCodec,
  stripRequests,
  type CheckpointClaim,
  type CheckpointProof,
  type Commit,
  type NewView,
  type NewViewEntry,
  type PbftMessage,
  type PrePrepare,
  type PrePreparedInfo,
  type Prepare,
  type PreparedCert,
  type Reply,
  type ViewChange,
  type ViewChangeAck,
} from './pbft-wire.js';
import type { ProtocolModule } from './protocol.js';
import { YcsbStore } from './store.js';
import {
  clientPeer,
  isClientPeer,
  primaryOf,
  quorums,
  type Peer,
  type ReplicaCore,
  type ReplicaDeps,
  type ReplicaInput,
  type ReplicaOptions,
  type ReplicaOutput,
  type ReplicaStatus,
} from './types.js';

export * from './pbft-wire.js';
export { PBFT_TIMERS } from './pbft-state.js';

// ---------------------------------------------------------------------------------------
// The replica core

interface SlotPrePrepare {
  readonly request: ClientRequest;
  readonly digest: Buffer;
  readonly originView: number;
}

type Vote = Prepare | Commit;

/** Per-sequence-number state. The vote arrays belong to `view`; `cert` survives view changes. */
interface Slot {
  readonly k: number;
  view: number;
  pp: SlotPrePrepare | undefined;
  /** Indexed by replica: the first PREPARE / COMMIT each sent in `view` (kept before the pre-prepare arrives). */
  prepares: (Vote | undefined)[];
  commits: (Vote | undefined)[];
  /** Votes matching `pp`. */
  prepareCount: number;
  commitCount: number;
  prepared: boolean;
  committed: boolean;
  /** The prepared certificate with the highest view, with its request (for VIEW-CHANGE's P). */
  cert: PreparedCert | undefined;
  /** What pre-prepared here for k, each batch with the latest view it did (VIEW-CHANGE's Q). */
  q: PrePreparedInfo[];
  /** When this replica last re-sent its messages for the slot, and how often it did in this view (retransmitFor). */
  resentAtMs: number;
  resends: number;
}

const matches = (v: Vote, pp: SlotPrePrepare): boolean => v.originView === pp.originView && sameBytes(v.digest, pp.digest);

type Out = ReplicaOutput<PbftMessage>;

export class PbftReplica implements ReplicaCore<PbftMessage> {
  readonly id: number;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  private readonly n: number;
  private readonly f: number;
  private readonly nf: number;
  private readonly executor: Executor;
  private readonly checkpoints: CheckpointTracker;

  private view = 0;
  private inViewChange = false;
  /**
   * View changes since the last executed client batch: the wait for the j-th NEW-VIEW is
   * T * 2^(j-1), T = viewChangeTimeoutMs (PBFT §4.5.2).
   */
  private backoffExp = 0;
  private viewChangeTimerArmed = false;
  /** The view whose NEW-VIEW wait is running (armed once nf VIEW-CHANGEs for it are in), if any. */
  private newViewWaitFor: number | undefined = undefined;
  /** The wait for the NEW-VIEW of the current view change (T * 2^(j-1)). */
  private newViewWaitMs = 0;
  /** The NEW-VIEW that took this replica into its current view, re-sent to replicas that missed it. */
  private lastNewView: NewView | undefined = undefined;
  /** Which peers asking for the view this replica runs to answer, and when (pbft-view-change.ts). */
  private readonly laggards: LaggardAnswers;
  private nowMs = 0;

  private readonly slots = new Map<number, Slot>();
  /** Every slot at or below this k was garbage-collected. */
  private gcK = 0;

  // Primary state.
  private nextK = 1;
  private queue: ClientRequest[] = [];
  private queueHead = 0;
  private readonly queueMax: number;
  /** clientId -> highest reqNo assigned a sequence number or queued, not yet executed. */
  private readonly inflight = new Map<number, number>();

  /** Backup state: requests clients sent here directly, awaiting execution (clientId -> request). */
  private readonly awaited = new Map<number, ClientRequest>();
  /** Executed requests clients keep re-sending: since when (noteUnfinished). */
  private readonly unfinished = new Map<number, { reqNo: number; sinceMs: number }>();
  /** When this replica last executed anything. */
  private lastProgressMs = 0;
  /** clientId -> the request of that client last pre-prepared here and its sequence number (for retransmitFor). */
  private readonly slotOfClient = new Map<number, { reqNo: number; k: number }>();
  /** clientId -> the last reply sent, resent for retransmitted requests (PBFT §4.1). */
  private readonly replyCache = new Map<number, Reply>();

  /** CHECKPOINT votes by k, then sender (its latest digest), kept for the proof a VIEW-CHANGE carries. */
  private readonly checkpointVotes = new Map<number, Map<number, Buffer>>();
  private stableProof: CheckpointProof;

  /** Catching up: executed batches kept for others, and fetching what this replica missed (pbft-fetch.ts). */
  private readonly fetcher: BatchFetcher;

  /** VIEW-CHANGEs held (the latest from each replica, its own included) and, as a new primary, their ACKs. */
  private readonly vcLog: ViewChangeLog;
  private readonly genesisHash: Buffer;
  /** Normal-case messages for a view this replica has not entered yet. */
  private future: { from: Peer; msg: PrePrepare | Prepare | Commit }[] = [];
  private readonly futureMax: number;

  private readonly out = new Outbox<PbftMessage>();

  constructor(
    private readonly options: ReplicaOptions,
    private readonly deps: ReplicaDeps,
  ) {
    const q = quorums(options.n);
    this.id = options.id;
    this.n = q.n;
    this.f = q.f;
    this.nf = q.nf;
    if (options.windowK < options.checkpointIntervalK) {
      // Otherwise the window could fill before a checkpoint is ever taken, and stall forever.
      throw new RangeError(`windowK (${options.windowK}) must be at least checkpointIntervalK (${options.checkpointIntervalK})`);
    }
    this.store = new YcsbStore(options.records, options.valueBytes);
    this.ledger = new Ledger(deps.crypto, 0);
    this.executor = new Executor(this.store, this.ledger, false);
    this.checkpoints = new CheckpointTracker(this.nf, options.checkpointIntervalK);
    this.genesisHash = this.ledger.hashAt(0);
    this.stableProof = { k: 0, stateDigest: this.genesisHash, senders: [] };
    this.vcLog = new ViewChangeLog(deps.crypto, this.n, this.id);
    this.laggards = new LaggardAnswers(options.viewChangeTimeoutMs / 2);
    this.fetcher = new BatchFetcher({
      id: this.id,
      n: this.n,
      f: this.f,
      windowK: options.windowK,
      timeoutMs: options.viewChangeTimeoutMs,
      timerName: PBFT_TIMERS.fetch,
      statusTimerName: PBFT_TIMERS.status,
      inViewChange: () => this.inViewChange,
      crypto: deps.crypto,
      executor: this.executor,
      ledger: this.ledger,
      out: this.out,
      executeReady: () => this.executeReady(),
    });
    this.queueMax = 4 * options.windowK;
    this.futureMax = 2 * this.n * options.windowK;
  }

  // -------------------------------------------------------------------------------------
  // Small helpers

  private get stableK(): number {
    return this.checkpoints.stableK;
  }

  private isPrimary(): boolean {
    return primaryOf(this.view, this.n) === this.id;
  }

  /**
   * Sequence numbers a replica keeps state for: above its stable checkpoint and at most two
   * windows ahead. The primary proposes only one window ahead (PBFT §4.2's watermarks); the
   * second window lets a backup that has not yet collected the latest checkpoint keep the
   * pre-prepares of a primary that has.
   */
  private inWindow(k: number): boolean {
    return k > this.stableK && k <= this.stableK + 2 * this.options.windowK;
  }

  /** Replica messages name their sender; the name must be the authenticated peer. */
  private fromReplica(from: Peer, replica: number): boolean {
    return from < this.n && from !== this.id && replica === from;
  }

  private validRequest(req: ClientRequest): boolean {
    if (req.clientId === NOOP_CLIENT_ID) return false;
    const verifier = this.deps.clientVerifier(req.origin);
    if (!verifier || !this.store.validWrites(req.writes)) return false;
    return verifier.verify(req.body, req.signature);
  }

  private slotFor(k: number): Slot {
    let slot = this.slots.get(k);
    if (!slot) {
      slot = {
        k,
        view: this.view,
        pp: undefined,
        prepares: new Array<Vote | undefined>(this.n),
        commits: new Array<Vote | undefined>(this.n),
        prepareCount: 0,
        commitCount: 0,
        prepared: false,
        committed: false,
        cert: undefined,
        q: [],
        resentAtMs: -Infinity,
        resends: 0,
      };
      this.slots.set(k, slot);
    }
    return slot;
  }

  /**
   * T, or after j view changes without a new client batch executed T * 2^(j-1), the wait of the
   * last NEW-VIEW: OSDI'99 §4.4 has one timer cover the NEW-VIEW and the first new request
   * executed in the new view ("If the timer expires before it receives a valid new-view message
   * for v+1 or before it executes a request in the new view that it had not executed
   * previously, it starts the view change for view v+2 but this time it will wait 2T"). A
   * request timer of T again after a NEW-VIEW made replicas whose inputs run seconds behind
   * leave every view before its first request could run (PBFT n = 32 in the cost model).
   */
  private armViewChangeTimer(): void {
    this.out.setTimer(PBFT_TIMERS.viewChange, backoffMs(this.options.viewChangeTimeoutMs, this.backoffExp - 1));
    this.viewChangeTimerArmed = true;
  }

  private cancelViewChangeTimer(): void {
    if (!this.viewChangeTimerArmed) return;
    this.out.cancelTimer(PBFT_TIMERS.viewChange);
    this.viewChangeTimerArmed = false;
  }

  // -------------------------------------------------------------------------------------
  // Entry point

  step(input: ReplicaInput<PbftMessage>, nowMs: number): Out[] {
    // Only to space out NEW-VIEW re-sends; everything else runs on timers.
    this.nowMs = nowMs;
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
    this.fetcher.watchProgress();
    return this.out.drain();
  }

  private onMessage(from: Peer, msg: PbftMessage): void {
    switch (msg.type) {
      case MSG_REQUEST:
        return this.onRequest(from, msg);
      case MSG_PRE_PREPARE:
        return this.onPrePrepare(from, msg);
      case MSG_PREPARE:
        return this.onPrepare(from, msg);
      case MSG_COMMIT:
        return this.onCommit(from, msg);
      case MSG_CHECKPOINT:
        if (this.fromReplica(from, msg.replica)) this.onCheckpointVote(msg.replica, msg.k, msg.stateDigest);
        return;
      case MSG_VIEW_CHANGE:
        return this.onViewChange(from, msg);
      case MSG_VIEW_CHANGE_ACK:
        return this.onViewChangeAck(from, msg);
      case MSG_NEW_VIEW:
        return this.onNewView(from, msg);
      case MSG_FETCH:
        if (this.fromReplica(from, msg.replica)) this.fetcher.onFetch(from, msg);
        return;
      case MSG_BATCHES:
        if (this.fromReplica(from, msg.replica)) this.fetcher.onBatches(from, msg);
        return;
      case MSG_REPLY:
        return this.out.reject('reply sent to a replica', from);
    }
  }

  private onTimer(name: string): void {
    if (name === PBFT_TIMERS.viewChange) {
      this.viewChangeTimerArmed = false;
      if (!this.inViewChange && !this.isPrimary() && this.awaited.size > 0) this.startViewChange(this.view + 1);
    } else if (name === PBFT_TIMERS.newView) {
      if (this.inViewChange && this.newViewWaitFor === this.view) this.startViewChange(this.view + 1);
    } else if (name === PBFT_TIMERS.resendViewChange) {
      this.resendViewChange();
    } else if (name === PBFT_TIMERS.fetch) {
      this.fetcher.onTimer();
    } else if (name === PBFT_TIMERS.status) {
      this.fetcher.onStatusTimer();
    }
  }

  // -------------------------------------------------------------------------------------
  // Requests (PBFT §4.1, §4.2)

  private onRequest(from: Peer, req: ClientRequest): void {
    if (!isClientPeer(from) && from >= this.n) return;
    // Cheap duplicate checks first: a retransmission costs no signature check.
    if (this.executor.isExecuted(req)) {
      const cached = this.replyCache.get(req.clientId);
      if (cached && cached.reqNo === req.reqNo) this.out.send(clientPeer(req.origin), cached);
      // The client saw fewer than f+1 replies: others may lack our COMMIT.
      this.retransmitFor(req);
      if (isClientPeer(from)) this.noteUnfinished(req);
      return;
    }
    const primaryHere = this.isPrimary() && !this.inViewChange;
    if (primaryHere && req.reqNo <= (this.inflight.get(req.clientId) ?? -1)) {
      this.retransmitFor(req);
      return;
    }
    if (isClientPeer(from)) this.retransmitFor(req);
    if (!primaryHere && !isClientPeer(from)) return; // forwarded requests matter only to the primary
    if (!this.validRequest(req)) return this.out.reject('invalid client request', from);
    if (primaryHere) this.propose(req);
    else this.awaitRequest(req);
  }

  /**
   * Retransmission, driven by client timeouts: a request that comes again (the client broadcast
   * it, or a backup forwarded it) is one whose agreement did not finish everywhere, so this
   * replica re-sends what it sent for the request's slot in this view: the primary its
   * PRE-PREPARE, a backup its PREPARE, and either its COMMIT. PBFT assumes links that retransmit;
   * without this, COMMITs lost while a replica is down leave the others one COMMIT short for good
   * (only one replica executed, so fetching finds no f+1 that agree) until a view change that
   * nobody who executed asks for. Per slot and view, after T/4, then at doubling intervals: each
   * client re-send draws 2(n-1) messages from every replica, which under overload (latency many
   * client timeouts long) kept the inputs seconds behind for good. Nothing changes in a run
   * without client timeouts.
   */
  private retransmitFor(req: ClientRequest): void {
    const at = this.slotOfClient.get(req.clientId);
    if (!at || at.reqNo !== req.reqNo || this.inViewChange) return;
    const slot = this.slots.get(at.k);
    const pp = slot?.pp;
    if (!slot || !pp || slot.view !== this.view || !requestDigest(this.deps.crypto, req).equals(pp.digest)) return;
    if (this.nowMs - slot.resentAtMs < backoffMs(this.options.viewChangeTimeoutMs / 4, slot.resends)) return;
    slot.resentAtMs = this.nowMs;
    slot.resends++;
    // A NEW-VIEW's re-proposal (origin view below the view) is only valid inside the NEW-VIEW.
    if (this.isPrimary() && pp.originView === this.view) {
      this.out.broadcast({ type: MSG_PRE_PREPARE, replica: this.id, view: this.view, k: slot.k, originView: pp.originView, request: pp.request });
    }
    const prepare = slot.prepares[this.id];
    if (prepare) this.out.broadcast(prepare);
    const commit = slot.commits[this.id];
    if (commit) this.out.broadcast(commit);
  }

  /**
   * A client keeps re-sending a request this replica executed: fewer than f+1 replicas replied,
   * so the others are stuck before it. If nothing at all executed here for a whole timeout since
   * the first re-send, this backup suspects the primary too, as PBFT §4.5.2 has a backup suspect
   * it for a request that does not execute. Without this, a replica ahead of the others never
   * joins the view change that the ones behind ask for (f+1 are needed), and with one replica
   * down nobody can finish (found by the simulator: infra/sim/scenarios.test.ts). The same rule
   * as PoE's noteUnfinished (replica/poe.ts).
   */
  private noteUnfinished(req: ClientRequest): void {
    if (this.inViewChange || this.isPrimary() || this.executor.lastExecuted(req.clientId) !== req.reqNo) return;
    const seen = this.unfinished.get(req.clientId);
    if (!seen || seen.reqNo !== req.reqNo) {
      if (!seen && this.unfinished.size >= AWAITED_MAX) return;
      this.unfinished.set(req.clientId, { reqNo: req.reqNo, sinceMs: this.nowMs });
      return;
    }
    const timeoutMs = this.options.viewChangeTimeoutMs;
    if (this.nowMs - seen.sinceMs >= timeoutMs && this.nowMs - this.lastProgressMs >= timeoutMs) {
      this.unfinished.clear();
      this.startViewChange(this.view + 1);
    }
  }

  /** A backup got a request from its client: relay it and suspect the primary until it runs (PBFT §4.5.2). */
  private awaitRequest(req: ClientRequest): void {
    const prev = this.awaited.get(req.clientId);
    if (!prev || prev.reqNo < req.reqNo) {
      if (!prev && this.awaited.size >= AWAITED_MAX) return;
      this.awaited.set(req.clientId, req);
    }
    if (this.inViewChange) return;
    this.out.send(primaryOf(this.view, this.n), req);
    if (!this.viewChangeTimerArmed) this.armViewChangeTimer();
  }

  private propose(req: ClientRequest): void {
    if (this.queue.length - this.queueHead >= this.queueMax) return; // the client retransmits
    this.inflight.set(req.clientId, req.reqNo);
    this.queue.push(req);
    this.drainQueue();
  }

  /** Assigns sequence numbers to queued requests while the window has room (PBFT §4.2's watermarks). */
  private drainQueue(): void {
    if (!this.isPrimary() || this.inViewChange) return;
    const highK = this.stableK + this.options.windowK;
    while (this.queueHead < this.queue.length && this.nextK <= highK) {
      const req = this.queue[this.queueHead]!;
      this.queue[this.queueHead++] = undefined as unknown as ClientRequest;
      this.assign(req);
    }
    if (this.queueHead === this.queue.length) {
      this.queue = [];
      this.queueHead = 0;
    } else if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  private assign(req: ClientRequest): void {
    const k = this.nextK++;
    this.fetcher.noteK(k);
    const slot = this.slotFor(k);
    const digest = requestDigest(this.deps.crypto, req);
    this.out.broadcast({ type: MSG_PRE_PREPARE, replica: this.id, view: this.view, k, originView: this.view, request: req });
    this.acceptPrePrepare(slot, { request: req, digest, originView: this.view });
  }

  // -------------------------------------------------------------------------------------
  // Normal case (PBFT §4.2)

  /**
   * True if a normal-case message is not for the view being run: older views are dropped,
   * messages for a view not entered yet wait (bounded) until its NEW-VIEW arrives.
   */
  private notForNow(from: Peer, msg: PrePrepare | Prepare | Commit): boolean {
    if (msg.view > this.view || (msg.view === this.view && this.inViewChange)) {
      if (this.future.length < this.futureMax) this.future.push({ from, msg });
      return true;
    }
    return msg.view < this.view;
  }

  private onPrePrepare(from: Peer, m: PrePrepare): void {
    if (!this.fromReplica(from, m.replica)) return;
    if (this.inWindow(m.k)) this.fetcher.noteK(m.k);
    if (this.notForNow(from, m)) return;
    this.laggards.noteRunning(from);
    if (from !== primaryOf(m.view, this.n)) return this.out.reject('pre-prepare from a backup', from);
    if (!this.inWindow(m.k)) return;
    const slot = this.slotFor(m.k);
    if (slot.pp) return; // the first pre-prepare for (v, k) wins
    // Outside a NEW-VIEW, a primary proposes in its own view only, and only signed client batches.
    if (m.originView !== m.view || isNoop(m.request) || !this.validRequest(m.request)) {
      return this.out.reject('invalid pre-prepare', from);
    }
    this.acceptPrePrepare(slot, { request: m.request, digest: requestDigest(this.deps.crypto, m.request), originView: m.originView });
  }

  /** Logs a pre-prepare; a backup then broadcasts its PREPARE (PBFT §4.2; the primary sends none). */
  private acceptPrePrepare(slot: Slot, pp: SlotPrePrepare): void {
    slot.pp = pp;
    slot.q = notePrePrepared(slot.q, { k: slot.k, view: slot.view, originView: pp.originView, digest: pp.digest });
    // What this replica sends for the slot leaves now: a retransmission waits its interval from here.
    slot.resentAtMs = this.nowMs;
    slot.resends = 0;
    if (!isNoop(pp.request)) this.slotOfClient.set(pp.request.clientId, { reqNo: pp.request.reqNo, k: slot.k });
    if (!this.isPrimary()) {
      const prepare: Prepare = { type: MSG_PREPARE, replica: this.id, view: this.view, k: slot.k, originView: pp.originView, digest: pp.digest };
      this.out.broadcast(prepare);
      slot.prepares[this.id] = prepare;
    }
    // Count the votes that arrived before the pre-prepare.
    slot.prepareCount = 0;
    slot.commitCount = 0;
    for (let i = 0; i < this.n; i++) {
      const p = slot.prepares[i];
      if (p && matches(p, pp)) slot.prepareCount++;
      const c = slot.commits[i];
      if (c && matches(c, pp)) slot.commitCount++;
    }
    this.checkPrepared(slot);
  }

  private onPrepare(from: Peer, m: Prepare): void {
    if (!this.fromReplica(from, m.replica)) return;
    if (this.inWindow(m.k)) this.fetcher.noteK(m.k);
    if (this.notForNow(from, m)) return;
    this.laggards.noteRunning(from);
    // The primary's pre-prepare is its vote; a PREPARE from it does not count (PBFT §4.2).
    if (from === primaryOf(m.view, this.n) || !this.inWindow(m.k)) return;
    const slot = this.slotFor(m.k);
    if (slot.prepares[from]) return;
    slot.prepares[from] = m;
    if (slot.pp && matches(m, slot.pp)) {
      slot.prepareCount++;
      this.checkPrepared(slot);
    }
  }

  /**
   * prepared(m, v, k): the pre-prepare plus nf - 1 matching PREPAREs from distinct backups
   * (2f with n = 3f+1; PBFT §4.2). Then COMMIT to all (paper §4(8)).
   */
  private checkPrepared(slot: Slot): void {
    const pp = slot.pp;
    if (slot.prepared || !pp || slot.prepareCount < this.nf - 1) return;
    slot.prepared = true;
    slot.cert = { k: slot.k, view: slot.view, originView: pp.originView, digest: pp.digest, request: pp.request };
    const commit: Commit = { type: MSG_COMMIT, replica: this.id, view: this.view, k: slot.k, originView: pp.originView, digest: pp.digest };
    this.out.broadcast(commit);
    if (!slot.commits[this.id]) {
      slot.commits[this.id] = commit;
      slot.commitCount++;
    }
    this.checkCommitted(slot);
  }

  private onCommit(from: Peer, m: Commit): void {
    if (!this.fromReplica(from, m.replica)) return;
    // Even a message for another view says batches up to k exist: the progress watch may fetch them.
    if (this.inWindow(m.k)) this.fetcher.noteK(m.k);
    if (this.notForNow(from, m)) return;
    this.laggards.noteRunning(from);
    if (!this.inWindow(m.k)) return;
    const slot = this.slotFor(m.k);
    if (slot.commits[from]) return;
    slot.commits[from] = m;
    if (slot.pp && matches(m, slot.pp)) {
      slot.commitCount++;
      this.checkCommitted(slot);
    }
  }

  /** committed-local(m, v, k): prepared and nf matching COMMITs, its own included (PBFT §4.2). */
  private checkCommitted(slot: Slot): void {
    const pp = slot.pp;
    if (slot.committed || !slot.prepared || !pp || slot.commitCount < this.commitQuorum()) return;
    slot.committed = true;
    this.executor.commit(slot.k, pp.originView, pp.request, pp.digest);
    this.executeReady();
  }

  /**
   * COMMITs that make a prepared batch committed-local (PBFT §4.2: 2f+1, here nf). A seam for
   * the simulator's deliberately broken variants (infra/sim/broken.test.ts); never overridden in
   * production.
   */
  protected commitQuorum(): number {
    return this.nf;
  }

  /** Executes, strictly in order, every committed batch that continues the ledger (PBFT §4.2). */
  private executeReady(): void {
    const executions = this.executor.drain();
    if (executions.length === 0) return;
    this.lastProgressMs = this.nowMs;
    let progress = false;
    for (const ex of executions) progress = this.afterExecution(ex) || progress;
    if (progress) this.backoffExp = 0;
    if (!this.inViewChange && !this.isPrimary()) {
      // PBFT §4.5.2: stop the timer when no request is awaited, restart it on progress otherwise.
      if (this.awaited.size === 0) this.cancelViewChangeTimer();
      else this.armViewChangeTimer();
    }
  }

  /** Replies, cleans up request bookkeeping, and takes a checkpoint. True for a client batch run for the first time. */
  private afterExecution(ex: Execution): boolean {
    const req = ex.request;
    const noop = isNoop(req);
    this.fetcher.retain({ k: ex.k, originView: ex.view, request: req });
    this.out.event({ name: 'executed', k: ex.k, view: ex.view, txns: noop || ex.duplicate ? 0 : req.writes.length });
    if (!noop) {
      if (ex.duplicate) {
        // A batch that ran before: the client gets the reply of its first execution.
        const cached = this.replyCache.get(req.clientId);
        if (cached && cached.reqNo === req.reqNo) this.out.send(clientPeer(req.origin), cached);
      } else {
        const reply: Reply = {
          type: MSG_REPLY,
          replica: this.id,
          view: this.view,
          k: ex.k,
          digest: ex.digest,
          clientId: req.clientId,
          reqNo: req.reqNo,
          result: ex.blockHash,
        };
        this.replyCache.set(req.clientId, reply);
        this.out.send(clientPeer(req.origin), reply);
      }
      const inflight = this.inflight.get(req.clientId);
      if (inflight !== undefined && inflight <= req.reqNo) this.inflight.delete(req.clientId);
      const awaited = this.awaited.get(req.clientId);
      if (awaited && awaited.reqNo <= req.reqNo) this.awaited.delete(req.clientId);
    }
    if (this.checkpoints.isCheckpoint(ex.k)) {
      const cp = this.checkpoints.makeCheckpoint(this.id, ex.k, ex.blockHash);
      this.out.broadcast(cp);
      this.onCheckpointVote(this.id, ex.k, ex.blockHash);
    }
    // A batch executed before (a NEW-VIEW's re-proposal of it at another k) is no new request (OSDI'99 §4.4).
    return !noop && !ex.duplicate;
  }

  // -------------------------------------------------------------------------------------
  // Checkpoints and garbage collection (PBFT §4.3)

  private onCheckpointVote(from: number, k: number, stateDigest: Buffer): void {
    const maxK = this.stableK + 2 * this.options.windowK;
    if (k <= this.stableK || k > maxK || !this.checkpoints.isCheckpoint(k)) return;
    let bySender = this.checkpointVotes.get(k);
    if (!bySender) {
      bySender = new Map();
      this.checkpointVotes.set(k, bySender);
    }
    bySender.set(from, stateDigest); // one vote per sender and k, as the tracker counts them
    const stable = this.checkpoints.add(from, k, stateDigest, maxK);
    if (stable === undefined) return;
    const senders: number[] = [];
    for (const [sender, digest] of bySender) if (digest.equals(stateDigest)) senders.push(sender);
    this.onStable({ k: stable, stateDigest: Buffer.from(stateDigest), senders });
  }

  /** A checkpoint became stable: the proof is kept for VIEW-CHANGEs and everything below is dropped. */
  private onStable(proof: CheckpointProof): void {
    this.stableProof = proof;
    for (const k of [...this.checkpointVotes.keys()]) if (k <= proof.k) this.checkpointVotes.delete(k);
    if (proof.k - this.gcK <= this.slots.size) {
      for (let k = this.gcK + 1; k <= proof.k; k++) this.slots.delete(k);
    } else {
      for (const k of [...this.slots.keys()]) if (k <= proof.k) this.slots.delete(k);
    }
    this.gcK = proof.k;
    this.executor.forget(Math.min(proof.k, this.executor.executedK));
    this.fetcher.forgetBelow(proof.k);
    this.out.event({ name: 'checkpointStable', k: proof.k });
    // Overtaken by a checkpoint: the fetcher decides whether to fetch at once.
    this.fetcher.onStable(proof, !this.slots.get(this.executor.executedK + 1)?.pp);
    this.drainQueue();
  }

  // -------------------------------------------------------------------------------------
  // View change (TOCS 2002 §4; the rule and the log are in replica/pbft-view-change.ts)

  /** Moves to view w and asks for it: VIEW-CHANGE(w, h, C, P, Q) to all. */
  private startViewChange(w: number): void {
    this.view = w;
    this.inViewChange = true;
    this.newViewWaitMs = backoffMs(this.options.viewChangeTimeoutMs, this.backoffExp);
    this.backoffExp = nextBackoffExp(this.backoffExp);
    this.newViewWaitFor = undefined;
    this.out.cancelTimer(PBFT_TIMERS.newView);
    this.queue = [];
    this.queueHead = 0;
    this.inflight.clear();
    this.cancelViewChangeTimer();
    const prepared: PreparedCert[] = [];
    const prePrepared: PrePreparedInfo[] = [];
    for (const slot of this.slots.values()) {
      if (slot.k <= this.stableK) continue;
      if (slot.cert) prepared.push(slot.cert);
      prePrepared.push(...slot.q);
    }
    prepared.sort((a, b) => a.k - b.k);
    prePrepared.sort((a, b) => a.k - b.k || b.view - a.view);
    // C beyond the stable checkpoint: the checkpoints this replica executed through since.
    const taken: CheckpointClaim[] = [];
    const interval = this.options.checkpointIntervalK;
    for (let k = this.stableK + interval; k <= this.executor.executedK; k += interval) taken.push({ k, stateDigest: this.ledger.hashAt(k) });
    const vc: ViewChange = { type: MSG_VIEW_CHANGE, replica: this.id, view: w, checkpoint: this.stableProof, taken, prepared, prePrepared };
    this.vcLog.record(vc);
    this.out.broadcast(vc);
    this.out.setTimer(PBFT_TIMERS.resendViewChange, this.options.viewChangeTimeoutMs / 2);
    this.out.event({ name: 'viewChangeStarted', view: w });
    this.future = this.future.filter((e) => e.msg.view >= w);
    this.startNewViewWait();
    if (primaryOf(w, this.n) === this.id) this.tryNewView();
  }

  /**
   * PBFT §4.5.2: "a replica that multicasts a VIEW-CHANGE message for view v+1 waits for 2f+1
   * VIEW-CHANGE messages for view v+1 and then starts its timer". Without this, a replica whose
   * peers' VIEW-CHANGEs were lost runs through views alone and the others can never catch up
   * with it (its views are f+1 short of anybody joining).
   */
  private startNewViewWait(): void {
    if (!this.inViewChange || this.newViewWaitFor === this.view) return;
    if (this.vcLog.forView(this.view).length < this.nf) return;
    this.newViewWaitFor = this.view;
    this.out.setTimer(PBFT_TIMERS.newView, this.newViewWaitMs);
  }

  /**
   * Links may lose a VIEW-CHANGE (the paper's ResilientDB and the simulator drop messages; PBFT
   * assumes retransmission): while the view change lasts, the replica re-sends its own every half
   * timeout, so before the shortest NEW-VIEW wait runs out. The replicas that already entered the
   * view answer with its NEW-VIEW or their own VIEW-CHANGE (onViewChange).
   */
  private resendViewChange(): void {
    if (!this.inViewChange) return;
    const own = this.vcLog.own;
    if (own && own.view === this.view) this.out.broadcast(own);
    this.out.setTimer(PBFT_TIMERS.resendViewChange, this.options.viewChangeTimeoutMs / 2);
  }

  /**
   * A replica asks for a view we already run: it lost our NEW-VIEW (we are its primary) or needs
   * our VIEW-CHANGE to check the NEW-VIEW's V (we are a backup). Not if it showed it runs the
   * view, and at doubling intervals each (LaggardAnswers: our answer is a VIEW-CHANGE too).
   */
  private answerLaggard(to: number): void {
    if (to === this.id || !this.laggards.answerNow(to, this.nowMs)) return;
    const nv = this.lastNewView;
    const own = this.vcLog.own;
    // Our VIEW-CHANGE first: the NEW-VIEW's V may hold it, and the laggard checks V against it.
    if (own && own.view === this.view) this.out.send(to, own);
    if (this.isPrimary() && nv && nv.view === this.view) this.out.send(to, nv);
  }

  private validViewChange(vc: ViewChange, requireRequests: boolean): boolean {
    const { n, f } = this;
    return wellFormedViewChange(vc, { n, f, windowK: this.options.windowK, checkpointIntervalK: this.options.checkpointIntervalK }, requireRequests);
  }

  private onViewChange(from: Peer, m: ViewChange): void {
    if (!this.fromReplica(from, m.replica)) return;
    if (!this.validViewChange(m, true)) return this.out.reject('invalid view-change', from);
    // Only views not yet entered matter; the others would just hold memory. A replica still
    // asking for the view we run (or an earlier one) missed its NEW-VIEW or our VIEW-CHANGE.
    if (m.view < this.view || (m.view === this.view && !this.inViewChange)) {
      if (!this.inViewChange && m.view === this.view) this.answerLaggard(m.replica);
      return;
    }
    // TOCS 2002 §4: tell the new primary what we received (again on a re-send: ACKs get lost too).
    const ack = this.vcLog.ackFor(m);
    const held = this.vcLog.get(from, m.view);
    if (held && !this.vcLog.digestOf(held).equals(this.vcLog.digestOf(m))) return this.out.reject('two view-changes for one view', from);
    if (ack) this.out.send(primaryOf(m.view, this.n), ack);
    if (!held && !this.vcLog.record(m)) return;
    if (m.view > this.view) {
      // PBFT §4.5.2: f+1 replicas asking for higher views prove a non-faulty one timed out; join
      // the smallest of those views.
      const { count, minView } = this.vcLog.higherThan(this.view);
      if (count >= this.f + 1) return this.startViewChange(minView);
    }
    if (this.inViewChange && m.view === this.view) {
      this.startNewViewWait();
      if (this.isPrimary()) this.tryNewView();
    }
    this.retryPendingNewView();
  }

  private onViewChangeAck(from: Peer, m: ViewChangeAck): void {
    if (!this.fromReplica(from, m.replica)) return;
    if (primaryOf(m.view, this.n) !== this.id || m.view < this.view || (m.view === this.view && !this.inViewChange)) return;
    this.vcLog.recordAck(m);
    if (this.inViewChange && m.view === this.view) this.tryNewView();
  }

  /**
   * The new primary, once the VIEW-CHANGEs it may use (its own, and those nf - 2 others acked)
   * number nf and decide every sequence number, sends NEW-VIEW (TOCS 2002 §4).
   */
  private tryNewView(): void {
    const own = this.vcLog.own;
    if (!own || own.view !== this.view) return;
    const vcs = this.vcLog.vouched(this.view, this.nf);
    if (vcs.length < this.nf) return;
    const plan = decideNewView({ ...this.decideContext(), requestFor: (k, digest) => this.findRequest(vcs, k, digest) }, this.view, vcs);
    if (!plan) return;
    const entries: NewViewEntry[] = plan.entries.map((e) => ({ k: e.k, originView: e.originView, request: e.request! }));
    const nv: NewView = { type: MSG_NEW_VIEW, replica: this.id, view: this.view, viewChanges: vcs.map(stripRequests), prePrepares: entries };
    this.out.broadcast(nv);
    this.lastNewView = nv;
    this.enterView(plan, entries);
  }

  private decideContext() {
    return { crypto: this.deps.crypto, quorums: { n: this.n, f: this.f, nf: this.nf }, genesis: this.genesisHash };
  }

  /** A3: the batch with this digest from any VIEW-CHANGE of V that carries it, with a valid signature (or k's null request). */
  private findRequest(vcs: readonly ViewChange[], k: number, digest: Buffer): ClientRequest | undefined {
    for (const vc of vcs) {
      for (const c of vc.prepared) {
        if (c.k !== k || !c.request || !c.digest.equals(digest)) continue;
        if (!requestDigest(this.deps.crypto, c.request).equals(digest)) continue;
        if (isNoop(c.request) || this.validRequest(c.request)) return c.request;
      }
    }
    return undefined;
  }

  /**
   * A backup checks NEW-VIEW (TOCS 2002 §4): every VIEW-CHANGE in V must be the one its sender
   * sent this replica (it asks the senders for copies it lacks and waits), and O must be what
   * the decision rule gives on V.
   */
  private onNewView(from: Peer, m: NewView): void {
    if (!this.fromReplica(from, m.replica)) return;
    if (from !== primaryOf(m.view, this.n)) return this.out.reject('new-view from a non-primary', from);
    if (m.view < this.view || (m.view === this.view && !this.inViewChange)) return;
    const senders = new Set<number>();
    for (const vc of m.viewChanges) {
      if (vc.view !== m.view || senders.has(vc.replica) || !this.validViewChange(vc, false)) {
        return this.out.reject('new-view with an invalid view-change', from);
      }
      senders.add(vc.replica);
    }
    if (senders.size < this.nf) return this.out.reject('new-view with fewer than nf view-changes', from);
    const check = this.vcLog.checkV(m);
    if (check === 'forged') return this.out.reject('new-view with a view-change its sender did not send', from);
    if (check !== 'ok') {
      // Wait for the senders' own copies: our VIEW-CHANGE for the view asks them for theirs.
      this.vcLog.pendingNewView = m;
      const own = this.vcLog.own;
      for (const r of check) if (own && own.view === m.view) this.out.send(r, own);
      return;
    }
    this.acceptNewView(from, m);
  }

  /** A NEW-VIEW that waited for VIEW-CHANGE copies: checked again once one arrives. */
  private retryPendingNewView(): void {
    const nv = this.vcLog.pendingNewView;
    if (!nv) return;
    if (nv.view < this.view || (nv.view === this.view && !this.inViewChange)) {
      this.vcLog.pendingNewView = undefined;
      return;
    }
    const check = this.vcLog.checkV(nv);
    if (check === 'forged') {
      this.vcLog.pendingNewView = undefined;
      return this.out.reject('new-view with a view-change its sender did not send', nv.replica);
    }
    if (check === 'ok') {
      this.vcLog.pendingNewView = undefined;
      this.acceptNewView(nv.replica, nv);
    }
  }

  private acceptNewView(from: Peer, m: NewView): void {
    const plan = decideNewView(this.decideContext(), m.view, m.viewChanges);
    if (!plan || m.prePrepares.length !== plan.entries.length) return this.out.reject('new-view with a wrong O', from);
    for (let i = 0; i < plan.entries.length; i++) {
      const want = plan.entries[i]!;
      const got = m.prePrepares[i]!;
      if (got.k !== want.k || got.originView !== want.originView) return this.out.reject('new-view with a wrong O', from);
      if (!requestDigest(this.deps.crypto, got.request).equals(want.digest)) return this.out.reject('new-view with a wrong O', from);
      // The digest matched, so a null request here is exactly noopRequest(k).
      if (!isNoop(got.request) && !this.validRequest(got.request)) return this.out.reject('new-view with an invalid request', from);
    }
    this.view = m.view;
    this.lastNewView = m;
    this.enterView(plan, m.prePrepares);
  }

  /**
   * Enters view `this.view` with O: every sequence number restarts its agreement in the new
   * view (certificates are kept for later view changes), O's pre-prepares are logged and the
   * backups PREPARE them; the new primary continues after max-s.
   */
  private enterView(plan: NewViewPlan, entries: readonly NewViewEntry[]): void {
    const w = this.view;
    this.inViewChange = false;
    this.newViewWaitFor = undefined;
    this.laggards.reset();
    this.unfinished.clear();
    this.out.cancelTimer(PBFT_TIMERS.newView);
    this.out.cancelTimer(PBFT_TIMERS.resendViewChange);
    this.adoptCheckpoint(plan.checkpoint);
    for (const slot of this.slots.values()) {
      if (!slot.cert && slot.q.length === 0) {
        this.slots.delete(slot.k);
        continue;
      }
      slot.view = w;
      slot.pp = undefined;
      slot.prepares = new Array<Vote | undefined>(this.n);
      slot.commits = new Array<Vote | undefined>(this.n);
      slot.prepareCount = 0;
      slot.commitCount = 0;
      slot.prepared = false;
      slot.committed = false;
    }
    const primary = this.isPrimary();
    if (primary) {
      this.inflight.clear();
      this.queue = [];
      this.queueHead = 0;
    }
    for (const e of entries) {
      if (!this.inWindow(e.k)) continue;
      const digest = requestDigest(this.deps.crypto, e.request);
      this.acceptPrePrepare(this.slotFor(e.k), { request: e.request, digest, originView: e.originView });
      if (primary && !isNoop(e.request)) {
        this.inflight.set(e.request.clientId, Math.max(e.request.reqNo, this.inflight.get(e.request.clientId) ?? -1));
      }
    }
    // VIEW-CHANGEs up to this view served their purpose; they can be large.
    this.vcLog.clearUpTo(w);
    // Sequence numbers above max-s from earlier views are abandoned: nothing to fetch there.
    this.fetcher.resetKnownHigh(Math.max(plan.maxS, plan.minS, this.executor.executedK));
    this.out.event({ name: 'viewEntered', view: w });
    if (primary) {
      this.nextK = Math.max(plan.maxS, plan.minS) + 1;
      this.cancelViewChangeTimer();
      // Requests clients sent here while the old primary was failing: propose them now rather
      // than after the clients' next timeout.
      for (const req of this.awaited.values()) {
        if (!this.executor.isExecuted(req) && req.reqNo > (this.inflight.get(req.clientId) ?? -1)) this.propose(req);
      }
      this.awaited.clear();
    } else if (this.awaited.size > 0) {
      for (const req of this.awaited.values()) this.out.send(primaryOf(w, this.n), req);
      this.armViewChangeTimer();
    } else {
      this.cancelViewChangeTimer();
    }
    const pending = this.future;
    this.future = [];
    for (const e of pending) {
      if (e.msg.view === w) this.onMessage(e.from, e.msg);
      else if (e.msg.view > w) this.future.push(e);
    }
  }

  /**
   * Takes the new view's checkpoint (min-s) as stable: O starts above it, so a replica that has
   * not executed up to it fetches the batches (onStable) instead of waiting for them forever.
   */
  private adoptCheckpoint(proof: CheckpointProof): void {
    if (proof.k <= this.stableK) return;
    if (proof.k <= this.executor.executedK && !this.ledger.hashEquals(proof.k, proof.stateDigest)) return;
    // The decision rule took it from f+1 VIEW-CHANGEs, so a non-faulty replica executed to this
    // very state: it counts as certified even when V named fewer than nf replicas with it.
    const senders = proof.senders.length >= this.nf ? proof.senders : Array.from({ length: this.n }, (_, i) => i);
    for (const s of senders) {
      const stable = this.checkpoints.add(s, proof.k, proof.stateDigest, proof.k);
      if (stable !== undefined) return this.onStable(proof);
    }
  }

  // -------------------------------------------------------------------------------------
  // Inspection

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: this.view,
      executedK: this.executor.executedK,
      stableK: this.stableK,
      inViewChange: this.inViewChange,
      logEntries: this.slots.size,
    };
  }

  /** Sizes of every per-request structure, for tests that check memory stays bounded. */
  memory(): Record<string, number> {
    return {
      slots: this.slots.size,
      queue: this.queue.length - this.queueHead,
      inflight: this.inflight.size,
      awaited: this.awaited.size,
      replyCache: this.replyCache.size,
      checkpointVotes: this.checkpointVotes.size,
      trackerVotes: this.checkpoints.pendingCheckpoints,
      executorPending: this.executor.pendingCount,
      future: this.future.length,
      ...this.fetcher.sizes,
      viewChangeLog: this.vcLog.size,
      laggardAnswers: this.laggards.size,
      undoDepth: this.store.undoDepth,
    };
  }
}

/**
 * How the Byzantine wrappers (replica/byzantine.ts) see PBFT's proposals: the primary's
 * PRE-PREPARE (PBFT §4.2). It is authenticated by the transport's MACs, not signed, so one with
 * another client batch (the batch keeps its client's signature) is a valid conflicting proposal.
 */
export const pbftFaultHooks: FaultHooks<PbftMessage> = {
  proposalSlot: (msg) => (msg.type === MSG_PRE_PREPARE ? { view: msg.view, k: msg.k } : undefined),
  withBatchOf: (target, source) => {
    if (target.type !== MSG_PRE_PREPARE || source.type !== MSG_PRE_PREPARE) throw new TypeError('pbft withBatchOf: both messages must be PRE-PREPARE');
    return { ...target, request: source.request };
  },
};

export const pbft: ProtocolModule<PbftMessage> = {
  name: 'pbft',
  codec: pbftCodec,
  createReplica: (options, deps) => new PbftReplica(options, deps),
  createClientPolicy: (options) => new PbftClientPolicy(options),
  faults: pbftFaultHooks,
};
