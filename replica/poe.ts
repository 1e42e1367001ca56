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
 *   checkpoint agrees with its own state (its ledger hash there, its own certified stable
 *   checkpoint, or blocks chained onto its ledger), so the base holds every batch a client
 *   accepted (the argument of Proposition 3.5). f+1 matching claims certify a checkpoint.
 * - Gaps in E': each E is consecutive from its sender's stable checkpoint up (Figure 5, line 9
 *   condition 1), and every sender's checkpoint is at most the base, so the union above the
 *   base is consecutive. A gap therefore cannot arise from valid requests; should one appear
 *   anyway, E' is cut at the first missing sequence number (buildNewView) and the cut is what
 *   validating replicas rebuild and compare, so the replicas still agree.
 * - Failure detection (§3.3.1 (1)): a backup expects progress on every client request it
 *   forwarded to the primary. This also covers a primary that leaves a hole (Example 3.4,
 *   case 3): the clients behind the hole time out and broadcast. A backup also detects failure
 *   when a client keeps re-sending a request it executed while nothing executes for a whole
 *   timeout (fewer than nf replicas executed it). A replica that merely missed messages does not
 *   start a view change on its own (it would halt alone, for good): it fetches first.
 * - Liveness (Theorem 3.7): the new-view timer ticks every half timeout during a view change;
 *   once nf VC-REQUESTs for the view are in (as in PBFT, so one isolated replica does not run
 *   through views alone), a full timeout without the new view, or an invalid NV-PROPOSE, makes
 *   the replica request the next view with a doubled timeout. A replica also joins the highest
 *   view that f+1 distinct replicas request (line 6, generalised as in PBFT). It never enters a
 *   view it asked to leave: its VC-REQUEST for that view would be stale (Proposition 3.5).
 * - Lost messages (the paper assumes reliable links for liveness; the simulator and a crashing
 *   primary do not provide them): a client's re-sent request makes the primary re-broadcast its
 *   PROPOSE and backups their SUPPORT; each new-view timer tick re-sends the replica's own
 *   VC-REQUESTs, which others answer with their VC-ACK, NV-PROPOSE or NV-ACK and own VC-REQUEST.
 *   None of this adds a message to a fault-free run.
 * - Recovery (paper §4(6)): FETCH / BLOCKS. A replica behind a certified checkpoint fetches the
 *   blocks from a peer and accepts them if they chain onto its ledger to the certified hash;
 *   blocks of a later view make it ask to leave its own view. A replica that merely seems behind
 *   asks everybody for the blocks of its view above that, and executes a block f+1 replicas sent
 *   alike (voteTail): the last batches of a run, which no checkpoint certifies and no client
 *   retransmits once nf others executed them. It does so during a view change too: a replica
 *   whose NV-PROPOSE and NV-ACKs were lost gives up alone on a view the others entered, and
 *   never enters a view it asked to leave; it stays in its view change, executing those
 *   blocks below the next checkpoint and sending no INFORM for them until it enters a view
 *   (its VC-REQUEST does not list them), until certified checkpoints or the next view change
 *   take it further.
 *
 * Files, split by sub-state (STYLE.md: raft's tracker/, TigerBeetle's client_sessions): this core
 * (the normal case, checkpoints, failure detection, starting and entering views);
 * poe-view-change.ts, the view-change log (Figure 5: requests, acknowledgements, the new-view
 * proposal and its validation); poe-fetch.ts, the block fetcher (§4(6)); poe-wire.ts, the
 * messages and codec; poe-client.ts, the client rule; poe-state.ts, what they share. All
 * write their outputs to one Outbox, so a step's outputs leave in the order they were made.
 *
 * Not implemented: state transfer of the store. A replica further behind than the archive of
 * garbage-collected requests (ReplicaOptions.extra.archiveK sequence numbers, default two
 * windows) cannot catch up: after a long partition it stays behind, and counts as faulty.
 */
import type { FaultHooks } from './byzantine.js';
import { backoffMs, nextBackoffExp } from './backoff.js';
import { CheckpointTracker, Executor, type Execution, sameBytes } from './common.js';
import type { CryptoProvider } from './crypto.js';
import { Ledger } from './ledger.js';
import type { Checkpoint, ClientRequest } from './messages.js';
import { isNoop, MSG_CHECKPOINT, MSG_REQUEST, requestDigest } from './messages.js';
import { Outbox } from './outbox.js';
import { PoeClientPolicy } from './poe-client.js';
import { type FetchCore, PoeBlockFetcher } from './poe-fetch.js';
import { POE_TIMERS, type PoeParams, RETRY_DIVISOR, Slot } from './poe-state.js';
import { buildNewView, PoeViewChange, type VcRecord, type ViewChangeCore } from './poe-view-change.js';
import {
  type ExecutionEntry,
  MSG_BLOCKS,
  MSG_FETCH,
  MSG_INFORM,
  MSG_NV_ACK,
  MSG_NV_PROPOSE,
  MSG_PROPOSE,
  MSG_SUPPORT,
  MSG_VC_ACK,
  MSG_VC_REQUEST,
  type NvPropose,
  type PoeMessage,
  type Propose,
  poeCodec,
  type Support,
  type VcRequest,
  messageDigest,
} from './poe-wire.js';
import type { ClientPolicyOptions, ProtocolModule } from './protocol.js';
import { YcsbStore } from './store.js';
import type { Peer, ReplicaCore, ReplicaDeps, ReplicaInput, ReplicaOptions, ReplicaOutput, ReplicaStatus } from './types.js';
import { clientPeer, isClientPeer, primaryOf, quorums } from './types.js';

// The wire types, the client rule and the sub-state classes, for the modules and tests that import them from here.
export * from './poe-wire.js';
export { PoeClientPolicy } from './poe-client.js';
export { POE_TIMERS } from './poe-state.js';
export { buildNewView, type VcRecord } from './poe-view-change.js';

// ---------------------------------------------------------------------------------------
// Replica

/** Requests the primary holds while the window is full (fixed bound: TigerBeetle style). */
const QUEUE_MAX = 1 << 16;
/** Client requests a backup forwarded and awaits progress on; one per logical client. */
const FORWARDED_MAX = 1 << 20;

/**
 * What a LiveView reads from its core, each on every access: a getter of the core's state per
 * field, and its operations. (LiveView implements FetchCore and ViewChangeCore: a member either
 * gains must be added here too, or LiveView does not compile.)
 */
interface LiveReads {
  view(): number;
  enteredView(): number;
  inViewChange(): boolean;
  viewStartK(): number;
  viewBase(): { readonly k: number; readonly digest: Buffer };
  stableK(): number;
  stableDigest(): Buffer;
  gcK(): number;
  maxSeenK(): number;
  lastProgressMs(): number;
  nowMs(): number;
  validRequest(req: ClientRequest): boolean;
  startViewChange(v: number): void;
  makeStable(k: number, digest: Buffer): void;
  newViewProposal(view: number, records: readonly VcRecord[]): NvPropose;
  enterView(m: NvPropose): void;
  makeCheckpoint(k: number, digest: Buffer): Checkpoint;
  commitKnown(k: number, view: number, request: ClientRequest, digest: Buffer): void;
  executeReady(): void;
  rollBack(keepK: number): void;
  acknowledgeAll(): void;
  extendClaims(entries: readonly ExecutionEntry[]): boolean;
}

/**
 * The core as its view-change log and block fetcher see it: the core's current state on every
 * read (not a copy), and its operations. A class, so that V8 keeps one fast shape for it: getters
 * added to an object with Object.defineProperty, or written in an object literal, leave the
 * object a dictionary, and the fetcher reads several of these in every step.
 */
class LiveView implements FetchCore, ViewChangeCore {
  readonly executor: Executor;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  readonly slots: Map<number, Slot>;
  readonly retryIntervalMs: number;

  constructor(
    fixed: Pick<FetchCore, 'executor' | 'ledger' | 'store' | 'slots' | 'retryIntervalMs'>,
    private readonly r: LiveReads,
  ) {
    this.executor = fixed.executor;
    this.ledger = fixed.ledger;
    this.store = fixed.store;
    this.slots = fixed.slots;
    this.retryIntervalMs = fixed.retryIntervalMs;
  }

  get view(): number {
    return this.r.view();
  }
  get enteredView(): number {
    return this.r.enteredView();
  }
  get inViewChange(): boolean {
    return this.r.inViewChange();
  }
  get viewStartK(): number {
    return this.r.viewStartK();
  }
  get viewBase(): { readonly k: number; readonly digest: Buffer } {
    return this.r.viewBase();
  }
  get stableK(): number {
    return this.r.stableK();
  }
  get stableDigest(): Buffer {
    return this.r.stableDigest();
  }
  get gcK(): number {
    return this.r.gcK();
  }
  get maxSeenK(): number {
    return this.r.maxSeenK();
  }
  get lastProgressMs(): number {
    return this.r.lastProgressMs();
  }
  get nowMs(): number {
    return this.r.nowMs();
  }
  validRequest(req: ClientRequest): boolean {
    return this.r.validRequest(req);
  }
  startViewChange(v: number): void {
    this.r.startViewChange(v);
  }
  makeStable(k: number, digest: Buffer): void {
    this.r.makeStable(k, digest);
  }
  newViewProposal(view: number, records: readonly VcRecord[]): NvPropose {
    return this.r.newViewProposal(view, records);
  }
  enterView(m: NvPropose): void {
    this.r.enterView(m);
  }
  makeCheckpoint(k: number, digest: Buffer): Checkpoint {
    return this.r.makeCheckpoint(k, digest);
  }
  commitKnown(k: number, view: number, request: ClientRequest, digest: Buffer): void {
    this.r.commitKnown(k, view, request, digest);
  }
  executeReady(): void {
    this.r.executeReady();
  }
  rollBack(keepK: number): void {
    this.r.rollBack(keepK);
  }
  acknowledgeAll(): void {
    this.r.acknowledgeAll();
  }
  extendClaims(entries: readonly ExecutionEntry[]): boolean {
    return this.r.extendClaims(entries);
  }
}

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
  /** Fetches, probes and retransmissions repeat at most this often (fixed: the base timeout is). */
  private readonly retryIntervalMs: number;

  private readonly params: PoeParams;
  private readonly outbox = new Outbox<PoeMessage>();
  /** The view-change log (Figure 5) and the block fetcher (§4(6)): sub-state with its own invariants. */
  private readonly vc: PoeViewChange;
  private readonly fetcher: PoeBlockFetcher;
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
  /** Primary: the next sequence number to assign (Figure 3, line 8). */
  private nextK = 1;
  /** Primary: highest reqNo per client proposed or queued in this view and not yet executed (dedup). */
  private readonly proposedReqNo = new Map<number, number>();
  /** Primary: the sequence number each client's in-flight request was proposed at (for retransmission). */
  private readonly proposedK = new Map<number, number>();
  /** Primary: requests waiting for the window to move (bounded by QUEUE_MAX). */
  private queue: ClientRequest[] = [];
  private queueHead = 0;
  /** Per client, the k at which its latest executed request ran (to re-send the INFORM). */
  private readonly informK = new Map<number, number>();
  /** PROPOSE and SUPPORT messages of the next view, replayed on entry (bounded). */
  private future: { from: number; msg: Propose | Support }[] = [];
  private readonly futureMax: number;

  // --- checkpoints and block recovery
  /**
   * The stable checkpoint and the state digest it was certified with: nf matching CHECKPOINTs
   * (the tracker), or f+1 replicas claiming it stable in their VC-REQUESTs (adoptClaimedCheckpoint).
   */
  private stable: { k: number; digest: Buffer };
  /** Slots, undo records and executor state up to here were garbage-collected. */
  private gcK = 0;
  private readonly archiveK: number;
  /** The checkpoint the current view started from (NV-PROPOSE stableK and digest). */
  private viewBase: { k: number; digest: Buffer };
  /**
   * Highest k seen in any PROPOSE, SUPPORT or CHECKPOINT, of any view (evidence that others
   * progressed: a hint to probe, never trusted for anything else), and when we last executed.
   */
  private maxSeenK = 0;
  private lastProgressMs = 0;

  // --- failure detection (§3.3.1)
  /** Client requests received directly (the client broadcast them) and awaiting execution, oldest first. */
  private readonly forwarded = new Map<number, { request: ClientRequest; deadlineMs: number }>();
  /** Executed requests clients keep re-sending: since when (noteUnfinished). */
  private readonly unfinished = new Map<number, { reqNo: number; sinceMs: number }>();
  /** Failure detection waits until here while we fetch (onViewChangeTimer), and which request we probed for. */
  private deferFailureUntilMs = -Infinity;
  private probedFor = '';
  /** Deadline the `vc` timer is armed for, if armed. */
  private vcTimerDeadlineMs: number | undefined = undefined;

  constructor(
    options: ReplicaOptions,
    private readonly deps: ReplicaDeps,
  ) {
    const q = quorums(options.n);
    if (!Number.isInteger(options.id) || options.id < 0 || options.id >= options.n)
      throw new RangeError(`replica id ${options.id} outside 0..${options.n - 1}`);
    if (!Number.isInteger(options.windowK) || options.windowK < options.checkpointIntervalK) {
      throw new RangeError(`windowK (${options.windowK}) must be an integer >= checkpointIntervalK (${options.checkpointIntervalK})`);
    }
    this.id = options.id;
    this.n = q.n;
    this.f = q.f;
    this.nf = q.nf;
    this.crypto = deps.crypto;
    this.windowK = options.windowK;
    const archiveK = options.extra?.['archiveK'];
    this.archiveK = typeof archiveK === 'number' && Number.isInteger(archiveK) && archiveK >= 0 ? archiveK : 2 * options.windowK;
    this.baseTimeoutMs = options.viewChangeTimeoutMs;
    this.retryIntervalMs = Math.max(1, this.baseTimeoutMs / RETRY_DIVISOR);
    this.store = new YcsbStore(options.records, options.valueBytes);
    this.ledger = new Ledger(deps.crypto, 0);
    // Speculative: PoE executes before it knows the order is final and may roll back (§3.3.5).
    this.executor = new Executor(this.store, this.ledger, true);
    this.checkpoints = new CheckpointTracker(this.nf, options.checkpointIntervalK);
    this.futureMax = this.windowK * this.n;
    this.stable = { k: 0, digest: this.ledger.hashAt(0) };
    this.viewBase = this.stable;
    this.params = {
      id: this.id,
      n: this.n,
      f: this.f,
      nf: this.nf,
      crypto: this.crypto,
      windowK: this.windowK,
      intervalK: options.checkpointIntervalK,
      archiveK: this.archiveK,
    };
    const live = this.liveView();
    this.vc = new PoeViewChange(this.params, this.outbox, live);
    this.fetcher = new PoeBlockFetcher(this.params, this.outbox, live);
  }

  /** What the view-change log (replica/poe-view-change.ts) and the block fetcher (replica/poe-fetch.ts) see of this core. */
  private liveView(): LiveView {
    return new LiveView(
      { executor: this.executor, ledger: this.ledger, store: this.store, slots: this.slots, retryIntervalMs: this.retryIntervalMs },
      {
        view: () => this.view,
        enteredView: () => this.enteredView,
        inViewChange: () => this.inViewChange,
        viewStartK: () => this.viewStartK,
        viewBase: () => this.viewBase,
        stableK: () => this.stableK,
        stableDigest: () => this.stableDigest,
        gcK: () => this.gcK,
        maxSeenK: () => this.maxSeenK,
        lastProgressMs: () => this.lastProgressMs,
        nowMs: () => this.nowMs,
        validRequest: (req) => this.validRequest(req),
        startViewChange: (v) => this.startViewChange(v),
        makeStable: (k, digest) => this.makeStable(k, digest),
        newViewProposal: (view, records) => this.newViewProposal(view, records),
        enterView: (m) => this.enterView(m),
        makeCheckpoint: (k, digest) => this.checkpoints.makeCheckpoint(this.id, k, digest),
        commitKnown: (k, view, request, digest) => this.commitKnown(k, view, request, digest),
        executeReady: () => this.executeReady(),
        rollBack: (keepK) => this.rollBack(keepK),
        acknowledgeAll: () => this.vc.acknowledgeAll(),
        extendClaims: (entries) => this.vc.extendClaims(entries),
      },
    );
  }

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

  step(input: ReplicaInput<PoeMessage>, nowMs: number): ReplicaOutput<PoeMessage>[] {
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
    this.armViewChangeTimer();
    this.fetcher.armFetchTimer();
    this.fetcher.armStatusTimer();
    return this.outbox.drain();
  }

  // -------------------------------------------------------------------------------------
  // Plumbing

  private get stableK(): number {
    return this.stable.k;
  }

  private get stableDigest(): Buffer {
    return this.stable.digest;
  }

  private get timeoutMs(): number {
    return backoffMs(this.baseTimeoutMs, this.backoffExp);
  }

  private isPrimary(): boolean {
    return primaryOf(this.view, this.n) === this.id;
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
      else this.outbox.reject(`message type ${msg.type} from a client`, from);
      return;
    }
    if (!Number.isInteger(from) || from < 0 || from >= this.n || from === this.id) {
      this.outbox.reject('unknown sender', from);
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
        this.vc.onViewChangeRequest(from, msg);
        break;
      case MSG_VC_ACK:
        this.vc.onViewChangeAck(from, msg);
        break;
      case MSG_NV_PROPOSE:
        this.vc.onNewViewPropose(from, msg);
        break;
      case MSG_NV_ACK:
        this.vc.onNewViewAck(from, msg);
        break;
      case MSG_FETCH:
        // Its sender executed up to fromK - 1 (a hint, bounded as for CHECKPOINT: onStatusTimer).
        if (msg.fromK - 1 > this.maxSeenK && msg.fromK - 1 <= this.lowWatermarkK + 4 * this.windowK + this.archiveK) this.maxSeenK = msg.fromK - 1;
        this.fetcher.onFetch(from, msg);
        break;
      case MSG_BLOCKS:
        this.fetcher.onBlocks(from, msg);
        break;
      default:
        this.outbox.reject(`unexpected message type ${msg.type}`, from);
    }
  }

  private onTimer(name: string): void {
    if (name === POE_TIMERS.viewChange) this.onViewChangeTimer();
    else if (name === POE_TIMERS.newView) this.onNewViewTimer();
    else if (name === POE_TIMERS.fetch) this.fetcher.onFetchTimer();
    else if (name === POE_TIMERS.status) this.fetcher.onStatusTimer();
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
      this.outbox.reject('invalid client request', from);
      return;
    }
    if (this.executor.isExecuted(req)) {
      this.resendInform(req);
      // The client (or a backup forwarding for it) did not see nf INFORMs: help the others execute it.
      if (this.isPrimary() && !this.inViewChange) {
        const k = this.informK.get(req.clientId);
        if (k !== undefined && this.executor.lastExecuted(req.clientId) === req.reqNo) this.retransmit(k);
      } else if (isClientPeer(from)) {
        this.noteUnfinished(req);
      }
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
      if (!this.inViewChange) this.outbox.send(primaryOf(this.view, this.n), known.request);
      return;
    }
    if (!known && this.forwarded.size >= FORWARDED_MAX) {
      this.outbox.reject('forwarded-request table full', from);
      return;
    }
    // Delete first so the map stays ordered by deadline (oldest first).
    this.forwarded.delete(req.clientId);
    this.forwarded.set(req.clientId, { request: req, deadlineMs: this.nowMs + this.timeoutMs });
    if (!this.inViewChange) this.outbox.send(primaryOf(this.view, this.n), req);
  }

  /**
   * A client keeps re-sending a request we executed: fewer than nf replicas did, so "normal-case
   * operations toward executing a client request" (§3.3.1 (1)) are not succeeding. If nothing
   * at all executed here for a whole timeout since its first re-send, we detect failure of the
   * primary. (Without this, replicas that executed a request never suspect anything while the
   * rest cannot catch up, e.g. one of them halted in a view change nobody joined.) The progress
   * condition keeps a client replaying an old request from forcing view changes on a busy system.
   */
  private noteUnfinished(req: ClientRequest): void {
    if (this.inViewChange || this.executor.lastExecuted(req.clientId) !== req.reqNo) return;
    const seen = this.unfinished.get(req.clientId);
    if (!seen || seen.reqNo !== req.reqNo) {
      if (!seen && this.unfinished.size >= FORWARDED_MAX) return;
      this.unfinished.set(req.clientId, { reqNo: req.reqNo, sinceMs: this.nowMs });
      return;
    }
    if (this.nowMs - seen.sinceMs >= this.timeoutMs && this.nowMs - this.lastProgressMs >= this.timeoutMs) {
      this.unfinished.clear();
      this.startViewChange(this.view);
    }
  }

  /** Re-sends the INFORM of a client's latest executed request (the client timed out and broadcast it). */
  private resendInform(req: ClientRequest): void {
    const k = this.informK.get(req.clientId);
    if (k === undefined || k > this.ledger.height || this.executor.lastExecuted(req.clientId) !== req.reqNo || this.fetcher.muted(k)) return;
    this.outbox.send(clientPeer(req.origin), {
      type: MSG_INFORM,
      view: this.ledger.viewAt(k),
      k,
      // Copies: ledger columns are reused after a rollback.
      digest: this.ledger.digestAt(k),
      clientId: req.clientId,
      reqNo: req.reqNo,
      result: this.ledger.hashAt(k),
    });
  }

  private windowFull(): boolean {
    return this.nextK > this.stableK + this.windowK;
  }

  /**
   * Retransmission, driven by client timeouts (the paper assumes reliable links; the simulator
   * and a crashing primary do not provide them): the primary re-broadcasts the PROPOSE for k,
   * and backups answer a repeated PROPOSE by re-broadcasting their SUPPORT (onPropose), so
   * replicas that lost a PROPOSE or SUPPORT can view-commit. At most once per quarter timeout.
   */
  private retransmit(k: number): void {
    const slot = this.slots.get(k);
    if (!slot?.request || slot.view !== this.view) return;
    if (this.nowMs - slot.resentAtMs < this.retryIntervalMs) return;
    slot.resentAtMs = this.nowMs;
    this.outbox.broadcast({ type: MSG_PROPOSE, view: this.view, k, request: slot.request });
  }

  private proposeOrQueue(req: ClientRequest): void {
    if (req.reqNo <= (this.proposedReqNo.get(req.clientId) ?? -1)) {
      // In flight: the client timed out, so some replicas may have lost its messages.
      const k = this.proposedK.get(req.clientId);
      if (k !== undefined && req.reqNo === this.proposedReqNo.get(req.clientId)) this.retransmit(k);
      return;
    }
    if (this.queue.length - this.queueHead === 0 && !this.windowFull()) {
      this.proposedReqNo.set(req.clientId, req.reqNo);
      this.propose(req);
      return;
    }
    if (this.queue.length - this.queueHead >= QUEUE_MAX) {
      this.outbox.reject('primary queue full', clientPeer(req.origin));
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
    const slot = new Slot(this.view);
    slot.request = req;
    slot.digest = requestDigest(this.crypto, req);
    slot.markVoted(this.id);
    slot.matching = 1;
    slot.resentAtMs = this.nowMs;
    this.slots.set(k, slot);
    if (k > this.maxSeenK) this.maxSeenK = k;
    this.proposedK.set(req.clientId, k);
    this.outbox.broadcast({ type: MSG_PROPOSE, view: this.view, k, request: req });
  }

  /**
   * SUPPORTs that view-commit a proposal (Figure 3, line 15: nf). A seam for the simulator's
   * deliberately broken variants (infra/sim/broken.test.ts), which must be caught; never
   * overridden in production.
   */
  protected supportQuorum(): number {
    return this.nf;
  }

  /**
   * The NV-PROPOSE built from `records` (Figure 5, lines 13-14), for proposing and for full
   * validation alike. A seam for the simulator's deliberately broken variants, like supportQuorum.
   */
  protected newViewProposal(view: number, records: readonly VcRecord[]): NvPropose {
    return buildNewView(this.crypto, view, records);
  }

  /** A committed slot for k (an entry of E', a certified or f+1-vouched block) and the executor's commit. */
  private commitKnown(k: number, view: number, request: ClientRequest, digest: Buffer): void {
    const slot = new Slot(view);
    slot.request = request;
    slot.digest = digest;
    slot.committed = true;
    this.slots.set(k, slot);
    this.executor.commit(k, view, request, digest);
  }

  /** Rolls back speculative executions above keepK (§3.3.5); their INFORMs cannot be re-sent. */
  private rollBack(keepK: number): void {
    const executed = this.executor.executedK;
    this.executor.rollbackTo(keepK);
    this.outbox.event({ name: 'rollback', fromK: executed, toK: keepK });
    for (const [clientId, k] of this.informK) if (k > keepK) this.informK.delete(clientId);
  }

  // -------------------------------------------------------------------------------------
  // Normal case (Figure 3, lines 10-23)

  /**
   * Whether a PROPOSE or SUPPORT of view w is processed now. Messages of a view we are about
   * to enter are kept and replayed on entry (a faster replica may support before we entered).
   */
  private admitNormal(from: number, msg: Propose | Support): boolean {
    if (msg.k > this.maxSeenK && msg.k <= this.lowWatermarkK + 4 * this.windowK + this.archiveK) this.maxSeenK = msg.k;
    const w = msg.view;
    if (w === this.view && !this.inViewChange) return true;
    if (w === this.view + 1 && this.future.length < this.futureMax) {
      this.future.push({ from, msg });
    } else if (w > this.view + 1) {
      this.outbox.reject('message for a future view', from);
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
    const low = this.lowWatermarkK;
    return k > this.viewStartK && k > low && k <= low + 2 * this.windowK && k <= this.gcK + 3 * this.windowK;
  }

  private get lowWatermarkK(): number {
    return Math.min(this.stableK, this.executor.executedK);
  }

  /** Figure 3, line 10: support the first valid PROPOSE for (v, k) from the primary of the current view. */
  private onPropose(from: number, m: Propose): void {
    if (!this.admitNormal(from, m)) return;
    if (from !== primaryOf(m.view, this.n)) {
      this.outbox.reject('PROPOSE from a non-primary', from); // condition (2)
      return;
    }
    if (!this.inWindow(m.k)) {
      if (m.k > this.lowWatermarkK + 2 * this.windowK) this.outbox.reject('PROPOSE outside the window', from);
      return;
    }
    let slot = this.slots.get(m.k);
    if (slot?.request) {
      // Condition (3): one proposal per (v, k). A different one is the primary equivocating.
      if (!sameBytes(requestDigest(this.crypto, m.request), slot.digest!)) this.outbox.reject('equivocating PROPOSE', from);
      // The same one again is a retransmission: others may lack our SUPPORT.
      else this.outbox.broadcast({ type: MSG_SUPPORT, view: m.view, k: m.k, digest: slot.digest! });
      return;
    }
    if (!this.validRequest(m.request)) {
      this.outbox.reject('PROPOSE with an invalid client request', from);
      return;
    }
    if (!slot) {
      slot = new Slot(m.view);
      this.slots.set(m.k, slot);
      if (m.k > this.maxSeenK) this.maxSeenK = m.k;
    }
    const digest = requestDigest(this.crypto, m.request);
    slot.request = m.request;
    slot.digest = digest;
    slot.markVoted(from);
    slot.markVoted(this.id);
    // The primary's PROPOSE counts as its SUPPORT (§3.5 (2)), ours is the one we send now.
    slot.matching = 2;
    if (slot.early) {
      for (const e of slot.early) if (e.from !== from && sameBytes(e.digest, digest)) slot.matching++;
      slot.early = undefined;
    }
    this.outbox.broadcast({ type: MSG_SUPPORT, view: m.view, k: m.k, digest }); // lines 12-13
    this.checkViewCommit(m.k, slot);
  }

  /** Figure 3, line 15: count SUPPORTs, one per replica per (v, k); early ones wait for the PROPOSE. */
  private onSupport(from: number, m: Support): void {
    if (!this.admitNormal(from, m)) return;
    if (!this.inWindow(m.k)) {
      if (m.k > this.lowWatermarkK + 2 * this.windowK) this.outbox.reject('SUPPORT outside the window', from);
      return;
    }
    let slot = this.slots.get(m.k);
    if (!slot) {
      slot = new Slot(m.view);
      this.slots.set(m.k, slot);
      if (m.k > this.maxSeenK) this.maxSeenK = m.k;
    }
    if (slot.voted(from)) {
      if (slot.digest && !sameBytes(slot.digest, m.digest)) this.outbox.reject('second SUPPORT for the same (v, k)', from);
      return;
    }
    slot.markVoted(from);
    if (!slot.digest) {
      (slot.early ??= []).push({ from, digest: m.digest });
      return;
    }
    if (!sameBytes(slot.digest, m.digest)) return; // supports another proposal: does not count (line 15)
    slot.matching++;
    this.checkViewCommit(m.k, slot);
  }

  /** Figure 3, lines 15-17: nf matching SUPPORTs from distinct replicas, and we supported it too. */
  private checkViewCommit(k: number, slot: Slot): void {
    if (slot.committed || slot.matching < this.supportQuorum() || !slot.request) return;
    slot.committed = true;
    this.executor.commit(k, slot.view, slot.request, slot.digest!);
    this.executeReady();
  }

  /** Figure 3, lines 19-22: execute view-committed batches in order, INFORM each client. */
  private executeReady(): void {
    const done = this.executor.drain();
    if (done.length === 0) return;
    this.lastProgressMs = this.nowMs;
    for (const ex of done) this.afterExecute(ex);
    this.collectGarbage();
  }

  private afterExecute(ex: Execution): void {
    const req = ex.request;
    this.outbox.event({ name: 'executed', k: ex.k, view: ex.view, txns: ex.duplicate ? 0 : req.writes.length });
    if (!isNoop(req)) {
      const fwd = this.forwarded.get(req.clientId);
      if (fwd && fwd.request.reqNo <= req.reqNo) this.forwarded.delete(req.clientId);
      const proposed = this.proposedReqNo.get(req.clientId);
      if (proposed !== undefined && proposed <= req.reqNo) {
        this.proposedReqNo.delete(req.clientId);
        this.proposedK.delete(req.clientId);
      }
      if (!ex.duplicate) this.informK.set(req.clientId, ex.k);
      // Muted: no INFORM while our VC-REQUEST does not list k; a re-sent request gets it once we entered a view.
      if (!ex.duplicate && !this.fetcher.muted(ex.k)) {
        this.outbox.send(clientPeer(req.origin), {
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
      this.outbox.broadcast(this.checkpoints.makeCheckpoint(this.id, ex.k, ex.blockHash));
      this.addCheckpointVote(this.id, ex.k, ex.blockHash);
    }
  }

  // -------------------------------------------------------------------------------------
  // Checkpoints and garbage collection (§3.5 last paragraph)

  private onCheckpoint(from: number, m: Checkpoint): void {
    if (m.replica !== from) {
      this.outbox.reject('CHECKPOINT naming another replica', from);
      return;
    }
    if (m.k > this.maxSeenK && m.k <= this.lowWatermarkK + 4 * this.windowK + this.archiveK) this.maxSeenK = m.k;
    this.addCheckpointVote(from, m.k, m.stateDigest);
  }

  private addCheckpointVote(from: number, k: number, digest: Buffer): void {
    // Votes as far ahead as a replica can still catch up from (the archive): a replica behind
    // must learn where the others are. Bounded, so a faulty sender cannot fill memory.
    const stable = this.checkpoints.add(from, k, digest, this.stableK + 2 * this.windowK + this.archiveK);
    // The vote that completed the quorum carries the certified digest.
    if (stable !== undefined && stable > this.stableK) this.makeStable(stable, digest);
  }

  private makeStable(k: number, digest: Buffer): void {
    this.stable = { k, digest: Buffer.from(digest) };
    this.outbox.event({ name: 'checkpointStable', k });
    this.collectGarbage();
    this.drainQueue();
    // A request claiming this checkpoint may now be acknowledged (see canAcknowledge).
    if (this.inViewChange) this.vc.acknowledgeAll();
  }

  /**
   * Drops per-k state up to the stable checkpoint once we executed that far and our ledger
   * agrees with the certified digest. A replica behind the checkpoint still needs its slots; one
   * that executed a branch the others abandoned (it was left out of a view change) must keep its
   * undo records to roll that branch back. The requests move to a bounded archive for FETCH.
   */
  private collectGarbage(): void {
    const c = this.stableK;
    if (c <= this.gcK || this.executor.executedK < c || !this.ledger.hashEquals(c, this.stableDigest)) return;
    for (let k = this.gcK + 1; k <= c; k++) {
      const slot = this.slots.get(k);
      if (slot?.request) this.fetcher.archiveRequest(k, slot.request);
      this.slots.delete(k);
    }
    this.fetcher.trimArchive(c);
    this.executor.forget(c);
    this.gcK = c;
  }

  // -------------------------------------------------------------------------------------
  // Failure detection (§3.3.1)

  /** The earliest time at which missing progress means the primary failed, if we expect progress. */
  private failureDeadlineMs(): number | undefined {
    // No forwarded request, no deadline: the normal case's every step, so checked first.
    if (this.forwarded.size === 0 || this.inViewChange || this.isPrimary()) return undefined;
    // The oldest forwarded request (a Map iterates in insertion order) sets the deadline.
    const oldest = this.forwarded.values().next().value!;
    return Math.max(oldest.deadlineMs, this.deferFailureUntilMs);
  }

  /** Runs at the end of every step: arms `vc` for the earliest deadline (lazily: never cancelled early). */
  private armViewChangeTimer(): void {
    const deadline = this.failureDeadlineMs();
    if (deadline === undefined) return;
    if (this.vcTimerDeadlineMs !== undefined && this.vcTimerDeadlineMs <= deadline) return;
    this.vcTimerDeadlineMs = deadline;
    this.outbox.setTimer(POE_TIMERS.viewChange, Math.max(0, deadline - this.nowMs));
  }

  private onViewChangeTimer(): void {
    this.vcTimerDeadlineMs = undefined;
    const deadline = this.failureDeadlineMs();
    if (deadline === undefined || deadline > this.nowMs) return;
    // Others are past a stable checkpoint we have not reached: the missing progress is ours
    // (we lost messages), not the primary's. Catch up by fetching before blaming it.
    if (this.fetcher.fetchTarget()) {
      this.deferFailureUntilMs = this.nowMs + this.retryIntervalMs;
      return;
    }
    // Others' messages run ahead of what we executed: ask for their checkpoints first, once per
    // awaited request (a primary that leaves a hole for everybody is still detected).
    const oldest = this.forwarded.values().next();
    const key = oldest.done ? '' : `${oldest.value.request.clientId}:${oldest.value.request.reqNo}`;
    if (this.fetcher.seemsBehind() && this.probedFor !== key) {
      this.probedFor = key;
      this.outbox.broadcast({ type: MSG_FETCH, fromK: this.executor.executedK + 1, toK: this.executor.executedK });
      this.deferFailureUntilMs = this.nowMs + 2 * this.retryIntervalMs;
      return;
    }
    this.startViewChange(this.view);
  }

  /**
   * The new-view timer ticks every half timeout while we change views. Once nf VC-REQUESTs for
   * our view are in (as in PBFT: before that, the change cannot complete and an isolated replica
   * should not run through views alone), a full timeout without entering view+1 means its
   * primary failed too (§3.3, Theorem 3.7): request the next view, with a doubled timeout.
   * Every tick re-sends our own requests: messages lost once are otherwise never sent again,
   * and replicas that hold what we miss answer a repeated request (onViewChangeRequest).
   */
  private onNewViewTimer(): void {
    if (!this.inViewChange) return;
    const ready = this.vc.requestCount(this.view) >= this.nf;
    if (ready && this.vc.nvReadyHalves >= 1) {
      this.startViewChange(this.view + 1);
      return;
    }
    if (ready) this.vc.nvReadyHalves++;
    for (const own of this.vc.ownRequests(this.enteredView)) this.outbox.broadcast(own);
    this.outbox.setTimer(POE_TIMERS.newView, this.timeoutMs / 2);
  }

  // -------------------------------------------------------------------------------------
  // View change (Figure 5, lines 1-4 and 19-22; the rest is PoeViewChange's)

  /** Figure 5, lines 1-4: R detected failure of the primary of view v. */
  private startViewChange(v: number): void {
    if (this.inViewChange && this.view >= v) return;
    // Moving from one view change to the next (our timer, an invalid proposal, or f+1 others
    // giving up): that view change failed, so the next waits twice as long (Theorem 3.7).
    if (this.inViewChange) this.backoffExp = nextBackoffExp(this.backoffExp);
    this.view = v;
    this.inViewChange = true;
    this.vcTimerDeadlineMs = undefined;
    this.vc.nvReadyHalves = 0;
    this.outbox.cancelTimer(POE_TIMERS.viewChange);
    this.outbox.setTimer(POE_TIMERS.newView, this.timeoutMs / 2);
    this.outbox.event({ name: 'viewChangeStarted', view: v + 1 });
    // Halted (Figure 5, line 2): view-committed batches waiting for an earlier one no longer
    // execute (the new view decides on them); only certified blocks we fetch still do.
    this.executor.dropPendingAbove(this.executor.executedK);
    const msg: VcRequest = {
      type: MSG_VC_REQUEST,
      view: v,
      replica: this.id,
      stableK: this.stableK,
      stableDigest: this.stableDigest,
      entries: this.executionsSinceCheckpoint(),
    };
    const digest = messageDigest(this.crypto, msg);
    this.vc.storeVcRequest({ msg, digest, hex: digest.toString('hex') });
    this.outbox.broadcast(msg);
    this.future = this.future.filter((e) => e.msg.view > v);
    this.vc.acknowledgeAll();
    this.vc.afterViewChangeProgress(v);
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

  /** §3.3.5: roll back what E' does not keep, execute E', resume the normal case in the new view. */
  private enterView(m: NvPropose): void {
    const w = m.view;
    const executed = this.executor.executedK;
    const rb = this.vc.rollbackPoint(m);
    if (rb < this.gcK) {
      // Checked at validation; a checkpoint that became stable since cannot contradict a valid E'.
      this.outbox.reject('NV-PROPOSE contradicts a stable checkpoint', primaryOf(w, this.n));
      return;
    }
    if (rb < executed) {
      this.rollBack(rb);
    } else {
      this.executor.dropPendingAbove(executed);
    }
    const now = this.executor.executedK;
    for (const k of [...this.slots.keys()]) if (k > now) this.slots.delete(k);
    this.maxSeenK = Math.max(now, m.stableK + m.entries.length);
    for (const e of m.entries) {
      if (e.k <= now) continue;
      this.commitKnown(e.k, e.view, e.request, requestDigest(this.crypto, e.request));
    }
    this.view = w;
    this.enteredView = w;
    this.inViewChange = false;
    this.backoffExp = 0;
    this.viewStartK = m.stableK + m.entries.length;
    this.viewBase = { k: m.stableK, digest: m.stableDigest };
    this.vc.entered(m);
    this.nextK = this.viewStartK + 1;
    this.proposedReqNo.clear();
    this.proposedK.clear();
    this.unfinished.clear();
    this.queue = [];
    this.queueHead = 0;
    this.vcTimerDeadlineMs = undefined;
    this.outbox.cancelTimer(POE_TIMERS.newView);
    this.vc.pruneViewChangeState(w);
    this.fetcher.clearTail();
    this.outbox.event({ name: 'viewEntered', view: w });
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
}

// ---------------------------------------------------------------------------------------
// Module

/**
 * How the Byzantine wrappers (replica/byzantine.ts) see PoE's proposals: a PROPOSE(v, k, T)
 * (Figure 3, line 7). A PROPOSE carries the client's signed batch and no signature of the
 * primary (the transport's MACs authenticate it), so one with another batch is as valid as the
 * original: exactly the equivocation of Example 3.4, case 1.
 */
export const poeFaultHooks: FaultHooks<PoeMessage> = {
  proposalSlot: (msg) => (msg.type === MSG_PROPOSE ? { view: msg.view, k: msg.k } : undefined),
  withBatchOf: (target, source) => {
    if (target.type !== MSG_PROPOSE || source.type !== MSG_PROPOSE) throw new TypeError('poe withBatchOf: both messages must be PROPOSE');
    return { ...target, request: source.request };
  },
};

export const poe: ProtocolModule<PoeMessage> = {
  name: 'poe',
  codec: poeCodec,
  createReplica: (options: ReplicaOptions, deps: ReplicaDeps) => new PoeReplica(options, deps),
  createClientPolicy: (options: ClientPolicyOptions) => new PoeClientPolicy(options),
  faults: poeFaultHooks,
};
