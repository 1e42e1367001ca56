/**
 * The simulator's side of Twins (replica/byzantine-twins.ts) and of the lying replicas: what
 * withFault needs beyond the core (the protocol's adversary hooks, the replica's keys, a second
 * instance under the same identity), and the per-round partition of the non-twinned replicas.
 * A twinned replica's own links are never cut here: its two instances choose whom they reach.
 */
import type { FaultContext } from '../../replica/byzantine.js';
import { twinsCut, type TwinsSchedule } from '../../replica/byzantine-twins.js';
import { adversaryHooks } from '../../replica/byzantine-hooks.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import { isClientPeer, type Peer, type ReplicaCore, type ReplicaDeps, type WireMessage } from '../../replica/types.js';
import type { FaultAssignment } from './options.js';

/** The replicas run as twins, and the schedule of the first (all twins of a run should share one). */
export function twinsOf(faults: readonly FaultAssignment[]): { twinned: ReadonlySet<number>; schedule: TwinsSchedule | undefined } {
  const twinned = new Set<number>();
  let schedule: TwinsSchedule | undefined;
  for (const a of faults) {
    if (a.fault.kind !== 'twins') continue;
    twinned.add(a.replica);
    schedule ??= a.fault;
  }
  return { twinned, schedule };
}

/** What withFault needs for replica `deps`' lying wrappers in this run. */
export function simFaultContext<M extends WireMessage>(
  module: ProtocolModule<M>,
  faults: readonly FaultAssignment[],
  deps: ReplicaDeps,
  twin: () => ReplicaCore<M>,
): FaultContext<M> {
  const adversary = adversaryHooks<M>(module.name);
  return { ...(adversary ? { adversary } : {}), deps, twin, twinned: twinsOf(faults).twinned };
}

/**
 * Whether the rounds' partitions cut a message from `from` to `to` at `nowMs`: only between two
 * non-twinned replicas on different sides. Undefined when the run has no twins.
 */
export function twinsNetworkCut(faults: readonly FaultAssignment[]): ((from: Peer, to: Peer, nowMs: number) => boolean) | undefined {
  const { twinned, schedule } = twinsOf(faults);
  if (!schedule) return undefined;
  return (from, to, nowMs) => !isClientPeer(from) && !isClientPeer(to) && !twinned.has(from) && !twinned.has(to) && twinsCut(schedule, from, to, nowMs);
}
