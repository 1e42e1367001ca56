import { describe, expect, it } from 'vitest';
import { createCrypto } from './crypto.js';
import { CountingCrypto } from './crypto-counter.js';

describe('CountingCrypto', () => {
  it('counts every operation and the bytes it covered, and answers as the provider it wraps', () => {
    const c = new CountingCrypto(createCrypto('node'));
    const msg = Buffer.alloc(100, 7);
    const signer = c.signer(Buffer.alloc(32, 1));
    const sig = signer.sign(msg);
    expect(c.verifier(signer.publicKey).verify(msg, sig)).toBe(true);
    const tag = c.mac(Buffer.alloc(32, 2), msg);
    expect(c.macVerify(Buffer.alloc(32, 2), msg, tag)).toBe(true);
    c.digest(msg);
    c.digestParts([msg, msg]);
    expect(c.reset()).toEqual({
      signs: 1,
      signBytes: 100,
      verifies: 1,
      verifyBytes: 100,
      macs: 1,
      macBytes: 100,
      macVerifies: 1,
      macVerifyBytes: 100,
      digests: 2,
      digestBytes: 300,
    });
    expect(c.counts.signs).toBe(0);
  });
});
