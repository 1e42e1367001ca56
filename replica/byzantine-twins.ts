/**
 * Twins (Bano, Sonnino, Chursin, Perelman, Li, Ching, Malkhi: "Twins: BFT Systems Made Robust",
 * OPODIS 2021): a Byzantine replica is run as two honest instances under one identity and one
 * set of keys, each reaching part of the network. Equivocation, double voting and amnesia then
 * arise from honest code, as they would from a replica whose state was copied. As in the paper,
 * the run is divided into rounds; each round's partition of the replicas is drawn from the seed,
 * and after the last round the network is whole again (the paper's synchronous suffix, in which
 * liveness is checked). Leaders are the protocols' own (the primary of a view, HotStuff's slot
 * owners): the cores here take no leader schedule, so what the seed draws is which replica is
 * twinned (the primary or a backup) and the partitions.
 *
 * Partition of round r: every replica gets a side, 'a' or 'b', by a hash of (seed, r, id). A
 * twinned replica's instance A talks with side a, B with side b; non-twinned replicas on
 * different sides are cut from each other (infra/sim/twins.ts applies that to the network)
 * unless `partitionOthers` is off.
 * Client machines reach both instances.
 */
import { isClientPeer, type Peer, type ReplicaCore, type ReplicaInput, type ReplicaOutput, type ReplicaStatus, type WireMessage } from './types.js';

export interface TwinsSchedule {
  readonly seed: number;
  /** Length of a round of virtual (or real) time. */
  readonly roundMs: number;
  /** Rounds with partitions; from roundMs * rounds on, every instance reaches everybody. */
  readonly rounds: number;
  /**
   * Whether the non-twinned replicas on different sides are cut from each other too (Twins
   * proper). Off, only the twins' reach is split: for protocols here without a view change or
   * state transfer (Zyzzyva, parallel HotStuff), whose replicas cut off from a proposal never
   * catch up, so any partition of honest replicas is a liveness failure they do not claim to survive.
   */
  readonly partitionOthers: boolean;
}

/** A 32-bit mix (murmur3's finaliser) of the inputs. */
function mix(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    h = Math.imul(h ^ (x >>> 0), 0x85ebca6b) >>> 0;
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
    h = (h ^ (h >>> 16)) >>> 0;
  }
  return h;
}

/** The side of replica `id` in the round running at `nowMs`, or undefined once the rounds are over. */
export function twinsSide(s: TwinsSchedule, id: number, nowMs: number): 'a' | 'b' | undefined {
  const round = Math.floor(nowMs / s.roundMs);
  if (round >= s.rounds) return undefined;
  return (mix(s.seed, round, id) & 1) === 0 ? 'a' : 'b';
}

/** Are non-twinned replicas `x` and `y` cut from each other at `nowMs`? */
export function twinsCut(s: TwinsSchedule, x: number, y: number, nowMs: number): boolean {
  if (!s.partitionOthers) return false;
  const sx = twinsSide(s, x, nowMs);
  return sx !== undefined && sx !== twinsSide(s, y, nowMs);
}

const PREFIX = { a: 'twin-a:', b: 'twin-b:' } as const;

/** Two instances of one replica; the ledger, store and status shown are instance A's. */
export class Twins<M extends WireMessage> implements ReplicaCore<M> {
  constructor(
    private readonly a: ReplicaCore<M>,
    private readonly b: ReplicaCore<M>,
    private readonly n: number,
    private readonly schedule: TwinsSchedule,
    /** Other twinned replicas: they reach both sides, so both instances hear them. */
    private readonly twinned: ReadonlySet<number> = new Set(),
  ) {}
  get id(): number {
    return this.a.id;
  }
  get ledger() {
    return this.a.ledger;
  }
  get store() {
    return this.a.store;
  }
  status(): ReplicaStatus {
    return this.a.status();
  }

  /** Which instances hear peer `from` now. */
  private hearers(from: Peer, nowMs: number): ('a' | 'b')[] {
    if (isClientPeer(from) || this.twinned.has(from)) return ['a', 'b'];
    const side = twinsSide(this.schedule, from, nowMs);
    return side === undefined ? ['a', 'b'] : [side];
  }

  private reaches(side: 'a' | 'b', to: Peer, nowMs: number): boolean {
    if (isClientPeer(to) || this.twinned.has(to)) return true;
    const s = twinsSide(this.schedule, to, nowMs);
    return s === undefined || s === side;
  }

  step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[] {
    if (input.kind === 'timer') {
      const side = input.name.startsWith(PREFIX.a) ? 'a' : input.name.startsWith(PREFIX.b) ? 'b' : undefined;
      if (side === undefined) return [];
      return this.run(side, { kind: 'timer', name: input.name.slice(PREFIX[side].length) }, nowMs);
    }
    const sides = input.kind === 'message' ? this.hearers(input.from, nowMs) : (['a', 'b'] as const);
    const out: ReplicaOutput<M>[] = [];
    for (const side of sides) out.push(...this.run(side, input, nowMs));
    return out;
  }

  private run(side: 'a' | 'b', input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[] {
    const core = side === 'a' ? this.a : this.b;
    const out: ReplicaOutput<M>[] = [];
    for (const o of core.step(input, nowMs)) {
      switch (o.kind) {
        case 'setTimer':
        case 'cancelTimer':
          out.push({ ...o, name: PREFIX[side] + o.name });
          break;
        case 'event':
          // The simulator follows instance A's ledger; B's events would double-count executions.
          if (side === 'a') out.push(o);
          break;
        case 'send':
          if (this.reaches(side, o.to, nowMs)) out.push(o);
          break;
        case 'broadcast':
          for (let to = 0; to < this.n; to++) if (to !== this.id && this.reaches(side, to, nowMs)) out.push({ kind: 'send', to, msg: o.msg });
          break;
      }
    }
    return out;
  }
}
