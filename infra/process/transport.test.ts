/**
 * The TCP transport on loopback: authenticated delivery, hostile input dropped and counted
 * (never a crash), reconnect after a dropped link, bounded queues with backpressure.
 */
import { createHash, createHmac } from 'node:crypto';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { clientPeer, type Peer } from '../../replica/types.js';
import {
  batchMacDigestInto,
  type BatchLocator,
  computeMac,
  encodeFrame,
  encodeHello,
  FrameMac,
  FrameReader,
  OutputQueue,
  payloadDigest,
  Transport,
  type TransportHandlers,
} from './transport.js';
import { Rng } from '../../client/random.js';
import { MAC_DIGEST_FROM } from './frame-limits.js';
import { MAC_BYTES } from '../../replica/crypto.js';

const KEYS = new Map<string, Buffer>();
function key(a: Peer, b: Peer): Buffer {
  const id = `${Math.min(a, b)}-${Math.max(a, b)}`;
  let k = KEYS.get(id);
  if (!k) {
    k = Buffer.alloc(32, KEYS.size + 1);
    KEYS.set(id, k);
  }
  return k;
}

const open: Transport[] = [];
const sockets: net.Socket[] = [];
afterEach(async () => {
  for (const s of sockets.splice(0)) s.destroy();
  await Promise.all(open.splice(0).map((t) => t.close()));
});

interface Node {
  t: Transport;
  got: Array<[Peer, string]>;
  ups: Peer[];
}

function node(
  self: Peer,
  known: readonly Peer[],
  extra: Partial<TransportHandlers> = {},
  limits: { high?: number; max?: number; batch?: BatchLocator } = {},
): Node {
  const got: Array<[Peer, string]> = [];
  const ups: Peer[] = [];
  const t = new Transport(
    {
      self,
      macKey: (p) => (known.includes(p) ? key(self, p) : undefined),
      ...(limits.high !== undefined ? { queueBytesHigh: limits.high } : {}),
      ...(limits.max !== undefined ? { queueBytesMax: limits.max } : {}),
      ...(limits.batch ? { batch: limits.batch } : {}),
    },
    {
      onFrame: (from, payload) => got.push([from, payload.toString()]),
      onPeerUp: (p) => ups.push(p),
      ...extra,
    },
  );
  open.push(t);
  return { t, got, ups };
}

async function until(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function rawConnect(port: number): Promise<net.Socket> {
  const s = net.connect({ host: '127.0.0.1', port });
  sockets.push(s);
  s.on('error', () => {});
  await new Promise<void>((r) => s.once('connect', () => r()));
  return s;
}

const closedPromise = (s: net.Socket): Promise<void> => new Promise((r) => (s.destroyed ? r() : s.once('close', () => r())));

describe('Transport', () => {
  it('delivers authenticated frames both ways over one connection dialled by the lower id', async () => {
    const a = node(0, [1]);
    const b = node(1, [0]);
    const port = await b.t.listen(0);
    a.t.dial(1, '127.0.0.1', port);
    await until(() => a.t.isConnected(1) && b.t.isConnected(0), 'connection');
    for (let i = 0; i < 100; i++) a.t.send(1, Buffer.from(`a${i}`));
    b.t.send(0, Buffer.from('hello back'));
    await until(() => b.got.length === 100 && a.got.length === 1, 'frames');
    expect(b.got.map(([, p]) => p)).toEqual(Array.from({ length: 100 }, (_, i) => `a${i}`));
    expect(b.got.every(([from]) => from === 0)).toBe(true);
    expect(a.got).toEqual([[1, 'hello back']]);
    // One burst of 100 frames went out as one write: the counters agree with the frame sizes.
    expect(a.t.counters.framesSent).toBe(100);
    expect(b.t.counters.connectionsAccepted).toBe(1);
  });

  it('drops garbage before a HELLO, counts it and closes the connection', async () => {
    const b = node(1, [0]);
    const port = await b.t.listen(0);
    const s = await rawConnect(port);
    s.write(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await closedPromise(s);
    expect(b.t.counters.badHello).toBe(1);
    expect(b.got).toEqual([]);
  });

  it('refuses a HELLO with a wrong MAC or from an unknown peer', async () => {
    const b = node(1, [0]);
    const port = await b.t.listen(0);
    const s1 = await rawConnect(port);
    s1.write(encodeFrame(Buffer.alloc(32, 0xee), encodeHello(0, 1)));
    await closedPromise(s1);
    const s2 = await rawConnect(port);
    s2.write(encodeFrame(key(1, 7), encodeHello(7, 1)));
    await closedPromise(s2);
    expect(b.t.counters.badHello).toBe(2);
    expect(b.t.isConnected(0)).toBe(false);
  });

  it('drops a frame with a wrong MAC, counts it, and keeps the connection for good frames', async () => {
    const c = clientPeer(0);
    const b = node(1, [c]);
    const port = await b.t.listen(0);
    const s = await rawConnect(port);
    s.write(encodeFrame(key(c, 1), encodeHello(c, 1)));
    await until(() => b.t.isConnected(c), 'hello accepted');
    const forged = encodeFrame(key(c, 1), Buffer.from('forged'));
    forged[10] = forged[10]! ^ 1; // flip one MAC bit
    s.write(forged);
    s.write(encodeFrame(key(c, 1), Buffer.from('genuine')));
    await until(() => b.got.length === 1, 'the genuine frame');
    expect(b.got).toEqual([[c, 'genuine']]);
    expect(b.t.counters.badMac).toBe(1);
    expect(b.t.isConnected(c)).toBe(true);
  });

  it('closes a connection that announces a frame above the limit without allocating it', async () => {
    const c = clientPeer(0);
    const b = node(1, [c]);
    const port = await b.t.listen(0);
    const s = await rawConnect(port);
    s.write(encodeFrame(key(c, 1), encodeHello(c, 1)));
    await until(() => b.t.isConnected(c), 'hello accepted');
    const huge = Buffer.alloc(8);
    huge.writeUInt32BE(0xffff_fff0, 0);
    s.write(huge);
    await closedPromise(s);
    expect(b.t.counters.badFrame).toBe(1);
  });

  it('reassembles frames split across arbitrary TCP chunks', async () => {
    const c = clientPeer(0);
    const b = node(1, [c]);
    const port = await b.t.listen(0);
    const s = await rawConnect(port);
    const frames = [encodeFrame(key(c, 1), encodeHello(c, 1))];
    for (let i = 0; i < 20; i++) frames.push(encodeFrame(key(c, 1), Buffer.alloc(1000 + i * 517, i)));
    const all = Buffer.concat(frames);
    // Dribble the stream out in chunks of awkward sizes.
    for (let off = 0, step = 1; off < all.length; off += step, step = (step * 7 + 3) % 4099) {
      s.write(all.subarray(off, off + step));
      if (off % 5 === 0) await new Promise((r) => setImmediate(r));
    }
    await until(() => b.got.length === 20, 'all frames');
    expect(b.got.map(([, p]) => p.length)).toEqual(Array.from({ length: 20 }, (_, i) => 1000 + i * 517));
    expect(b.t.counters.badMac + b.t.counters.badFrame).toBe(0);
  });

  it('re-dials after the connection drops, and the newest connection replaces the old one', async () => {
    const a = node(0, [1]);
    const b = node(1, [0]);
    const port = await b.t.listen(0);
    a.t.dial(1, '127.0.0.1', port);
    await until(() => b.t.isConnected(0), 'first connection');
    // Cut the link from the accepting side.
    (b.t as unknown as { connections: Map<Peer, { socket: net.Socket }> }).connections.get(0)!.socket.destroy();
    await until(() => b.t.counters.connectionsAccepted === 2 && b.t.isConnected(0) && a.t.isConnected(1), 'reconnect');
    a.t.send(1, Buffer.from('after reconnect'));
    await until(() => b.got.length === 1, 'frame after reconnect');
    expect(a.t.counters.connectionsLost).toBe(1);
  });

  it('counts frames to a peer with no connection as unroutable instead of buffering them', () => {
    const a = node(0, [1, 2]);
    expect(a.t.send(2, Buffer.from('x'))).toBe(false);
    expect(a.t.counters.unroutable).toBe(1);
  });

  it('reports congestion and drops frames beyond the queue bound when the peer stops reading', async () => {
    const events: boolean[] = [];
    const a = node(0, [1], { onCongestion: (c) => events.push(c) }, { high: 64 * 1024, max: 1024 * 1024 });
    // A peer that completes the handshake at TCP level but never reads.
    const server = net.createServer((s) => {
      sockets.push(s);
      s.pause();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as net.AddressInfo).port;
    try {
      a.t.dial(1, '127.0.0.1', port);
      await until(() => a.t.isConnected(1), 'dialled');
      const payload = Buffer.alloc(64 * 1024);
      for (let round = 0; round < 200 && a.t.counters.queueFull === 0; round++) {
        for (let i = 0; i < 16; i++) a.t.send(1, payload);
        await new Promise((r) => setImmediate(r));
      }
      expect(events[0]).toBe(true);
      expect(a.t.counters.queueFull).toBeGreaterThan(0);
      // Memory stays bounded: what is queued is within the bound plus one burst.
      const queued = (a.t as unknown as { connections: Map<Peer, { queuedBytes: number }> }).connections.get(1)!.queuedBytes;
      expect(queued).toBeLessThan(1024 * 1024 + 17 * 64 * 1024 + 4 * 1024 * 1024);
    } finally {
      await a.t.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(() => r(undefined)));
    }
  });
});

describe('FrameReader', () => {
  it('delivers every frame exactly, whatever the chunk boundaries (randomized; seed printed on failure)', () => {
    for (let seed = 1; seed <= 200; seed++) {
      const rng = new Rng(seed);
      const payloads = Array.from({ length: 1 + rng.nextInt(30) }, (_, i) =>
        Buffer.alloc(rng.nextInt(3) === 0 ? rng.nextInt(70_000) : rng.nextInt(300), i + 1),
      );
      const stream = Buffer.concat(payloads.map((p) => encodeFrame(Buffer.alloc(32, 9), p)));
      const reader = new FrameReader(1 << 20);
      const got: Buffer[] = [];
      for (let off = 0; off < stream.length; ) {
        const size = rng.nextInt(4) === 0 ? 1 + rng.nextInt(5) : 1 + rng.nextInt(100_000);
        const ok = reader.push(stream.subarray(off, off + size), (bytes, macAt, payload) => {
          // The MAC handed over is the frame's (encodeFrame's key: 32 bytes of 9).
          expect(bytes.subarray(macAt, macAt + 32).equals(computeMac(Buffer.alloc(32, 9), payload)), `seed=${seed}`).toBe(true);
          got.push(Buffer.from(payload));
          return true;
        });
        expect(ok, `seed=${seed}`).toBe(true);
        off += size;
      }
      expect(got.length, `seed=${seed}`).toBe(payloads.length);
      got.forEach((g, i) => expect(g.equals(payloads[i]!), `seed=${seed} frame ${i}`).toBe(true));
    }
  });

  it('refuses a length out of bounds even when the length itself is split across chunks', () => {
    const reader = new FrameReader(1000);
    const bad = Buffer.alloc(4);
    bad.writeUInt32BE(5000, 0);
    expect(reader.push(bad.subarray(0, 2), () => true)).toBe(true);
    expect(reader.push(bad.subarray(2), () => true)).toBe(false);
    const tooShort = Buffer.alloc(4);
    tooShort.writeUInt32BE(3, 0);
    expect(new FrameReader(1000).push(tooShort, () => true)).toBe(false);
  });
});

/** The MAC of `payload` as a new buffer; `digest` gives the SHA-256 of a long payload (the transport writes MACs in place). */
function macOf(mac: FrameMac, payload: Buffer, digest: (payload: Buffer) => Buffer = payloadDigest): Buffer {
  const out = Buffer.alloc(MAC_BYTES);
  mac.into(payload, out, 0, (p, o, at) => {
    o[at] = 1;
    digest(p).copy(o, at + 1);
  });
  return out;
}

describe('frame MACs', () => {
  it('FrameMac is HMAC-SHA256 (RFC 2104) of 0x00 || payload below 1 KB and of 0x01 || SHA-256(payload) from 1 KB, for keys shorter and longer than a block', () => {
    for (const keyBytes of [16, 32, 64, 65, 100]) {
      const k = Buffer.alloc(keyBytes);
      for (let i = 0; i < keyBytes; i++) k[i] = (i * 37 + keyBytes) & 0xff;
      const mac = new FrameMac(k);
      for (const len of [0, 1, 55, 64, MAC_DIGEST_FROM - 1, MAC_DIGEST_FROM, 8_300]) {
        const payload = Buffer.alloc(len, len & 0xff);
        const digest = createHash('sha256').update(payload).digest();
        const input = len < 1024 ? Buffer.concat([Buffer.from([0]), payload]) : Buffer.concat([Buffer.from([1]), digest]);
        const want = createHmac('sha256', k).update(input).digest();
        expect(payloadDigest(payload).equals(digest)).toBe(true);
        expect(macOf(mac, payload).equals(want), `key ${keyBytes} B, payload ${len} B`).toBe(true);
        expect(computeMac(k, payload).equals(want)).toBe(true);
      }
    }
  });

  it('differs per key and per payload, and the MAC of a long payload is not the MAC of its digest sent as a payload', () => {
    const p = Buffer.from('propose');
    expect(macOf(new FrameMac(Buffer.alloc(32, 1)), p).equals(macOf(new FrameMac(Buffer.alloc(32, 2)), p))).toBe(false);
    const m = new FrameMac(Buffer.alloc(32, 1));
    expect(macOf(m, p).equals(macOf(m, Buffer.from('proposf')))).toBe(false);
    const long = Buffer.alloc(5_000, 3);
    expect(macOf(m, long).equals(macOf(m, payloadDigest(long)))).toBe(false);
    expect(macOf(m, long).equals(macOf(m, Buffer.concat([Buffer.from([1]), payloadDigest(long)])))).toBe(false);
  });

  it('uses the digest it is given for a long payload (a broadcast hashes its payload once)', () => {
    const m = new FrameMac(Buffer.alloc(32, 4));
    const long = Buffer.alloc(4_000, 6);
    let calls = 0;
    const digest = (x: Buffer): Buffer => {
      calls++;
      return payloadDigest(x);
    };
    expect(macOf(m, long, digest).equals(macOf(m, long))).toBe(true);
    expect(macOf(m, Buffer.alloc(10), digest).length).toBe(32);
    expect(calls).toBe(1);
  });

  it('a broadcast of one payload authenticates to every peer (one digest, one MAC per pair), then a different payload does too', async () => {
    const a = node(0, [1, 2, 3]);
    const peers = [1, 2, 3].map((p) => node(p, [0]));
    for (const [i, b] of peers.entries()) a.t.dial(i + 1, '127.0.0.1', await b.t.listen(0));
    await until(() => peers.every((b) => b.t.isConnected(0)) && [1, 2, 3].every((p) => a.t.isConnected(p)), 'connections');
    const big = Buffer.alloc(8_300, 'a');
    const big2 = Buffer.alloc(2_000, 'b');
    for (const p of [1, 2, 3]) a.t.send(p, big);
    for (const p of [1, 2, 3]) a.t.send(p, Buffer.from(`small ${p}`));
    for (const p of [1, 2, 3]) a.t.send(p, big2);
    for (const p of [1, 2, 3]) a.t.send(p, big);
    await until(() => peers.every((b) => b.got.length === 4), 'frames');
    for (const [i, b] of peers.entries()) {
      expect(b.t.counters.badMac).toBe(0);
      expect(b.got.map(([, x]) => x)).toEqual([big.toString(), `small ${i + 1}`, big2.toString(), big.toString()]);
    }
  });
});

/** A stand-in for replica/messages.ts: payloads of type 7 carry a batch whose u32 length prefix is at offset 1. */
let bodyDigests = 0;
const locator: BatchLocator = {
  bodyAt: (p) => (p.length >= 5 && p[0] === 7 ? 5 : -1),
  bodyDigestInto: (p, start, end, out, offset) => {
    bodyDigests++;
    createHash('sha256').update(p.subarray(start, end)).digest().copy(out, offset);
  },
};
/** A carrier: type 7, the body's length, the body, then `after`. */
function carrier(body: Buffer, after: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head[0] = 7;
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body, after]);
}

describe('frame MACs through a batch digest', () => {
  const k = Buffer.alloc(32, 0x42);
  const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

  it('a carrier is MACed as HMAC-SHA256 of 0x02 || SHA-256(bytes before the body || SHA-256(body) || bytes after it)', () => {
    const body = Buffer.alloc(6_000, 0x33);
    const after = Buffer.alloc(64, 0x55);
    const p = carrier(body, after);
    const input = Buffer.concat([Buffer.from([2]), sha(Buffer.concat([p.subarray(0, 5), sha(body), after]))]);
    const want = createHmac('sha256', k).update(input).digest();
    const scratch = Buffer.alloc(2048);
    const got = Buffer.alloc(33);
    expect(batchMacDigestInto(locator, scratch, p, got, 0)).toBe(true);
    expect(got.equals(input)).toBe(true);
    const out = Buffer.alloc(32);
    new FrameMac(k).into(p, out, 0, (x, o, at) => void batchMacDigestInto(locator, scratch, x, o, at));
    expect(out.equals(want)).toBe(true);
    // Not the plain MAC of the same payload, and every byte counts: before, in and after the body.
    expect(out.equals(computeMac(k, p))).toBe(false);
    for (const at of [0, 3, 5, 3_000, p.length - 1]) {
      const q = Buffer.from(p);
      q[at]! ^= 1;
      const o = Buffer.alloc(33);
      if (batchMacDigestInto(locator, scratch, q, o, 0)) expect(o.equals(input), `byte ${at} flipped`).toBe(false);
      else expect(at, 'only a changed length prefix may leave the batch form').toBeLessThan(5);
    }
  });

  it('falls back to 0x01 || SHA-256(payload) for a payload with no batch, a length running past its end, or over 1 KB around the batch', () => {
    const scratch = Buffer.alloc(2048);
    const o = Buffer.alloc(33);
    expect(batchMacDigestInto(locator, scratch, Buffer.alloc(3_000, 1), o, 0)).toBe(false);
    const overrun = carrier(Buffer.alloc(2_000), Buffer.alloc(0));
    overrun.writeUInt32BE(2_001, 1);
    expect(batchMacDigestInto(locator, scratch, overrun, o, 0)).toBe(false);
    expect(batchMacDigestInto(locator, scratch, carrier(Buffer.alloc(2_000), Buffer.alloc(1_100)), o, 0)).toBe(false);
    expect(batchMacDigestInto(locator, scratch, carrier(Buffer.alloc(2_000), Buffer.alloc(1_000)), o, 0)).toBe(true);
  });

  it('two transports given the locator deliver carriers (one body digest per payload sent, one per payload received); one without it rejects them', async () => {
    const a = node(0, [1, 2], {}, { batch: locator });
    const b = node(1, [0], {}, { batch: locator });
    const plain = node(2, [0]);
    a.t.dial(1, '127.0.0.1', await b.t.listen(0));
    a.t.dial(2, '127.0.0.1', await plain.t.listen(0));
    await until(() => b.t.isConnected(0) && plain.t.isConnected(0) && a.t.isConnected(1) && a.t.isConnected(2), 'connections');
    bodyDigests = 0;
    const p1 = carrier(Buffer.alloc(7_000, 'x'), Buffer.alloc(64, 's'));
    const p2 = carrier(Buffer.alloc(1_500, 'y'), Buffer.alloc(64, 't'));
    for (const p of [p1, p2]) for (const to of [1, 2]) a.t.send(to, p);
    await until(() => b.got.length === 2 && plain.t.counters.badMac === 2, 'frames');
    expect(b.t.counters.badMac).toBe(0);
    expect(b.got.map(([, x]) => x)).toEqual([p1.toString(), p2.toString()]);
    expect(plain.got).toEqual([]);
    expect(bodyDigests).toBe(4);
  });
});

describe('OutputQueue', () => {
  const key = Buffer.alloc(32, 5);
  const mac = new FrameMac(key);

  it('lays frames out as on the wire: large payloads by reference, each run of headers and small payloads as one piece', () => {
    const big1 = Buffer.alloc(8_300, 1);
    const big2 = Buffer.alloc(1024, 2);
    const payloads = [big1, Buffer.alloc(100, 3), Buffer.alloc(1023, 5), big2];
    const q = new OutputQueue();
    for (const p of payloads) q.push(p, mac);
    expect(q.bytes).toBe(payloads.reduce((s, p) => s + 36 + p.length, 0));
    const parts = q.take();
    expect(parts.length).toBe(4);
    expect(parts[1]).toBe(big1);
    expect(parts[3]).toBe(big2);
    expect(parts[0]!.length).toBe(36);
    expect(parts[2]!.length).toBe(36 + 100 + 36 + 1023 + 36);
    expect(Buffer.concat(parts).equals(Buffer.concat(payloads.map((p) => encodeFrame(key, p))))).toBe(true);
    expect(q.bytes).toBe(0);
    expect(q.take()).toEqual([]);
  });

  it('randomized: the pieces of every take are the frames encoded, and bytes handed out never change (seed printed on failure)', () => {
    for (let seed = 1; seed <= 100; seed++) {
      const rng = new Rng(seed);
      const q = new OutputQueue();
      const taken: { parts: Buffer[]; copy: Buffer }[] = [];
      for (let round = 0; round < 5; round++) {
        const payloads = Array.from({ length: rng.nextInt(40) }, (_, i) => Buffer.alloc(rng.nextInt(2) ? rng.nextInt(1100) : rng.nextInt(70_000), i));
        for (const p of payloads) q.push(p, mac);
        const parts = q.take();
        const want = Buffer.concat(payloads.map((p) => encodeFrame(key, p)));
        expect(Buffer.concat(parts).equals(want), `seed=${seed} round ${round}`).toBe(true);
        // No two small pieces next to each other: every run was one piece.
        for (let i = 1; i < parts.length; i++) expect(parts[i - 1]!.length >= 1024 || parts[i]!.length >= 1024, `seed=${seed}`).toBe(true);
        taken.push({ parts, copy: Buffer.from(want) });
      }
      // Later frames were written after (or beside) the pieces handed out, never over them.
      for (const t of taken) expect(Buffer.concat(t.parts).equals(t.copy), `seed=${seed}`).toBe(true);
    }
  });
});
