/**
 * PBFT's named timers and the bounds on what a faulty client or replica could otherwise grow,
 * shared by the core (pbft.ts) and the objects beside it; as poe-state.ts is for PoE.
 */
/** Timer names (TigerBeetle style: a table of named timeouts). */
export const PBFT_TIMERS = {
  /**
   * A backup waits this long for a request it knows of to execute before suspecting the primary:
   * T, and after j view changes without a new client batch executed, T * 2^(j-1) (OSDI'99 §4.4).
   */
  viewChange: 'pbft:view-change',
  /**
   * A replica in a view change waits this long for the NEW-VIEW before moving to the next view,
   * counted from when nf VIEW-CHANGEs for the view are in (PBFT §4.5.2).
   */
  newView: 'pbft:new-view',
  /** While in a view change, a replica re-sends its VIEW-CHANGE every half timeout (links may lose it). */
  resendViewChange: 'pbft:view-change-resend',
  /** A replica fetching missed batches asks the next checkpoint signer after this long. */
  fetch: 'pbft:fetch',
  /** A replica that executed nothing for a while tells the others how far it got (pbft-fetch.ts). */
  status: 'pbft:status',
} as const;

/** Bounds on queues that a faulty client or replica could otherwise grow. */
export const AWAITED_MAX = 1 << 16;
