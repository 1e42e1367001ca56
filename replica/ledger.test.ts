/**
 * The ledger (paper §4(6), Figure 9): block B_k = {k, d, v, H(B_{k-1})} chained from a genesis
 * block holding the hash of the first primary's identity; safety checks compare these hashes.
 */
import { describe, expect, it } from 'vitest';
import { createCrypto } from './crypto.js';
import { blockHash, genesisHash, Ledger, LedgerError } from './ledger.js';
import { Writer } from './wire.js';

const crypto = createCrypto('node');
const d = (i: number): Buffer => crypto.digest(Buffer.from(`batch ${i}`));

function filled(height: number, initialPrimary = 0): Ledger {
  const l = new Ledger(crypto, initialPrimary);
  for (let k = 1; k <= height; k++) l.append(k, d(k), Math.floor(k / 10));
  return l;
}

/** H(B_k) written with Writer, as blockHash was before it reused one scratch buffer (commit 64628b7). */
const written = (k: number, digest: Buffer, v: number, prev: Buffer): Buffer =>
  crypto.digest(new Writer(80).u53(k).fixed(digest, 32).u53(v).fixed(prev, 32).finish());

/** Simulates corruption of the stored columns (no public API can change a block). */
function columns(l: Ledger): { hashes: { set(i: number, b: Buffer): void }; digests: { set(i: number, b: Buffer): void } } {
  return l as unknown as ReturnType<typeof columns>;
}

describe('Ledger genesis', () => {
  it("holds the hash of the initial primary's identity", () => {
    // Reference: paper §4(6), Figure 9: "genesis block (B0) having the hash of the identity of the primary".
    const expected = crypto.digest(new Writer().u8(0x47).u16(0).finish());
    expect(new Ledger(crypto).hashAt(0).equals(expected)).toBe(true);
    expect(new Ledger(crypto, 2).headHash.equals(genesisHash(crypto, 2))).toBe(true);
    expect(genesisHash(crypto, 1).equals(genesisHash(crypto, 0))).toBe(false);
    expect(new Ledger(crypto).height).toBe(0);
  });

  it('blocks chain from the genesis they were built on', () => {
    const a = filled(3, 0);
    const b = filled(3, 1);
    expect(a.hashAt(1).equals(b.hashAt(1))).toBe(false);
    expect(a.verifyChain()).toBe(true);
    expect(b.verifyChain(1)).toBe(true);
    expect(b.verifyChain(0)).toBe(false);
  });

  it("verifyChain defaults to the ledger's own initial primary", () => {
    expect(filled(3, 2).verifyChain()).toBe(true);
  });
});

describe('Ledger chain', () => {
  it('block k hashes k, its digest, its view and the previous block hash', () => {
    // Reference: paper §4(6): B_i contains k, d, v and H(B_{i-1}).
    const l = filled(25);
    for (let k = 1; k <= 25; k++) {
      const expected = written(k, d(k), Math.floor(k / 10), l.hashAt(k - 1));
      expect(l.hashAt(k).equals(expected), `k=${k}`).toBe(true);
      const b = l.block(k);
      expect(b.k).toBe(k);
      expect(b.view).toBe(Math.floor(k / 10));
      expect(b.digest.equals(d(k))).toBe(true);
      expect(b.prevHash.equals(l.hashAt(k - 1))).toBe(true);
      expect(b.hash.equals(l.hashAt(k))).toBe(true);
      expect(l.digestAt(k).equals(d(k))).toBe(true);
      expect(l.viewAt(k)).toBe(Math.floor(k / 10));
    }
    expect(l.headHash.equals(l.hashAt(25))).toBe(true);
    expect(l.block(0).prevHash.equals(Buffer.alloc(32))).toBe(true);
  });

  it('blockHash is SHA-256 of k, d, v (8 bytes big-endian each) and H(B_{k-1}): fixed vectors, k and v beyond 2^32', () => {
    // Reference: paper §4(6). Vectors from Python's hashlib.sha256 over
    // k.to_bytes(8, 'big') + b'\xab' * 32 + v.to_bytes(8, 'big') + b'\x5c' * 32.
    const digest = Buffer.alloc(32, 0xab);
    const prev = Buffer.alloc(32, 0x5c);
    const vectors: [number, number, string][] = [
      [7, 3, '82e73ae21d40dba8205cf32029b5b319d0e460793e1418ae1f80d1e5cd9bbc50'],
      [2 ** 32 + 5, 2 ** 40 + 1, '0b461236ab0d17ffe238ee243e436c5efcfcf4b44e3090dbf7b2f6c48058826e'],
    ];
    for (const [k, v, hex] of vectors) expect(blockHash(crypto, k, digest, v, prev).toString('hex'), `k=${k}`).toBe(hex);
  });

  it('blockHash equals the digest of the block written with Writer, and a returned hash survives later calls', () => {
    const ks = [1, 2, 255, 256, 65_535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 2 ** 45 + 12_345, Number.MAX_SAFE_INTEGER];
    let prev = genesisHash(crypto);
    for (const [i, k] of ks.entries()) {
      const v = ks[ks.length - 1 - i]!;
      const got = blockHash(crypto, k, d(i), v, prev);
      const kept = Buffer.from(got);
      expect(got.equals(written(k, d(i), v, prev)), `k=${k} v=${v}`).toBe(true);
      // Another call overwrites the scratch buffer: the hash handed out must not change.
      blockHash(crypto, k + 1, d(i + 1), v, got);
      expect(got.equals(kept), `k=${k}`).toBe(true);
      prev = got;
    }
  });

  it('append returns the new head hash and accepts only the next height', () => {
    const l = new Ledger(crypto);
    expect(l.append(1, d(1), 0).equals(l.headHash)).toBe(true);
    expect(() => l.append(1, d(1), 0)).toThrow(LedgerError);
    expect(() => l.append(3, d(3), 0)).toThrow(LedgerError);
    expect(l.height).toBe(1);
  });

  it('equal histories give equal hashes; any difference in digest or view changes every hash above', () => {
    const a = filled(10);
    const b = filled(10);
    expect(a.headHash.equals(b.headHash)).toBe(true);
    const c = new Ledger(crypto);
    for (let k = 1; k <= 10; k++) c.append(k, d(k), k === 4 ? 99 : Math.floor(k / 10));
    expect(c.hashAt(3).equals(a.hashAt(3))).toBe(true);
    for (let k = 4; k <= 10; k++) expect(c.hashAt(k).equals(a.hashAt(k)), `k=${k}`).toBe(false);
  });

  it('grows past its initial capacity and still verifies', () => {
    const l = filled(3000);
    expect(l.height).toBe(3000);
    expect(l.verifyChain()).toBe(true);
    expect(l.digestAt(2999).equals(d(2999))).toBe(true);
  });

  it('rejects heights it does not hold', () => {
    const l = filled(3);
    for (const k of [-1, 4, 1.5]) {
      expect(() => l.hashAt(k), `k=${k}`).toThrow(LedgerError);
      expect(() => l.digestAt(k)).toThrow(LedgerError);
      expect(() => l.viewAt(k)).toThrow(LedgerError);
      expect(() => l.block(k)).toThrow(LedgerError);
    }
  });
});

describe('Ledger truncate', () => {
  it('removes the blocks above k, and the next append continues from k', () => {
    // Reference: paper §3.3.5 (rollback of executions not kept by the new view).
    const l = filled(6);
    const at3 = l.hashAt(3);
    const old5 = l.hashAt(5);
    l.truncate(3);
    expect(l.height).toBe(3);
    expect(l.headHash.equals(at3)).toBe(true);
    expect(() => l.hashAt(4)).toThrow(LedgerError);
    l.append(4, d(40), 1);
    l.append(5, d(50), 1);
    expect(l.hashAt(5).equals(old5)).toBe(false);
    expect(l.verifyChain()).toBe(true);
    l.truncate(0);
    expect(l.headHash.equals(genesisHash(crypto))).toBe(true);
  });

  it('rejects truncation above the head or below genesis', () => {
    const l = filled(3);
    expect(() => l.truncate(4)).toThrow(LedgerError);
    expect(() => l.truncate(-1)).toThrow(LedgerError);
    expect(l.height).toBe(3);
  });

  it('hashes handed out stay what they were after truncate and re-append', () => {
    // A checkpoint message or a view-change record keeps these Buffers.
    const l = filled(5);
    const head = l.headHash;
    const at4 = l.hashAt(4);
    const digest4 = l.digestAt(4);
    const saved = [Buffer.from(head), Buffer.from(at4), Buffer.from(digest4)];
    l.truncate(3);
    l.append(4, d(44), 2);
    l.append(5, d(55), 2);
    expect([head, at4, digest4].map((b) => b.toString('hex'))).toEqual(saved.map((b) => b.toString('hex')));
  });
});

describe('Ledger digestEquals, hashEquals and the copies handed out', () => {
  it('digestEquals and hashEquals: true for the stored bytes, false for other bytes or another length', () => {
    const l = filled(5);
    for (let k = 0; k <= 5; k++) {
      const hash = crypto.digest(Buffer.from(`independent ${k}`));
      expect(l.hashEquals(k, l.hashAt(k)), `k=${k}`).toBe(true);
      expect(l.hashEquals(k, hash), `k=${k}`).toBe(false);
      if (k > 0) expect(l.hashEquals(k, l.hashAt(k - 1)), `k=${k}`).toBe(false);
      const digest = k === 0 ? Buffer.alloc(32) : d(k);
      expect(l.digestEquals(k, digest), `k=${k}`).toBe(true);
      expect(l.digestEquals(k, d(k + 100)), `k=${k}`).toBe(false);
    }
    // Only the last byte differs: every byte is compared.
    const last = l.hashAt(3);
    last[31] = last[31]! ^ 1;
    expect(l.hashEquals(3, last)).toBe(false);
    const lastD = d(3);
    lastD[31] = lastD[31]! ^ 1;
    expect(l.digestEquals(3, lastD)).toBe(false);
    // A prefix or an extension of the right bytes is not equal.
    expect(l.hashEquals(3, l.hashAt(3).subarray(0, 31))).toBe(false);
    expect(l.hashEquals(3, Buffer.concat([l.hashAt(3), Buffer.alloc(1)]))).toBe(false);
    expect(l.digestEquals(3, d(3).subarray(0, 16))).toBe(false);
    expect(l.digestEquals(3, Buffer.concat([d(3), d(3)]))).toBe(false);
    expect(l.hashEquals(3, Buffer.alloc(0))).toBe(false);
    expect(() => l.hashEquals(6, l.hashAt(5))).toThrow(LedgerError);
    expect(() => l.digestEquals(-1, d(1))).toThrow(LedgerError);
  });

  it('a slot reused after truncate and re-append compares with its new bytes only', () => {
    const l = filled(5);
    const oldHash = l.hashAt(4);
    const oldDigest = l.digestAt(4);
    l.truncate(3);
    expect(() => l.hashEquals(4, oldHash)).toThrow(LedgerError);
    l.append(4, d(44), 2);
    expect(l.hashEquals(4, oldHash)).toBe(false);
    expect(l.digestEquals(4, oldDigest)).toBe(false);
    expect(l.hashEquals(4, written(4, d(44), 2, l.hashAt(3)))).toBe(true);
    expect(l.digestEquals(4, d(44))).toBe(true);
    // The blocks below are untouched.
    expect(l.digestEquals(3, d(3))).toBe(true);
    expect(l.verifyChain()).toBe(true);
  });

  it('hashes and digests handed out are copies: changing one changes no block', () => {
    const l = filled(1500); // past the columns' first 1,024 entries
    for (const k of [0, 1, 1023, 1024, 1500]) {
      const h = l.hashAt(k);
      const dg = l.digestAt(k);
      const b = l.block(k);
      expect(h.equals(b.hash), `k=${k}`).toBe(true);
      expect(dg.equals(b.digest), `k=${k}`).toBe(true);
      h.fill(0xee);
      dg.fill(0xee);
      b.hash.fill(0xdd);
      b.prevHash.fill(0xdd);
      expect(l.hashEquals(k, h), `k=${k}`).toBe(false);
      expect(l.block(k).hash.equals(b.hash), `k=${k}`).toBe(false);
      if (k > 0) expect(l.digestEquals(k, d(k)), `k=${k}`).toBe(true);
    }
    const head = l.headHash;
    head.fill(0);
    expect(l.headHash.equals(head)).toBe(false);
    expect(l.verifyChain()).toBe(true);
  });
});

describe('Ledger verifyChain', () => {
  it('detects a tampered digest, a tampered hash and a tampered genesis', () => {
    const tampered = (mutate: (l: Ledger) => void): boolean => {
      const l = filled(20);
      expect(l.verifyChain()).toBe(true);
      mutate(l);
      return l.verifyChain();
    };
    expect(tampered((l) => columns(l).digests.set(7, d(999)))).toBe(false);
    expect(tampered((l) => columns(l).hashes.set(7, d(999)))).toBe(false);
    expect(tampered((l) => columns(l).hashes.set(20, d(999)))).toBe(false);
    expect(tampered((l) => columns(l).hashes.set(0, d(999)))).toBe(false);
    expect(tampered((l) => ((l as unknown as { views: number[] }).views[3] = 42))).toBe(false);
    expect(tampered(() => undefined)).toBe(true);
  });
});

describe('Ledger sameBlocksAs', () => {
  // The end-of-run check (infra/sim/safety.ts) verifies one chain and takes every ledger with
  // the same blocks as verified: sameBlocksAs must fail on any difference verifyChain could see.
  it('holds for the same blocks and fails on any difference in height, block, hash, genesis or crypto', () => {
    expect(filled(20).sameBlocksAs(filled(20))).toBe(true);
    expect(filled(0).sameBlocksAs(filled(0))).toBe(true);
    expect(filled(20).sameBlocksAs(filled(19))).toBe(false);
    expect(filled(20).sameBlocksAs(filled(20, 1))).toBe(false);
    const differs = (mutate: (l: Ledger) => void): boolean => {
      const l = filled(20);
      mutate(l);
      return l.sameBlocksAs(filled(20)) || filled(20).sameBlocksAs(l);
    };
    expect(differs((l) => columns(l).digests.set(7, d(999)))).toBe(false);
    expect(differs((l) => columns(l).hashes.set(7, d(999)))).toBe(false);
    expect(differs((l) => columns(l).hashes.set(0, d(999)))).toBe(false);
    expect(differs((l) => ((l as unknown as { views: number[] }).views[3] = 42))).toBe(false);
    expect(differs(() => undefined)).toBe(true);
    // Rolled back and re-executed the same blocks: the same again.
    const l = filled(20);
    l.truncate(10);
    for (let k = 11; k <= 20; k++) l.append(k, d(k), Math.floor(k / 10));
    expect(l.sameBlocksAs(filled(20))).toBe(true);
    const other = new Ledger(createCrypto('node'), 0);
    for (let k = 1; k <= 20; k++) other.append(k, d(k), Math.floor(k / 10));
    expect(other.sameBlocksAs(filled(20))).toBe(false);
    expect(filled(3).sameBlocksAs({ height: 3 })).toBe(false);
  });
});
