/**
 * Link emulation: the `--link` syntax, the profiles, per-pair links, the environment hand-off,
 * and the shaper's release times on a fake clock (delay, jitter bounds, in-order delivery per
 * link, serialisation at a rate, loss).
 */
import { describe, expect, it } from 'vitest';
import {
  formatLinkSpec,
  LAN,
  LINK_ENV,
  linkBetween,
  linkEnv,
  LinkSpecError,
  nodeLinkConfig,
  parseLinkSpec,
  parseNodeLinkConfig,
  regionOf,
  type NodeLinkConfig,
} from './link.js';
import { LinkShaper, linkShaperFromEnv, mulberry32, type ShaperClock } from './process/link-shaper.js';
import { clientPeer } from '../replica/types.js';

describe('--link', () => {
  it('parses profiles, custom values and overrides, with units', () => {
    expect(parseLinkSpec(undefined)).toEqual({ profile: 'none', overrides: {} });
    expect(parseLinkSpec('lan')).toEqual({ profile: 'lan', overrides: {} });
    const custom = parseLinkSpec('delay=1ms,jitter=200us,loss=0.1%,rate=1gbit');
    expect(custom.profile).toBe('custom');
    expect(linkBetween(custom, 0, 1)).toEqual({ delayMs: 1, jitterMs: 0.2, lossRate: 0.001, rateBitsPerSec: 1e9 });
    expect(linkBetween(parseLinkSpec('delay=2'), 0, 1).delayMs).toBe(2);
    expect(linkBetween(parseLinkSpec('delay=0.5s,rate=10mbps'), 0, 1)).toMatchObject({ delayMs: 500, rateBitsPerSec: 80e6 });
    expect(linkBetween(parseLinkSpec('lan,loss=1%'), 0, 1)).toEqual({ ...LAN, lossRate: 0.01 });
  });

  it('names what is wrong', () => {
    const bad: [string, RegExp][] = [
      ['fast', /unknown link profile 'fast'/],
      ['delay=1parsec', /unknown unit 'parsec'/],
      ['delay=abc', /not a number/],
      ['loss=100%', /every frame/],
      ['rate=1gbyte', /unknown unit/],
      ['speed=1', /unknown link setting 'speed'/],
      ['delay=1ms,lan', /must come first/],
      ['none,delay=1ms', /'none' takes no settings/],
      ['delay=1ms,jitter=2ms', /jitter .* must not exceed the delay/],
      ['wan:mars-1', /unknown region 'mars-1'/],
      ['lan:us-east-1', /only wan takes a list/],
      ['', /empty/],
    ];
    for (const [text, why] of bad) expect(() => parseLinkSpec(text), text).toThrow(why);
    expect(() => parseLinkSpec('fast')).toThrow(LinkSpecError);
  });

  it('formats a spec so that it parses back to itself', () => {
    for (const text of ['none', 'lan', 'wan', 'wan:us-east-1+eu-west-1', 'delay=1ms,jitter=0.2ms,loss=0.1%,rate=1gbit', 'lan,loss=1%']) {
      const spec = parseLinkSpec(text);
      expect(parseLinkSpec(formatLinkSpec(spec)), text).toEqual(spec);
    }
  });

  it('wan spreads nodes over regions round-robin, half the RTT one way, lan within a region', () => {
    const wan = parseLinkSpec('wan:us-east-1+eu-west-1');
    expect(regionOf(wan, 0)).toBe('us-east-1');
    expect(regionOf(wan, 1)).toBe('eu-west-1');
    expect(regionOf(wan, 2)).toBe('us-east-1');
    expect(regionOf(wan, clientPeer(1))).toBe('eu-west-1');
    expect(linkBetween(wan, 0, 1)).toEqual({ delayMs: 35, jitterMs: 0.35, lossRate: 0, rateBitsPerSec: 0 });
    expect(linkBetween(wan, 1, 0)).toEqual(linkBetween(wan, 0, 1));
    expect(linkBetween(wan, 0, 2)).toEqual(LAN);
    const all = parseLinkSpec('wan');
    expect(linkBetween(all, 1, 3).delayMs).toBe(50); // us-west-2 <-> ap-northeast-1: 100 ms RTT
  });

  it('hands each node its links through the environment, and rejects a malformed one', () => {
    const spec = parseLinkSpec('delay=1ms');
    const nodes = [0, 1, 2, 3, clientPeer(0)];
    const config = nodeLinkConfig(spec, 2, nodes, { delay: true, loss: true, rate: false }, 7)!;
    expect(config.peers.map(([p]) => p)).toEqual([0, 1, 3, clientPeer(0)]);
    const env = linkEnv(config);
    expect(parseNodeLinkConfig(env[LINK_ENV]!)).toEqual(config);
    expect(nodeLinkConfig(parseLinkSpec('none'), 0, nodes, { delay: true, loss: true, rate: true }, 1)).toBeUndefined();
    expect(nodeLinkConfig(spec, 0, nodes, { delay: false, loss: false, rate: false }, 1)).toBeUndefined();
    expect(linkEnv(undefined)).toEqual({});
    expect(() => parseNodeLinkConfig('{')).toThrow(/not JSON/);
    expect(() => parseNodeLinkConfig(JSON.stringify({ ...config, peers: [[1, { delayMs: -1, jitterMs: 0, lossRate: 0, rateBitsPerSec: 0 }]] }))).toThrow(
      /bad link to peer 1/,
    );
    expect(linkShaperFromEnv({})).toBeUndefined();
    expect(linkShaperFromEnv({ [LINK_ENV]: env[LINK_ENV] })?.linkTo(0).delayMs).toBe(1);
    expect(() => linkShaperFromEnv({ [LINK_ENV]: 'x' })).toThrow(/not JSON/);
  });
});

/** A clock the test moves by hand; scheduled callbacks run when it passes their time. */
class FakeClock implements ShaperClock {
  now = 1000;
  private timers: { at: number; fn: () => void; live: boolean }[] = [];
  nowMs(): number {
    return this.now;
  }
  schedule(fn: () => void, afterMs: number): () => void {
    const t = { at: this.now + Math.max(0, afterMs), fn, live: true };
    this.timers.push(t);
    return () => (t.live = false);
  }
  advanceTo(ms: number): void {
    for (;;) {
      const due = this.timers.filter((t) => t.live && t.at <= ms).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.live = false;
      this.now = Math.max(this.now, due.at);
      due.fn();
    }
    this.now = ms;
    this.timers = this.timers.filter((t) => t.live);
  }
}

function shaper(params: Partial<{ delayMs: number; jitterMs: number; lossRate: number; rateBitsPerSec: number }>, clock: ShaperClock, seed = 1): LinkShaper {
  const p = { delayMs: 0, jitterMs: 0, lossRate: 0, rateBitsPerSec: 0, ...params };
  const config: NodeLinkConfig = {
    v: 1,
    seed,
    apply: { delay: true, loss: true, rate: true },
    peers: [
      [1, p],
      [2, p],
    ],
  };
  return new LinkShaper(config, clock);
}

describe('LinkShaper', () => {
  it('releases a frame after the link delay, not before', () => {
    const clock = new FakeClock();
    const s = shaper({ delayMs: 1 }, clock);
    const got: number[] = [];
    s.send(1, Buffer.from([1]), () => got.push(clock.now));
    clock.advanceTo(1000.999);
    expect(got).toEqual([]);
    clock.advanceTo(1002);
    expect(got).toEqual([1001]);
    expect(s.counters).toEqual({ held: 1, lost: 0, released: 1 });
  });

  it('keeps each link in order under jitter, within delay ± jitter', () => {
    const seed = 0xc0ffee;
    const clock = new FakeClock();
    const s = shaper({ delayMs: 1, jitterMs: 0.5 }, clock, seed);
    const got: { i: number; sentMs: number; atMs: number }[] = [];
    for (let i = 0; i < 200; i++) {
      const sentMs = clock.now;
      s.send(1, Buffer.from([i]), () => got.push({ i, sentMs, atMs: clock.now }));
      clock.advanceTo(clock.now + 0.1);
    }
    clock.advanceTo(clock.now + 10);
    expect(
      got.map((g) => g.i),
      `seed ${seed}`,
    ).toEqual([...Array(200).keys()]);
    for (const g of got) {
      expect(g.atMs - g.sentMs, `seed ${seed}`).toBeGreaterThanOrEqual(0.5 - 1e-9);
      // Later than delay + jitter only because an earlier frame held it back (in-order).
      expect(g.atMs - g.sentMs, `seed ${seed}`).toBeLessThanOrEqual(1.5 + 1e-9);
    }
    const spread = new Set(got.map((g) => Math.round((g.atMs - g.sentMs) * 100)));
    expect(spread.size, 'jitter varies the delay').toBeGreaterThan(5);
  });

  it('serialises frames at the link rate', () => {
    const clock = new FakeClock();
    // 1 Mbit/s: a 964-byte payload plus 36 bytes of framing takes 8 ms on the wire.
    const s = shaper({ rateBitsPerSec: 1e6 }, clock);
    const got: number[] = [];
    for (let i = 0; i < 3; i++) s.send(1, Buffer.alloc(964), () => got.push(clock.now - 1000));
    clock.advanceTo(1100);
    expect(got.map((x) => Math.round(x * 1000) / 1000)).toEqual([8, 16, 24]);
  });

  it('links are independent: a slow link does not hold another', () => {
    const clock = new FakeClock();
    const config: NodeLinkConfig = {
      v: 1,
      seed: 1,
      apply: { delay: true, loss: true, rate: true },
      peers: [
        [1, { delayMs: 50, jitterMs: 0, lossRate: 0, rateBitsPerSec: 0 }],
        [2, { delayMs: 1, jitterMs: 0, lossRate: 0, rateBitsPerSec: 0 }],
      ],
    };
    const s = new LinkShaper(config, clock);
    const got: string[] = [];
    s.send(1, Buffer.from('slow'), (b) => got.push(`${b.toString()}@${clock.now - 1000}`));
    s.send(2, Buffer.from('fast'), (b) => got.push(`${b.toString()}@${clock.now - 1000}`));
    clock.advanceTo(1100);
    expect(got).toEqual(['fast@1', 'slow@50']);
  });

  it('drops about the configured share of frames, the same ones for the same seed', () => {
    const run = (seed: number): number[] => {
      const clock = new FakeClock();
      const s = shaper({ lossRate: 0.1 }, clock, seed);
      const lost: number[] = [];
      for (let i = 0; i < 5000; i++) if (!s.send(1, Buffer.from([0]), () => undefined)) lost.push(i);
      return lost;
    };
    const seed = 42;
    const lost = run(seed);
    expect(lost.length, `seed ${seed}`).toBeGreaterThan(400);
    expect(lost.length, `seed ${seed}`).toBeLessThan(600);
    expect(run(seed)).toEqual(lost);
    expect(run(seed + 1)).not.toEqual(lost);
  });

  it('applies only the knobs it is given (the rest belong to tc), and passes unknown peers through', () => {
    const clock = new FakeClock();
    const p = { delayMs: 1, jitterMs: 0, lossRate: 0.5, rateBitsPerSec: 1e6 };
    const s = new LinkShaper({ v: 1, seed: 1, apply: { delay: true, loss: false, rate: false }, peers: [[1, p]] }, clock);
    expect(s.linkTo(1)).toEqual({ delayMs: 1, jitterMs: 0, lossRate: 0, rateBitsPerSec: 0 });
    let now = 0;
    s.send(9, Buffer.from([0]), () => (now = clock.now));
    expect(now).toBe(1000);
  });

  it('close drops what is held and delivers nothing later', () => {
    const clock = new FakeClock();
    const s = shaper({ delayMs: 5 }, clock);
    let delivered = 0;
    s.send(1, Buffer.from([0]), () => delivered++);
    s.close();
    clock.advanceTo(2000);
    expect(delivered).toBe(0);
    expect(s.pending).toBe(0);
  });

  it('mulberry32 is uniform enough for jitter and loss', () => {
    const r = mulberry32(3);
    let sum = 0;
    for (let i = 0; i < 10_000; i++) sum += r();
    expect(sum / 10_000).toBeGreaterThan(0.48);
    expect(sum / 10_000).toBeLessThan(0.52);
  });
});
