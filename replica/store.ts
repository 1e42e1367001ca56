/**
 * The YCSB table every replica holds (paper §5: 600K records, initialised identically on
 * every replica), with an undo log so that speculative executions can be rolled back
 * (paper §3.3.5: "If R executed transactions not in E' before the view-change, then R needs
 * to rollback these transactions").
 *
 * Values live in one contiguous Buffer of `records * valueBytes` bytes: a write is one copy,
 * and the table costs no per-record objects.
 */
/** One YCSB write: a record key and its new value. */
export interface Write {
  readonly key: number;
  readonly value: Buffer;
}

/**
 * A batch's writes held flat, as they lie in its encoded body (replica/messages.ts WriteBatch):
 * key i and where value i's bytes are, with no object per write. A batch of 100 writes decoded
 * into objects cost 200 allocations (an object and a Buffer view per write) at every replica,
 * and the requests a replica keeps until its checkpoint carried them into the old generation.
 */
export interface FlatWrites {
  readonly length: number;
  /** The buffer the values lie in, and the same bytes as a DataView. */
  readonly bytes: Buffer;
  readonly view: DataView;
  keyAt(i: number): number;
  /** Offset of value i in `bytes`. */
  valueAt(i: number): number;
  valueLengthAt(i: number): number;
  /** When every value has one length: bytes per write (header and value); 0 otherwise. */
  readonly stride: number;
  /** Where write 0 starts in `bytes` (read with a non-zero stride). */
  readonly first: number;
}

/** Bytes of a flat write before its value: key u32, value length u16 (replica/messages.ts). */
export const FLAT_WRITE_HEADER_BYTES = 4 + 2;

/** A batch's writes, as objects (tests, the bench's floor) or flat (every request a codec decodes or a client builds). */
export type Writes = readonly Write[] | FlatWrites;

function isFlat(writes: Writes): writes is FlatWrites {
  return !Array.isArray(writes);
}

interface UndoRecord {
  readonly k: number;
  /** Where this record's keys and old values start in the arena. */
  readonly slab: number;
  readonly offset: number;
  readonly count: number;
}

/**
 * Old values live in large preallocated slabs, appended in sequence order and released whole
 * once every record in them is forgotten. A buffer per batch (the first version) kept ~6 KB per
 * batch alive until the next stable checkpoint, and the garbage collector paid for it on every
 * speculative execution (measured with --cpu-prof in `npm run bench`).
 */
const SLAB_BYTES = 4 * 1024 * 1024;
/**
 * The first slab is smaller, and each fresh one twice the last, up to SLAB_BYTES: a store that
 * needs little undo space (the simulator's 10 writes of 16 bytes per batch) never holds a 4 MB
 * slab, and sixteen replicas' 4 MB slabs at once made V8 run two full garbage collections for
 * the external memory early in every simulation (--trace-gc).
 */
const FIRST_SLAB_BYTES = 64 * 1024;

const align4 = (n: number): number => (n + 3) & ~3;

/** Loads a word of every cache line of the row of `words` words at word `s` (apply's early loads), XORed so they are kept. */
function touchRow(tw: Uint32Array, s: number, words: number): number {
  let x = 0;
  for (let j = 0; j < words; j += LINE_WORDS) x ^= tw[s + j]!;
  return x ^ tw[s + words - 1]!;
}

/** 32-bit words per 64-byte cache line. */
const LINE_WORDS = 16;

/** Uint32Array words are in the platform's byte order; a DataView read must match it. */
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

export class StoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StoreError';
  }
}

export class YcsbStore {
  private readonly table: Buffer;
  /** The table as 32-bit words: undo copies of word-aligned records move words, not Buffers. */
  private readonly tableWords: Uint32Array | undefined;
  private undo: UndoRecord[] = [];
  private undoHead = 0;
  /** Slabs in use, oldest first; `slabBase` is the index of slabs[0] (indexes only grow). */
  private slabs: Buffer[] = [];
  private slabWords: Uint32Array[] = [];
  private slabBase = 0;
  private slabPos = 0;
  private readonly spareSlabs: Buffer[] = [];
  /** The size of the next fresh slab (see FIRST_SLAB_BYTES). */
  private nextSlabBytes = FIRST_SLAB_BYTES;
  /** Writes applied since the table was created (for metrics and tests). */
  writesApplied = 0;
  /** Row word offsets of the batch being applied (applyUniform), reused. */
  private rows = new Uint32Array(128);
  /** The words apply() loaded ahead of its copies, kept so the loads are not optimised away. */
  touched = 0;

  constructor(
    readonly records: number,
    readonly valueBytes: number,
  ) {
    if (!Number.isInteger(records) || records < 1) throw new RangeError(`records must be >= 1, got ${records}`);
    if (!Number.isInteger(valueBytes) || valueBytes < 1) throw new RangeError(`valueBytes must be >= 1, got ${valueBytes}`);
    // Own ArrayBuffers (offset 0) so that word views line up with records.
    this.table = Buffer.from(new ArrayBuffer(records * valueBytes));
    this.tableWords = valueBytes % 4 === 0 ? new Uint32Array(this.table.buffer, 0, (records * valueBytes) / 4) : undefined;
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
  validWrites(writes: Writes): boolean {
    if (isFlat(writes)) {
      for (let i = 0; i < writes.length; i++) if (writes.keyAt(i) >= this.records) return false;
      return true;
    }
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
  apply(k: number, writes: Writes, undoable: boolean): void {
    const vb = this.valueBytes;
    const flat = isFlat(writes) ? writes : undefined;
    if (flat && this.tableWords && flat.stride) {
      const valueBytes = Math.min(vb, flat.stride - FLAT_WRITE_HEADER_BYTES);
      if ((valueBytes & 3) === 0) {
        this.applyUniform(k, flat, valueBytes >> 2, undoable);
        return;
      }
    }
    const objects = flat ? undefined : (writes as readonly Write[]);
    const count = writes.length;
    // Check every key first: a batch that fails half-way would leave writes with no undo record.
    // The same pass loads a word of every cache line of every row it will write (a row need not
    // start on a line): the table is far larger than the caches, and these loads, independent of
    // each other, have their misses in flight together instead of one row at a time in the copy
    // loop below (100 rows of 64 bytes on a cold table: 10 us without, 3 us with).
    const tw = this.tableWords;
    const words = vb >> 2;
    let touched = 0;
    for (let i = 0; i < count; i++) {
      const key = flat ? flat.keyAt(i) : objects![i]!.key;
      this.checkKey(key);
      if (tw) touched ^= touchRow(tw, key * words, words);
    }
    this.touched = touched & 1;
    let slab: Buffer | undefined;
    let keysAt = 0;
    let valuesAt = 0;
    if (undoable) {
      keysAt = this.beginUndo(k, count);
      valuesAt = keysAt + count * 4;
      slab = this.slabs[this.slabs.length - 1]!;
    }
    const slabWords = slab ? this.slabWords[this.slabWords.length - 1]! : undefined;
    const table = this.table;
    let src: DataView | undefined;
    for (let i = 0; i < count; i++) {
      const key = flat ? flat.keyAt(i) : objects![i]!.key;
      const at = key * vb;
      if (slab) {
        slabWords![(keysAt >> 2) + i] = key;
        this.copyOut(slab, slabWords!, valuesAt + i * vb, at);
      }
      let n: number;
      if (flat) {
        n = Math.min(vb, flat.valueLengthAt(i));
        const from = flat.valueAt(i);
        if (tw && (n & 3) === 0) {
          // Word by word through a DataView of the body (values lie at any alignment there): a
          // Buffer view per value to copy from cost an allocation, and this is 3x faster.
          src ??= flat.view;
          const d = at >> 2;
          for (let j = 0; j < n >> 2; j++) tw[d + j] = src.getUint32(from + 4 * j, LITTLE_ENDIAN);
        } else {
          table.set(flat.bytes.subarray(from, from + n), at);
        }
      } else {
        const value = objects![i]!.value;
        n = Math.min(vb, value.length);
        table.set(n === value.length ? value : value.subarray(0, n), at);
      }
      if (n < vb) table.fill(0, at + n, at + vb);
    }
    this.writesApplied += count;
  }

  /**
   * Opens the undo record of the batch executed at k, with `count` writes, in the newest slab
   * (a fresh one if it is full) and returns where its keys start there. A record is [count keys
   * as u32][count old values], each part word-aligned; the caller fills both.
   */
  private beginUndo(k: number, count: number): number {
    const last = this.undo[this.undo.length - 1];
    if (this.undo.length > this.undoHead && last!.k >= k) {
      throw new StoreError(`undo log: sequence ${k} applied after ${last!.k}`);
    }
    const bytes = count * 4 + count * this.valueBytes;
    this.reserve(bytes);
    const keysAt = this.slabPos;
    this.undo.push({ k, slab: this.slabBase + this.slabs.length - 1, offset: keysAt, count });
    this.slabPos = align4(keysAt + bytes);
    return keysAt;
  }

  /**
   * apply() for flat writes whose values all have one length, a whole number of words (every
   * batch a client here sends): the same checks, undo record and table bytes, with each write's
   * offset stepped by `stride` instead of asked for, and each value moved word by word.
   */
  private applyUniform(k: number, flat: FlatWrites, valueWords: number, undoable: boolean): void {
    const { first, stride } = flat;
    const vb = this.valueBytes;
    const tw = this.tableWords!;
    const words = vb >> 2;
    const count = flat.length;
    const view = flat.view;
    const records = this.records;
    // As in apply(): every key checked before anything is written, and a word of every cache
    // line of every row loaded ahead of the copies. The rows' offsets are gathered first and
    // loaded in a loop of a few instructions: interleaved with the key decoding, the loads of
    // about five rows were in flight at once, and waiting for them was two thirds of this
    // method's time in `npm run bench` (perf annotate of a PoE backup); a tight loop keeps far
    // more of the table's cache and TLB misses outstanding together.
    const rows = this.rowScratch(count);
    for (let i = 0, at = first; i < count; i++, at += stride) {
      const key = view.getUint32(at);
      if (key >= records) this.checkKey(key);
      rows[i] = key * words;
    }
    let touched = 0;
    if (words <= LINE_WORDS) {
      const last = words - 1;
      for (let i = 0; i < count; i++) {
        const s = rows[i]!;
        touched ^= tw[s]! ^ tw[s + last]!;
      }
    } else {
      for (let i = 0; i < count; i++) touched ^= touchRow(tw, rows[i]!, words);
    }
    this.touched = touched & 1;
    if (undoable) {
      // Keys and old values go to the slab as words (slab offsets are word-aligned), and each
      // row's old word is saved and its new word written in one pass: a key through
      // Buffer.writeUInt32LE and the old row through a second loop cost a sixth of apply.
      const keysAt = this.beginUndo(k, count) >> 2;
      const slabWords = this.slabWords[this.slabWords.length - 1]!;
      for (let i = 0, at = first, u = keysAt + count; i < count; i++, at += stride, u += words) {
        const d = rows[i]!;
        slabWords[keysAt + i] = view.getUint32(at);
        const from = at + FLAT_WRITE_HEADER_BYTES;
        for (let j = 0; j < valueWords; j++) {
          slabWords[u + j] = tw[d + j]!;
          tw[d + j] = view.getUint32(from + 4 * j, LITTLE_ENDIAN);
        }
        for (let j = valueWords; j < words; j++) {
          slabWords[u + j] = tw[d + j]!;
          tw[d + j] = 0;
        }
      }
    } else {
      for (let i = 0, at = first; i < count; i++, at += stride) {
        const d = rows[i]!;
        const from = at + FLAT_WRITE_HEADER_BYTES;
        for (let j = 0; j < valueWords; j++) tw[d + j] = view.getUint32(from + 4 * j, LITTLE_ENDIAN);
        for (let j = valueWords; j < words; j++) tw[d + j] = 0;
      }
    }
    this.writesApplied += count;
  }

  /** A scratch array of at least `count` words (apply's row offsets), kept between batches. */
  private rowScratch(count: number): Uint32Array {
    if (this.rows.length < count) this.rows = new Uint32Array(Math.max(count, 2 * this.rows.length));
    return this.rows;
  }

  /**
   * Copies the record at table offset `at` to `dst` in a slab. Word by word when records are
   * word-aligned: Buffer.copy allocates a view per call, and with 100 writes per batch that
   * garbage was most of what the undo log cost (a CPU profile of `npm run bench`).
   */
  private copyOut(slab: Buffer, slabWords: Uint32Array, dst: number, at: number): void {
    const tw = this.tableWords;
    if (tw) {
      const words = this.valueBytes >> 2;
      const s = at >> 2;
      const d = dst >> 2;
      for (let j = 0; j < words; j++) slabWords[d + j] = tw[s + j]!;
    } else {
      this.table.copy(slab, dst, at, at + this.valueBytes);
    }
  }

  private copyBack(slab: Buffer, slabWords: Uint32Array, src: number, at: number): void {
    const tw = this.tableWords;
    if (tw) {
      const words = this.valueBytes >> 2;
      const s = src >> 2;
      const d = at >> 2;
      for (let j = 0; j < words; j++) tw[d + j] = slabWords[s + j]!;
    } else {
      slab.copy(this.table, at, src, src + this.valueBytes);
    }
  }

  /** The slab the next `need` bytes go to (a fresh one when the current cannot hold them). */
  private reserve(need: number): Buffer {
    const current = this.slabs[this.slabs.length - 1];
    if (current && this.slabPos + need <= current.length) return current;
    const size = align4(Math.max(this.nextSlabBytes, need));
    // A spare too small for this (slabs only grow) is dropped.
    let fresh: Buffer | undefined;
    while (!fresh && this.spareSlabs.length > 0) {
      const spare = this.spareSlabs.pop()!;
      if (spare.length >= size) fresh = spare;
    }
    if (!fresh) {
      fresh = Buffer.from(new ArrayBuffer(size));
      this.nextSlabBytes = Math.min(SLAB_BYTES, 2 * this.nextSlabBytes);
    }
    this.slabs.push(fresh);
    this.slabWords.push(new Uint32Array(fresh.buffer, fresh.byteOffset, fresh.length >> 2));
    this.slabPos = 0;
    return fresh;
  }

  /** Undoes every undoable execution with sequence number above k, newest first. */
  rollbackTo(k: number): number {
    let undone = 0;
    const vb = this.valueBytes;
    while (this.undo.length > this.undoHead && this.undo[this.undo.length - 1]!.k > k) {
      const rec = this.undo.pop()!;
      const index = rec.slab - this.slabBase;
      const slab = this.slabs[index]!;
      const words = this.slabWords[index]!;
      const valuesAt = rec.offset + rec.count * 4;
      for (let i = rec.count - 1; i >= 0; i--) {
        this.copyBack(slab, words, valuesAt + i * vb, words[(rec.offset >> 2) + i]! * vb);
      }
      // The arena's tail goes back to where this record started.
      while (this.slabBase + this.slabs.length - 1 > rec.slab) {
        this.slabWords.pop();
        this.releaseSlab(this.slabs.pop()!);
      }
      this.slabPos = rec.offset;
      undone++;
    }
    return undone;
  }

  /** Drops undo records up to and including k (after a stable checkpoint): they can never roll back. */
  forget(k: number): void {
    while (this.undoHead < this.undo.length && this.undo[this.undoHead]!.k <= k) this.undoHead++;
    if (this.undoHead === this.undo.length) {
      this.undo = [];
      this.undoHead = 0;
      // Keep the current slab for the next records; release every older one.
      while (this.slabs.length > 1) {
        this.slabWords.shift();
        this.releaseSlab(this.slabs.shift()!);
        this.slabBase++;
      }
      return;
    }
    const oldestSlab = this.undo[this.undoHead]!.slab;
    while (this.slabBase < oldestSlab) {
      this.slabWords.shift();
      this.releaseSlab(this.slabs.shift()!);
      this.slabBase++;
    }
    if (this.undoHead > 1024) {
      this.undo = this.undo.slice(this.undoHead);
      this.undoHead = 0;
    }
  }

  private releaseSlab(slab: Buffer): void {
    if (slab.length <= SLAB_BYTES && this.spareSlabs.length < 2) this.spareSlabs.push(slab);
  }

  get undoDepth(): number {
    return this.undo.length - this.undoHead;
  }

  /** The lowest sequence number that can still be rolled back, or undefined. */
  get oldestUndoableK(): number | undefined {
    return this.undo[this.undoHead]?.k;
  }
}
