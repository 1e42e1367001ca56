/**
 * The idle status timer PBFT's and PoE's block fetchers share (replica/pbft-fetch.ts,
 * replica/poe-fetch.ts onStatusTimer): when to tell the others how far this replica got.
 *
 * A replica cut off while the others progressed learns that it is behind only from their
 * messages, and once the clients are done nobody sends any. So, as PBFT's replicas multicast
 * status messages periodically (Castro and Liskov, TOCS 2002, the paper's [16]), a replica that
 * executed nothing for STATUS_TIMEOUTS view-change timeouts broadcasts its status (each protocol
 * its own FETCH), backing off to 2^STATUS_EXP_MAX times that period while nothing changes, and
 * starting over as soon as it executes again. Silent while it executes (the normal case sends
 * nothing more) and while it changes views (view-change messages are re-sent there).
 *
 * Pure like the cores: the timer is an output through the fetcher's Outbox; what counts as
 * progress (executedK) and the view change come in as arguments.
 */
import { backoffMs, nextBackoffExp } from './backoff.js';
import type { Outbox } from './outbox.js';
import type { WireMessage } from './types.js';

/** The status timer ticks every STATUS_TIMEOUTS view-change timeouts while the replica executes. */
export const STATUS_TIMEOUTS = 2;
/** While idle, the period doubles up to 2^STATUS_EXP_MAX times the above. */
export const STATUS_EXP_MAX = 6;

export class IdleStatus<M extends WireMessage> {
  private armed = false;
  /** The back-off: the period is STATUS_TIMEOUTS view-change timeouts times 2^exp. */
  private exp = 0;
  /** executedK when the timer last fired (-1: never). */
  private atK = -1;

  constructor(
    private readonly out: Outbox<M>,
    private readonly timerName: string,
  ) {}

  /** End of every step: arms the timer unless it is armed (`viewChangeTimeoutMs` sets its period). */
  arm(viewChangeTimeoutMs: number): void {
    if (this.armed) return;
    this.armed = true;
    this.out.setTimer(this.timerName, backoffMs(STATUS_TIMEOUTS * viewChangeTimeoutMs, this.exp, STATUS_EXP_MAX));
  }

  /**
   * The timer fired. True: the replica executed nothing since it last fired and is not changing
   * views, so the caller broadcasts its status now (and the next period is doubled). False: it
   * progressed (the back-off starts over) or is in a view change (the back-off stays).
   */
  fired(executedK: number, inViewChange: boolean): boolean {
    this.armed = false;
    if (executedK !== this.atK) {
      this.atK = executedK;
      this.exp = 0;
      return false;
    }
    if (inViewChange) return false;
    this.exp = nextBackoffExp(this.exp, STATUS_EXP_MAX);
    return true;
  }
}
