/**
 * Crash and Byzantine behaviours as wrappers around any protocol core (DESIGN.md: "wrappers
 * around a core, shared by all protocols, not ifs inside protocol code"; relab/hotstuff's
 * `silentproposer` and `fork` decorators).
 *
 * - silent: takes no part at all (the paper's crashed backups, figures 10, 11a, 12);
 * - stopAfter(k): correct until it has executed k batches, then silent (figure 11b: the
 *   primary fails after 900 requests);
 * - crashAt(t): correct until virtual or real time t, then silent;
 * - slow(d): every message it sends leaves d ms late;
 * - inTheDark(victims): a primary that never sends its proposals to up to f non-faulty
 *   replicas (paper Example 3.4, case 2);
 * - equivocate: a primary that sends different proposals for the same (v, k) to different
 *   backups: it swaps the batches of two consecutive proposals for half of the backups.
 *
 *
 * Lying backups (issue 13), which need a protocol's `AdversaryHooks` (replica/byzantine-hooks.ts):
 * - forgeViewChange: every view-change message it sends claims what it does not have (prepared
 *   certificates, executions, with client batches it saw at other sequence numbers), and it
 *   re-sends its view-change messages of earlier views; forgeViewChange:stale claims the oldest
 *   checkpoint it saw instead (with the genuine batches above it);
 * - conflictingVotes: each vote (PBFT PREPARE/COMMIT, PoE SUPPORT, HotStuff vote, Zyzzyva
 *   SPEC-RESPONSE/LOCAL-COMMIT) goes genuine to some peers and for another value to the others;
 * - twins:SEED:ROUNDMS:ROUNDS[:0]: two honest instances under one identity, each reaching part
 *   of the network, per round partitions drawn from SEED (replica/byzantine-twins.ts); with :0
 *   only the twins' reach is split, the other replicas are not partitioned.
 *
 * inTheDark and equivocate need to recognise a proposal and to build a conflicting one; each
 * protocol module supplies that through its optional `faults` hooks.
 */
import { Twins, type TwinsSchedule } from './byzantine-twins.js';
import type { AdversaryHooks, FaultHooks, Liar, ProtocolModule } from './protocol.js';
import {
  isClientPeer,
  type Peer,
  type ReplicaCore,
  type ReplicaDeps,
  type ReplicaInput,
  type ReplicaOutput,
  type ReplicaStatus,
  type WireMessage,
} from './types.js';

export type { FaultHooks };

export type FaultSpec =
  | { readonly kind: 'silent' }
  | { readonly kind: 'stopAfter'; readonly batches: number }
  | { readonly kind: 'crashAt'; readonly atMs: number }
  | { readonly kind: 'slow'; readonly delayMs: number }
  | { readonly kind: 'inTheDark'; readonly victims: readonly number[] }
  | { readonly kind: 'equivocate' }
  | { readonly kind: 'forgeViewChange'; readonly stale?: boolean }
  | { readonly kind: 'conflictingVotes' }
  | ({ readonly kind: 'twins' } & TwinsSchedule);

/** The command-line form of a fault, the inverse of parseFault: `stopAfter:900`, `inTheDark:2,3`. */
export function formatFault(f: FaultSpec): string {
  switch (f.kind) {
    case 'silent':
    case 'equivocate':
    case 'conflictingVotes':
      return f.kind;
    case 'forgeViewChange':
      return f.stale ? 'forgeViewChange:stale' : f.kind;
    case 'twins':
      return `twins:${f.seed}:${f.roundMs}:${f.rounds}${f.partitionOthers ? '' : ':0'}`;
    case 'stopAfter':
      return `stopAfter:${f.batches}`;
    case 'crashAt':
      return `crashAt:${f.atMs}`;
    case 'slow':
      return `slow:${f.delayMs}`;
    case 'inTheDark':
      return `inTheDark:${f.victims.join(',')}`;
  }
}

/** A fault of one replica, as `--faults` (runs) and `--fault` (the simulator) take it. */
export interface ReplicaFault {
  readonly replica: number;
  readonly fault: FaultSpec;
}

/** `0=stopAfter:900`: replica 0 behaves so. */
export function formatReplicaFault(a: ReplicaFault): string {
  return `${a.replica}=${formatFault(a.fault)}`;
}

/** A core whose step is filtered; ledger, store and status are the wrapped core's. */
abstract class Wrapper<M extends WireMessage> implements ReplicaCore<M> {
  constructor(protected readonly inner: ReplicaCore<M>) {}
  get id(): number {
    return this.inner.id;
  }
  get ledger() {
    return this.inner.ledger;
  }
  get store() {
    return this.inner.store;
  }
  status(): ReplicaStatus {
    return this.inner.status();
  }
  abstract step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[];
}

class Silent<M extends WireMessage> extends Wrapper<M> {
  step(): ReplicaOutput<M>[] {
    return [];
  }
}

/** Correct until `shouldStop` says so, then silent for good (a crash). */
class CrashWhen<M extends WireMessage> extends Wrapper<M> {
  private crashed = false;
  private executed = 0;
  constructor(
    inner: ReplicaCore<M>,
    private readonly shouldStop: (executed: number, nowMs: number) => boolean,
  ) {
    super(inner);
  }
  get isCrashed(): boolean {
    return this.crashed;
  }
  step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[] {
    if (this.crashed || this.shouldStop(this.executed, nowMs)) {
      this.crashed = true;
      return [];
    }
    const out = this.inner.step(input, nowMs);
    const kept: ReplicaOutput<M>[] = [];
    for (const o of out) {
      // Outputs after the k-th execution within the same step are never sent: the crash
      // happens right after the k-th batch, before anything else leaves the replica.
      if (this.crashed) break;
      kept.push(o);
      if (o.kind === 'event' && o.event.name === 'executed') {
        this.executed++;
        if (this.shouldStop(this.executed, nowMs)) this.crashed = true;
      }
    }
    return kept;
  }
}

const SLOW_TIMER = 'byz-slow:';

class Slow<M extends WireMessage> extends Wrapper<M> {
  private readonly held = new Map<number, ReplicaOutput<M>[]>();
  private seq = 0;
  constructor(
    inner: ReplicaCore<M>,
    private readonly delayMs: number,
  ) {
    super(inner);
  }
  step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[] {
    if (input.kind === 'timer' && input.name.startsWith(SLOW_TIMER)) {
      const id = Number(input.name.slice(SLOW_TIMER.length));
      const out = this.held.get(id) ?? [];
      this.held.delete(id);
      return out;
    }
    const out = this.inner.step(input, nowMs);
    const now: ReplicaOutput<M>[] = [];
    const later: ReplicaOutput<M>[] = [];
    for (const o of out) (o.kind === 'send' || o.kind === 'broadcast' ? later : now).push(o);
    if (later.length > 0) {
      const id = this.seq++;
      this.held.set(id, later);
      now.push({ kind: 'setTimer', name: `${SLOW_TIMER}${id}`, afterMs: this.delayMs });
    }
    return now;
  }
}

/** Expands a broadcast into sends, so a wrapper can treat backups differently. */
function recipients(self: number, n: number): number[] {
  const r: number[] = [];
  for (let i = 0; i < n; i++) if (i !== self) r.push(i);
  return r;
}

class InTheDark<M extends WireMessage> extends Wrapper<M> {
  private readonly victims: Set<number>;
  constructor(
    inner: ReplicaCore<M>,
    private readonly n: number,
    victims: readonly number[],
    private readonly hooks: FaultHooks<M>,
  ) {
    super(inner);
    this.victims = new Set(victims);
  }
  step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[] {
    const out: ReplicaOutput<M>[] = [];
    for (const o of this.inner.step(input, nowMs)) {
      if (o.kind === 'broadcast' && this.hooks.proposalSlot(o.msg)) {
        for (const to of recipients(this.id, this.n)) if (!this.victims.has(to)) out.push({ kind: 'send', to, msg: o.msg });
      } else if (o.kind === 'send' && this.victims.has(o.to) && this.hooks.proposalSlot(o.msg)) {
      } else {
        out.push(o);
      }
    }
    return out;
  }
}

const EQUIVOCATE_TIMER = 'byz-equivocate';
/**
 * How long a proposal waits for a partner. A primary proposes one client batch per incoming
 * request, so consecutive proposals almost never leave in the same step: pairing only within a
 * step would (and did) never equivocate. A few ms is well below any client or view-change timeout.
 */
export const EQUIVOCATE_HOLD_MS = 5;

/**
 * Pairs consecutive proposals (k, k+1) of one view and sends the second half of the backups the
 * two batches swapped: PROPOSE(v, k, T_{k+1}) and PROPOSE(v, k+1, T_k). The first of a pair is
 * held until the next proposal, across steps, for at most EQUIVOCATE_HOLD_MS; a proposal left
 * without a partner then is sent to all as it is, so the wrapper never withholds forever.
 */
class Equivocate<M extends WireMessage> extends Wrapper<M> {
  private held: M | undefined = undefined;
  private readonly backups: number[];
  private readonly deceived: Set<number>;
  constructor(
    inner: ReplicaCore<M>,
    n: number,
    private readonly hooks: FaultHooks<M>,
  ) {
    super(inner);
    this.backups = recipients(this.id, n);
    this.deceived = new Set(this.backups.slice(Math.ceil(this.backups.length / 2)));
  }
  step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[] {
    const out: ReplicaOutput<M>[] = [];
    if (input.kind === 'timer' && input.name === EQUIVOCATE_TIMER) {
      if (this.held !== undefined) out.push({ kind: 'broadcast', msg: this.held });
      this.held = undefined;
      return out;
    }
    for (const o of this.inner.step(input, nowMs)) {
      const slot = o.kind === 'broadcast' ? this.hooks.proposalSlot(o.msg) : undefined;
      if (o.kind !== 'broadcast' || slot === undefined) {
        out.push(o);
        continue;
      }
      const first = this.held;
      if (first === undefined || this.hooks.proposalSlot(first)?.view !== slot.view) {
        if (first !== undefined) out.push({ kind: 'broadcast', msg: first });
        this.held = o.msg;
        out.push({ kind: 'setTimer', name: EQUIVOCATE_TIMER, afterMs: EQUIVOCATE_HOLD_MS });
        continue;
      }
      this.held = undefined;
      out.push({ kind: 'cancelTimer', name: EQUIVOCATE_TIMER });
      const second = o.msg;
      const firstSwapped = this.hooks.withBatchOf(first, second);
      const secondSwapped = this.hooks.withBatchOf(second, first);
      for (const to of this.backups) {
        const lie = this.deceived.has(to);
        out.push({ kind: 'send', to, msg: lie ? firstSwapped : first });
        out.push({ kind: 'send', to, msg: lie ? secondSwapped : second });
      }
    }
    return out;
  }
}

export class FaultConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FaultConfigError';
  }
}

/** What the lying wrappers need beyond the core: the protocol's adversary hooks, the replica's keys, a second instance. */
export interface FaultContext<M extends WireMessage> {
  readonly adversary?: AdversaryHooks<M>;
  readonly deps?: ReplicaDeps;
  /** A fresh core with the same identity and keys (Twins). */
  readonly twin?: () => ReplicaCore<M>;
  /** Every twinned replica of the run (they reach both sides of a partition). */
  readonly twinned?: ReadonlySet<number>;
}

/** Wraps `core` with the behaviour `fault` describes. */
export function withFault<M extends WireMessage>(
  core: ReplicaCore<M>,
  fault: FaultSpec,
  module: Pick<ProtocolModule<M>, 'name'> & { readonly faults?: FaultHooks<M> },
  n: number,
  context: FaultContext<M> = {},
): ReplicaCore<M> {
  switch (fault.kind) {
    case 'silent':
      return new Silent(core);
    case 'stopAfter':
      return new CrashWhen(core, (executed) => executed >= fault.batches);
    case 'crashAt':
      return new CrashWhen(core, (_executed, nowMs) => nowMs >= fault.atMs);
    case 'slow':
      return new Slow(core, fault.delayMs);
    case 'inTheDark':
    case 'equivocate': {
      if (!module.faults) throw new FaultConfigError(`protocol ${module.name} has no proposal hooks for '${fault.kind}'`);
      return fault.kind === 'inTheDark' ? new InTheDark(core, n, fault.victims, module.faults) : new Equivocate(core, n, module.faults);
    }
    case 'forgeViewChange':
    case 'conflictingVotes': {
      if (!context.adversary || !context.deps) throw new FaultConfigError(`protocol ${module.name} has no adversary hooks for '${fault.kind}'`);
      const liar = context.adversary.liar(core.id, n, context.deps);
      return fault.kind === 'forgeViewChange' ? new ForgeViewChange(core, liar, fault.stale === true) : new ConflictingVotes(core, n, liar);
    }
    case 'twins': {
      if (!context.twin) throw new FaultConfigError(`'twins' needs a runtime that can host a second instance (the simulator)`);
      return new Twins(core, context.twin(), n, fault, context.twinned ?? new Set([core.id]));
    }
  }
}

/**
 * Replaces each view-change message it sends with a forged one (Liar.forgeViewChange) or, with
 * `stale`, one claiming a stale checkpoint (Liar.staleViewChange), the same for every recipient
 * and every re-send of that view (so no receiver sees two versions), and with each re-sends its
 * view-change messages of earlier views (replays).
 */
class ForgeViewChange<M extends WireMessage> extends Wrapper<M> {
  private readonly byView = new Map<number, M>();
  constructor(
    inner: ReplicaCore<M>,
    private readonly liar: Liar<M>,
    private readonly stale: boolean,
  ) {
    super(inner);
  }
  step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[] {
    if (input.kind === 'message') this.liar.observe(input.msg, true);
    const out: ReplicaOutput<M>[] = [];
    for (const o of this.inner.step(input, nowMs)) {
      if (o.kind !== 'send' && o.kind !== 'broadcast') {
        out.push(o);
        continue;
      }
      this.liar.observe(o.msg, false);
      const view = this.liar.viewChangeView(o.msg);
      if (view === undefined) {
        out.push(o);
        continue;
      }
      let lie = this.byView.get(view);
      if (lie === undefined) {
        lie = (this.stale ? this.liar.staleViewChange(o.msg) : this.liar.forgeViewChange(o.msg)) ?? o.msg;
        this.byView.set(view, lie);
      }
      const replays = [...this.byView.entries()].filter(([v]) => v < view).map(([, m]) => m);
      for (const msg of [...replays.slice(-3), lie]) out.push(o.kind === 'send' ? { kind: 'send', to: o.to, msg } : { kind: 'broadcast', msg });
    }
    return out;
  }
}

/**
 * Sends each vote genuine to half of its recipients and a conflicting one (Liar.conflictingVote)
 * to the other half: replicas `to` with (to + id) odd are deceived, client machines on every
 * other vote they get.
 */
class ConflictingVotes<M extends WireMessage> extends Wrapper<M> {
  constructor(
    inner: ReplicaCore<M>,
    private readonly n: number,
    private readonly liar: Liar<M>,
  ) {
    super(inner);
  }
  private votesToClients = 0;
  private deceived(to: Peer): boolean {
    // A client machine is one peer: it gets every other vote (SPEC-RESPONSE, LOCAL-COMMIT) false.
    if (isClientPeer(to)) return this.votesToClients++ % 2 === 1;
    return (to + this.id) % 2 === 1;
  }
  step(input: ReplicaInput<M>, nowMs: number): ReplicaOutput<M>[] {
    if (input.kind === 'message') this.liar.observe(input.msg, true);
    const out: ReplicaOutput<M>[] = [];
    for (const o of this.inner.step(input, nowMs)) {
      if (o.kind !== 'send' && o.kind !== 'broadcast') {
        out.push(o);
        continue;
      }
      this.liar.observe(o.msg, false);
      const lie = this.liar.conflictingVote(o.msg);
      if (lie === undefined) out.push(o);
      else if (o.kind === 'send') out.push({ kind: 'send', to: o.to, msg: this.deceived(o.to) ? lie : o.msg });
      else for (const to of recipients(this.id, this.n)) out.push({ kind: 'send', to, msg: this.deceived(to) ? lie : o.msg });
    }
    return out;
  }
}

/** Parses a fault written on the command line: silent, stopAfter:900, crashAt:5000, slow:20, inTheDark:2,3, equivocate, forgeViewChange, conflictingVotes, twins:7:50:20. */
export function parseFault(text: string): FaultSpec {
  const [name, arg] = text.split(':', 2) as [string, string | undefined];
  const num = (what: string): number => {
    const v = Number(arg);
    if (arg === undefined || !Number.isFinite(v) || v < 0) throw new FaultConfigError(`fault '${text}': ${what} must be a non-negative number`);
    return v;
  };
  switch (name) {
    case 'silent':
      return { kind: 'silent' };
    case 'stopAfter':
      return { kind: 'stopAfter', batches: num('batches') };
    case 'crashAt':
      return { kind: 'crashAt', atMs: num('time in ms') };
    case 'slow':
      return { kind: 'slow', delayMs: num('delay in ms') };
    case 'inTheDark': {
      const victims = (arg ?? '')
        .split(',')
        .filter((s) => s !== '')
        .map(Number);
      if (victims.length === 0 || victims.some((v) => !Number.isInteger(v) || v < 0)) {
        throw new FaultConfigError(`fault '${text}': inTheDark needs replica ids, e.g. inTheDark:2,3`);
      }
      return { kind: 'inTheDark', victims };
    }
    case 'equivocate':
      return { kind: 'equivocate' };
    case 'forgeViewChange':
      if (arg !== undefined && arg !== 'stale') throw new FaultConfigError(`fault '${text}': forgeViewChange takes no argument or 'stale'`);
      return arg === 'stale' ? { kind: 'forgeViewChange', stale: true } : { kind: 'forgeViewChange' };
    case 'conflictingVotes':
      return { kind: 'conflictingVotes' };
    case 'twins': {
      const parts = text.split(':').slice(1).map(Number);
      const ok = (parts.length === 3 || (parts.length === 4 && (parts[3] === 0 || parts[3] === 1))) && parts.every((x) => Number.isInteger(x) && x >= 0);
      if (!ok || parts[1]! <= 0) throw new FaultConfigError(`fault '${text}': twins needs SEED:ROUNDMS:ROUNDS[:0|1], e.g. twins:7:50:20`);
      return { kind: 'twins', seed: parts[0]!, roundMs: parts[1]!, rounds: parts[2]!, partitionOthers: parts[3] !== 0 };
    }
    default:
      throw new FaultConfigError(
        `unknown fault '${text}' (known: silent, stopAfter:K, crashAt:MS, slow:MS, inTheDark:IDS, equivocate, forgeViewChange[:stale], conflictingVotes, twins:SEED:ROUNDMS:ROUNDS[:0])`,
      );
  }
}
