/**
 * The replica runtime: one protocol core over TCP (DESIGN.md "One protocol core, many worlds").
 *
 * It does for the real world what the simulator does in virtual time: authenticated frames
 * in (the transport verified the MAC), decode, `core.step(input, nowMs)`, and the outputs out:
 * sends and broadcasts to the transport (each message encoded once however many peers get
 * it), timers to the OS clock, events to counters. Client signatures are checked by the core
 * through `ReplicaDeps.clientVerifier` (a primary before it proposes, backups before they
 * support), so the runtime does not check them twice.
 *
 * A frame that does not decode is dropped and counted; a core that throws has a bug, and the
 * process reports it and exits rather than run on in an unknown state.
 */
import { formatFault, withFault } from '../../replica/byzantine.js';
import { createCrypto, type CryptoProvider } from '../../replica/crypto.js';
import { clientMacKey, KeyRing, replicaMacKey } from '../../replica/keys.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import type { PeerAddress, ReplicaProcessConfig, WindowExtended, WindowOpened } from './control.js';
import {
  bump,
  epochMs,
  MESSAGE_BATCHES,
  protocolExtra,
  MeasurementWindow,
  NamedTimers,
  startedWindow,
  nowMs,
  peakRssBytes,
  sampleResources,
} from './support.js';
import { Transport, type TransportCounters } from './transport.js';
import {
  clientOrigin,
  isClientPeer,
  type MessageCodec,
  type Peer,
  type ReplicaCore,
  type ReplicaEvent,
  type ReplicaOutput,
  type ReplicaStatus,
  type WireMessage,
} from '../../replica/types.js';
import { CodecError } from '../../replica/wire.js';

/** Counters that the measurement window takes differences of. */
interface WindowCounters {
  readonly cpuMs: number;
  readonly framesSent: number;
  readonly bytesSent: number;
  readonly framesReceived: number;
  readonly bytesReceived: number;
  readonly messagesToReplicas: number;
  readonly messagesToClients: number;
  readonly executedBatches: number;
  readonly executedTxns: number;
}

/** The counters at one moment. */
interface WindowSnapshot extends WindowCounters {
  readonly atMs: number;
}

/** The counters' differences over the measurement window, and its length. */
export interface WindowFigures extends WindowCounters {
  readonly elapsedMs: number;
}

/** When a view change began or a view was entered, in ms since the Unix epoch (comparable across processes of one machine). */
export interface ViewEventTime {
  readonly view: number;
  readonly atEpochMs: number;
}

export interface ReplicaMetricsReport {
  readonly role: 'replica';
  readonly id: number;
  readonly pid: number;
  /** The faults this replica's core is wrapped with (replica/byzantine.ts formatFault); empty when correct. */
  readonly faults: readonly string[];
  /** The replica's own viewChangeStarted and viewEntered events, with their times (the first VIEW_EVENTS_MAX of each). */
  readonly viewChangesStarted: readonly ViewEventTime[];
  readonly viewsEntered: readonly ViewEventTime[];
  /** Differences over the measurement window; undefined if the window never closed. */
  readonly window: WindowFigures | undefined;
  readonly transport: TransportCounters;
  /** Frames that authenticated but did not decode. */
  readonly decodeErrors: number;
  /** Frames that arrived before start and did not fit the replay buffer. */
  readonly earlyDropped: number;
  readonly events: Record<string, number>;
  readonly rejected: Record<string, number>;
  readonly peakRssBytes: number;
  readonly status: ReplicaStatus;
}

export interface LedgerReport {
  readonly id: number;
  readonly height: number;
  /** Block hashes of heights 0..height, 32 bytes each, concatenated, base64. */
  readonly hashes: string;
  /** Batch digests of heights 0..height, 32 bytes each, concatenated, base64. */
  readonly digests: string;
  readonly views: number[];
}

export interface ReplicaProgress {
  readonly id: number;
  readonly executedK: number;
  readonly view: number;
  readonly inViewChange: boolean;
  readonly headHash: string;
}

const EARLY_FRAMES_MAX = 10_000;
/** View events kept with their times; a run with more view changes than this is broken anyway. */
const VIEW_EVENTS_MAX = 1000;

export class ReplicaRuntime<M extends WireMessage> {
  /** The protocol core, wrapped in its faults once started (before that, the correct core). */
  private stepper: ReplicaCore<M>;
  readonly transport: Transport;
  private readonly codec: MessageCodec<M>;
  private readonly timers: NamedTimers;
  private readonly macKeys = new Map<Peer, Buffer>();
  private window: MeasurementWindow | undefined;
  private opened: WindowSnapshot | undefined;
  private closed: WindowSnapshot | undefined;
  private started = false;
  private stopped = false;
  private decodeErrors = 0;
  private messagesToReplicas = 0;
  private messagesToClients = 0;
  private executedBatches = 0;
  private executedTxns = 0;
  private readonly events: Record<string, number> = {};
  private readonly viewChangesStarted: ViewEventTime[] = [];
  private readonly viewsEntered: ViewEventTime[] = [];
  private readonly rejected: Record<string, number> = {};
  private readonly waiters: Array<() => void> = [];
  /** Frames that arrived before `start` (a peer that started a moment earlier), replayed at start. */
  private early: Array<[Peer, Buffer]> = [];
  private earlyDropped = 0;

  constructor(
    private readonly module: ProtocolModule<M>,
    readonly config: ReplicaProcessConfig,
    crypto: CryptoProvider = createCrypto('node'),
  ) {
    const { id, n, keySeed, clientMachines } = config;
    this.codec = module.codec;
    const keys = new KeyRing(crypto, keySeed, n, clientMachines);
    this.stepper = module.createReplica(
      {
        id,
        n,
        checkpointIntervalK: config.checkpointIntervalK,
        windowK: config.windowK,
        records: config.records,
        valueBytes: config.valueBytes,
        viewChangeTimeoutMs: config.viewChangeTimeoutMs,
        extra: protocolExtra(config),
      },
      keys.replicaDeps(id),
    );
    for (let r = 0; r < n; r++) if (r !== id) this.macKeys.set(r, replicaMacKey(keySeed, id, r));
    this.timers = new NamedTimers((name) => this.input({ kind: 'timer', name }));
    this.transport = new Transport(
      {
        self: id,
        macKey: (peer) => this.macKeyFor(peer),
        batch: MESSAGE_BATCHES,
      },
      {
        onFrame: (from, payload) => this.onFrame(from, payload),
        // Backpressure: while any peer's queue is over its mark, take no new client requests.
        onCongestion: (congested) => this.transport.setClientIntakePaused(congested),
        onPeerUp: () => this.wake(),
      },
    );
  }

  private macKeyFor(peer: Peer): Buffer | undefined {
    if (!isClientPeer(peer)) return this.macKeys.get(peer);
    const origin = clientOrigin(peer);
    if (origin >= this.config.clientMachines) return undefined;
    let key = this.macKeys.get(peer);
    if (!key) {
      key = clientMacKey(this.config.keySeed, this.config.id, origin);
      this.macKeys.set(peer, key);
    }
    return key;
  }

  listen(): Promise<number> {
    return this.transport.listen(this.config.listenPort, this.config.listenHost);
  }

  /**
   * Dials the replicas with higher ids (one connection per pair: the lower id dials) and waits
   * until every peer in `expect` is connected, in either direction.
   */
  async connect(peers: readonly PeerAddress[], expect: readonly Peer[], timeoutMs: number): Promise<Peer[]> {
    for (const p of peers) if (!isClientPeer(p.peer) && p.peer > this.config.id) this.transport.dial(p.peer, p.host, p.port);
    await waitUntil(
      () => expect.every((p) => this.transport.isConnected(p)),
      timeoutMs,
      (wake) => this.waiters.push(wake),
      () => {
        const missing = expect.filter((p) => !this.transport.isConnected(p));
        return `replica ${this.config.id}: peers ${missing.join(', ')} not connected after ${timeoutMs} ms`;
      },
    );
    return this.transport.connectedPeers;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** The core the runtime steps: the protocol's, inside its fault wrappers once started. */
  get core(): ReplicaCore<M> {
    return this.stepper;
  }

  /**
   * Wraps the core in the configured faults (DESIGN.md: Byzantine behaviours are wrappers, not
   * ifs in protocol code). Done at start because crashAt counts from the run's start, while the
   * core's clock (nowMs) counts from the process's.
   */
  private wrapInFaults(startMs: number): void {
    for (const fault of this.config.faults ?? []) {
      const atStart = fault.kind === 'crashAt' ? { ...fault, atMs: startMs + fault.atMs } : fault;
      this.stepper = withFault(this.stepper, atStart, this.module, this.config.n);
    }
  }

  start(warmupMs: number, durationMs: number): void {
    if (this.started) throw new Error('already started');
    this.started = true;
    this.wrapInFaults(nowMs());
    this.window = new MeasurementWindow(
      warmupMs,
      durationMs,
      () => (this.opened = this.snapshot()),
      () => (this.closed = this.snapshot()),
    );
    this.input({ kind: 'start' });
    const early = this.early;
    this.early = [];
    for (const [from, payload] of early) this.onFrame(from, payload);
  }

  /** The harness opens the window once the warm-up settled (infra/process/support.ts MeasurementWindow). */
  openWindow(): WindowOpened {
    return startedWindow(this.window).openByCommand();
  }

  extendWindow(durationMs: number): WindowExtended {
    return startedWindow(this.window).extendByCommand(durationMs);
  }

  stop(): void {
    this.stopped = true;
    this.timers.stop();
    this.window?.cancel();
  }

  close(): Promise<void> {
    this.stop();
    return this.transport.close();
  }

  private onFrame(from: Peer, payload: Buffer): void {
    if (this.stopped) return;
    if (!this.started) {
      if (this.early.length < EARLY_FRAMES_MAX) this.early.push([from, payload]);
      else this.earlyDropped++;
      return;
    }
    let msg: M;
    try {
      msg = this.codec.decode(payload);
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      this.decodeErrors++;
      bump(this.rejected, `decode:${err.reason}`);
      return;
    }
    this.input({ kind: 'message', from, msg });
  }

  private input(input: Parameters<ReplicaCore<M>['step']>[0]): void {
    if (this.stopped) return;
    this.apply(this.core.step(input, nowMs()));
  }

  private apply(outputs: readonly ReplicaOutput<M>[]): void {
    for (const o of outputs) {
      switch (o.kind) {
        case 'send': {
          if (this.transport.send(o.to, this.codec.encode(o.msg))) {
            if (isClientPeer(o.to)) this.messagesToClients++;
            else this.messagesToReplicas++;
          }
          break;
        }
        case 'broadcast': {
          const bytes = this.codec.encode(o.msg);
          for (let r = 0; r < this.config.n; r++) {
            if (r !== this.config.id && this.transport.send(r, bytes)) this.messagesToReplicas++;
          }
          break;
        }
        case 'setTimer':
          this.timers.set(o.name, o.afterMs);
          break;
        case 'cancelTimer':
          this.timers.cancel(o.name);
          break;
        case 'event':
          this.onEvent(o.event);
          break;
      }
    }
  }

  private onEvent(e: ReplicaEvent): void {
    bump(this.events, e.name);
    if (e.name === 'viewChangeStarted' || e.name === 'viewEntered') {
      const list = e.name === 'viewChangeStarted' ? this.viewChangesStarted : this.viewsEntered;
      if (list.length < VIEW_EVENTS_MAX) list.push({ view: e.view, atEpochMs: epochMs() });
    } else if (e.name === 'executed') {
      this.executedBatches++;
      this.executedTxns += e.txns;
    } else if (e.name === 'rejected') {
      bump(this.rejected, e.reason);
    }
  }

  private snapshot(): WindowSnapshot {
    const c = this.transport.counters;
    return {
      ...sampleResources(),
      framesSent: c.framesSent,
      bytesSent: c.bytesSent,
      framesReceived: c.framesReceived,
      bytesReceived: c.bytesReceived,
      messagesToReplicas: this.messagesToReplicas,
      messagesToClients: this.messagesToClients,
      executedBatches: this.executedBatches,
      executedTxns: this.executedTxns,
    };
  }

  progress(): ReplicaProgress {
    const s = this.core.status();
    return {
      id: this.config.id,
      executedK: s.executedK,
      view: s.view,
      inViewChange: s.inViewChange,
      headHash: this.core.ledger.headHash.toString('hex'),
    };
  }

  metrics(): ReplicaMetricsReport {
    return {
      role: 'replica',
      id: this.config.id,
      pid: process.pid,
      faults: (this.config.faults ?? []).map(formatFault),
      viewChangesStarted: [...this.viewChangesStarted],
      viewsEntered: [...this.viewsEntered],
      window: this.opened && this.closed ? windowFigures(this.opened, this.closed) : undefined,
      transport: { ...this.transport.counters },
      decodeErrors: this.decodeErrors,
      earlyDropped: this.earlyDropped,
      events: { ...this.events },
      rejected: { ...this.rejected },
      peakRssBytes: peakRssBytes(),
      status: this.core.status(),
    };
  }

  /** The ledger, for the harness's safety check (the control channel's `ledger`). */
  ledger(): LedgerReport {
    const ledger = this.core.ledger;
    const height = ledger.height;
    const hashes: Buffer[] = [];
    const digests: Buffer[] = [];
    const views: number[] = [];
    for (let k = 0; k <= height; k++) {
      hashes.push(ledger.hashAt(k));
      digests.push(ledger.digestAt(k));
      views.push(ledger.viewAt(k));
    }
    return {
      id: this.config.id,
      height,
      hashes: Buffer.concat(hashes).toString('base64'),
      digests: Buffer.concat(digests).toString('base64'),
      views,
    };
  }
}

export function windowFigures(a: WindowSnapshot, b: WindowSnapshot): WindowFigures {
  return {
    elapsedMs: b.atMs - a.atMs,
    cpuMs: b.cpuMs - a.cpuMs,
    framesSent: b.framesSent - a.framesSent,
    bytesSent: b.bytesSent - a.bytesSent,
    framesReceived: b.framesReceived - a.framesReceived,
    bytesReceived: b.bytesReceived - a.bytesReceived,
    messagesToReplicas: b.messagesToReplicas - a.messagesToReplicas,
    messagesToClients: b.messagesToClients - a.messagesToClients,
    executedBatches: b.executedBatches - a.executedBatches,
    executedTxns: b.executedTxns - a.executedTxns,
  };
}

/** Resolves once `ready()` holds; `subscribe` registers a wake-up; rejects after timeoutMs. */
export function waitUntil(ready: () => boolean, timeoutMs: number, subscribe: (wake: () => void) => void, describe: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(describe())), timeoutMs);
    const check = (): void => {
      if (ready()) {
        clearTimeout(timer);
        resolve();
      } else {
        subscribe(check);
      }
    };
    check();
  });
}
