/**
 * The simulator's events (simulator.ts): what its queue and a cost model's backlog hold, and the
 * socket reads a turn's inputs cost the cost model (cost-hook.ts turnBegin).
 */
import type { Peer, WireMessage } from '../../replica/types.js';
import { macHashBytes } from './mac-bytes.js';
import { FRAME_HEADER_BYTES } from '../process/frame-limits.js';

export type SimEvent =
  | { readonly kind: 'start'; readonly node: Peer }
  /** A frame for one recipient, as the queue holds it: the recipient is the entry's `aux` (no object per copy). */
  | SentFrame
  /** The same with its recipient, as a cost model's backlog holds it. */
  | { readonly kind: 'deliver'; readonly from: Peer; readonly to: Peer; readonly frame: SentFrame }
  | { readonly kind: 'timer'; readonly node: Peer; readonly name: string; readonly generation: number }
  | { readonly kind: 'crash'; readonly replica: number }
  /** A cost model (cost-hook.ts) held a busy node's inputs back: its next one may start now. */
  | { readonly kind: 'wake'; readonly node: Peer };

/**
 * One encoded message, shared by the copies sent to each recipient. With `shareDecoded` the
 * first recipient's decode (and the step input made of it) is kept here and handed to the
 * others: the same bytes decode to the same message, and cores never modify what they receive
 * (its fields are readonly).
 */
export interface SentFrame {
  readonly kind: 'frame';
  readonly from: Peer;
  readonly bytes: Buffer;
  /** With `shareDecoded`: the step input made of it, the same for every recipient. */
  input: { readonly kind: 'message'; readonly from: Peer; readonly msg: WireMessage } | undefined;
  /** With a cost model: the bytes its MAC hashes (mac-bytes.ts), worked out once for all its copies and recipients. */
  macBytes?: { readonly first: number; readonly later: number };
}

/** The bytes a frame's MAC hashes, first copy and later copies of a broadcast, computed once per frame. */
export function frameMacBytes(frame: SentFrame): { readonly first: number; readonly later: number } {
  frame.macBytes ??= { first: macHashBytes(frame.bytes, true), later: macHashBytes(frame.bytes, false) };
  return frame.macBytes;
}

/**
 * The socket reads a turn's inputs take: per connection they came from, one read per 64 KiB
 * (Node hands a stream's data to 'data' in reads of at most 64 KiB), each frame with the
 * transport's 36-byte header (length and MAC, infra/process/transport.ts).
 */
const READ_BYTES_MAX = 65_536;
export function socketReads(events: readonly SimEvent[]): number {
  const from: Peer[] = [];
  const bytes: number[] = [];
  for (const e of events) {
    if (e.kind !== 'deliver') continue;
    const i = from.indexOf(e.from);
    const b = e.frame.bytes.length + FRAME_HEADER_BYTES;
    if (i < 0) {
      from.push(e.from);
      bytes.push(b);
    } else bytes[i]! += b;
  }
  let reads = 0;
  for (const b of bytes) reads += readsOf(b);
  return reads;
}

/** Socket reads of `bytes` from one connection in one turn (Node reads a stream READ_BYTES_MAX at a time). */
export const readsOf = (bytes: number): number => Math.ceil(bytes / READ_BYTES_MAX);
