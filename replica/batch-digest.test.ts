/**
 * A batch is hashed once per process (replica/messages.ts batchBodyAt, batchBodyDigestInto,
 * requestDigest): the transport MACs a carrier through its batch body's SHA-256, and the
 * request digest D(⟨T⟩c) (paper §3.1, §4(2)) reuses it. These tests check the offsets each
 * carrier declares, that the digest reused is SHA-256 of exactly the request's body, and that
 * a request whose bytes were not the ones hashed is hashed itself.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createCrypto } from './crypto.js';
import { CountingCrypto } from './crypto-counter.js';
import { KeyRing } from './keys.js';
import { batchBodyAt, batchBodyDigestInto, makeRequest, MSG_REQUEST, requestDigest, type ClientRequest } from './messages.js';
import { MSG_PROPOSE, poeCodec, type PoeMessage } from './poe-wire.js';
import { MSG_PRE_PREPARE, pbftCodec, type PbftMessage } from './pbft-wire.js';
import { MSG_ORDER_REQ, zyzzyvaCodec, type ZyzzyvaMessage } from './zyzzyva-wire.js';
import { hotstuffCodec, MSG_HS_PREPARE, MSG_HS_PROPOSAL, type HotStuffMessage } from './hotstuff-wire.js';
import type { MessageCodec, WireMessage } from './types.js';

const ring = new KeyRing(createCrypto('node'), 'batch-digest', 4, 1);
const signer = ring.clientSigner(0);
const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();

let reqNo = 0;
function request(writes = 100): ClientRequest {
  return makeRequest(
    signer,
    0,
    3,
    reqNo++,
    Array.from({ length: writes }, (_, i) => ({ key: i * 17, value: Buffer.alloc(64, (i + reqNo) & 0xff) })),
  );
}

const digest = Buffer.alloc(32, 9);
/** Every message type that carries one client batch, built around `req`. */
const carriers: { name: string; codec: MessageCodec<WireMessage>; make: (req: ClientRequest) => WireMessage }[] = [
  { name: 'REQUEST', codec: poeCodec as MessageCodec<WireMessage>, make: (req) => req },
  { name: 'PoE PROPOSE', codec: poeCodec as MessageCodec<WireMessage>, make: (request) => ({ type: MSG_PROPOSE, view: 3, k: 77, request }) as PoeMessage },
  {
    name: 'PBFT PRE-PREPARE',
    codec: pbftCodec as MessageCodec<WireMessage>,
    make: (request) => ({ type: MSG_PRE_PREPARE, replica: 2, view: 5, k: 1234, originView: 4, request }) as PbftMessage,
  },
  {
    name: 'Zyzzyva ORDER-REQ',
    codec: zyzzyvaCodec as MessageCodec<WireMessage>,
    make: (request) => ({ type: MSG_ORDER_REQ, view: 1, k: 9, history: Buffer.alloc(32, 1), digest, request }) as ZyzzyvaMessage,
  },
  {
    name: 'HotStuff PREPARE',
    codec: hotstuffCodec as MessageCodec<WireMessage>,
    make: (request) => ({ type: MSG_HS_PREPARE, leader: 3, view: 2, k: 41, request, justify: undefined, signature: Buffer.alloc(64, 5) }) as HotStuffMessage,
  },
  {
    name: 'chained HotStuff PROPOSAL',
    codec: hotstuffCodec as MessageCodec<WireMessage>,
    make: (request) =>
      ({
        type: MSG_HS_PROPOSAL,
        leader: 1,
        block: {
          view: 7,
          height: 12,
          parentHash: Buffer.alloc(32, 3),
          request,
          justify: { phase: 0, view: 6, k: 11, digest, sigs: [{ replica: 2, signature: Buffer.alloc(64, 6) }] },
        },
        signature: Buffer.alloc(64, 4),
      }) as HotStuffMessage,
  },
];

describe('a batch hashed once per process', () => {
  it('every carrier declares where its batch body lies: the bytes there are the request body', () => {
    for (const c of carriers) {
      const req = request();
      const payload = c.codec.encode(c.make(req));
      const start = batchBodyAt(payload);
      expect(start, c.name).toBeGreaterThan(0);
      const end = start + payload.readUInt32BE(start - 4);
      expect(payload.subarray(start, end).equals(req.body), c.name).toBe(true);
    }
    expect(batchBodyAt(Buffer.from([MSG_REQUEST]))).toBe(-1); // too short for its length prefix
    expect(batchBodyAt(Buffer.alloc(0))).toBe(-1);
    expect(batchBodyAt(Buffer.from([11, 0, 0, 0, 0, 0]))).toBe(-1); // PoE SUPPORT carries no batch
  });

  it('a received carrier: the body digest written is SHA-256 of the body, and the decoded request takes it without hashing again', () => {
    for (const c of carriers) {
      const sent = request();
      // As received: the payload's own bytes in a fresh buffer, as a socket read delivers them.
      const payload = Buffer.from(c.codec.encode(c.make(sent)));
      const start = batchBodyAt(payload);
      const end = start + payload.readUInt32BE(start - 4);
      const out = Buffer.alloc(40);
      batchBodyDigestInto(payload, start, end, out, 8);
      expect(out.subarray(8).equals(sha(sent.body)), c.name).toBe(true);
      const msg = c.codec.decode(payload) as WireMessage & { request?: ClientRequest; block?: { request: ClientRequest } };
      const got = msg.type === MSG_REQUEST ? (msg as ClientRequest) : (msg.request ?? msg.block!.request);
      const counting = new CountingCrypto(createCrypto('node'));
      expect(requestDigest(counting, got).equals(sha(sent.body)), c.name).toBe(true);
      expect(counting.counts.digests, `${c.name}: the digest was reused`).toBe(0);
    }
  });

  it('a request decoded right after its frame was hashed keeps the digest though other frames are hashed before it is digested', () => {
    // A PoE primary queues a REQUEST and digests it only when it proposes, after later frames.
    const a = Buffer.from(poeCodec.encode(request()));
    const b = Buffer.from(poeCodec.encode(request()));
    const hash = (p: Buffer): void => {
      const start = batchBodyAt(p);
      batchBodyDigestInto(p, start, start + p.readUInt32BE(start - 4), Buffer.alloc(32), 0);
    };
    hash(a);
    const queued = poeCodec.decode(a) as ClientRequest;
    hash(b);
    poeCodec.decode(b);
    const counting = new CountingCrypto(createCrypto('node'));
    expect(requestDigest(counting, queued).equals(sha(queued.body))).toBe(true);
    expect(counting.counts.digests).toBe(0);
  });

  it('a request whose body is not the bytes hashed last (another frame, or a copy) is hashed itself', () => {
    const a = Buffer.from(poeCodec.encode(request()));
    const b = Buffer.from(poeCodec.encode(request()));
    const start = batchBodyAt(a);
    batchBodyDigestInto(a, start, start + a.readUInt32BE(start - 4), Buffer.alloc(32), 0);
    const counting = new CountingCrypto(createCrypto('node'));
    const other = poeCodec.decode(b) as ClientRequest;
    expect(requestDigest(counting, other).equals(sha(other.body))).toBe(true);
    const copy = poeCodec.decode(Buffer.from(a)) as ClientRequest;
    expect(requestDigest(counting, copy).equals(sha(copy.body))).toBe(true);
    expect(counting.counts.digests).toBe(2);
  });

  it('a sent carrier whose request digest is known: the body digest comes from the request, and equals SHA-256 of the body', () => {
    for (const c of carriers) {
      const req = request();
      const known = requestDigest(createCrypto('node'), req);
      const payload = c.codec.encode(c.make(req));
      const start = batchBodyAt(payload);
      const out = Buffer.alloc(32);
      batchBodyDigestInto(payload, start, start + req.body.length, out, 0);
      expect(out.equals(known), c.name).toBe(true);
      expect(out.equals(sha(req.body)), c.name).toBe(true);
    }
  });
});
