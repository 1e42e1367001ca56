import { describe, expect, it } from 'vitest';
import { drainStartMs } from './model-point.js';

describe("a modelled point's window", () => {
  it('ends when the first client had its last batch accepted: after that the offered load falls', () => {
    const a = (clientId: number, acceptedMs: number) => ({ clientId, acceptedMs });
    // Client 1 is done at 30 ms while 0 and 2 go on to 50 and 45: the drain starts at 30.
    expect(drainStartMs([a(0, 10), a(1, 12), a(2, 14), a(0, 28), a(1, 30), a(2, 32), a(0, 50), a(2, 45)])).toBe(30);
    // Out of order input gives the same answer.
    expect(drainStartMs([a(2, 45), a(0, 50), a(1, 30), a(1, 12), a(0, 10)])).toBe(30);
    expect(drainStartMs([])).toBe(Number.POSITIVE_INFINITY);
  });
});
