/**
 * The adversary hooks of each registered protocol (replica/protocol.ts AdversaryHooks), by name.
 * Kept apart from the protocol modules and from replica/byzantine.ts (the modules import types
 * from byzantine.ts; looking the hooks up there would make a cycle): runtimes that build lying
 * replicas (the simulator) pass them to withFault.
 */
import { hotstuffAdversaryHooks } from './byzantine-hooks-hotstuff.js';
import { pbftAdversaryHooks } from './byzantine-hooks-pbft.js';
import { poeAdversaryHooks } from './byzantine-hooks-poe.js';
import { zyzzyvaAdversaryHooks } from './byzantine-hooks-zyzzyva.js';
import type { AdversaryHooks } from './protocol.js';
import type { WireMessage } from './types.js';

// Each entry is typed by its own protocol's messages; the lookup below trusts the name.
const HOOKS: Readonly<Record<string, unknown>> = {
  poe: poeAdversaryHooks,
  pbft: pbftAdversaryHooks,
  hotstuff: hotstuffAdversaryHooks,
  zyzzyva: zyzzyvaAdversaryHooks,
};

/** The hooks of protocol `name`, or undefined for a protocol without them. */
export function adversaryHooks<M extends WireMessage>(name: string): AdversaryHooks<M> | undefined {
  return HOOKS[name] as AdversaryHooks<M> | undefined;
}
