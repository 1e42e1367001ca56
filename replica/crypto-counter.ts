/**
 * A CryptoProvider that counts what a core asked of it: Ed25519 signs and verifications, MACs
 * computed and checked, digests, and the bytes each covered. The compliance suite asserts exact
 * counts per slot with it (issue 10), the README's cost table is made from it, and the model
 * backend charges CPU from it (issue 12): what a step did is counted where it is done, never
 * estimated beside the code.
 *
 * Pure: it only wraps another provider. Reset between steps to read one step's work.
 */
import type { CryptoProvider, CryptoProviderName, Signer, Verifier } from './crypto.js';

export interface CryptoCounts {
  signs: number;
  signBytes: number;
  verifies: number;
  verifyBytes: number;
  macs: number;
  macBytes: number;
  macVerifies: number;
  macVerifyBytes: number;
  digests: number;
  digestBytes: number;
}

export const zeroCryptoCounts = (): CryptoCounts => ({
  signs: 0,
  signBytes: 0,
  verifies: 0,
  verifyBytes: 0,
  macs: 0,
  macBytes: 0,
  macVerifies: 0,
  macVerifyBytes: 0,
  digests: 0,
  digestBytes: 0,
});

/** Adds `b` into `a`. */
export function addCryptoCounts(a: CryptoCounts, b: Readonly<CryptoCounts>): void {
  for (const key of Object.keys(a) as (keyof CryptoCounts)[]) a[key] += b[key];
}

export class CountingCrypto implements CryptoProvider {
  readonly name: CryptoProviderName;
  /** Running totals since construction or the last `reset`. */
  counts: CryptoCounts = zeroCryptoCounts();

  constructor(private readonly inner: CryptoProvider) {
    this.name = inner.name;
  }

  /** Returns the counts so far and starts again from zero. */
  reset(): CryptoCounts {
    const c = this.counts;
    this.counts = zeroCryptoCounts();
    return c;
  }

  digest(data: Uint8Array): Buffer {
    this.counts.digests++;
    this.counts.digestBytes += data.length;
    return this.inner.digest(data);
  }

  digestParts(parts: readonly Uint8Array[]): Buffer {
    this.counts.digests++;
    for (const p of parts) this.counts.digestBytes += p.length;
    return this.inner.digestParts(parts);
  }

  mac(key: Uint8Array, data: Uint8Array): Buffer {
    this.counts.macs++;
    this.counts.macBytes += data.length;
    return this.inner.mac(key, data);
  }

  macVerify(key: Uint8Array, data: Uint8Array, tag: Uint8Array): boolean {
    this.counts.macVerifies++;
    this.counts.macVerifyBytes += data.length;
    return this.inner.macVerify(key, data, tag);
  }

  signer(seed: Uint8Array): Signer {
    const s = this.inner.signer(seed);
    return {
      publicKey: s.publicKey,
      sign: (message) => {
        this.counts.signs++;
        this.counts.signBytes += message.length;
        return s.sign(message);
      },
    };
  }

  verifier(publicKey: Uint8Array): Verifier {
    const v = this.inner.verifier(publicKey);
    return {
      publicKey: v.publicKey,
      verify: (message, signature) => {
        this.counts.verifies++;
        this.counts.verifyBytes += message.length;
        return v.verify(message, signature);
      },
    };
  }
}
