/**
 * Who leads which slot in parallel HotStuff (hotstuff.ts): the slot bookkeeping that keeps
 * idle leaders from costing consensus instances (issue 10, item 2).
 *
 * The PoE paper lets "all of its replicas act as primaries and work in parallel" (§4(8)), but a
 * fixed round-robin of slots makes every leader without client batches run a full no-op
 * instance for each slot the busy leaders pass. Here slots are dealt per epoch of
 * `epochK` slots (the checkpoint interval, at most 64) to the leaders that have work: the owners of epoch
 * e+2 are the home leaders (leaders[clientId mod L]) of the client batches executed in epoch e,
 * or every leader if there were none. Execution is deterministic and identical at every
 * correct replica, so every replica derives the same owners without a message. Epochs 0 and 1,
 * before anything executed, belong to the first leader alone: which leaders have work is not
 * known yet, and a leader without work would cost a no-op instance per slot it owned; every
 * client batch of those epochs reaches it by forwarding. A client keeps sending to its home leader; an idle home forwards its
 * clients' batches to a leader that owns slots, and once one of them executes, the home owns
 * slots again two epochs later.
 *
 * Within an epoch slot k belongs to owners[(k-1+view) mod |owners|] (a higher view moves it to
 * the next owner, as before). Invariant: the owners of an epoch are set once, from executed
 * state, and never change; a replica learns those of epoch e+2 when it executes e's last slot.
 *
 * Why no queued batch can wait for a client retransmission (fault-free, view 0). Two rules of
 * ParallelHotStuff make it so:
 * (F) the owner of the slot x that blocks execution (every slot below x executed) fills it,
 *     with a no-op if it holds no batch, once any leader proposed a slot above x;
 * (S) a leader holding batches while owning no slot from its cursor on in any epoch it knows
 *     hands them to their proposer in the newest epoch it knows (proposerInNewest), an owner of
 *     slots there (handOnStranded).
 * (F) alone drains every slot up to the highest proposed one: the PREPARE of a slot y > x reached
 * x's owner, which knows y's epoch (the proposer of y executed no more than x - 1, as x's owner
 * did), so x gets filled, then x+1 blocks, and so on up to y. So a stall needs nothing proposed
 * at or above x while some leader L holds a batch b. Every replica has then executed x - 1 and
 * knows the same owners, up to epoch N = epoch(x-1) + 2, past x's epoch. If L owns a slot from
 * its cursor on in an epoch up to N, that slot is at or above x (L's cursor passed only slots it
 * proposed) and L proposes b in it. If not, (S) sends b to an owner T of N with a slot there,
 * T != L; T keeps a forwarded batch when it owns slots from its next slot to execute on, which
 * it does (N), and proposes b in its first slot at or above its cursor (at most x: it proposed
 * nothing at or above x). Either way a slot at or above x is proposed, and (F) goes on. (Either
 * leader may instead hand b to its home H, but only if H leads a slot from the one b was meant
 * for to the end of that epoch (takePendingFor); H's cursor is at most x too, so H proposes b
 * there. A home whose slots of the epoch all lay below would, being out of slots, hand b straight
 * back by (S), for ever.) Before
 * (S), L held b until it learned epoch N+1, which needs epoch N-2, x's epoch, executed: when
 * none of N's owners had a batch of its own, nothing was ever proposed above x's epoch, and its
 * last slot, owned by a leader without work, waited for its no-op for ever (the cost model at
 * n = 16 with 128 clients: slot 192; infra/sim/hotstuff-owners.test.ts). (S) costs nothing in the
 * steady state (no instance, one forwarded batch) and fires only when L's slots ran out.
 * While replicas differ in what they executed, a batch can go back and forth between a leader
 * that knows N and one that does not yet, at most until the latter executes the slots the former
 * already did, whose DECIDEs are on their way. Two limits the argument needs: a window of at least
 * C + 3 epochK - 1 slots (C the checkpoint interval), so that L's or T's slot in epoch N lies
 * inside it (real runs: 600 + 191 <= 1,200; the simulator's defaults: 50 + 149 <= 200); and
 * every owner of N owning a slot of N, which proposerInNewest and proposerOf ensure by choosing
 * only among those (with more than epochK owners, not all of them own one).
 */
import type { ClientRequest } from './messages.js';
import { isNoop } from './messages.js';

export class SlotOwners {
  /** Owners per epoch, for the epochs not yet forgotten. */
  private readonly owners = new Map<number, readonly number[]>();
  /** Home leaders of the client batches executed so far in each epoch still running. */
  private readonly homes = new Map<number, Set<number>>();
  private known = 1;

  /**
   * `byLoad` false: the fixed round-robin over every leader in every epoch (the form before
   * issue 10, kept as an ablation: `extra.hotstuffSlots=roundRobin`).
   */
  constructor(
    readonly leaders: readonly number[],
    readonly epochK: number,
    readonly byLoad = true,
  ) {
    if (!Number.isInteger(epochK) || epochK < 1) throw new RangeError(`hotstuff: epoch length ${epochK} must be a positive integer`);
    const first = [leaders[0]!];
    this.owners.set(0, first);
    this.owners.set(1, first);
    if (!byLoad) this.known = Number.POSITIVE_INFINITY;
  }

  private setOf(epoch: number): readonly number[] | undefined {
    return this.byLoad ? this.owners.get(epoch) : this.leaders;
  }

  epochOf(k: number): number {
    return Math.floor((k - 1) / this.epochK);
  }

  /** The highest epoch whose owners are known here. */
  get knownEpoch(): number {
    return this.known;
  }

  /** Whether `id` owns slots in k's epoch or a later known one. */
  ownsFrom(k: number, id: number): boolean {
    if (!this.byLoad) return this.leaders.includes(id);
    for (let e = this.epochOf(k); e <= this.known; e++) if (this.owners.get(e)?.includes(id)) return true;
    return false;
  }

  /** The leader a client sends to: leaders[clientId mod L]. */
  home(clientId: number): number {
    return this.leaders[clientId % this.leaders.length]!;
  }

  /**
   * The leader that proposes a batch of this client now, with slot `nextK` the next to execute:
   * its home if that owns slots in nextK's epoch, else one of that epoch's owners.
   */
  proposerOf(clientId: number, nextK: number): number {
    return this.proposerIn(Math.min(this.epochOf(nextK), this.known), clientId);
  }

  /**
   * The leader that proposes a batch of this client in the newest epoch known here: its home if
   * that leads slots there, else one of the leaders that do. Where a leader that owns no slot
   * from its cursor on hands its queued batches (ParallelHotStuff.handOnStranded).
   */
  proposerInNewest(clientId: number): number {
    return this.proposerIn(this.known, clientId);
  }

  private proposerIn(epoch: number, clientId: number): number {
    const leading = this.leadingIn(epoch);
    const home = this.home(clientId);
    return leading.includes(home) ? home : leading[clientId % leading.length]!;
  }

  /** The owners of a known epoch that lead at least one of its slots in view 0 (all of them unless there are more than epochK). */
  leadingIn(epoch: number): readonly number[] {
    const set = this.setOf(epoch)!;
    if (!this.byLoad || set.length <= this.epochK) return set;
    const first = (epoch * this.epochK) % set.length;
    return Array.from({ length: this.epochK }, (_, j) => set[(first + j) % set.length]!);
  }

  /** Whether `id` leads (in view 0) a slot from k to the end of k's epoch. */
  leadsRestOfEpoch(k: number, id: number): boolean {
    return this.nextOwn(k, id, (this.epochOf(k) + 1) * this.epochK) !== undefined;
  }

  /** The leader of slot k in `view`, or undefined while k's epoch is not known here. */
  owner(k: number, view: number): number | undefined {
    const set = this.setOf(this.epochOf(k));
    return set ? set[(k - 1 + view) % set.length] : undefined;
  }

  /** The first slot in [fromK, maxK] that `id` leads in view 0, among known epochs. */
  nextOwn(fromK: number, id: number, maxK: number): number | undefined {
    for (let e = this.epochOf(fromK); e <= this.known; e++) {
      const set = this.setOf(e);
      const i = set?.indexOf(id) ?? -1;
      const first = Math.max(fromK, e * this.epochK + 1);
      if (i >= 0 && set) {
        const k = first + ((((i - (first - 1)) % set.length) + set.length) % set.length);
        if (k > maxK) return undefined;
        if (k <= (e + 1) * this.epochK) return k;
      }
      if ((e + 1) * this.epochK + 1 > maxK) return undefined;
    }
    return undefined;
  }

  /**
   * Records slot k's execution (called for every k in order). Returns true when it completed an
   * epoch and so made the owners of a new epoch known.
   */
  onExecuted(k: number, request: ClientRequest): boolean {
    if (!this.byLoad) return false;
    const e = this.epochOf(k);
    if (!isNoop(request)) {
      let set = this.homes.get(e);
      if (!set) {
        set = new Set();
        this.homes.set(e, set);
      }
      set.add(this.home(request.clientId));
    }
    if (k !== (e + 1) * this.epochK) return false;
    const homes = this.homes.get(e);
    this.homes.delete(e);
    this.owners.set(e + 2, homes && homes.size > 0 ? [...homes].sort((a, b) => a - b) : this.leaders);
    this.known = Math.max(this.known, e + 2);
    return true;
  }

  /** Drops the owners of epochs that end at or below `k` (slots every replica here has executed). */
  forget(k: number): void {
    for (const e of this.owners.keys()) if ((e + 1) * this.epochK <= k) this.owners.delete(e);
  }
}
