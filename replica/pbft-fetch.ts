/**
 * PBFT's catching up: Castro and Liskov's state transfer (OSDI'99 §4.3; TOCS 2002 §6) reduced to
 * replaying executed batches, for replica/pbft.ts (paper §4(8)). Messages can be lost (a
 * primary that crashes half-way through a broadcast, a dropped link), so a replica that knows
 * of sequence numbers above its execution but makes no progress for a timeout, or that a stable
 * checkpoint overtook, fetches the executed batches it lacks from others: checked against the
 * checkpoint's certified ledger hash when one overtook it, otherwise taken when f+1 replicas
 * return the same batch (one of them is non-faulty).
 *
 * Invariants: every executed k in (retainedLowK, executedK] is retained, and nothing two
 * windows below the stable checkpoint is; fetch votes exist only for k above the execution and
 * within two windows of it, at most n batches per k; so memory stays bounded whatever faulty
 * replicas send. Not implemented: state transfer of the store itself, so a replica that falls
 * further behind than two windows cannot catch up.
 */
import type { Executor } from './common.js';
import type { CryptoProvider } from './crypto.js';
import { blockHash, type Ledger } from './ledger.js';
import { IdleStatus } from './idle-status.js';
import { requestDigest } from './messages.js';
import type { Outbox } from './outbox.js';
import { MSG_BATCHES, MSG_FETCH, type Batches, type CheckpointProof, type Fetch, type NewViewEntry, type PbftMessage } from './pbft-wire.js';
import type { Peer } from './types.js';

export interface FetcherContext {
  readonly id: number;
  readonly n: number;
  readonly f: number;
  readonly windowK: number;
  /** The progress watch's timeout (the view-change timeout). */
  readonly timeoutMs: number;
  /** The name of the progress watch's timer. */
  readonly timerName: string;
  /** The name of the idle status timer (onStatusTimer). */
  readonly statusTimerName: string;
  readonly inViewChange: () => boolean;
  readonly crypto: CryptoProvider;
  readonly executor: Executor;
  readonly ledger: Ledger;
  readonly out: Outbox<PbftMessage>;
  /** Executes what fetched batches made ready (the core's executeReady). */
  readonly executeReady: () => void;
}

export class BatchFetcher {
  /** Executed batches kept for replicas that fetch (k -> entry). */
  private readonly retained = new Map<number, NewViewEntry>();
  private retainedLowK = 0;
  /** A stable checkpoint above this replica's execution: the batches up to it are being fetched. */
  private catchUp: CheckpointProof | undefined;
  private attempt = 0;
  /** The highest sequence number this replica has seen in use. */
  private knownHighK = 0;
  private timerArmed = false;
  /** executedK when the progress watch was armed: no change by the time it fires means stuck. */
  private markK = 0;
  /** Fetched batches by k, then (origin view, digest), with their senders. */
  private readonly votes = new Map<number, Map<string, { entry: NewViewEntry; digest: Buffer; senders: Set<number> }>>();
  /**
   * The idle status timer (onStatusTimer, replica/idle-status.ts): its period is two view-change
   * timeouts, so the progress watch, which fetches what a replica knows it lacks, has its turn first.
   */
  private readonly status: IdleStatus<PbftMessage>;

  constructor(private readonly ctx: FetcherContext) {
    this.status = new IdleStatus(ctx.out, ctx.statusTimerName);
  }

  /** Records that sequence number k is in use somewhere (O(1): called per message). */
  noteK(k: number): void {
    if (k > this.knownHighK) this.knownHighK = k;
  }

  /** A new view abandons sequence numbers above its max-s: nothing to fetch there. */
  resetKnownHigh(k: number): void {
    this.knownHighK = k;
  }

  retain(entry: NewViewEntry): void {
    this.retained.set(entry.k, entry);
  }

  /** Arms the progress watch when this replica knows of batches it has not executed. */
  watchProgress(): void {
    this.armStatus();
    const executedK = this.ctx.executor.executedK;
    if (this.timerArmed || this.knownHighK <= executedK) return;
    this.timerArmed = true;
    this.markK = executedK;
    this.ctx.out.setTimer(this.ctx.timerName, this.ctx.timeoutMs);
  }

  /**
   * Also at the end of every step: the status timer is always armed, every STATUS_TIMEOUTS
   * view-change timeouts while the replica executes, then backing off while it stays idle.
   */
  armStatus(): void {
    this.status.arm(this.ctx.timeoutMs);
  }

  /**
   * Catching up once the system went idle. A replica cut off while the others progressed learns
   * that it is behind only from their messages; the CHECKPOINTs it missed are never sent again,
   * and once the clients are done nothing else is. So, like the status messages PBFT's replicas
   * multicast periodically so that others retransmit what they lack (Castro and Liskov, TOCS 2002), a replica that executed nothing for
   * two view-change timeouts broadcasts a FETCH for the two windows above its execution: a replica
   * ahead answers with the batches (onFetch), and one behind learns from fromK - 1 how far the
   * sender got (noteK) and fetches (watchProgress). Silent while the replica executes (the
   * normal case sends nothing more) and while it changes views (VIEW-CHANGEs are re-sent).
   */
  onStatusTimer(): void {
    const executedK = this.ctx.executor.executedK;
    if (!this.status.fired(executedK, this.ctx.inViewChange())) return;
    const msg: Fetch = { type: MSG_FETCH, replica: this.ctx.id, fromK: executedK + 1, toK: executedK + 2 * this.ctx.windowK };
    this.ctx.out.broadcast(msg);
  }

  onTimer(): void {
    this.timerArmed = false;
    if (this.ctx.executor.executedK === this.markK) this.sendFetch();
    // The core's step() re-arms the watch if batches are still missing.
  }

  /** A checkpoint at k became stable: batches two windows below it and votes up to it are dropped. */
  forgetBelow(k: number): void {
    const retainFromK = k - 2 * this.ctx.windowK;
    if (retainFromK - this.retainedLowK <= this.retained.size) {
      for (let j = this.retainedLowK + 1; j <= retainFromK; j++) this.retained.delete(j);
    } else {
      for (const j of [...this.retained.keys()]) if (j <= retainFromK) this.retained.delete(j);
    }
    this.retainedLowK = Math.max(this.retainedLowK, retainFromK);
    for (const j of this.votes.keys()) if (j <= k) this.votes.delete(j);
  }

  /**
   * A stable checkpoint, maybe above this replica's execution. Fetch at once if the next
   * pre-prepare is missing (`nextMissing`: on the primary's FIFO link it came before the
   * primary's checkpoint, so it was most likely lost), if the previous checkpoint overtook it
   * too, or if half a window behind: later, the batches could be beyond what the others keep.
   * A replica that is merely a little slow is left to the progress watch.
   */
  onStable(proof: CheckpointProof, nextMissing: boolean): void {
    this.noteK(proof.k);
    const executedK = this.ctx.executor.executedK;
    if (proof.k <= executedK || (this.catchUp && proof.k <= this.catchUp.k)) return;
    const overtakenBefore = this.catchUp !== undefined && this.catchUp.k > executedK;
    this.catchUp = proof;
    if (overtakenBefore || nextMissing || proof.k - executedK >= this.ctx.windowK / 2) this.sendFetch();
  }

  /**
   * Behind a stable checkpoint: asks one of its signers (a different one each time), whose
   * answer is checked against the checkpoint's digest. Otherwise asks f+1 replicas (the next
   * f+1 each time) and takes a batch that f+1 of them agree on: one of them is non-faulty.
   */
  private sendFetch(): void {
    const { id, n, f, windowK, executor, out } = this.ctx;
    const fromK = executor.executedK + 1;
    if (this.catchUp && this.catchUp.k < fromK) this.catchUp = undefined;
    const target = this.catchUp;
    const toK = Math.min(Math.max(target?.k ?? 0, this.knownHighK), fromK + 2 * windowK - 1);
    if (toK < fromK) return;
    const msg: Fetch = { type: MSG_FETCH, replica: id, fromK, toK };
    const attempt = this.attempt++;
    if (target) {
      const peers = target.senders.filter((s) => s !== id);
      if (peers.length > 0) return out.send(peers[attempt % peers.length]!, msg);
    }
    const others = n - 1;
    for (let i = 0; i <= f; i++) {
      const to = (id + 1 + ((attempt * (f + 1) + i) % others)) % n;
      out.send(to, msg);
    }
  }

  /**
   * Serves the executed batches it still keeps, contiguous from fromK. The sender executed up to
   * fromK - 1: a hint of progress to catch up with (bounded as the fetch itself is).
   */
  onFetch(from: Peer, m: Fetch): void {
    if (m.fromK - 1 <= this.ctx.executor.executedK + 2 * this.ctx.windowK) this.noteK(m.fromK - 1);
    const toK = Math.min(m.toK, this.ctx.executor.executedK, m.fromK + 2 * this.ctx.windowK - 1);
    const entries: NewViewEntry[] = [];
    for (let k = m.fromK; k <= toK; k++) {
      const e = this.retained.get(k);
      if (!e) break;
      entries.push(e);
    }
    if (entries.length > 0) this.ctx.out.send(from, { type: MSG_BATCHES, replica: this.ctx.id, entries });
  }

  onBatches(from: Peer, m: Batches): void {
    if (this.catchUp && this.takeCheckpointBatches(from, m)) return;
    this.voteFetchedBatches(from, m);
  }

  /**
   * Takes fetched batches if they extend this replica's ledger to exactly the state digest nf
   * replicas certified at the checkpoint: one faulty sender cannot slip in a batch.
   */
  private takeCheckpointBatches(from: Peer, m: Batches): boolean {
    const { crypto, executor, ledger } = this.ctx;
    const target = this.catchUp!;
    let k = executor.executedK;
    let hash = ledger.headHash;
    const digests: Buffer[] = [];
    for (const e of m.entries) {
      if (k >= target.k || e.k !== k + 1) break;
      const digest = requestDigest(crypto, e.request);
      hash = blockHash(crypto, e.k, digest, e.originView, hash);
      digests.push(digest);
      k = e.k;
    }
    if (k !== target.k) return false;
    if (!hash.equals(target.stateDigest)) {
      this.ctx.out.reject('fetched batches do not match the checkpoint', from);
      this.sendFetch(); // the next signer
      return true;
    }
    for (let i = 0; i < digests.length; i++) {
      const e = m.entries[i]!;
      executor.commit(e.k, e.originView, e.request, digests[i]!);
    }
    this.catchUp = undefined;
    this.ctx.executeReady();
    return true;
  }

  /** Counts fetched batches per (k, origin view, digest); f+1 matching senders commit one. */
  private voteFetchedBatches(from: Peer, m: Batches): void {
    const { executor, n, f } = this.ctx;
    const executedK = executor.executedK;
    const highK = executedK + 2 * this.ctx.windowK;
    let committed = false;
    for (const e of m.entries) {
      if (e.k <= executedK || executor.isCommitted(e.k)) continue;
      if (e.k > highK) break;
      const digest = requestDigest(this.ctx.crypto, e.request);
      let byValue = this.votes.get(e.k);
      if (!byValue) {
        byValue = new Map();
        this.votes.set(e.k, byValue);
      }
      const key = `${e.originView}:${digest.toString('hex')}`;
      let vote = byValue.get(key);
      if (!vote) {
        if (byValue.size >= n) continue;
        vote = { entry: e, digest, senders: new Set() };
        byValue.set(key, vote);
      }
      vote.senders.add(from);
      if (vote.senders.size === f + 1) {
        executor.commit(e.k, e.originView, e.request, digest);
        committed = true;
      }
    }
    if (!committed) return;
    this.ctx.executeReady();
    for (const k of [...this.votes.keys()]) if (k <= executor.executedK) this.votes.delete(k);
  }

  /** Sizes, for tests that check memory stays bounded. */
  get sizes(): { retained: number; fetchVotes: number } {
    return { retained: this.retained.size, fetchVotes: this.votes.size };
  }
}
