/**
 * The pieces every protocol core shares: the Executor (in-order execution, deduplication on
 * (clientId, reqNo), speculative rollback) and the CheckpointTracker (stable at nf matching).
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../client/random.js';
import { CheckpointTracker, Executor, sameBytes } from './common.js';
import { createCrypto } from './crypto.js';
import { Ledger } from './ledger.js';
import { makeRequest, noopRequest, requestDigest, type ClientRequest, type Write } from './messages.js';
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

/** Replay a failure with EXECUTOR_SEED=<seed> npx vitest run replica/common.test.ts. */
const EXECUTOR_SEED = Number(process.env['EXECUTOR_SEED'] ?? Date.now() % 2 ** 31);

describe(`Executor against a reference model (seed ${EXECUTOR_SEED})`, () => {
  /** The state after each height: every client's highest reqNo and the table, copied whole. */
  interface ModelState {
    readonly last: ReadonlyMap<number, number>;
    readonly table: readonly string[];
  }

  it('random commits, forgets and rollbacks, past 1,024 forgotten undo entries, agree with the model', () => {
    console.log(`Executor differential seed ${EXECUTOR_SEED} (replay with EXECUTOR_SEED=${EXECUTOR_SEED})`);
    const rng = new Rng(EXECUTOR_SEED);
    const { ex, store, ledger } = setup(true);
    const clients = 6;
    // states[h]: the model after height h. Rollback to k keeps states[0..k]: the model's undo is
    // throwing the newer states away; its client table and store are never undone in place.
    const states: ModelState[] = [{ last: new Map(), table: Array.from({ length: RECORDS }, () => '00'.repeat(VALUE_BYTES)) }];
    let forgotten = 0; // the highest k passed to forget: no rollback below it
    let compactions = 0;
    let failedRollbacks = 0;
    let rollbacks = 0;
    const ctx = (step: number): string => `seed ${EXECUTOR_SEED} step ${step}`;
    // Peeks at the undo log only to count compactions (the path this test is for).
    const undoHead = (): number => (ex as unknown as { undoHead: number }).undoHead;
    const undoLength = (): number => (ex as unknown as { undoK: number[] }).undoK.length;

    const rollback = (k: number, step: number): void => {
      const h = states.length - 1;
      if (k >= h) {
        expect(ex.rollbackTo(k), ctx(step)).toBe(0);
      } else if (k < forgotten) {
        expect(() => ex.rollbackTo(k), ctx(step)).toThrow(/no longer undoable/);
        failedRollbacks++;
      } else {
        expect(ex.rollbackTo(k), ctx(step)).toBe(h - k);
        states.length = k + 1;
        rollbacks++;
      }
    };

    for (let step = 0; step < 16_000; step++) {
      const h = states.length - 1;
      const r = rng.nextDouble();
      if (r < 0.6) {
        // 1-4 batches, committed in a random order, then executed.
        const m = 1 + rng.nextInt(4);
        const batches: { k: number; request: ClientRequest; writes?: readonly Write[] }[] = [];
        for (let i = 1; i <= m; i++) {
          const k = h + i;
          if (rng.chance(0.05)) {
            batches.push({ k, request: noopRequest(k) });
            continue;
          }
          const clientId = rng.nextInt(clients);
          // Around the client's newest reqNo: some repeats and older ones (duplicates).
          const newest = states[h]!.last.get(clientId) ?? -1;
          const reqNo = Math.max(0, newest + rng.nextInt(4) - 1 + (i - 1));
          const writes: Write[] = [];
          for (let w = 1 + rng.nextInt(3); w > 0; w--) {
            const value = Buffer.alloc(VALUE_BYTES);
            value.writeUInt32BE(k, 0);
            value.writeUInt32BE(rng.nextInt(2 ** 32), 4);
            writes.push({ key: rng.nextInt(RECORDS), value });
          }
          batches.push({ k, request: makeRequest(signer, 0, clientId, reqNo, writes), writes });
        }
        for (const i of [...batches.keys()].sort(() => rng.nextDouble() - 0.5)) commit(ex, batches[i]!.k, batches[i]!.request);
        const done = ex.drain();
        expect(
          done.map((e) => e.k),
          ctx(step),
        ).toEqual(batches.map((b) => b.k));
        for (const [i, { request, writes }] of batches.entries()) {
          const before = states[states.length - 1]!;
          const last = new Map(before.last);
          const table = [...before.table];
          let duplicate = false;
          // A no-op takes a block and touches no client.
          if (writes) {
            const previous = before.last.get(request.clientId);
            duplicate = previous !== undefined && request.reqNo <= previous;
            if (!duplicate) {
              last.set(request.clientId, request.reqNo);
              for (const write of writes) table[write.key] = write.value.toString('hex');
            }
          }
          expect(done[i]!.duplicate, `${ctx(step)} k=${batches[i]!.k}`).toBe(duplicate);
          states.push({ last, table });
        }
      } else if (r < 0.75) {
        // Mostly a partial forget (some executions above it stay undoable, as at a stable
        // checkpoint while later batches run speculatively), rarely all: the undo log then keeps
        // growing at its head until more than 1,024 entries are forgotten and it is compacted.
        const k = rng.chance(0.002) ? h : Math.max(forgotten, h - 1 - rng.nextInt(8));
        const headBefore = undoHead();
        ex.forget(k);
        forgotten = Math.max(forgotten, k);
        if (headBefore > 0 && undoHead() === 0 && undoLength() > 0) {
          compactions++;
          // Right after a compaction, often undo every entry it kept.
          if (rng.chance(0.5)) rollback(forgotten + rng.nextInt(2), step);
        }
      } else {
        // A rollback: mostly a few batches deep, staying above the last forget (which keeps
        // undo entries alive, so that the forgotten ones pile up to a compaction); some below
        // the last forget, which must be refused; rarely exactly to it (every entry undone).
        const choice = rng.nextDouble();
        let k: number;
        if (choice < 0.25 && forgotten > 0) k = Math.max(0, forgotten - 1 - rng.nextInt(3));
        else if (choice < 0.3) k = h + rng.nextInt(2);
        else if (choice < 0.302) k = forgotten;
        else k = Math.min(h, Math.max(forgotten + 1, h - 1 - rng.nextInt(3)));
        rollback(k, step);
      }
      const model = states[states.length - 1]!;
      expect(ex.executedK, ctx(step)).toBe(states.length - 1);
      expect(ledger.height, ctx(step)).toBe(states.length - 1);
      for (let c = 0; c < clients; c++) expect(ex.lastExecuted(c), `${ctx(step)} client ${c}`).toBe(model.last.get(c) ?? -1);
      expect(table(store).split(','), ctx(step)).toEqual(model.table);
    }
    console.log(`Executor differential: height ${states.length - 1}, ${rollbacks} rollbacks, ${failedRollbacks} refused, ${compactions} compactions`);
    // The paths this test is for were taken: the undo log's compaction and rollbacks after it.
    expect(compactions, `seed ${EXECUTOR_SEED}`).toBeGreaterThan(0);
    expect(rollbacks, `seed ${EXECUTOR_SEED}`).toBeGreaterThan(100);
    expect(failedRollbacks, `seed ${EXECUTOR_SEED}`).toBeGreaterThan(10);
  });
});

describe('sameBytes', () => {
  it('is true for the same length and bytes, false otherwise', () => {
    const a = crypto.digest(Buffer.from('a'));
    expect(sameBytes(a, Buffer.from(a))).toBe(true);
    expect(sameBytes(a, new Uint8Array(a))).toBe(true);
    expect(sameBytes(new Uint8Array(0), Buffer.alloc(0))).toBe(true);
    for (const at of [0, 15, 31]) {
      const b = Buffer.from(a);
      b[at] = b[at]! ^ 0x80;
      expect(sameBytes(a, b), `byte ${at}`).toBe(false);
      expect(sameBytes(b, a), `byte ${at}`).toBe(false);
    }
    // A prefix or an extension is not the same, whichever side is longer.
    expect(sameBytes(a, a.subarray(0, 31))).toBe(false);
    expect(sameBytes(a.subarray(0, 31), a)).toBe(false);
    expect(sameBytes(a, Buffer.concat([a, Buffer.alloc(1)]))).toBe(false);
    expect(sameBytes(Buffer.alloc(32), Buffer.alloc(0))).toBe(false);
  });

  it('compares a view into a larger buffer by its own bytes', () => {
    // A CHECKPOINT's digest is a view into its frame.
    const a = crypto.digest(Buffer.from('a'));
    const frame = Buffer.concat([Buffer.alloc(7, 0xff), a, Buffer.alloc(5, 0xff)]);
    expect(sameBytes(frame.subarray(7, 39), a)).toBe(true);
    expect(sameBytes(frame.subarray(6, 38), a)).toBe(false);
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
