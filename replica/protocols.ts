/**
 * The protocol registry: names to modules (DESIGN.md "Protocols"). Everything that runs a
 * protocol by name (the simulator, the replica and client processes, the CLI) goes through
 * `getProtocol`, so adding a protocol is one entry here.
 */
import * as hotstuffModule from './hotstuff.js';
import * as messages from './messages.js';
import type { ProtocolModule } from './protocol.js';
import { PROTOCOLS, type ProtocolName, type WireMessage } from './types.js';
import * as pbftModule from './pbft.js';
import * as poeModule from './poe.js';
import * as zyzzyvaModule from './zyzzyva.js';

/** A source file's exports; its `MSG_*` constants name the message types it defines. */
type ModuleExports = Readonly<Record<string, unknown>>;

interface Registration {
  readonly module: ProtocolModule<WireMessage>;
  readonly exports: ModuleExports;
}

const REGISTRY: ReadonlyMap<ProtocolName, Registration> = new Map<ProtocolName, Registration>([
  ['poe', { module: poeModule.poe as unknown as ProtocolModule<WireMessage>, exports: poeModule }],
  ['pbft', { module: pbftModule.pbft as unknown as ProtocolModule<WireMessage>, exports: pbftModule }],
  ['zyzzyva', { module: zyzzyvaModule.zyzzyva as unknown as ProtocolModule<WireMessage>, exports: zyzzyvaModule }],
  ['hotstuff', { module: hotstuffModule.hotstuff as unknown as ProtocolModule<WireMessage>, exports: hotstuffModule }],
]);

export class UnknownProtocolError extends Error {
  constructor(readonly requested: string) {
    const known = PROTOCOLS.includes(requested as ProtocolName);
    super(
      known
        ? `protocol '${requested}' is not available in this build (registered: ${registeredProtocols().join(', ') || 'none'})`
        : `unknown protocol '${requested}' (known: ${PROTOCOLS.join(', ')}; registered: ${registeredProtocols().join(', ') || 'none'})`,
    );
    this.name = 'UnknownProtocolError';
  }
}

/** The protocols this build provides, in the canonical order of PROTOCOLS. */
export function registeredProtocols(): ProtocolName[] {
  return PROTOCOLS.filter((p) => REGISTRY.has(p));
}

export function hasProtocol(name: string): name is ProtocolName {
  return REGISTRY.has(name as ProtocolName);
}

/** The module for `name`; throws UnknownProtocolError naming what is available. */
export function getProtocol(name: string): ProtocolModule<WireMessage> {
  const r = REGISTRY.get(name as ProtocolName);
  if (!r) throw new UnknownProtocolError(name);
  return r.module;
}

function typeNamesOf(exports: ModuleExports, into: Map<number, string>): void {
  for (const [key, value] of Object.entries(exports)) {
    if (key.startsWith('MSG_') && typeof value === 'number' && !into.has(value)) into.set(value, key.slice(4));
  }
}

/** Type ids to names from the `MSG_*` constants of the given modules (earlier modules win). */
export function typeNamesFromExports(...modules: ModuleExports[]): ReadonlyMap<number, string> {
  const map = new Map<number, string>();
  for (const m of modules) typeNamesOf(m, map);
  return map;
}

const typeNameCache = new Map<string, ReadonlyMap<number, string>>();

/**
 * Message type ids to names (`MSG_SUPPORT = 11` gives 11 -> 'SUPPORT') for the protocol's own
 * messages and the common ones, from the `MSG_*` constants its module exports.
 */
export function messageTypeNames(name: string): ReadonlyMap<number, string> {
  let names = typeNameCache.get(name);
  if (!names) {
    const r = REGISTRY.get(name as ProtocolName);
    names = r ? typeNamesFromExports(messages, r.exports) : typeNamesFromExports(messages);
    typeNameCache.set(name, names);
  }
  return names;
}
