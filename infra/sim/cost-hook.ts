/**
 * The one hook the simulator offers to a cost model (issue 12): what each step of a core did,
 * counted where it was done, and when a node may step and when its frames leave.
 *
 * Counted, not estimated: the crypto provider the cores use is wrapped in CountingCrypto
 * (replica/crypto-counter.ts), the codec's encode and decode are counted by the simulator where
 * it calls them, and the transport's per-frame HMAC (infra/process/transport.ts: one HMAC-SHA256
 * over the payload per frame and destination when sending, one when receiving) is counted where
 * the simulator hands a frame to the network and delivers it, because the simulator stands in
 * for that transport.
 *
 * Without a hook the simulator does none of this (and costs nothing extra); with one, a node
 * that is busy holds its inputs in a FIFO backlog until `readyAtMs` says it is free.
 */
import type { CryptoCounts } from '../../replica/crypto-counter.js';
import type { Peer } from '../../replica/types.js';

/** The work of one step of one node (a replica or a client machine). */
export interface StepWork {
  /** What the core asked of its crypto provider during the step. */
  readonly crypto: Readonly<CryptoCounts>;
  /** The input frame decoded before the step (0 for a timer or the start signal). */
  readonly decodes: number;
  readonly decodeBytes: number;
  /** The input frame's transport MAC checked on receipt (one per delivered frame). */
  readonly frameMacVerifies: number;
  readonly frameMacVerifyBytes: number;
  /** The bytes that check hashes (infra/sim/mac-bytes.ts); absent: all of frameMacVerifyBytes. */
  readonly frameMacHashBytes?: number;
  /** Transactions the step executed ('executed' events; a re-execution after a rollback counts again). */
  readonly txnsExecuted: number;
  /** 1 when the step's input was a message, 0 for a timer or start. */
  readonly messagesIn: number;
}

/** One frame a step sends to one destination. */
export interface FrameOut {
  readonly from: Peer;
  readonly to: Peer;
  readonly bytes: number;
  /** The frame was encoded for this send (false for the 2nd..kth copy of a broadcast: encoded once). */
  readonly encoded: boolean;
  /** The bytes its MAC hashes (infra/sim/mac-bytes.ts); absent: all of `bytes`. */
  readonly macBytes?: number;
}

export interface SimCostHook {
  /** The earliest virtual time `node` can start its next step (<= nowMs: at once). */
  readyAtMs(node: Peer, nowMs: number): number;
  /**
   * A turn of `node` begins at `nowMs`: the steps reported until the next turnBegin of that
   * node ran in one wake-up, as the process runtime handles every input of an event-loop turn
   * before it flushes each connection once (infra/process/transport.ts: one read per connection
   * with data, then one writev per connection written to). `reads` is the socket reads the
   * turn's inputs take: one per connection they came from and 64 KiB (0 for a timer or the
   * start signal). A hook whose turnBegin is never called sees every step as its own turn.
   */
  turnBegin?(node: Peer, nowMs: number, reads: number): void;
  /** A step of `node` ran at `nowMs` and did `work`; called before its frames are sent. */
  stepDone(node: Peer, nowMs: number, work: StepWork): void;
  /**
   * A frame of the step just reported: returns the virtual time it has left the sender's NIC
   * (the network adds the propagation delay to that), or undefined when the frame waits for the
   * end of its turn (turnEnd says when it leaves). Encoding and the transport MAC are charged
   * here, one frame after another, as the runtime does them.
   */
  frameSent(frame: FrameOut, nowMs: number): number | undefined;
  /**
   * The turn of `node` begun by the last turnBegin has run every step: returns the times the
   * frames it held (frameSent returned undefined) leave the sender's NIC, in the order they were
   * sent. The process runtime writes a turn's frames when every input of the turn is handled
   * (infra/process/transport.ts: the flush is a setImmediate, after the poll phase's 'data'
   * events), not as each step makes them. Required of a hook whose frameSent may return undefined.
   */
  turnEnd?(node: Peer, nowMs: number): readonly number[];
}
