/**
 * State shared by PoE's core (replica/poe.ts) and the sub-state beside it (poe-view-change.ts,
 * poe-fetch.ts): the constants of a replica, its named timers and the per-k slot of Figure 3.
 */
import type { CryptoProvider } from './crypto.js';
import type { ClientRequest } from './messages.js';

/** Named timers (STYLE.md: TigerBeetle's timeout table). */
export const POE_TIMERS = {
  /** Failure detection in the normal case (§3.3.1 (1)). */
  viewChange: 'vc',
  /** A view change that does not complete in time (Theorem 3.7: exponential backoff). */
  newView: 'nv',
  /** A replica behind a stable checkpoint asks for the blocks it lacks, one peer per expiry. */
  fetch: 'fetch',
  /**
   * Idle status: a replica that executed nothing for a view-change timeout tells the others how
   * far it got (an empty-range FETCH), ever more slowly while nothing changes (poe-fetch.ts).
   */
  status: 'status',
} as const;

/** Fetches, probes and retransmissions repeat at most once per this fraction of the view-change timeout. */
export const RETRY_DIVISOR = 4;

/** What does not change over a replica's life. */
export interface PoeParams {
  readonly id: number;
  readonly n: number;
  readonly f: number;
  readonly nf: number;
  readonly crypto: CryptoProvider;
  /** Sequence numbers the primary may propose above the stable checkpoint. */
  readonly windowK: number;
  /** A checkpoint every intervalK sequence numbers (§3.5 last paragraph). */
  readonly intervalK: number;
  /** Sequence numbers of garbage-collected requests kept to serve FETCH (paper §4(6)). */
  readonly archiveK: number;
}

/** Replicas whose vote a slot records in its bit mask (ids 0..29: a small integer to V8); higher ids go to a set. */
const MASK_IDS = 30;

/**
 * What a replica knows about sequence number k in the current view: the proposal it supports
 * (Support_r, Figure 3 line 12), the SUPPORTs counted for it, and whether it view-committed.
 * Entries of a new view's E' are slots too (view = the view they were proposed in, committed).
 *
 * Which replicas voted is a bit mask, not an array per slot: the normal case makes a slot per
 * sequence number at every replica, and a typed array each was a tenth of a run's allocation.
 */
export class Slot {
  request: ClientRequest | undefined = undefined;
  digest: Buffer | undefined = undefined;
  /** SUPPORTs that arrived before the PROPOSE (at most one per replica, so at most n). */
  early: { from: number; digest: Buffer }[] | undefined = undefined;
  /** Distinct replicas whose SUPPORT matches `digest`, the primary's PROPOSE and our own included. */
  matching = 0;
  committed = false;
  /** Primary: when it last re-broadcast this PROPOSE (retransmission is rate-limited). */
  resentAtMs = -Infinity;
  /** Replicas below MASK_IDS whose SUPPORT (the primary: PROPOSE) for (view, k) was counted; only the first counts. */
  private votedLow = 0;
  /** The same for replicas from MASK_IDS up (n > MASK_IDS only). */
  private votedHigh: Set<number> | undefined = undefined;

  constructor(readonly view: number) {}

  /** Whether replica `id`'s SUPPORT (or PROPOSE) for (view, k) was counted. */
  voted(id: number): boolean {
    if (id < MASK_IDS) return (this.votedLow & (1 << id)) !== 0;
    return this.votedHigh?.has(id) ?? false;
  }

  /** Records that replica `id`'s vote was counted (replica ids are integers in 0..n-1). */
  markVoted(id: number): void {
    if (id < MASK_IDS) this.votedLow |= 1 << id;
    else (this.votedHigh ??= new Set()).add(id);
  }
}
