/**
 * Pieces every protocol core shares: in-order execution into the store and ledger with client
 * deduplication and rollback, and checkpoints with garbage collection.
 *
 * DESIGN.md: replicas process sequence numbers out of order inside a window and execute
 * strictly in order; a checkpoint every `checkpointIntervalK`, stable at nf matching, then
 * garbage collection; requests carry (client id, request number) and replicas deduplicate.
 */
import type { Ledger } from './ledger.js';
import type { Checkpoint, ClientRequest } from './messages.js';
import { isNoop, MSG_CHECKPOINT } from './messages.js';
import type { YcsbStore } from './store.js';

/** One batch executed at sequence number k. `duplicate`: its (clientId, reqNo) ran before, so its writes were skipped. */
export interface Execution {
  readonly k: number;
  readonly view: number;
  readonly request: ClientRequest;
  readonly digest: Buffer;
  readonly duplicate: boolean;
  /** Ledger head hash after this block. */
  readonly blockHash: Buffer;
}

/**
 * Applies committed batches strictly in sequence order. `commit` may be called out of order
 * (inside the window); `drain` executes the longest run that continues the ledger.
 * With `speculative`, every execution can be undone until `forget` (PoE, Zyzzyva).
 */
export class Executor {
  private readonly pending = new Map<number, { view: number; request: ClientRequest; digest: Buffer }>();
  /** clientId -> highest reqNo executed. */
  private readonly lastReqNo = new Map<number, number>();
  /**
   * The client table's undo log (speculative only), oldest first from `undoHead`: per execution
   * its k, its client, and that client's previous highest reqNo (-1: none; reqNos are u32). In
   * columns: an object per execution, kept until the next stable checkpoint, was scattered
   * through the old generation, and walking them in `forget` cost 13 us per checkpoint.
   */
  private undoK: number[] = [];
  private undoClient: number[] = [];
  private undoPrevious: number[] = [];
  private undoHead = 0;

  constructor(
    private readonly store: YcsbStore,
    private readonly ledger: Ledger,
    readonly speculative: boolean,
  ) {}

  get executedK(): number {
    return this.ledger.height;
  }

  /** Highest reqNo executed for a logical client, or -1. */
  lastExecuted(clientId: number): number {
    return this.lastReqNo.get(clientId) ?? -1;
  }

  /** True if this (clientId, reqNo) was executed already. */
  isExecuted(req: ClientRequest): boolean {
    return req.reqNo <= this.lastExecuted(req.clientId);
  }

  /** Schedules batch k for execution once k-1 has run (paper Figure 3, line 19). */
  commit(k: number, view: number, request: ClientRequest, digest: Buffer): void {
    if (k <= this.ledger.height) return;
    this.pending.set(k, { view, request, digest });
  }

  isCommitted(k: number): boolean {
    return k <= this.ledger.height || this.pending.has(k);
  }

  /** Executes every batch that continues the ledger, in order. */
  drain(): Execution[] {
    const out: Execution[] = [];
    for (;;) {
      const k = this.ledger.height + 1;
      const next = this.pending.get(k);
      if (!next) break;
      this.pending.delete(k);
      out.push(this.executeOne(k, next.view, next.request, next.digest));
    }
    return out;
  }

  private executeOne(k: number, view: number, request: ClientRequest, digest: Buffer): Execution {
    if (isNoop(request)) {
      if (this.speculative) this.store.apply(k, [], true);
      const blockHash = this.ledger.append(k, digest, view);
      return { k, view, request, digest, duplicate: false, blockHash };
    }
    const previous = this.lastReqNo.get(request.clientId);
    const duplicate = previous !== undefined && request.reqNo <= previous;
    if (!duplicate) {
      this.store.apply(k, request.writes, this.speculative);
      this.lastReqNo.set(request.clientId, request.reqNo);
    } else if (this.speculative) {
      this.store.apply(k, [], true);
    }
    if (this.speculative) {
      this.undoK.push(k);
      this.undoClient.push(request.clientId);
      this.undoPrevious.push(previous ?? -1);
    }
    const blockHash = this.ledger.append(k, digest, view);
    return { k, view, request, digest, duplicate, blockHash };
  }

  /**
   * Rolls back every execution above k: store, ledger and client table (paper §3.3.5).
   * Returns how many batches were undone. Throws if an execution above k was forgotten.
   */
  rollbackTo(k: number): number {
    if (k >= this.ledger.height) return 0;
    if (!this.speculative) throw new Error('rollback on a non-speculative executor');
    const oldest = this.store.oldestUndoableK;
    if (oldest === undefined || oldest > k + 1) {
      throw new Error(`rollback to ${k}: executions from ${oldest ?? 'none'} are no longer undoable`);
    }
    const undone = this.ledger.height - k;
    this.store.rollbackTo(k);
    while (this.undoK.length > this.undoHead && this.undoK[this.undoK.length - 1]! > k) {
      this.undoK.pop();
      const clientId = this.undoClient.pop()!;
      const previous = this.undoPrevious.pop()!;
      if (previous < 0) this.lastReqNo.delete(clientId);
      else this.lastReqNo.set(clientId, previous);
    }
    this.ledger.truncate(k);
    this.dropPendingAbove(k);
    return undone;
  }

  /** Drops pending entries above k that were never executed (a new view re-proposes them). */
  dropPendingAbove(k: number): void {
    for (const key of [...this.pending.keys()]) if (key > k) this.pending.delete(key);
  }

  /** After a stable checkpoint at k, executions up to k can never roll back. */
  forget(k: number): void {
    this.store.forget(k);
    while (this.undoHead < this.undoK.length && this.undoK[this.undoHead]! <= k) this.undoHead++;
    if (this.undoHead === this.undoK.length) {
      this.undoK.length = this.undoClient.length = this.undoPrevious.length = this.undoHead = 0;
    } else if (this.undoHead > 1024) {
      this.undoK = this.undoK.slice(this.undoHead);
      this.undoClient = this.undoClient.slice(this.undoHead);
      this.undoPrevious = this.undoPrevious.slice(this.undoHead);
      this.undoHead = 0;
    }
  }

  get pendingCount(): number {
    return this.pending.size;
  }
}

/**
 * Collects CHECKPOINT(k, digest) messages; k becomes stable when nf distinct replicas sent
 * the same digest for it. The state digest is the ledger head hash at k: the chain fixes every
 * batch executed up to k, so equal hashes mean equal stores.
 */
export class CheckpointTracker {
  /**
   * Per k, the digests voted for, each with its voters, in the order first voted. A list compared
   * with sameBytes rather than a map keyed by hex strings: almost always it holds one digest, and
   * encoding every vote's digest as hex (a call into C++) and iterating the map cost more than
   * the rest of a vote.
   */
  private readonly votes = new Map<number, { readonly digest: Buffer; readonly voters: Set<number> }[]>();
  private stable = 0;

  constructor(
    private readonly nf: number,
    readonly intervalK: number,
  ) {
    if (!Number.isInteger(intervalK) || intervalK < 1) throw new RangeError(`checkpoint interval must be >= 1, got ${intervalK}`);
  }

  get stableK(): number {
    return this.stable;
  }

  /** True if executing k should produce a checkpoint. */
  isCheckpoint(k: number): boolean {
    return k > 0 && k % this.intervalK === 0;
  }

  makeCheckpoint(replica: number, k: number, stateDigest: Buffer): Checkpoint {
    return { type: MSG_CHECKPOINT, replica, k, stateDigest };
  }

  /**
   * Records a checkpoint vote (the sender's own vote too). Returns the new stable k when
   * this vote made a higher checkpoint stable, otherwise undefined. `aboveK` bounds what is
   * accepted: votes beyond the window are ignored so a faulty sender cannot fill memory.
   */
  add(from: number, k: number, stateDigest: Buffer, maxK: number): number | undefined {
    if (k <= this.stable || k > maxK || k % this.intervalK !== 0) return undefined;
    let byDigest = this.votes.get(k);
    if (!byDigest) {
      byDigest = [];
      this.votes.set(k, byDigest);
    }
    // One vote per sender and k, the latest replacing any earlier one: otherwise one faulty
    // sender could fill the digest slots below with made-up digests before the correct
    // replicas vote, and k would never become stable.
    let senders: Set<number> | undefined;
    for (let i = 0; i < byDigest.length; ) {
      const entry = byDigest[i]!;
      if (sameBytes(entry.digest, stateDigest)) {
        senders = entry.voters;
        i++;
      } else if (entry.voters.delete(from) && entry.voters.size === 0) byDigest.splice(i, 1);
      else i++;
    }
    if (!senders) {
      if (byDigest.length > this.nf + 2) return undefined;
      senders = new Set();
      // A copy, as the hex key was: the vote's buffer may be a view into a frame.
      byDigest.push({ digest: Buffer.from(stateDigest), voters: senders });
    }
    senders.add(from);
    if (senders.size < this.nf) return undefined;
    this.stable = k;
    for (const old of [...this.votes.keys()]) if (old <= k) this.votes.delete(old);
    return k;
  }

  /** The digest a stable checkpoint was certified with, if still known (for tests). */
  get pendingCheckpoints(): number {
    return this.votes.size;
  }
}

/**
 * `a.equals(b)`: the same length and bytes. Written out because Buffer.equals calls into C++,
 * which costs more than comparing the 32 bytes of a digest (every SUPPORT and INFORM does).
 */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  const n = a.length;
  if (b.length !== n) return false;
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Digest-keyed maps use hex strings; one helper keeps it uniform. */
export const hex = (b: Buffer): string => b.toString('hex');
