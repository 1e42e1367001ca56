/**
 * Link emulation in the transport, for kernels without sch_netem (this machine's) and for
 * backends with no interface of their own (local, ssh): each frame a node sends is held until
 * its release time, or dropped, per infra/link.ts's semantics. The transport calls `send`
 * instead of queueing a frame for its socket; `deliver` queues it when it is released.
 *
 * Release time of a frame of b bytes on a link (delay d, jitter j, rate r):
 *   departs  = max(now, link free) + 8b / r          (serialisation; the link is busy till then)
 *   releases = max(departs + d + U(-j, +j), previous frame's release on this link)
 * The max keeps one link's frames in order, as TCP would deliver them.
 *
 * Timers. Node's timers have a resolution of 1 ms and measure from the event loop's cached
 * clock, so a 1 ms timer can fire a little early or late. Every wake-up checks the real clock
 * and holds what is not due. A wait of half a millisecond or more sleeps in a timer (at least
 * 1 ms); a shorter one spins on setImmediate (serving I/O between checks). So an emulated delay
 * is a lower bound, met within about half a millisecond on an idle machine, and no process
 * spins for more than half a millisecond per wait. On a busy machine each held frame costs its
 * sender one more wake-up, and the scheduler's latency adds to every hop: expect more than the
 * configured delay there (kernel netem, where it exists, has no such cost).
 */
import { performance } from 'node:perf_hooks';
import { LINK_ENV, NO_LINK, parseNodeLinkConfig, type LinkParams, type NodeLinkConfig } from '../link.js';
import type { Peer } from '../../replica/types.js';

/** How the shaper reads the clock and waits (tests pass a fake). */
export interface ShaperClock {
  nowMs(): number;
  /** Runs `fn` after about `afterMs` (0: as soon as the loop has served I/O); returns a cancel. */
  schedule(fn: () => void, afterMs: number): () => void;
}

/** Waits shorter than this spin instead of sleeping in a timer. */
export const SPIN_BELOW_MS = 0.5;

export const realClock: ShaperClock = {
  nowMs: () => performance.now(),
  schedule(fn, afterMs) {
    if (afterMs >= SPIN_BELOW_MS) {
      const t = setTimeout(fn, Math.max(1, Math.floor(afterMs)));
      return () => clearTimeout(t);
    }
    const i = setImmediate(fn);
    return () => clearImmediate(i);
  },
};

export interface LinkShaperCounters {
  /** Frames held for a later release. */
  held: number;
  /** Frames the link dropped (loss). */
  lost: number;
  /** Frames released to the socket after being held. */
  released: number;
}

interface LinkState {
  readonly params: LinkParams;
  freeAtMs: number;
  lastReleaseMs: number;
}

interface Held {
  readonly releaseMs: number;
  readonly seq: number;
  readonly payload: Buffer;
  readonly deliver: (payload: Buffer) => void;
}

/** A seeded PRNG (mulberry32): runs with the same seed drop and jitter the same frames. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b_79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

const FRAME_OVERHEAD_BYTES = 36; // length and MAC: what the wire carries besides the payload

export class LinkShaper {
  readonly counters: LinkShaperCounters = { held: 0, lost: 0, released: 0 };
  private readonly links = new Map<Peer, LinkState>();
  private readonly random: () => number;
  private readonly heap: Held[] = [];
  private seq = 0;
  private cancel: (() => void) | undefined;
  private armedForMs = Number.POSITIVE_INFINITY;
  private closed = false;

  constructor(
    readonly config: NodeLinkConfig,
    private readonly clock: ShaperClock = realClock,
  ) {
    this.random = mulberry32(config.seed);
    const a = config.apply;
    for (const [peer, p] of config.peers) {
      const params: LinkParams = {
        delayMs: a.delay ? p.delayMs : 0,
        jitterMs: a.delay ? p.jitterMs : 0,
        lossRate: a.loss ? p.lossRate : 0,
        rateBitsPerSec: a.rate ? p.rateBitsPerSec : 0,
      };
      this.links.set(peer, { params, freeAtMs: 0, lastReleaseMs: 0 });
    }
  }

  /** The link to `peer` as this shaper applies it. */
  linkTo(peer: Peer): LinkParams {
    return this.links.get(peer)?.params ?? NO_LINK;
  }

  /**
   * Sends `payload` to `to` through the emulated link: `deliver` runs now (no delay), later, or
   * never (lost). Returns false only when the frame was lost.
   */
  send(to: Peer, payload: Buffer, deliver: (payload: Buffer) => void): boolean {
    const link = this.links.get(to);
    if (!link || this.closed) {
      deliver(payload);
      return true;
    }
    const p = link.params;
    if (p.lossRate > 0 && this.random() < p.lossRate) {
      this.counters.lost++;
      return false;
    }
    const now = this.clock.nowMs();
    let departMs = now;
    if (p.rateBitsPerSec > 0) {
      departMs = Math.max(now, link.freeAtMs) + ((payload.length + FRAME_OVERHEAD_BYTES) * 8 * 1000) / p.rateBitsPerSec;
      link.freeAtMs = departMs;
    }
    const jitterMs = p.jitterMs > 0 ? (this.random() * 2 - 1) * p.jitterMs : 0;
    const releaseMs = Math.max(departMs + p.delayMs + jitterMs, link.lastReleaseMs);
    link.lastReleaseMs = releaseMs;
    if (releaseMs <= now && this.heap.length === 0) {
      deliver(payload);
      return true;
    }
    this.counters.held++;
    this.push({ releaseMs, seq: this.seq++, payload, deliver });
    this.arm();
    return true;
  }

  /** Frames held now. */
  get pending(): number {
    return this.heap.length;
  }

  /** Drops every held frame and stops the timer (the transport is closing). */
  close(): void {
    this.closed = true;
    this.cancel?.();
    this.cancel = undefined;
    this.heap.length = 0;
  }

  private arm(): void {
    const next = this.heap[0];
    if (!next || this.closed) return;
    if (this.cancel && this.armedForMs <= next.releaseMs) return;
    this.cancel?.();
    this.armedForMs = next.releaseMs;
    this.cancel = this.clock.schedule(() => this.fire(), next.releaseMs - this.clock.nowMs());
  }

  private fire(): void {
    this.cancel = undefined;
    this.armedForMs = Number.POSITIVE_INFINITY;
    const now = this.clock.nowMs();
    while (this.heap.length > 0 && this.heap[0]!.releaseMs <= now) {
      const h = this.pop();
      this.counters.released++;
      h.deliver(h.payload);
    }
    this.arm();
  }

  private less(a: Held, b: Held): boolean {
    return a.releaseMs < b.releaseMs || (a.releaseMs === b.releaseMs && a.seq < b.seq);
  }

  private push(h: Held): void {
    const heap = this.heap;
    heap.push(h);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): Held {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && this.less(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && this.less(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

/**
 * The shaper this process's harness asked for in POE_BENCH_LINK, or undefined. A malformed
 * value throws: a run must not silently measure an unshaped network.
 */
export function linkShaperFromEnv(env: NodeJS.ProcessEnv = process.env): LinkShaper | undefined {
  const text = env[LINK_ENV];
  if (text === undefined || text === '') return undefined;
  return new LinkShaper(parseNodeLinkConfig(text));
}
