import { describe, expect, it } from 'vitest';
import { IdleStatus, STATUS_EXP_MAX, STATUS_TIMEOUTS } from './idle-status.js';
import { Outbox } from './outbox.js';
import type { WireMessage } from './types.js';

const TIMEOUT_MS = 500;

/** Arms the status timer and returns the period it asked for (one setTimer output, or none). */
function armedPeriod(status: IdleStatus<WireMessage>, out: Outbox<WireMessage>): number | undefined {
  status.arm(TIMEOUT_MS);
  const timers = out.drain().filter((o) => o.kind === 'setTimer');
  expect(timers.length).toBeLessThanOrEqual(1);
  const t = timers[0];
  return t?.kind === 'setTimer' ? t.afterMs : undefined;
}

// Reference: Castro and Liskov, TOCS 2002 (the paper's [16]): replicas multicast status
// messages periodically so that others retransmit what they lack; the paper's recovery (§4(6))
// needs a replica to know it must ask.
describe('IdleStatus', () => {
  it('arms once per firing, every STATUS_TIMEOUTS view-change timeouts at first', () => {
    const out = new Outbox<WireMessage>();
    const status = new IdleStatus(out, 'status');
    expect(armedPeriod(status, out)).toBe(STATUS_TIMEOUTS * TIMEOUT_MS);
    expect(armedPeriod(status, out), 'already armed: no second setTimer').toBeUndefined();
    status.fired(0, false);
    expect(armedPeriod(status, out)).toBe(STATUS_TIMEOUTS * TIMEOUT_MS);
  });

  it('stays silent while the replica executes, speaks when it does not, and backs off to the cap', () => {
    const out = new Outbox<WireMessage>();
    const status = new IdleStatus(out, 'status');
    // The first firing only records how far the replica got; so does every firing after progress.
    expect(status.fired(5, false)).toBe(false);
    expect(status.fired(6, false)).toBe(false);
    const periods: number[] = [];
    for (let i = 0; i < STATUS_EXP_MAX + 2; i++) {
      expect(status.fired(6, false), `idle firing ${i}`).toBe(true);
      periods.push(armedPeriod(status, out)!);
    }
    const base = STATUS_TIMEOUTS * TIMEOUT_MS;
    expect(periods).toEqual([...Array.from({ length: STATUS_EXP_MAX }, (_, i) => base * 2 ** (i + 1)), base * 2 ** STATUS_EXP_MAX, base * 2 ** STATUS_EXP_MAX]);
    // Progress starts the back-off over.
    expect(status.fired(7, false)).toBe(false);
    expect(armedPeriod(status, out)).toBe(base);
  });

  it('is silent during a view change and keeps its back-off there', () => {
    const out = new Outbox<WireMessage>();
    const status = new IdleStatus(out, 'status');
    status.fired(3, false);
    expect(status.fired(3, false)).toBe(true);
    const before = armedPeriod(status, out);
    expect(status.fired(3, true)).toBe(false);
    expect(armedPeriod(status, out)).toBe(before);
    expect(status.fired(3, false)).toBe(true);
    expect(armedPeriod(status, out)).toBe(2 * before!);
  });
});
