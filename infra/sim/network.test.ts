/**
 * The simulator's event queue and network model: events pop in (time, insertion) order, and
 * drops, duplicates, delays, reordering and partitions happen at the configured rates for a
 * fixed seed.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../../client/random.js';
import { clientPeer } from '../../replica/types.js';
import { EventQueue } from './event-queue.js';
import { DEFAULT_NETWORK, Network, type NetworkOptions } from './network.js';

const SEED = 20210323;

function network(options: Partial<NetworkOptions>, seed = SEED): Network {
  return new Network({ ...DEFAULT_NETWORK, ...options }, new Rng(seed));
}

describe('EventQueue', () => {
  it('pops by time, and in insertion order among equal times', () => {
    const rng = new Rng(SEED);
    const q = new EventQueue<number>();
    const pushed: { timeMs: number; id: number }[] = [];
    for (let id = 0; id < 5000; id++) {
      // Few distinct times, so ties are common.
      const timeMs = rng.nextInt(50);
      q.push(timeMs, id);
      pushed.push({ timeMs, id });
    }
    const expected = [...pushed].sort((a, b) => a.timeMs - b.timeMs || a.id - b.id).map((e) => e.id);
    const popped: number[] = [];
    for (let e = q.pop(); e; e = q.pop()) popped.push(e.item);
    expect(popped).toEqual(expected);
  });

  it('pushMany queues like a push per entry, in order (ties included)', () => {
    const rng = new Rng(SEED + 7);
    console.log(`pushMany seed ${SEED + 7}`);
    const one = new EventQueue<string>();
    const many = new EventQueue<string>();
    const times = new Float64Array(5);
    const auxes = new Int32Array(5);
    let pushed = 0;
    for (let round = 0; round < 300; round++) {
      const count = 1 + rng.nextInt(5);
      pushed += count;
      for (let i = 0; i < count; i++) {
        times[i] = rng.nextInt(4) * 0.5 + (rng.chance(0.5) ? 100 : 0);
        auxes[i] = rng.nextInt(16);
        one.push(times[i]!, `r${round}`, auxes[i]!);
      }
      many.pushMany(times, auxes, count, `r${round}`);
    }
    const drain = (q: EventQueue<string>) => {
      const out: string[] = [];
      for (let e = q.pop(); e; e = q.pop()) out.push(`${e.timeMs}/${e.item}/${e.aux}`);
      return out;
    };
    const expected = drain(one);
    expect(expected).toHaveLength(pushed);
    expect(drain(many)).toEqual(expected);
    expect(() => many.pushMany(new Float64Array([Number.NaN]), new Int32Array(1), 1, 'x')).toThrow(RangeError);
  });

  it('interleaves pushes and pops correctly', () => {
    const rng = new Rng(SEED + 1);
    const q = new EventQueue<number>();
    let nowMs = 0;
    let lastSeen = -1;
    let id = 0;
    for (let i = 0; i < 20_000; i++) {
      if (q.size === 0 || rng.chance(0.55)) {
        q.push(nowMs + rng.nextInt(10), id++);
      } else {
        const e = q.pop()!;
        expect(e.timeMs, `seed ${SEED + 1}: time went backwards`).toBeGreaterThanOrEqual(nowMs);
        nowMs = e.timeMs;
        lastSeen = e.item;
      }
    }
    expect(lastSeen).toBeGreaterThanOrEqual(0);
  });

  it('matches a sorted list under interleaved pushes and pops, each item with its aux number', () => {
    const rng = new Rng(SEED + 2);
    const q = new EventQueue<string>();
    const model: { timeMs: number; seq: number; item: string; aux: number }[] = [];
    let seq = 0;
    let nowMs = 0;
    for (let i = 0; i < 20_000; i++) {
      if (model.length === 0 || rng.chance(0.5)) {
        // Fractional and tied times both occur.
        const timeMs = nowMs + (rng.chance(0.3) ? rng.nextInt(4) : rng.nextDouble() * 4);
        const aux = rng.nextInt(1000);
        q.push(timeMs, `e${seq}`, aux);
        model.push({ timeMs, seq, item: `e${seq}`, aux });
        seq++;
      } else {
        model.sort((a, b) => a.timeMs - b.timeMs || a.seq - b.seq);
        const want = model.shift()!;
        expect(q.peekTimeMs(), `seed ${SEED + 2}, step ${i}`).toBe(want.timeMs);
        const item = q.popItem();
        expect([item, q.poppedAux], `seed ${SEED + 2}, step ${i}`).toEqual([want.item, want.aux]);
        nowMs = want.timeMs;
      }
    }
    expect(q.size).toBe(model.length);
  });

  // The calendar's ring and its overflow heap (event-queue.ts) must give one order whatever the
  // bucket width and ring size: tiny rings push most events to the heap, wide buckets sort many
  // entries at once, long timers land beyond the ring, and pushes before the bucket being
  // consumed go to the heap.
  it.each([
    [128, 8192],
    [1, 4],
    [1000, 8],
    [0.01, 2],
    [4, 1],
  ])('matches a sorted list with %d buckets per ms and a ring of %d, retain included', (perMs, ring) => {
    const seed = SEED + 3 + ring;
    const rng = new Rng(seed);
    const q = new EventQueue<string>(perMs, ring);
    let model: { timeMs: number; seq: number; item: string; aux: number }[] = [];
    let seq = 0;
    let nowMs = 0;
    for (let i = 0; i < 20_000; i++) {
      const r = rng.nextDouble();
      if (model.length === 0 || r < 0.5) {
        const kind = rng.nextInt(4);
        const timeMs = kind === 0 ? nowMs + rng.nextInt(3) : kind === 1 ? nowMs + rng.nextDouble() * 2 : kind === 2 ? nowMs + rng.nextDouble() * 500 : nowMs;
        const aux = rng.nextInt(1000);
        q.push(timeMs, `e${seq}`, aux);
        model.push({ timeMs, seq, item: `e${seq}`, aux });
        seq++;
      } else if (r < 0.505) {
        const drop = `${rng.nextInt(10)}`;
        q.retain((x) => !x.endsWith(drop));
        model = model.filter((e) => !e.item.endsWith(drop));
      } else {
        model.sort((a, b) => a.timeMs - b.timeMs || a.seq - b.seq);
        const want = model.shift()!;
        expect(q.peekTimeMs(), `seed ${seed}, step ${i}`).toBe(want.timeMs);
        const item = q.popItem();
        expect([item, q.poppedAux], `seed ${seed}, step ${i}`).toEqual([want.item, want.aux]);
        nowMs = want.timeMs;
      }
      expect(q.size).toBe(model.length);
    }
    model.sort((a, b) => a.timeMs - b.timeMs || a.seq - b.seq);
    for (const want of model) expect(q.pop(), `seed ${seed}: the rest`).toEqual({ timeMs: want.timeMs, item: want.item, aux: want.aux });
    expect(q.pop()).toBeUndefined();
  });

  it('retain keeps order and drops the rest', () => {
    const q = new EventQueue<string>();
    q.push(3, 'timer-a');
    q.push(1, 'msg-1');
    q.push(1, 'timer-b');
    q.push(1, 'msg-2');
    q.push(2, 'msg-3');
    q.retain((x) => x.startsWith('msg'));
    const out: string[] = [];
    for (let e = q.pop(); e; e = q.pop()) out.push(e.item);
    expect(out).toEqual(['msg-1', 'msg-2', 'msg-3']);
  });

  it('rejects a non-finite time', () => {
    expect(() => new EventQueue<number>().push(Number.NaN, 1)).toThrow(RangeError);
  });
});

describe('Network', () => {
  it('a plain network (no loss, duplication, partition or link override) answers arrival() with transmit()’s times and draws', () => {
    console.log(`network plain-path seed ${SEED}`);
    for (const delay of [
      { baseMs: 1, jitterMs: 1, tailMeanMs: 0 },
      { baseMs: 0.5, jitterMs: 0, tailMeanMs: 2 },
    ]) {
      const a = network({ delay });
      const b = network({ delay });
      expect(a.plain).toBe(true);
      for (let i = 0; i < 500; i++) {
        const from = i % 7;
        const to = (i * 3) % 11;
        const nowMs = i * 0.37;
        expect([b.arrival(nowMs)]).toEqual(a.transmit(from, to, nowMs));
      }
      expect(b.stats).toEqual(a.stats);
      // A broadcast's copies at once: the same times, drawn in the same order.
      const c = network({ delay });
      const d = network({ delay });
      const times = new Float64Array(15);
      for (let i = 0; i < 40; i++) {
        c.arrivalsInto(i * 0.37, 15, times);
        const one = Array.from({ length: 15 }, () => d.arrival(i * 0.37));
        expect(Array.from(times)).toEqual(one);
      }
      expect(c.stats).toEqual(d.stats);
    }
    expect(network({ dropProbability: 0.1 }).plain).toBe(false);
    expect(network({ duplicateProbability: 0.1 }).plain).toBe(false);
    expect(network({ partitions: [{ nodes: [0], fromMs: 0, toMs: 1 }] }).plain).toBe(false);
    expect(network({ links: [{ to: [1], delay: { baseMs: 3, jitterMs: 0, tailMeanMs: 0 } }] }).plain).toBe(false);
  });

  const copies = 40_000;

  it('drops copies at the configured rate', () => {
    const net = network({ dropProbability: 0.2 });
    let lost = 0;
    for (let i = 0; i < copies; i++) if (net.transmit(0, 1, 0).length === 0) lost++;
    // Binomial sd = sqrt(0.2 * 0.8 / 40000) = 0.002; allow 5 sd.
    expect(lost / copies, `seed ${SEED}`).toBeGreaterThan(0.19);
    expect(lost / copies, `seed ${SEED}`).toBeLessThan(0.21);
    expect(net.stats.dropped).toBe(lost);
    expect(net.stats.sent).toBe(copies);
  });

  it('duplicates copies at the configured rate, each copy with its own delay', () => {
    const net = network({ duplicateProbability: 0.1, delay: { baseMs: 5, jitterMs: 10, tailMeanMs: 0 } });
    let twice = 0;
    let distinctDelays = 0;
    for (let i = 0; i < copies; i++) {
      const arrivals = net.transmit(2, 3, 100);
      expect(arrivals.length).toBeGreaterThanOrEqual(1);
      if (arrivals.length === 2) {
        twice++;
        if (arrivals[0] !== arrivals[1]) distinctDelays++;
      }
    }
    expect(twice / copies, `seed ${SEED}`).toBeGreaterThan(0.09);
    expect(twice / copies, `seed ${SEED}`).toBeLessThan(0.11);
    expect(distinctDelays).toBe(twice);
    expect(net.stats.duplicated).toBe(twice);
  });

  it('draws delays from base + uniform jitter, and reorders messages on a link', () => {
    const net = network({ delay: { baseMs: 2, jitterMs: 3, tailMeanMs: 0 } });
    let sum = 0;
    let reordered = 0;
    let previousArrival = -Infinity;
    for (let i = 0; i < copies; i++) {
      const sentMs = i * 0.5;
      const [at] = net.transmit(0, 1, sentMs);
      const delay = at! - sentMs;
      expect(delay).toBeGreaterThanOrEqual(2);
      expect(delay).toBeLessThan(5);
      sum += delay;
      // Sent later, arrives earlier: the next message overtakes this one.
      if (at! < previousArrival) reordered++;
      previousArrival = at!;
    }
    expect(sum / copies).toBeGreaterThan(3.45);
    expect(sum / copies).toBeLessThan(3.55);
    expect(reordered, 'jitter larger than the send interval must reorder some messages').toBeGreaterThan(copies / 10);
  });

  it('adds an exponential tail with the configured mean', () => {
    const net = network({ delay: { baseMs: 1, jitterMs: 0, tailMeanMs: 4 } });
    let sum = 0;
    let max = 0;
    for (let i = 0; i < copies; i++) {
      const d = net.transmit(0, 1, 0)[0]! - 1;
      expect(d).toBeGreaterThanOrEqual(0);
      sum += d;
      max = Math.max(max, d);
    }
    expect(sum / copies).toBeGreaterThan(3.8);
    expect(sum / copies).toBeLessThan(4.2);
    // P(X > 30) = e^-7.5 ~ 5.5e-4, so about 22 of 40000 lie beyond it: a real tail.
    expect(max).toBeGreaterThan(30);
  });

  it('constant links have no variance', () => {
    const net = network({ delay: { baseMs: 7, jitterMs: 0, tailMeanMs: 0 } });
    for (let i = 0; i < 100; i++) expect(net.transmit(1, 0, i)).toEqual([i + 7]);
  });

  it('per-link overrides win over the default delay, later overrides over earlier ones', () => {
    const net = network({
      delay: { baseMs: 1, jitterMs: 0, tailMeanMs: 0 },
      links: [
        { from: [0], delay: { baseMs: 10, jitterMs: 0, tailMeanMs: 0 } },
        { from: [0], to: [3], delay: { baseMs: 50, jitterMs: 0, tailMeanMs: 0 } },
      ],
    });
    expect(net.transmit(1, 2, 0)).toEqual([1]);
    expect(net.transmit(0, 2, 0)).toEqual([10]);
    expect(net.transmit(0, 3, 0)).toEqual([50]);
    expect(net.transmit(3, 0, 0)).toEqual([1]);
  });

  it('partitions cut links across the cut during [from, to) and heal afterwards', () => {
    const net = network({ partitions: [{ nodes: [2, 3], fromMs: 100, toMs: 200 }] });
    expect(net.isCut(0, 2, 99)).toBe(false);
    expect(net.isCut(0, 2, 100)).toBe(true);
    expect(net.isCut(2, 0, 150)).toBe(true);
    expect(net.isCut(2, 3, 150)).toBe(false); // same side
    expect(net.isCut(0, 1, 150)).toBe(false); // same side
    expect(net.isCut(clientPeer(0), 3, 150)).toBe(true); // clients are outside the set
    expect(net.isCut(0, 2, 200)).toBe(false); // healed
    let cut = 0;
    for (let t = 0; t < 300; t++) if (net.transmit(0, 3, t).length === 0) cut++;
    expect(cut).toBe(100);
    expect(net.stats.partitioned).toBe(100);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const run = (seed: number): number[] => {
      const net = network({ dropProbability: 0.1, duplicateProbability: 0.1, delay: { baseMs: 1, jitterMs: 2, tailMeanMs: 1 } }, seed);
      const out: number[] = [];
      for (let i = 0; i < 1000; i++) out.push(...net.transmit(i % 4, (i + 1) % 4, i), -1);
      return out;
    };
    expect(run(7)).toEqual(run(7));
    expect(run(7)).not.toEqual(run(8));
  });

  it('rejects impossible parameters', () => {
    expect(() => network({ dropProbability: 1.5 })).toThrow(/dropProbability/);
    expect(() => network({ delay: { baseMs: -1, jitterMs: 0, tailMeanMs: 0 } })).toThrow(/baseMs/);
    expect(() => network({ partitions: [{ nodes: [1], fromMs: 10, toMs: 5 }] })).toThrow(/interval/);
  });
});
