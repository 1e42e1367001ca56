/**
 * PBFT's view-change log and decision rule: the view change of the MAC-based PBFT of Castro and
 * Liskov (TOCS 2002, "Practical Byzantine Fault Tolerance and Proactive Recovery", §4: the
 * BFT-PR view change; Castro's thesis §3.2.4), used by replica/pbft.ts (paper §4(8)).
 *
 * Why not OSDI'99 §4.4's rule. There a VIEW-CHANGE carries prepared certificates: signed
 * PRE-PREPAREs and PREPAREs that anyone can check. Here replicas authenticate with MACs on
 * each link, so a VIEW-CHANGE can only *claim* what prepared at its sender; a rule that trusts
 * one claim (the certificate with the highest view) lets one Byzantine replica put another
 * genuinely client-signed batch at a sequence number that already committed, and a Byzantine
 * new primary make up VIEW-CHANGEs. TOCS 2002 §4 instead:
 *
 * - A VIEW-CHANGE carries its sender's stable checkpoint h and the checkpoints above it (C),
 *   P (for each k above h, the batch that prepared there in the latest view, and that view)
 *   and Q (for each k, the batches that pre-prepared there, each with the latest view it did).
 * - Every replica that receives a VIEW-CHANGE for view v from replica j sends the primary of v
 *   a VIEW-CHANGE-ACK with its digest. The new primary uses j's VIEW-CHANGE only once nf - 2
 *   replicas other than j and itself acked the same digest (2f-1 for n = 3f+1): with j and the
 *   primary, a quorum holds that very message, so at least f+1 non-faulty replicas do.
 * - The new primary picks the checkpoint: the highest (k, d) that f+1 VIEW-CHANGEs name in C
 *   and that nf VIEW-CHANGEs do not have a stable checkpoint above. For each k above it, up to
 *   the highest k in a P, it picks batch d (prepared in view v) when
 *     A1: nf VIEW-CHANGEs with h < k either have nothing for k in P, or an entry of a lower
 *         view, or the same (v, d); and
 *     A2: f+1 VIEW-CHANGEs have d in Q for k with a view of at least v (one non-faulty replica
 *         pre-prepared it there, so no Byzantine replica made d up); and
 *     A3: it holds the batch (a valid client signature, or the null request);
 *   or the null request when B: nf VIEW-CHANGEs with h < k have nothing for k in P.
 *   Otherwise it waits for more VIEW-CHANGEs. If batch d committed at k in view v (nf replicas
 *   prepared it), any nf VIEW-CHANGEs include a non-faulty one that prepared it at v or later,
 *   which rules out B and A1 for every other batch.
 * - NEW-VIEW carries V (the VIEW-CHANGEs decided on) and O. A backup checks every VIEW-CHANGE
 *   in V against the copy it received from its sender itself (MACs are not transferable),
 *   waits for (and asks the sender for) copies it lacks, then runs the same rule and accepts
 *   only the O it gives.
 *
 * Cost of a view change (n replicas, none faulty): n(n-1) VIEW-CHANGEs, (n-1)(n-2)
 * VIEW-CHANGE-ACKs to the new primary, n-1 NEW-VIEWs, then O's PREPAREs and COMMITs as in the
 * normal case. The fault-free normal case sends none of these.
 *
 * One change from TOCS 2002: batches carry their origin view (replica/pbft.ts's header), so a
 * "batch" in P, Q and O is the pair (digest, origin view).
 */
import type { CryptoProvider } from './crypto.js';
import { noopRequest, requestDigest, type ClientRequest } from './messages.js';
import {
  MSG_VIEW_CHANGE_ACK,
  PBFT_Q_PER_K,
  summaryBytes,
  type CheckpointClaim,
  type CheckpointProof,
  type NewView,
  type PreparedCert,
  type PrePreparedInfo,
  type ViewChange,
  type ViewChangeAck,
} from './pbft-wire.js';
import { backoffMs } from './backoff.js';
import { primaryOf, type Quorums } from './types.js';

export interface PlannedEntry {
  readonly k: number;
  readonly originView: number;
  readonly digest: Buffer;
  /** True when B chose the null request for k. */
  readonly noop: boolean;
  /** The batch (the new primary's A3); absent when decided by a backup, whose O brings it. */
  readonly request?: ClientRequest;
}

export interface NewViewPlan {
  /** min-s: the chosen checkpoint's sequence number. */
  readonly minS: number;
  readonly checkpoint: CheckpointProof;
  /** max-s: the highest sequence number in a P entry of V above min-s (min-s if none). */
  readonly maxS: number;
  readonly entries: readonly PlannedEntry[];
}

export interface DecideContext {
  readonly crypto: CryptoProvider;
  readonly quorums: Quorums;
  /** The ledger hash at 0: the checkpoint every replica starts from. */
  readonly genesis: Buffer;
  /**
   * The new primary's A3: a batch with this digest whose client signature checks (or the null
   * request for k), from the requests V's VIEW-CHANGEs carry. Undefined for a backup.
   */
  readonly requestFor?: (k: number, digest: Buffer) => ClientRequest | undefined;
}

const sameBatch = (a: { digest: Buffer; originView: number }, b: { digest: Buffer; originView: number }): boolean =>
  a.originView === b.originView && a.digest.equals(b.digest);

/**
 * The new primary's decision (TOCS 2002 §4), also run by every backup on V: the checkpoint and
 * O for view `view` from the VIEW-CHANGEs `vcs` (distinct senders, all for `view`), or
 * undefined while some sequence number is undecided (wait for more VIEW-CHANGEs).
 */
export function decideNewView(ctx: DecideContext, view: number, vcs: readonly ViewChange[]): NewViewPlan | undefined {
  const { f, nf } = ctx.quorums;
  const checkpoint = chooseCheckpoint(ctx, vcs);
  if (!checkpoint) return undefined;
  const minS = checkpoint.k;
  const pOf = vcs.map((vc) => new Map(vc.prepared.map((c) => [c.k, c])));
  const qOf = vcs.map((vc) => {
    const byK = new Map<number, PrePreparedInfo[]>();
    for (const q of vc.prePrepared) {
      const list = byK.get(q.k);
      if (list) list.push(q);
      else byK.set(q.k, [q]);
    }
    return byK;
  });
  let maxS = minS;
  for (const vc of vcs) for (const c of vc.prepared) if (c.k > maxS) maxS = c.k;
  const entries: PlannedEntry[] = [];
  for (let k = minS + 1; k <= maxS; k++) {
    // The batches some VIEW-CHANGE says prepared at k, highest view first (ties only from Byzantine senders).
    const candidates: PreparedCert[] = [];
    for (const p of pOf) {
      const c = p.get(k);
      if (c && !candidates.some((x) => x.view === c.view && sameBatch(x, c))) candidates.push(c);
    }
    candidates.sort((a, b) => b.view - a.view || b.originView - a.originView || Buffer.compare(a.digest, b.digest));
    let chosen: PreparedCert | undefined;
    for (const c of candidates) {
      let a1 = 0;
      let a2 = 0;
      for (let i = 0; i < vcs.length; i++) {
        const vc = vcs[i]!;
        if (vc.checkpoint.k < k) {
          const e = pOf[i]!.get(k);
          if (!e || e.view < c.view || (e.view === c.view && sameBatch(e, c))) a1++;
        }
        if (qOf[i]!.get(k)?.some((q) => q.view >= c.view && sameBatch(q, c))) a2++;
      }
      if (a1 >= nf && a2 >= f + 1) {
        chosen = c;
        break;
      }
    }
    if (chosen) {
      const request = ctx.requestFor?.(k, chosen.digest);
      if (ctx.requestFor && !request) return undefined; // A3: wait for a VIEW-CHANGE that carries it
      entries.push({ k, originView: chosen.originView, digest: chosen.digest, noop: false, ...(request ? { request } : {}) });
      continue;
    }
    let b = 0;
    for (let i = 0; i < vcs.length; i++) if (vcs[i]!.checkpoint.k < k && !pOf[i]!.has(k)) b++;
    if (b < nf) return undefined;
    const request = noopRequest(k);
    entries.push({ k, originView: view, digest: requestDigest(ctx.crypto, request), noop: true, request });
  }
  return { minS, checkpoint, maxS, entries };
}

/**
 * The highest checkpoint (k, d) that f+1 VIEW-CHANGEs name (stable or taken: one non-faulty
 * replica executed to it, so d is the true state there) and that nf VIEW-CHANGEs' stable
 * checkpoints are not above (their P and Q cover what follows it). The proof kept is a
 * sender's nf-replica proof when one is offered, else the names of the replicas that named it.
 */
function chooseCheckpoint(ctx: DecideContext, vcs: readonly ViewChange[]): CheckpointProof | undefined {
  const { f, nf } = ctx.quorums;
  const byClaim = new Map<string, { claim: CheckpointClaim; claimers: number[]; proof?: CheckpointProof }>();
  const add = (replica: number, claim: CheckpointClaim, proof?: CheckpointProof): void => {
    const key = `${claim.k}:${claim.stateDigest.toString('hex')}`;
    let c = byClaim.get(key);
    if (!c) {
      c = { claim, claimers: [] };
      byClaim.set(key, c);
    }
    if (!c.claimers.includes(replica)) c.claimers.push(replica);
    if (proof && !c.proof && proof.senders.length >= nf) c.proof = proof;
  };
  for (const vc of vcs) {
    add(vc.replica, vc.checkpoint, vc.checkpoint);
    for (const t of vc.taken) add(vc.replica, t);
  }
  const ordered = [...byClaim.values()].sort((a, b) => b.claim.k - a.claim.k || Buffer.compare(a.claim.stateDigest, b.claim.stateDigest));
  for (const c of ordered) {
    const genesis = c.claim.k === 0 && c.claim.stateDigest.equals(ctx.genesis);
    if (!genesis && c.claimers.length < f + 1) continue;
    const covered = vcs.filter((vc) => vc.checkpoint.k <= c.claim.k).length;
    if (covered < nf) continue;
    return c.proof ?? { k: c.claim.k, stateDigest: c.claim.stateDigest, senders: [...c.claimers].sort((a, b) => a - b) };
  }
  if (vcs.filter((vc) => vc.checkpoint.k === 0).length >= nf) return { k: 0, stateDigest: ctx.genesis, senders: [] };
  return undefined;
}

export interface ShapeLimits {
  readonly n: number;
  readonly f: number;
  readonly windowK: number;
  readonly checkpointIntervalK: number;
}

/**
 * Structural checks on a VIEW-CHANGE (what it claims is judged by decideNewView): checkpoints
 * on the interval, at most one P entry per k and few Q entries, all within two windows above
 * its stable checkpoint and below its view; with `requireRequests`, P carries every batch.
 */
export function wellFormedViewChange(vc: ViewChange, lim: ShapeLimits, requireRequests: boolean): boolean {
  const { n, f, windowK, checkpointIntervalK } = lim;
  const isCheckpoint = (k: number): boolean => k > 0 && k % checkpointIntervalK === 0;
  const cp = vc.checkpoint;
  const windowTop = cp.k + 2 * windowK;
  if (vc.replica >= n) return false;
  // The senders are a claim (MACs): nf CHECKPOINTs, or the f+1 VIEW-CHANGEs a NEW-VIEW took it from.
  const distinct = new Set(cp.senders.filter((s) => s < n));
  if (cp.k > 0 && (!isCheckpoint(cp.k) || distinct.size < f + 1 || distinct.size !== cp.senders.length)) return false;
  if (vc.taken.length > (2 * windowK) / checkpointIntervalK + 1) return false;
  for (const t of vc.taken) if (t.k <= cp.k || t.k > windowTop || !isCheckpoint(t.k)) return false;
  if (vc.prepared.length > 2 * windowK) return false;
  const ks = new Set<number>();
  for (const c of vc.prepared) {
    if (c.k <= cp.k || c.k > windowTop || ks.has(c.k)) return false;
    if (c.view >= vc.view || c.originView > c.view) return false;
    if (requireRequests && !c.request) return false;
    ks.add(c.k);
  }
  if (vc.prePrepared.length > 2 * windowK * PBFT_Q_PER_K) return false;
  for (const q of vc.prePrepared) if (q.k <= cp.k || q.k > windowTop || q.view >= vc.view || q.originView > q.view) return false;
  return true;
}

/**
 * Q for one sequence number: adds that batch (digest, origin view) pre-prepared in `view`,
 * keeping per batch the latest view and at most PBFT_Q_PER_K batches, the latest ones.
 */
export function notePrePrepared(q: PrePreparedInfo[], entry: PrePreparedInfo): PrePreparedInfo[] {
  const rest = q.filter((x) => !sameBatch(x, entry));
  const prev = q.find((x) => sameBatch(x, entry));
  const next = [...rest, prev && prev.view > entry.view ? prev : entry];
  next.sort((a, b) => b.view - a.view);
  return next.slice(0, PBFT_Q_PER_K);
}

/**
 * The VIEW-CHANGEs a replica holds and the ACKs a new primary collects (TOCS 2002 §4), with
 * their invariants: at most one VIEW-CHANGE per sender (its latest view), only ever one it
 * received from that sender itself; at most one ACK per (acker, subject), its latest; so the
 * log holds O(n²) entries whatever faulty replicas send.
 */
export class ViewChangeLog {
  private readonly latest = new Map<number, ViewChange>();
  private readonly acks = new Map<number, Map<number, { view: number; digest: Buffer }>>();
  private readonly digests = new WeakMap<ViewChange, Buffer>();
  /** The last VIEW-CHANGE this replica sent, kept after it enters the view to answer peers that lack it. */
  own: ViewChange | undefined;
  /** A NEW-VIEW waiting for copies of VIEW-CHANGEs in its V that this replica does not hold yet. */
  pendingNewView: NewView | undefined;

  constructor(
    private readonly crypto: CryptoProvider,
    private readonly n: number,
    readonly id: number,
  ) {}

  /** The digest a VIEW-CHANGE-ACK names: of the message without its requests. */
  digestOf(vc: ViewChange): Buffer {
    let d = this.digests.get(vc);
    if (!d) {
      d = this.crypto.digest(summaryBytes(vc));
      this.digests.set(vc, d);
    }
    return d;
  }

  /** Records a VIEW-CHANGE received from its sender (or this replica's own); false if not newer than the one held. */
  record(vc: ViewChange): boolean {
    const prev = this.latest.get(vc.replica);
    if (prev && prev.view >= vc.view) return false;
    this.latest.set(vc.replica, vc);
    if (vc.replica === this.id) this.own = vc;
    return true;
  }

  /** The VIEW-CHANGE for `view` received from `replica`, if this replica holds it. */
  get(replica: number, view: number): ViewChange | undefined {
    const vc = this.latest.get(replica);
    return vc && vc.view === view ? vc : undefined;
  }

  /** The VIEW-CHANGEs held for `view`, by sender. */
  forView(view: number): ViewChange[] {
    const out: ViewChange[] = [];
    for (const vc of this.latest.values()) if (vc.view === view) out.push(vc);
    return out.sort((a, b) => a.replica - b.replica);
  }

  /** How many other replicas ask for a view above `view`, and the smallest such view (PBFT §4.5.2). */
  higherThan(view: number): { count: number; minView: number } {
    let count = 0;
    let minView = Infinity;
    for (const vc of this.latest.values()) {
      if (vc.replica !== this.id && vc.view > view) {
        count++;
        minView = Math.min(minView, vc.view);
      }
    }
    return { count, minView };
  }

  /** The ACK this replica sends the primary of `vc.view` for a VIEW-CHANGE it received, or undefined if none is due. */
  ackFor(vc: ViewChange): ViewChangeAck | undefined {
    const primary = primaryOf(vc.view, this.n);
    if (primary === this.id || vc.replica === primary || vc.replica === this.id) return undefined;
    return { type: MSG_VIEW_CHANGE_ACK, replica: this.id, view: vc.view, of: vc.replica, digest: this.digestOf(vc) };
  }

  /** Records an ACK sent to this replica as the new primary. */
  recordAck(ack: ViewChangeAck): void {
    if (ack.of >= this.n || ack.of === ack.replica || ack.of === this.id) return;
    let bySubject = this.acks.get(ack.replica);
    if (!bySubject) {
      bySubject = new Map();
      this.acks.set(ack.replica, bySubject);
    }
    const prev = bySubject.get(ack.of);
    if (prev && prev.view > ack.view) return;
    bySubject.set(ack.of, { view: ack.view, digest: ack.digest });
  }

  /**
   * S at the new primary of `view`: its own VIEW-CHANGE and every other one it holds that
   * nf - 2 replicas other than the sender and itself acked with the same digest.
   */
  vouched(view: number, nf: number): ViewChange[] {
    const out: ViewChange[] = [];
    for (const vc of this.forView(view)) {
      if (vc.replica === this.id) {
        out.push(vc);
        continue;
      }
      const d = this.digestOf(vc);
      let count = 0;
      for (const [acker, bySubject] of this.acks) {
        if (acker === vc.replica || acker === this.id) continue;
        const a = bySubject.get(vc.replica);
        if (a && a.view === view && a.digest.equals(d)) count++;
      }
      if (count >= nf - 2) out.push(vc);
    }
    return out;
  }

  /**
   * A backup's check of NEW-VIEW's V: 'ok' when it holds a copy of every VIEW-CHANGE in V from
   * its sender and they all match, 'forged' when one differs, otherwise the senders it lacks.
   */
  checkV(nv: NewView): 'ok' | 'forged' | number[] {
    const missing: number[] = [];
    for (const vc of nv.viewChanges) {
      const held = this.get(vc.replica, nv.view);
      if (!held) missing.push(vc.replica);
      else if (!this.digestOf(held).equals(this.digestOf(vc))) return 'forged';
    }
    return missing.length === 0 ? 'ok' : missing;
  }

  /** After entering `view`: VIEW-CHANGEs and ACKs up to it served their purpose (they can be large). */
  clearUpTo(view: number): void {
    for (const [r, vc] of this.latest) if (vc.view <= view) this.latest.delete(r);
    for (const bySubject of this.acks.values()) for (const [s, a] of bySubject) if (a.view <= view) bySubject.delete(s);
    if (this.pendingNewView && this.pendingNewView.view <= view) this.pendingNewView = undefined;
  }

  get size(): number {
    let acks = 0;
    for (const m of this.acks.values()) acks += m.size;
    return this.latest.size + acks;
  }
}

/**
 * When a replica that runs view v answers a peer whose VIEW-CHANGE for v reaches it (the peer
 * lost the NEW-VIEW, or lacks this replica's VIEW-CHANGE to check V; pbft.ts answerLaggard).
 *
 * The answer is itself a VIEW-CHANGE for v, so a peer that already runs v answers it in turn:
 * two replicas in view v answer each other's VIEW-CHANGEs for ever. Under CPU overload the
 * stale re-sends a replica finds in its input backlog after entering the view start that
 * exchange between every pair (found with the cost model: PBFT at n = 32 on 2 shared cores,
 * after entering view 2 every replica sent about 90 VIEW-CHANGEs of 110 KB a second, 2,830 in
 * all, for the rest of the run, and nothing executed again). Two rules end it:
 * - a peer from which this replica received a PRE-PREPARE, PREPARE or COMMIT of the view runs
 *   the view (a replica sends those only outside a view change) and is not answered;
 * - otherwise the answers to one peer are spaced at doubling intervals (T/2, T, 2T, ...), as
 *   PBFT doubles its own wait for a NEW-VIEW (Castro and Liskov, OSDI'99 §4.4; TOCS 2002
 *   §4.5.2: "it waits ... 2T"), so a true laggard on a lossy link still gets an answer, and an
 *   exchange between two replicas that both run the view dies out.
 * Reset when the replica enters a view.
 */
export class LaggardAnswers {
  private readonly answered = new Map<number, { atMs: number; count: number }>();
  private readonly running = new Set<number>();

  constructor(private readonly firstGapMs: number) {}

  /** Peer `r` sent a normal-case message of the view this replica runs: it runs the view too. */
  noteRunning(r: number): void {
    this.running.add(r);
  }

  /** True when peer `r` is to be answered now (and counts the answer). */
  answerNow(r: number, nowMs: number): boolean {
    if (this.running.has(r)) return false;
    const prev = this.answered.get(r);
    if (prev && nowMs - prev.atMs < backoffMs(this.firstGapMs, prev.count - 1)) return false;
    this.answered.set(r, { atMs: nowMs, count: (prev?.count ?? 0) + 1 });
    return true;
  }

  reset(): void {
    this.answered.clear();
    this.running.clear();
  }

  get size(): number {
    return this.answered.size + this.running.size;
  }
}
