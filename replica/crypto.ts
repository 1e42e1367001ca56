/**
 * Crypto behind one small interface (DESIGN.md "Protocols"): Ed25519 signatures for client
 * requests and HotStuff messages, MACs with pairwise keys for replica messages, SHA-256
 * digests.
 *
 * - `node` (default): node:crypto. On this machine it verifies Ed25519 about 14x faster and
 *   computes HMAC-SHA256 2-6x faster than the pure-JS libraries.
 * - `noble`: @noble/ed25519 with @noble/hashes, selectable, byte-compatible with `node`
 *   (a test checks each verifies the other's signatures and MACs).
 * - `sim`: for the deterministic simulator only. Signatures are HMAC-SHA256 under the signer's
 *   secret, checked through a registry of the keys this provider created. Every node of a
 *   simulation lives in one process, so this checks who signed what exactly as Ed25519 would
 *   (a signature made with another key, or over other bytes, fails) at a fraction of the cost.
 *   It is not a signature scheme and is never used over a network.
 *
 * Cores receive a provider as a dependency; crypto is deterministic, so a core that signs or
 * verifies stays a pure state machine.
 */
import * as nodeCrypto from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Ed25519 from '@noble/ed25519';
import type * as Sha2 from '@noble/hashes/sha2.js';
import type * as Hmac from '@noble/hashes/hmac.js';

export const DIGEST_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const PUBLIC_KEY_BYTES = 32;
export const MAC_BYTES = 32;

export type CryptoProviderName = 'node' | 'noble' | 'sim';

/** Holds a private key; signs. */
export interface Signer {
  readonly publicKey: Buffer;
  sign(message: Uint8Array): Buffer;
}

/** Holds a public key; verifies. */
export interface Verifier {
  readonly publicKey: Buffer;
  verify(message: Uint8Array, signature: Uint8Array): boolean;
}

export interface CryptoProvider {
  readonly name: CryptoProviderName;
  /** SHA-256. */
  digest(data: Uint8Array): Buffer;
  /** SHA-256 over the concatenation of the parts, without copying them together. */
  digestParts(parts: readonly Uint8Array[]): Buffer;
  /** HMAC-SHA256 with a pairwise key. */
  mac(key: Uint8Array, data: Uint8Array): Buffer;
  macVerify(key: Uint8Array, data: Uint8Array, tag: Uint8Array): boolean;
  /** An Ed25519 signer from a 32-byte seed (RFC 8032 private key). */
  signer(seed: Uint8Array): Signer;
  /** An Ed25519 verifier for a 32-byte public key. */
  verifier(publicKey: Uint8Array): Verifier;
}

/**
 * Writes SHA-256(data) into `out` at `offset`, with no allocation but a short string. node's
 * one-shot `hash` returning a Buffer mallocs a fresh ArrayBuffer for every 32-byte result, and
 * `createHash` a Hash object besides (about 1.3 us per call on this machine, most of a small
 * digest's cost, and garbage for the collector to sweep); as a 'binary' (latin1) string, one
 * char per byte, the result costs a small heap string and one copy.
 */
export function sha256Into(data: Uint8Array, out: Buffer, offset: number): void {
  writeBinary(out, nodeCrypto.hash('sha256', data, 'binary'), offset);
}

type BinaryWriter = { latin1Write(s: string, offset: number, length: number): number };
/** Buffer#latin1Write where node has it (every supported version), else the documented write. */
const writeBinary: (out: Buffer, s: string, offset: number) => void =
  typeof (Buffer.prototype as unknown as Partial<BinaryWriter>).latin1Write === 'function'
    ? (out, s, offset) => void (out as unknown as BinaryWriter).latin1Write(s, offset, s.length)
    : (out, s, offset) => void out.write(s, offset, s.length, 'latin1');

/** SHA-256(data) in a 32-byte slice of node's shared buffer pool (see sha256Into). */
export function sha256(data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(DIGEST_BYTES);
  sha256Into(data, out, 0);
  return out;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && nodeCrypto.timingSafeEqual(a, b);
}

// DER prefixes that wrap a raw 32-byte Ed25519 seed / public key for node:crypto (RFC 8410).
const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

function checkLength(bytes: Uint8Array, length: number, what: string): void {
  if (bytes.length !== length) throw new RangeError(`${what}: ${bytes.length} bytes, want ${length}`);
}

class NodeCrypto implements CryptoProvider {
  readonly name: CryptoProviderName = 'node';

  digest(data: Uint8Array): Buffer {
    return sha256(data);
  }

  digestParts(parts: readonly Uint8Array[]): Buffer {
    const h = nodeCrypto.createHash('sha256');
    for (const p of parts) h.update(p);
    return h.digest();
  }

  mac(key: Uint8Array, data: Uint8Array): Buffer {
    return nodeCrypto.createHmac('sha256', key).update(data).digest();
  }

  macVerify(key: Uint8Array, data: Uint8Array, tag: Uint8Array): boolean {
    return constantTimeEqual(this.mac(key, data), tag);
  }

  signer(seed: Uint8Array): Signer {
    checkLength(seed, 32, 'Ed25519 seed');
    const privateKey = nodeCrypto.createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    const spki = nodeCrypto.createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
    const publicKey = Buffer.from(spki.subarray(spki.length - PUBLIC_KEY_BYTES));
    return {
      publicKey,
      sign: (message) => nodeCrypto.sign(null, message, privateKey),
    };
  }

  verifier(publicKey: Uint8Array): Verifier {
    checkLength(publicKey, PUBLIC_KEY_BYTES, 'Ed25519 public key');
    const key = nodeCrypto.createPublicKey({
      key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]),
      format: 'der',
      type: 'spki',
    });
    return {
      publicKey: Buffer.from(publicKey),
      verify: (message, signature) => signature.length === SIGNATURE_BYTES && nodeCrypto.verify(null, message, key, signature),
    };
  }
}

/**
 * The noble libraries, loaded when a `noble` provider is first made: every simulation and
 * every `node` provider would otherwise load them for nothing (about 6 ms of a simulator's
 * start-up, issue 12 item 6). node >= 20.19 requires these ES modules synchronously, as the
 * same instances an `import` gets.
 */
let noble: { readonly ed: typeof Ed25519; readonly sha2: typeof Sha2; readonly hmac: typeof Hmac } | undefined;
function loadNoble(): NonNullable<typeof noble> {
  if (noble) return noble;
  const require = createRequire(import.meta.url);
  const ed = require('@noble/ed25519') as typeof Ed25519;
  const sha2 = require('@noble/hashes/sha2.js') as typeof Sha2;
  // @noble/ed25519 v3 needs a synchronous SHA-512 to offer sign/verify without promises.
  ed.hashes.sha512 = sha2.sha512;
  noble = { ed, sha2, hmac: require('@noble/hashes/hmac.js') as typeof Hmac };
  return noble;
}

class NobleCrypto implements CryptoProvider {
  readonly name = 'noble' as const;
  private readonly lib = loadNoble();

  digest(data: Uint8Array): Buffer {
    return Buffer.from(this.lib.sha2.sha256(data));
  }

  digestParts(parts: readonly Uint8Array[]): Buffer {
    const h = this.lib.sha2.sha256.create();
    for (const p of parts) h.update(p);
    return Buffer.from(h.digest());
  }

  mac(key: Uint8Array, data: Uint8Array): Buffer {
    return Buffer.from(this.lib.hmac.hmac(this.lib.sha2.sha256, key, data));
  }

  macVerify(key: Uint8Array, data: Uint8Array, tag: Uint8Array): boolean {
    return constantTimeEqual(this.mac(key, data), tag);
  }

  signer(seed: Uint8Array): Signer {
    checkLength(seed, 32, 'Ed25519 seed');
    const secret = Uint8Array.from(seed);
    const ed = this.lib.ed;
    return {
      publicKey: Buffer.from(ed.getPublicKey(secret)),
      sign: (message) => Buffer.from(ed.sign(message, secret)),
    };
  }

  verifier(publicKey: Uint8Array): Verifier {
    checkLength(publicKey, PUBLIC_KEY_BYTES, 'Ed25519 public key');
    const pub = Uint8Array.from(publicKey);
    const ed = this.lib.ed;
    return {
      publicKey: Buffer.from(publicKey),
      verify: (message, signature) => {
        if (signature.length !== SIGNATURE_BYTES) return false;
        try {
          return ed.verify(signature, message, pub);
        } catch {
          return false;
        }
      },
    };
  }
}

/** See the module comment: HMAC-based stand-in for signatures inside one simulated process. */
class SimCrypto extends NodeCrypto {
  override readonly name: CryptoProviderName = 'sim';
  private readonly secretsByPublicKey = new Map<string, Buffer>();

  override signer(seed: Uint8Array): Signer {
    checkLength(seed, 32, 'seed');
    const secret = Buffer.from(seed);
    const publicKey = this.digestParts([Buffer.from('poe-bench sim public key'), secret]);
    this.secretsByPublicKey.set(publicKey.toString('hex'), secret);
    return {
      publicKey,
      sign: (message) => {
        const tag = this.mac(secret, message);
        return Buffer.concat([tag, tag]);
      },
    };
  }

  override verifier(publicKey: Uint8Array): Verifier {
    checkLength(publicKey, PUBLIC_KEY_BYTES, 'public key');
    const pub = Buffer.from(publicKey);
    return {
      publicKey: pub,
      verify: (message, signature) => {
        const secret = this.secretsByPublicKey.get(pub.toString('hex'));
        if (!secret || signature.length !== SIGNATURE_BYTES) return false;
        const tag = this.mac(secret, message);
        return constantTimeEqual(tag, signature.subarray(0, 32)) && constantTimeEqual(tag, signature.subarray(32));
      },
    };
  }
}

export function createCrypto(name: CryptoProviderName = 'node'): CryptoProvider {
  switch (name) {
    case 'node':
      return new NodeCrypto();
    case 'noble':
      return new NobleCrypto();
    case 'sim':
      return new SimCrypto();
  }
}
