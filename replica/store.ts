/**
 * The YCSB table every replica holds (paper §5: 600K records, initialised identically on
 * every replica), with an undo log so that speculative executions can be rolled back
 * (paper §3.3.5: "If R executed transactions not in E' before the view-change, then R needs
 * to rollback these transactions").
 *
 * Values live in one contiguous Buffer of `records * valueBytes` bytes: a write is one copy,
 * and the table costs no per-record objects.
 */
import type { Write } from './messages.js';

interface UndoRecord {
  readonly k: number;
  /** Keys and their previous values, in the order they were overwritten. */
  readonly keys: number[];
  readonly oldValues: Buffer;
}

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

export class YcsbStore {
  private readonly table: Buffer;
  private undo: UndoRecord[] = [];
  /** Writes applied since the table was created (for metrics and tests). */
  writesApplied = 0;

  constructor(
    readonly records: number,
    readonly valueBytes: number,
  ) {
    if (!Number.isInteger(records) || records < 1) throw new RangeError(`records must be >= 1, got ${records}`);
    if (!Number.isInteger(valueBytes) || valueBytes < 1) throw new RangeError(`valueBytes must be >= 1, got ${valueBytes}`);
    this.table = Buffer.alloc(records * valueBytes);
  }

  read(key: number): Buffer {
    this.checkKey(key);
    return this.table.subarray(key * this.valueBytes, (key + 1) * this.valueBytes);
  }

  private checkKey(key: number): void {
    if (!Number.isInteger(key) || key < 0 || key >= this.records) {
      throw new StoreError(`key ${key} outside the table of ${this.records} records`);
    }
  }

  /** True if every write names a key in the table; replicas reject batches that do not. */
  validWrites(writes: readonly Write[]): boolean {
    for (const w of writes) {
      if (!Number.isInteger(w.key) || w.key < 0 || w.key >= this.records) return false;
    }
    return true;
  }

  /**
   * Applies the writes of the batch executed at sequence number k. With `undoable`, the old
   * values are kept until `forget(k)` so that `rollbackTo` can restore them. A value shorter
   * than a record is zero-padded, a longer one truncated: the table has fixed-width records.
   */
  apply(k: number, writes: readonly Write[], undoable: boolean): void {
    const vb = this.valueBytes;
    let old: Buffer | undefined;
    const keys: number[] = [];
    // Check every key first: a batch that fails half-way would leave writes with no undo record.
    for (const { key } of writes) this.checkKey(key);
    if (undoable) {
      if (this.undo.length > 0 && this.undo[this.undo.length - 1]!.k >= k) {
        throw new StoreError(`undo log: sequence ${k} applied after ${this.undo[this.undo.length - 1]!.k}`);
      }
      old = Buffer.allocUnsafe(writes.length * vb);
    }
    for (let i = 0; i < writes.length; i++) {
      const { key, value } = writes[i]!;
      const at = key * vb;
      if (old) {
        this.table.copy(old, i * vb, at, at + vb);
        keys.push(key);
      }
      const n = value.copy(this.table, at, 0, Math.min(vb, value.length));
      if (n < vb) this.table.fill(0, at + n, at + vb);
    }
    this.writesApplied += writes.length;
    if (old) this.undo.push({ k, keys, oldValues: old });
  }

  /** Undoes every undoable execution with sequence number above k, newest first. */
  rollbackTo(k: number): number {
    let undone = 0;
    while (this.undo.length > 0 && this.undo[this.undo.length - 1]!.k > k) {
      const rec = this.undo.pop()!;
      for (let i = rec.keys.length - 1; i >= 0; i--) {
        const at = rec.keys[i]! * this.valueBytes;
        rec.oldValues.copy(this.table, at, i * this.valueBytes, (i + 1) * this.valueBytes);
      }
      undone++;
    }
    return undone;
  }

  /** Drops undo records up to and including k (after a stable checkpoint): they can never roll back. */
  forget(k: number): void {
    let i = 0;
    while (i < this.undo.length && this.undo[i]!.k <= k) i++;
    if (i > 0) this.undo = this.undo.slice(i);
  }

  get undoDepth(): number {
    return this.undo.length;
  }

  /** The lowest sequence number that can still be rolled back, or undefined. */
  get oldestUndoableK(): number | undefined {
    return this.undo[0]?.k;
  }
}
