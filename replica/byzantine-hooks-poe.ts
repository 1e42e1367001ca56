/**
 * PoE's lying backups (replica/byzantine.ts). PoE's VC-REQUEST(v, E) lists the sender's
 * executions since its stable checkpoint (paper Figure 5, line 4) with no certificate per entry
 * in the MAC variant; replicas acknowledge only requests consistent with their own state (VC-ACK,
 * line 10). The forger claims, at each sequence number it saw proposed, the batch it saw at
 * another one, in the view it is leaving (executions it does not have); its stale version
 * claims the oldest checkpoint it saw, with the genuine batches above it. A conflicting SUPPORT
 * (line 13) names another batch's digest.
 */
import { BatchBook } from './byzantine-liar.js';
import { type ExecutionEntry, MSG_NV_PROPOSE, MSG_PROPOSE, MSG_SUPPORT, MSG_VC_REQUEST, type PoeMessage, type VcRequest } from './poe.js';
import type { AdversaryHooks, Liar } from './protocol.js';
import type { ReplicaDeps } from './types.js';

class PoeLiar implements Liar<PoeMessage> {
  private readonly book: BatchBook;
  private oldest: { k: number; digest: Buffer } | undefined;
  constructor(
    private readonly id: number,
    deps: ReplicaDeps,
  ) {
    this.book = new BatchBook(deps.crypto);
  }
  observe(msg: PoeMessage): void {
    if (msg.type === MSG_PROPOSE) this.book.add(msg.view, msg.k, msg.request);
    else if (msg.type === MSG_NV_PROPOSE || msg.type === MSG_VC_REQUEST) {
      for (const e of msg.entries) this.book.add(e.view, e.k, e.request);
      if (!this.oldest || msg.stableK < this.oldest.k) this.oldest = { k: msg.stableK, digest: msg.stableDigest };
    }
  }
  viewChangeView(msg: PoeMessage): number | undefined {
    return msg.type === MSG_VC_REQUEST && msg.replica === this.id ? msg.view : undefined;
  }
  forgeViewChange(msg: PoeMessage): PoeMessage | undefined {
    if (msg.type !== MSG_VC_REQUEST) return undefined;
    const entries: ExecutionEntry[] = [];
    for (let k = msg.stableK + 1; k <= this.book.maxK; k++) {
      const lie = this.book.other(k, this.book.at(k)?.digest);
      if (!lie) break;
      entries.push({ view: msg.view, k, request: lie.request });
    }
    if (entries.length === 0) return undefined;
    const forged: VcRequest = { ...msg, entries };
    return forged;
  }
  staleViewChange(msg: PoeMessage): PoeMessage | undefined {
    const old = this.oldest;
    if (msg.type !== MSG_VC_REQUEST || !old || old.k >= msg.stableK) return undefined;
    const entries: ExecutionEntry[] = [];
    for (let k = old.k + 1; k <= this.book.maxK; k++) {
      const b = this.book.at(k);
      if (!b) break;
      entries.push({ view: b.view, k, request: b.request });
    }
    return { ...msg, stableK: old.k, stableDigest: old.digest, entries };
  }
  conflictingVote(msg: PoeMessage): PoeMessage | undefined {
    if (msg.type !== MSG_SUPPORT) return undefined;
    const lie = this.book.other(msg.k, msg.digest);
    return lie ? { ...msg, digest: lie.digest } : undefined;
  }
}

export const poeAdversaryHooks: AdversaryHooks<PoeMessage> = {
  liar: (id, _n, deps) => new PoeLiar(id, deps),
};
