/**
 * The pieces every protocol core shares: the Executor (in-order execution, deduplication on
 * (clientId, reqNo), speculative rollback) and the CheckpointTracker (stable at nf matching).
 */
import { describe, expect, it } from 'vitest';
import { CheckpointTracker, Executor } from './common.js';
import { createCrypto } from './crypto.js';
import { Ledger } from './ledger.js';
import { makeRequest, noopRequest, requestDigest, type ClientRequest } from './messages.js';
import { YcsbStore } from './store.js';
import { quorums } from './types.js';

const crypto = createCrypto('sim');
const signer = crypto.signer(Buffer.alloc(32, 1));
const RECORDS = 16;
const VALUE_BYTES = 8;

function req(clientId: number, reqNo: number, key = clientId % RECORDS, text = `${clientId}/${reqNo}`): ClientRequest {
  return makeRequest(signer, 0, clientId, reqNo, [{ key, value: Buffer.from(text) }]);
}

function setup(speculative: boolean): { store: YcsbStore; ledger: Ledger; ex: Executor } {
  const store = new YcsbStore(RECORDS, VALUE_BYTES);
  const ledger = new Ledger(crypto);
  return { store, ledger, ex: new Executor(store, ledger, speculative) };
}

function commit(ex: Executor, k: number, r: ClientRequest, view = 0): void {
  ex.commit(k, view, r, requestDigest(crypto, r));
}

function table(store: YcsbStore): string {
  return Array.from({ length: store.records }, (_, k) => store.read(k).toString('hex')).join(',');
}

describe('Executor in-order execution', () => {
  it('executes out-of-order commits strictly in sequence order', () => {
    // Reference: paper Figure 3, lines 19-20: execute k only after k - 1 was executed.
    const { ex, ledger } = setup(false);
    commit(ex, 3, req(3, 0));
    commit(ex, 2, req(2, 0));
    expect(ex.drain()).toEqual([]);
    expect(ex.isCommitted(2)).toBe(true);
    expect(ex.isCommitted(1)).toBe(false);
    commit(ex, 5, req(5, 0));
    commit(ex, 1, req(1, 0));
    const done = ex.drain();
    expect(done.map((e) => e.k)).toEqual([1, 2, 3]);
    expect(done.map((e) => e.request.clientId)).toEqual([1, 2, 3]);
    expect(ledger.height).toBe(3);
    expect(ex.executedK).toBe(3);
    expect(ex.pendingCount).toBe(1);
    expect(done[2]!.blockHash.equals(ledger.headHash)).toBe(true);
    commit(ex, 4, req(4, 0));
    expect(ex.drain().map((e) => e.k)).toEqual([4, 5]);
  });

  it('ignores a commit for a sequence number already executed', () => {
    const { ex, ledger } = setup(false);
    commit(ex, 1, req(1, 0));
    ex.drain();
    const head = ledger.headHash;
    commit(ex, 1, req(9, 0));
    expect(ex.drain()).toEqual([]);
    expect(ex.pendingCount).toBe(0);
    expect(ledger.headHash.equals(head)).toBe(true);
  });

  it('executes the same commits into the same ledger on every replica', () => {
    const a = setup(true);
    const b = setup(true);
    const reqs = Array.from({ length: 20 }, (_, i) => req(i % 4, Math.floor(i / 4), i % RECORDS));
    reqs.forEach((r, i) => commit(a.ex, i + 1, r));
    for (let i = reqs.length - 1; i >= 0; i--) commit(b.ex, i + 1, reqs[i]!);
    a.ex.drain();
    b.ex.drain();
    expect(a.ledger.headHash.equals(b.ledger.headHash)).toBe(true);
    expect(table(a.store)).toBe(table(b.store));
  });
});

describe('Executor deduplication', () => {
  it('executes a (clientId, reqNo) once: a repeat gets a block but no writes', () => {
    const { ex, store, ledger } = setup(false);
    const r = req(7, 0, 3, 'first');
    commit(ex, 1, r);
    commit(ex, 2, req(7, 0, 3, 'again'));
    const [first, second] = ex.drain();
    expect(first!.duplicate).toBe(false);
    expect(second!.duplicate).toBe(true);
    expect(store.writesApplied).toBe(1);
    expect(store.read(3).toString().replace(/\0+$/, '')).toBe('first');
    expect(ledger.height).toBe(2);
    expect(ex.isExecuted(r)).toBe(true);
    expect(ex.lastExecuted(7)).toBe(0);
    expect(ex.lastExecuted(8)).toBe(-1);
  });

  it('treats an older request number after a newer one as a duplicate', () => {
    const { ex, store } = setup(false);
    commit(ex, 1, req(7, 5));
    commit(ex, 2, req(7, 4));
    commit(ex, 3, req(7, 6));
    expect(ex.drain().map((e) => e.duplicate)).toEqual([false, true, false]);
    expect(store.writesApplied).toBe(2);
    expect(ex.lastExecuted(7)).toBe(6);
  });

  it('no-op batches take a block and touch no client', () => {
    const { ex, store, ledger } = setup(true);
    const noop = noopRequest(1);
    ex.commit(1, 0, noop, requestDigest(crypto, noop));
    const [e] = ex.drain();
    expect(e!.duplicate).toBe(false);
    expect(ledger.height).toBe(1);
    expect(store.writesApplied).toBe(0);
    expect(ex.rollbackTo(0)).toBe(1);
    expect(ledger.height).toBe(0);
  });
});

describe('Executor rollback', () => {
  it('restores store, ledger and client table to sequence number k', () => {
    // Reference: paper §3.3.5: roll back executed transactions the new view does not keep.
    const { ex, store, ledger } = setup(true);
    commit(ex, 1, req(1, 0, 1));
    commit(ex, 2, req(2, 0, 2));
    ex.drain();
    const tableAt2 = table(store);
    const headAt2 = ledger.headHash;
    commit(ex, 3, req(1, 1, 2, 'spec'));
    commit(ex, 4, req(3, 0, 1, 'spec'));
    commit(ex, 5, req(2, 0, 2, 'dup')); // a duplicate, rolled back too
    commit(ex, 7, req(4, 0)); // committed, not yet executed
    expect(ex.drain().map((e) => e.k)).toEqual([3, 4, 5]);

    expect(ex.rollbackTo(2)).toBe(3);
    expect(ledger.height).toBe(2);
    expect(ledger.headHash.equals(headAt2)).toBe(true);
    expect(table(store)).toBe(tableAt2);
    expect(ex.lastExecuted(1)).toBe(0);
    expect(ex.lastExecuted(2)).toBe(0);
    expect(ex.lastExecuted(3)).toBe(-1);
    // The new view re-proposes from 3; commits above k are dropped with the rollback.
    expect(ex.pendingCount).toBe(0);
    expect(ex.isCommitted(7)).toBe(false);

    // Rolled-back requests are not duplicates any more: they execute again.
    commit(ex, 3, req(3, 0, 1, 'spec'));
    commit(ex, 4, req(1, 1, 2, 'spec'));
    expect(ex.drain().map((e) => e.duplicate)).toEqual([false, false]);
    expect(ex.lastExecuted(1)).toBe(1);
    expect(ex.lastExecuted(3)).toBe(0);
  });

  it('a rollback and the same re-execution give the same ledger as never rolling back', () => {
    const a = setup(true);
    const b = setup(true);
    const reqs = Array.from({ length: 12 }, (_, i) => req(i % 3, Math.floor(i / 3), i % RECORDS));
    reqs.forEach((r, i) => commit(a.ex, i + 1, r));
    a.ex.drain();
    reqs.forEach((r, i) => commit(b.ex, i + 1, r));
    b.ex.drain();
    b.ex.rollbackTo(5);
    reqs.slice(5).forEach((r, i) => commit(b.ex, i + 6, r));
    b.ex.drain();
    expect(b.ledger.headHash.equals(a.ledger.headHash)).toBe(true);
    expect(table(b.store)).toBe(table(a.store));
  });

  it('rolling back to the head or above undoes nothing', () => {
    const { ex } = setup(true);
    commit(ex, 1, req(1, 0));
    ex.drain();
    expect(ex.rollbackTo(1)).toBe(0);
    expect(ex.rollbackTo(3)).toBe(0);
    expect(ex.executedK).toBe(1);
  });

  it('refuses to roll back a non-speculative executor', () => {
    const { ex } = setup(false);
    commit(ex, 1, req(1, 0));
    ex.drain();
    expect(() => ex.rollbackTo(0)).toThrow();
  });

  it('forget(k) makes executions up to k permanent; later ones still roll back', () => {
    const { ex, store, ledger } = setup(true);
    for (let k = 1; k <= 6; k++) commit(ex, k, req(k, 0, k));
    ex.drain();
    ex.forget(3);
    expect(store.undoDepth).toBe(3);
    expect(() => ex.rollbackTo(2)).toThrow(/no longer undoable/);
    expect(ledger.height).toBe(6);
    expect(ex.rollbackTo(3)).toBe(3);
    expect(ledger.height).toBe(3);
    expect(ex.lastExecuted(3)).toBe(0);
    expect(ex.lastExecuted(4)).toBe(-1);
    ex.forget(3);
    expect(() => ex.rollbackTo(0)).toThrow(/no longer undoable/);
  });

  it('dropPendingAbove forgets commits that were never executed', () => {
    const { ex } = setup(false);
    commit(ex, 2, req(2, 0));
    commit(ex, 4, req(4, 0));
    ex.dropPendingAbove(2);
    expect(ex.isCommitted(2)).toBe(true);
    expect(ex.isCommitted(4)).toBe(false);
  });
});

describe('CheckpointTracker', () => {
  const digestA = crypto.digest(Buffer.from('state A'));
  const digestB = crypto.digest(Buffer.from('state B'));

  it('marks checkpoints every interval', () => {
    const t = new CheckpointTracker(3, 600);
    expect(t.isCheckpoint(0)).toBe(false);
    expect(t.isCheckpoint(600)).toBe(true);
    expect(t.isCheckpoint(900)).toBe(false);
    expect(t.makeCheckpoint(2, 600, digestA)).toEqual({ type: 2, replica: 2, k: 600, stateDigest: digestA });
    expect(() => new CheckpointTracker(3, 0)).toThrow(RangeError);
  });

  it.each([4, 7, 16, 32])('n=%i: stable at nf matching votes, not nf - 1', (n) => {
    // Reference: DESIGN.md "Protocols": CHECKPOINT(k, state digest), stable at nf matching.
    const { nf } = quorums(n);
    const t = new CheckpointTracker(nf, 10);
    for (let r = 0; r < nf - 1; r++) expect(t.add(r, 10, digestA, 100), `n=${n} vote ${r + 1}`).toBeUndefined();
    expect(t.stableK).toBe(0);
    expect(t.add(nf - 1, 10, digestA, 100)).toBe(10);
    expect(t.stableK).toBe(10);
  });

  it('does not combine votes for different digests', () => {
    const t = new CheckpointTracker(3, 10);
    expect(t.add(0, 10, digestA, 100)).toBeUndefined();
    expect(t.add(1, 10, digestA, 100)).toBeUndefined();
    expect(t.add(2, 10, digestB, 100)).toBeUndefined();
    expect(t.add(3, 10, digestA, 100)).toBe(10);
  });

  it('counts a sender once however often it votes', () => {
    const t = new CheckpointTracker(3, 10);
    for (let i = 0; i < 5; i++) expect(t.add(0, 10, digestA, 100)).toBeUndefined();
    expect(t.add(1, 10, digestA, 100)).toBeUndefined();
    expect(t.stableK).toBe(0);
  });

  it('a sender that votes again for k moves its vote to the new digest', () => {
    const t = new CheckpointTracker(3, 10);
    t.add(0, 10, digestA, 100);
    t.add(0, 10, digestB, 100);
    t.add(1, 10, digestA, 100);
    expect(t.add(2, 10, digestA, 100)).toBeUndefined(); // replica 0 no longer backs A
    t.add(1, 10, digestB, 100);
    expect(t.add(2, 10, digestB, 100)).toBe(10);
  });

  it('ignores votes beyond the window, between checkpoints, or at or below the stable one', () => {
    const t = new CheckpointTracker(3, 10);
    for (let r = 0; r < 3; r++) expect(t.add(r, 110, digestA, 100)).toBeUndefined();
    expect(t.pendingCheckpoints).toBe(0);
    for (let r = 0; r < 3; r++) expect(t.add(r, 15, digestA, 100)).toBeUndefined();
    expect(t.pendingCheckpoints).toBe(0);
    for (let r = 0; r < 3; r++) t.add(r, 20, digestA, 100);
    expect(t.stableK).toBe(20);
    for (let r = 0; r < 3; r++) expect(t.add(r, 10, digestA, 100)).toBeUndefined();
    expect(t.stableK).toBe(20);
    expect(t.pendingCheckpoints).toBe(0);
  });

  it('a higher stable checkpoint drops the votes at and below it; higher ones stay', () => {
    const t = new CheckpointTracker(3, 10);
    t.add(0, 10, digestA, 100);
    t.add(0, 30, digestA, 100);
    for (let r = 0; r < 3; r++) t.add(r, 20, digestB, 100);
    expect(t.stableK).toBe(20);
    expect(t.pendingCheckpoints).toBe(1);
    t.add(1, 30, digestA, 100);
    expect(t.add(2, 30, digestA, 100)).toBe(30);
  });

  it('a faulty replica flooding made-up digests cannot keep a checkpoint from becoming stable', () => {
    // n = 4, f = 1: replica 3 votes for many digests before the correct replicas vote.
    const t = new CheckpointTracker(3, 10);
    for (let i = 0; i < 50; i++) t.add(3, 10, crypto.digest(Buffer.from(`junk ${i}`)), 100);
    t.add(0, 10, digestA, 100);
    t.add(1, 10, digestA, 100);
    expect(t.add(2, 10, digestA, 100)).toBe(10);
  });
});
