/**
 * The client machine runtime: one ClientCore (many logical clients) over TCP to every replica.
 *
 * Measurement (DESIGN.md "Metrics"): a batch counts if the protocol's own rule accepted it with
 * the acceptance time inside the window [open, open + duration) of this process's clock, where
 * the window opens at the harness's `open-window` once the warm-up has settled, or at the
 * warm-up's cap (infra/process/support.ts MeasurementWindow). Its latency is acceptance minus
 * first send (in open loop, the intended send time), recorded per transaction in an
 * HdrHistogram in microseconds. Every acceptance goes to the list the safety check reads, and
 * every one before the window's end to the per-second series, whose buckets are whole seconds
 * from the window's start (warm-up seconds negative): kept one by one until the window opens
 * and its start is known, in buckets after that (client/series.ts). `progress` reports the whole seconds since `start`, which the
 * harness watches to end the warm-up.
 */
import * as hdr from 'hdr-histogram-js';
import { createCrypto, DIGEST_BYTES, type CryptoProvider } from '../../replica/crypto.js';
import { clientMacKey, KeyRing } from '../../replica/keys.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import type { ClientProcessConfig, PeerAddress, WindowExtended, WindowOpened } from './control.js';
import {
  bump,
  MESSAGE_BATCHES,
  protocolExtra,
  toEpochMs,
  MeasurementWindow,
  NamedTimers,
  startedWindow,
  nowMs,
  peakRssBytes,
  sampleResources,
  type ResourceSample,
} from './support.js';
import { waitUntil } from './replica.js';
import { Transport, type TransportCounters } from './transport.js';
import {
  clientPeer,
  isClientPeer,
  type AcceptedBatch,
  type ClientInput,
  type ClientOutput,
  type MessageCodec,
  type Peer,
  type WireMessage,
} from '../../replica/types.js';
import { CodecError } from '../../replica/wire.js';
import { ClientCore, type KeyGenerator } from '../../client/core.js';
import { AcceptanceSeries } from '../../client/series.js';

export interface ClientMetricsReport {
  readonly role: 'client';
  readonly origin: number;
  readonly pid: number;
  readonly windowOpened: boolean;
  readonly windowClosed: boolean;
  /** Window length by this process's clock, ms. */
  readonly windowMs: number;
  readonly acceptedTxnsInWindow: number;
  readonly acceptedBatchesInWindow: number;
  readonly acceptedBatchesTotal: number;
  readonly issuedBatches: number;
  /** Latency per transaction, microseconds, HdrHistogram compressed base64. */
  readonly latencyHistogram: string;
  /** Smallest latency seen in the window, ms (a negative one would be impossible). */
  readonly latencyMsMin: number | null;
  /**
   * Accepted transactions per 1-second bucket, from the run's start to the window's end: bucket
   * i covers [window start + (firstBucketSec + i) s, + 1 s), so warm-up buckets come first, with
   * negative seconds; the first may be cut by the start, the last by the window's end.
   */
  readonly txnsPerSecond: number[];
  readonly firstBucketSec: number;
  /** The window's start in ms since the Unix epoch, to place replicas' view events on the series' axis. */
  readonly windowStartEpochMs: number | null;
  /** The warm-up this process had: from `start` to the window's opening. */
  readonly warmupMs: number;
  /** Whether the window opened at the harness's `open-window` or by itself at the warm-up's cap; null if it never opened. */
  readonly windowOpenedBy: 'command' | 'cap' | null;
  /** CPU time inside the window and its length. */
  readonly windowCpuMs: number | null;
  readonly windowElapsedMs: number | null;
  readonly peakRssBytes: number;
  readonly timeouts: number;
  /** The request timeout in force when the metrics were taken (adaptive ones follow the latency). */
  readonly requestTimeoutMs: number;
  readonly paths: Record<string, number>;
  readonly rejected: Record<string, number>;
  readonly decodeErrors: number;
  readonly transport: TransportCounters;
}

/** Accepted batches, compact: parallel arrays and concatenated digests (base64). */
export interface AcceptedReport {
  readonly origin: number;
  readonly k: number[];
  readonly view: number[];
  readonly clientId: number[];
  readonly reqNo: number[];
  readonly digests: string;
}

export interface ClientProgress {
  readonly origin: number;
  readonly acceptedBatches: number;
  readonly acceptedTxns: number;
  readonly outstanding: number;
  /** Transactions accepted in each whole second since `start` (the second under way left out). */
  readonly txnsPerSecondSinceStart: readonly number[];
  /** Transactions accepted in the window so far, and the sum of their latencies (ms). */
  readonly windowTxns: number;
  readonly windowLatencyMsSum: number;
}

export class ClientRuntime<M extends WireMessage> {
  readonly core: ClientCore<M>;
  readonly transport: Transport;
  private readonly codec: MessageCodec<M>;
  private readonly timers: NamedTimers;
  private readonly macKeys = new Map<Peer, Buffer>();
  private readonly histogram = hdr.build({ numberOfSignificantValueDigits: 3 });
  private window: MeasurementWindow | undefined;
  private opened: ResourceSample | undefined;
  private closed: ResourceSample | undefined;
  private stopped = false;
  private acceptedTxnsInWindow = 0;
  private acceptedBatchesInWindow = 0;
  private acceptedTxnsTotal = 0;
  private latencyMsMin = Infinity;
  /** Accepted transactions per second, since the start and from the window's start (client/series.ts). */
  private readonly series = new AcceptanceSeries();
  private windowLatencyMsSum = 0;
  /** Every accepted batch, for the safety check, kept compact (a digest must not pin its frame). */
  private readonly accepted = new AcceptedLog();
  private timeouts = 0;
  private decodeErrors = 0;
  private readonly paths: Record<string, number> = {};
  private readonly rejected: Record<string, number> = {};
  private readonly waiters: Array<() => void> = [];

  constructor(
    module: ProtocolModule<M>,
    readonly config: ClientProcessConfig,
    keys: KeyGenerator,
    crypto: CryptoProvider = createCrypto('node'),
  ) {
    const { origin, n, keySeed, clientMachines } = config;
    this.codec = module.codec;
    const ring = new KeyRing(crypto, keySeed, n, clientMachines);
    this.core = new ClientCore<M>(
      {
        origin,
        clients: config.clients,
        clientIdBase: config.clientIdBase,
        batchSize: config.batchSize,
        valueBytes: config.valueBytes,
        requestTimeoutMs: config.requestTimeoutMs,
        maxBatches: Infinity,
        ...(config.openLoopBatchesPerSec !== undefined ? { openLoopBatchesPerSec: config.openLoopBatchesPerSec } : {}),
        ...(config.adaptiveTimeout ? { adaptiveTimeout: true } : {}),
      },
      {
        crypto,
        signer: ring.clientSigner(origin),
        keys,
        policy: module.createClientPolicy({ n, origin, extra: protocolExtra(config) }),
      },
    );
    for (let r = 0; r < n; r++) this.macKeys.set(r, clientMacKey(keySeed, r, origin));
    this.timers = new NamedTimers((name) => this.input({ kind: 'timer', name }));
    this.transport = new Transport(
      { self: clientPeer(origin), macKey: (peer) => this.macKeys.get(peer), batch: MESSAGE_BATCHES },
      { onFrame: (from, payload) => this.onFrame(from, payload), onPeerUp: () => this.wake() },
    );
  }

  /** Dials every replica given and waits until all of `expect` are connected. */
  async connect(peers: readonly PeerAddress[], expect: readonly Peer[], timeoutMs: number): Promise<Peer[]> {
    for (const p of peers) if (!isClientPeer(p.peer)) this.transport.dial(p.peer, p.host, p.port);
    await waitUntil(
      () => expect.every((p) => this.transport.isConnected(p)),
      timeoutMs,
      (w) => this.waiters.push(w),
      () => {
        const missing = expect.filter((p) => !this.transport.isConnected(p));
        return `client ${this.config.origin}: replicas ${missing.join(', ')} not connected after ${timeoutMs} ms`;
      },
    );
    return this.transport.connectedPeers;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  start(warmupMs: number, durationMs: number): void {
    if (this.window) throw new Error('already started');
    this.window = new MeasurementWindow(
      warmupMs,
      durationMs,
      () => (this.opened = sampleResources()),
      () => (this.closed = sampleResources()),
    );
    this.input({ kind: 'start' });
  }

  openWindow(): WindowOpened {
    return startedWindow(this.window).openByCommand();
  }

  extendWindow(durationMs: number): WindowExtended {
    return startedWindow(this.window).extendByCommand(durationMs);
  }

  /** Stops issuing and handling replies; the numbers are final from here on. */
  stop(): void {
    this.stopped = true;
    this.timers.stop();
  }

  close(): Promise<void> {
    this.stop();
    this.window?.cancel();
    return this.transport.close();
  }

  private onFrame(from: Peer, payload: Buffer): void {
    if (this.stopped || !this.window) return;
    let msg: M;
    try {
      msg = this.codec.decode(payload);
    } catch (err) {
      if (!(err instanceof CodecError)) throw err;
      this.decodeErrors++;
      return;
    }
    this.input({ kind: 'message', from, msg });
  }

  private input(input: ClientInput<M>): void {
    if (this.stopped) return;
    this.apply(this.core.step(input, nowMs()));
  }

  private apply(outputs: readonly ClientOutput<M>[]): void {
    for (const o of outputs) {
      switch (o.kind) {
        case 'send':
          this.transport.send(o.to, this.codec.encode(o.msg));
          break;
        case 'broadcast': {
          const bytes = this.codec.encode(o.msg);
          for (let r = 0; r < this.config.n; r++) this.transport.send(r, bytes);
          break;
        }
        case 'setTimer':
          this.timers.set(o.name, o.afterMs);
          break;
        case 'cancelTimer':
          this.timers.cancel(o.name);
          break;
        case 'accepted':
          this.onAccepted(o.batch);
          break;
        case 'event':
          if (o.event.name === 'timeout') this.timeouts++;
          else bump(this.rejected, o.event.reason);
          break;
      }
    }
  }

  private onAccepted(b: AcceptedBatch): void {
    const w = this.window!;
    this.accepted.add(b);
    this.acceptedTxnsTotal += b.txns;
    bump(this.paths, b.path);
    this.series.add(b.acceptedMs, b.txns, w);
    if (!w.contains(b.acceptedMs)) return;
    const latencyMs = b.acceptedMs - b.firstSentMs;
    this.windowLatencyMsSum += latencyMs * b.txns;
    if (latencyMs < this.latencyMsMin) this.latencyMsMin = latencyMs;
    this.acceptedTxnsInWindow += b.txns;
    this.acceptedBatchesInWindow++;
    this.histogram.recordValueWithCount(Math.max(0, Math.round(latencyMs * 1000)), b.txns);
  }

  progress(): ClientProgress {
    const w = this.window;
    const seconds = w ? this.series.secondsSinceStart(nowMs(), w) : [];
    return {
      origin: this.config.origin,
      acceptedBatches: this.core.acceptedBatches,
      acceptedTxns: this.acceptedTxnsTotal,
      outstanding: this.core.outstanding,
      txnsPerSecondSinceStart: seconds,
      windowTxns: this.acceptedTxnsInWindow,
      windowLatencyMsSum: this.windowLatencyMsSum,
    };
  }

  metrics(): ClientMetricsReport {
    const w = this.window;
    const { firstBucketSec, txnsPerSecond } = w ? this.series.window(w) : { firstBucketSec: 0, txnsPerSecond: [] };
    return {
      role: 'client',
      origin: this.config.origin,
      pid: process.pid,
      windowOpened: w?.opened ?? false,
      windowClosed: w?.closed ?? false,
      windowMs: w ? w.endMs - w.startMs : 0,
      acceptedTxnsInWindow: this.acceptedTxnsInWindow,
      acceptedBatchesInWindow: this.acceptedBatchesInWindow,
      acceptedBatchesTotal: this.accepted.count,
      issuedBatches: this.core.issuedBatches,
      latencyHistogram: hdr.encodeIntoCompressedBase64(this.histogram),
      latencyMsMin: Number.isFinite(this.latencyMsMin) ? this.latencyMsMin : null,
      txnsPerSecond,
      firstBucketSec,
      windowStartEpochMs: w?.opened ? toEpochMs(w.startMs) : null,
      warmupMs: w ? w.startMs - w.startedAtMs : 0,
      windowOpenedBy: w?.openedBy ?? null,
      windowCpuMs: this.opened && this.closed ? this.closed.cpuMs - this.opened.cpuMs : null,
      windowElapsedMs: this.opened && this.closed ? this.closed.atMs - this.opened.atMs : null,
      peakRssBytes: peakRssBytes(),
      timeouts: this.timeouts,
      requestTimeoutMs: this.core.requestTimeoutMs,
      paths: { ...this.paths },
      rejected: { ...this.rejected },
      decodeErrors: this.decodeErrors,
      transport: { ...this.transport.counters },
    };
  }

  /** The batches this client accepted, for the safety check (the control channel's `ledger`). */
  ledger(): AcceptedReport {
    return this.accepted.report(this.config.origin);
  }
}

/** Accepted batches in parallel arrays and one growable digest column. */
class AcceptedLog {
  private readonly k: number[] = [];
  private readonly view: number[] = [];
  private readonly clientId: number[] = [];
  private readonly reqNo: number[] = [];
  private digests = Buffer.alloc(DIGEST_BYTES * 1024);

  get count(): number {
    return this.k.length;
  }

  add(b: AcceptedBatch): void {
    const i = this.k.length;
    if ((i + 1) * DIGEST_BYTES > this.digests.length) {
      const next = Buffer.alloc(this.digests.length * 2);
      this.digests.copy(next);
      this.digests = next;
    }
    b.digest.copy(this.digests, i * DIGEST_BYTES, 0, DIGEST_BYTES);
    this.k.push(b.k);
    this.view.push(b.view);
    this.clientId.push(b.clientId);
    this.reqNo.push(b.reqNo);
  }

  report(origin: number): AcceptedReport {
    return {
      origin,
      k: [...this.k],
      view: [...this.view],
      clientId: [...this.clientId],
      reqNo: [...this.reqNo],
      digests: this.digests.subarray(0, this.k.length * DIGEST_BYTES).toString('base64'),
    };
  }
}
