/**
 * The one outbox every protocol core writes its outputs to (STYLE.md: relab/hotstuff's shared
 * synchroniser; etcd raft's `send()` that only appends). A core's handlers call `send`,
 * `broadcast`, `setTimer`, `cancelTimer`, `event` and `reject`; `step` returns `drain()`.
 * Nothing here does I/O: the caller (the process runtime or the simulator) carries the outputs
 * out, exactly as types.ts's ReplicaOutput says.
 *
 * Sub-state objects beside a core (a view-change log, a block fetcher) take the same outbox,
 * so every output of a step leaves in the order it was produced, whoever produced it.
 */
import type { Peer, ReplicaEvent, ReplicaOutput, WireMessage } from './types.js';

export class Outbox<M extends WireMessage> {
  private items: ReplicaOutput<M>[] = [];

  /** To one replica or client machine. */
  send(to: Peer, msg: M): void {
    this.items.push({ kind: 'send', to, msg });
  }

  /** To every other replica; replicas never send to themselves (paper §3.5 (1)). */
  broadcast(msg: M): void {
    this.items.push({ kind: 'broadcast', msg });
  }

  /** (Re)arms the named timer: it fires once, `afterMs` from now, unless cancelled or re-armed. */
  setTimer(name: string, afterMs: number): void {
    this.items.push({ kind: 'setTimer', name, afterMs });
  }

  cancelTimer(name: string): void {
    this.items.push({ kind: 'cancelTimer', name });
  }

  event(event: ReplicaEvent): void {
    this.items.push({ kind: 'event', event });
  }

  /** A message the core refused, with the reason counted by the runtime and checked by tests. */
  reject(reason: string, from: Peer): void {
    this.event({ name: 'rejected', reason, from });
  }

  /** Outputs produced so far that are not drained yet. */
  get pending(): readonly ReplicaOutput<M>[] {
    return this.items;
  }

  /** Everything produced since the last drain, in order; the outbox is empty afterwards. */
  drain(): ReplicaOutput<M>[] {
    const out = this.items;
    this.items = [];
    return out;
  }
}
