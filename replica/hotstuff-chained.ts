/**
 * Chained HotStuff (Yin et al., PODC 2019, Algorithm 3) with one stable leader and the simplest
 * pacemaker; hotstuff.ts's header describes it, the certificate rules and their costs.
 */
import { backoffMs, nextBackoffExp } from './backoff.js';
import { type Execution, hex } from './common.js';
import { DIGEST_BYTES } from './crypto.js';
import {
  AWAITED_REQUESTS_MAX,
  BACKOFF_EXP_MAX_HOTSTUFF,
  CHAIN_SLACK_K,
  collectorQC,
  HotStuffReplica,
  NEW_VIEW_AHEAD_MAX,
  newCollector,
  ORPHANS_MAX,
  rankAbove,
  VIEW_CHANGE_TIMER,
  type VoteCollector,
} from './hotstuff-core.js';
import {
  EMPTY_SIGNATURE,
  genesisQC,
  type HotStuffMessage,
  type HsBlock,
  type HsBlockRequest,
  hsBlockHash,
  hsGenesisHash,
  type HsNewView,
  type HsProposal,
  type HsVote,
  makeNewView,
  MSG_HS_BLOCK_REQUEST,
  MSG_HS_NEW_VIEW,
  MSG_HS_PROPOSAL,
  MSG_HS_VOTE,
  newViewBytes,
  PHASE_GENERIC,
  proposalBytes,
  type QuorumCert,
  voteBytes,
} from './hotstuff-wire.js';
import type { ClientRequest } from './messages.js';
import { isNoop, noopRequest, requestDigest } from './messages.js';
import type { Peer, ReplicaDeps, ReplicaOptions, ReplicaStatus } from './types.js';
import { isClientPeer, primaryOf } from './types.js';

interface BlockNode {
  readonly hash: Buffer;
  readonly key: string;
  readonly view: number;
  readonly height: number;
  readonly parentKey: string;
  readonly request: ClientRequest;
  readonly digest: Buffer;
  readonly justify: QuorumCert;
  readonly noop: boolean;
  /** Its leader's signature on the PROPOSAL (empty for genesis): a block is passed on as that proposal. */
  readonly signature: Buffer;
  /** Whether this replica voted for the block (its own entry in the block's QC needs no check). */
  voted: boolean;
}

export class ChainedHotStuff extends HotStuffReplica {
  private readonly genesisHash: Buffer;
  private view = 0;
  private inViewChange = false;
  /** The block tree above the last committed block (which it keeps as its root). */
  private readonly blocks = new Map<string, BlockNode>();
  private committedKey: string;
  private committedHeight = 0;
  /** Algorithm 3's genericQC (here highQC) and lockedQC. */
  private highQC: QuorumCert;
  private lockedQC: QuorumCert;
  /** The last round voted in (Algorithm 4's vheight, as (view, height)). */
  private lastVoted = { view: 0, k: 0 };
  /** Leader side: the block of this view awaiting its QC, and the votes per own block. */
  private proposedKey: string | undefined;
  private readonly collectors = new Map<string, VoteCollector>();
  /** Proposals whose parent has not arrived yet, by parent key. */
  private readonly orphans = new Map<string, HsProposal[]>();
  private orphanCount = 0;
  /** Blocks asked for (BLOCK-REQUEST), by key, with their height: their proposals are taken from any replica. */
  private readonly fetching = new Map<string, number>();
  /**
   * Committed blocks below the committed head and above the stable checkpoint, kept only to
   * answer BLOCK-REQUESTs: a replica the others left behind fetches them to rejoin the chain.
   */
  private readonly committed = new Map<string, BlockNode>();
  /** Leader side: NEW-VIEW messages per view, by sender. */
  private readonly newViews = new Map<number, Map<number, QuorumCert>>();
  /** Requests clients sent here after timing out, not yet executed: they drive the view change. */
  private readonly awaited = new Map<number, ClientRequest>();
  /** Failed views in a row: the view-change timer is T * 2^backoffExp. */
  private backoffExp = 0;
  private readonly blocksMax: number;

  constructor(options: ReplicaOptions, deps: ReplicaDeps) {
    super(options, deps);
    this.genesisHash = hsGenesisHash(deps.crypto);
    const genesis = genesisQC(deps.crypto);
    this.highQC = genesis;
    this.lockedQC = genesis;
    this.committedKey = hex(this.genesisHash);
    this.blocks.set(this.committedKey, {
      hash: this.genesisHash,
      key: this.committedKey,
      view: 0,
      height: 0,
      parentKey: '',
      request: noopRequest(0),
      digest: Buffer.alloc(DIGEST_BYTES),
      justify: genesis,
      noop: true,
      signature: EMPTY_SIGNATURE,
      voted: false,
    });
    this.blocksMax = Math.max(64, 4 * options.windowK);
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: this.view,
      executedK: this.executor.executedK,
      stableK: this.stableK,
      inViewChange: this.inViewChange,
      logEntries: this.blocks.size,
    };
  }

  protected clientLeader(): number {
    return primaryOf(this.view, this.q.n);
  }

  protected onProtocolMessage(from: Peer, msg: HotStuffMessage): void {
    switch (msg.type) {
      case MSG_HS_PROPOSAL:
        this.onProposal(from, msg);
        return;
      case MSG_HS_VOTE:
        this.onVote(from, msg);
        return;
      case MSG_HS_NEW_VIEW:
        this.onNewView(from, msg);
        return;
      case MSG_HS_BLOCK_REQUEST:
        this.onBlockRequest(from, msg);
        return;
      default:
        this.out.reject(`chained mode: unexpected message type ${msg.type}`, from);
    }
  }

  // --- leader

  /**
   * Algorithm 3 as the leader: once the previous proposal has its QC, propose the next block on
   * highQC's node with the next request, or with a no-op while a batch above the committed
   * block still needs the three-chain that commits it.
   */
  protected tryPropose(): void {
    if (this.inViewChange || primaryOf(this.view, this.q.n) !== this.id) return;
    const parentKey = hex(this.highQC.digest);
    if (this.proposedKey !== undefined && this.proposedKey !== parentKey) return;
    const parent = this.blocks.get(parentKey);
    const height = this.highQC.k + 1;
    if (!parent || height > this.highK + CHAIN_SLACK_K) return;
    let request = this.takePendingOffChain(parent);
    if (!request) {
      if (!this.needsNoop(parent)) return;
      request = noopRequest(height);
    }
    const block: HsBlock = { view: this.view, height, parentHash: this.highQC.digest, request, justify: this.highQC };
    const unsigned = this.nodeOf(block, EMPTY_SIGNATURE);
    const node: BlockNode = { ...unsigned, signature: this.signer.sign(proposalBytes(unsigned.hash)) };
    this.blocks.set(node.key, node);
    this.collectors.set(node.key, newCollector(PHASE_GENERIC, node.view, node.height, node.hash));
    this.proposedKey = node.key;
    this.out.broadcast({ type: MSG_HS_PROPOSAL, leader: this.id, block, signature: node.signature });
    this.onBlock(node);
  }

  /**
   * The next queued request not already in a block between `parent` and the committed block:
   * after a view change, clients' retransmissions may name batches the old leader did propose.
   */
  private takePendingOffChain(parent: BlockNode): ClientRequest | undefined {
    for (;;) {
      const req = this.takePending();
      if (!req || !this.inUncommittedChain(parent, req)) return req;
    }
  }

  private inUncommittedChain(from: BlockNode, req: ClientRequest): boolean {
    for (let x: BlockNode | undefined = from; x && x.height > this.committedHeight; x = this.blocks.get(x.parentKey)) {
      if (x.request.clientId === req.clientId && x.request.reqNo === req.reqNo) return true;
    }
    return false;
  }

  private needsNoop(from: BlockNode): boolean {
    for (let x: BlockNode | undefined = from; x && x.height > this.committedHeight; x = this.blocks.get(x.parentKey)) {
      if (!x.noop) return true;
    }
    return false;
  }

  private nodeOf(b: HsBlock, signature: Buffer): BlockNode {
    const digest = requestDigest(this.crypto, b.request);
    const hash = hsBlockHash(this.crypto, b.view, b.height, b.parentHash, digest, b.justify.view);
    return {
      hash,
      key: hex(hash),
      view: b.view,
      height: b.height,
      parentKey: hex(b.parentHash),
      request: b.request,
      digest,
      justify: b.justify,
      noop: isNoop(b.request),
      signature,
      voted: false,
    };
  }

  private onVote(from: Peer, m: HsVote): void {
    if (!this.fromReplica(from, m.replica) || m.phase !== PHASE_GENERIC) {
      this.out.reject('vote: sender mismatch or wrong phase', from);
      return;
    }
    const c = this.collectors.get(hex(m.digest));
    if (!c || c.done || c.view !== m.view || c.k !== m.k || c.sigs.has(m.replica)) return;
    if (!this.verifiers[m.replica]!.verify(voteBytes(m.phase, m.view, m.k, m.digest), m.signature)) {
      this.out.reject('vote: bad signature', from);
      return;
    }
    this.addVote(c, m.replica, m.signature);
  }

  private addVote(c: VoteCollector, replica: number, signature: Buffer): void {
    c.sigs.set(replica, signature);
    if (c.sigs.size < this.q.nf) return;
    c.done = true;
    const qc = collectorQC(c, this.rule);
    this.formedCertificate(qc);
    if (rankAbove(qc.view, qc.k, this.highQC)) this.highQC = qc;
    this.tryPropose();
  }

  // --- replica

  /** Algorithm 3 as a replica: validate the proposal, then vote (if safe) and update. */
  private onProposal(from: Peer, m: HsProposal): void {
    const b = m.block;
    // A block this replica asked for may come from any replica: the leader's signature vouches for it.
    // The node (its request digest and block hash) is built once, here if a fetch needs its hash.
    let node = !isClientPeer(from) && from !== this.id && this.fetching.size > 0 ? this.nodeOf(b, m.signature) : undefined;
    const fetched = node !== undefined && this.fetching.has(hex(node.hash));
    if (!(fetched || this.fromReplica(from, m.leader)) || m.leader !== primaryOf(b.view, this.q.n)) {
      this.out.reject(`proposal: ${from} is not the leader of view ${b.view}`, from);
      return;
    }
    if (b.justify.phase !== PHASE_GENERIC || b.height !== b.justify.k + 1 || !b.parentHash.equals(b.justify.digest) || b.justify.view > b.view) {
      this.out.reject('proposal: justify does not certify the parent (Algorithm 3: createLeaf(genericQC.node))', from);
      return;
    }
    // Blocks of an older view are kept, not voted for: a replica that moved on alone can still
    // follow the chain the others certify, and a later block may build on them.
    if (b.height <= this.committedHeight) return;
    if (!Number.isSafeInteger(b.height) || b.height > this.highK + CHAIN_SLACK_K) {
      this.out.reject(`proposal: height ${b.height} outside the window`, from);
      return;
    }
    const parentKey = hex(b.parentHash);
    if (!this.blocks.has(parentKey)) {
      this.holdOrphan(parentKey, m, from);
      return;
    }
    node ??= this.nodeOf(b, m.signature);
    if (this.blocks.has(node.key)) return;
    if (this.blocks.size >= this.blocksMax) {
      this.out.reject('proposal: block tree full', from);
      return;
    }
    if (!this.verifiers[m.leader]!.verify(proposalBytes(node.hash), m.signature)) {
      this.out.reject('proposal: bad signature', from);
      return;
    }
    const problem = this.proposedRequestProblem(b.request, b.height) ?? this.certificateProblem(b.justify, this.blocks.get(parentKey)!.voted, this.genesisHash);
    if (problem) {
      this.out.reject(`proposal: ${problem}`, from);
      return;
    }
    if (b.view > this.view || (this.inViewChange && b.view === this.view)) {
      this.enterView(b.view);
      this.inViewChange = false;
      this.out.event({ name: 'viewEntered', view: this.view });
    }
    this.blocks.set(node.key, node);
    this.fetching.delete(node.key);
    this.onBlock(node);
    this.releaseOrphans(node.key);
  }

  /**
   * Algorithm 3: vote if the round is new and safeNode holds, to the leader of the next height
   * (while the view lasts, the same leader); then update highQC, lockedQC and commit from the
   * block's justify.
   */
  private onBlock(node: BlockNode): void {
    if (node.view === this.view && rankAbove(node.view, node.height, this.lastVoted) && this.safeNode(node)) {
      this.lastVoted = { view: node.view, k: node.height };
      node.voted = true;
      const leader = primaryOf(node.view, this.q.n);
      if (leader === this.id) {
        // The leader counts its own vote; under 'paper' no certificate carries its signature.
        const c = this.collectors.get(node.key);
        const signature = this.rule === 'paper' ? EMPTY_SIGNATURE : this.signer.sign(voteBytes(PHASE_GENERIC, node.view, node.height, node.hash));
        if (c && !c.done) this.addVote(c, this.id, signature);
      } else {
        const signature = this.signer.sign(voteBytes(PHASE_GENERIC, node.view, node.height, node.hash));
        this.out.send(leader, { type: MSG_HS_VOTE, replica: this.id, phase: PHASE_GENERIC, view: node.view, k: node.height, digest: node.hash, signature });
      }
    }
    this.update(node.justify);
    this.tryPropose();
  }

  /** safeNode: the block extends lockedQC's node, or its justify outranks the lock. */
  private safeNode(node: BlockNode): boolean {
    return this.extendsBlock(node, this.lockedQC) || rankAbove(node.justify.view, node.justify.k, this.lockedQC);
  }

  private extendsBlock(node: BlockNode, qc: QuorumCert): boolean {
    let x: BlockNode | undefined = node;
    while (x && x.height > qc.k) x = this.blocks.get(x.parentKey);
    return x !== undefined && x.hash.equals(qc.digest);
  }

  /**
   * Algorithm 3's three chain, read from the justify of a new block: b2 = qc.node (one-chain:
   * highQC), b1 = b2's parent (two-chain: lock on b2.justify), b0 = b1's parent (three-chain:
   * commit b0). Parents are justify nodes by construction; the three must share a view to be
   * consecutive rounds, as the paper's "direct parent" condition asks.
   */
  private update(qc: QuorumCert): void {
    const b2 = this.blocks.get(hex(qc.digest));
    if (!b2) return;
    if (rankAbove(qc.view, qc.k, this.highQC)) this.highQC = qc;
    const b1 = b2.height > 0 ? this.blocks.get(b2.parentKey) : undefined;
    if (!b1) return;
    if (rankAbove(b2.justify.view, b2.justify.k, this.lockedQC)) this.lockedQC = b2.justify;
    const b0 = b1.height > 0 ? this.blocks.get(b1.parentKey) : undefined;
    if (!b0 || b0.height === 0 || b0.height <= this.committedHeight) return;
    if (b0.view === b1.view && b1.view === b2.view) this.commitChain(b0);
  }

  /** Commits b and every uncommitted ancestor, oldest first (Algorithm 3, decide). */
  private commitChain(b: BlockNode): void {
    const path: BlockNode[] = [];
    let x: BlockNode | undefined = b;
    while (x && x.height > this.committedHeight) {
      path.push(x);
      x = this.blocks.get(x.parentKey);
    }
    if (!x || x.key !== this.committedKey) {
      throw new Error(`hotstuff: block ${b.key} at ${b.height} does not extend the committed block at ${this.committedHeight}`);
    }
    // The blocks below the new head stay on offer to replicas that missed them, down to the stable checkpoint.
    for (const node of [x, ...path.slice(1)]) if (node.height > this.stableK) this.committed.set(node.key, node);
    this.committedKey = b.key;
    this.committedHeight = b.height;
    for (let i = path.length - 1; i >= 0; i--) {
      const node = path[i]!;
      this.commitBatch(node.height, node.view, node.request, node.digest);
    }
    this.prune();
  }

  /** Keeps only the committed block and blocks above it. */
  private prune(): void {
    for (const [key, node] of this.blocks) {
      if (node.height < this.committedHeight || (node.height === this.committedHeight && key !== this.committedKey)) this.blocks.delete(key);
    }
    for (const [key, c] of this.collectors) if (c.k <= this.committedHeight) this.collectors.delete(key);
    for (const [key, height] of this.fetching) if (height <= this.committedHeight) this.fetching.delete(key);
    for (const [key, list] of this.orphans) {
      if (list[0]!.block.height <= this.committedHeight) {
        this.orphans.delete(key);
        this.orphanCount -= list.length;
      }
    }
  }

  private holdOrphan(parentKey: string, m: HsProposal, from: Peer): void {
    if (this.orphanCount >= ORPHANS_MAX) {
      this.out.reject('proposal: unknown parent', from);
      return;
    }
    const list = this.orphans.get(parentKey) ?? [];
    list.push(m);
    this.orphans.set(parentKey, list);
    this.orphanCount++;
    // The sender built on the parent (or forwarded a block that does): ask it for the parent.
    if (!isClientPeer(from)) this.fetchBlock(m.block.parentHash, m.block.height - 1, from);
  }

  /**
   * Asks `from` for a block this replica lacks (a proposal's parent, a NEW-VIEW's highQC node).
   * Without it a replica that missed a proposal (partitions, losses) could never vote on the
   * chain the others extend, nor a new leader propose on the highest QC: HotStuff assumes a
   * replica fetches missing blocks (libhotstuff does, by hash). Asked again on every new reason.
   */
  private fetchBlock(hash: Buffer, height: number, from: number): void {
    const key = hex(hash);
    if (this.blocks.has(key) || height <= this.committedHeight || from === this.id || from >= this.q.n) return;
    if (!this.fetching.has(key) && this.fetching.size >= ORPHANS_MAX) return;
    this.fetching.set(key, height);
    this.out.send(from, { type: MSG_HS_BLOCK_REQUEST, replica: this.id, hash } satisfies HsBlockRequest);
  }

  /** Answers a BLOCK-REQUEST with the block's original PROPOSAL, if this replica holds it. */
  private onBlockRequest(from: Peer, m: HsBlockRequest): void {
    if (!this.fromReplica(from, m.replica)) {
      this.out.reject('block-request: sender mismatch', from);
      return;
    }
    const key = hex(m.hash);
    const node = this.blocks.get(key) ?? this.committed.get(key);
    if (!node || node.height === 0) return;
    const block: HsBlock = { view: node.view, height: node.height, parentHash: node.justify.digest, request: node.request, justify: node.justify };
    this.out.send(from, { type: MSG_HS_PROPOSAL, leader: primaryOf(node.view, this.q.n), block, signature: node.signature });
  }

  private releaseOrphans(parentKey: string): void {
    const list = this.orphans.get(parentKey);
    if (!list) return;
    this.orphans.delete(parentKey);
    this.orphanCount -= list.length;
    for (const m of list) this.onProposal(m.leader, m);
  }

  // --- view change (pacemaker)

  protected override onClientRetransmission(req: ClientRequest): void {
    if (this.awaited.size >= AWAITED_REQUESTS_MAX && !this.awaited.has(req.clientId)) return;
    const known = this.awaited.get(req.clientId);
    if (known && known.reqNo >= req.reqNo) return;
    if (this.clientRequestProblem(req)) return;
    const wasEmpty = this.awaited.size === 0;
    this.awaited.set(req.clientId, req);
    if (wasEmpty) this.armTimer();
  }

  protected override onExecuted(e: Execution): void {
    if (this.awaited.size === 0) return;
    const req = this.awaited.get(e.request.clientId);
    if (req && req.reqNo <= e.request.reqNo) this.awaited.delete(e.request.clientId);
    // Progress: the leader is doing its job; give the rest a fresh timeout.
    this.backoffExp = 0;
    if (this.awaited.size === 0) this.out.cancelTimer(VIEW_CHANGE_TIMER);
    else this.armTimer();
  }

  private armTimer(): void {
    this.out.setTimer(VIEW_CHANGE_TIMER, backoffMs(this.options.viewChangeTimeoutMs, this.backoffExp, BACKOFF_EXP_MAX_HOTSTUFF));
  }

  protected override onTimer(name: string): void {
    if (name !== VIEW_CHANGE_TIMER || this.awaited.size === 0) return;
    this.backoffExp = nextBackoffExp(this.backoffExp, BACKOFF_EXP_MAX_HOTSTUFF);
    this.startViewChange(this.view + 1);
  }

  /** The client's retransmissions name the requests the old leader did not get through. */
  private startViewChange(view: number): void {
    this.enterView(view);
    this.inViewChange = true;
    this.out.event({ name: 'viewChangeStarted', view });
    const leader = primaryOf(view, this.q.n);
    const highQC = this.highQC;
    if (leader === this.id) this.addNewView(this.id, view, highQC);
    else this.out.send(leader, makeNewView(this.signer, this.id, view, highQC));
    if (this.awaited.size > 0) this.armTimer();
  }

  private enterView(view: number): void {
    this.view = view;
    this.proposedKey = undefined;
    // Whatever the old view queued may be re-proposed; the executor skips duplicates.
    this.proposedReqNo.clear();
    for (const v of this.newViews.keys()) if (v < view) this.newViews.delete(v);
  }

  private onNewView(from: Peer, m: HsNewView): void {
    if (!this.fromReplica(from, m.replica) || primaryOf(m.view, this.q.n) !== this.id) {
      this.out.reject('new-view: sender mismatch or not the leader of that view', from);
      return;
    }
    if (m.view < this.view || (m.view === this.view && !this.inViewChange) || m.view > this.view + NEW_VIEW_AHEAD_MAX) return;
    if (this.newViews.get(m.view)?.has(m.replica)) return;
    if (!this.verifiers[m.replica]!.verify(newViewBytes(m.view, m.highQC), m.signature)) {
      this.out.reject('new-view: bad signature', from);
      return;
    }
    const problem =
      m.highQC.phase !== PHASE_GENERIC
        ? 'new-view: highQC of another phase'
        : this.certificateProblem(m.highQC, this.blocks.get(hex(m.highQC.digest))?.voted ?? false, this.genesisHash);
    if (problem) {
      this.out.reject(problem, from);
      return;
    }
    this.addNewView(m.replica, m.view, m.highQC);
  }

  /**
   * f+1 NEW-VIEWs for a later view show a correct replica gave up on this one: join it. With
   * nf the leader takes the highest QC whose block it holds and starts proposing on it.
   */
  private addNewView(replica: number, view: number, qc: QuorumCert): void {
    let senders = this.newViews.get(view);
    if (!senders) {
      senders = new Map();
      this.newViews.set(view, senders);
    }
    senders.set(replica, qc);
    if (view > this.view && senders.size >= this.q.f + 1) {
      this.startViewChange(view);
      return;
    }
    if (view !== this.view || !this.inViewChange || senders.size < this.q.nf) return;
    // Algorithm 3: the leader proposes on the highest QC of the NEW-VIEWs (all verified); a
    // node it lacks it fetches first (tryPropose waits for the parent), from every sender of that
    // QC and every replica that signed it ('qc' rule): a Byzantine sender need not answer, but
    // at least f+1 of the signers are correct and hold the block.
    for (const c of senders.values()) if (rankAbove(c.view, c.k, this.highQC)) this.highQC = c;
    const high = this.highQC;
    if (!this.blocks.has(hex(high.digest))) {
      const holders = new Set([...senders].filter(([, c]) => c.digest.equals(high.digest)).map(([sender]) => sender));
      for (const { replica } of high.sigs) holders.add(replica);
      for (const holder of holders) this.fetchBlock(high.digest, high.k, holder);
    }
    this.newViews.delete(view);
    this.inViewChange = false;
    this.out.event({ name: 'viewEntered', view });
    // The requests clients retransmitted to this replica are the ones to propose first.
    for (const req of this.awaited.values()) this.acceptRequest(req, this.id);
    this.tryPropose();
  }

  protected collectGarbage(stableK: number): void {
    for (const [key, node] of this.committed) if (node.height <= stableK) this.committed.delete(key);
    this.forgetCertificates(Math.min(stableK, this.committedHeight) - 1);
  }

  // --- for tests

  get highQCNow(): QuorumCert {
    return this.highQC;
  }

  get lockedQCNow(): QuorumCert {
    return this.lockedQC;
  }

  get currentView(): number {
    return this.view;
  }

  get collectorCount(): number {
    return this.collectors.size;
  }
}
