/**
 * Tests for the PoE core, driven directly (no simulator): single steps for the rules of
 * Figure 3 and Figure 5, and a tiny in-test loop (virtual time, zero-delay FIFO or seeded random
 * delivery order, every message through the codec) for whole runs. Each test names the sentence
 * or line of the paper it checks (../shared/seeds/poe-paper.txt), as etcd's raft_paper_test does.
 *
 * Randomised tests print their seed on failure; replay with POE_TEST_SEED=<seed>.
 */
import { describe, expect, it } from 'vitest';
import { ClientCore } from '../client/core.js';
import { Rng } from '../client/random.js';
import { createCrypto } from './crypto.js';
import { KeyRing } from './keys.js';
import { makeRequest, MSG_CHECKPOINT, MSG_REQUEST, type ClientRequest, type Write } from './messages.js';
import {
  buildNewView,
  messageDigest,
  MSG_INFORM,
  MSG_NV_ACK,
  MSG_NV_PROPOSE,
  MSG_PROPOSE,
  MSG_SUPPORT,
  MSG_VC_ACK,
  MSG_VC_REQUEST,
  poe,
  poeCodec,
  PoeClientPolicy,
  PoeReplica,
  POE_TIMERS,
  type Inform,
  type NvPropose,
  type PoeMessage,
  type Propose,
  type Support,
  type VcRequest,
} from './poe.js';
import type { PendingRequest } from './protocol.js';
import { CodecError } from './wire.js';
import {
  CLIENT_PEER_BASE,
  clientPeer,
  isClientPeer,
  quorums,
  type AcceptedBatch,
  type ReplicaEvent,
  type ReplicaOptions,
  type ReplicaOutput,
} from './types.js';

// ---------------------------------------------------------------------------------------
// Fixtures

interface ClusterOptions {
  checkpointIntervalK?: number;
  windowK?: number;
  viewChangeTimeoutMs?: number;
}

function replicaOptions(n: number, id: number, o: ClusterOptions = {}): ReplicaOptions {
  return {
    id,
    n,
    checkpointIntervalK: o.checkpointIntervalK ?? 100,
    windowK: o.windowK ?? 200,
    records: 1000,
    valueBytes: 8,
    viewChangeTimeoutMs: o.viewChangeTimeoutMs ?? 1000,
  };
}

function cluster(n: number, o: ClusterOptions = {}): { ring: KeyRing; replicas: PoeReplica[] } {
  const ring = new KeyRing(createCrypto('sim'), 'seed', n, 1);
  const replicas = Array.from({ length: n }, (_, i) => new PoeReplica(replicaOptions(n, i, o), ring.replicaDeps(i)));
  return { ring, replicas };
}

function request(ring: KeyRing, clientId: number, reqNo: number, key = clientId % 1000): ClientRequest {
  const writes: Write[] = [{ key, value: Buffer.from([clientId & 0xff, reqNo & 0xff, 1, 2]) }];
  return makeRequest(ring.clientSigner(0), 0, clientId, reqNo, writes);
}

const msg = (from: number, m: PoeMessage) => ({ kind: 'message' as const, from, msg: m });

/** Messages of one type among a step's sends and broadcasts. */
function sent<T extends PoeMessage>(outs: readonly ReplicaOutput<PoeMessage>[], type: number): T[] {
  const found: T[] = [];
  for (const o of outs) if ((o.kind === 'send' || o.kind === 'broadcast') && o.msg.type === type) found.push(o.msg as T);
  return found;
}

function events(outs: readonly ReplicaOutput<PoeMessage>[], name: ReplicaEvent['name']): ReplicaEvent[] {
  const found: ReplicaEvent[] = [];
  for (const o of outs) if (o.kind === 'event' && o.event.name === name) found.push(o.event);
  return found;
}

function rejections(outs: readonly ReplicaOutput<PoeMessage>[]): string[] {
  return events(outs, 'rejected').map((e) => (e as Extract<ReplicaEvent, { name: 'rejected' }>).reason);
}

/** The primary (replica 0) proposes `req`; returns its PROPOSE. */
function proposeAtPrimary(r0: PoeReplica, req: ClientRequest, nowMs = 0): Propose {
  const out = r0.step(msg(clientPeer(0), req), nowMs);
  const [p] = sent<Propose>(out, MSG_PROPOSE);
  expect(p, 'the primary proposes a fresh valid request').toBeDefined();
  return p!;
}

// ---------------------------------------------------------------------------------------
// A tiny deterministic loop: zero-delay delivery, virtual time for timers.

interface Envelope {
  readonly from: number;
  readonly to: number;
  readonly msg: PoeMessage;
}

class Loop {
  nowMs = 0;
  readonly n: number;
  private queue: Envelope[] = [];
  private readonly timers = new Map<string, { node: number; name: string; atMs: number }>();
  readonly events = new Map<number, ReplicaEvent[]>();
  readonly accepted: AcceptedBatch[] = [];
  /** Messages sent by replicas, by type; a broadcast counts n - 1. */
  readonly sentByType = new Map<number, number>();
  readonly crashed = new Set<number>();
  /** Return false to drop a message. */
  filter: (e: Envelope) => boolean = () => true;
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
    this.queue.push({ from, to, msg: m });
  }

  private onReplicaOutputs(id: number, outs: ReplicaOutput<PoeMessage>[]): void {
    if (this.crashed.has(id)) return;
    for (const o of outs) {
      switch (o.kind) {
        case 'send':
          this.count(o.msg.type, 1);
          this.queue.push({ from: id, to: o.to, msg: o.msg });
          break;
        case 'broadcast':
          this.count(o.msg.type, this.n - 1);
          for (let j = 0; j < this.n; j++) if (j !== id) this.queue.push({ from: id, to: j, msg: o.msg });
          break;
        case 'setTimer':
          this.timers.set(`${id}|${o.name}`, { node: id, name: o.name, atMs: this.nowMs + o.afterMs });
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
    for (const o of outs) {
      switch (o.kind) {
        case 'send':
          this.queue.push({ from: node, to: o.to, msg: o.msg });
          break;
        case 'broadcast':
          for (let j = 0; j < this.n; j++) this.queue.push({ from: node, to: j, msg: o.msg });
          break;
        case 'setTimer':
          this.timers.set(`${node}|${o.name}`, { node, name: o.name, atMs: this.nowMs + o.afterMs });
          break;
        case 'cancelTimer':
          this.timers.delete(`${node}|${o.name}`);
          break;
        case 'accepted':
          this.accepted.push(o.batch);
          break;
        case 'event':
          break;
      }
    }
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

function clientCore(ring: KeyRing, n: number, o: { clients: number; maxBatches: number; requestTimeoutMs?: number }): ClientCore<PoeMessage> {
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

function runLoop(n: number, o: ClusterOptions & { clients: number; maxBatches: number; requestTimeoutMs?: number; rng?: Rng }) {
  const { ring, replicas } = cluster(n, o);
  const client = clientCore(ring, n, o);
  const loop = new Loop(replicas, [client], o.rng);
  return { ring, replicas, client, loop };
}

/** Ledgers of the given replicas agree at every height they share (the hash chain covers all below). */
function expectLedgersAgree(replicas: readonly PoeReplica[]): void {
  const height = Math.min(...replicas.map((r) => r.ledger.height));
  const ref = replicas[0]!.ledger.hashAt(height).toString('hex');
  for (const r of replicas) expect(r.ledger.hashAt(height).toString('hex'), `replica ${r.id} ledger at ${height}`).toBe(ref);
  for (const r of replicas) expect(r.ledger.verifyChain(), `replica ${r.id} chain`).toBe(true);
}

/** Every accepted batch is in every given ledger at its k, with its digest and view (no accepted batch rolled back). */
function expectAcceptedKept(accepted: readonly AcceptedBatch[], replicas: readonly PoeReplica[]): void {
  for (const a of accepted) {
    for (const r of replicas) {
      expect(r.ledger.height, `replica ${r.id} holds accepted k=${a.k}`).toBeGreaterThanOrEqual(a.k);
      expect(r.ledger.digestAt(a.k).equals(a.digest), `replica ${r.id} digest at accepted k=${a.k}`).toBe(true);
      expect(r.ledger.viewAt(a.k), `replica ${r.id} view at accepted k=${a.k}`).toBe(a.view);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Codec

describe('PoE codec', () => {
  const ring = new KeyRing(createCrypto('sim'), 'seed', 4, 1);
  const req = request(ring, 3, 9);
  const d = ring.crypto.digest(Buffer.from('d'));
  const entries = [
    { view: 0, k: 601, request: req },
    { view: 1, k: 602, request: request(ring, 4, 1) },
  ];
  const all: PoeMessage[] = [
    req,
    { type: MSG_CHECKPOINT, replica: 2, k: 600, stateDigest: d },
    { type: MSG_PROPOSE, view: 3, k: 17, request: req },
    { type: MSG_SUPPORT, view: 3, k: 17, digest: d },
    { type: MSG_INFORM, view: 3, k: 17, digest: d, clientId: 3, reqNo: 9, result: ring.crypto.digest(d) },
    { type: MSG_VC_REQUEST, view: 2, replica: 1, stableK: 600, entries },
    { type: MSG_VC_REQUEST, view: 0, replica: 0, stableK: 0, entries: [] },
    { type: MSG_VC_ACK, view: 2, replica: 3, digest: d },
    { type: MSG_NV_PROPOSE, view: 3, stableK: 600, entries, certificate: [{ replica: 0, digest: d }, { replica: 2, digest: d }] },
    { type: MSG_NV_ACK, view: 3, digest: d },
  ];

  it('round-trips every message type exactly and re-encodes to the same frame', () => {
    for (const m of all) {
      const frame = poeCodec.encode(m);
      const back = poeCodec.decode(frame);
      expect(back.type).toBe(m.type);
      expect(poeCodec.encode(back).equals(frame), `type ${m.type} re-encodes identically`).toBe(true);
      // Field by field, ignoring how Buffers are held.
      expect(JSON.parse(JSON.stringify(back))).toEqual(JSON.parse(JSON.stringify(m)));
    }
  });

  it('rejects truncated frames and trailing bytes with CodecError only', () => {
    for (const m of all) {
      const frame = poeCodec.encode(m);
      for (const cut of [1, Math.floor(frame.length / 2), frame.length - 1]) {
        expect(() => poeCodec.decode(frame.subarray(0, cut)), `type ${m.type} cut at ${cut}`).toThrow(CodecError);
      }
      expect(() => poeCodec.decode(Buffer.concat([frame, Buffer.from([0])]))).toThrow(CodecError);
    }
    expect(() => poeCodec.decode(Buffer.from([19]))).toThrow(CodecError);
  });
});

// ---------------------------------------------------------------------------------------
// Normal case (Figure 3)

describe('PoE normal case (Figure 3)', () => {
  it.each([4, 7])('view-commits only on nf matching SUPPORTs, the PROPOSE and its own included (n=%i)', (n) => {
    // Reference: paper Figure 3, lines 15-17, and §3.5 (2) (the PROPOSE counts as the primary's SUPPORT)
    const { nf } = quorums(n);
    const { ring, replicas } = cluster(n);
    const p = proposeAtPrimary(replicas[0]!, request(ring, 1, 0));
    const backup = replicas[1]!;
    const out = backup.step(msg(0, p), 0);
    expect(sent<Support>(out, MSG_SUPPORT)).toHaveLength(1);
    // The primary's PROPOSE and our own SUPPORT: 2. Add others up to nf - 1: still nothing.
    let count = 2;
    const support: Support = { type: MSG_SUPPORT, view: 0, k: 1, digest: sent<Support>(out, MSG_SUPPORT)[0]!.digest };
    let from = 2;
    for (; count < nf - 1; count++) expect(events(backup.step(msg(from++, support), 0), 'executed')).toHaveLength(0);
    // A SUPPORT for another digest does not count (line 15: identical messages).
    const other: Support = { ...support, digest: ring.crypto.digest(Buffer.from('other')) };
    expect(events(backup.step(msg(from++, other), 0), 'executed')).toHaveLength(0);
    expect(backup.status().executedK).toBe(0);
    // The nf-th matching SUPPORT view-commits and executes; the client is informed (line 22).
    const last = backup.step(msg(from, support), 0);
    expect(events(last, 'executed')).toHaveLength(1);
    const [inform] = sent<Inform>(last, MSG_INFORM);
    expect(inform).toMatchObject({ view: 0, k: 1, clientId: 1, reqNo: 0 });
    expect(last.find((o) => o.kind === 'send' && o.msg.type === MSG_INFORM)).toMatchObject({ to: clientPeer(0) });

    // At the primary: its PROPOSE counts, so it needs nf - 1 SUPPORTs from backups.
    const primary = replicas[0]!;
    for (let j = 1; j < nf - 1; j++) expect(events(primary.step(msg(j, support), 0), 'executed')).toHaveLength(0);
    expect(events(primary.step(msg(nf - 1, support), 0), 'executed')).toHaveLength(1);
  });

  it('counts SUPPORTs that arrive before the PROPOSE once it arrives', () => {
    // Reference: paper Figure 3, lines 10-17 (out-of-order processing inside the window, DESIGN.md)
    const { ring, replicas } = cluster(4);
    const p = proposeAtPrimary(replicas[0]!, request(ring, 1, 0));
    const digest = ring.crypto.digest(p.request.body);
    const backup = replicas[1]!;
    expect(backup.step(msg(2, { type: MSG_SUPPORT, view: 0, k: 1, digest }), 0)).toHaveLength(0);
    const out = backup.step(msg(0, p), 0);
    expect(sent(out, MSG_SUPPORT)).toHaveLength(1);
    expect(events(out, 'executed')).toHaveLength(1);
  });

  it('supports only the first PROPOSE for (v, k), from the primary of the current view', () => {
    // Reference: paper Figure 3, line 10 conditions (1)-(3); Proposition 3.2
    const { ring, replicas } = cluster(4);
    const backup = replicas[1]!;
    const first: Propose = { type: MSG_PROPOSE, view: 0, k: 1, request: request(ring, 1, 0) };
    const second: Propose = { type: MSG_PROPOSE, view: 0, k: 1, request: request(ring, 2, 0) };
    expect(sent(backup.step(msg(0, first), 0), MSG_SUPPORT)).toHaveLength(1);
    const out = backup.step(msg(0, second), 0);
    expect(sent(out, MSG_SUPPORT)).toHaveLength(0); // condition (3)
    expect(rejections(out)).toContain('equivocating PROPOSE');
    // Condition (2): only the primary of the view proposes.
    const fromBackup = backup.step(msg(2, { ...first, k: 2 }), 0);
    expect(sent(fromBackup, MSG_SUPPORT)).toHaveLength(0);
    expect(rejections(fromBackup)).toContain('PROPOSE from a non-primary');
    // Condition (1): a PROPOSE of another view is not supported now.
    expect(sent(backup.step(msg(1 % 4, { ...first, view: 1, k: 3 }), 0), MSG_SUPPORT)).toHaveLength(0);
    expect(sent(backup.step(msg(0, { ...first, view: 4, k: 3 }), 0), MSG_SUPPORT)).toHaveLength(0);
    // A forged client request is never supported (the client's signature, §3.2).
    const forged: ClientRequest = { ...request(ring, 5, 0), signature: Buffer.alloc(64, 7) };
    const bad = backup.step(msg(0, { type: MSG_PROPOSE, view: 0, k: 4, request: forged }), 0);
    expect(sent(bad, MSG_SUPPORT)).toHaveLength(0);
    expect(rejections(bad)).toContain('PROPOSE with an invalid client request');
  });

  it('executes in sequence order: k=2 view-committed first waits for k=1', () => {
    // Reference: paper Figure 3, line 19 (execute after k-1 was executed)
    const { ring, replicas } = cluster(4);
    const p1 = proposeAtPrimary(replicas[0]!, request(ring, 1, 0));
    const p2 = proposeAtPrimary(replicas[0]!, request(ring, 2, 0));
    expect([p1.k, p2.k]).toEqual([1, 2]);
    const backup = replicas[1]!;
    const s1 = sent<Support>(backup.step(msg(0, p1), 0), MSG_SUPPORT)[0]!;
    const s2 = sent<Support>(backup.step(msg(0, p2), 0), MSG_SUPPORT)[0]!;
    expect(events(backup.step(msg(2, s2), 0), 'executed')).toHaveLength(0);
    expect(backup.status().executedK).toBe(0);
    const out = backup.step(msg(2, s1), 0);
    expect(events(out, 'executed').map((e) => (e as { k: number }).k)).toEqual([1, 2]);
    expect(sent<Inform>(out, MSG_INFORM).map((i) => i.k)).toEqual([1, 2]);
  });

  it('drops messages outside the window (min(stableK, executedK), that + 2 windowK]', () => {
    // Reference: DESIGN.md "Replicas process sequence numbers out of order inside a window"; §3.5 checkpoints
    const { ring, replicas } = cluster(4, { checkpointIntervalK: 10, windowK: 20 });
    const backup = replicas[1]!;
    const far = backup.step(msg(0, { type: MSG_PROPOSE, view: 0, k: 41, request: request(ring, 1, 0) }), 0);
    expect(sent(far, MSG_SUPPORT)).toHaveLength(0);
    expect(rejections(far)).toContain('PROPOSE outside the window');
    const digest = ring.crypto.digest(Buffer.from('x'));
    expect(rejections(backup.step(msg(2, { type: MSG_SUPPORT, view: 0, k: 45, digest }), 0))).toContain('SUPPORT outside the window');
    expect(backup.status().logEntries).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// Client (Figure 3, lines 1-3)

describe('PoE client policy', () => {
  const ring = new KeyRing(createCrypto('sim'), 'seed', 4, 1);
  const req = request(ring, 1, 0);
  const digest = ring.crypto.digest(req.body);
  const inform = (over: Partial<Inform> = {}): Inform => ({
    type: MSG_INFORM,
    view: 0,
    k: 5,
    digest,
    clientId: 1,
    reqNo: 0,
    result: ring.crypto.digest(Buffer.from('block 5')),
    ...over,
  });
  const pending = (): PendingRequest => ({ request: req, digest, firstSentMs: 0, timeouts: 0 });

  it('accepts on nf identical INFORMs from distinct replicas, not on nf - 1', () => {
    // Reference: paper Figure 3, lines 2-3
    const policy = new PoeClientPolicy({ n: 4, origin: 0 });
    const p = pending();
    expect(policy.onReply(p, 0, inform(), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 0, inform(), 0)?.accepted).toBeUndefined(); // same replica twice
    expect(policy.onReply(p, 1, inform(), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 2, inform(), 0)?.accepted).toEqual({ k: 5, view: 0, digest, path: 'inform' });
  });

  it('does not count non-identical INFORMs together', () => {
    // Reference: paper Figure 3, line 2 ("identical"), Theorem 3.3
    const policy = new PoeClientPolicy({ n: 4, origin: 0 });
    const p = pending();
    expect(policy.onReply(p, 0, inform(), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 1, inform(), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 2, inform({ result: ring.crypto.digest(Buffer.from('other')) }), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 3, inform({ k: 6 }), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 3, inform({ view: 1 }), 0)?.accepted).toBeUndefined();
    // An INFORM for another batch, or from a client peer, never counts.
    expect(policy.onReply(p, 3, inform({ digest: ring.crypto.digest(Buffer.from('x')) }), 0)).toBeUndefined();
    expect(policy.onReply(p, clientPeer(0), inform(), 0)).toBeUndefined();
    expect(policy.onReply(p, 3, inform(), 0)?.accepted).toMatchObject({ k: 5 });
  });

  it('sends to the primary of the last accepted view and broadcasts on timeout', () => {
    // Reference: paper Figure 3, line 1; §3.2 ("it can broadcast its request to all replicas")
    const policy = new PoeClientPolicy({ n: 4, origin: 0 });
    expect(policy.targets(req)).toEqual([0]);
    const p = pending();
    for (const j of [1, 2, 3]) policy.onReply(p, j, inform({ view: 5 }), 0);
    expect(policy.targets(req)).toEqual([1]);
    expect(policy.onTimeout(p, 0)).toEqual([{ kind: 'broadcast', msg: req }]);
  });
});

// ---------------------------------------------------------------------------------------
// Deduplication

describe('PoE deduplication', () => {
  it('proposes a request once, and answers an executed one with its INFORM again', () => {
    // Reference: paper §3.2 ("forward this request to the current primary (if it is not yet executed)"), DESIGN.md dedup
    const { ring, replicas, loop, client } = runLoop(4, { clients: 1, maxBatches: 1 });
    void client;
    const primary = replicas[0]!;
    const req = request(ring, 9, 0);
    const first = primary.step(msg(clientPeer(0), req), 0);
    expect(sent(first, MSG_PROPOSE)).toHaveLength(1);
    expect(sent(primary.step(msg(clientPeer(0), req), 0), MSG_PROPOSE)).toHaveLength(0); // in flight
    // Let the batch execute everywhere.
    for (const o of first) if (o.kind === 'broadcast') for (const j of [1, 2, 3]) loop.inject(0, j, o.msg);
    loop.run(0);
    for (const r of replicas) expect(r.status().executedK).toBe(1);
    // Executed: the primary and a backup re-send the INFORM, neither proposes nor forwards.
    const again = primary.step(msg(clientPeer(0), req), 10);
    expect(sent(again, MSG_PROPOSE)).toHaveLength(0);
    expect(sent<Inform>(again, MSG_INFORM)).toMatchObject([{ k: 1, clientId: 9, reqNo: 0 }]);
    const atBackup = replicas[2]!.step(msg(clientPeer(0), req), 10);
    expect(sent(atBackup, MSG_REQUEST)).toHaveLength(0);
    expect(sent<Inform>(atBackup, MSG_INFORM)).toMatchObject([{ k: 1, clientId: 9, reqNo: 0 }]);
    // A primary that proposes an executed request again: executed as a duplicate, no writes, no INFORM.
    const dup = replicas[1]!.step(msg(0, { type: MSG_PROPOSE, view: 0, k: 2, request: req }), 10);
    const sup = sent<Support>(dup, MSG_SUPPORT)[0]!;
    const out = replicas[1]!.step(msg(3, sup), 10);
    expect(events(out, 'executed')).toMatchObject([{ k: 2, txns: 0 }]);
    expect(sent(out, MSG_INFORM)).toHaveLength(0);
  });

  it('a backup forwards a client broadcast to the primary and arms the view-change timer', () => {
    // Reference: paper §3.2 last paragraph; §3.3.1 (1)
    const { ring, replicas } = cluster(4, { viewChangeTimeoutMs: 700 });
    const out = replicas[2]!.step(msg(clientPeer(0), request(ring, 4, 0)), 100);
    expect(out.find((o) => o.kind === 'send' && o.msg.type === MSG_REQUEST)).toMatchObject({ to: 0 });
    expect(out.find((o) => o.kind === 'setTimer')).toEqual({ kind: 'setTimer', name: POE_TIMERS.viewChange, afterMs: 700 });
  });
});

// ---------------------------------------------------------------------------------------
// Whole runs: checkpoints, message counts, window

describe('PoE runs (in-test loop)', () => {
  it('keeps memory bounded: per-k log, undo log and checkpoint votes are collected at stable checkpoints', () => {
    // Reference: paper §3.5 last paragraph (periodic checkpoints); DESIGN.md "Protocols" (GC)
    const windowK = 40;
    const { replicas, loop, client } = runLoop(4, { clients: 4, maxBatches: 5000, checkpointIntervalK: 10, windowK });
    let maxLog = 0;
    let maxUndo = 0;
    loop.observe = () => {
      for (const r of replicas) {
        maxLog = Math.max(maxLog, r.status().logEntries);
        maxUndo = Math.max(maxUndo, r.store.undoDepth);
      }
    };
    loop.start();
    loop.run(60_000, () => client.done);
    loop.settle();
    expect(client.acceptedBatches).toBe(5000);
    for (const r of replicas) {
      expect(r.status().executedK).toBe(5000);
      expect(r.status().stableK).toBe(5000);
      expect(r.status().logEntries).toBe(0);
    }
    expect(maxLog).toBeLessThanOrEqual(windowK);
    expect(maxUndo).toBeLessThanOrEqual(windowK);
    expect(loop.eventsOf(0, 'checkpointStable')).toHaveLength(500);
    expectLedgersAgree(replicas);
    expectAcceptedKept(loop.accepted, replicas);
  });

  it.each([4, 16])('sends exactly n^2 messages per fault-free batch, n=%i (CHECKPOINT counted apart)', (n) => {
    // Reference: paper §3.5 ("each replica ... only sends a single message to all the other replicas"), Figure 2
    const batches = 20;
    const interval = 10;
    const { loop, client } = runLoop(n, { clients: 1, maxBatches: batches, checkpointIntervalK: interval, windowK: 20 });
    loop.start();
    loop.run(10_000, () => client.done);
    expect(client.acceptedBatches).toBe(batches);
    const c = (t: number) => loop.sentByType.get(t) ?? 0;
    expect(c(MSG_PROPOSE)).toBe((n - 1) * batches);
    expect(c(MSG_SUPPORT)).toBe((n - 1) * (n - 1) * batches);
    expect(c(MSG_INFORM)).toBe(n * batches);
    expect(c(MSG_PROPOSE) + c(MSG_SUPPORT) + c(MSG_INFORM)).toBe(n * n * batches);
    expect(c(MSG_CHECKPOINT)).toBe(n * (n - 1) * (batches / interval));
    const other = [...loop.sentByType.keys()].filter((t) => ![MSG_PROPOSE, MSG_SUPPORT, MSG_INFORM, MSG_CHECKPOINT].includes(t));
    expect(other).toEqual([]);
  });

  it('the primary queues requests while the window is full and proposes them as checkpoints become stable', () => {
    // Reference: DESIGN.md watermark window; paper Figure 3, lines 6-8
    const windowK = 10;
    const { replicas, loop, client } = runLoop(4, { clients: 25, maxBatches: 100, checkpointIntervalK: 5, windowK });
    let worst = 0;
    const primary = replicas[0]!;
    loop.filter = (e) => {
      if (e.msg.type === MSG_PROPOSE) worst = Math.max(worst, (e.msg as Propose).k - primary.status().stableK);
      return true;
    };
    loop.start();
    loop.run(60_000, () => client.done);
    loop.settle();
    expect(client.acceptedBatches).toBe(100);
    expect(worst).toBe(windowK);
    expectLedgersAgree(replicas);
  });

  it('stays safe and live under random message reordering', () => {
    // Reference: paper §3.1 (safety needs no assumption on communication), Theorem 3.3
    const seed = Number(process.env.POE_TEST_SEED ?? 20210323);
    for (let i = 0; i < 5; i++) {
      const s = seed + i;
      const { replicas, loop, client } = runLoop(4, { clients: 8, maxBatches: 300, checkpointIntervalK: 10, windowK: 30, rng: new Rng(s) });
      loop.start();
      loop.run(120_000, () => client.done);
      loop.settle();
      expect(client.acceptedBatches, `seed ${s}`).toBe(300);
      expectLedgersAgree(replicas);
      expectAcceptedKept(loop.accepted, replicas);
    }
  });
});
