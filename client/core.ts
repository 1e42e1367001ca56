/**
 * The client core: C logical clients multiplexed in one client machine (the paper ran 200K
 * closed-loop clients on ten machines, §5). Like the replica cores it is a pure state machine:
 * `step(input, nowMs)` returns outputs; the key generator is injected and seeded.
 *
 * Each logical client has at most one batch outstanding. Closed loop (default): a client sends
 * its next batch as soon as the previous one is accepted. Open loop: batches are issued at a
 * fixed total rate, and latency is measured from the intended send time, so a slow system
 * cannot hide queueing delay (coordinated omission).
 *
 * Acceptance is the protocol's own rule, delegated to its ClientPolicy.
 */
import type { Signer } from '../replica/crypto.js';
import type { CryptoProvider } from '../replica/crypto.js';
import { makeRequestInPlace, requestDigest } from '../replica/messages.js';
import type { ClientPolicy, PendingRequest } from '../replica/protocol.js';
import type { ClientInput, ClientOutput, WireMessage } from '../replica/types.js';

/** Draws record keys; implementations are seeded (client/generators.ts). */
export interface KeyGenerator {
  nextKey(): number;
}

export interface ClientOptions {
  /** This client machine's id (replies are addressed to it; its key signs). */
  readonly origin: number;
  /** Logical clients in this machine, with ids clientIdBase .. clientIdBase + clients - 1. */
  readonly clients: number;
  readonly clientIdBase: number;
  /** Writes per batch (paper: 100). */
  readonly batchSize: number;
  readonly valueBytes: number;
  /** After this long without acceptance a request's timer fires and the policy acts. */
  readonly requestTimeoutMs: number;
  /** Stop issuing after this many batches in total (the simulator's --batches); Infinity for runs. */
  readonly maxBatches: number;
  /** Open loop: total batches per second for this machine; undefined for closed loop. */
  readonly openLoopBatchesPerSec?: number;
  /**
   * True: a request's timeout follows the observed latency: the larger of requestTimeoutMs and
   * ADAPTIVE_TIMEOUT_MULTIPLE times the p99 of the last LATENCY_SAMPLES acceptances (issue 11:
   * a slow protocol must not be measured through its own timeouts). False or absent: exactly
   * requestTimeoutMs (a figure that measures a timeout's effect: a primary failure, Zyzzyva's
   * slow path).
   */
  readonly adaptiveTimeout?: boolean;
}

/** The adaptive timeout is this many times the recent p99 latency. */
export const ADAPTIVE_TIMEOUT_MULTIPLE = 4;
/** Recent acceptances the adaptive timeout looks at; its p99 is recomputed every quarter of them. */
export const LATENCY_SAMPLES = 512;

export interface ClientDeps<M extends WireMessage> {
  readonly crypto: CryptoProvider;
  readonly signer: Signer;
  readonly keys: KeyGenerator;
  readonly policy: ClientPolicy<M>;
}

export const OPEN_LOOP_TIMER = 'open-loop';
/** Request timer names, made once per logical client (a string built per batch was garbage on every one). */
const requestTimerNames = new Map<number, string>();
const requestTimer = (clientId: number): string => {
  let name = requestTimerNames.get(clientId);
  if (name === undefined) {
    name = `req:${clientId}`;
    requestTimerNames.set(clientId, name);
  }
  return name;
};

export class ClientCore<M extends WireMessage> {
  private readonly pending = new Map<number, PendingRequest>();
  private readonly nextReqNo = new Map<number, number>();
  /** Open loop: logical clients free to take the next scheduled batch. */
  private readonly idle: number[] = [];
  /** Open loop: intended send times that found no idle client (kept so latency counts the wait). */
  private readonly backlog: number[] = [];
  private nextOpenLoopMs = 0;
  private issued = 0;
  private acceptedCount = 0;
  private started = false;
  private readonly recentLatencyMs: number[] = [];
  /** When each logical client's request timer was last armed. */
  private readonly armedAtMs = new Map<number, number>();
  private timeoutMs: number;

  constructor(
    private readonly options: ClientOptions,
    private readonly deps: ClientDeps<M>,
  ) {
    if (options.clients < 1) throw new RangeError('clients must be >= 1');
    if (options.batchSize < 1) throw new RangeError('batchSize must be >= 1');
    this.timeoutMs = options.requestTimeoutMs;
  }

  /** The timeout a request issued now gets (requestTimeoutMs unless adaptive). */
  get requestTimeoutMs(): number {
    return this.timeoutMs;
  }

  /**
   * Recomputes the adaptive timeout every quarter of LATENCY_SAMPLES acceptances and, before the
   * first quarter, at every power of two: a first wave of requests slower than requestTimeoutMs
   * (HotStuff at 32 replicas on two cores: 2.0 s) would otherwise all time out before a
   * quarter of the samples arrived.
   */
  private observeLatency(latencyMs: number): void {
    if (!this.options.adaptiveTimeout) return;
    const recent = this.recentLatencyMs;
    const count = this.acceptedCount;
    recent[count % LATENCY_SAMPLES] = latencyMs;
    const quarter = LATENCY_SAMPLES / 4;
    if (count % quarter !== 0 && !(count < quarter && (count & (count - 1)) === 0)) return;
    const sorted = recent.filter((x) => x !== undefined).sort((a, b) => a - b);
    const p99 = sorted[Math.min(sorted.length - 1, Math.floor(0.99 * sorted.length))]!;
    this.timeoutMs = Math.max(this.options.requestTimeoutMs, Math.ceil(ADAPTIVE_TIMEOUT_MULTIPLE * p99));
  }

  get issuedBatches(): number {
    return this.issued;
  }

  get acceptedBatches(): number {
    return this.acceptedCount;
  }

  get outstanding(): number {
    return this.pending.size;
  }

  /** True once maxBatches were issued and all were accepted. */
  get done(): boolean {
    return this.issued >= this.options.maxBatches && this.pending.size === 0;
  }

  step(input: ClientInput<M>, nowMs: number): ClientOutput<M>[] {
    const out: ClientOutput<M>[] = [];
    switch (input.kind) {
      case 'start':
        this.onStart(nowMs, out);
        break;
      case 'message':
        this.onMessage(input.from, input.msg, nowMs, out);
        break;
      case 'timer':
        this.onTimer(input.name, nowMs, out);
        break;
    }
    return out;
  }

  private onStart(nowMs: number, out: ClientOutput<M>[]): void {
    if (this.started) return;
    this.started = true;
    const { clients, clientIdBase, openLoopBatchesPerSec } = this.options;
    if (openLoopBatchesPerSec === undefined) {
      for (let i = 0; i < clients; i++) this.issue(clientIdBase + i, nowMs, nowMs, out);
    } else {
      for (let i = 0; i < clients; i++) this.idle.push(clientIdBase + i);
      this.nextOpenLoopMs = nowMs;
      this.onOpenLoopTick(nowMs, out);
    }
  }

  private onOpenLoopTick(nowMs: number, out: ClientOutput<M>[]): void {
    const intervalMs = 1000 / this.options.openLoopBatchesPerSec!;
    while (this.nextOpenLoopMs <= nowMs && this.issued + this.backlog.length < this.options.maxBatches) {
      this.backlog.push(this.nextOpenLoopMs);
      this.nextOpenLoopMs += intervalMs;
    }
    this.drainBacklog(nowMs, out);
    if (this.issued + this.backlog.length < this.options.maxBatches) {
      out.push({ kind: 'setTimer', name: OPEN_LOOP_TIMER, afterMs: Math.max(0, this.nextOpenLoopMs - nowMs) });
    }
  }

  private drainBacklog(nowMs: number, out: ClientOutput<M>[]): void {
    while (this.backlog.length > 0 && this.idle.length > 0) {
      const intendedMs = this.backlog.shift()!;
      this.issue(this.idle.pop()!, intendedMs, nowMs, out);
    }
  }

  /**
   * Writes value i of the batch being built at `valueAt` in its (zero-filled) body and draws its
   * key. The value differs per write (batch count, then write index, then zeros) so that every
   * batch digest is distinct.
   */
  private readonly writeValue = (i: number, _body: Buffer, valueAt: number, view: DataView): number => {
    const { valueBytes } = this.options;
    // Big-endian, through the body's DataView that makeRequestInPlace hands over.
    if (valueBytes >= 4) view.setUint32(valueAt, this.issued >>> 0);
    if (valueBytes >= 8) view.setUint32(valueAt + 4, i);
    return this.deps.keys.nextKey();
  };

  private issue(clientId: number, intendedMs: number, nowMs: number, out: ClientOutput<M>[]): void {
    if (this.issued >= this.options.maxBatches) return;
    const reqNo = this.nextReqNo.get(clientId) ?? 0;
    this.nextReqNo.set(clientId, reqNo + 1);
    const { origin, batchSize, valueBytes } = this.options;
    const request = makeRequestInPlace(this.deps.signer, origin, clientId, reqNo, batchSize, valueBytes, this.writeValue);
    const p: PendingRequest = {
      request,
      digest: requestDigest(this.deps.crypto, request),
      firstSentMs: intendedMs,
      timeouts: 0,
    };
    this.pending.set(clientId, p);
    this.issued++;
    for (const to of this.deps.policy.targets(request)) out.push({ kind: 'send', to, msg: request as unknown as M });
    this.armedAtMs.set(clientId, nowMs);
    out.push({ kind: 'setTimer', name: requestTimer(clientId), afterMs: this.timeoutMs });
  }

  private onMessage(from: number, msg: M, nowMs: number, out: ClientOutput<M>[]): void {
    const key = this.deps.policy.replyKey(msg);
    if (!key) {
      out.push({ kind: 'event', event: { name: 'rejected', reason: `unexpected message type ${msg.type}`, from } });
      return;
    }
    const p = this.pending.get(key.clientId);
    // A late reply for a request already accepted (or never sent) is normal; ignore it.
    if (!p || p.request.reqNo !== key.reqNo) return;
    const outcome = this.deps.policy.onReply(p, from, msg, nowMs);
    if (!outcome) return;
    if (outcome.send) out.push(...outcome.send);
    if (outcome.accepted) this.accept(p, outcome.accepted, nowMs, out);
  }

  private accept(p: PendingRequest, a: { k: number; view: number; digest: Buffer; path: string }, nowMs: number, out: ClientOutput<M>[]): void {
    const { clientId, reqNo } = p.request;
    this.pending.delete(clientId);
    this.acceptedCount++;
    this.observeLatency(nowMs - p.firstSentMs);
    out.push({ kind: 'cancelTimer', name: requestTimer(clientId) });
    out.push({
      kind: 'accepted',
      batch: {
        clientId,
        reqNo,
        txns: p.request.writes.length,
        firstSentMs: p.firstSentMs,
        acceptedMs: nowMs,
        k: a.k,
        view: a.view,
        digest: a.digest,
        path: a.path,
      },
    });
    if (this.options.openLoopBatchesPerSec === undefined) {
      this.issue(clientId, nowMs, nowMs, out);
    } else {
      this.idle.push(clientId);
      this.drainBacklog(nowMs, out);
    }
  }

  private onTimer(name: string, nowMs: number, out: ClientOutput<M>[]): void {
    if (name === OPEN_LOOP_TIMER) {
      this.onOpenLoopTick(nowMs, out);
      return;
    }
    if (!name.startsWith('req:')) return;
    const clientId = Number(name.slice(4));
    const p = this.pending.get(clientId);
    if (!p) return;
    // Adaptive: a timer armed before the timeout grew is held to the grown timeout, not fired:
    // the request is not late by the client's current measure of the protocol's latency.
    const armedAt = this.armedAtMs.get(clientId) ?? Number.NEGATIVE_INFINITY;
    if (this.options.adaptiveTimeout && armedAt + this.timeoutMs > nowMs) {
      out.push({ kind: 'setTimer', name: requestTimer(clientId), afterMs: armedAt + this.timeoutMs - nowMs });
      return;
    }
    p.timeouts++;
    out.push({ kind: 'event', event: { name: 'timeout', clientId, reqNo: p.request.reqNo } });
    out.push(...this.deps.policy.onTimeout(p, nowMs));
    this.armedAtMs.set(clientId, nowMs);
    out.push({ kind: 'setTimer', name: requestTimer(clientId), afterMs: this.timeoutMs });
  }
}
