/**
 * The crypto providers (DESIGN.md "Protocols": Ed25519 client signatures, HMAC-SHA256 MACs,
 * SHA-256 digests). `node` and `noble` must be interchangeable byte for byte: each verifies the
 * other's signatures and MACs. `sim` must reject exactly what Ed25519 would reject.
 */
import { describe, expect, it } from 'vitest';
import { createCrypto, MAC_BYTES, PUBLIC_KEY_BYTES, SIGNATURE_BYTES, type CryptoProvider } from './crypto.js';

const hex = (s: string): Buffer => Buffer.from(s, 'hex');

// RFC 8032 §7.1, test 1 (empty message) and test 2 (one byte).
const RFC8032 = [
  {
    secret: '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60',
    publicKey: 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a',
    message: '',
    signature: 'e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b',
  },
  {
    secret: '4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb',
    publicKey: '3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c',
    message: '72',
    signature: '92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00',
  },
];

const node = createCrypto('node');
const noble = createCrypto('noble');
const REAL: readonly CryptoProvider[] = [node, noble];

describe.each(REAL.map((p) => [p.name, p] as const))('%s provider', (_name, provider) => {
  it('signs the RFC 8032 test vectors', () => {
    for (const v of RFC8032) {
      const signer = provider.signer(hex(v.secret));
      expect(signer.publicKey.toString('hex')).toBe(v.publicKey);
      expect(signer.sign(hex(v.message)).toString('hex')).toBe(v.signature);
      expect(provider.verifier(hex(v.publicKey)).verify(hex(v.message), hex(v.signature))).toBe(true);
    }
  });

  it('computes SHA-256 and HMAC-SHA256 test vectors', () => {
    expect(provider.digest(Buffer.from('abc')).toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    // RFC 4231 test case 2.
    const tag = provider.mac(Buffer.from('Jefe'), Buffer.from('what do ya want for nothing?'));
    expect(tag.toString('hex')).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    expect(tag.length).toBe(MAC_BYTES);
  });

  it('digestParts equals the digest of the concatenation', () => {
    const parts = [Buffer.from('a'), Buffer.alloc(0), Buffer.from('bc'), Buffer.alloc(1000, 9)];
    expect(provider.digestParts(parts).equals(provider.digest(Buffer.concat(parts)))).toBe(true);
  });

  it('rejects a signature over other bytes, by another key, altered, or of the wrong length', () => {
    const a = provider.signer(Buffer.alloc(32, 1));
    const b = provider.signer(Buffer.alloc(32, 2));
    const msg = Buffer.from('batch of writes');
    const sig = a.sign(msg);
    const va = provider.verifier(a.publicKey);
    expect(va.verify(msg, sig)).toBe(true);
    expect(va.verify(Buffer.from('batch of writez'), sig)).toBe(false);
    expect(provider.verifier(b.publicKey).verify(msg, sig)).toBe(false);
    expect(va.verify(msg, b.sign(msg))).toBe(false);
    for (const bit of [0, 100, 255, 300, 511]) {
      const altered = Buffer.from(sig);
      altered[bit >> 3]! ^= 1 << (bit & 7);
      expect(va.verify(msg, altered), `bit ${bit} flipped`).toBe(false);
    }
    expect(va.verify(msg, sig.subarray(0, SIGNATURE_BYTES - 1))).toBe(false);
    expect(va.verify(msg, Buffer.concat([sig, Buffer.alloc(1)]))).toBe(false);
    // Garbage of the right length is a rejection, never an exception.
    expect(va.verify(msg, Buffer.alloc(SIGNATURE_BYTES, 0xff))).toBe(false);
    expect(va.verify(msg, Buffer.alloc(SIGNATURE_BYTES))).toBe(false);
  });

  it('rejects a MAC under another key, over other bytes, or of the wrong length', () => {
    const key = Buffer.alloc(32, 5);
    const data = Buffer.from('SUPPORT');
    const tag = provider.mac(key, data);
    expect(provider.macVerify(key, data, tag)).toBe(true);
    expect(provider.macVerify(Buffer.alloc(32, 6), data, tag)).toBe(false);
    expect(provider.macVerify(key, Buffer.from('SUPPORU'), tag)).toBe(false);
    expect(provider.macVerify(key, data, tag.subarray(1))).toBe(false);
    expect(provider.macVerify(key, data, Buffer.alloc(0))).toBe(false);
  });

  it('refuses keys of the wrong length', () => {
    expect(() => provider.signer(Buffer.alloc(31))).toThrow(RangeError);
    expect(() => provider.verifier(Buffer.alloc(PUBLIC_KEY_BYTES + 1))).toThrow(RangeError);
  });
});

describe('node and noble are interchangeable', () => {
  it('derive the same public key and the same (deterministic) signatures', () => {
    for (let i = 0; i < 8; i++) {
      const seed = node.digest(Buffer.from(`seed ${i}`));
      const msg = node.digest(Buffer.from(`message ${i}`)).subarray(0, i * 4);
      const sn = node.signer(seed);
      const sb = noble.signer(seed);
      expect(sn.publicKey.equals(sb.publicKey), `seed ${i}`).toBe(true);
      expect(sn.sign(msg).equals(sb.sign(msg)), `seed ${i}`).toBe(true);
    }
  });

  it("each verifies the other's signatures and rejects the other's forgeries", () => {
    const msg = Buffer.from('client batch');
    for (const [signing, verifying] of [
      [node, noble],
      [noble, node],
    ] as const) {
      const s = signing.signer(Buffer.alloc(32, 9));
      const sig = s.sign(msg);
      const v = verifying.verifier(s.publicKey);
      expect(v.verify(msg, sig), `${signing.name} -> ${verifying.name}`).toBe(true);
      expect(v.verify(Buffer.from('client batcH'), sig)).toBe(false);
      expect(verifying.verifier(signing.signer(Buffer.alloc(32, 8)).publicKey).verify(msg, sig)).toBe(false);
    }
  });

  it("compute identical digests and MACs, and accept each other's MACs", () => {
    const key = Buffer.alloc(32, 0x42);
    for (const len of [0, 1, 55, 56, 64, 1000]) {
      const data = Buffer.alloc(len, len & 0xff);
      expect(node.digest(data).equals(noble.digest(data))).toBe(true);
      expect(node.mac(key, data).equals(noble.mac(key, data))).toBe(true);
      expect(noble.macVerify(key, data, node.mac(key, data))).toBe(true);
      expect(node.macVerify(key, data, noble.mac(key, data))).toBe(true);
    }
  });
});

describe('sim provider', () => {
  const sim = createCrypto('sim');

  it('verifies its own signatures', () => {
    const s = sim.signer(Buffer.alloc(32, 1));
    const msg = Buffer.from('request');
    expect(s.publicKey.length).toBe(PUBLIC_KEY_BYTES);
    const sig = s.sign(msg);
    expect(sig.length).toBe(SIGNATURE_BYTES);
    expect(sim.verifier(s.publicKey).verify(msg, sig)).toBe(true);
  });

  it('rejects a signature by another key or over other bytes, as Ed25519 would', () => {
    const a = sim.signer(Buffer.alloc(32, 1));
    const b = sim.signer(Buffer.alloc(32, 2));
    const msg = Buffer.from('request');
    const va = sim.verifier(a.publicKey);
    expect(va.verify(msg, b.sign(msg))).toBe(false);
    expect(sim.verifier(b.publicKey).verify(msg, a.sign(msg))).toBe(false);
    expect(va.verify(Buffer.from('requesT'), a.sign(msg))).toBe(false);
    const altered = Buffer.from(a.sign(msg));
    altered[63]! ^= 1;
    expect(va.verify(msg, altered)).toBe(false);
    expect(va.verify(msg, a.sign(msg).subarray(0, 32))).toBe(false);
  });

  it('rejects signatures for a public key it never issued', () => {
    const other = createCrypto('sim');
    const s = other.signer(Buffer.alloc(32, 1));
    // The registry is per provider: a key made elsewhere is unknown, whatever it signed.
    expect(sim.verifier(Buffer.alloc(PUBLIC_KEY_BYTES, 7)).verify(Buffer.from('x'), s.sign(Buffer.from('x')))).toBe(false);
  });

  it("shares node's digests and MACs", () => {
    const data = Buffer.from('state');
    expect(sim.digest(data).equals(node.digest(data))).toBe(true);
    expect(sim.mac(Buffer.alloc(32), data).equals(node.mac(Buffer.alloc(32), data))).toBe(true);
  });
});
