/**
 * How the replica-core tests' small loops (test/poe-harness.ts, replica/pbft.test.ts,
 * replica/hotstuff.test.ts) take a client core's outputs: a send goes to its replica, a
 * broadcast to every replica, timers are kept by node and name (a later setTimer of the same
 * name replaces the earlier one), accepted batches are collected, events are dropped.
 */
import type { AcceptedBatch, ClientOutput, Peer, WireMessage } from '../replica/types.js';

/** A pending timer of a node in a test loop. */
export interface TestTimer {
  readonly node: Peer;
  readonly name: string;
  readonly atMs: number;
}

/** Where a test loop puts a client's outputs. */
export interface ClientOutputSink<M extends WireMessage> {
  /** The client's node. */
  readonly from: Peer;
  /** Replicas 0..n-1 receive a broadcast. */
  readonly n: number;
  readonly nowMs: number;
  readonly timers: Map<string, TestTimer>;
  readonly accepted: AcceptedBatch[];
  send(to: Peer, msg: M): void;
}

export function takeClientOutputs<M extends WireMessage>(outs: readonly ClientOutput<M>[], sink: ClientOutputSink<M>): void {
  const { from } = sink;
  for (const o of outs) {
    switch (o.kind) {
      case 'send':
        sink.send(o.to, o.msg);
        break;
      case 'broadcast':
        for (let to = 0; to < sink.n; to++) sink.send(to, o.msg);
        break;
      case 'setTimer':
        sink.timers.set(`${from}|${o.name}`, { node: from, name: o.name, atMs: sink.nowMs + o.afterMs });
        break;
      case 'cancelTimer':
        sink.timers.delete(`${from}|${o.name}`);
        break;
      case 'accepted':
        sink.accepted.push(o.batch);
        break;
      case 'event':
        break;
    }
  }
}
