/**
 * The simulator's event queue: a binary min-heap ordered by (virtual time, insertion sequence).
 *
 * Ties in time are broken by the order events were scheduled, never by heap layout, so the
 * same inputs always pop in the same order: this is what makes a seed replay a run exactly
 * (TigerBeetle's VOPR, STYLE.md).
 */

interface Entry<T> {
  readonly timeMs: number;
  readonly seq: number;
  readonly item: T;
}

export class EventQueue<T> {
  private readonly heap: Entry<T>[] = [];
  private nextSeq = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `item` at `timeMs`; among equal times, earlier pushes pop first. */
  push(timeMs: number, item: T): void {
    if (!Number.isFinite(timeMs)) throw new RangeError(`event time must be finite, got ${timeMs}`);
    this.heap.push({ timeMs, seq: this.nextSeq++, item });
    this.siftUp(this.heap.length - 1);
  }

  /** The time of the next event, or undefined when empty. */
  peekTimeMs(): number | undefined {
    return this.heap[0]?.timeMs;
  }

  pop(): { timeMs: number; item: T } | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.siftDown(0);
    }
    return { timeMs: top.timeMs, item: top.item };
  }

  /** Removes every event for which `keep` is false (used when draining: timers are dropped). */
  retain(keep: (item: T) => boolean): void {
    const kept = this.heap.filter((e) => keep(e.item));
    this.heap.length = 0;
    // Re-inserting in (time, seq) order keeps the tie-break sequence numbers intact.
    kept.sort(before);
    for (const e of kept) this.heap.push(e);
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const e = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (before(p, e) <= 0) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = e;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const e = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r]!, heap[l]!) < 0 ? r : l;
      if (before(e, heap[c]!) <= 0) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = e;
  }
}

function before<T>(a: Entry<T>, b: Entry<T>): number {
  return a.timeMs !== b.timeMs ? a.timeMs - b.timeMs : a.seq - b.seq;
}
