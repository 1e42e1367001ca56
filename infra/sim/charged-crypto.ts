/**
 * Crypto charged, not computed (issue 12 item 1: "When no node is Byzantine, crypto may be
 * charged without being computed, so large sweeps run fast"). A CryptoProvider for simulations
 * in which every replica and client follows its protocol: it answers every call as a real
 * provider would for honest callers, but spends a few non-cryptographic multiply-xor rounds
 * instead of SHA-256, HMAC or Ed25519.
 *
 * What it keeps, because the cores depend on it:
 * - Digests are 32 bytes and equal for equal input; for different input they differ except
 *   with the probability of a 64-bit hash collision (2^-64 per pair; with the ~10^6 digests of
 *   a large run, about 10^-8 per run). Cores compare digests for equality only.
 * - A signature made by a signer verifies under its public key over the same bytes, and fails
 *   under another key or over other bytes (to the same 64-bit bound); likewise MACs. So an
 *   honest run takes exactly the branches it would take with real crypto (same accepted
 *   batches, same ledgers: charged-crypto.test.ts checks it per seed).
 *
 * What it gives up: anyone can forge (the tag is a keyed hash, not a MAC; keys are small
 * integers). That is why the simulator uses it only when no replica has a Byzantine fault
 * (simulator.ts `cryptoMode`), and Byzantine scenarios and twins always compute real crypto.
 *
 * The cost model still charges every call: the simulator wraps this provider in
 * CountingCrypto exactly as it wraps the computing one, so the counts (calls and bytes) a
 * step reports are the same whichever provider answered.
 */
import { DIGEST_BYTES, type CryptoProvider, type CryptoProviderName, type Signer, type Verifier, SIGNATURE_BYTES } from '../../replica/crypto.js';

/** Two 32-bit lanes of a multiply-xor hash over `data`, continuing from (h1, h2). */
function mix(data: Uint8Array, h1: number, h2: number): [number, number] {
  const n = data.length;
  const words = n & ~3;
  let i = 0;
  for (; i < words; i += 4) {
    const w = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    h1 = Math.imul(h1 ^ w, 0x9e3779b1);
    h1 = (h1 << 13) | (h1 >>> 19);
    h2 = Math.imul(h2 ^ w, 0x85ebca77);
    h2 = (h2 << 17) | (h2 >>> 15);
    h2 = (h2 + h1) | 0;
  }
  for (; i < n; i++) {
    h1 = Math.imul(h1 ^ data[i]!, 0x9e3779b1);
    h2 = Math.imul(h2 ^ data[i]!, 0x85ebca77) + h1;
  }
  return [h1 ^ n, h2 ^ Math.imul(n, 0xc2b2ae3d)];
}

/** Murmur3's finalizer: every input bit reaches every output bit. */
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** The i-th 32-bit output word of the 64-bit state (h1, h2). */
function word(h1: number, h2: number, i: number): number {
  const a = fmix((h1 + Math.imul(i + 1, 0x6a09e667)) | 0);
  return fmix((a ^ h2) + Math.imul(i + 1, 0xbb67ae85)) ^ a;
}

/** `bytes` (a multiple of 4) bytes from the 64-bit state (h1, h2), little-endian words. */
function expand(h1: number, h2: number, bytes: number): Buffer {
  const out = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i += 4) {
    const w = word(h1, h2, i >> 2);
    out[i] = w & 0xff;
    out[i + 1] = (w >>> 8) & 0xff;
    out[i + 2] = (w >>> 16) & 0xff;
    out[i + 3] = w >>> 24;
  }
  return out;
}

/** Whether `tag` is exactly expand(h1, h2, tag.length), without building it. */
function matches(h1: number, h2: number, tag: Uint8Array, bytes: number): boolean {
  if (tag.length !== bytes) return false;
  for (let i = 0; i < bytes; i += 4) {
    const w = word(h1, h2, i >> 2);
    if (tag[i] !== (w & 0xff) || tag[i + 1] !== ((w >>> 8) & 0xff) || tag[i + 2] !== ((w >>> 16) & 0xff) || tag[i + 3] !== w >>> 24) return false;
  }
  return true;
}

const SEED1 = 0x243f6a88;
const SEED2 = 0x13198a2e;

function fastDigest(data: Uint8Array, key = 0): Buffer {
  const [h1, h2] = mix(data, SEED1 ^ key, SEED2 + Math.imul(key, 0x27d4eb2f));
  return expand(h1, h2, DIGEST_BYTES);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** See the module comment. One instance per simulation: it numbers the keys it hands out. */
export class ChargedCrypto implements CryptoProvider {
  readonly name: CryptoProviderName = 'sim';
  /** Key number by public key (hex): a verifier finds its signer's key as SimCrypto does. */
  private readonly keyByPublicKey = new Map<string, number>();

  digest(data: Uint8Array): Buffer {
    return fastDigest(data);
  }

  /** As SHA-256's: the digest of the concatenation, however it is split. */
  digestParts(parts: readonly Uint8Array[]): Buffer {
    return fastDigest(parts.length === 1 ? parts[0]! : Buffer.concat(parts));
  }

  mac(key: Uint8Array, data: Uint8Array): Buffer {
    const [k] = mix(key, SEED1, SEED2);
    return fastDigest(data, k | 1);
  }

  macVerify(key: Uint8Array, data: Uint8Array, tag: Uint8Array): boolean {
    return equalBytes(this.mac(key, data), tag);
  }

  signer(seed: Uint8Array): Signer {
    const publicKey = fastDigest(Buffer.concat([Buffer.from('poe-bench charged public key'), seed]));
    const hex = publicKey.toString('hex');
    let key = this.keyByPublicKey.get(hex);
    if (key === undefined) {
      key = this.keyByPublicKey.size + 1;
      this.keyByPublicKey.set(hex, key);
    }
    const k = key;
    return { publicKey, sign: (message) => signature(message, k) };
  }

  verifier(publicKey: Uint8Array): Verifier {
    const pub = Buffer.from(publicKey);
    const key = this.keyByPublicKey.get(pub.toString('hex'));
    return {
      publicKey: pub,
      verify: (message, sig) => key !== undefined && matches(...signatureState(message, key), sig, SIGNATURE_BYTES),
    };
  }
}

/** The keyed 64-bit hash of a message that its stand-in signature expands. */
function signatureState(message: Uint8Array, key: number): [number, number] {
  return mix(message, SEED1 ^ Math.imul(key, 0x9e3779b1), SEED2 ^ Math.imul(key, 0x85ebca77));
}

/** A 64-byte stand-in signature: a keyed 64-bit hash of the message, expanded. */
function signature(message: Uint8Array, key: number): Buffer {
  const [h1, h2] = signatureState(message, key);
  return expand(h1, h2, SIGNATURE_BYTES);
}
