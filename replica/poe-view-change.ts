/**
 * PoE's view-change log (paper Figure 5, lines 1-22; §3.3.1 - §3.3.5), beside the core in
 * replica/poe.ts. It holds what a replica collects while the primary is replaced:
 *   VC-REQUEST(v, E)        per view and sender (line 4; E since the stable checkpoint, §3.5)
 *   VC-ACK(v, id(Q), D(m))  the next primary's tally, and the ones we sent (lines 9-11)
 *   NV-PROPOSE(v+1, E', V)  the one we built (lines 12-14) or validated (line 16, §3.3.4),
 *                           and those waiting for requests we lack
 *   NV-ACK(v+1, D(m))       per acknowledger (line 18); nf of them enter the view (line 19)
 * and decides on them: acknowledgement (line 9, with the checkpoint claim checked against our
 * state), joining on f+1 requests (line 6), the next primary's choice of V (line 12),
 * E' (buildNewView, lines 13-14), full and partial validation (§3.3.4), and what entering keeps
 * (rollbackPoint, §3.3.5). Entering the view itself (rollback, re-execution, the normal case's
 * state) is the core's (enterView).
 *
 * Invariants: requests are kept for views from the last entered view up to VIEW_LOOKAHEAD
 * above the current one, at most VC_REQUESTS_PER_SENDER views per sender, one per view and
 * sender (a second, different one is rejected); one acknowledgement per acknowledger and
 * request sender; we acknowledge a request at most once and never our own (§3.5 (3)); we
 * propose at most once per view; we never validate or enter a view we asked to leave; all of
 * it below the view we enter is dropped on entry (pruneViewChangeState).
 */
import type { Executor } from './common.js';
import type { CryptoProvider } from './crypto.js';
import { DIGEST_BYTES } from './crypto.js';
import { blockHash, type Ledger } from './ledger.js';
import type { ClientRequest } from './messages.js';
import { requestDigest } from './messages.js';
import type { Outbox } from './outbox.js';
import type { PoeParams, Slot } from './poe-state.js';
import {
  type ExecutionEntry,
  messageDigest,
  MSG_FETCH,
  MSG_NV_ACK,
  MSG_NV_PROPOSE,
  MSG_VC_ACK,
  type NvAck,
  type NvPropose,
  type PoeMessage,
  type VcAck,
  type VcRequest,
} from './poe-wire.js';
import { primaryOf } from './types.js';

/** View-change messages are kept only for views this close above the current one. */
const VIEW_LOOKAHEAD = 64;
/** VC-REQUESTs kept per sender (its latest views); bounds memory against a replica that spams views. */
const VC_REQUESTS_PER_SENDER = 2;

export interface VcRecord {
  readonly msg: VcRequest;
  readonly digest: Buffer;
  readonly hex: string;
}

interface NvRecord {
  readonly msg: NvPropose;
  readonly digest: Buffer;
  readonly hex: string;
}

type Validation = 'valid' | 'wait' | { readonly invalid: string };

/** What the view-change log reads and asks of the core (replica/poe.ts). */
export interface ViewChangeCore {
  readonly executor: Executor;
  readonly ledger: Ledger;
  readonly slots: ReadonlyMap<number, Slot>;
  /** The current view; during a view change, the view whose primary failed. */
  readonly view: number;
  /** The highest view entered. */
  readonly enteredView: number;
  readonly inViewChange: boolean;
  readonly stableK: number;
  readonly stableDigest: Buffer;
  readonly gcK: number;
  readonly nowMs: number;
  readonly retryIntervalMs: number;
  validRequest(req: ClientRequest): boolean;
  startViewChange(v: number): void;
  /** f+1 VC-REQUESTs claim (k, digest) stable: adopt it (see adoptClaimedCheckpoint). */
  makeStable(k: number, digest: Buffer): void;
  /** The seam for deliberately broken variants (PoeReplica.newViewProposal). */
  newViewProposal(view: number, records: readonly VcRecord[]): NvPropose;
  enterView(m: NvPropose): void;
}

export class PoeViewChange {
  /** VC-REQUESTs by view and sender (ours included). */
  private readonly vcRequests = new Map<number, Map<number, VcRecord>>();
  /** VC-ACKs we received (only the next primary keeps them): view -> `${q}:${hex}` -> acknowledgers. */
  private readonly vcAcks = new Map<number, Map<string, Set<number>>>();
  /** view -> `${acker}:${q}`: one acknowledgement per acknowledger per request sender. */
  private readonly vcAckSeen = new Map<number, Set<string>>();
  /** VC-ACKs we sent: view -> `${q}:${hex}`. */
  private readonly vcAcked = new Map<number, Set<string>>();
  /** NV-PROPOSEs waiting for VC-REQUESTs we need to validate them. */
  private readonly nvPending = new Map<number, NvPropose>();
  /** The NV-PROPOSE we validated (or built) and now collect NV-ACKs for. */
  private nvAccepted: (NvRecord & { view: number }) | undefined = undefined;
  /** view -> acknowledger -> digest hex of the NV-PROPOSE it acknowledged. */
  private readonly nvAcks = new Map<number, Map<number, string>>();
  /** Half-periods of the `nv` timer that passed with nf VC-REQUESTs for our view in. */
  nvReadyHalves = 0;
  /** The last view we proposed as new primary. */
  private nvProposedView = -1;
  /**
   * The NV-PROPOSE of the view we entered last, with our own VC-REQUEST that asked for it (if
   * any); and when we last re-sent our part of one to each replica.
   */
  private enteredProposal: { msg: NvPropose; digest: Buffer; ownRequest: VcRequest | undefined } | undefined = undefined;
  private readonly helpedAtMs = new Map<number, number>();
  /** Claimed checkpoints above our execution that blocks chained onto our ledger confirmed: k -> digest hex. */
  private readonly extendedClaims = new Map<number, Set<string>>();
  /** `${view}:${replica}`: VC-REQUESTs whose claimed checkpoint we asked blocks for. */
  private readonly claimFetches = new Set<string>();

  constructor(
    private readonly p: PoeParams,
    private readonly out: Outbox<PoeMessage>,
    private readonly core: ViewChangeCore,
  ) {}

  /** VC-REQUESTs in for view v (ours included). */
  requestCount(v: number): number {
    return this.vcRequests.get(v)?.size ?? 0;
  }

  /** Our own VC-REQUESTs for views from `fromView` on (re-sent on every new-view timer tick). */
  ownRequests(fromView: number): VcRequest[] {
    const own: VcRequest[] = [];
    for (const [w, byView] of this.vcRequests) {
      const rec = w >= fromView ? byView.get(this.p.id) : undefined;
      if (rec) own.push(rec.msg);
    }
    return own;
  }

  /** We entered m's view: what we re-send to replicas that ask to leave an older one (helpIntoView). */
  entered(m: NvPropose): void {
    this.enteredProposal = { msg: m, digest: messageDigest(this.p.crypto, m), ownRequest: this.vcRequests.get(m.view - 1)?.get(this.p.id)?.msg };
    this.helpedAtMs.clear();
  }

  /**
   * A non-faulty replica claims a checkpoint stable only after nf matching CHECKPOINTs, so f+1
   * distinct replicas claiming the same (k, digest) in their VC-REQUESTs certify it. This lets a
   * replica whose CHECKPOINTs from a crashed primary were lost catch up (fetch) and acknowledge
   * the others' requests during a view change.
   */
  adoptClaimedCheckpoint(): void {
    const claims = new Map<string, { k: number; digest: Buffer; senders: Set<number> }>();
    for (const byView of this.vcRequests.values()) {
      for (const rec of byView.values()) {
        const { stableK, stableDigest, replica } = rec.msg;
        if (stableK <= this.core.stableK || replica === this.p.id) continue;
        const key = `${stableK}:${stableDigest.toString('hex')}`;
        let c = claims.get(key);
        if (!c) {
          c = { k: stableK, digest: stableDigest, senders: new Set() };
          claims.set(key, c);
        }
        c.senders.add(replica);
      }
    }
    let best: { k: number; digest: Buffer } | undefined;
    for (const c of claims.values()) if (c.senders.size >= this.p.f + 1 && (!best || c.k > best.k)) best = c;
    if (best) this.core.makeStable(best.k, best.digest);
  }

  storeVcRequest(rec: VcRecord): void {
    const { view, replica } = rec.msg;
    let byView = this.vcRequests.get(view);
    if (!byView) {
      byView = new Map();
      this.vcRequests.set(view, byView);
    }
    byView.set(replica, rec);
    if (replica === this.p.id) return;
    // Keep only a sender's latest VC_REQUESTS_PER_SENDER views.
    const views: number[] = [];
    for (const [w, m] of this.vcRequests) if (m.has(replica)) views.push(w);
    if (views.length <= VC_REQUESTS_PER_SENDER) return;
    views.sort((a, b) => a - b);
    for (let i = 0; i < views.length - VC_REQUESTS_PER_SENDER; i++) this.vcRequests.get(views[i]!)!.delete(replica);
  }

  onViewChangeRequest(from: number, m: VcRequest): void {
    if (m.replica !== from) {
      this.out.reject('VC-REQUEST naming another replica', from);
      return;
    }
    this.helpIntoView(from, m.view);
    if (m.view < this.core.enteredView) return; // stale
    if (m.view > this.core.view + VIEW_LOOKAHEAD) {
      this.out.reject('VC-REQUEST for a view too far ahead', from);
      return;
    }
    const digest = messageDigest(this.p.crypto, m);
    const hex = digest.toString('hex');
    const existing = this.vcRequests.get(m.view)?.get(from);
    if (existing) {
      if (existing.hex !== hex) this.out.reject('second, different VC-REQUEST for the same view', from);
      // Re-sent: our acknowledgement may have been lost on its way to the next primary.
      else if (primaryOf(m.view + 1, this.p.n) !== this.p.id && this.vcAcked.get(m.view)?.has(`${from}:${hex}`)) {
        this.out.send(primaryOf(m.view + 1, this.p.n), { type: MSG_VC_ACK, view: m.view, replica: from, digest });
      }
      return;
    }
    const problem = this.checkSummary(m.stableK, m.entries, m.view);
    if (problem) {
      this.out.reject(`VC-REQUEST: ${problem}`, from);
      return;
    }
    const rec = { msg: m, digest, hex };
    this.storeVcRequest(rec);
    this.adoptClaimedCheckpoint();
    // Its entries may let us check claims we could not check before, and its claim may be checked by others' entries.
    if (this.extendClaims(m.entries)) this.acknowledgeAll();
    this.acknowledge(rec);
    this.checkJoin();
    this.afterViewChangeProgress(m.view);
  }

  /**
   * A replica (re-)sends its request to leave view w while we hold a proposal for a later view
   * (we entered it, or validated the one for w+1 and wait for acknowledgements): it may have
   * missed what we have. Re-send our part, at most once per retransmission period and replica:
   * the primary its NV-PROPOSE (only the primary can: messages are authenticated per link), the
   * others their NV-ACK; and our own VC-REQUEST it was built from, which the replica needs to
   * validate it (§3.3.4). A replica may enter any view above the one it asked to leave.
   */
  private helpIntoView(from: number, w: number): void {
    let nv: { msg: NvPropose; digest: Buffer } | undefined;
    let ownRequest: VcRequest | undefined;
    if (this.nvAccepted?.view === w + 1) {
      nv = this.nvAccepted;
      ownRequest = this.vcRequests.get(w)?.get(this.p.id)?.msg;
    } else if (this.enteredProposal && this.enteredProposal.msg.view > w) {
      nv = this.enteredProposal;
      ownRequest = this.enteredProposal.ownRequest;
    }
    if (!nv) return;
    const last = this.helpedAtMs.get(from);
    if (last !== undefined && this.core.nowMs - last < this.core.retryIntervalMs) return;
    this.helpedAtMs.set(from, this.core.nowMs);
    if (ownRequest && nv.msg.certificate.some((c) => c.replica === this.p.id)) this.out.send(from, ownRequest);
    if (primaryOf(nv.msg.view, this.p.n) === this.p.id) this.out.send(from, nv.msg);
    else this.out.send(from, { type: MSG_NV_ACK, view: nv.msg.view, digest: nv.digest });
  }

  /**
   * Structural checks of a summary, whoever sent it: a stable checkpoint at a checkpoint
   * boundary, consecutive entries from there (Figure 5, line 9 condition 1), no more than a
   * window of them, views before `maxView`, and genuine client requests (signatures are checked
   * unless the batch is the one we hold at that k).
   */
  private checkSummary(stableK: number, entries: readonly ExecutionEntry[], maxView: number, strictlyBefore = false): string | undefined {
    if (stableK % this.p.intervalK !== 0) return 'stable checkpoint not at a checkpoint boundary';
    // A window above the sender's checkpoint, doubled: a replica whose checkpoint lags may have
    // executed a new view's E' beyond its own window.
    if (entries.length > 2 * this.p.windowK) return 'more entries than two windows';
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.k !== stableK + 1 + i) return 'entries not consecutive from the stable checkpoint';
      if (e.view > maxView || (strictlyBefore && e.view === maxView)) return 'entry from a later view';
      if (!this.holds(e) && !this.core.validRequest(e.request)) return 'entry with an invalid client request';
    }
    return undefined;
  }

  /** True if we executed or view-committed exactly this entry (so its request was verified). */
  private holds(e: ExecutionEntry): boolean {
    const digest = requestDigest(this.p.crypto, e.request);
    if (e.k <= this.core.executor.executedK) return this.core.ledger.viewAt(e.k) === e.view && this.core.ledger.digestEquals(e.k, digest);
    const slot = this.core.slots.get(e.k);
    return slot !== undefined && slot.committed && slot.view === e.view && slot.digest!.equals(digest);
  }

  /** True if we executed or view-committed something else at e.k (Figure 5, line 9 condition 3). */
  private contradicts(e: ExecutionEntry): boolean {
    if (e.k <= this.core.executor.executedK) return !this.holds(e);
    const slot = this.core.slots.get(e.k);
    return slot !== undefined && slot.committed && !this.holds(e);
  }

  /**
   * Figure 5, line 9. (1) was checked on receipt. (2) we detected failure of the primary of v
   * ourselves. (3) the entries agree with everything we executed or view-committed. Also: the
   * sender's checkpoint agrees with our own state (the checkpoint is where E' starts, so it
   * stands for every batch below it, and must hold what clients accepted).
   */
  private canAcknowledge(m: VcRequest): 'yes' | 'no' | 'needBlocks' {
    const detected = m.view < this.core.view || (m.view === this.core.view && this.core.inViewChange);
    if (!detected || m.view < this.core.enteredView) return 'no';
    for (const e of m.entries) if (this.contradicts(e)) return 'no';
    if (this.checkpointAgrees(m.stableK, m.stableDigest)) return 'yes';
    return m.stableK > this.core.executor.executedK ? 'needBlocks' : 'no';
  }

  /**
   * The claimed checkpoint (k, digest) is consistent with our own state: our ledger has that
   * hash at k; or k is our stable checkpoint with that certified digest; or, when we have not
   * executed that far, blocks chained onto our ledger reach that hash at k (extendClaims). We
   * never acknowledge a claim we cannot check: the replica that could refute it (one that
   * executed a batch a client accepted) might be behind it too.
   */
  private checkpointAgrees(k: number, digest: Buffer): boolean {
    if (k <= this.core.executor.executedK) return this.core.ledger.hashEquals(k, digest);
    if (k === this.core.stableK && digest.equals(this.core.stableDigest)) return true;
    return this.extendedClaims.get(k)?.has(digest.toString('hex')) ?? false;
  }

  /**
   * Checks the claimed checkpoints above our execution against `entries` (consecutive, from at
   * most executedK + 1): chained onto our ledger, without contradicting what we view-committed,
   * do they reach the claimed hash? Returns true if a claim became verified.
   */
  extendClaims(entries: readonly ExecutionEntry[]): boolean {
    const executed = this.core.executor.executedK;
    let maxClaimK = 0;
    for (const byView of this.vcRequests.values()) {
      for (const rec of byView.values())
        if (rec.msg.stableK > executed && !this.checkpointAgrees(rec.msg.stableK, rec.msg.stableDigest)) maxClaimK = Math.max(maxClaimK, rec.msg.stableK);
    }
    if (maxClaimK === 0 || entries.length === 0) return false;
    const first = entries[0]!.k;
    if (first > executed + 1 || first + entries.length - 1 < executed + 1) return false;
    const hashes: Buffer[] = [];
    let prev = this.core.ledger.headHash;
    for (let i = executed + 1 - first; i < entries.length && entries[i]!.k <= maxClaimK; i++) {
      const e = entries[i]!;
      if (e.k !== first + i || this.contradicts(e)) break;
      prev = blockHash(this.p.crypto, e.k, requestDigest(this.p.crypto, e.request), e.view, prev);
      hashes.push(prev);
    }
    let verified = false;
    for (const byView of this.vcRequests.values()) {
      for (const rec of byView.values()) {
        const { stableK: c, stableDigest: h } = rec.msg;
        const hash = hashes[c - executed - 1];
        if (c <= executed || !hash || !hash.equals(h) || this.checkpointAgrees(c, h)) continue;
        let set = this.extendedClaims.get(c);
        if (!set) {
          set = new Set();
          this.extendedClaims.set(c, set);
        }
        set.add(h.toString('hex'));
        verified = true;
      }
    }
    return verified;
  }

  /** Figure 5, line 10; no acknowledgement of our own request (§3.5 (3)). */
  private acknowledge(rec: VcRecord): void {
    const { view, replica } = rec.msg;
    if (replica === this.p.id) return;
    let sent = this.vcAcked.get(view);
    const key = `${replica}:${rec.hex}`;
    if (sent?.has(key)) return;
    let verdict = this.canAcknowledge(rec.msg);
    if (verdict === 'needBlocks' && this.requestClaimBlocks(rec.msg)) verdict = this.canAcknowledge(rec.msg);
    if (verdict !== 'yes') return;
    if (!sent) {
      sent = new Set();
      this.vcAcked.set(view, sent);
    }
    sent.add(key);
    this.recordVcAck(view, this.p.id, replica, rec.hex);
    this.out.broadcast({ type: MSG_VC_ACK, view, replica, digest: rec.digest });
  }

  /**
   * Checks a claimed checkpoint above our execution with the entries of the requests we hold;
   * failing that, asks the claimant for the blocks (once per request). True if it is verified now.
   */
  private requestClaimBlocks(m: VcRequest): boolean {
    for (const byView of this.vcRequests.values()) for (const rec of byView.values()) this.extendClaims(rec.msg.entries);
    if (this.checkpointAgrees(m.stableK, m.stableDigest)) return true;
    const key = `${m.view}:${m.replica}`;
    if (!this.claimFetches.has(key)) {
      this.claimFetches.add(key);
      this.out.send(m.replica, { type: MSG_FETCH, fromK: this.core.executor.executedK + 1, toK: m.stableK });
    }
    return false;
  }

  acknowledgeAll(): void {
    for (const byView of this.vcRequests.values()) for (const rec of byView.values()) this.acknowledge(rec);
  }

  private recordVcAck(view: number, acker: number, replica: number, hex: string): void {
    let seen = this.vcAckSeen.get(view);
    if (!seen) {
      seen = new Set();
      this.vcAckSeen.set(view, seen);
    }
    const guard = `${acker}:${replica}`;
    if (seen.has(guard)) return;
    seen.add(guard);
    let byKey = this.vcAcks.get(view);
    if (!byKey) {
      byKey = new Map();
      this.vcAcks.set(view, byKey);
    }
    const key = `${replica}:${hex}`;
    let ackers = byKey.get(key);
    if (!ackers) {
      ackers = new Set();
      byKey.set(key, ackers);
    }
    ackers.add(acker);
  }

  onViewChangeAck(from: number, m: VcAck): void {
    if (m.view < this.core.enteredView || m.view > this.core.view + VIEW_LOOKAHEAD || m.replica >= this.p.n) return;
    // Only the next primary uses acknowledgements (Figure 5, line 12); others validate NV-PROPOSE from the requests.
    if (primaryOf(m.view + 1, this.p.n) !== this.p.id) return;
    this.recordVcAck(m.view, from, m.replica, m.digest.toString('hex'));
    this.tryProposeNewView(m.view);
  }

  /**
   * Figure 5, line 6, generalised as in PBFT: when f+1 distinct replicas request view changes
   * for views we have not given up yet, one of them is non-faulty; join the highest such view
   * that f+1 of them reached.
   */
  checkJoin(): void {
    const floor = this.core.inViewChange ? this.core.view + 1 : this.core.view;
    const latest = new Map<number, number>();
    for (const [w, byView] of this.vcRequests) {
      if (w < floor) continue;
      for (const q of byView.keys()) if (q !== this.p.id && w > (latest.get(q) ?? -1)) latest.set(q, w);
    }
    if (latest.size < this.p.f + 1) return;
    const views = [...latest.values()].sort((a, b) => b - a);
    this.core.startViewChange(views[this.p.f]!);
  }

  /** After any view-change message for view v: start the new-view timer, propose, or validate. */
  afterViewChangeProgress(v: number): void {
    this.tryProposeNewView(v);
    const pending = this.nvPending.get(v + 1);
    if (pending) this.tryValidate(pending);
  }

  /**
   * Figure 5, line 12: as next primary, find nf requests for view v whose senders all
   * acknowledged each other's requests. A greedy search: drop the sender with the most missing
   * acknowledgements until the rest is complete. It retries on every new acknowledgement.
   */
  private tryProposeNewView(v: number): void {
    if (primaryOf(v + 1, this.p.n) !== this.p.id || !this.core.inViewChange || this.core.view !== v || this.nvProposedView === v + 1) return;
    const byView = this.vcRequests.get(v);
    if (!byView || byView.size < this.p.nf || !byView.has(this.p.id)) return;
    const acks = this.vcAcks.get(v);
    const members = [...byView.keys()].sort((a, b) => a - b);
    const ackersOf = new Map<number, Set<number> | undefined>();
    for (const q of members) ackersOf.set(q, acks?.get(`${q}:${byView.get(q)!.hex}`));
    const acked = (a: number, q: number): boolean => a === q || (ackersOf.get(q)?.has(a) ?? false);
    let set = members;
    for (;;) {
      if (set.length < this.p.nf) return;
      let worst = -1;
      let worstMissing = 0;
      for (const c of set) {
        let missing = 0;
        for (const d of set) if (!acked(c, d) || !acked(d, c)) missing++;
        if (missing === 0 || missing < worstMissing) continue;
        // Ties: keep ourselves, otherwise drop the highest id (deterministic).
        if (missing > worstMissing || worst === this.p.id || (c !== this.p.id && c > worst)) {
          worst = c;
          worstMissing = missing;
        }
      }
      if (worstMissing === 0) break;
      set = set.filter((c) => c !== worst);
    }
    // Any nf of a complete set qualify; take ourselves and the lowest ids.
    const chosen = [this.p.id, ...set.filter((c) => c !== this.p.id)].slice(0, this.p.nf).sort((a, b) => a - b);
    const msg = this.core.newViewProposal(
      v + 1,
      chosen.map((q) => byView.get(q)!),
    );
    const digest = messageDigest(this.p.crypto, msg);
    this.nvProposedView = v + 1;
    this.out.broadcast(msg);
    this.nvAccepted = { view: v + 1, msg, digest, hex: digest.toString('hex') };
    this.checkNewViewAcks(v + 1);
  }

  /** Figure 5, line 16. */
  onNewViewPropose(from: number, m: NvPropose): void {
    if (from !== primaryOf(m.view, this.p.n)) {
      this.out.reject('NV-PROPOSE from a replica that is not the primary of that view', from);
      return;
    }
    // Never a view we asked to leave: our VC-REQUEST for it is on record and would be stale
    // once we executed more in it (Proposition 3.5 needs every request to hold all executions).
    if (m.view <= this.core.view || m.view > this.core.view + VIEW_LOOKAHEAD) return;
    if (this.nvAccepted?.view === m.view || this.nvPending.has(m.view)) return;
    this.tryValidate(m);
  }

  /** Validates a new-view proposal (§3.3.4); waits if we lack requests it is built from. */
  private tryValidate(m: NvPropose): void {
    // A proposal kept while we waited for its requests, for a view we have since asked to leave
    // (our new-view timer ran out first): never entered, as in onNewViewPropose. Found by the
    // simulator: entering it rolled back that view's own blocks, which clients had accepted.
    if (m.view <= this.core.view) {
      this.nvPending.delete(m.view);
      return;
    }
    const result = this.validateNewView(m);
    if (result === 'wait') {
      this.nvPending.set(m.view, m);
      return;
    }
    this.nvPending.delete(m.view);
    if (result !== 'valid') {
      this.out.reject(`invalid NV-PROPOSE: ${result.invalid}`, primaryOf(m.view, this.p.n));
      // "Otherwise, if m != m', then R detects failure of P'" (§3.3.4): ask for the view after.
      // Only while changing to that view: a replica running a healthy view does not leave it
      // because some other replica sent it a bad proposal.
      if (this.core.inViewChange && m.view === this.core.view + 1) this.core.startViewChange(m.view);
      return;
    }
    const digest = messageDigest(this.p.crypto, m);
    this.nvAccepted = { view: m.view, msg: m, digest, hex: digest.toString('hex') };
    this.out.broadcast({ type: MSG_NV_ACK, view: m.view, digest }); // line 18
    this.checkNewViewAcks(m.view);
  }

  /**
   * §3.3.4. Full validation if our request is in V: rebuild m' from the same requests and
   * compare. Otherwise partial validation: every request of V we hold (at least nf - f of them)
   * must be contained in E'. Either way E' must be well formed and must not roll back anything
   * at or below our garbage-collected stable state.
   */
  private validateNewView(m: NvPropose): Validation {
    const v = m.view - 1;
    const cert = m.certificate;
    if (cert.length !== this.p.nf) return { invalid: 'V does not have nf entries' };
    for (let i = 0; i < cert.length; i++) {
      if (cert[i]!.replica >= this.p.n || (i > 0 && cert[i]!.replica <= cert[i - 1]!.replica)) return { invalid: 'V not sorted by distinct replica ids' };
    }
    const problem = this.checkSummary(m.stableK, m.entries, m.view, true);
    if (problem) return { invalid: problem };
    if (this.rollbackPoint(m) < this.core.gcK) return { invalid: "E' contradicts our stable state" };
    const byView = this.vcRequests.get(v);
    const records: VcRecord[] = [];
    for (const c of cert) {
      const rec = byView?.get(c.replica);
      if (rec?.digest.equals(c.digest)) records.push(rec);
    }
    const mine = cert.find((c) => c.replica === this.p.id);
    if (mine) {
      if (records.length < cert.length) return 'wait';
      const rebuilt = this.core.newViewProposal(m.view, records);
      return messageDigest(this.p.crypto, rebuilt).equals(messageDigest(this.p.crypto, m)) ? 'valid' : { invalid: "m differs from the m' rebuilt from V" };
    }
    if (records.length < this.p.nf - this.p.f) return 'wait';
    for (const rec of records) {
      if (rec.msg.stableK > m.stableK) return { invalid: "a request in V has a later checkpoint than E'" };
      if (rec.msg.stableK === m.stableK && !rec.msg.stableDigest.equals(m.stableDigest)) return { invalid: "E' starts from another checkpoint state" };
      for (const e of rec.msg.entries) {
        if (e.k <= m.stableK) continue;
        const x = m.entries[e.k - m.stableK - 1];
        if (!x || x.view !== e.view || !requestDigest(this.p.crypto, x.request).equals(requestDigest(this.p.crypto, e.request))) {
          return { invalid: "E of a request in V is not contained in E'" };
        }
      }
    }
    return 'valid';
  }

  onNewViewAck(from: number, m: NvAck): void {
    if (m.view <= this.core.view || m.view > this.core.view + VIEW_LOOKAHEAD) return;
    let byAcker = this.nvAcks.get(m.view);
    if (!byAcker) {
      byAcker = new Map();
      this.nvAcks.set(m.view, byAcker);
    }
    if (byAcker.has(from)) return;
    byAcker.set(from, m.digest.toString('hex'));
    this.checkNewViewAcks(m.view);
  }

  /** Figure 5, line 19: nf NV-ACKs, the new primary's NV-PROPOSE counting as its own (§3.5 (4)). */
  private checkNewViewAcks(view: number): void {
    const acc = this.nvAccepted;
    if (!acc || acc.view !== view || view <= this.core.view) return;
    const primary = primaryOf(view, this.p.n);
    let count = primary === this.p.id ? 1 : 2; // the primary's proposal, and our own acknowledgement
    for (const [acker, hex] of this.nvAcks.get(view) ?? []) if (acker !== primary && acker !== this.p.id && hex === acc.hex) count++;
    if (count >= this.p.nf) this.core.enterView(acc.msg);
  }

  pruneViewChangeState(w: number): void {
    for (const map of [this.vcRequests, this.vcAcks, this.vcAckSeen, this.vcAcked] as Map<number, unknown>[]) {
      for (const view of [...map.keys()]) if (view < w) map.delete(view);
    }
    for (const view of [...this.nvAcks.keys()]) if (view <= w) this.nvAcks.delete(view);
    for (const view of [...this.nvPending.keys()]) if (view <= w) this.nvPending.delete(view);
    this.nvAccepted = undefined;
    this.extendedClaims.clear();
    this.claimFetches.clear();
  }

  /**
   * The highest k whose execution here E' keeps (§3.3.5): everything above it is rolled back.
   * Executions above the top of E' are not in E'; the first entry that differs from our ledger
   * (batch or view) and everything after it neither.
   */
  rollbackPoint(m: NvPropose): number {
    const executed = this.core.executor.executedK;
    // Our state at the base differs from the one the new view starts from: we executed a branch
    // the others abandoned. Undo as far as we can (our stable state) and fetch the rest.
    if (executed >= m.stableK && !this.core.ledger.hashEquals(m.stableK, m.stableDigest)) return this.core.gcK;
    const top = m.stableK + m.entries.length;
    for (const e of m.entries) {
      if (e.k > executed) break;
      if (this.core.ledger.viewAt(e.k) !== e.view || !this.core.ledger.digestAt(e.k).equals(requestDigest(this.p.crypto, e.request))) return e.k - 1;
    }
    // Executions above E' are not in it, except those at or below our own certified stable
    // checkpoint: a checkpoint certified before m was built is at most its top (Proposition 3.5's
    // argument), so one above it was certified later, in this new view, and we fetched its blocks
    // before entering. Those are final.
    return Math.min(executed, Math.max(top, this.core.gcK));
  }
}

/**
 * Figure 5, lines 13-14: NV-PROPOSE(v+1, E_1 ∪ ... ∪ E_nf, V), deterministic so that a
 * replica can rebuild it for full validation (§3.3.4). The base is the highest stable
 * checkpoint among the requests; E' holds the entries above it. Two requests in V never
 * disagree at a k that a non-faulty replica in V executed (each sender acknowledged the
 * other's request, Figure 5 line 9 condition 3); where only faulty replicas disagree, the
 * entry of the highest view wins, then the lower digest. E' ends at the first k no request
 * reports (see the module comment: this cannot happen for consecutive summaries).
 */
export function buildNewView(crypto: CryptoProvider, newView: number, records: readonly VcRecord[]): NvPropose {
  const sorted = [...records].sort((a, b) => a.msg.replica - b.msg.replica);
  let base = 0;
  let baseDigest: Buffer | undefined;
  for (const r of sorted) {
    if (baseDigest === undefined || r.msg.stableK > base) {
      base = r.msg.stableK;
      baseDigest = r.msg.stableDigest;
    }
  }
  const byK = new Map<number, { entry: ExecutionEntry; digest: Buffer }>();
  for (const r of sorted) {
    for (const e of r.msg.entries) {
      if (e.k <= base) continue;
      const digest = requestDigest(crypto, e.request);
      const cur = byK.get(e.k);
      if (!cur || e.view > cur.entry.view || (e.view === cur.entry.view && Buffer.compare(digest, cur.digest) < 0)) byK.set(e.k, { entry: e, digest });
    }
  }
  const entries: ExecutionEntry[] = [];
  for (let k = base + 1; byK.has(k); k++) entries.push(byK.get(k)!.entry);
  return {
    type: MSG_NV_PROPOSE,
    view: newView,
    stableK: base,
    stableDigest: baseDigest ?? Buffer.alloc(DIGEST_BYTES),
    entries,
    certificate: sorted.map((r) => ({ replica: r.msg.replica, digest: r.digest })),
  };
}
