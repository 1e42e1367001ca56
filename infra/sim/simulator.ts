/**
 * The deterministic simulator (DESIGN.md "One protocol core, many worlds"; STYLE.md,
 * TigerBeetle's VOPR): every replica core and every client machine of a run in one process,
 * in virtual time, over a seeded network that delays, drops, duplicates, reorders and
 * partitions, with replicas that crash. One seed determines everything, so a failing run is
 * replayed exactly by `poe-bench sim ... --seed S`.
 *
 * Each message goes through its protocol's codec: encoded once when sent, decoded once per
 * receiver, so what a core receives is what it would read off a socket, and message sizes are
 * real. While the run goes on, an online checker compares every commit with one canonical
 * commit list; at the end the non-faulty ledgers and the accepted batches are checked
 * (safety.ts), and every issued batch must have been accepted (liveness).
 */
import { ClientCore, type KeyGenerator } from '../../client/core.js';
import { createKeyGenerator } from '../../client/generators.js';
import { Rng } from '../../client/random.js';
import { createCrypto } from '../../replica/crypto.js';
import { KeyRing } from '../../replica/keys.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import { getProtocol, messageTypeNames } from '../../replica/protocols.js';
import {
  clientOrigin,
  clientPeer,
  isClientPeer,
  quorums,
  type AcceptedBatch,
  type ClientOutput,
  type Peer,
  type ReplicaCore,
  type ReplicaEvent,
  type ReplicaOptions,
  type ReplicaOutput,
  type WireMessage,
} from '../../replica/types.js';
import { EventQueue } from './event-queue.js';
import { Network, type NetworkStats } from './network.js';
import { replayCommand, resolveSimConfig, silentBackups, type ExtraValue, type SimConfig, type SimInput } from './options.js';
import { checkSafety, CommitChecker } from './safety.js';

/** Protocols whose replicas execute before commit and may roll back (paper §3.3.5; Zyzzyva). */
const SPECULATIVE_PROTOCOLS: ReadonlySet<string> = new Set(['poe', 'zyzzyva']);

/** The message type that is reported apart from the per-batch protocol messages. */
const CHECKPOINT_TYPE_NAME = 'CHECKPOINT';

export type StopReason =
  /** Every client machine issued its batches and all were accepted. */
  | 'done'
  | 'time-limit'
  | 'event-limit'
  /** Nothing left to happen (no message in flight, no timer armed), yet clients are not done. */
  | 'idle'
  /** The online checker found a violation (the run stops at once). */
  | 'safety-violation'
  /** A core threw: its state is unknown, so the run stops. */
  | 'exception';

export interface SimResult {
  readonly protocol: string;
  readonly n: number;
  readonly f: number;
  /** Replicas that were faulty: the silent backups and those that crashed during the run. */
  readonly crashed: number[];
  readonly seed: number;
  readonly valid: boolean;
  readonly violations: string[];
  readonly acceptedBatches: number;
  readonly issuedBatches: number;
  /** Replica-sent messages (one per recipient, checkpoints included) per accepted batch. */
  readonly messagesPerBatch: number;
  /** The same without CHECKPOINT messages: the protocol's per-batch cost. */
  readonly protocolMessagesPerBatch: number;
  /** Replica-sent messages by type name, one per recipient. */
  readonly messagesByType: Record<string, number>;
  readonly checkpointMessages: number;
  readonly replicaMessages: number;
  /** Bytes of replica-sent messages, one frame per recipient. */
  readonly bytesSent: number;
  readonly clientMessages: number;
  readonly clientBytesSent: number;
  /** Virtual time when the run stopped (before in-flight messages were drained). */
  readonly virtualTimeMs: number;
  /** Distinct views above 0 that a non-faulty replica entered. */
  readonly viewChanges: number;
  readonly highestView: number;
  /** Rollback events, and the batches they undid. */
  readonly rollbacks: number;
  readonly rolledBackBatches: number;
  readonly clientTimeouts: number;
  readonly acceptedByPath: Record<string, number>;
  /** Virtual latency of accepted batches: acceptance minus first send. */
  readonly latencyMs: { readonly mean: number; readonly max: number };
  readonly highestStableCheckpoint: number;
  /** Final ledger heights of the non-faulty replicas; above acceptedBatches when no-ops filled slots. */
  readonly ledgerHeight: { readonly min: number; readonly max: number };
  /**
   * Heights of the longest non-faulty ledger whose batch digest already sits at a lower height:
   * one client batch ordered twice (the Executor skips its writes, but a sequence number is spent).
   */
  readonly orderedTwice: number;
  readonly rejectedByReason: Record<string, number>;
  readonly network: NetworkStats;
  readonly events: number;
  readonly stopReason: StopReason;
  /** The command that replays this run. */
  readonly replay: string;
}

type SimEvent =
  | { readonly kind: 'start'; readonly node: Peer }
  | { readonly kind: 'deliver'; readonly from: Peer; readonly to: Peer; readonly frame: Buffer }
  | { readonly kind: 'timer'; readonly node: Peer; readonly name: string; readonly generation: number }
  | { readonly kind: 'crash'; readonly replica: number };

interface ReplicaNode {
  readonly core: ReplicaCore<WireMessage>;
  /** Silent from the start or crashed later: drops every input. */
  crashed: boolean;
  readonly timers: Map<string, number>;
  /** The last k this replica reported executing (a rollback moves it back), for the in-order check. */
  executedK: number;
}

interface ClientNode {
  readonly core: ClientCore<WireMessage>;
  readonly timers: Map<string, number>;
}

/** Splits M batches over the client machines as evenly as possible. */
function batchesFor(origin: number, machines: number, total: number): number {
  return Math.floor(total / machines) + (origin < total % machines ? 1 : 0);
}

const sortedRecord = (m: Map<string, number>): Record<string, number> =>
  Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

const bump = (m: Map<string, number>, key: string, by = 1): void => {
  m.set(key, (m.get(key) ?? 0) + by);
};

export class Simulation {
  readonly config: SimConfig;
  readonly module: ProtocolModule<WireMessage>;
  readonly f: number;
  /** Replicas that never take part (silent backups). */
  readonly silent: readonly number[];
  private readonly speculative: boolean;
  private readonly typeNames: ReadonlyMap<number, string>;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly network: Network;
  private readonly replicas: ReplicaNode[] = [];
  private readonly clients: ClientNode[] = [];
  private readonly checker = new CommitChecker();
  private readonly faulty = new Set<number>();

  private nowMs = 0;
  private events = 0;
  private timerGeneration = 0;
  private draining = false;
  private readonly violations: string[] = [];
  private stopRequested: StopReason | undefined;

  private readonly accepted: AcceptedBatch[] = [];
  private readonly messagesByType = new Map<string, number>();
  private readonly acceptedByPath = new Map<string, number>();
  private readonly rejectedByReason = new Map<string, number>();
  private readonly viewsEntered = new Set<number>();
  private replicaMessages = 0;
  private replicaBytes = 0;
  private clientMessages = 0;
  private clientBytes = 0;
  private rollbacks = 0;
  private rolledBackBatches = 0;
  private clientTimeouts = 0;
  private highestStable = 0;

  constructor(input: SimInput) {
    this.config = resolveSimConfig(input);
    const c = this.config;
    this.module = input.module ?? getProtocol(c.protocol);
    this.f = quorums(c.n).f;
    this.silent = silentBackups(c.n, c.crashed);
    this.speculative = SPECULATIVE_PROTOCOLS.has(this.module.name);
    this.typeNames = input.typeNames ?? messageTypeNames(this.module.name);
    for (const r of this.silent) this.faulty.add(r);
    for (const crash of c.crashes) {
      if (!Number.isInteger(crash.replica) || crash.replica < 0 || crash.replica >= c.n) {
        throw new RangeError(`crash of replica ${crash.replica}: replicas are 0..${c.n - 1}`);
      }
      this.faulty.add(crash.replica);
    }

    // One seed for everything: the network and each client machine's keys get forked streams,
    // forked in a fixed order so that adding a client machine does not change the network's.
    const rng = new Rng(c.seed);
    this.network = new Network(
      {
        delay: c.delay,
        links: c.links,
        dropProbability: c.dropProbability,
        duplicateProbability: c.duplicateProbability,
        partitions: c.partitions,
      },
      rng.fork(),
    );
    const crypto = createCrypto('sim');
    const keySeed = `sim-${c.seed}`;
    const keys = new KeyRing(crypto, keySeed, c.n, c.clientMachines);
    const extra = this.protocolExtra(keySeed);

    for (let id = 0; id < c.n; id++) {
      const options: ReplicaOptions = {
        id,
        n: c.n,
        checkpointIntervalK: c.checkpointIntervalK,
        windowK: c.windowK,
        records: c.records,
        valueBytes: c.valueBytes,
        viewChangeTimeoutMs: c.viewChangeTimeoutMs,
        extra,
      };
      const core = this.module.createReplica(options, keys.replicaDeps(id));
      this.replicas.push({ core, crashed: this.silent.includes(id), timers: new Map(), executedK: 0 });
    }
    for (let origin = 0; origin < c.clientMachines; origin++) {
      const keyRng = rng.fork();
      const keyGen: KeyGenerator = createKeyGenerator(c.keyGenerator, c.records, keyRng.nextU32());
      const policy = this.module.createClientPolicy({ n: c.n, origin, extra });
      const core = new ClientCore<WireMessage>(
        {
          origin,
          clients: c.clients,
          clientIdBase: origin * c.clients,
          batchSize: c.batchSize,
          valueBytes: c.valueBytes,
          requestTimeoutMs: c.requestTimeoutMs,
          maxBatches: batchesFor(origin, c.clientMachines, c.batches),
        },
        { crypto, signer: keys.clientSigner(origin), keys: keyGen, policy },
      );
      this.clients.push({ core, timers: new Map() });
    }

    for (let id = 0; id < c.n; id++) this.queue.push(0, { kind: 'start', node: id });
    for (let origin = 0; origin < c.clientMachines; origin++) this.queue.push(0, { kind: 'start', node: clientPeer(origin) });
    for (const crash of c.crashes) this.queue.push(crash.atMs, { kind: 'crash', replica: crash.replica });
  }

  /**
   * `extra` for replicas and client policies: the configured switches, plus what the sim
   * world implies: the key seed and crypto provider (Zyzzyva's client verifies signed
   * replies), and for HotStuff the leaders, every replica that takes part (paper §4(8): all
   * replicas act as primaries in parallel; a silent backup would stall its own slots).
   */
  private protocolExtra(keySeed: string): Readonly<Record<string, ExtraValue>> {
    const extra: Record<string, ExtraValue> = { keySeed, cryptoProvider: 'sim' };
    if (this.module.name === 'hotstuff') {
      const leaders: number[] = [];
      for (let id = 0; id < this.config.n; id++) if (!this.silent.includes(id)) leaders.push(id);
      extra['leaders'] = leaders.join(',');
    }
    return { ...extra, ...this.config.extra };
  }

  /** Runs to a stop condition, drains in-flight messages, checks safety and liveness. */
  run(): SimResult {
    const stopReason = this.loop();
    const stoppedAtMs = this.nowMs;
    if (stopReason === 'done' && this.config.drain) this.drain();
    this.finalChecks(stopReason);
    return this.result(stopReason, stoppedAtMs);
  }

  private loop(): StopReason {
    const c = this.config;
    for (;;) {
      if (this.stopRequested) return this.stopRequested;
      if (this.clients.every((cl) => cl.core.done)) return 'done';
      if (this.events >= c.maxEvents) return 'event-limit';
      const nextMs = this.queue.peekTimeMs();
      if (nextMs === undefined) return 'idle';
      if (nextMs > c.maxTimeMs) {
        this.nowMs = c.maxTimeMs;
        return 'time-limit';
      }
      const e = this.queue.pop()!;
      this.nowMs = e.timeMs;
      this.events++;
      this.dispatch(e.item);
    }
  }

  /**
   * Once the clients are done, the replicas still have messages in flight (the last batches'
   * late SUPPORTs, replies the client no longer needed). Delivering them, with timers off,
   * makes the message counts exact per batch and lets lagging replicas catch up before the
   * ledgers are compared.
   */
  private drain(): void {
    this.draining = true;
    this.queue.retain((e) => e.kind === 'deliver');
    while (this.queue.size > 0 && this.events < this.config.maxEvents && !this.stopRequested) {
      const e = this.queue.pop()!;
      this.nowMs = e.timeMs;
      this.events++;
      this.dispatch(e.item);
    }
  }

  private dispatch(e: SimEvent): void {
    switch (e.kind) {
      case 'start':
        if (isClientPeer(e.node)) this.stepClient(clientOrigin(e.node), { kind: 'start' });
        else this.stepReplica(e.node, { kind: 'start' });
        return;
      case 'deliver':
        this.deliver(e);
        return;
      case 'timer': {
        const timers = isClientPeer(e.node) ? this.clients[clientOrigin(e.node)]!.timers : this.replicas[e.node]!.timers;
        if (timers.get(e.name) !== e.generation) return; // cancelled or re-armed since
        timers.delete(e.name);
        if (isClientPeer(e.node)) this.stepClient(clientOrigin(e.node), { kind: 'timer', name: e.name });
        else this.stepReplica(e.node, { kind: 'timer', name: e.name });
        return;
      }
      case 'crash': {
        const node = this.replicas[e.replica]!;
        node.crashed = true;
        node.timers.clear();
        return;
      }
    }
  }

  private deliver(e: { from: Peer; to: Peer; frame: Buffer }): void {
    if (this.network.isCut(e.from, e.to, this.nowMs)) {
      this.network.stats.partitioned++;
      return;
    }
    if (!isClientPeer(e.to) && this.replicas[e.to]!.crashed) {
      this.network.stats.toCrashed++;
      return;
    }
    this.network.stats.delivered++;
    let msg: WireMessage;
    try {
      msg = this.module.codec.decode(e.frame);
    } catch (err) {
      // The simulator only delivers frames the codec itself encoded: failing to decode one is a bug.
      this.fail(`codec: a frame from ${e.from} to ${e.to} does not decode: ${(err as Error).message}`, 'exception');
      return;
    }
    if (isClientPeer(e.to)) this.stepClient(clientOrigin(e.to), { kind: 'message', from: e.from, msg });
    else this.stepReplica(e.to, { kind: 'message', from: e.from, msg });
  }

  private fail(violation: string, stop?: StopReason): void {
    this.violations.push(`${violation} (at ${this.nowMs.toFixed(3)} ms)`);
    if (stop) this.stopRequested ??= stop;
  }

  // ---------------------------------------------------------------------------------------
  // Replicas

  private stepReplica(id: number, input: Parameters<ReplicaCore<WireMessage>['step']>[0]): void {
    const node = this.replicas[id]!;
    if (node.crashed) return;
    let outputs: ReplicaOutput<WireMessage>[];
    try {
      outputs = node.core.step(input, this.nowMs);
    } catch (err) {
      this.fail(`replica ${id} threw on ${input.kind} input: ${(err as Error).stack ?? String(err)}`, 'exception');
      return;
    }
    for (const o of outputs) {
      switch (o.kind) {
        case 'send':
          this.sendFromReplica(id, o.to, o.msg);
          break;
        case 'broadcast': {
          const frame = this.encode(o.msg, id);
          if (!frame) break;
          for (let to = 0; to < this.config.n; to++) if (to !== id) this.transmit(id, to, frame, o.msg.type);
          break;
        }
        case 'setTimer':
          this.setTimer(id, node.timers, o.name, o.afterMs);
          break;
        case 'cancelTimer':
          node.timers.delete(o.name);
          break;
        case 'event':
          this.onReplicaEvent(id, node, o.event);
          break;
      }
    }
  }

  private sendFromReplica(id: number, to: Peer, msg: WireMessage): void {
    if (to === id) {
      this.fail(`replica ${id} sent a message of type ${this.typeName(msg.type)} to itself (replicas never send to themselves)`);
      return;
    }
    if (!this.isKnownPeer(to)) {
      this.fail(`replica ${id} sent a message of type ${this.typeName(msg.type)} to unknown peer ${to}`);
      return;
    }
    const frame = this.encode(msg, id);
    if (frame) this.transmit(id, to, frame, msg.type);
  }

  private isKnownPeer(p: Peer): boolean {
    if (isClientPeer(p)) return clientOrigin(p) < this.config.clientMachines;
    return Number.isInteger(p) && p >= 0 && p < this.config.n;
  }

  private encode(msg: WireMessage, from: Peer): Buffer | undefined {
    try {
      return this.module.codec.encode(msg);
    } catch (err) {
      this.fail(`codec: ${isClientPeer(from) ? 'client' : 'replica'} ${from} could not encode type ${msg.type}: ${(err as Error).message}`, 'exception');
      return undefined;
    }
  }

  private onReplicaEvent(id: number, node: ReplicaNode, ev: ReplicaEvent): void {
    switch (ev.name) {
      case 'executed':
        this.onExecuted(id, node, ev.k, ev.view);
        break;
      case 'rollback':
        this.rollbacks++;
        this.rolledBackBatches += Math.max(0, ev.fromK - ev.toK);
        if (!this.speculative) this.fail(`replica ${id} rolled back from ${ev.fromK} to ${ev.toK}, but ${this.module.name} executes only committed batches`, 'safety-violation');
        node.executedK = Math.min(node.executedK, ev.toK);
        break;
      case 'viewEntered':
        if (ev.view > 0 && !this.faulty.has(id)) this.viewsEntered.add(ev.view);
        break;
      case 'checkpointStable':
        this.highestStable = Math.max(this.highestStable, ev.k);
        break;
      case 'rejected':
        bump(this.rejectedByReason, ev.reason);
        break;
      case 'viewChangeStarted':
        break;
    }
  }

  /** The online check: a replica's execution against the canonical commit list. */
  private onExecuted(id: number, node: ReplicaNode, k: number, view: number): void {
    // DESIGN.md: execute strictly in order; only a rollback (speculative protocols) moves back.
    if (k !== node.executedK + 1) {
      this.fail(`replica ${id} executed k=${k} right after k=${node.executedK}: execution must be strictly in order`, 'safety-violation');
    }
    node.executedK = k;
    const ledger = node.core.ledger;
    // The event follows the append; if the same step already rolled k back, there is nothing to compare.
    if (ledger.height < k) return;
    const v = this.checker.onExecuted(id, k, ledger.digestAt(k), view, !this.speculative);
    if (v) this.fail(v, this.config.stopOnViolation ? 'safety-violation' : undefined);
  }

  // ---------------------------------------------------------------------------------------
  // Clients

  private stepClient(origin: number, input: Parameters<ClientCore<WireMessage>['step']>[0]): void {
    const node = this.clients[origin]!;
    const from = clientPeer(origin);
    let outputs: ClientOutput<WireMessage>[];
    try {
      outputs = node.core.step(input, this.nowMs);
    } catch (err) {
      this.fail(`client machine ${origin} threw on ${input.kind} input: ${(err as Error).stack ?? String(err)}`, 'exception');
      return;
    }
    for (const o of outputs) {
      switch (o.kind) {
        case 'send': {
          if (!this.isKnownPeer(o.to) || isClientPeer(o.to)) {
            this.fail(`client machine ${origin} sent to ${o.to}, which is not a replica`);
            break;
          }
          const frame = this.encode(o.msg, from);
          if (frame) this.transmit(from, o.to, frame, o.msg.type);
          break;
        }
        case 'broadcast': {
          const frame = this.encode(o.msg, from);
          if (!frame) break;
          for (let to = 0; to < this.config.n; to++) this.transmit(from, to, frame, o.msg.type);
          break;
        }
        case 'setTimer':
          this.setTimer(from, node.timers, o.name, o.afterMs);
          break;
        case 'cancelTimer':
          node.timers.delete(o.name);
          break;
        case 'accepted':
          this.onAccepted(o.batch);
          break;
        case 'event':
          if (o.event.name === 'timeout') this.clientTimeouts++;
          else bump(this.rejectedByReason, `client: ${o.event.reason}`);
          break;
      }
    }
  }

  private onAccepted(batch: AcceptedBatch): void {
    this.accepted.push(batch);
    bump(this.acceptedByPath, batch.path);
    const v = this.checker.onAccepted(batch);
    if (v) this.fail(v, this.config.stopOnViolation ? 'safety-violation' : undefined);
  }

  // ---------------------------------------------------------------------------------------
  // Network and timers

  private transmit(from: Peer, to: Peer, frame: Buffer, type: number): void {
    if (isClientPeer(from)) {
      this.clientMessages++;
      this.clientBytes += frame.length;
    } else {
      this.replicaMessages++;
      this.replicaBytes += frame.length;
      bump(this.messagesByType, this.typeName(type));
    }
    for (const atMs of this.network.transmit(from, to, this.nowMs)) this.queue.push(atMs, { kind: 'deliver', from, to, frame });
  }

  private typeName(type: number): string {
    return this.typeNames.get(type) ?? `type${type}`;
  }

  private setTimer(node: Peer, timers: Map<string, number>, name: string, afterMs: number): void {
    if (!Number.isFinite(afterMs) || afterMs < 0) {
      this.fail(`${isClientPeer(node) ? 'client machine' : 'replica'} ${isClientPeer(node) ? clientOrigin(node) : node} armed timer '${name}' with afterMs=${afterMs}`, 'exception');
      return;
    }
    // While draining, time only moves to deliver what is in flight: no timer may fire.
    if (this.draining) return;
    const generation = ++this.timerGeneration;
    timers.set(name, generation);
    this.queue.push(this.nowMs + afterMs, { kind: 'timer', node, name, generation });
  }

  // ---------------------------------------------------------------------------------------
  // The end of a run

  private nonFaultyReplicas(): number[] {
    const out: number[] = [];
    for (let id = 0; id < this.config.n; id++) if (!this.faulty.has(id)) out.push(id);
    return out;
  }

  private finalChecks(stopReason: StopReason): void {
    // After an exception a core's state is unknown; its ledger proves nothing either way.
    if (stopReason !== 'exception') {
      for (const id of this.nonFaultyReplicas()) {
        const node = this.replicas[id]!;
        if (node.core.ledger.height !== node.executedK) {
          this.violations.push(`replica ${id}: its ledger height is ${node.core.ledger.height}, but its 'executed' and 'rollback' events add up to k=${node.executedK}`);
        }
      }
      const ledgers = this.nonFaultyReplicas().map((id) => ({ replica: id, ledger: this.replicas[id]!.core.ledger }));
      this.violations.push(...checkSafety({ ledgers, accepted: this.accepted, requireAcceptedInLedgers: stopReason === 'done' }));
    }
    const issued = this.issuedBatches();
    if (this.accepted.length < this.config.batches) {
      this.violations.push(
        `liveness: ${this.accepted.length} of ${this.config.batches} batches accepted (${issued} issued; stopped: ${stopReason} at ${this.nowMs.toFixed(0)} ms virtual)`,
      );
    }
  }

  private issuedBatches(): number {
    return this.clients.reduce((s, c) => s + c.core.issuedBatches, 0);
  }

  private result(stopReason: StopReason, stoppedAtMs: number): SimResult {
    const accepted = this.accepted.length;
    const checkpointMessages = this.messagesByType.get(CHECKPOINT_TYPE_NAME) ?? 0;
    let latencySum = 0;
    let latencyMax = 0;
    for (const a of this.accepted) {
      const l = a.acceptedMs - a.firstSentMs;
      latencySum += l;
      latencyMax = Math.max(latencyMax, l);
    }
    const perBatch = (x: number): number => (accepted > 0 ? x / accepted : 0);
    return {
      protocol: this.module.name,
      n: this.config.n,
      f: this.f,
      crashed: [...this.faulty].sort((a, b) => a - b),
      seed: this.config.seed,
      valid: this.violations.length === 0,
      violations: [...this.violations],
      acceptedBatches: accepted,
      issuedBatches: this.issuedBatches(),
      messagesPerBatch: perBatch(this.replicaMessages),
      protocolMessagesPerBatch: perBatch(this.replicaMessages - checkpointMessages),
      messagesByType: sortedRecord(this.messagesByType),
      checkpointMessages,
      replicaMessages: this.replicaMessages,
      bytesSent: this.replicaBytes,
      clientMessages: this.clientMessages,
      clientBytesSent: this.clientBytes,
      virtualTimeMs: stoppedAtMs,
      viewChanges: this.viewsEntered.size,
      highestView: Math.max(0, ...this.viewsEntered),
      rollbacks: this.rollbacks,
      rolledBackBatches: this.rolledBackBatches,
      clientTimeouts: this.clientTimeouts,
      acceptedByPath: sortedRecord(this.acceptedByPath),
      latencyMs: { mean: perBatch(latencySum), max: latencyMax },
      highestStableCheckpoint: this.highestStable,
      ledgerHeight: this.ledgerHeights(),
      orderedTwice: this.orderedTwice(),
      rejectedByReason: sortedRecord(this.rejectedByReason),
      network: { ...this.network.stats },
      events: this.events,
      stopReason,
      replay: replayCommand(this.config),
    };
  }

  private ledgerHeights(): { min: number; max: number } {
    const heights = this.nonFaultyReplicas().map((id) => this.replicas[id]!.core.ledger.height);
    return heights.length === 0 ? { min: 0, max: 0 } : { min: Math.min(...heights), max: Math.max(...heights) };
  }

  private orderedTwice(): number {
    let longest: ReplicaCore<WireMessage> | undefined;
    for (const id of this.nonFaultyReplicas()) {
      const core = this.replicas[id]!.core;
      if (!longest || core.ledger.height > longest.ledger.height) longest = core;
    }
    if (!longest) return 0;
    const seen = new Set<string>();
    let twice = 0;
    for (let k = 1; k <= longest.ledger.height; k++) {
      const d = longest.ledger.digestAt(k).toString('hex');
      if (seen.has(d)) twice++;
      else seen.add(d);
    }
    return twice;
  }

  /** The replicas' ledgers and status after `run` (for tests that look inside). */
  replicaCores(): readonly ReplicaCore<WireMessage>[] {
    return this.replicas.map((r) => r.core);
  }

  acceptedList(): readonly AcceptedBatch[] {
    return this.accepted;
  }
}

/** Runs one simulation. */
export function runSimulation(input: SimInput): SimResult {
  return new Simulation(input).run();
}
