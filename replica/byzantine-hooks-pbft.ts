/**
 * PBFT's lying backups (replica/byzantine.ts: forgeViewChange, conflictingVotes). PBFT's
 * certificates travel under the transport's non-transferable MACs (TOCS 2002 §3.2), so a VIEW-CHANGE
 * can claim any prepared and pre-prepared entries it likes (its P and Q sets): the forger claims, for every sequence number above its checkpoint it saw proposed, a certificate prepared
 * in the view just before the new one for a batch it saw proposed at another sequence number.
 */
import { BatchBook } from './byzantine-liar.js';
import {
  type CheckpointProof,
  MSG_COMMIT,
  MSG_PRE_PREPARE,
  MSG_PREPARE,
  MSG_VIEW_CHANGE,
  MSG_NEW_VIEW,
  type PbftMessage,
  type PreparedCert,
  type ViewChange,
} from './pbft.js';
import type { AdversaryHooks, Liar } from './protocol.js';
import type { ReplicaDeps } from './types.js';

class PbftLiar implements Liar<PbftMessage> {
  private readonly book: BatchBook;
  private oldestCheckpoint: CheckpointProof | undefined;
  constructor(
    private readonly id: number,
    _n: number,
    deps: ReplicaDeps,
  ) {
    this.book = new BatchBook(deps.crypto);
  }
  observe(msg: PbftMessage): void {
    if (msg.type === MSG_PRE_PREPARE) this.book.add(msg.view, msg.k, msg.request);
    else if (msg.type === MSG_NEW_VIEW) for (const e of msg.prePrepares) this.book.add(msg.view, e.k, e.request);
    else if (msg.type === MSG_VIEW_CHANGE) {
      for (const c of msg.prepared) if (c.request) this.book.add(c.view, c.k, c.request);
      if (!this.oldestCheckpoint || msg.checkpoint.k < this.oldestCheckpoint.k) this.oldestCheckpoint = msg.checkpoint;
    }
  }
  viewChangeView(msg: PbftMessage): number | undefined {
    return msg.type === MSG_VIEW_CHANGE && msg.replica === this.id ? msg.view : undefined;
  }
  forgeViewChange(msg: PbftMessage): PbftMessage | undefined {
    if (msg.type !== MSG_VIEW_CHANGE || msg.view < 1) return undefined;
    const claimedView = msg.view - 1;
    const certs = new Map<number, PreparedCert>(msg.prepared.map((c) => [c.k, c]));
    for (let k = msg.checkpoint.k + 1; k <= this.book.maxK; k++) {
      const lie = this.book.other(k, this.book.at(k)?.digest ?? certs.get(k)?.digest);
      if (!lie) continue;
      certs.set(k, { k, view: claimedView, originView: claimedView, digest: lie.digest, request: lie.request });
    }
    if (certs.size === 0) return undefined;
    // The lie goes into P and into Q (what pre-prepared here), as a consistent forger's would.
    const prepared = [...certs.values()].sort((a, b) => a.k - b.k);
    const claimedQ = prepared.map((c) => ({ k: c.k, view: c.view, originView: c.originView, digest: c.digest }));
    const forged: ViewChange = { ...msg, prepared, prePrepared: [...claimedQ, ...msg.prePrepared.filter((q) => !certs.has(q.k))] };
    return forged;
  }
  staleViewChange(msg: PbftMessage): PbftMessage | undefined {
    const cp = this.oldestCheckpoint;
    if (msg.type !== MSG_VIEW_CHANGE || !cp || cp.k >= msg.checkpoint.k) return undefined;
    return { ...msg, checkpoint: cp };
  }
  conflictingVote(msg: PbftMessage): PbftMessage | undefined {
    if (msg.type !== MSG_PREPARE && msg.type !== MSG_COMMIT) return undefined;
    const lie = this.book.other(msg.k, msg.digest);
    return lie ? { ...msg, digest: lie.digest } : undefined;
  }
}

export const pbftAdversaryHooks: AdversaryHooks<PbftMessage> = {
  liar: (id, n, deps) => new PbftLiar(id, n, deps),
};
