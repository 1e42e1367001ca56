/**
 * HotStuff's lying replicas (replica/byzantine.ts). Votes are signed, and the liar holds its own
 * key: a conflicting vote is a genuinely signed vote for the same (phase, view, k) naming a
 * digest it voted for before (another batch, or in chained mode another block). The view-change
 * message is the pacemaker's NEW-VIEW(v, highQC) (chained mode, Algorithm 3): the forger claims
 * a higher QC than it has (the QC's view raised, which its signatures no longer cover) and its
 * stale version carries the oldest QC it saw. Parallel mode has no view change to forge.
 */
import { type HotStuffMessage, MSG_HS_NEW_VIEW, MSG_HS_VOTE, makeNewView, makeVote, type QuorumCert } from './hotstuff.js';
import type { AdversaryHooks, Liar } from './protocol.js';
import type { ReplicaDeps } from './types.js';

class HotStuffLiar implements Liar<HotStuffMessage> {
  /** Digests this replica voted for, most recent last. */
  private readonly voted: Buffer[] = [];
  private oldestQC: QuorumCert | undefined;
  constructor(
    private readonly id: number,
    private readonly deps: ReplicaDeps,
  ) {}
  observe(msg: HotStuffMessage, incoming: boolean): void {
    if (msg.type === MSG_HS_VOTE && !incoming && msg.replica === this.id) {
      if (!this.voted.some((d) => d.equals(msg.digest))) this.voted.push(msg.digest);
      if (this.voted.length > 8) this.voted.shift();
    } else if (msg.type === MSG_HS_NEW_VIEW && (!this.oldestQC || msg.highQC.view < this.oldestQC.view)) this.oldestQC = msg.highQC;
  }
  viewChangeView(msg: HotStuffMessage): number | undefined {
    return msg.type === MSG_HS_NEW_VIEW && msg.replica === this.id ? msg.view : undefined;
  }
  forgeViewChange(msg: HotStuffMessage): HotStuffMessage | undefined {
    if (msg.type !== MSG_HS_NEW_VIEW) return undefined;
    const claimed: QuorumCert = { ...msg.highQC, view: msg.view - 1 > msg.highQC.view ? msg.view - 1 : msg.highQC.view + 1 };
    return makeNewView(this.deps.signer, this.id, msg.view, claimed);
  }
  staleViewChange(msg: HotStuffMessage): HotStuffMessage | undefined {
    if (msg.type !== MSG_HS_NEW_VIEW || !this.oldestQC || this.oldestQC.view >= msg.highQC.view) return undefined;
    return makeNewView(this.deps.signer, this.id, msg.view, this.oldestQC);
  }
  conflictingVote(msg: HotStuffMessage): HotStuffMessage | undefined {
    if (msg.type !== MSG_HS_VOTE) return undefined;
    const other = [...this.voted].reverse().find((d) => !d.equals(msg.digest));
    return other ? makeVote(this.deps.signer, this.id, msg.phase, msg.view, msg.k, other) : undefined;
  }
}

export const hotstuffAdversaryHooks: AdversaryHooks<HotStuffMessage> = {
  liar: (id, _n, deps) => new HotStuffLiar(id, deps),
};
