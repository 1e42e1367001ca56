/**
 * Parallel HotStuff: basic HotStuff (Yin et al., PODC 2019, Algorithm 2) once per sequence
 * number k, every leader in parallel (PoE paper §4(8)); hotstuff.ts's header describes the
 * protocol, the certificate rules and their costs. Who leads which slot is SlotOwners'
 * (hotstuff-owners.ts).
 */
import { type Execution, sameBytes } from './common.js';
import {
  EMPTY_SIGNATURE,
  type HotStuffMessage,
  type HsPhaseMessage,
  type HsPrepare,
  type HsVote,
  makePhase,
  makePrepare,
  MSG_HS_COMMIT,
  MSG_HS_DECIDE,
  MSG_HS_PRE_COMMIT,
  MSG_HS_PREPARE,
  MSG_HS_VOTE,
  type Phase,
  PHASE_COMMIT,
  PHASE_GENERIC,
  PHASE_PRE_COMMIT,
  PHASE_PREPARE,
  phaseBytes,
  prepareBytes,
  type QuorumCert,
  voteBytes,
} from './hotstuff-wire.js';
import { collectorQC, HotStuffReplica, hotstuffLeaders, hotstuffSlots, newCollector, type VoteCollector } from './hotstuff-core.js';
import { SlotOwners } from './hotstuff-owners.js';
import type { ClientRequest } from './messages.js';
import { noopRequest, requestDigest } from './messages.js';
import type { Peer, ReplicaDeps, ReplicaOptions, ReplicaStatus } from './types.js';

/**
 * Slots per owner epoch (hotstuff-owners.ts): the checkpoint interval, at most this. Short
 * epochs let the owners follow the load quickly, and keep the first two epochs (one leader,
 * before anything executed) brief: with the real runs' interval of 600 they would last ~1,200
 * slots. Leaders propose up to two epochs ahead of execution, which a closed loop of a few
 * dozen clients never fills.
 */
const EPOCH_K_MAX = 64;

/** Messages for slots whose epoch's owners are not known here yet (a lagging replica), held at most. */
const FUTURE_MESSAGES_MAX = 1 << 14;

/** One slot's basic-HotStuff state at this replica. */
interface Slot {
  /** The view whose proposal this replica adopted (Algorithm 2's curView, per slot). */
  view: number;
  request: ClientRequest | undefined;
  digest: Buffer | undefined;
  /** Highest phase voted for in `view`; -1 for none. */
  voted: number;
  /** The phases voted for in `view`, one bit each: a replica's own QC entry needs no check. */
  votedPhases: number;
  prepareQC: QuorumCert | undefined;
  lockedQC: QuorumCert | undefined;
  decided: boolean;
  /** Leader side: the votes of the phase in progress. */
  votes: VoteCollector | undefined;
  /** Phase messages that arrived before their PREPARE (reordering), one per type. */
  early: HsPhaseMessage[] | undefined;
}

const QC_PHASE_OF: Record<HsPhaseMessage['type'], Phase> = {
  [MSG_HS_PRE_COMMIT]: PHASE_PREPARE,
  [MSG_HS_COMMIT]: PHASE_PRE_COMMIT,
  [MSG_HS_DECIDE]: PHASE_COMMIT,
};
const NEXT_MESSAGE_OF: Record<number, HsPhaseMessage['type']> = {
  [PHASE_PREPARE]: MSG_HS_PRE_COMMIT,
  [PHASE_PRE_COMMIT]: MSG_HS_COMMIT,
  [PHASE_COMMIT]: MSG_HS_DECIDE,
};

export class ParallelHotStuff extends HotStuffReplica {
  readonly leaders: readonly number[];
  readonly owners: SlotOwners;
  private readonly slots = new Map<number, Slot>();
  /** Leader side: own slots below this were proposed or filled. */
  private cursorK = 1;
  /** Highest slot any leader was seen to propose. */
  private maxProposedK = 0;
  /** Messages for slots of epochs whose owners this replica does not know yet. */
  private future: { readonly from: Peer; readonly msg: HsPrepare | HsPhaseMessage }[] = [];
  /** Highest reqNo per client this replica handed to another leader. */
  private readonly handedOnReqNo = new Map<number, number>();
  /** No-op consensus instances this replica led. */
  noopsProposed = 0;

  constructor(options: ReplicaOptions, deps: ReplicaDeps) {
    super(options, deps);
    this.leaders = hotstuffLeaders(options.n, options.extra);
    const epochK = Math.min(options.checkpointIntervalK, EPOCH_K_MAX);
    const byLoad = hotstuffSlots(options.extra) === 'byLoad';
    // The no-stall argument (hotstuff-owners.ts header) needs the newest known epoch's slots
    // inside the window: C + 3 epochK - 1 slots.
    const windowMin = options.checkpointIntervalK + 3 * epochK - 1;
    if (byLoad && options.windowK < windowMin)
      throw new RangeError(
        `hotstuff: a window of ${options.windowK} slots is below ${windowMin} (checkpoint interval ${options.checkpointIntervalK} + 3 x ${epochK} - 1), which slots dealt by load need to never stall (replica/hotstuff-owners.ts); widen the window or use extra hotstuffSlots=roundRobin`,
      );
    this.owners = new SlotOwners(this.leaders, epochK, byLoad);
  }

  status(): ReplicaStatus {
    return { id: this.id, view: 0, executedK: this.executor.executedK, stableK: this.stableK, inViewChange: false, logEntries: this.slots.size };
  }

  /** Slot k's leader in `view` (SlotOwners), or undefined while its epoch is unknown here. */
  slotLeader(k: number, view: number): number | undefined {
    return this.owners.owner(k, view);
  }

  protected clientLeader(clientId: number): number {
    return this.owners.proposerOf(clientId, this.executor.executedK + 1);
  }

  /**
   * A batch forwarded to a leader that owns no slot from the next one to execute on (it learned
   * so before the sender did) goes straight on to a leader that does, once; never back.
   */
  protected override acceptRequest(req: ClientRequest, from: Peer): void {
    if (this.owners.ownsFrom(this.executor.executedK + 1, this.id)) {
      super.acceptRequest(req, from);
      return;
    }
    const proposer = this.clientLeader(req.clientId);
    if (proposer !== from && proposer !== this.id && !this.handedOn(req)) {
      this.out.send(proposer, req);
      this.noteHandedOn(req);
      return;
    }
    // The sender and this replica each think the other proposes it: keep it until the next
    // epoch here (onOwnersKnown) rather than lose it.
    super.acceptRequest(req, from);
  }

  protected override handedOn(req: ClientRequest): boolean {
    return req.reqNo <= (this.handedOnReqNo.get(req.clientId) ?? -1);
  }

  protected override noteHandedOn(req: ClientRequest): void {
    if (req.reqNo > (this.handedOnReqNo.get(req.clientId) ?? -1)) this.handedOnReqNo.set(req.clientId, req.reqNo);
  }

  /**
   * An idle home leader forwards its clients' batches to a leader that owns slots: take them,
   * even before this replica learned the epoch that made it an owner (onOwnersKnown hands them
   * on if it turns out to own none).
   */
  protected override takesForwarded(): boolean {
    return this.leaders.includes(this.id);
  }

  /**
   * Slots still to be decided here: above the stable checkpoint, or above this replica's own
   * execution if it lags behind a checkpoint the others made stable (there is no state
   * transfer, so it must still decide those slots itself).
   */
  private inWindow(k: number): boolean {
    return Number.isSafeInteger(k) && k > Math.min(this.stableK, this.executor.executedK) && k <= this.highK;
  }

  private slotFor(k: number): Slot {
    let s = this.slots.get(k);
    if (!s) {
      s = {
        view: 0,
        request: undefined,
        digest: undefined,
        voted: -1,
        votedPhases: 0,
        prepareQC: undefined,
        lockedQC: undefined,
        decided: false,
        votes: undefined,
        early: undefined,
      };
      this.slots.set(k, s);
    }
    return s;
  }

  protected onProtocolMessage(from: Peer, msg: HotStuffMessage): void {
    switch (msg.type) {
      case MSG_HS_PREPARE:
        this.onPrepare(from, msg);
        return;
      case MSG_HS_PRE_COMMIT:
      case MSG_HS_COMMIT:
      case MSG_HS_DECIDE:
        this.onPhase(from, msg);
        return;
      case MSG_HS_VOTE:
        this.onVote(from, msg);
        return;
      default:
        this.out.reject(`parallel mode: unexpected message type ${msg.type}`, from);
    }
  }

  // --- leader

  /**
   * Puts pending requests into this leader's next own slots inside the window. With none
   * pending, an own slot is filled with a no-op only when it blocks execution here (every slot
   * below it is executed) and some leader proposed above it: a no-op instance costs almost a
   * full slot, so it runs only when the order would otherwise wait. (Filling a round ahead, so
   * that idle owners fill in parallel, ran about ten times as many no-ops in the simulator with
   * one client per leader: a busy leader's next batch is often a moment late.)
   */
  protected tryPropose(): void {
    for (;;) {
      const k = this.owners.nextOwn(this.cursorK, this.id, this.highK);
      if (k === undefined) {
        this.handOnStranded();
        return;
      }
      const existing = this.slots.get(k);
      if (existing && (existing.view > 0 || existing.request || existing.decided)) {
        // Taken over in a higher view (never by correct leaders, which stay in view 0).
        this.cursorK = k + 1;
        continue;
      }
      let request = this.takePendingFor(k);
      if (!request) {
        // roundRobin (the ablation) fills eagerly, as before issue 10: every own slot below the highest proposed.
        if (k >= this.maxProposedK || (this.owners.byLoad && this.executor.executedK < k - 1)) return;
        request = noopRequest(k);
        this.noopsProposed++;
      }
      this.cursorK = k + 1;
      this.propose(k, request);
    }
  }

  /**
   * Batches this leader holds but may not propose, because it owns no slot from its cursor on in
   * any epoch it knows (not merely none inside the window), go to the leader that proposes them
   * in the newest known epoch (SlotOwners.proposerInNewest), which owns slots there. Without this
   * rule they waited here for the next epoch to be learned, which needs the current one executed,
   * which needs a later slot proposed: when the newest epoch's owners had no batches of their own,
   * nothing was proposed above the current epoch's last slot, an idle owner's slot there never
   * got its no-op, and every client waited for its retransmission timer (the cost model: n = 16,
   * 128 clients, 448 txn/s at a 60 s median; infra/sim/hotstuff-owners.test.ts).
   */
  private handOnStranded(): void {
    // Round-robin slots give every leader a slot in every epoch: nothing is ever stranded.
    if (this.pending.size === 0 || !this.owners.byLoad || this.owners.nextOwn(this.cursorK, this.id, Number.POSITIVE_INFINITY) !== undefined) return;
    this.reroute((clientId) => this.owners.proposerInNewest(clientId));
  }

  /** Hands each queued batch to `proposer(clientId)`, keeping (in order) those this leader proposes. */
  private reroute(proposer: (clientId: number) => number): void {
    const keep: ClientRequest[] = [];
    for (let req = this.takePending(); req; req = this.takePending()) {
      const to = proposer(req.clientId);
      if (to === this.id) keep.push(req);
      else this.handOnQueued(to, req);
    }
    for (const req of keep) this.pending.push(req);
  }

  /**
   * The next queued batch for own slot k. A batch whose home leader leads a slot from k to the
   * end of k's epoch goes back to it instead (it came here while its home owned none): the home
   * fills its own slots, so they do not wait for no-ops while this leader's slots carry its
   * batches. A home whose slots in the epoch all lie below k may have proposed them all and hold
   * no slot it could put the batch in: it would hand it straight back (handOnStranded), for ever,
   * so this leader proposes it itself.
   */
  private takePendingFor(k: number): ClientRequest | undefined {
    for (;;) {
      const req = this.takePending();
      if (!req) return undefined;
      const home = this.owners.home(req.clientId);
      if (home === this.id || !this.owners.leadsRestOfEpoch(k, home)) return req;
      this.handOnQueued(home, req);
    }
  }

  /**
   * An epoch completed here, so the next one is current and the owners of a new one known:
   * hand each queued batch to the leader that proposes it now (its home, if that owns slots
   * again), then replay held messages.
   */
  private onOwnersKnown(): void {
    this.reroute((clientId) => this.clientLeader(clientId));
    const held = this.future;
    this.future = [];
    for (const { from, msg } of held) {
      if (msg.type === MSG_HS_PREPARE) this.onPrepare(from, msg);
      else this.onPhase(from, msg);
    }
  }

  /**
   * Hands a batch this leader had queued to the leader that proposes it now. It is no longer
   * this leader's to propose, so it leaves the dedup record too: should it come back (the other
   * leader learned a newer epoch first and hands it home), it is taken again. Before, the record
   * refused it, every copy the client retransmitted met the same refusal, and the batch was
   * lost for good (the simulator: n = 16, 64 clients, seed 1 lost one batch of 1,500).
   */
  private handOnQueued(to: number, req: ClientRequest): void {
    if (this.proposedReqNo.get(req.clientId) === req.reqNo) this.proposedReqNo.set(req.clientId, req.reqNo - 1);
    this.out.send(to, req);
    this.noteHandedOn(req);
  }

  /** Holds a message for a slot whose owners are not known yet; false if it must be refused. */
  private holdFuture(from: Peer, msg: HsPrepare | HsPhaseMessage): boolean {
    if (!this.inWindow(msg.k) || this.future.length >= FUTURE_MESSAGES_MAX) return false;
    this.future.push({ from, msg });
    return true;
  }

  /** Algorithm 2, prepare phase, as the leader: broadcast PREPARE and vote for it itself. */
  private propose(k: number, request: ClientRequest): void {
    const view = 0;
    const digest = requestDigest(this.crypto, request);
    const s = this.slotFor(k);
    s.view = view;
    s.request = request;
    s.digest = digest;
    s.votes = newCollector(PHASE_PREPARE, view, k, digest);
    this.maxProposedK = Math.max(this.maxProposedK, k);
    this.out.broadcast(makePrepare(this.crypto, this.signer, this.id, view, k, request));
    this.vote(s, k, PHASE_PREPARE);
  }

  private onVote(from: Peer, m: HsVote): void {
    if (!this.fromReplica(from, m.replica) || m.phase === PHASE_GENERIC) {
      this.out.reject('vote: sender mismatch or wrong phase', from);
      return;
    }
    const s = this.slots.get(m.k);
    const c = s?.votes;
    // Late votes (the f beyond nf) and votes for a phase already certified need no check.
    if (!s || !c || s.decided || c.done || c.phase !== m.phase || c.view !== m.view || c.sigs.has(m.replica)) return;
    if (!sameBytes(c.digest, m.digest)) {
      this.out.reject(`vote for another batch at ${m.k}`, from);
      return;
    }
    if (!this.verifiers[m.replica]!.verify(voteBytes(m.phase, m.view, m.k, m.digest), m.signature)) {
      this.out.reject('vote: bad signature', from);
      return;
    }
    this.addVote(s, m.k, m.replica, m.signature);
  }

  private addVote(s: Slot, k: number, replica: number, signature: Buffer): void {
    const c = s.votes!;
    c.sigs.set(replica, signature);
    if (c.sigs.size < this.q.nf) return;
    c.done = true;
    this.onQuorum(s, k, collectorQC(c, this.rule));
  }

  /**
   * Algorithm 2 as the leader: nf PREPARE votes make prepareQC, sent in PRE-COMMIT; nf
   * PRE-COMMIT votes make precommitQC, sent in COMMIT; nf COMMIT votes make commitQC, sent in
   * DECIDE. The leader acts on each message as a replica does, without sending it to itself.
   */
  private onQuorum(s: Slot, k: number, qc: QuorumCert): void {
    const type = NEXT_MESSAGE_OF[qc.phase]!;
    this.out.broadcast(makePhase(this.signer, type, this.id, qc));
    this.applyPhase(s, k, type, qc);
  }

  // --- replica

  /**
   * Algorithm 2, prepare phase, as a replica: vote for the leader's proposal if it comes from
   * the slot's leader of that view, carries a valid client batch and a valid justify, and
   * safeNode holds.
   */
  private onPrepare(from: Peer, m: HsPrepare): void {
    const owner = this.slotLeader(m.k, m.view);
    if (owner === undefined && this.fromReplica(from, m.leader) && this.holdFuture(from, m)) return;
    if (!this.fromReplica(from, m.leader) || m.leader !== owner) {
      this.out.reject(`prepare: ${from} does not lead slot ${m.k} in view ${m.view}`, from);
      return;
    }
    if (!this.inWindow(m.k)) {
      if (m.k > this.highK) this.out.reject(`prepare: ${m.k} outside the window`, from);
      return;
    }
    const existing = this.slots.get(m.k);
    if (existing && (existing.decided || m.view < existing.view)) return;
    const digest = requestDigest(this.crypto, m.request);
    if (existing?.request && m.view === existing.view) {
      if (!existing.digest!.equals(digest)) this.out.reject(`prepare: leader ${m.leader} equivocates at ${m.k}`, from);
      return;
    }
    if (!this.verifiers[m.leader]!.verify(prepareBytes(m.view, m.k, digest, m.justify), m.signature)) {
      this.out.reject('prepare: bad signature', from);
      return;
    }
    const problem = this.proposedRequestProblem(m.request, m.k) ?? this.justifyProblem(m, digest);
    if (problem) {
      this.out.reject(`prepare: ${problem}`, from);
      return;
    }
    this.maxProposedK = Math.max(this.maxProposedK, m.k);
    if (!this.safeNode(existing, digest, m.justify)) {
      this.out.reject(`prepare: safeNode fails at ${m.k} (locked in view ${existing!.lockedQC!.view})`, from);
    } else {
      const s = this.slotFor(m.k);
      s.view = m.view;
      s.request = m.request;
      s.digest = digest;
      s.voted = -1;
      s.votedPhases = 0;
      this.vote(s, m.k, PHASE_PREPARE);
      this.replayEarly(s);
    }
    this.tryPropose();
  }

  /** In a view above 0 the leader must re-propose its highQC's batch, certified in a lower view. */
  private justifyProblem(m: HsPrepare, digest: Buffer): string | undefined {
    const j = m.justify;
    if (!j) return undefined;
    if (j.phase !== PHASE_PREPARE || j.k !== m.k || j.view >= m.view || !j.digest.equals(digest)) return 'justify does not certify this batch in a lower view';
    return this.certificateProblem(j, false);
  }

  /**
   * safeNode (Algorithm 1): the proposal extends the locked node (for one slot: it is the
   * locked batch), or its justify is newer than the lock (liveness rule).
   */
  private safeNode(s: Slot | undefined, digest: Buffer, justify: QuorumCert | undefined): boolean {
    const lock = s?.lockedQC;
    if (!lock) return true;
    return lock.digest.equals(digest) || (justify !== undefined && justify.view > lock.view);
  }

  private onPhase(from: Peer, m: HsPhaseMessage): void {
    const owner = this.slotLeader(m.k, m.view);
    if (owner === undefined && this.fromReplica(from, m.leader) && this.holdFuture(from, m)) return;
    if (!this.fromReplica(from, m.leader) || m.leader !== owner) {
      this.out.reject(`phase ${m.type}: ${from} does not lead slot ${m.k} in view ${m.view}`, from);
      return;
    }
    if (m.qc.phase !== QC_PHASE_OF[m.type] || m.qc.k !== m.k || m.qc.view !== m.view) {
      this.out.reject(`phase ${m.type}: qc for another phase, slot or view`, from);
      return;
    }
    if (!this.inWindow(m.k)) return;
    const s = this.slotFor(m.k);
    if (s.decided) return;
    const votePhase = m.type === MSG_HS_DECIDE ? undefined : ((QC_PHASE_OF[m.type] + 1) as Phase);
    const adopted = s.digest?.equals(m.qc.digest) && (votePhase === undefined || s.view === m.view);
    if (!adopted) {
      // Before its PREPARE (the network reorders): keep the newest one of each type.
      if (m.view >= s.view) s.early = [...(s.early ?? []).filter((e) => e.type !== m.type), m];
      return;
    }
    if (votePhase !== undefined && s.voted >= votePhase) return;
    if (!this.verifiers[m.leader]!.verify(phaseBytes(m.type, m.view, m.k, m.qc), m.signature)) {
      this.out.reject(`phase ${m.type}: bad signature`, from);
      return;
    }
    // Under 'qc' this replica's own entry needs no check when it cast that very vote.
    const problem = this.certificateProblem(m.qc, (s.votedPhases & (1 << m.qc.phase)) !== 0);
    if (problem) {
      this.out.reject(`phase ${m.type}: ${problem}`, from);
      return;
    }
    this.applyPhase(s, m.k, m.type, m.qc);
  }

  /**
   * Algorithm 2: on PRE-COMMIT keep prepareQC and vote; on COMMIT lock on precommitQC and vote;
   * on DECIDE the batch is committed.
   */
  private applyPhase(s: Slot, k: number, type: HsPhaseMessage['type'], qc: QuorumCert): void {
    switch (type) {
      case MSG_HS_PRE_COMMIT:
        s.prepareQC = qc;
        if (s.votes) s.votes = newCollector(PHASE_PRE_COMMIT, qc.view, k, qc.digest);
        this.vote(s, k, PHASE_PRE_COMMIT);
        return;
      case MSG_HS_COMMIT:
        s.lockedQC = qc;
        if (s.votes) s.votes = newCollector(PHASE_COMMIT, qc.view, k, qc.digest);
        this.vote(s, k, PHASE_COMMIT);
        return;
      case MSG_HS_DECIDE:
        this.decide(s, k, qc.view);
        return;
    }
  }

  /**
   * Votes for the slot's batch in `phase`. The leader counts its own vote without a message;
   * under 'paper' it needs no signature either, since no certificate carries it.
   */
  private vote(s: Slot, k: number, phase: Phase): void {
    s.voted = phase;
    s.votedPhases |= 1 << phase;
    const leader = this.slotLeader(k, s.view)!;
    if (leader === this.id && this.rule === 'paper') {
      this.addVote(s, k, this.id, EMPTY_SIGNATURE);
      return;
    }
    const signature = this.signer.sign(voteBytes(phase, s.view, k, s.digest!));
    if (leader === this.id) this.addVote(s, k, this.id, signature);
    else this.out.send(leader, { type: MSG_HS_VOTE, replica: this.id, phase, view: s.view, k, digest: s.digest!, signature });
  }

  private replayEarly(s: Slot): void {
    const early = s.early;
    if (!early) return;
    s.early = undefined;
    early.sort((a, b) => a.type - b.type);
    for (const m of early) this.onPhase(m.leader, m);
  }

  /** Algorithm 2, decide phase: commit k; execution follows the global order (Executor). */
  private decide(s: Slot, k: number, view: number): void {
    const request = s.request!;
    const digest = s.digest!;
    s.decided = true;
    // Decided slots only need to be recognised until the next stable checkpoint.
    s.request = undefined;
    s.prepareQC = undefined;
    s.lockedQC = undefined;
    s.votes = undefined;
    s.early = undefined;
    this.commitBatch(k, view, request, digest);
  }

  protected collectGarbage(stableK: number): void {
    const upToK = Math.min(stableK, this.executor.executedK);
    for (const k of this.slots.keys()) if (k <= upToK) this.slots.delete(k);
    this.forgetCertificates(upToK);
    this.owners.forget(upToK);
  }

  /**
   * A lagging replica drops a slot below the stable checkpoint once it executed it. Every
   * execution may unblock an own slot (tryPropose's no-op rule) or complete an epoch.
   */
  protected override onExecuted(e: Execution): void {
    if (e.k <= this.stableK) this.slots.delete(e.k);
    if (this.owners.onExecuted(e.k, e.request)) this.onOwnersKnown();
    this.tryPropose();
  }

  /** For tests: a slot's lock, if any. */
  lockedQCAt(k: number): QuorumCert | undefined {
    return this.slots.get(k)?.lockedQC;
  }
}
