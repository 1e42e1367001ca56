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
 * The bytes a block hash covers, {k, d, v, H(B_{i-1})}, laid out as a Writer would write them
 * (u53, digest, u53, digest) into one buffer reused by every call: a buffer per block (every execution at every replica, and every block
 * again when a chain is verified) was garbage. Digests read their input and keep nothing of it.
 */
const BLOCK_BYTES = 8 + DIGEST_BYTES + 8 + DIGEST_BYTES;
const blockScratch = Buffer.alloc(BLOCK_BYTES);

export function blockHash(crypto: CryptoProvider, k: number, digest: Buffer, view: number, prevHash: Buffer): Buffer {
  checkDigest(prevHash);
  blockScratch.set(prevHash, PREV_AT);
  return hashBlock(crypto, k, digest, view);
}

// Where the fields lie in the block bytes: u53 k, digest, u53 view, previous hash (as a Writer lays them out).
const DIGEST_AT = 8;
const VIEW_AT = DIGEST_AT + DIGEST_BYTES;
const PREV_AT = VIEW_AT + 8;

function checkDigest(d: Uint8Array): void {
  if (d.length !== DIGEST_BYTES) throw new RangeError(`fixed field: ${d.length} bytes, want ${DIGEST_BYTES}`);
}

/** `v` as Writer.u53 writes it: the high and low 32 bits, big-endian. */
function putU53(at: number, v: number): void {
  if (!(v >= 0)) throw new RangeError(`block field ${v}: want an unsigned integer`);
  const hi = Math.floor(v / 0x1_0000_0000);
  const lo = v >>> 0;
  const b = blockScratch;
  b[at] = hi >>> 24;
  b[at + 1] = (hi >>> 16) & 0xff;
  b[at + 2] = (hi >>> 8) & 0xff;
  b[at + 3] = hi & 0xff;
  b[at + 4] = lo >>> 24;
  b[at + 5] = (lo >>> 16) & 0xff;
  b[at + 6] = (lo >>> 8) & 0xff;
  b[at + 7] = lo & 0xff;
}

/**
 * The hash of block {k, digest, view, previous hash} whose previous hash is in the scratch
 * already: written byte by byte, with no Writer and no Buffer view of the previous hash (an
 * append at every replica for every batch, and every block again when a chain is verified).
 */
function hashBlock(crypto: CryptoProvider, k: number, digest: Uint8Array, view: number): Buffer {
  checkDigest(digest);
  const b = blockScratch;
  for (let i = 0; i < DIGEST_BYTES; i++) b[DIGEST_AT + i] = digest[i]!;
  return hashBlockAt(crypto, k, view);
}

/** hashBlock for a block whose digest and previous hash are in the scratch already. */
function hashBlockAt(crypto: CryptoProvider, k: number, view: number): Buffer {
  putU53(0, k);
  putU53(VIEW_AT, view);
  return crypto.digest(blockScratch);
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
  set(i: number, value: Uint8Array): void {
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
    this.copyTo(i, out, 0);
    return out;
  }
  /** Copies entry i into `dst` at `at` (a byte loop: no view, no call into C++). */
  copyTo(i: number, dst: Uint8Array, at: number): void {
    const buf = this.buf;
    const from = i * this.width;
    for (let j = 0; j < this.width; j++) dst[at + j] = buf[from + j]!;
  }
  /** Whether the first `count` entries are the same bytes as `other`'s (one compare, in C++). */
  sameAs(other: Column, count: number): boolean {
    const n = count * this.width;
    return this.width === other.width && this.buf.length >= n && other.buf.length >= n && this.buf.compare(other.buf, 0, n, 0, n) === 0;
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
    this.hashes.copyTo(this.heightNow, blockScratch, PREV_AT);
    const hash = hashBlock(this.crypto, k, digest, view);
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

  /** Copies block k's batch digest into `dst` at `at` (digestAt without a Buffer). */
  digestTo(k: number, dst: Uint8Array, at: number): void {
    this.check(k);
    this.digests.copyTo(k, dst, at);
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

  /**
   * Whether this ledger holds exactly the blocks of `other`, genesis included: the same height,
   * views, digests and hashes, and the same crypto and initial primary. Then this chain verifies
   * exactly when `other`'s does (verifyChain would recompute the same hashes from the same blocks
   * and compare them with the same bytes), so the end-of-run check hashes one chain, not one per
   * replica (infra/sim/safety.ts).
   */
  sameBlocksAs(other: unknown): boolean {
    if (!(other instanceof Ledger) || other.crypto !== this.crypto || other.initialPrimary !== this.initialPrimary) return false;
    const h = this.heightNow;
    if (other.heightNow !== h) return false;
    for (let k = 0; k <= h; k++) if (this.views[k] !== other.views[k]) return false;
    return this.digests.sameAs(other.digests, h + 1) && this.hashes.sameAs(other.hashes, h + 1);
  }

  /** Recomputes every hash from genesis; true iff the chain is intact. */
  verifyChain(initialPrimary = this.initialPrimary): boolean {
    let prev = genesisHash(this.crypto, initialPrimary);
    if (!this.hashes.equals(0, prev)) return false;
    for (let k = 1; k <= this.heightNow; k++) {
      // The digest of block k straight from its column into the block bytes, after the hash below it.
      blockScratch.set(prev, PREV_AT);
      this.digests.copyTo(k, blockScratch, DIGEST_AT);
      prev = hashBlockAt(this.crypto, k, this.views[k]!);
      if (!this.hashes.equals(k, prev)) return false;
    }
    return true;
  }
}
