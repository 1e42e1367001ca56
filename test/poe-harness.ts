/**
 * The PoE core tests' fixtures (replica/poe*.test.ts): a cluster of cores with keys, client
 * requests, helpers over a step's outputs, and a tiny deterministic loop (virtual time;
 * zero-delay FIFO, seeded random order, or seeded latencies; every message through the codec)
 * for whole runs.
 */
import { expect } from 'vitest';
import { takeClientOutputs } from './client-outputs.js';
import { ClientCore } from '../client/core.js';
import type { Rng } from '../client/random.js';
import { createCrypto } from '../replica/crypto.js';
import { KeyRing } from '../replica/keys.js';
import { makeRequest, type ClientRequest, type Write } from '../replica/messages.js';
import { MSG_PROPOSE, poe, poeCodec, PoeReplica, POE_TIMERS, type PoeMessage, type Propose } from '../replica/poe.js';
import {
  CLIENT_PEER_BASE,
  clientPeer,
  isClientPeer,
  type AcceptedBatch,
  type ReplicaEvent,
  type ReplicaOptions,
  type ReplicaOutput,
} from '../replica/types.js';

// ---------------------------------------------------------------------------------------
// Fixtures

export interface ClusterOptions {
  checkpointIntervalK?: number;
  windowK?: number;
  viewChangeTimeoutMs?: number;
  archiveK?: number;
}

export function replicaOptions(n: number, id: number, o: ClusterOptions = {}): ReplicaOptions {
  return {
    id,
    n,
    checkpointIntervalK: o.checkpointIntervalK ?? 100,
    windowK: o.windowK ?? 200,
    records: 1000,
    valueBytes: 8,
    viewChangeTimeoutMs: o.viewChangeTimeoutMs ?? 1000,
    ...(o.archiveK === undefined ? {} : { extra: { archiveK: o.archiveK } }),
  };
}

export function cluster(n: number, o: ClusterOptions = {}): { ring: KeyRing; replicas: PoeReplica[] } {
  const ring = new KeyRing(createCrypto('sim'), 'seed', n, 1);
  const replicas = Array.from({ length: n }, (_, i) => new PoeReplica(replicaOptions(n, i, o), ring.replicaDeps(i)));
  return { ring, replicas };
}

export function request(ring: KeyRing, clientId: number, reqNo: number, key = clientId % 1000): ClientRequest {
  const writes: Write[] = [{ key, value: Buffer.from([clientId & 0xff, reqNo & 0xff, 1, 2]) }];
  return makeRequest(ring.clientSigner(0), 0, clientId, reqNo, writes);
}

export const msg = (from: number, m: PoeMessage) => ({ kind: 'message' as const, from, msg: m });

/** Messages of one type among a step's sends and broadcasts. */
export function sent<T extends PoeMessage>(outs: readonly ReplicaOutput<PoeMessage>[], type: number): T[] {
  const found: T[] = [];
  for (const o of outs) if ((o.kind === 'send' || o.kind === 'broadcast') && o.msg.type === type) found.push(o.msg as T);
  return found;
}

export function events(outs: readonly ReplicaOutput<PoeMessage>[], name: ReplicaEvent['name']): ReplicaEvent[] {
  const found: ReplicaEvent[] = [];
  for (const o of outs) if (o.kind === 'event' && o.event.name === name) found.push(o.event);
  return found;
}

export function rejections(outs: readonly ReplicaOutput<PoeMessage>[]): string[] {
  return events(outs, 'rejected').map((e) => (e as Extract<ReplicaEvent, { name: 'rejected' }>).reason);
}

/** The primary (replica 0) proposes `req`; returns its PROPOSE. */
export function proposeAtPrimary(r0: PoeReplica, req: ClientRequest, nowMs = 0): Propose {
  const out = r0.step(msg(clientPeer(0), req), nowMs);
  const [p] = sent<Propose>(out, MSG_PROPOSE);
  expect(p, 'the primary proposes a fresh valid request').toBeDefined();
  return p!;
}

// ---------------------------------------------------------------------------------------
// A tiny deterministic loop: zero-delay delivery, virtual time for timers.

export interface Envelope {
  readonly from: number;
  readonly to: number;
  readonly msg: PoeMessage;
}

/** Messages ordered by delivery time, then by send order. */
export class TimedQueue {
  private heap: { atMs: number; seq: number; e: Envelope }[] = [];
  private seq = 0;

  get length(): number {
    return this.heap.length;
  }

  get firstAtMs(): number {
    return this.heap[0]!.atMs;
  }

  push(atMs: number, e: Envelope): void {
    const h = this.heap;
    h.push({ atMs, seq: this.seq++, e });
    for (let i = h.length - 1; i > 0; ) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): { atMs: number; e: Envelope } {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  private less(a: { atMs: number; seq: number }, b: { atMs: number; seq: number }): boolean {
    return a.atMs < b.atMs || (a.atMs === b.atMs && a.seq < b.seq);
  }
}

export class Loop {
  nowMs = 0;
  readonly n: number;
  private queue: Envelope[] = [];
  /** With a latency function, messages travel through this queue instead (virtual time advances with them). */
  private readonly timed = new TimedQueue();
  latency: ((e: Envelope) => number) | undefined = undefined;
  private readonly timers = new Map<string, { node: number; name: string; atMs: number }>();
  readonly events = new Map<number, ReplicaEvent[]>();
  readonly accepted: AcceptedBatch[] = [];
  /** Messages sent by replicas, by type; a broadcast counts n - 1. */
  readonly sentByType = new Map<number, number>();
  readonly crashed = new Set<number>();
  /** Return false to drop a message. */
  filter: (e: Envelope) => boolean = () => true;
  /** Every timer a replica set: node, name, afterMs, time. */
  readonly timerLog: { node: number; name: string; afterMs: number; atMs: number }[] = [];
  /** Called after every delivery or timer (for sampling). */
  observe: () => void = () => {};
  delivered = 0;

  constructor(
    readonly replicas: PoeReplica[],
    readonly clients: ClientCore<PoeMessage>[],
    private readonly rng?: Rng,
  ) {
    this.n = replicas.length;
    for (let i = 0; i < this.n; i++) this.events.set(i, []);
  }

  start(): void {
    for (const r of this.replicas) this.onReplicaOutputs(r.id, r.step({ kind: 'start' }, this.nowMs));
    this.clients.forEach((c, origin) => this.onClientOutputs(origin, c.step({ kind: 'start' }, this.nowMs)));
  }

  /** Injects a message as if `from` had sent it. */
  inject(from: number, to: number, m: PoeMessage): void {
    this.enqueue({ from, to, msg: m });
  }

  private enqueue(e: Envelope): void {
    if (this.latency) this.timed.push(this.nowMs + this.latency(e), e);
    else this.queue.push(e);
  }

  private onReplicaOutputs(id: number, outs: ReplicaOutput<PoeMessage>[]): void {
    if (this.crashed.has(id)) return;
    for (const o of outs) {
      switch (o.kind) {
        case 'send':
          // Paper §3.5 (1): replicas never send to themselves.
          if (o.to === id) throw new Error(`replica ${id} sent type ${o.msg.type} to itself`);
          this.count(o.msg.type, 1);
          this.enqueue({ from: id, to: o.to, msg: o.msg });
          break;
        case 'broadcast':
          this.count(o.msg.type, this.n - 1);
          for (let j = 0; j < this.n; j++) if (j !== id) this.enqueue({ from: id, to: j, msg: o.msg });
          break;
        case 'setTimer':
          this.timers.set(`${id}|${o.name}`, { node: id, name: o.name, atMs: this.nowMs + o.afterMs });
          this.timerLog.push({ node: id, name: o.name, afterMs: o.afterMs, atMs: this.nowMs });
          break;
        case 'cancelTimer':
          this.timers.delete(`${id}|${o.name}`);
          break;
        case 'event':
          this.events.get(id)!.push(o.event);
          break;
      }
    }
  }

  private onClientOutputs(origin: number, outs: ReturnType<ClientCore<PoeMessage>['step']>): void {
    const node = CLIENT_PEER_BASE + origin;
    takeClientOutputs(outs, {
      from: node,
      n: this.n,
      nowMs: this.nowMs,
      timers: this.timers,
      accepted: this.accepted,
      send: (to, msg) => this.enqueue({ from: node, to, msg }),
    });
  }

  private count(type: number, k: number): void {
    this.sentByType.set(type, (this.sentByType.get(type) ?? 0) + k);
  }

  private deliver(e: Envelope): void {
    if (this.crashed.has(e.to) || this.crashed.has(e.from) || !this.filter(e)) return;
    // Every message crosses the wire format, as in the real runtime.
    const m = poeCodec.decode(poeCodec.encode(e.msg));
    this.delivered++;
    if (isClientPeer(e.to)) {
      const origin = e.to - CLIENT_PEER_BASE;
      if (!this.clients[origin]) return; // tests that drive requests by hand have no client core
      this.onClientOutputs(origin, this.clients[origin]!.step({ kind: 'message', from: e.from, msg: m }, this.nowMs));
    } else {
      this.onReplicaOutputs(e.to, this.replicas[e.to]!.step({ kind: 'message', from: e.from, msg: m }, this.nowMs));
    }
  }

  private next(): Envelope {
    if (!this.rng) return this.queue.shift()!;
    const i = this.rng.nextInt(this.queue.length);
    const e = this.queue[i]!;
    this.queue[i] = this.queue[this.queue.length - 1]!;
    this.queue.pop();
    return e;
  }

  /** Runs until `done`, until no message or timer is left, or until virtual time `untilMs`. */
  run(untilMs: number, done: () => boolean = () => false, maxSteps = 5_000_000): void {
    for (let steps = 0; steps < maxSteps; steps++) {
      if (done()) return;
      if (this.queue.length > 0) {
        this.deliver(this.next());
        this.observe();
        continue;
      }
      let first: { node: number; name: string; atMs: number } | undefined;
      for (const t of this.timers.values()) if (!first || t.atMs < first.atMs) first = t;
      if (this.timed.length > 0 && (!first || this.timed.firstAtMs <= first.atMs)) {
        if (this.timed.firstAtMs > untilMs) return;
        const { atMs, e } = this.timed.pop();
        this.nowMs = Math.max(this.nowMs, atMs);
        this.deliver(e);
        this.observe();
        continue;
      }
      if (!first || first.atMs > untilMs) return;
      this.timers.delete(`${first.node}|${first.name}`);
      this.nowMs = Math.max(this.nowMs, first.atMs);
      if (first.node >= CLIENT_PEER_BASE) {
        const origin = first.node - CLIENT_PEER_BASE;
        this.onClientOutputs(origin, this.clients[origin]!.step({ kind: 'timer', name: first.name }, this.nowMs));
      } else if (!this.crashed.has(first.node)) {
        this.onReplicaOutputs(first.node, this.replicas[first.node]!.step({ kind: 'timer', name: first.name }, this.nowMs));
      }
      this.observe();
    }
    throw new Error('loop did not settle');
  }

  /** Delivers every message in flight without advancing time. */
  settle(): void {
    this.run(this.nowMs);
  }

  eventsOf(id: number, name: ReplicaEvent['name']): ReplicaEvent[] {
    return this.events.get(id)!.filter((e) => e.name === name);
  }
}

export function clientCore(ring: KeyRing, n: number, o: { clients: number; maxBatches: number; requestTimeoutMs?: number }): ClientCore<PoeMessage> {
  let key = 0;
  return new ClientCore<PoeMessage>(
    { origin: 0, clients: o.clients, clientIdBase: 0, batchSize: 2, valueBytes: 8, requestTimeoutMs: o.requestTimeoutMs ?? 500, maxBatches: o.maxBatches },
    {
      crypto: ring.crypto,
      signer: ring.clientSigner(0),
      keys: { nextKey: () => key++ % 1000 },
      policy: poe.createClientPolicy({ n, origin: 0 }),
    },
  );
}

export function runLoop(n: number, o: ClusterOptions & { clients: number; maxBatches: number; requestTimeoutMs?: number; rng?: Rng }) {
  const { ring, replicas } = cluster(n, o);
  const client = clientCore(ring, n, o);
  const loop = new Loop(replicas, [client], o.rng);
  return { ring, replicas, client, loop };
}

/** Ledgers of the given replicas agree at every height they share (the hash chain covers all below). */
export function expectLedgersAgree(replicas: readonly PoeReplica[]): void {
  const height = Math.min(...replicas.map((r) => r.ledger.height));
  const ref = replicas[0]!.ledger.hashAt(height).toString('hex');
  for (const r of replicas) expect(r.ledger.hashAt(height).toString('hex'), `replica ${r.id} ledger at ${height}`).toBe(ref);
  for (const r of replicas) expect(r.ledger.verifyChain(), `replica ${r.id} chain`).toBe(true);
}

/** Every accepted batch is in every given ledger at its k, with its digest and view (no accepted batch rolled back). */
export function expectAcceptedKept(accepted: readonly AcceptedBatch[], replicas: readonly PoeReplica[]): void {
  for (const a of accepted) {
    for (const r of replicas) {
      expect(r.ledger.height, `replica ${r.id} holds accepted k=${a.k}`).toBeGreaterThanOrEqual(a.k);
      expect(r.ledger.digestAt(a.k).equals(a.digest), `replica ${r.id} digest at accepted k=${a.k}`).toBe(true);
      expect(r.ledger.viewAt(a.k), `replica ${r.id} view at accepted k=${a.k}`).toBe(a.view);
    }
  }
}

/** Makes replica r detect failure of the primary (§3.3.1 (1)): a client broadcast it forwards is not executed in time. */
export function timeOut(r: PoeReplica, ring: KeyRing, clientId: number, nowMs: number): ReplicaOutput<PoeMessage>[] {
  const fwd = r.step(msg(clientPeer(0), request(ring, clientId, 0)), nowMs);
  const armed = fwd.find((o) => o.kind === 'setTimer' && o.name === POE_TIMERS.viewChange);
  expect(armed, `replica ${r.id} arms its view-change timer`).toBeDefined();
  return r.step({ kind: 'timer', name: POE_TIMERS.viewChange }, nowMs + (armed as { afterMs: number }).afterMs);
}

/** A cluster of n that executed `batches` batches everywhere (view 0), and the loop that ran it. */
export function executedCluster(n: number, batches: number, o: ClusterOptions = {}) {
  const { ring, replicas } = cluster(n, o);
  const loop = new Loop(replicas, []);
  for (let i = 0; i < batches; i++) {
    for (const out of replicas[0]!.step(msg(clientPeer(0), request(ring, 100 + i, 0)), 0)) {
      if (out.kind === 'broadcast') for (let j = 1; j < n; j++) loop.inject(0, j, out.msg);
    }
    loop.settle();
  }
  for (const r of replicas) expect(r.status().executedK).toBe(batches);
  return { ring, replicas, loop };
}
