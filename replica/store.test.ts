/**
 * The YCSB table with its undo log: speculative executions roll back exactly (paper §3.3.5:
 * "If R executed transactions not in E' before the view-change, then R needs to rollback
 * these transactions"), forgotten ones never, and a key outside the table changes nothing.
 */
import { describe, expect, it } from 'vitest';
import type { Write } from './messages.js';
import { StoreError, YcsbStore } from './store.js';

const w = (key: number, text: string): Write => ({ key, value: Buffer.from(text) });
const valueIn = (store: YcsbStore, key: number): string => store.read(key).toString().replace(/\0+$/, '');

function snapshot(store: YcsbStore): string[] {
  return Array.from({ length: store.records }, (_, k) => store.read(k).toString('hex'));
}

describe('YcsbStore', () => {
  it('starts zeroed and reads back what was written', () => {
    const s = new YcsbStore(10, 4);
    expect(s.read(9).equals(Buffer.alloc(4))).toBe(true);
    s.apply(1, [w(3, 'abcd'), w(9, 'wxyz')], false);
    expect(valueIn(s, 3)).toBe('abcd');
    expect(valueIn(s, 9)).toBe('wxyz');
    expect(s.writesApplied).toBe(2);
  });

  it('zero-pads short values and truncates long ones to the record width', () => {
    const s = new YcsbStore(2, 4);
    s.apply(1, [w(0, 'abcd')], false);
    s.apply(2, [w(0, 'x')], false);
    expect(s.read(0).equals(Buffer.from([0x78, 0, 0, 0]))).toBe(true);
    s.apply(3, [w(1, 'abcdefgh')], false);
    expect(valueIn(s, 1)).toBe('abcd');
  });

  it('rejects keys outside the table, negative or fractional', () => {
    const s = new YcsbStore(10, 4);
    for (const key of [-1, 10, 11, 1.5, Number.NaN]) {
      expect(() => s.read(key), `key ${key}`).toThrow(StoreError);
      expect(() => s.apply(1, [w(key, 'x')], false), `key ${key}`).toThrow(StoreError);
    }
    expect(s.validWrites([w(0, 'a'), w(9, 'b')])).toBe(true);
    expect(s.validWrites([w(0, 'a'), w(10, 'b')])).toBe(false);
    expect(s.validWrites([w(-1, 'a')])).toBe(false);
  });

  it('applies a batch with a bad key not at all: no write, no undo record, no count', () => {
    const s = new YcsbStore(10, 4);
    s.apply(1, [w(0, 'keep')], true);
    const before = snapshot(s);
    expect(() => s.apply(2, [w(1, 'lost'), w(0, 'lost'), w(10, 'bad!')], true)).toThrow(StoreError);
    expect(snapshot(s)).toEqual(before);
    expect(s.undoDepth).toBe(1);
    expect(s.writesApplied).toBe(1);
    // The sequence number was not consumed: 2 can still be applied.
    s.apply(2, [w(1, 'next')], true);
    expect(valueIn(s, 1)).toBe('next');
  });

  it('rejects constructor arguments that make no table', () => {
    expect(() => new YcsbStore(0, 4)).toThrow(RangeError);
    expect(() => new YcsbStore(10, 0)).toThrow(RangeError);
    expect(() => new YcsbStore(1.5, 4)).toThrow(RangeError);
  });
});

describe('YcsbStore undo log', () => {
  it('rolls back every undoable execution above k, newest first, to the exact bytes', () => {
    // Reference: paper §3.3.5 (rollback of executions the new view does not keep).
    const s = new YcsbStore(8, 4);
    s.apply(1, [w(0, 'a1'), w(1, 'b1')], true);
    const at1 = snapshot(s);
    s.apply(2, [w(0, 'a2'), w(2, 'c2')], true);
    const at2 = snapshot(s);
    s.apply(3, [w(0, 'a3'), w(0, 'a3b'), w(1, 'b3')], true); // one key twice in a batch
    s.apply(4, [], true); // a batch with no writes still has an undo record
    expect(s.undoDepth).toBe(4);

    expect(s.rollbackTo(2)).toBe(2);
    expect(snapshot(s)).toEqual(at2);
    expect(s.rollbackTo(1)).toBe(1);
    expect(snapshot(s)).toEqual(at1);
    expect(s.rollbackTo(0)).toBe(1);
    expect(snapshot(s)).toEqual(snapshot(new YcsbStore(8, 4)));
    expect(s.rollbackTo(0)).toBe(0);
  });

  it('rolling back to the newest execution or above undoes nothing', () => {
    const s = new YcsbStore(4, 2);
    s.apply(1, [w(0, 'x')], true);
    expect(s.rollbackTo(1)).toBe(0);
    expect(s.rollbackTo(5)).toBe(0);
    expect(valueIn(s, 0)).toBe('x');
  });

  it('requires increasing sequence numbers for undoable executions', () => {
    const s = new YcsbStore(4, 2);
    s.apply(5, [w(0, 'x')], true);
    expect(() => s.apply(5, [w(1, 'y')], true)).toThrow(StoreError);
    expect(() => s.apply(4, [w(1, 'y')], true)).toThrow(StoreError);
    expect(valueIn(s, 1)).toBe('');
    s.apply(6, [w(1, 'y')], true);
  });

  it('keeps no undo record for non-undoable executions', () => {
    const s = new YcsbStore(4, 2);
    s.apply(1, [w(0, 'x')], false);
    expect(s.undoDepth).toBe(0);
    expect(s.rollbackTo(0)).toBe(0);
    expect(valueIn(s, 0)).toBe('x');
  });

  it('forget(k) drops records up to and including k, which then never roll back', () => {
    const s = new YcsbStore(4, 2);
    for (let k = 1; k <= 5; k++) s.apply(k, [w(0, `v${k}`)], true);
    s.forget(3);
    expect(s.undoDepth).toBe(2);
    expect(s.oldestUndoableK).toBe(4);
    expect(s.rollbackTo(0)).toBe(2); // only 5 and 4 can go
    expect(valueIn(s, 0)).toBe('v3');
    s.forget(10);
    expect(s.undoDepth).toBe(0);
    expect(s.oldestUndoableK).toBeUndefined();
  });

  it('forget below the oldest record, or on an empty log, is a no-op', () => {
    const s = new YcsbStore(4, 2);
    s.forget(3);
    s.apply(4, [w(0, 'x')], true);
    s.forget(3);
    expect(s.undoDepth).toBe(1);
  });

  it('the undo log stays bounded by the executions since the last forget', () => {
    const s = new YcsbStore(16, 8);
    for (let k = 1; k <= 6000; k++) {
      s.apply(k, [w(k % 16, `${k}`)], true);
      if (k % 600 === 0) s.forget(k);
      expect(s.undoDepth).toBeLessThanOrEqual(600);
    }
  });
});

describe('undo arena across slabs', () => {
  // Word-aligned records take the word-copy path, others Buffer.copy: both must be exact.
  it.each([
    256 * 1024,
    256 * 1024 + 2,
  ])('matches a copy-on-write reference model under random apply, rollback and forget (seed printed, %i-byte values)', (vb) => {
    // Values of 256 KB make every batch of a few writes fill a good part of a 4 MB slab, so
    // records straddle slab boundaries, rollbacks release slabs and forgets free old ones.
    const seed = 20261121;
    let s = seed;
    const rand = (n: number): number => {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      return s % n;
    };
    const records = 8;
    const store = new YcsbStore(records, vb);
    const snapshots = new Map<number, Buffer[]>();
    const snap = (): Buffer[] => Array.from({ length: records }, (_, key) => Buffer.from(store.read(key)));
    let k = 0;
    let forgotten = 0;
    snapshots.set(0, snap());
    for (let step = 0; step < 300; step++) {
      const op = rand(10);
      if (op < 6) {
        k++;
        const writes = Array.from({ length: 1 + rand(6) }, () => ({ key: rand(records), value: Buffer.alloc(vb, rand(256)) }));
        store.apply(k, writes, true);
        snapshots.set(k, snap());
      } else if (op < 8 && k > forgotten) {
        const to = forgotten + rand(k - forgotten + 1);
        store.rollbackTo(to);
        for (const key of [...snapshots.keys()]) if (key > to) snapshots.delete(key);
        k = to;
        const want = snapshots.get(k)!;
        for (let key = 0; key < records; key++) {
          expect(store.read(key).equals(want[key]!), `seed=${seed} step=${step}: key ${key} after rollback to ${k}`).toBe(true);
        }
      } else if (k > forgotten) {
        forgotten = forgotten + rand(k - forgotten + 1);
        store.forget(forgotten);
        expect(store.oldestUndoableK === undefined || store.oldestUndoableK > forgotten, `seed=${seed} step=${step}`).toBe(true);
      }
    }
  });
});
