import { describe, expect, it } from 'vitest';
import { BACKOFF_EXP_MAX, backoffMs, nextBackoffExp } from './backoff.js';
import { STATUS_EXP_MAX, STATUS_TIMEOUTS } from './idle-status.js';

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

  // The waits the cores set with these helpers are asserted on the timers they output, not on
  // formulas restated here: idle-status.test.ts (IdleStatus.arm's period, STATUS_TIMEOUTS view-change
  // timeouts doubling to 2^STATUS_EXP_MAX, imported), pbft.test.ts ("doubles its NEW-VIEW wait
  // after each failed view change": T, 2T, 4T) and poe-view-change.test.ts ("doubles the new-view
  // timeout after each failed view change").
  it('with the status cap of idle-status.ts, stops at 2^STATUS_EXP_MAX', () => {
    expect(STATUS_EXP_MAX).toBeLessThan(BACKOFF_EXP_MAX);
    let exp = 0;
    for (let i = 0; i < STATUS_EXP_MAX + 3; i++) exp = nextBackoffExp(exp, STATUS_EXP_MAX);
    expect(exp).toBe(STATUS_EXP_MAX);
    expect(backoffMs(STATUS_TIMEOUTS * 500, exp, STATUS_EXP_MAX)).toBe(backoffMs(STATUS_TIMEOUTS * 500, STATUS_EXP_MAX + 5, STATUS_EXP_MAX));
    expect(backoffMs(1, exp + 1, STATUS_EXP_MAX)).toBeLessThan(backoffMs(1, exp + 1));
  });
});
