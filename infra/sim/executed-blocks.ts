import { DIGEST_BYTES } from '../../replica/crypto.js';
import { Column, type Ledger } from '../../replica/ledger.js';

/** A digest on its way from a ledger into the column (setFromLedger). */
const scratch = new Uint8Array(DIGEST_BYTES);

/**
 * The blocks a replica executed, digests in a ledger Column (end to end in one growing buffer)
 * and views in an array: an object and a Buffer per block, kept for the whole run at every
 * replica, were most of what survived the young generation (the garbage collector copied each
 * twice).
 */
export class ExecutedBlocks {
  private readonly digests = new Column(DIGEST_BYTES);
  private readonly views: number[] = [];
  length = 0;

  /** Records the block executed at k, which becomes the last one (blocks above k are dropped; k is at most one past the last). */
  set(k: number, digest: Uint8Array, view: number): void {
    if (k < 1 || k > this.length + 1) throw new RangeError(`simulator: block ${k} executed after ${this.length} recorded blocks`);
    this.digests.set(k - 1, digest);
    this.views[k - 1] = view;
    this.length = k;
  }

  /** Records block k of `ledger` (its digest and view), as set() does, without a copy of the digest in between. */
  setFromLedger(k: number, ledger: Ledger): void {
    ledger.digestTo(k, scratch, 0);
    this.set(k, scratch, ledger.viewAt(k));
  }

  /** Keeps the first `length` blocks. */
  truncate(length: number): void {
    if (length < this.length) this.length = Math.max(0, length);
  }

  /** A copy of the digest of the block at k (index k - 1). */
  digestAt(k: number): Buffer {
    return this.digests.copy(k - 1);
  }

  viewAt(k: number): number {
    return this.views[k - 1]!;
  }
}
