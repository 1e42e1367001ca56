/**
 * PoE's block fetcher (paper §4(6): "A recovering replica ... can ask other replicas for the
 * blocks that have been added to the chain ... [and] can verify the validity of the received
 * blocks"), beside the core in replica/poe.ts: FETCH / BLOCKS, the archive of garbage-collected
 * requests that serves them, and the votes on uncertified blocks. It brings a replica up to a
 * certified point (a stable checkpoint, §3.5 last paragraph, or the base of the view it
 * entered, Figure 5 line 14) by blocks that chain onto its ledger to the certified hash,
 * rebases a replica that speculated on a branch the others abandoned (§3.3.5), and executes
 * uncertified blocks of the current view once f+1 replicas sent them alike (voteTail).
 *
 * Invariants: the archive holds requests of garbage-collected k in (gcK - archiveK, gcK] only;
 * the fetch timer is armed at most once (fetchTimerArmed); tail votes are kept for k within
 * two windows above our execution, at most n variants per k, and dropped once executed or
 * when a view is entered; blocks executed through voteTail during a view change stay below
 * the next checkpoint and send no INFORM until a view is entered (muteTailK).
 */
import type { Executor } from './common.js';
import { IdleStatus } from './idle-status.js';
import { blockHash, type Ledger } from './ledger.js';
import type { Checkpoint, ClientRequest } from './messages.js';
import { isNoop, requestDigest } from './messages.js';
import type { Outbox } from './outbox.js';
import { POE_TIMERS, type PoeParams, RETRY_DIVISOR, type Slot } from './poe-state.js';
import { type Blocks, type ExecutionEntry, type Fetch, MSG_BLOCKS, MSG_FETCH, type PoeMessage } from './poe-wire.js';
import type { YcsbStore } from './store.js';

/** What the fetcher reads and asks of the core (replica/poe.ts). */
export interface FetchCore {
  readonly executor: Executor;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  readonly slots: Map<number, Slot>;
  readonly view: number;
  readonly inViewChange: boolean;
  /** Sequence numbers up to here are fixed by the current view's NV-PROPOSE. */
  readonly viewStartK: number;
  /** The checkpoint the current view started from. */
  readonly viewBase: { readonly k: number; readonly digest: Buffer };
  readonly stableK: number;
  readonly stableDigest: Buffer;
  readonly gcK: number;
  readonly maxSeenK: number;
  readonly lastProgressMs: number;
  readonly nowMs: number;
  readonly retryIntervalMs: number;
  /** Our CHECKPOINT for k (re-sent to a replica that asks for blocks below it). */
  makeCheckpoint(k: number, digest: Buffer): Checkpoint;
  validRequest(req: ClientRequest): boolean;
  /** A committed slot for k and the executor's commit (what E' and certified blocks share). */
  commitKnown(k: number, view: number, request: ClientRequest, digest: Buffer): void;
  executeReady(): void;
  /** Rolls back to `keepK` (§3.3.5): executor, event, INFORM bookkeeping. */
  rollBack(keepK: number): void;
  startViewChange(v: number): void;
  acknowledgeAll(): void;
  extendClaims(entries: readonly ExecutionEntry[]): boolean;
}

export class PoeBlockFetcher {
  /** Requests of garbage-collected batches, kept for archiveK sequence numbers to serve FETCH (paper §4(6)). */
  private readonly archive = new Map<number, ClientRequest>();
  private archiveLowK = 1;
  private fetchTimerArmed = false;
  private fetchPeer: number;
  /**
   * BLOCKS that did not reproduce the certified digest we fetch to. After one, we fetch from our
   * own certified base instead (rebaseOnCertified): our speculative executions above it may be
   * a branch the others abandoned, which no block from a peer chains onto.
   */
  private fetchMisses = 0;
  /**
   * Uncertified blocks of the current view others sent us (voteTail): k -> `${digest hex}` ->
   * the entry and who sent it. Bounded: k within two windows above our execution, n variants per k.
   */
  private readonly tailVotes = new Map<number, Map<string, { entry: ExecutionEntry; digest: Buffer; senders: Set<number> }>>();
  /**
   * Blocks up to here were executed through voteTail during a view change, after our VC-REQUEST
   * for the view went out: that request does not list them, so we send no INFORM for them (a
   * client must not count us among the nf replicas that hold them: Proposition 3.5 needs every
   * INFORM sender's VC-REQUEST to list what it informed of), and stop below the next checkpoint
   * (our CHECKPOINT vote would vouch for them too). Once we entered a view, its E' kept them (or
   * we rolled them back) and any later VC-REQUEST lists them: a client that re-sends its request
   * gets the INFORM then. (Muted for good, the clients of those batches could lack nf INFORMs and
   * force view change after view change: seed 20053 of primary-in-the-dark.)
   */
  private muteTailK = 0;
  /**
   * The idle status timer (onStatusTimer, replica/idle-status.ts): its period is two view-change
   * timeouts, so the fetch timer and failure detection have their turn first.
   */
  private readonly status: IdleStatus<PoeMessage>;

  constructor(
    private readonly p: PoeParams,
    private readonly out: Outbox<PoeMessage>,
    private readonly core: FetchCore,
  ) {
    this.fetchPeer = p.id;
    this.status = new IdleStatus(out, POE_TIMERS.status);
  }

  /** During a view change, no INFORM for k (see muteTailK). */
  muted(k: number): boolean {
    // muteTailK first: it is 0 outside a catch-up, and this runs at every execution.
    return k <= this.muteTailK && this.core.inViewChange;
  }

  /** Moves a garbage-collected request to the archive. */
  archiveRequest(k: number, request: ClientRequest): void {
    this.archive.set(k, request);
  }

  /** Drops archived requests at or below stableK - archiveK. */
  trimArchive(stableK: number): void {
    for (; this.archiveLowK <= stableK - this.p.archiveK; this.archiveLowK++) this.archive.delete(this.archiveLowK);
  }

  /** A new view: votes on the old view's blocks no longer apply. */
  clearTail(): void {
    this.tailVotes.clear();
  }

  /** A certified point we have not executed to: the stable checkpoint, or the base of the view we entered. */
  fetchTarget(): { k: number; digest: Buffer } | undefined {
    const executed = this.core.executor.executedK;
    let target: { k: number; digest: Buffer } | undefined;
    if (this.core.stableK > executed) target = { k: this.core.stableK, digest: this.core.stableDigest };
    if (this.core.viewBase.k > executed && (!target || this.core.viewBase.k > target.k)) target = this.core.viewBase;
    return target;
  }

  /** Others proposed or supported beyond what we executed, and we have not executed anything for a while. */
  seemsBehind(): boolean {
    return this.core.maxSeenK > this.core.executor.executedK && this.core.nowMs - this.core.lastProgressMs >= this.core.retryIntervalMs;
  }

  /**
   * End of every step: a replica behind a certified point starts fetching after a short delay
   * (it may just be slow); one that merely seems behind checks again after the same delay.
   */
  armFetchTimer(): void {
    if (this.fetchTimerArmed || (!this.fetchTarget() && this.core.maxSeenK <= this.core.executor.executedK)) return;
    this.fetchTimerArmed = true;
    this.out.setTimer(POE_TIMERS.fetch, this.core.retryIntervalMs);
  }

  onFetchTimer(): void {
    this.fetchTimerArmed = false;
    const fromK = this.core.executor.executedK + 1;
    const target = this.fetchTarget();
    if (target) {
      // One peer at a time, rotating: blocks are large, and any single correct peer suffices.
      do this.fetchPeer = (this.fetchPeer + 1) % this.p.n;
      while (this.fetchPeer === this.p.id);
      const from = this.fetchMisses > 0 && this.core.gcK < this.core.executor.executedK ? this.core.gcK + 1 : fromK;
      this.out.send(this.fetchPeer, { type: MSG_FETCH, fromK: from, toK: target.k });
    } else if (this.seemsBehind()) {
      // We may have lost the CHECKPOINTs that would tell us where to fetch to: ask everybody for
      // their stable checkpoint, and for the blocks of this view we lack above it (voteTail):
      // after the clients' last batches nobody retransmits, and no checkpoint may ever certify them.
      // Also during a view change: a replica that gave up alone on a view the others entered
      // (its NV-PROPOSE and NV-ACKs lost) catches up on that view's blocks (voteTail).
      const toK = Math.min(this.core.maxSeenK, fromK + this.p.windowK - 1);
      this.out.broadcast({ type: MSG_FETCH, fromK, toK });
    }
  }

  /**
   * End of every step: the status timer is always armed, every STATUS_TIMEOUTS view-change
   * timeouts while the replica executes, then backing off while it stays idle.
   */
  armStatusTimer(): void {
    // RETRY_DIVISOR retry intervals: the view-change timeout (replica/poe.ts retryIntervalMs).
    this.status.arm(RETRY_DIVISOR * this.core.retryIntervalMs);
  }

  /**
   * Catching up once the system went idle. A replica cut off while the others progressed (by
   * partitions, or lost messages) learns it is behind only from messages of the others: the
   * CHECKPOINTs it missed (§3.5, line 343) are never sent again, and once the clients are done
   * nothing else is; the paper's recovery (§4(6), line 395) needs the replica to know it must
   * ask. So, as PBFT's replicas multicast status messages periodically (Castro and Liskov, TOCS
   * 2002, the paper's [16]), a replica that executed nothing for two view-change timeouts
   * broadcasts a FETCH for the window above its execution. A replica ahead answers it (onFetch:
   * its CHECKPOINT and its blocks), and one behind learns from fromK - 1 how far the sender got
   * (maxSeenK) and fetches (onFetchTimer). Silent while the replica executes (the normal case
   * sends nothing more), and while it changes views (the new-view timer re-sends).
   */
  onStatusTimer(): void {
    const executed = this.core.executor.executedK;
    if (!this.status.fired(executed, this.core.inViewChange)) return;
    this.out.broadcast({ type: MSG_FETCH, fromK: executed + 1, toK: executed + this.p.windowK });
  }

  /**
   * Serves executed blocks from fromK on, consecutively, as far as we still hold them; and
   * repeats our CHECKPOINT for the highest checkpoint we executed if the asker is behind it (its
   * copy may have been lost), so that it can learn where to fetch to.
   */
  onFetch(from: number, m: Fetch): void {
    if (m.toK < m.fromK - 1 || m.fromK < 1 || m.toK - m.fromK >= 4 * this.p.windowK + this.p.archiveK) {
      this.out.reject('FETCH with an invalid range', from);
      return;
    }
    // Our vote for the highest checkpoint we executed (a re-send of our CHECKPOINT).
    const c = this.core.executor.executedK - (this.core.executor.executedK % this.p.intervalK);
    if (c >= m.fromK && c > 0) this.out.send(from, this.core.makeCheckpoint(c, this.core.ledger.hashAt(c)));
    const entries: ExecutionEntry[] = [];
    const last = Math.min(m.toK, this.core.executor.executedK);
    for (let k = m.fromK; k <= last; k++) {
      const request = this.core.slots.get(k)?.request ?? this.archive.get(k);
      if (!request || !this.core.ledger.digestEquals(k, requestDigest(this.p.crypto, request))) break;
      entries.push({ view: this.core.ledger.viewAt(k), k, request });
    }
    if (entries.length > 0) this.out.send(from, { type: MSG_BLOCKS, entries });
  }

  /**
   * Fetched blocks, used two ways. Chained onto our ledger, if they reproduce the certified
   * digest at our fetch target, they are the batches nf replicas executed (the chain is
   * collision resistant), whoever sent them: we execute them. Otherwise they may let us check a
   * checkpoint another replica claims in its VC-REQUEST (extendClaims); those we do not execute.
   */
  onBlocks(from: number, m: Blocks): void {
    const executed = this.core.executor.executedK;
    const entries = m.entries;
    if (entries.length === 0) return;
    const first = entries[0]!.k;
    for (let i = 0; i < entries.length; i++) if (entries[i]!.k !== first + i) return;
    const target = this.fetchTarget();
    if (target && first === this.core.gcK + 1 && first <= executed) {
      this.rebaseOnCertified(from, entries, target);
      return;
    }
    if (first !== executed + 1) return;
    if (target && target.k <= executed + entries.length && this.executeCertified(entries.slice(0, target.k - executed), target.digest)) {
      // Our state grew: requests we could not check before may be acknowledged now.
      if (this.core.inViewChange) this.core.acknowledgeAll();
      return;
    }
    if (this.core.extendClaims(entries)) this.core.acknowledgeAll();
    else if (target) {
      this.fetchMisses++;
      this.out.reject('BLOCKS do not reproduce the certified checkpoint', from);
    } else this.voteTail(from, entries);
  }

  /**
   * Blocks from our certified base (gcK: our ledger there is the stable digest) up to the fetch
   * target. If they reproduce the target's certified digest, they are the chain nf replicas hold,
   * and where our ledger leaves it we executed a branch the others abandoned (a primary cut off
   * while the others changed view goes on speculating alone, paper §3.3.5): we roll back to where
   * they part and execute the certified blocks. What we roll back is not in the certified chain,
   * so no client accepted it (Proposition 3.5). Found by the simulator: the cut-off primary
   * otherwise fetched blocks chained onto its own branch forever.
   */
  private rebaseOnCertified(from: number, entries: readonly ExecutionEntry[], target: { k: number; digest: Buffer }): void {
    const base = entries[0]!.k - 1;
    const upto = target.k - base;
    if (entries.length < upto) return;
    const digests = entries.slice(0, upto).map((e) => requestDigest(this.p.crypto, e.request));
    let prev = this.core.ledger.hashAt(base);
    for (let i = 0; i < upto; i++) prev = blockHash(this.p.crypto, entries[i]!.k, digests[i]!, entries[i]!.view, prev);
    if (!prev.equals(target.digest)) {
      this.out.reject('BLOCKS do not reproduce the certified checkpoint', from);
      return;
    }
    const executed = this.core.executor.executedK;
    let keep = executed;
    for (let k = base + 1; k <= executed; k++) {
      const i = k - base - 1;
      if (this.core.ledger.viewAt(k) !== entries[i]!.view || !this.core.ledger.digestEquals(k, digests[i]!)) {
        keep = k - 1;
        break;
      }
    }
    if (keep < executed) {
      this.core.rollBack(keep);
      for (const k of [...this.core.slots.keys()]) if (k > keep) this.core.slots.delete(k);
    }
    this.fetchMisses = 0;
    if (this.executeCertified(entries.slice(keep - base, upto), target.digest) && this.core.inViewChange) this.core.acknowledgeAll();
  }

  /**
   * Blocks of the current view above anything certified, from replicas that executed them: once
   * f+1 distinct replicas sent the same block for k, a non-faulty one view-committed it (nf
   * SUPPORTs in this view; Proposition 3.2: no other proposal for (v, k) can be), which is what
   * our own view-commit would have needed, so we execute it, speculatively like any other. This
   * lets a replica that lost the last SUPPORTs of a run catch up, when no client retransmits and
   * no later checkpoint certifies them (the PBFT core's catch-up does the same).
   */
  voteTail(from: number, entries: readonly ExecutionEntry[]): void {
    const executed = this.core.executor.executedK;
    // During a view change, up to (not including) the next checkpoint: see muteTailK.
    const limitK = this.core.inViewChange ? executed - (executed % this.p.intervalK) + this.p.intervalK - 1 : executed + 2 * this.p.windowK;
    for (const e of entries) {
      if (e.view !== this.core.view || e.k <= this.core.viewStartK || e.k > limitK) break;
      if (isNoop(e.request) || !this.core.validRequest(e.request)) break;
      const digest = requestDigest(this.p.crypto, e.request);
      let byDigest = this.tailVotes.get(e.k);
      if (!byDigest) {
        byDigest = new Map();
        this.tailVotes.set(e.k, byDigest);
      }
      const key = digest.toString('hex');
      let vote = byDigest.get(key);
      if (!vote) {
        if (byDigest.size >= this.p.n) break;
        vote = { entry: e, digest, senders: new Set() };
        byDigest.set(key, vote);
      }
      vote.senders.add(from);
    }
    let committed = false;
    for (let k = executed + 1; ; k++) {
      const agreed = [...(this.tailVotes.get(k)?.values() ?? [])].find((v) => v.senders.size >= this.p.f + 1);
      if (!agreed) break;
      const own = this.core.slots.get(k);
      if (own?.committed) {
        // View-committed here already (waiting for an earlier k): it can only be the same batch.
        if (!own.digest?.equals(agreed.digest)) break;
        continue;
      }
      this.core.commitKnown(k, this.core.view, agreed.entry.request, agreed.digest);
      committed = true;
      if (this.core.inViewChange) this.muteTailK = k;
    }
    if (!committed) return;
    this.core.executeReady();
    for (const k of [...this.tailVotes.keys()]) if (k <= this.core.executor.executedK) this.tailVotes.delete(k);
  }

  /** Executes `entries` (from executedK + 1 on) if they chain onto our ledger to `digest`. */
  private executeCertified(entries: readonly ExecutionEntry[], digest: Buffer): boolean {
    let prev = this.core.ledger.headHash;
    const digests: Buffer[] = [];
    for (const e of entries) {
      const d = requestDigest(this.p.crypto, e.request);
      digests.push(d);
      prev = blockHash(this.p.crypto, e.k, d, e.view, prev);
    }
    if (!prev.equals(digest)) return false;
    for (const e of entries) if (!isNoop(e.request) && !this.core.store.validWrites(e.request.writes)) return false;
    // Blocks of a later view than ours: the others moved on without us. What we view-committed
    // above them belongs to an abandoned view: do not execute it; and ask to leave our view, so
    // that replicas in the new one send us what let them in (helpIntoView).
    const laterView = entries.some((e) => e.view > this.core.view);
    if (laterView) this.core.executor.dropPendingAbove(entries[entries.length - 1]!.k);
    entries.forEach((e, i) => this.core.commitKnown(e.k, e.view, e.request, digests[i]!));
    this.core.executeReady();
    if (laterView && !this.core.inViewChange) this.core.startViewChange(this.core.view);
    return true;
  }
}
