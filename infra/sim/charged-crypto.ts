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

/**
 * The 64-bit state (two 32-bit lanes) of the last mix, in a typed array rather than a returned
 * pair (a digest is made for every block and request, and a pair per call was garbage) or
 * module variables (V8 boxes a 32-bit value that is not a small integer in those).
 */
const ST = new Int32Array(2);

/** A multiply-xor hash of `data` from the state (h1, h2), left in ST. */
function mix(data: Uint8Array, h1: number, h2: number): void {
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
    h2 = (Math.imul(h2 ^ data[i]!, 0x85ebca77) + h1) | 0;
  }
  ST[0] = h1 ^ n;
  ST[1] = h2 ^ Math.imul(n, 0xc2b2ae3d);
}

/** Reused for mixParts: the parts laid end to end, so their words are mix()'s own. */
let partsScratch = new Uint8Array(1024);

/** mix() over the concatenation of `parts`: copied into one reused buffer (no allocation once it is large enough). */
function mixParts(parts: readonly Uint8Array[], h1: number, h2: number): void {
  if (parts.length === 1) {
    mix(parts[0]!, h1, h2);
    return;
  }
  let total = 0;
  for (const p of parts) total += p.length;
  if (partsScratch.length < total) partsScratch = new Uint8Array(Math.max(total, 2 * partsScratch.length));
  let at = 0;
  for (const p of parts) {
    partsScratch.set(p, at);
    at += p.length;
  }
  mix(partsScratch.subarray(0, total), h1, h2);
}

/** Murmur3's finalizer: every input bit reaches every output bit, and it is a bijection. */
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * Output words from the state ST: words 0 and 1 are a bijection of the state (so different
 * states give different outputs), and each later word one finalizer round of the word two back.
 * The i-th word given the one two back, `prev`.
 */
function nextWord(prev: number, i: number): number {
  return fmix((prev + Math.imul(i, 0x6a09e667)) | 0);
}

/** The output words of the last fillWords (enough for a signature, the longest output). */
const WORDS = new Uint32Array(Math.max(DIGEST_BYTES, SIGNATURE_BYTES) / 4);

/** The first `bytes` / 4 output words of the state ST into WORDS (`bytes` a multiple of 8). */
function fillWords(bytes: number): void {
  let a = fmix(ST[0]!);
  let b = fmix(ST[1]! ^ a);
  for (let i = 0; i < bytes; i += 8) {
    if (i > 0) {
      a = nextWord(a, i);
      b = nextWord(b, i + 4);
    }
    WORDS[i >>> 2] = a;
    WORDS[(i >>> 2) + 1] = b;
  }
}

/** `bytes` (a multiple of 8) bytes from the state ST, little-endian words. */
function expand(bytes: number): Buffer {
  fillWords(bytes);
  const out = Buffer.allocUnsafe(bytes);
  for (let i = 0; i < bytes; i += 4) {
    const w = WORDS[i >>> 2]!;
    out[i] = w & 0xff;
    out[i + 1] = (w >>> 8) & 0xff;
    out[i + 2] = (w >>> 16) & 0xff;
    out[i + 3] = w >>> 24;
  }
  return out;
}

/** Whether `tag` is exactly expand(tag.length) of the state ST, without building it. */
function matches(tag: Uint8Array, bytes: number): boolean {
  if (tag.length !== bytes) return false;
  fillWords(bytes);
  for (let i = 0; i < bytes; i += 4) if (readU32(tag, i) !== WORDS[i >>> 2]) return false;
  return true;
}

function readU32(t: Uint8Array, i: number): number {
  return (t[i]! | (t[i + 1]! << 8) | (t[i + 2]! << 16) | (t[i + 3]! << 24)) >>> 0;
}

const SEED1 = 0x243f6a88;
const SEED2 = 0x13198a2e;

const seed1 = (key: number): number => SEED1 ^ key;
const seed2 = (key: number): number => (SEED2 + Math.imul(key, 0x27d4eb2f)) | 0;

function fastDigest(data: Uint8Array, key = 0): Buffer {
  mix(data, seed1(key), seed2(key));
  return expand(DIGEST_BYTES);
}

/** The MAC key's number (odd, so never the plain digest's 0). */
function macKey(key: Uint8Array): number {
  mix(key, SEED1, SEED2);
  return ST[0]! | 1;
}

/** See the module comment. One instance per simulation: it numbers the keys it hands out. */
export class ChargedCrypto implements CryptoProvider {
  readonly name: CryptoProviderName = 'sim';
  /** Key number by public key (hex): a verifier finds its signer's key as SimCrypto does. */
  private readonly keyByPublicKey = new Map<string, number>();

  /**
   * @param rememberAccepted whether verifiers remember what they accepted (see verifier): only
   * worth it where the simulator shares decoded messages; elsewhere no lookup can hit and every
   * accepted signature would only fill a WeakMap.
   */
  constructor(private readonly rememberAccepted = true) {}

  digest(data: Uint8Array): Buffer {
    return fastDigest(data);
  }

  /** As SHA-256's: the digest of the concatenation, however it is split. */
  digestParts(parts: readonly Uint8Array[]): Buffer {
    mixParts(parts, seed1(0), seed2(0));
    return expand(DIGEST_BYTES);
  }

  mac(key: Uint8Array, data: Uint8Array): Buffer {
    return fastDigest(data, macKey(key));
  }

  /** mac() compared with `tag` without building it. */
  macVerify(key: Uint8Array, data: Uint8Array, tag: Uint8Array): boolean {
    const k = macKey(key);
    mix(data, seed1(k), seed2(k));
    return matches(tag, DIGEST_BYTES);
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

  /**
   * A verifier remembers the signatures it accepted, with the message object each was over: the
   * simulator hands one decoded PROPOSE to every backup (simulator.ts shareDecoded), so n - 1
   * replicas verify the same request's signature over the same bytes, and all but the first get
   * the answer the first got. Only the same objects hit (never mutated: decoded messages are
   * read-only), so the answer is what verifying again would give; the cost model still counts
   * every call (CountingCrypto wraps this provider).
   */
  verifier(publicKey: Uint8Array): Verifier {
    const pub = Buffer.from(publicKey);
    const key = this.keyByPublicKey.get(pub.toString('hex'));
    const accepted = this.rememberAccepted ? new WeakMap<Uint8Array, Uint8Array>() : undefined;
    return {
      publicKey: pub,
      verify: (message, sig) => {
        if (key === undefined) return false;
        if (accepted?.get(sig) === message) return true;
        signatureState(message, key);
        if (!matches(sig, SIGNATURE_BYTES)) return false;
        accepted?.set(sig, message);
        return true;
      },
    };
  }
}

/** The keyed 64-bit hash of a message that its stand-in signature expands, left in ST. */
function signatureState(message: Uint8Array, key: number): void {
  mix(message, SEED1 ^ Math.imul(key, 0x9e3779b1), SEED2 ^ Math.imul(key, 0x85ebca77));
}

/** A 64-byte stand-in signature: a keyed 64-bit hash of the message, expanded. */
function signature(message: Uint8Array, key: number): Buffer {
  signatureState(message, key);
  return expand(SIGNATURE_BYTES);
}
