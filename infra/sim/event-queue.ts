/**
 * The simulator's event queue: a 4-ary min-heap ordered by (virtual time, insertion sequence)
 * (half the levels of a binary heap; a run holds about a thousand events in flight at n = 16).
 *
 * Ties in time are broken by the order events were scheduled, never by heap layout, so the
 * same inputs always pop in the same order: this is what makes a seed replay a run exactly
 * (TigerBeetle's VOPR, STYLE.md).
 *
 * The heap is kept in parallel arrays (times, sequence numbers, items, aux numbers) rather than as an
 * array of entry objects: a run pushes and pops one event per simulated message, and an entry
 * object per event was a tenth of the garbage a large run made.
 */
export class EventQueue<T> {
  private readonly times: number[] = [];
  private readonly seqs: number[] = [];
  private readonly items: T[] = [];
  /** A number carried with each item (the simulator: a frame's recipient), so no object wraps the pair. */
  private readonly auxes: number[] = [];
  private nextSeq = 0;
  /** The `aux` of the item popItem() returned last. */
  poppedAux = 0;

  get size(): number {
    return this.items.length;
  }

  /** Schedules `item` at `timeMs`; among equal times, earlier pushes pop first. */
  push(timeMs: number, item: T, aux = 0): void {
    if (!Number.isFinite(timeMs)) throw new RangeError(`event time must be finite, got ${timeMs}`);
    this.times.push(timeMs);
    this.seqs.push(this.nextSeq++);
    this.items.push(item);
    this.auxes.push(aux);
    this.siftUp(this.items.length - 1, timeMs, this.nextSeq - 1, item, aux);
  }

  /** The time of the next event, or undefined when empty. */
  peekTimeMs(): number | undefined {
    return this.items.length > 0 ? this.times[0] : undefined;
  }

  pop(): { timeMs: number; item: T; aux: number } | undefined {
    if (this.items.length === 0) return undefined;
    const timeMs = this.times[0]!;
    const item = this.popItem();
    return { timeMs, item, aux: this.poppedAux };
  }

  /** Removes and returns the next item; its time is what peekTimeMs() said. The queue must not be empty. */
  popItem(): T {
    const { times, seqs, items, auxes } = this;
    const top = items[0]!;
    this.poppedAux = auxes[0]!;
    const lastTime = times.pop()!;
    const lastSeq = seqs.pop()!;
    const lastItem = items.pop()!;
    const lastAux = auxes.pop()!;
    if (items.length > 0) this.siftDown(lastTime, lastSeq, lastItem, lastAux);
    return top;
  }

  /** Removes every event for which `keep` is false (used when draining: timers are dropped). */
  retain(keep: (item: T) => boolean): void {
    const kept: { timeMs: number; seq: number; item: T; aux: number }[] = [];
    for (let i = 0; i < this.items.length; i++) {
      if (keep(this.items[i]!)) kept.push({ timeMs: this.times[i]!, seq: this.seqs[i]!, item: this.items[i]!, aux: this.auxes[i]! });
    }
    // Re-inserting in (time, seq) order keeps the tie-break sequence numbers intact (a sorted array is a heap).
    kept.sort((a, b) => (a.timeMs !== b.timeMs ? a.timeMs - b.timeMs : a.seq - b.seq));
    this.times.length = 0;
    this.seqs.length = 0;
    this.items.length = 0;
    this.auxes.length = 0;
    for (const e of kept) {
      this.times.push(e.timeMs);
      this.seqs.push(e.seq);
      this.items.push(e.item);
      this.auxes.push(e.aux);
    }
  }

  /** Moves the entry (time, seq, item, aux) at index i up to its place. */
  private siftUp(i: number, time: number, seq: number, item: T, aux: number): void {
    const { times, seqs, items, auxes } = this;
    while (i > 0) {
      const parent = (i - 1) >> 2;
      const pt = times[parent]!;
      if (pt < time || (pt === time && seqs[parent]! < seq)) break;
      times[i] = pt;
      seqs[i] = seqs[parent]!;
      items[i] = items[parent]!;
      auxes[i] = auxes[parent]!;
      i = parent;
    }
    times[i] = time;
    seqs[i] = seq;
    items[i] = item;
    auxes[i] = aux;
  }

  /** Places the entry (time, seq, item, aux) at the root and moves it down to its place. */
  private siftDown(time: number, seq: number, item: T, aux: number): void {
    const { times, seqs, items, auxes } = this;
    const n = items.length;
    let i = 0;
    for (;;) {
      const first = 4 * i + 1;
      if (first >= n) break;
      // The earliest of up to four children.
      let c = first;
      let ct = times[first]!;
      let cs = seqs[first]!;
      const end = Math.min(first + 4, n);
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
      items[i] = items[c]!;
      auxes[i] = auxes[c]!;
      i = c;
    }
    times[i] = time;
    seqs[i] = seq;
    items[i] = item;
    auxes[i] = aux;
  }
}
