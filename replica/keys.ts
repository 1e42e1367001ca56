/**
 * Deterministic key material for a run. Every replica and client process derives the same
 * keys from the run's `keySeed`, so no key exchange is needed to start a benchmark. This is
 * a benchmark harness, not a deployment: anyone with the seed can forge, which is fine for
 * measuring cost and for the simulator, and is documented in the README.
 *
 * - replica i: an Ed25519 signer (HotStuff messages, Zyzzyva's signed replies);
 * - client machine o: an Ed25519 signer for its requests;
 * - replica pair (i, j) and replica-client pair (i, o): a 32-byte MAC key.
 */
import { createHash } from 'node:crypto';
import type { CryptoProvider, Signer, Verifier } from './crypto.js';
import type { ReplicaDeps } from './types.js';

function derive(keySeed: string, label: string, ...ids: number[]): Buffer {
  const h = createHash('sha256').update(`poe-bench/${label}/${keySeed}`);
  for (const id of ids) h.update(`/${id}`);
  return h.digest();
}

export function replicaSeed(keySeed: string, replica: number): Buffer {
  return derive(keySeed, 'replica-ed25519', replica);
}

export function clientSeed(keySeed: string, origin: number): Buffer {
  return derive(keySeed, 'client-ed25519', origin);
}

/** The MAC key shared by replicas a and b (symmetric in a, b). */
export function replicaMacKey(keySeed: string, a: number, b: number): Buffer {
  return derive(keySeed, 'mac-replica', Math.min(a, b), Math.max(a, b));
}

/** The MAC key shared by replica r and client machine `origin`. */
export function clientMacKey(keySeed: string, replica: number, origin: number): Buffer {
  return derive(keySeed, 'mac-client', replica, origin);
}

/** Every public key of a run, and the signers this node owns. */
export class KeyRing {
  readonly replicaSigners: Signer[] = [];
  readonly replicaVerifiers: Verifier[] = [];
  private readonly clientVerifiers = new Map<number, Verifier>();

  constructor(
    readonly crypto: CryptoProvider,
    readonly keySeed: string,
    readonly n: number,
    readonly clientMachines: number,
  ) {
    for (let i = 0; i < n; i++) {
      const s = crypto.signer(replicaSeed(keySeed, i));
      this.replicaSigners.push(s);
      this.replicaVerifiers.push(crypto.verifier(s.publicKey));
    }
    for (let o = 0; o < clientMachines; o++) {
      const s = crypto.signer(clientSeed(keySeed, o));
      this.clientVerifiers.set(o, crypto.verifier(s.publicKey));
    }
  }

  clientSigner(origin: number): Signer {
    return this.crypto.signer(clientSeed(this.keySeed, origin));
  }

  clientVerifier(origin: number): Verifier | undefined {
    return this.clientVerifiers.get(origin);
  }

  /** What replica `id` is given as dependencies. */
  replicaDeps(id: number): ReplicaDeps {
    return {
      crypto: this.crypto,
      signer: this.replicaSigners[id]!,
      replicaVerifiers: this.replicaVerifiers,
      clientVerifier: (o) => this.clientVerifier(o),
    };
  }
}
