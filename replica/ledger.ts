/**
 * The ledger (paper §4(6), Figure 9): block B_i = {k, d, v, H(B_{i-1})} for every executed
 * batch, chained from a genesis block that holds the hash of the initial primary's identity.
 * Safety checks compare ledgers by block hash: two replicas agree at height k iff their hashes
 * there are equal, which by the chain also means they agree on every block below.
 *
 * Height k holds the batch with sequence number k; height 0 is the genesis block.
 * Blocks are stored compactly (fixed-width columns in growable Buffers), so a long run costs
 * 80 bytes per batch and no objects.
 */
import type { CryptoProvider } from './crypto.js';
import { DIGEST_BYTES } from './crypto.js';
import { Writer } from './wire.js';

export interface Block {
  readonly k: number;
  readonly digest: Buffer;
  readonly view: number;
  readonly prevHash: Buffer;
  readonly hash: Buffer;
}

export class LedgerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LedgerError';
  }
}

/** H(B0): the hash of the identity of the first primary (paper §4(6)). */
export function genesisHash(crypto: CryptoProvider, initialPrimary = 0): Buffer {
  return crypto.digest(new Writer(32).u8(0x47).u16(initialPrimary).finish());
}

/**
 * The bytes a block hash covers, {k, d, v, H(B_{i-1})}, written by a Writer into one buffer
 * reused by every call: a buffer per block (every execution at every replica, and every block
 * again when a chain is verified) was garbage. Digests read their input and keep nothing of it.
 */
const BLOCK_BYTES = 8 + DIGEST_BYTES + 8 + DIGEST_BYTES;
const blockScratch = Buffer.alloc(BLOCK_BYTES);

export function blockHash(crypto: CryptoProvider, k: number, digest: Buffer, view: number, prevHash: Buffer): Buffer {
  const w = new Writer(BLOCK_BYTES, blockScratch);
  return crypto.digest(w.u53(k).fixed(digest, DIGEST_BYTES).u53(view).fixed(prevHash, DIGEST_BYTES).finish());
}

/** Fixed-width byte entries end to end in one growing buffer (the ledger's hashes and digests). */
export class Column {
  private buf: Buffer;
  constructor(
    private readonly width: number,
    capacity = 1024,
  ) {
    this.buf = Buffer.alloc(width * capacity);
  }
  set(i: number, value: Buffer): void {
    if ((i + 1) * this.width > this.buf.length) {
      const next = Buffer.alloc(Math.max(this.buf.length * 2, (i + 1) * this.width));
      next.set(this.buf);
      this.buf = next;
    }
    // As value.copy(buf, i * width, 0, width), without a call into C++ for 32 bytes.
    this.buf.set(value.length > this.width ? value.subarray(0, this.width) : value, i * this.width);
  }
  get(i: number): Buffer {
    return this.buf.subarray(i * this.width, (i + 1) * this.width);
  }
  /** A copy of entry i, in a buffer of its own. */
  copy(i: number): Buffer {
    const out = Buffer.allocUnsafe(this.width);
    const buf = this.buf;
    const at = i * this.width;
    for (let j = 0; j < this.width; j++) out[j] = buf[at + j]!;
    return out;
  }
  /** Whether entry i holds exactly the bytes of `other`. */
  equals(i: number, other: Uint8Array): boolean {
    if (other.length !== this.width) return false;
    const buf = this.buf;
    const at = i * this.width;
    for (let j = 0; j < this.width; j++) if (buf[at + j] !== other[j]) return false;
    return true;
  }
}

export class Ledger {
  private readonly hashes = new Column(DIGEST_BYTES);
  private readonly digests = new Column(DIGEST_BYTES);
  private views: number[] = [0];
  private heightNow = 0;

  constructor(
    private readonly crypto: CryptoProvider,
    private readonly initialPrimary = 0,
  ) {
    this.hashes.set(0, genesisHash(crypto, initialPrimary));
    this.digests.set(0, Buffer.alloc(DIGEST_BYTES));
  }

  /** Height of the newest block (0: only genesis). */
  get height(): number {
    return this.heightNow;
  }

  /**
   * Hashes and digests are handed out as copies: a view into the column would change under
   * its holder (a CHECKPOINT, a view-change record) when truncate and append reuse the slot.
   */
  get headHash(): Buffer {
    return this.hashes.copy(this.heightNow);
  }

  /** Appends block k, which must be the next height. */
  append(k: number, digest: Buffer, view: number): Buffer {
    if (k !== this.heightNow + 1) throw new LedgerError(`append k=${k} at height ${this.heightNow}`);
    const hash = blockHash(this.crypto, k, digest, view, this.hashes.get(this.heightNow));
    this.hashes.set(k, hash);
    this.digests.set(k, digest);
    this.views[k] = view;
    this.heightNow = k;
    return hash;
  }

  /** Removes every block above k (rollback of speculative executions, paper §3.3.5). */
  truncate(k: number): void {
    if (k < 0 || k > this.heightNow) throw new LedgerError(`truncate to ${k} at height ${this.heightNow}`);
    this.views.length = k + 1;
    this.heightNow = k;
  }

  hashAt(k: number): Buffer {
    this.check(k);
    return this.hashes.copy(k);
  }

  digestAt(k: number): Buffer {
    this.check(k);
    return this.digests.copy(k);
  }

  /** Whether block k's batch digest is `digest`: digestAt(k).equals(digest) without the copy. */
  digestEquals(k: number, digest: Uint8Array): boolean {
    this.check(k);
    return this.digests.equals(k, digest);
  }

  /** Whether the hash of block k is `hash`: hashAt(k).equals(hash) without the copy. */
  hashEquals(k: number, hash: Uint8Array): boolean {
    this.check(k);
    return this.hashes.equals(k, hash);
  }

  viewAt(k: number): number {
    this.check(k);
    return this.views[k]!;
  }

  block(k: number): Block {
    this.check(k);
    return {
      k,
      digest: this.digests.copy(k),
      view: this.views[k]!,
      prevHash: k === 0 ? Buffer.alloc(DIGEST_BYTES) : this.hashes.copy(k - 1),
      hash: this.hashes.copy(k),
    };
  }

  private check(k: number): void {
    if (!Number.isInteger(k) || k < 0 || k > this.heightNow) throw new LedgerError(`no block at height ${k} (height ${this.heightNow})`);
  }

  /** Recomputes every hash from genesis; true iff the chain is intact. */
  verifyChain(initialPrimary = this.initialPrimary): boolean {
    let prev = genesisHash(this.crypto, initialPrimary);
    if (!this.hashes.equals(0, prev)) return false;
    for (let k = 1; k <= this.heightNow; k++) {
      prev = blockHash(this.crypto, k, this.digests.get(k), this.views[k]!, prev);
      if (!this.hashes.equals(k, prev)) return false;
    }
    return true;
  }
}
