import { describe, expect, it } from 'vitest';
import { BACKOFF_EXP_MAX, backoffMs, nextBackoffExp } from './backoff.js';

describe('backoffMs', () => {
  // Reference: Castro and Liskov, OSDI'99 §4.4: after a failed view change "it will wait 2T".
  it('doubles the base wait per exponent step, from the base at 0', () => {
    expect(backoffMs(500, 0)).toBe(500);
    expect(backoffMs(500, 1)).toBe(1000);
    expect(backoffMs(500, 3)).toBe(4000);
    expect(backoffMs(125, 2)).toBe(500);
  });

  it('caps the exponent at BACKOFF_EXP_MAX, or at the cap given', () => {
    expect(backoffMs(1, BACKOFF_EXP_MAX)).toBe(2 ** BACKOFF_EXP_MAX);
    expect(backoffMs(1, BACKOFF_EXP_MAX + 1)).toBe(2 ** BACKOFF_EXP_MAX);
    expect(backoffMs(1, 1000)).toBe(2 ** BACKOFF_EXP_MAX);
    expect(backoffMs(3, 7, 6)).toBe(3 * 64);
  });

  it('takes an exponent below 0 as 0', () => {
    expect(backoffMs(500, -1)).toBe(500);
  });

  it('nextBackoffExp counts up by one and stops at the cap', () => {
    expect(nextBackoffExp(0)).toBe(1);
    expect(nextBackoffExp(BACKOFF_EXP_MAX - 1)).toBe(BACKOFF_EXP_MAX);
    expect(nextBackoffExp(BACKOFF_EXP_MAX)).toBe(BACKOFF_EXP_MAX);
    expect(nextBackoffExp(6, 6)).toBe(6);
  });

  // The formulas written out by hand before this helper, as they stood (replica/pbft.ts,
  // pbft-view-change.ts, idle-status.ts): each call site's new form gives the same values.
  it('gives the same waits as the hand-written formulas it replaced', () => {
    const STATUS_EXP_MAX = 6;
    for (const baseMs of [1, 7, 125, 500, 1000, 2 / 3, 1e6]) {
      for (let exp = 0; exp <= BACKOFF_EXP_MAX + 3; exp++) {
        const capped = Math.min(exp, BACKOFF_EXP_MAX);
        const statusExp = Math.min(exp, STATUS_EXP_MAX);
        const at = `base ${baseMs}, exp ${exp}`;
        // pbft.ts armViewChangeTimer (its exponent never exceeds the cap).
        expect(backoffMs(baseMs, capped - 1), at).toBe(baseMs * 2 ** Math.max(0, capped - 1));
        // pbft.ts startViewChange.
        expect(backoffMs(baseMs, capped), at).toBe(baseMs * 2 ** capped);
        // pbft.ts retransmitFor.
        expect(backoffMs(baseMs / 4, exp), at).toBe((baseMs / 4) * 2 ** Math.min(exp, BACKOFF_EXP_MAX));
        // pbft-view-change.ts LaggardAnswers.answerNow (count = exp + 1 >= 1).
        expect(backoffMs(baseMs, exp + 1 - 1), at).toBe(baseMs * 2 ** Math.min(exp + 1 - 1, BACKOFF_EXP_MAX));
        // idle-status.ts arm (STATUS_TIMEOUTS = 2; its exponent never exceeds STATUS_EXP_MAX).
        expect(backoffMs(2 * baseMs, statusExp, STATUS_EXP_MAX), at).toBe(2 * baseMs * 2 ** statusExp);
        // The exponent counters.
        expect(nextBackoffExp(capped), at).toBe(Math.min(capped + 1, BACKOFF_EXP_MAX));
        expect(nextBackoffExp(statusExp, STATUS_EXP_MAX), at).toBe(Math.min(statusExp + 1, STATUS_EXP_MAX));
      }
    }
  });
});
