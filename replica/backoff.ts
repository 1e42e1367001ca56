/**
 * Doubling back-offs: a wait of base * 2^exp, the exponent counted up by each failure that
 * calls for a longer wait and capped, so a long outage never makes the wait unbounded (or
 * overflow to Infinity). PBFT doubles its wait for the next NEW-VIEW after each failed view
 * change (Castro and Liskov, OSDI'99 §4.4: "this time it will wait 2T"); the cores and the
 * objects beside them use the same shape for their re-sends and status messages.
 *
 * Pure: callers keep their own exponent and decide when it grows or starts over.
 */

/** The exponent stops growing here by default: 2^16 times the base wait. */
export const BACKOFF_EXP_MAX = 16;

/** baseMs * 2^exp, with exp taken as 0 below 0 and as `expMax` above it. */
export function backoffMs(baseMs: number, exp: number, expMax: number = BACKOFF_EXP_MAX): number {
  return baseMs * 2 ** Math.min(Math.max(exp, 0), expMax);
}

/** The exponent after one more failure: exp + 1, at most `expMax`. */
export function nextBackoffExp(exp: number, expMax: number = BACKOFF_EXP_MAX): number {
  return Math.min(exp + 1, expMax);
}
