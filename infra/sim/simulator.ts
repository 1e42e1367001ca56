/**
 * The deterministic simulator (DESIGN.md "One protocol core, many worlds"; STYLE.md,
 * TigerBeetle's VOPR): every replica core and every client machine of a run in one process,
 * in virtual time, over a seeded network that delays, drops, duplicates, reorders and
 * partitions, with replicas that crash. One seed determines everything, so a failing run is
 * replayed exactly by `poe-bench sim ... --seed S`.
 *
 * Each message goes through its protocol's codec: encoded once when sent, decoded once per
 * receiver, so what a core receives is what it would read off a socket, and message sizes are
 * real. In a run where every node is honest and nothing counts the work (no cost hook), the
 * recipients of one frame share its one decode, and crypto is charged without being computed
 * (charged-crypto.ts; SimInput.crypto: 'computed' turns both off). Replicas may be wrapped in crash and Byzantine behaviours (`faults`, replica/byzantine.ts:
 * silent, stopAfter, crashAt, slow, inTheDark, equivocate); they count as faulty and are left out
 * of every check.
 *
 * While the run goes on, an online checker compares every commit with one canonical commit list,
 * flags a non-faulty replica that rolls back a block a client accepted, and, for speculative
 * protocols, an acceptance that f+1 non-faulty replicas have not executed (speculative
 * non-divergence binds nothing less). Once the clients are done, the settle phase delivers what
 * is in flight and, if the non-faulty replicas disagree, heals the network and runs on with
 * timers until they converge (settleMs). At the end the non-faulty ledgers and the accepted
 * batches are checked (safety.ts), the replicas must have converged, and every issued batch
 * must have been accepted (liveness).
 */
import { ClientCore, type KeyGenerator } from '../../client/core.js';
import { createKeyGenerator } from '../../client/generators.js';
import { Rng } from '../../client/random.js';
import { formatReplicaFault, withFault } from '../../replica/byzantine.js';
import { type CryptoProvider, createCrypto } from '../../replica/crypto.js';
import { CountingCrypto } from '../../replica/crypto-counter.js';
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
import { ChargedCrypto } from './charged-crypto.js';
import type { SimCostHook } from './cost-hook.js';
import { ExecutedBlocks } from './executed-blocks.js';
import { frameMacBytes, readsOf, type SentFrame, type SimEvent, socketReads } from './sim-events.js';
import { FRAME_HEADER_BYTES } from '../process/frame-limits.js';
import { EventQueue } from './event-queue.js';
import { Network, type NetworkStats } from './network.js';
import { simFaultContext, twinsNetworkCut } from './twins.js';
import {
  faultAssignmentProblem,
  replayCommand,
  resolveSimConfig,
  silentBackups,
  simCryptoMode,
  type ExtraValue,
  type SimConfig,
  type SimCryptoMode,
  type SimInput,
} from './options.js';
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
  /** Replicas that were faulty: the silent backups, those that crashed during the run, and those with a fault. */
  readonly crashed: number[];
  /** The crash and Byzantine behaviours, as `--fault` writes them (e.g. '0=equivocate'). */
  readonly faults: string[];
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
  /** Virtual time the settle phase ran with timers on (0: the replicas agreed when the clients were done). */
  readonly settledMs: number;
  /** The non-faulty replicas' ledgers ended at the same height with the same head hash. */
  readonly converged: boolean;
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
  /** Whether crypto was computed, or charged without being computed (charged-crypto.ts; options.ts simCryptoMode). */
  readonly crypto: SimCryptoMode;
  readonly stopReason: StopReason;
  /** The command that replays this run. */
  readonly replay: string;
}

interface ReplicaNode {
  readonly core: ReplicaCore<WireMessage>;
  /** Silent from the start or crashed later: drops every input. */
  crashed: boolean;
  readonly timers: Map<string, number>;
  /** The last k this replica reported executing (a rollback moves it back), for the in-order check. */
  executedK: number;
  /**
   * Speculative protocols: the block (digest and view) this replica executed at each k (index
   * k - 1), kept because a 'rollback' event arrives after the ledger forgot what it undid.
   */
  readonly executedBlocks: ExecutedBlocks;
}

interface ClientNode {
  readonly core: ClientCore<WireMessage>;
  readonly timers: Map<string, number>;
}

/** Splits M batches over the client machines as evenly as possible. */
function batchesFor(origin: number, machines: number, total: number): number {
  return Math.floor(total / machines) + (origin < total % machines ? 1 : 0);
}

const sortedRecord = (m: Map<string, number>): Record<string, number> => Object.fromEntries([...m.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));

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
  /** Twins: the rounds' partitions of the non-twinned replicas (infra/sim/twins.ts). */
  private readonly twinsCut: ((from: Peer, to: Peer, nowMs: number) => boolean) | undefined;

  private nowMs = 0;
  private events = 0;
  private timerGeneration = 0;
  /** Virtual time when the settle phase started running timers again, if it did. */
  private settleStartMs: number | undefined = undefined;
  private settled = true;
  /** Why the settle phase stopped without convergence: nothing left to happen, or its time ran out. */
  private settleGaveUp: 'idle' | 'time' | 'events' = 'time';
  private readonly violations: string[] = [];
  private stopRequested: StopReason | undefined;
  /** The cost model, if any (cost-hook.ts), the crypto counter it reads, and the inputs it holds back per node. */
  private readonly hook: SimCostHook | undefined;
  private readonly counting: CountingCrypto | undefined;
  private readonly backlog = new Map<Peer, SimEvent[]>();
  private inputFrameBytes = -1;
  /** The bytes the input frame's MAC check hashes (mac-bytes.ts). */
  private inputMacHashBytes = 0;
  /** Crypto computed or charged (charged-crypto.ts), and whether recipients of one frame share its decode. */
  readonly cryptoMode: SimCryptoMode;
  private readonly shareDecoded: boolean;
  /** Arrival times of one copy (reused by transmit: no array per message). */
  private readonly arrivals: number[] = [];
  /** A broadcast's arrival times and recipients on a plain network (broadcastFromReplica), n each. */
  private readonly broadcastTimes: Float64Array;
  private readonly broadcastTo: Int32Array;
  /** The frames a cost model holds until the current turn ends (cost-hook.ts turnEnd), recipients and frames in send order. */
  private readonly heldTo: Peer[] = [];
  private readonly heldFrames: SentFrame[] = [];
  private readonly flushDelayTo = new Map<Peer, number>();
  /** Replica-sent messages by type id (a frame's first byte, so below 256), named in result(). */
  private readonly messagesByTypeId: number[] = [];
  /** A client machine stepped since the run loop last asked whether all are done. */
  private clientStepped = true;

  private readonly accepted: AcceptedBatch[] = [];
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

  constructor(input: SimInput, hook?: SimCostHook) {
    this.hook = hook;
    this.config = resolveSimConfig(input);
    const c = this.config;
    this.module = input.module ?? getProtocol(c.protocol);
    this.f = quorums(c.replicas).f;
    this.silent = silentBackups(c.replicas, c.crashed);
    this.speculative = SPECULATIVE_PROTOCOLS.has(this.module.name);
    this.broadcastTimes = new Float64Array(c.replicas);
    this.broadcastTo = new Int32Array(c.replicas);
    this.typeNames = input.typeNames ?? messageTypeNames(this.module.name);
    for (const r of this.silent) this.faulty.add(r);
    for (const crash of c.crashes) {
      if (!Number.isInteger(crash.replica) || crash.replica < 0 || crash.replica >= c.replicas) {
        throw new RangeError(`crash of replica ${crash.replica}: replicas are 0..${c.replicas - 1}`);
      }
      this.faulty.add(crash.replica);
    }
    for (const a of c.faults) {
      const problem = faultAssignmentProblem(a, c.replicas);
      if (problem) throw new RangeError(problem);
      this.faulty.add(a.replica);
    }
    this.twinsCut = twinsNetworkCut(c.faults);

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
        healAtMs: c.healAtMs,
      },
      rng.fork(),
    );
    this.cryptoMode = simCryptoMode(input.crypto, c.faults);
    // Sharing a decode skips the per-recipient decode and the digest each recipient computes of
    // the request it carries (replica/messages.ts caches it per object), so it is done only where
    // nothing counts that work (no cost hook), every node is honest, and the codec is the protocol's own.
    this.shareDecoded = this.cryptoMode === 'charged' && !hook && input.module === undefined;
    const baseCrypto: CryptoProvider = this.cryptoMode === 'charged' ? new ChargedCrypto(this.shareDecoded) : createCrypto('sim');
    this.counting = hook ? new CountingCrypto(baseCrypto) : undefined;
    const crypto = this.counting ?? baseCrypto;
    const keySeed = `sim-${c.seed}`;
    const keys = new KeyRing(crypto, keySeed, c.replicas, c.clientProcs);
    const extra = this.protocolExtra(keySeed);

    for (let id = 0; id < c.replicas; id++) {
      const options: ReplicaOptions = {
        id,
        n: c.replicas,
        checkpointIntervalK: c.checkpointInterval,
        windowK: c.window,
        records: c.records,
        valueBytes: c.valueBytes,
        viewChangeTimeoutMs: c.viewChangeTimeoutMs,
        extra,
      };
      let core = this.module.createReplica(options, keys.replicaDeps(id));
      // Several faults on one replica compose in the order given (the first is innermost).
      // Lying replicas get their protocol's adversary hooks and keys; twins a second instance (infra/sim/twins.ts).
      const context = simFaultContext(this.module, c.faults, keys.replicaDeps(id), () => this.module.createReplica(options, keys.replicaDeps(id)));
      for (const a of c.faults) if (a.replica === id) core = withFault(core, a.fault, this.module, c.replicas, context);
      this.replicas.push({ core, crashed: this.silent.includes(id), timers: new Map(), executedK: 0, executedBlocks: new ExecutedBlocks() });
    }
    for (let origin = 0; origin < c.clientProcs; origin++) {
      const keyRng = rng.fork();
      const keyGen: KeyGenerator = createKeyGenerator(c.generator, c.records, keyRng.nextU32());
      // The client policy verifies with the run's provider when it is not the one extra.cryptoProvider names.
      const ownCrypto = this.counting !== undefined || this.cryptoMode === 'charged';
      const policy = this.module.createClientPolicy({ n: c.replicas, origin, extra, ...(ownCrypto ? { crypto } : {}) });
      const core = new ClientCore<WireMessage>(
        {
          origin,
          clients: c.clients,
          clientIdBase: origin * c.clients,
          batchSize: c.batch,
          valueBytes: c.valueBytes,
          requestTimeoutMs: c.clientTimeoutMs,
          maxBatches: batchesFor(origin, c.clientProcs, c.batches),
        },
        { crypto, signer: keys.clientSigner(origin), keys: keyGen, policy },
      );
      this.clients.push({ core, timers: new Map() });
    }

    for (let id = 0; id < c.replicas; id++) this.queue.push(0, { kind: 'start', node: id });
    for (let origin = 0; origin < c.clientProcs; origin++) this.queue.push(0, { kind: 'start', node: clientPeer(origin) });
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
      const silentFault = (id: number): boolean => this.config.faults.some((a) => a.replica === id && a.fault.kind === 'silent');
      for (let id = 0; id < this.config.replicas; id++) if (!this.silent.includes(id) && !silentFault(id)) leaders.push(id);
      extra['leaders'] = leaders.join(',');
    }
    return { ...extra, ...this.config.extra };
  }

  /** Runs to a stop condition, lets the replicas settle, checks safety and liveness. */
  run(): SimResult {
    const stopReason = this.loop();
    const stoppedAtMs = this.nowMs;
    if (stopReason === 'done') this.settle();
    this.finalChecks(stopReason);
    return this.result(stopReason, stoppedAtMs);
  }

  private loop(): StopReason {
    const c = this.config;
    for (;;) {
      if (this.stopRequested) return this.stopRequested;
      // Only a client's own step can make it done: look again only after one.
      if (this.clientStepped) {
        this.clientStepped = false;
        if (this.clientsDone()) return 'done';
      }
      if (this.events >= c.maxEvents) return 'event-limit';
      const nextMs = this.queue.peekTimeMs();
      if (nextMs === undefined) return 'idle';
      if (nextMs > c.maxTimeMs) {
        this.nowMs = c.maxTimeMs;
        return 'time-limit';
      }
      this.popAndDispatch(nextMs);
    }
  }

  private clientsDone(): boolean {
    for (const cl of this.clients) if (!cl.core.done) return false;
    return true;
  }

  /** Runs the next event, due at `nextMs` (what peekTimeMs() just said). */
  private popAndDispatch(nextMs: number): void {
    this.nowMs = nextMs;
    this.events++;
    const item = this.queue.popItem();
    const aux = this.queue.poppedAux;
    // Almost every event: a message copy, with no cost model to turn it into a 'deliver' (dispatch, run1).
    if (item.kind === 'frame' && !this.hook) this.deliver(item.from, aux, item);
    else this.dispatch(item, aux);
  }

  /**
   * After the clients are done: deliver what is in flight (timers held back), and if the
   * non-faulty replicas still disagree, heal the network (no more drops or duplicates; the
   * partitions end as scheduled) and run on with timers, so replicas left behind catch up by
   * their protocol's own means (fetching, view changes), until they agree or settleMs of
   * virtual time after the last partition healed. Then deliver what is in flight once more.
   */
  private settle(): void {
    const c = this.config;
    if (c.drain) this.drain();
    if (c.settleMs <= 0 || this.stopRequested || this.converged()) return;
    const healedMs = Math.max(this.nowMs, ...c.partitions.map((p) => p.toMs));
    const limitMs = healedMs + c.settleMs;
    this.network.heal();
    this.settleStartMs = this.nowMs;
    // Agreement with messages still in flight can end when they arrive (a replica commits what
    // the others lack): then settle on (the twins family found it, PBFT seed 2).
    do {
      this.settled = false;
      this.settleGaveUp = 'events';
      while (!this.stopRequested && this.events < c.maxEvents) {
        const nextMs = this.queue.peekTimeMs();
        if (nextMs === undefined || nextMs > limitMs) {
          this.settleGaveUp = nextMs === undefined ? 'idle' : 'time';
          break;
        }
        this.popAndDispatch(nextMs);
        if (this.nowMs >= healedMs && this.converged()) {
          this.settled = true;
          break;
        }
      }
      if (c.drain) this.drain();
    } while (this.settled && !this.converged());
  }

  /** Every non-faulty replica's ledger has the same height and head hash. */
  private converged(): boolean {
    let first: ReplicaCore<WireMessage> | undefined;
    for (const id of this.nonFaultyReplicas()) {
      const core = this.replicas[id]!.core;
      if (!first) first = core;
      else if (core.ledger.height !== first.ledger.height || !core.ledger.headHash.equals(first.ledger.headHash)) return false;
    }
    return true;
  }

  /**
   * Delivers the messages in flight (the last batches' late SUPPORTs, replies the client no
   * longer needed) without firing any timer, which makes the message counts exact per batch and
   * lets lagging replicas catch up before the ledgers are compared. Timers (and scheduled
   * crashes) stay armed for the settle phase.
   */
  private drain(): void {
    const held: { timeMs: number; item: SimEvent; aux: number }[] = [];
    while (this.queue.size > 0 && this.events < this.config.maxEvents && !this.stopRequested) {
      const e = this.queue.pop()!;
      if (e.item.kind !== 'frame' && e.item.kind !== 'deliver' && e.item.kind !== 'wake') {
        held.push(e);
        continue;
      }
      this.nowMs = e.timeMs;
      this.events++;
      this.dispatch(e.item, e.aux);
    }
    // Time does not run backwards: a timer that was due during the drain fires when it ended.
    for (const e of held) this.queue.push(Math.max(e.timeMs, this.nowMs), e.item, e.aux);
  }

  /** Runs event `e`; `aux` is the recipient when `e` is a frame. */
  private dispatch(e: SimEvent, aux: number): void {
    if (this.hook && e.kind !== 'crash') {
      if (e.kind === 'frame') e = { kind: 'deliver', from: e.from, to: aux, frame: e };
      const node = e.kind === 'deliver' ? e.to : e.node;
      if (this.deferred(node, e)) return;
      // A node that was idle wakes for this one input: a turn of one step.
      this.hook.turnBegin?.(node, this.nowMs, e.kind === 'deliver' ? readsOf(e.frame.bytes.length + FRAME_HEADER_BYTES) : 0);
      this.run1(e, aux);
      this.endTurn(node);
      return;
    }
    this.run1(e, aux);
  }

  /** A turn of `node` has run every step: the frames its cost model held leave now, at the times it gives (cost-hook.ts turnEnd). */
  private endTurn(node: Peer): void {
    // Most turns hold nothing (a pipelined node, a timer, a step that sent nothing): no flush.
    if (this.heldTo.length === 0) return;
    const hook = this.hook!;
    // A hook that holds frames must release them (cost-hook.ts): else they would pile up unsent.
    if (!hook.turnEnd) throw new Error('simulator: the cost hook held frames (frameSent returned undefined) but has no turnEnd to release them');
    const departures = hook.turnEnd(node, this.nowMs);
    if (departures.length !== this.heldTo.length)
      throw new Error(`simulator: the cost hook's turnEnd gave ${departures.length} departure time(s) for the ${this.heldTo.length} frame(s) it held`);
    const arrivals = this.arrivals;
    // One write per connection: a flush's frames to one peer cross the link together (one
    // delay, drawn for the first of them; loss and duplication still drawn per frame), in order.
    const delayTo = this.flushDelayTo;
    delayTo.clear();
    for (let i = 0; i < this.heldTo.length; i++) {
      const frame = this.heldFrames[i]!;
      const to = this.heldTo[i]!;
      const departMs = departures[i]!;
      const copies = this.network.transmitInto(node, to, departMs, arrivals);
      if (copies === 0) continue;
      let delayMs = delayTo.get(to);
      if (delayMs === undefined) {
        delayMs = arrivals[0]! - departMs;
        delayTo.set(to, delayMs);
      }
      this.queue.push(departMs + delayMs, frame, to);
      for (let c = 1; c < copies; c++) this.queue.push(arrivals[c]!, frame, to);
    }
    this.heldTo.length = 0;
    this.heldFrames.length = 0;
  }

  /** With a cost model: holds `e` in `node`'s FIFO backlog while the node (or its host) is busy. */
  private deferred(node: Peer, e: SimEvent): boolean {
    if (e.kind === 'wake') {
      const backlog = this.backlog.get(node)!;
      const readyMs = this.hook!.readyAtMs(node, this.nowMs);
      if (readyMs <= this.nowMs) {
        // The node frees: it handles everything that queued while it was busy in one turn, as
        // the process runtime handles every 'data' event of an event-loop turn (one read per
        // connection) before flushing each connection once (infra/process/transport.ts).
        this.backlog.delete(node);
        this.hook!.turnBegin?.(node, this.nowMs, socketReads(backlog));
        for (const item of backlog) this.run1(item, 0);
        this.endTurn(node);
      } else this.queue.push(readyMs, e);
      return true;
    }
    const backlog = this.backlog.get(node);
    if (backlog) {
      backlog.push(e);
      return true;
    }
    const readyMs = this.hook!.readyAtMs(node, this.nowMs);
    // An idle node takes its input at once, unless more events are due at this very time (a
    // flush's frames to one peer arrive together, endTurn): then one turn handles all of them.
    // Any event due now holds it, whichever node it is for (telling would mean searching the
    // queue); that changes only the order of same-instant events, deterministically. Frames of
    // one flush arrive at one instant only where the sender's NIC does not space them out (the
    // local testbed has no NIC limit; on a rate-limited NIC they leave one after another).
    if (readyMs <= this.nowMs && this.queue.peekTimeMs() !== this.nowMs) return false;
    this.backlog.set(node, [e]);
    this.queue.push(Math.max(readyMs, this.nowMs), { kind: 'wake', node });
    return true;
  }

  private run1(e: SimEvent, aux: number): void {
    this.inputFrameBytes = -1;
    switch (e.kind) {
      case 'frame':
        this.deliver(e.from, aux, e);
        return;
      case 'start':
        if (isClientPeer(e.node)) this.stepClient(clientOrigin(e.node), { kind: 'start' });
        else this.stepReplica(e.node, { kind: 'start' });
        return;
      case 'deliver':
        this.deliver(e.from, e.to, e.frame);
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
      case 'wake':
        return;
    }
  }

  private deliver(from: Peer, to: Peer, frame: SentFrame): void {
    if (this.network.isCut(from, to, this.nowMs) || this.twinsCut?.(from, to, this.nowMs)) {
      this.network.stats.partitioned++;
      return;
    }
    if (!isClientPeer(to) && this.replicas[to]!.crashed) {
      this.network.stats.toCrashed++;
      return;
    }
    this.network.stats.delivered++;
    let input = frame.input;
    if (!input) {
      let msg: WireMessage;
      try {
        msg = this.module.codec.decode(frame.bytes);
      } catch (err) {
        // The simulator only delivers frames the codec itself encoded: failing to decode one is a bug.
        this.fail(`codec: a frame from ${from} to ${to} does not decode: ${(err as Error).message}`, 'exception');
        return;
      }
      input = { kind: 'message', from, msg };
      if (this.shareDecoded) frame.input = input;
    }
    // What the step's input was, for the cost model alone (reportStep).
    if (this.hook) {
      this.inputFrameBytes = frame.bytes.length;
      this.inputMacHashBytes = frameMacBytes(frame).first;
    }
    if (isClientPeer(to)) this.stepClient(clientOrigin(to), input);
    else this.stepReplica(to, input);
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
      if (this.hook) this.reportStep(id, outputs);
    } catch (err) {
      this.fail(`replica ${id} threw on ${input.kind} input: ${(err as Error).stack ?? String(err)}`, 'exception');
      return;
    }
    for (let i = 0; i < outputs.length; i++) {
      const o = outputs[i]!;
      switch (o.kind) {
        case 'send':
          this.sendFromReplica(id, o.to, o.msg);
          break;
        case 'broadcast': {
          const frame = this.encode(o.msg, id);
          if (frame) this.broadcastFromReplica(id, frame, o.msg.type);
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

  /**
   * transmit() to every replica but `id`, in replica order. Without a cost model, the counting
   * transmit does per copy is done once for the n - 1 copies (the same sums), and each copy only
   * takes its fate from the network and its place in the queue.
   */
  private broadcastFromReplica(id: number, frame: SentFrame, type: number): void {
    const n = this.config.replicas;
    if (this.hook) {
      let encoded = true;
      for (let to = 0; to < n; to++) {
        if (to === id) continue;
        this.transmit(id, to, frame, type, encoded);
        encoded = false;
      }
      return;
    }
    this.countSent(id, type, frame.bytes.length, n - 1);
    if (this.network.plain) {
      // The n - 1 arrival times drawn in recipient order, then queued in that order: what a
      // sendAt per recipient does, without a number boxed per copy.
      const times = this.broadcastTimes;
      const to = this.broadcastTo;
      let count = 0;
      for (let r = 0; r < n; r++) if (r !== id) to[count++] = r;
      this.network.arrivalsInto(this.nowMs, count, times);
      this.queue.pushMany(times, to, count, frame);
      return;
    }
    for (let to = 0; to < n; to++) if (to !== id) this.sendAt(id, to, frame, this.nowMs);
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
    if (isClientPeer(p)) return clientOrigin(p) < this.config.clientProcs;
    return Number.isInteger(p) && p >= 0 && p < this.config.replicas;
  }

  private encode(msg: WireMessage, from: Peer): SentFrame | undefined {
    try {
      return { kind: 'frame', from, bytes: this.module.codec.encode(msg), input: undefined };
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
        if (!this.speculative)
          this.fail(`replica ${id} rolled back from ${ev.fromK} to ${ev.toK}, but ${this.module.name} executes only committed batches`, 'safety-violation');
        this.onRolledBack(id, node, ev.fromK, ev.toK);
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
    // No copy of the digest per execution: the blocks kept here copy its bytes, and the checker
    // compares in place and copies only what becomes canonical (ledger columns are reused after a rollback).
    if (this.speculative) node.executedBlocks.setFromLedger(k, ledger);
    const v = this.checker.onExecutedAt(id, k, ledger, view, !this.speculative);
    if (v) this.fail(v, this.config.stopOnViolation ? 'safety-violation' : undefined);
  }

  /**
   * Speculative non-divergence (paper Definition 3.1, Proposition 3.5): a non-faulty replica
   * never rolls back a batch a client already accepted at that k.
   */
  private onRolledBack(id: number, node: ReplicaNode, fromK: number, toK: number): void {
    if (!this.faulty.has(id)) {
      const blocks = node.executedBlocks;
      for (let k = toK + 1; k <= Math.min(fromK, blocks.length); k++) {
        const v = this.checker.onRolledBack(id, k, blocks.digestAt(k), blocks.viewAt(k));
        if (v) {
          this.fail(v, this.config.stopOnViolation ? 'safety-violation' : undefined);
          break;
        }
      }
    }
    node.executedBlocks.truncate(toK);
  }

  // ---------------------------------------------------------------------------------------
  // Clients

  private stepClient(origin: number, input: Parameters<ClientCore<WireMessage>['step']>[0]): void {
    const node = this.clients[origin]!;
    const from = clientPeer(origin);
    this.clientStepped = true;
    let outputs: ClientOutput<WireMessage>[];
    try {
      outputs = node.core.step(input, this.nowMs);
      if (this.hook) this.reportStep(from, outputs);
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
          for (let to = 0; to < this.config.replicas; to++) this.transmit(from, to, frame, o.msg.type, to === 0);
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
    const v = this.checker.onAccepted(batch) ?? (this.speculative ? this.unbackedAcceptance(batch) : undefined);
    if (v) this.fail(v, this.config.stopOnViolation ? 'safety-violation' : undefined);
  }

  /**
   * Speculative non-divergence binds only a batch that f+1 non-faulty replicas executed (PoE
   * paper Definition 3.1); an acceptance rule is sound only if it implies that (§3.2: nf
   * identical INFORMs mean nf - f >= f+1 non-faulty executions; Zyzzyva: n, or nf after the
   * commit certificate). So when a client accepts a batch of a speculative protocol, at least
   * f+1 non-faulty replicas (all of them, if fewer are left) must hold it at its k right then.
   */
  private unbackedAcceptance(batch: AcceptedBatch): string | undefined {
    // Counted without a copy of each replica's digest (this runs at every acceptance); the
    // list of holders is built only for the message.
    let nonFaulty = 0;
    let holding = 0;
    for (let id = 0; id < this.config.replicas; id++) {
      if (this.faulty.has(id)) continue;
      nonFaulty++;
      if (this.holds(id, batch)) holding++;
    }
    const need = Math.min(this.f + 1, nonFaulty);
    if (holding >= need) return undefined;
    const holders = this.nonFaultyReplicas().filter((id) => this.holds(id, batch));
    return (
      `client ${batch.clientId} accepted batch k=${batch.k} (req ${batch.reqNo}) digest ${batch.digest.toString('hex').slice(0, 12)} ` +
      `when only ${holders.length} non-faulty replica(s) [${holders.join(',')}] had executed it there: speculative non-divergence needs f+1 = ${this.f + 1}`
    );
  }

  /** Replica `id`'s ledger holds `batch` at its k. */
  private holds(id: number, batch: AcceptedBatch): boolean {
    const ledger = this.replicas[id]!.core.ledger;
    return ledger.height >= batch.k && ledger.digestEquals(batch.k, batch.digest);
  }

  // ---------------------------------------------------------------------------------------
  // Network and timers

  /** Tells the cost model what a step just did (before its frames are sent). */
  private reportStep(node: Peer, outputs: readonly (ReplicaOutput<WireMessage> | ClientOutput<WireMessage>)[]): void {
    let txnsExecuted = 0;
    for (const o of outputs) if (o.kind === 'event' && o.event.name === 'executed') txnsExecuted += o.event.txns;
    const inBytes = this.inputFrameBytes;
    this.inputFrameBytes = -1;
    const message = inBytes >= 0 ? 1 : 0;
    this.hook!.stepDone(node, this.nowMs, {
      crypto: this.counting!.reset(),
      decodes: message,
      decodeBytes: Math.max(0, inBytes),
      frameMacVerifies: message,
      frameMacVerifyBytes: Math.max(0, inBytes),
      frameMacHashBytes: inBytes >= 0 ? this.inputMacHashBytes : 0,
      txnsExecuted,
      messagesIn: message,
    });
  }

  private transmit(from: Peer, to: Peer, frame: SentFrame, type: number, encoded = true): void {
    const bytes = frame.bytes.length;
    this.countSent(from, type, bytes, 1);
    let departMs = this.nowMs;
    if (this.hook) {
      const mac = frameMacBytes(frame);
      const held = this.hook.frameSent({ from, to, bytes, encoded, macBytes: encoded ? mac.first : mac.later }, this.nowMs);
      if (held === undefined) {
        // Held by the cost model until the turn ends (endTurn).
        this.heldTo.push(to);
        this.heldFrames.push(frame);
        return;
      }
      departMs = held;
    }
    this.sendAt(from, to, frame, departMs);
  }

  /** Counts `copies` messages of `bytes` each sent by `from` (client or replica totals, replica ones by type). */
  private countSent(from: Peer, type: number, bytes: number, copies: number): void {
    if (isClientPeer(from)) {
      this.clientMessages += copies;
      this.clientBytes += copies * bytes;
    } else {
      this.replicaMessages += copies;
      this.replicaBytes += copies * bytes;
      this.messagesByTypeId[type] = (this.messagesByTypeId[type] ?? 0) + copies;
    }
  }

  /** Hands one copy leaving at `departMs` to the network and queues what it delivers. */
  private sendAt(from: Peer, to: Peer, frame: SentFrame, departMs: number): void {
    if (this.network.plain) {
      this.queue.push(this.network.arrival(departMs), frame, to);
      return;
    }
    const arrivals = this.arrivals;
    const copies = this.network.transmitInto(from, to, departMs, arrivals);
    for (let i = 0; i < copies; i++) this.queue.push(arrivals[i]!, frame, to);
  }

  /** Replica-sent messages by type name (ids without a name as type<id>). */
  private messagesByType(): Map<string, number> {
    const byName = new Map<string, number>();
    this.messagesByTypeId.forEach((count, type) => bump(byName, this.typeName(type), count));
    return byName;
  }

  private typeName(type: number): string {
    return this.typeNames.get(type) ?? `type${type}`;
  }

  private setTimer(node: Peer, timers: Map<string, number>, name: string, afterMs: number): void {
    if (!Number.isFinite(afterMs) || afterMs < 0) {
      this.fail(
        `${isClientPeer(node) ? 'client machine' : 'replica'} ${isClientPeer(node) ? clientOrigin(node) : node} armed timer '${name}' with afterMs=${afterMs}`,
        'exception',
      );
      return;
    }
    // While draining, timers are armed as usual but held back until the settle phase (drain()).
    const generation = ++this.timerGeneration;
    timers.set(name, generation);
    this.queue.push(this.nowMs + afterMs, { kind: 'timer', node, name, generation });
  }

  // ---------------------------------------------------------------------------------------
  // The end of a run

  private nonFaultyReplicas(): number[] {
    const out: number[] = [];
    for (let id = 0; id < this.config.replicas; id++) if (!this.faulty.has(id)) out.push(id);
    return out;
  }

  private finalChecks(stopReason: StopReason): void {
    // After an exception a core's state is unknown; its ledger proves nothing either way.
    if (stopReason !== 'exception') {
      for (const id of this.nonFaultyReplicas()) {
        const node = this.replicas[id]!;
        if (node.core.ledger.height !== node.executedK) {
          this.violations.push(
            `replica ${id}: its ledger height is ${node.core.ledger.height}, but its 'executed' and 'rollback' events add up to k=${node.executedK}`,
          );
        }
      }
      const ledgers = this.nonFaultyReplicas().map((id) => ({ replica: id, ledger: this.replicas[id]!.core.ledger }));
      // Without a settle phase nothing lets a lagging replica catch up: an accepted batch may be
      // missing from its ledger, but never replaced.
      const requireConvergence = stopReason === 'done' && this.config.settleMs > 0;
      const safety = checkSafety({ ledgers, accepted: this.accepted, requireAcceptedInLedgers: requireConvergence });
      // Disagreement first, then the convergence summary (heights), then the batch-by-batch list it explains.
      const missing = (v: string): boolean => / is missing from the final ledger of replicas? [\d, ]+$/.test(v) || /^\.\.\. and \d+ more violations$/.test(v);
      this.violations.push(...safety.filter((v) => !missing(v)));
      if (!this.settled) {
        const heads = this.nonFaultyReplicas().map((id) => {
          const l = this.replicas[id]!.core.ledger;
          return `${id}: ${l.height} (${l.headHash.toString('hex').slice(0, 12)})`;
        });
        const why = {
          idle: 'nothing was left to happen (no message in flight, no timer armed)',
          time: `${this.config.settleMs} ms of virtual time passed`,
          events: `the event limit (${this.config.maxEvents}) was reached`,
        }[this.settleGaveUp];
        this.violations.push(
          `convergence: the non-faulty replicas' ledgers still differ after the clients finished and the network healed: ${why} ` +
            `(settling stopped at ${this.nowMs.toFixed(0)} ms virtual; height (head) per replica: ${heads.join(', ')})`,
        );
      }
      this.violations.push(...safety.filter(missing));
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
    const messagesByType = this.messagesByType();
    const checkpointMessages = messagesByType.get(CHECKPOINT_TYPE_NAME) ?? 0;
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
      n: this.config.replicas,
      f: this.f,
      crashed: [...this.faulty].sort((a, b) => a - b),
      faults: this.config.faults.map(formatReplicaFault),
      seed: this.config.seed,
      valid: this.violations.length === 0,
      violations: [...this.violations],
      acceptedBatches: accepted,
      issuedBatches: this.issuedBatches(),
      messagesPerBatch: perBatch(this.replicaMessages),
      protocolMessagesPerBatch: perBatch(this.replicaMessages - checkpointMessages),
      messagesByType: sortedRecord(messagesByType),
      checkpointMessages,
      replicaMessages: this.replicaMessages,
      bytesSent: this.replicaBytes,
      clientMessages: this.clientMessages,
      clientBytesSent: this.clientBytes,
      virtualTimeMs: stoppedAtMs,
      settledMs: this.settleStartMs === undefined ? 0 : this.nowMs - this.settleStartMs,
      converged: this.converged(),
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
      crypto: this.cryptoMode,
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
