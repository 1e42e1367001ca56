/**
 * The simulator's event queue, ordered by (virtual time, insertion sequence).
 *
 * Ties in time are broken by the order events were scheduled, never by the queue's layout, so
 * the same inputs always pop in the same order: this is what makes a seed replay a run exactly
 * (TigerBeetle's VOPR, STYLE.md).
 *
 * A calendar queue (Brown, CACM 1988) in front of a 4-ary heap. Virtual time is cut into
 * buckets (1/128 ms by default) and a ring of buckets covers the next stretch of time (64 ms by
 * default). Almost every event of a run is a message copy due a link delay after now: it lands
 * in its bucket in O(1), unsorted, and a bucket is sorted (a few entries, by time then sequence)
 * only when the clock reaches it; an event pushed into the bucket being consumed is put in its
 * place. Anything outside the ring's stretch (long timers, or a time before the bucket being
 * consumed) goes to the heap, and a pop takes the earlier of the two heads, so the order is
 * exactly that of a single heap whatever the delays are; only the speed depends on them. A run
 * at n = 16 pops one event per simulated message with about a thousand in flight, and the heap
 * alone spent about a thousand machine instructions a pop and push sifting (callgrind).
 *
 * Entries live in typed-array slabs (time, sequence, aux number, next entry in the bucket) with
 * a free list, and items in one array beside them: no object per event.
 */
export class EventQueue<T> {
  private readonly heap = new Heap<T>();
  private readonly perMs: number;
  private readonly mask: number;
  /** First entry of each bucket's list, -1 if none (the bucket being consumed is in `run` instead). */
  private readonly heads: Int32Array;
  // The entry slab, and its free list through `next`.
  private times = new Float64Array(1024);
  private seqs = new Float64Array(1024);
  private auxes = new Int32Array(1024);
  private next = new Int32Array(1024);
  private items: (T | undefined)[] = new Array<T | undefined>(1024).fill(undefined);
  private free = -1;
  private used = 0;
  /** The bucket being consumed: its entries sorted, the next at runPos. */
  private run = new Int32Array(64);
  private runPos = 0;
  private runLen = 0;
  /** Absolute number of the bucket being consumed (time * perMs, floored). */
  private cur = 0;
  /** Entries in the ring (buckets and run), not yet popped. */
  private ringCount = 0;
  private nextSeq = 0;
  /** The `aux` of the item popItem() returned last. */
  poppedAux = 0;

  /**
   * @param bucketsPerMs buckets per virtual millisecond
   * @param ringBuckets buckets in the ring (a power of two); the ring covers ringBuckets / bucketsPerMs ms
   */
  constructor(bucketsPerMs = 128, ringBuckets = 8192) {
    if (!(bucketsPerMs > 0) || !Number.isInteger(ringBuckets) || ringBuckets < 1 || (ringBuckets & (ringBuckets - 1)) !== 0) {
      throw new RangeError(`EventQueue(${bucketsPerMs}, ${ringBuckets}): want bucketsPerMs > 0 and a power-of-two ring`);
    }
    this.perMs = bucketsPerMs;
    this.mask = ringBuckets - 1;
    this.heads = new Int32Array(ringBuckets).fill(-1);
  }

  get size(): number {
    return this.ringCount + this.heap.size;
  }

  /** Schedules `item` at `timeMs`; among equal times, earlier pushes pop first. `aux` is a 32-bit integer. */
  push(timeMs: number, item: T, aux = 0): void {
    if (!Number.isFinite(timeMs)) throw new RangeError(`event time must be finite, got ${timeMs}`);
    this.insert(timeMs, this.nextSeq++, item, aux);
  }

  /**
   * push(times[i], item, auxes[i]) for i in [0, count), in that order: one item for several
   * recipients (a broadcast's copies), the times read from a typed array rather than each boxed
   * into a call's argument. It restates push's check rather than calling push: calling it measured
   * 1.0-1.3% more CPU for PoE at n = 16 (bench-sim --baseline, 4 ABBA pairs twice, 2026-12-05).
   */
  pushMany(times: Float64Array, auxes: Int32Array, count: number, item: T): void {
    for (let i = 0; i < count; i++) {
      const timeMs = times[i]!;
      if (!Number.isFinite(timeMs)) throw new RangeError(`event time must be finite, got ${timeMs}`);
      this.insert(timeMs, this.nextSeq++, item, auxes[i]!);
    }
  }

  /** The time of the next event, or undefined when empty. */
  peekTimeMs(): number | undefined {
    if (this.ringCount === 0) return this.heap.size > 0 ? this.heap.times[0] : undefined;
    if (this.runPos === this.runLen) this.advance();
    const e = this.run[this.runPos]!;
    const t = this.times[e]!;
    if (this.heap.size > 0 && this.heapFirst(t, this.seqs[e]!)) return this.heap.times[0];
    return t;
  }

  pop(): { timeMs: number; item: T; aux: number } | undefined {
    const timeMs = this.peekTimeMs();
    if (timeMs === undefined) return undefined;
    const item = this.popItem();
    return { timeMs, item, aux: this.poppedAux };
  }

  /** Removes and returns the next item; its time is what peekTimeMs() said. The queue must not be empty. */
  popItem(): T {
    if (this.ringCount > 0) {
      if (this.runPos === this.runLen) this.advance();
      const e = this.run[this.runPos]!;
      if (this.heap.size === 0 || !this.heapFirst(this.times[e]!, this.seqs[e]!)) {
        this.runPos++;
        this.ringCount--;
        const item = this.items[e] as T;
        this.poppedAux = this.auxes[e]!;
        this.items[e] = undefined;
        this.next[e] = this.free;
        this.free = e;
        return item;
      }
    }
    const t = this.heap.times[0]!;
    const item = this.heap.pop();
    this.poppedAux = this.heap.poppedAux;
    // With the ring empty, move it to the clock, so that what is pushed next lands in it.
    if (this.ringCount === 0) {
      const b = Math.floor(t * this.perMs);
      if (b > this.cur) this.cur = b;
      this.runPos = this.runLen = 0;
    }
    return item;
  }

  /** Removes every event for which `keep` is false (used when draining: timers are dropped). */
  retain(keep: (item: T) => boolean): void {
    const kept: { timeMs: number; seq: number; item: T; aux: number }[] = [];
    const take = (e: number): void => {
      const item = this.items[e] as T;
      if (keep(item)) kept.push({ timeMs: this.times[e]!, seq: this.seqs[e]!, item, aux: this.auxes[e]! });
    };
    for (let i = this.runPos; i < this.runLen; i++) take(this.run[i]!);
    for (let s = 0; s <= this.mask; s++) for (let e = this.heads[s]!; e !== -1; e = this.next[e]!) take(e);
    const h = this.heap;
    for (let i = 0; i < h.size; i++) if (keep(h.items[i] as T)) kept.push({ timeMs: h.times[i]!, seq: h.seqs[i]!, item: h.items[i] as T, aux: h.auxes[i]! });
    h.clear();
    this.heads.fill(-1);
    this.items.fill(undefined);
    this.free = -1;
    this.used = 0;
    this.runPos = this.runLen = 0;
    this.ringCount = 0;
    // Re-inserted with their own sequence numbers, so ties keep their order.
    for (const e of kept) this.insert(e.timeMs, e.seq, e.item, e.aux);
  }

  private insert(timeMs: number, seq: number, item: T, aux: number): void {
    const b = Math.floor(timeMs * this.perMs);
    const off = b - this.cur;
    if (off < 0 || off > this.mask) {
      this.heap.push(timeMs, seq, item, aux);
      return;
    }
    let e = this.free;
    if (e !== -1) this.free = this.next[e]!;
    else {
      if (this.used === this.times.length) this.growSlab();
      e = this.used++;
    }
    this.times[e] = timeMs;
    this.seqs[e] = seq;
    this.auxes[e] = aux;
    this.items[e] = item;
    this.ringCount++;
    if (off > 0) {
      const s = b & this.mask;
      this.next[e] = this.heads[s]!;
      this.heads[s] = e;
      return;
    }
    // The bucket being consumed: into its sorted run, in its place.
    if (this.runLen === this.run.length) this.growRun(this.runLen + 1);
    const run = this.run;
    let i = this.runLen++;
    while (i > this.runPos && this.before(e, run[i - 1]!)) {
      run[i] = run[i - 1]!;
      i--;
    }
    run[i] = e;
  }

  /** Whether entry a comes before entry b. */
  private before(a: number, b: number): boolean {
    const ta = this.times[a]!;
    const tb = this.times[b]!;
    return ta < tb || (ta === tb && this.seqs[a]! < this.seqs[b]!);
  }

  /** The run is used up and the ring is not empty: make the next non-empty bucket the run, sorted. */
  private advance(): void {
    let s: number;
    do {
      this.cur++;
      s = this.cur & this.mask;
    } while (this.heads[s] === -1);
    let len = 0;
    for (let e = this.heads[s]!; e !== -1; e = this.next[e]!) len++;
    if (len > this.run.length) this.growRun(len);
    const run = this.run;
    // The list is newest first: filling the run from the back leaves it in push order, mostly sorted already.
    let i = len;
    for (let e = this.heads[s]!; e !== -1; e = this.next[e]!) run[--i] = e;
    this.heads[s] = -1;
    this.runPos = 0;
    this.runLen = len;
    for (let j = 1; j < len; j++) {
      const e = run[j]!;
      let k = j;
      while (k > 0 && this.before(e, run[k - 1]!)) {
        run[k] = run[k - 1]!;
        k--;
      }
      run[k] = e;
    }
  }

  /** Whether the heap's head comes before the ring entry (t, seq). The heap is not empty. */
  private heapFirst(t: number, seq: number): boolean {
    const ht = this.heap.times[0]!;
    return ht < t || (ht === t && this.heap.seqs[0]! < seq);
  }

  private growRun(atLeast: number): void {
    let cap = this.run.length * 2;
    while (cap < atLeast) cap *= 2;
    const run = new Int32Array(cap);
    run.set(this.run.subarray(0, this.runLen));
    this.run = run;
  }

  private growSlab(): void {
    const cap = this.times.length * 2;
    const grow = <A extends Float64Array | Int32Array>(a: A, b: A): A => {
      b.set(a);
      return b;
    };
    this.times = grow(this.times, new Float64Array(cap));
    this.seqs = grow(this.seqs, new Float64Array(cap));
    this.auxes = grow(this.auxes, new Int32Array(cap));
    this.next = grow(this.next, new Int32Array(cap));
    const items = new Array<T | undefined>(cap).fill(undefined);
    for (let i = 0; i < this.used; i++) items[i] = this.items[i];
    this.items = items;
  }
}

/** A 4-ary min-heap on (time, seq), the calendar's overflow, in typed arrays grown by doubling (slots at and past `size` are free). */
class Heap<T> {
  times = new Float64Array(64);
  seqs = new Float64Array(64);
  auxes = new Int32Array(64);
  items: (T | undefined)[] = new Array<T | undefined>(64).fill(undefined);
  size = 0;
  poppedAux = 0;

  clear(): void {
    this.items.fill(undefined);
    this.size = 0;
  }

  push(timeMs: number, seq: number, item: T, aux: number): void {
    if (this.size === this.times.length) this.grow();
    this.siftUp(this.size++, timeMs, seq, item, aux);
  }

  /** Removes and returns the earliest item. Not empty. */
  pop(): T {
    const items = this.items;
    const top = items[0] as T;
    this.poppedAux = this.auxes[0]!;
    const last = --this.size;
    if (last > 0) this.siftDown(this.times[last]!, this.seqs[last]!, items[last] as T, this.auxes[last]!);
    items[last] = undefined;
    return top;
  }

  private grow(): void {
    const cap = this.times.length * 2;
    const times = new Float64Array(cap);
    times.set(this.times);
    this.times = times;
    const seqs = new Float64Array(cap);
    seqs.set(this.seqs);
    this.seqs = seqs;
    const auxes = new Int32Array(cap);
    auxes.set(this.auxes);
    this.auxes = auxes;
    const items = new Array<T | undefined>(cap).fill(undefined);
    for (let i = 0; i < this.size; i++) items[i] = this.items[i];
    this.items = items;
  }

  /** Moves the entry (time, seq, item, aux) into free slot i, then up to its place. */
  private siftUp(i: number, time: number, seq: number, item: T, aux: number): void {
    const { times, seqs, items, auxes } = this;
    while (i > 0) {
      const parent = (i - 1) >> 2;
      const pt = times[parent]!;
      if (pt < time || (pt === time && seqs[parent]! < seq)) break;
      times[i] = pt;
      seqs[i] = seqs[parent]!;
      items[i] = items[parent];
      auxes[i] = auxes[parent]!;
      i = parent;
    }
    times[i] = time;
    seqs[i] = seq;
    items[i] = item;
    auxes[i] = aux;
  }

  /** Places the entry (time, seq, item, aux) at the root and moves it down to its place, among the first n slots. */
  private siftDown(time: number, seq: number, item: T, aux: number): void {
    const { times, seqs, items, auxes } = this;
    const n = this.size;
    let i = 0;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      // The earliest of up to four children.
      let c = first;
      let ct = times[first]!;
      let cs = seqs[first]!;
      const end = first + 4 < n ? first + 4 : n;
      for (let j = first + 1; j < end; j++) {
        const t = times[j]!;
        if (t < ct || (t === ct && seqs[j]! < cs)) {
          c = j;
          ct = t;
          cs = seqs[j]!;
        }
      }
      if (time < ct || (time === ct && seq < cs)) break;
      times[i] = ct;
      seqs[i] = cs;
      items[i] = items[c];
      auxes[i] = auxes[c]!;
      i = c;
    }
    times[i] = time;
    seqs[i] = seq;
    items[i] = item;
    auxes[i] = aux;
  }
}
