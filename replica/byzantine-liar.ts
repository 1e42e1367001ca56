/**
 * What a lying replica remembers of the client batches it saw, shared by the per-protocol
 * adversary hooks (replica/byzantine-hooks-*.ts): the genuinely client-signed batches, by the
 * sequence number they were proposed at, so a forged claim can put a real batch at the wrong k.
 */
import { type ClientRequest, isNoop, requestDigest } from './messages.js';
import type { CryptoProvider } from './crypto.js';

export interface SeenBatch {
  readonly k: number;
  readonly view: number;
  readonly request: ClientRequest;
  readonly digest: Buffer;
}

export class BatchBook {
  private readonly byK = new Map<number, SeenBatch>();
  /** The highest sequence number a batch was seen at. */
  maxK = 0;
  constructor(private readonly crypto: CryptoProvider) {}

  /** Records the batch proposed at (view, k); a later view's proposal replaces an earlier one. */
  add(view: number, k: number, request: ClientRequest): void {
    if (isNoop(request)) return;
    const cur = this.byK.get(k);
    if (cur && cur.view >= view) return;
    this.byK.set(k, { k, view, request, digest: requestDigest(this.crypto, request) });
    if (k > this.maxK) this.maxK = k;
  }

  at(k: number): SeenBatch | undefined {
    return this.byK.get(k);
  }

  /** A seen batch whose digest is not `digest`: the one of the nearest other sequence number. */
  other(k: number, digest: Buffer | undefined): SeenBatch | undefined {
    for (let d = 1; d <= this.maxK + 1; d++) {
      for (const kk of [k + d, k - d]) {
        const b = this.byK.get(kk);
        if (b && (digest === undefined || !b.digest.equals(digest))) return b;
      }
    }
    return undefined;
  }
}
