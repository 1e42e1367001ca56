import { describe, expect, it } from 'vitest';
import { createCrypto } from '../../replica/crypto.js';
import { KeyRing } from '../../replica/keys.js';
import { makeRequest } from '../../replica/messages.js';
import { MSG_PROPOSE, poeCodec } from '../../replica/poe-wire.js';
import { macHashBytes } from './mac-bytes.js';

describe("the cost model's frame MAC bytes follow the transport's rule", () => {
  it('a batch carrier hashes the bytes around its body and the body digest once, later copies the 33-byte digest only', () => {
    const ring = new KeyRing(createCrypto('node'), 'mac-bytes', 4, 1);
    const request = makeRequest(
      ring.clientSigner(0),
      0,
      1,
      1,
      Array.from({ length: 100 }, (_, i) => ({ key: i, value: Buffer.alloc(64, i) })),
    );
    const propose = Buffer.from(poeCodec.encode({ type: MSG_PROPOSE, view: 0, k: 5, request }));
    const around = propose.length - request.body.length;
    expect(around).toBeLessThan(200);
    expect(macHashBytes(propose, true)).toBe(around + 32);
    expect(macHashBytes(propose, false)).toBe(33);
    // The client's request itself is a carrier too.
    const req = Buffer.from(poeCodec.encode(request));
    expect(macHashBytes(req, true)).toBe(req.length - request.body.length + 32);
  });

  it('a long payload that carries no batch is hashed whole once; a short one whole every time', () => {
    const long = Buffer.alloc(2000, 0xee); // type 0xee carries no batch
    expect(macHashBytes(long, true)).toBe(2000);
    expect(macHashBytes(long, false)).toBe(33);
    const vote = Buffer.alloc(120, 0xee);
    expect(macHashBytes(vote, true)).toBe(120);
    expect(macHashBytes(vote, false)).toBe(120);
  });
});
