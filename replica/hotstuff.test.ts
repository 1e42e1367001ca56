/**
 * HotStuff core tests, driving the cores directly through a tiny in-test delivery loop (zero
 * latency, FIFO, virtual timers). Each test cites the sentences it checks: HotStuff (Yin et al.,
 * PODC 2019) Algorithm 2 (basic), Algorithm 3 (chained), Algorithm 1 (safeNode), and the PoE
 * paper §4(8) (lines ~405-410).
 */
import { describe, expect, it } from 'vitest';
import { ClientCore, type KeyGenerator } from '../client/core.js';
import { createCrypto, type CryptoProviderName } from './crypto.js';
import { KeyRing } from './keys.js';
import { makeRequest, MSG_CHECKPOINT, noopRequest, requestDigest, type ClientRequest } from './messages.js';
import type { PendingRequest } from './protocol.js';
import {
  type ChainedHotStuff,
  genesisQC,
  hotstuff,
  hotstuffCodec,
  hotstuffLeaders,
  makeNewView,
  makePhase,
  makePrepare,
  makeReply,
  makeProposal,
  makeVote,
  MSG_HS_BLOCK_REQUEST,
  MSG_HS_COMMIT,
  MSG_HS_DECIDE,
  MSG_HS_NEW_VIEW,
  MSG_HS_PRE_COMMIT,
  MSG_HS_PREPARE,
  MSG_HS_PROPOSAL,
  MSG_HS_REPLY,
  MSG_HS_VOTE,
  type ParallelHotStuff,
  PHASE_COMMIT,
  PHASE_GENERIC,
  PHASE_PRE_COMMIT,
  PHASE_PREPARE,
  voteBytes,
  type HotStuffMessage,
  type HsBlock,
  type HsReply,
  type Phase,
  type QuorumCert,
  SlotOwners,
  HOTSTUFF_PAPER_RULE_SAFETY,
} from './hotstuff.js';
import {
  clientOrigin,
  clientPeer,
  isClientPeer,
  type AcceptedBatch,
  type ClientOutput,
  type Peer,
  type ReplicaCore,
  type ReplicaEvent,
  type ReplicaOptions,
  type ReplicaOutput,
} from './types.js';
import { CodecError } from './wire.js';
import { takeClientOutputs } from '../test/client-outputs.js';
import { runSimulation } from '../infra/sim/simulator.js';

type M = HotStuffMessage;
const KEY_SEED = 'hotstuff-test';

interface Envelope {
  readonly from: Peer;
  readonly to: Peer;
  readonly msg: M;
}

interface WorldOptions {
  readonly n: number;
  readonly mode?: 'parallel' | 'chained';
  readonly crypto?: CryptoProviderName;
  readonly clients?: number;
  readonly batches?: number;
  readonly leaders?: string;
  readonly checkpointIntervalK?: number;
  readonly windowK?: number;
  /** Encode and decode every message on its way (what a core reads off a socket). */
  readonly viaCodec?: boolean;
  readonly down?: readonly number[];
  /** Parallel mode's slot dealing (default: the fixed round-robin these unit tests were written for). */
  readonly slots?: 'byLoad' | 'roundRobin';
}

class CountingKeys implements KeyGenerator {
  private next = 0;
  nextKey(): number {
    return this.next++ % 1000;
  }
}

/** n replica cores, one client machine, a FIFO queue and virtual timers. */
class World {
  readonly ring: KeyRing;
  readonly n: number;
  readonly replicas: ReplicaCore<M>[] = [];
  readonly client: ClientCore<M>;
  readonly options: ReplicaOptions[] = [];
  private queue: Envelope[] = [];
  private head = 0;
  private readonly timers = new Map<string, { node: Peer; name: string; atMs: number }>();
  nowMs = 0;
  readonly down = new Set<number>();
  /** Held messages are kept aside until `release`. */
  hold: ((e: Envelope) => boolean) | undefined;
  private held: Envelope[] = [];
  readonly sentByType = new Map<number, number>();
  replicaSends = 0;
  readonly delivered: Envelope[] = [];
  recordDeliveries = false;
  readonly events: { node: number; event: ReplicaEvent }[] = [];
  readonly accepted: AcceptedBatch[] = [];

  constructor(readonly w: WorldOptions) {
    this.n = w.n;
    this.ring = new KeyRing(createCrypto(w.crypto ?? 'sim'), KEY_SEED, w.n, 1);
    const extra: Record<string, string> = {
      mode: w.mode ?? 'parallel',
      hotstuffRule: 'qc',
      hotstuffSlots: w.slots ?? 'roundRobin',
      keySeed: KEY_SEED,
      cryptoProvider: w.crypto ?? 'sim',
    };
    if (w.leaders !== undefined) extra['leaders'] = w.leaders;
    for (let id = 0; id < w.n; id++) {
      const options: ReplicaOptions = {
        id,
        n: w.n,
        checkpointIntervalK: w.checkpointIntervalK ?? 1000,
        windowK: w.windowK ?? 2000,
        records: 1000,
        valueBytes: 8,
        viewChangeTimeoutMs: 500,
        extra,
      };
      this.options.push(options);
      this.replicas.push(hotstuff.createReplica(options, this.ring.replicaDeps(id)));
    }
    for (const d of w.down ?? []) this.down.add(d);
    this.client = new ClientCore<M>(
      { origin: 0, clients: w.clients ?? 1, clientIdBase: 0, batchSize: 2, valueBytes: 8, requestTimeoutMs: 1000, maxBatches: w.batches ?? 1 },
      {
        crypto: this.ring.crypto,
        signer: this.ring.clientSigner(0),
        keys: new CountingKeys(),
        policy: hotstuff.createClientPolicy({ n: w.n, origin: 0, extra }),
      },
    );
  }

  parallel(id: number): ParallelHotStuff {
    return this.replicas[id] as ParallelHotStuff;
  }

  chained(id: number): ChainedHotStuff {
    return this.replicas[id] as ChainedHotStuff;
  }

  start(): this {
    for (let id = 0; id < this.n; id++) if (!this.down.has(id)) this.onReplicaOutputs(id, this.replicas[id]!.step({ kind: 'start' }, this.nowMs));
    this.onClientOutputs(this.client.step({ kind: 'start' }, this.nowMs));
    return this;
  }

  private enqueue(from: Peer, to: Peer, msg: M): void {
    const e: Envelope = { from, to, msg: this.w.viaCodec ? hotstuffCodec.decode(hotstuffCodec.encode(msg)) : msg };
    if (this.hold?.(e)) this.held.push(e);
    else this.queue.push(e);
  }

  release(): void {
    this.hold = undefined;
    this.queue.push(...this.held);
    this.held = [];
  }

  private count(msg: M, copies: number): void {
    this.replicaSends += copies;
    this.sentByType.set(msg.type, (this.sentByType.get(msg.type) ?? 0) + copies);
  }

  onReplicaOutputs(id: number, outs: ReplicaOutput<M>[]): void {
    for (const o of outs) {
      switch (o.kind) {
        case 'send':
          if (o.to === id) throw new Error(`replica ${id} sent to itself`);
          this.count(o.msg, 1);
          this.enqueue(id, o.to, o.msg);
          break;
        case 'broadcast':
          this.count(o.msg, this.n - 1);
          for (let to = 0; to < this.n; to++) if (to !== id) this.enqueue(id, to, o.msg);
          break;
        case 'setTimer':
          this.timers.set(`${id}|${o.name}`, { node: id, name: o.name, atMs: this.nowMs + o.afterMs });
          break;
        case 'cancelTimer':
          this.timers.delete(`${id}|${o.name}`);
          break;
        case 'event':
          this.events.push({ node: id, event: o.event });
          break;
      }
    }
  }

  private onClientOutputs(outs: ClientOutput<M>[]): void {
    const me = clientPeer(0);
    takeClientOutputs(outs, {
      from: me,
      n: this.n,
      nowMs: this.nowMs,
      timers: this.timers,
      accepted: this.accepted,
      send: (to, msg) => this.enqueue(me, to, msg),
    });
  }

  /** Delivers queued messages until none is left. */
  deliverAll(maxDeliveries = 50_000_000): void {
    let budget = maxDeliveries;
    while (this.head < this.queue.length) {
      if (budget-- <= 0) throw new Error('delivery budget exhausted');
      const e = this.queue[this.head++]!;
      if (this.head > 65_536) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      this.deliver(e);
    }
  }

  deliver(e: Envelope): void {
    if (this.recordDeliveries) this.delivered.push(e);
    if (isClientPeer(e.to)) {
      if (clientOrigin(e.to) !== 0) throw new Error(`no client machine ${clientOrigin(e.to)}`);
      this.onClientOutputs(this.client.step({ kind: 'message', from: e.from, msg: e.msg }, this.nowMs));
      return;
    }
    if (this.down.has(e.to)) return;
    this.onReplicaOutputs(e.to, this.replicas[e.to]!.step({ kind: 'message', from: e.from, msg: e.msg }, this.nowMs));
  }

  /** Delivers, then fires the earliest timer, until the client is done or `limitMs` passes. */
  run(limitMs = 60_000): void {
    for (;;) {
      this.deliverAll();
      if (this.client.done) return;
      let next: { key: string; node: Peer; name: string; atMs: number } | undefined;
      for (const [key, t] of this.timers) if (!next || t.atMs < next.atMs) next = { key, ...t };
      if (!next || next.atMs > limitMs) return;
      this.timers.delete(next.key);
      this.nowMs = next.atMs;
      if (isClientPeer(next.node)) this.onClientOutputs(this.client.step({ kind: 'timer', name: next.name }, this.nowMs));
      else if (!this.down.has(next.node)) this.onReplicaOutputs(next.node, this.replicas[next.node]!.step({ kind: 'timer', name: next.name }, this.nowMs));
    }
  }

  live(): number[] {
    return [...Array(this.n).keys()].filter((id) => !this.down.has(id));
  }

  /** Every live replica's ledger: same height, same hashes, an intact chain. */
  expectAgreement(height: number): void {
    const [first, ...rest] = this.live();
    const ref = this.replicas[first!]!.ledger;
    expect(ref.height, `replica ${first} height`).toBe(height);
    expect(ref.verifyChain()).toBe(true);
    for (const id of rest) {
      const l = this.replicas[id]!.ledger;
      expect(l.height, `replica ${id} height`).toBe(height);
      expect(l.headHash.equals(ref.headHash), `replica ${id} head hash`).toBe(true);
    }
  }

  rejections(node: number): string[] {
    return this.events.filter((e) => e.node === node && e.event.name === 'rejected').map((e) => (e.event as { reason: string }).reason);
  }
}

/** One replica driven by hand: step it, look at what it sent. */
function stepOne(core: ReplicaCore<M>, from: Peer, msg: M): ReplicaOutput<M>[] {
  return core.step({ kind: 'message', from, msg }, 0);
}

function votesIn(outs: ReplicaOutput<M>[]): { to: Peer; phase: Phase; k: number; view: number }[] {
  const out: { to: Peer; phase: Phase; k: number; view: number }[] = [];
  for (const o of outs) if (o.kind === 'send' && o.msg.type === MSG_HS_VOTE) out.push({ to: o.to, phase: o.msg.phase, k: o.msg.k, view: o.msg.view });
  return out;
}

function rejectionsIn(outs: ReplicaOutput<M>[]): string[] {
  return outs.flatMap((o) => (o.kind === 'event' && o.event.name === 'rejected' ? [o.event.reason] : []));
}

/** A QC signed by `signers` with the ring's replica keys. */
function makeQC(ring: KeyRing, signers: readonly number[], phase: Phase, view: number, k: number, digest: Buffer): QuorumCert {
  const bytes = voteBytes(phase, view, k, digest);
  return { phase, view, k, digest, sigs: signers.map((replica) => ({ replica, signature: ring.replicaSigners[replica]!.sign(bytes) })) };
}

function clientBatch(ring: KeyRing, clientId: number, reqNo: number, key = clientId): ClientRequest {
  return makeRequest(ring.clientSigner(0), 0, clientId, reqNo, [{ key, value: Buffer.from([reqNo & 0xff, clientId & 0xff]) }]);
}

function bareReplica(n: number, id: number, mode: 'parallel' | 'chained', ring: KeyRing, extra: Record<string, string> = {}): ReplicaCore<M> {
  return hotstuff.createReplica(
    {
      id,
      n,
      checkpointIntervalK: 100,
      windowK: 200,
      records: 1000,
      valueBytes: 8,
      viewChangeTimeoutMs: 500,
      extra: { mode, hotstuffRule: 'qc', hotstuffSlots: 'roundRobin', ...extra },
    },
    ring.replicaDeps(id),
  );
}

// ---------------------------------------------------------------------------------------

describe('hotstuff parallel mode (basic HotStuff per slot, all replicas lead)', () => {
  it('runs many batches through the codec; every replica executes the same ledger', () => {
    // Reference: PoE paper §4(8): "we permit all of its replicas to act as primaries and work
    // in parallel"; HotStuff Algorithm 2, all four phases.
    const world = new World({ n: 4, clients: 8, batches: 200, viaCodec: true, checkpointIntervalK: 20, windowK: 60 }).start();
    world.run();
    expect(world.client.done).toBe(true);
    expect(world.accepted).toHaveLength(200);
    const height = world.replicas[0]!.ledger.height;
    expect(height).toBeGreaterThanOrEqual(200);
    world.expectAgreement(height);
    for (const r of world.replicas) expect(r.status().stableK).toBeGreaterThan(0);
    // Each accepted batch sits in the ledger at the position the client was told.
    const ledger = world.replicas[1]!.ledger;
    for (const a of world.accepted) expect(ledger.digestAt(a.k).equals(a.digest), `batch at ${a.k}`).toBe(true);
    for (let id = 0; id < 4; id++) expect(world.rejections(id)).toEqual([]);
  });

  it.each([4, 16])('sends exactly 7(n-1)+n replica messages per fault-free batch, n=%i', (n) => {
    // Reference: PoE paper §4(8): each of the four phases is a leader broadcast (n-1), three of
    // them answered by every replica's vote to the leader (n-1), then n replies.
    const world = new World({ n, clients: n, batches: n }).start();
    world.run();
    expect(world.client.done).toBe(true);
    world.expectAgreement(n);
    const perBatch = 7 * (n - 1) + n;
    expect(world.replicaSends).toBe(n * perBatch);
    expect(world.sentByType.get(MSG_HS_PREPARE)).toBe(n * (n - 1));
    expect(world.sentByType.get(MSG_HS_PRE_COMMIT)).toBe(n * (n - 1));
    expect(world.sentByType.get(MSG_HS_COMMIT)).toBe(n * (n - 1));
    expect(world.sentByType.get(MSG_HS_DECIDE)).toBe(n * (n - 1));
    expect(world.sentByType.get(MSG_HS_VOTE)).toBe(3 * n * (n - 1));
    expect(world.sentByType.get(MSG_HS_REPLY)).toBe(n * n);
    expect(world.sentByType.get(MSG_CHECKPOINT)).toBeUndefined();
    // One batch on its own costs the same.
    const single = new World({ n, clients: 1, batches: 1 }).start();
    single.run();
    expect(single.replicaSends).toBe(perBatch);
  });

  it('counts checkpoints separately: one broadcast per replica per interval', () => {
    // Reference: DESIGN.md "Protocols": a checkpoint every checkpointInterval, stable at nf.
    const n = 4;
    const world = new World({ n, clients: 4, batches: 40, checkpointIntervalK: 10, windowK: 20 }).start();
    world.run();
    world.expectAgreement(40);
    expect(world.sentByType.get(MSG_CHECKPOINT)).toBe(4 * n * (n - 1));
    expect(world.replicaSends - 4 * n * (n - 1)).toBe(40 * (7 * (n - 1) + n));
    for (const r of world.replicas) expect(r.status().stableK).toBe(40);
  });

  it('a backup votes only on a QC of nf distinct valid signatures', () => {
    // Reference: PoE paper §4(8): no threshold signatures, a QC is the list of nf signatures;
    // HotStuff Algorithm 2, pre-commit phase: "wait for message m from leader ... matchingQC".
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const backup = bareReplica(n, 1, 'parallel', ring);
    const request = clientBatch(ring, 0, 0);
    const d = requestDigest(ring.crypto, request);
    expect(votesIn(stepOne(backup, 0, makePrepare(ring.crypto, ring.replicaSigners[0]!, 0, 0, 1, request)))).toEqual([
      { to: 0, phase: PHASE_PREPARE, k: 1, view: 0 },
    ]);
    const leader = ring.replicaSigners[0]!;
    const good = makeQC(ring, [0, 2, 3], PHASE_PREPARE, 0, 1, d);
    const cases: [string, QuorumCert, RegExp][] = [
      ['nf-1 signatures', makeQC(ring, [0, 2], PHASE_PREPARE, 0, 1, d), /2 signatures, want 3/],
      ['a duplicate signer', { ...good, sigs: [good.sigs[0]!, good.sigs[1]!, good.sigs[1]!] }, /duplicate signer 2/],
      [
        'a signature over another batch',
        { ...good, sigs: [good.sigs[0]!, good.sigs[1]!, makeQC(ring, [3], PHASE_PREPARE, 0, 1, Buffer.alloc(32, 7)).sigs[0]!] },
        /bad signature from 3/,
      ],
      [
        'a signature for another phase',
        { ...good, sigs: [good.sigs[0]!, good.sigs[1]!, makeQC(ring, [3], PHASE_PRE_COMMIT, 0, 1, d).sigs[0]!] },
        /bad signature from 3/,
      ],
      ['an unknown signer', { ...good, sigs: [good.sigs[0]!, good.sigs[1]!, { replica: 9, signature: good.sigs[2]!.signature }] }, /unknown signer 9/],
    ];
    for (const [what, qc, reason] of cases) {
      const outs = stepOne(backup, 0, makePhase(leader, MSG_HS_PRE_COMMIT, 0, qc));
      expect(votesIn(outs), what).toEqual([]);
      expect(rejectionsIn(outs).join(';'), what).toMatch(reason);
    }
    expect(votesIn(stepOne(backup, 0, makePhase(leader, MSG_HS_PRE_COMMIT, 0, good)))).toEqual([{ to: 0, phase: PHASE_PRE_COMMIT, k: 1, view: 0 }]);
  });

  it('the leader forms a QC only from nf distinct, validly signed votes', () => {
    // Reference: HotStuff Algorithm 2, prepare phase as a leader: "wait for (n − f) votes";
    // PoE paper §4(8): every vote is signed.
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const leader = bareReplica(n, 0, 'parallel', ring);
    const request = clientBatch(ring, 0, 0);
    const outs = stepOne(leader, clientPeer(0), request);
    const prepare = outs.find((o) => o.kind === 'broadcast' && o.msg.type === MSG_HS_PREPARE);
    expect(prepare).toBeDefined();
    const d = requestDigest(ring.crypto, request);
    const forged = { ...makeVote(ring.replicaSigners[1]!, 1, PHASE_PREPARE, 0, 1, d), replica: 2 };
    const broadcasts = (o: ReplicaOutput<M>[]) => o.filter((x) => x.kind === 'broadcast').map((x) => (x as { msg: M }).msg.type);
    expect(rejectionsIn(stepOne(leader, 2, forged))).toEqual(['vote: bad signature']);
    expect(broadcasts(stepOne(leader, 1, makeVote(ring.replicaSigners[1]!, 1, PHASE_PREPARE, 0, 1, d)))).toEqual([]);
    // The same signer again does not make a quorum.
    expect(broadcasts(stepOne(leader, 1, makeVote(ring.replicaSigners[1]!, 1, PHASE_PREPARE, 0, 1, d)))).toEqual([]);
    expect(broadcasts(stepOne(leader, 2, makeVote(ring.replicaSigners[2]!, 2, PHASE_PREPARE, 0, 1, d)))).toEqual([MSG_HS_PRE_COMMIT]);
  });

  it('locking: a locked replica refuses a conflicting proposal without a newer QC and accepts one with a higher QC', () => {
    // Reference: HotStuff Algorithm 2, commit phase: "lockedQC ← m.justify"; Algorithm 1,
    // safeNode: "node extends from lockedQC.node (safety) ∨ qc.viewNumber > lockedQC.viewNumber
    // (liveness)".
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const s = ring.replicaSigners;
    const subject = bareReplica(n, 3, 'parallel', ring) as ParallelHotStuff;
    const a = clientBatch(ring, 0, 0, 1);
    const b = clientBatch(ring, 1, 0, 2);
    const da = requestDigest(ring.crypto, a);
    const db = requestDigest(ring.crypto, b);
    // Slot 1 is led by replica 0 in view 0, 1 in view 1, 2 in view 2 (leaders[(k-1+v) mod L]).
    expect([0, 1, 2].map((v) => subject.slotLeader(1, v))).toEqual([0, 1, 2]);
    stepOne(subject, 0, makePrepare(ring.crypto, s[0]!, 0, 0, 1, a));
    stepOne(subject, 0, makePhase(s[0]!, MSG_HS_PRE_COMMIT, 0, makeQC(ring, [0, 1, 3], PHASE_PREPARE, 0, 1, da)));
    const locked = stepOne(subject, 0, makePhase(s[0]!, MSG_HS_COMMIT, 0, makeQC(ring, [0, 1, 3], PHASE_PRE_COMMIT, 0, 1, da)));
    expect(votesIn(locked)).toEqual([{ to: 0, phase: PHASE_COMMIT, k: 1, view: 0 }]);
    expect(subject.lockedQCAt(1)?.view).toBe(0);
    expect(subject.lockedQCAt(1)?.digest.equals(da)).toBe(true);

    // A conflicting batch in view 1: without justify, and with a justify no newer than the lock.
    const noJustify = stepOne(subject, 1, makePrepare(ring.crypto, s[1]!, 1, 1, 1, b));
    expect(votesIn(noJustify)).toEqual([]);
    expect(rejectionsIn(noJustify).join()).toMatch(/safeNode fails/);
    const oldJustify = stepOne(subject, 1, makePrepare(ring.crypto, s[1]!, 1, 1, 1, b, makeQC(ring, [0, 1, 2], PHASE_PREPARE, 0, 1, db)));
    expect(votesIn(oldJustify)).toEqual([]);
    expect(rejectionsIn(oldJustify).join()).toMatch(/safeNode fails/);
    // The conflicting batch with a prepareQC from view 1, newer than the lock (view 0): accepted.
    const newer = stepOne(subject, 2, makePrepare(ring.crypto, s[2]!, 2, 2, 1, b, makeQC(ring, [0, 1, 2], PHASE_PREPARE, 1, 1, db)));
    expect(rejectionsIn(newer)).toEqual([]);
    expect(votesIn(newer)).toEqual([{ to: 2, phase: PHASE_PREPARE, k: 1, view: 2 }]);

    // The locked batch itself needs no justify (it extends the lock).
    const other = bareReplica(n, 3, 'parallel', ring);
    stepOne(other, 0, makePrepare(ring.crypto, s[0]!, 0, 0, 1, a));
    stepOne(other, 0, makePhase(s[0]!, MSG_HS_PRE_COMMIT, 0, makeQC(ring, [0, 1, 3], PHASE_PREPARE, 0, 1, da)));
    stepOne(other, 0, makePhase(s[0]!, MSG_HS_COMMIT, 0, makeQC(ring, [0, 1, 3], PHASE_PRE_COMMIT, 0, 1, da)));
    expect(votesIn(stepOne(other, 1, makePrepare(ring.crypto, s[1]!, 1, 1, 1, a)))).toEqual([{ to: 1, phase: PHASE_PREPARE, k: 1, view: 1 }]);
  });

  it('executes strictly in global k order across leaders', () => {
    // Reference: DESIGN.md "Protocols": process sequence numbers out of order inside a window,
    // execute strictly in order; HotStuff Algorithm 2, decide: "execute new commands".
    const world = new World({ n: 4, clients: 4, batches: 4 });
    world.recordDeliveries = true;
    // Leader 0's messages for slot 1 are held; slots 2-4 run without replica 0's votes (nf = 3).
    world.hold = (e) => e.from === 0 || e.to === 0;
    world.start();
    world.deliverAll();
    const decided = world.delivered.filter((e) => e.msg.type === MSG_HS_DECIDE).map((e) => (e.msg as { k: number }).k);
    expect(new Set(decided)).toEqual(new Set([2, 3, 4]));
    for (const id of [1, 2, 3]) expect(world.replicas[id]!.status().executedK, `replica ${id}`).toBe(0);
    expect(world.sentByType.get(MSG_HS_REPLY)).toBeUndefined();
    world.release();
    world.run();
    expect(world.client.done).toBe(true);
    world.expectAgreement(4);
    const ledger = world.replicas[2]!.ledger;
    const byK = [...world.accepted].sort((x, y) => x.k - y.k);
    expect(byK.map((a) => a.k)).toEqual([1, 2, 3, 4]);
    expect(byK.map((a) => a.clientId)).toEqual([0, 1, 2, 3]);
    for (const a of byK) expect(ledger.digestAt(a.k).equals(a.digest)).toBe(true);
  });

  it('an idle leader fills its slots below the highest proposed one with no-ops, and no further', () => {
    // Reference: messages.ts noopRequest: "a HotStuff leader with nothing to propose while
    // other leaders move on"; PoE paper §4(8): all replicas act as primaries in parallel.
    const m = 5;
    const world = new World({ n: 4, clients: 1, batches: m }).start();
    world.run();
    expect(world.client.done).toBe(true);
    // Client 0 belongs to leader 0: its batches go to slots 1, 5, 9, ...; each one after the
    // first makes leaders 1-3 fill the three slots below it.
    const height = 4 * (m - 1) + 1;
    world.expectAgreement(height);
    expect(world.accepted.map((a) => a.k)).toEqual([1, 5, 9, 13, 17]);
    const ledger = world.replicas[3]!.ledger;
    for (let k = 1; k <= height; k++) {
      if (k % 4 === 1) continue;
      expect(ledger.digestAt(k).equals(requestDigest(world.ring.crypto, noopRequest(k))), `no-op at ${k}`).toBe(true);
    }
    expect([0, 1, 2, 3].map((id) => world.parallel(id).noopsProposed)).toEqual([0, m - 1, m - 1, m - 1]);
  });

  it('leaders = the replicas that take part: a crashed non-leader costs no progress', () => {
    // Reference: PoE paper §5 (figure 10: n-3f backups crashed); the harness passes only live
    // replicas as leaders, because a crashed leader's slots would block the global order.
    expect(hotstuffLeaders(4, { leaders: '2, 0,1' })).toEqual([0, 1, 2]);
    expect(hotstuffLeaders(4, {})).toEqual([0, 1, 2, 3]);
    expect(hotstuffLeaders(4, { leaders: 3 })).toEqual([3]);
    expect(() => hotstuffLeaders(4, { leaders: '0,4' })).toThrow(RangeError);
    expect(() => hotstuffLeaders(4, { leaders: '1,1' })).toThrow(RangeError);
    const world = new World({ n: 4, clients: 6, batches: 60, leaders: '0,1,2', down: [3] }).start();
    world.run();
    expect(world.client.done).toBe(true);
    world.expectAgreement(world.replicas[0]!.ledger.height);
    expect(world.replicas[3]!.ledger.height).toBe(0);
  });

  it('deduplicates on (clientId, reqNo): one slot per request, cached reply on retransmission', () => {
    // Reference: DESIGN.md "Workload": requests carry (client id, request number); replicas
    // deduplicate. PoE paper §3.1: a client that times out broadcasts its request.
    const n = 4;
    const world = new World({ n, clients: 1, batches: 1 });
    const ring = world.ring;
    const r = clientBatch(ring, 0, 0);
    // The client's own request, sent twice to its leader and once to everybody.
    world.start();
    const original = world.replicas[0]!.ledger;
    world.deliver({ from: clientPeer(0), to: 0, msg: r });
    world.deliver({ from: clientPeer(0), to: 0, msg: r });
    for (let id = 0; id < n; id++) world.deliver({ from: clientPeer(0), to: id, msg: r });
    world.deliverAll();
    // The ClientCore issued its own batch (clientId 0, reqNo 0) too; ours has the same key, so
    // whichever came first took slot 1 and the other is ignored, never a second slot.
    expect(original.height).toBe(1);
    world.expectAgreement(1);
    expect(world.sentByType.get(MSG_HS_PREPARE)).toBe(n - 1);
    // A retransmission after execution gets the cached reply, not a new slot.
    const before = world.replicaSends;
    world.deliver({ from: clientPeer(0), to: 2, msg: r });
    world.deliverAll();
    expect(world.replicaSends).toBe(before + 1);
    expect(world.sentByType.get(MSG_HS_REPLY)).toBe(n + 1);
    // A second leader proposing an executed request (say, after a forward): decided, then
    // skipped by the executor: no writes, no reply.
    const backup = world.replicas[3]!;
    const writesBefore = backup.store.writesApplied;
    const prepare = makePrepare(ring.crypto, ring.replicaSigners[1]!, 1, 0, 2, r);
    const d = requestDigest(ring.crypto, r);
    stepOne(backup, 1, prepare);
    stepOne(backup, 1, makePhase(ring.replicaSigners[1]!, MSG_HS_PRE_COMMIT, 1, makeQC(ring, [0, 1, 2], PHASE_PREPARE, 0, 2, d)));
    stepOne(backup, 1, makePhase(ring.replicaSigners[1]!, MSG_HS_COMMIT, 1, makeQC(ring, [0, 1, 2], PHASE_PRE_COMMIT, 0, 2, d)));
    const outs = stepOne(backup, 1, makePhase(ring.replicaSigners[1]!, MSG_HS_DECIDE, 1, makeQC(ring, [0, 1, 2], PHASE_COMMIT, 0, 2, d)));
    expect(backup.ledger.height).toBe(2);
    expect(backup.store.writesApplied).toBe(writesBefore);
    expect(outs.filter((o) => o.kind === 'send' && o.msg.type === MSG_HS_REPLY)).toEqual([]);
  });

  it('handles phase messages that overtake their PREPARE (the network reorders)', () => {
    // Reference: DESIGN.md "One protocol core, many worlds": the simulated network reorders.
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const s0 = ring.replicaSigners[0]!;
    const backup = bareReplica(n, 2, 'parallel', ring);
    const r = clientBatch(ring, 0, 0);
    const d = requestDigest(ring.crypto, r);
    stepOne(backup, 0, makePhase(s0, MSG_HS_DECIDE, 0, makeQC(ring, [0, 1, 3], PHASE_COMMIT, 0, 1, d)));
    stepOne(backup, 0, makePhase(s0, MSG_HS_COMMIT, 0, makeQC(ring, [0, 1, 3], PHASE_PRE_COMMIT, 0, 1, d)));
    expect(backup.ledger.height).toBe(0);
    const outs = stepOne(backup, 0, makePrepare(ring.crypto, s0, 0, 0, 1, r));
    expect(votesIn(outs).map((v) => v.phase)).toEqual([PHASE_PREPARE, PHASE_COMMIT]);
    expect(backup.ledger.height).toBe(1);
  });

  it('a replica behind a checkpoint the others made stable still decides and executes its slots', () => {
    // Reference: DESIGN.md "Protocols": checkpoint stable at nf matching, then GC. There is no
    // state transfer, so GC must not drop a slot this replica has not executed yet.
    const world = new World({ n: 4, clients: 4, batches: 8, checkpointIntervalK: 4, windowK: 8 });
    // Slot 4 is led by replica 3; replica 1 gets its DECIDE last.
    world.hold = (e) => e.to === 1 && e.msg.type === MSG_HS_DECIDE && e.msg.k === 4;
    world.start();
    world.deliverAll();
    const lagging = world.replicas[1]!.status();
    expect(lagging.stableK).toBeGreaterThanOrEqual(4);
    expect(lagging.executedK).toBe(3);
    world.release();
    world.run();
    world.expectAgreement(8);
  });

  it('keeps memory bounded over 5000 batches', () => {
    // Reference: DESIGN.md "Protocols": checkpoints, stable at nf matching, then garbage
    // collection; TigerBeetle (STYLE.md): every queue has a fixed upper bound.
    const windowK = 100;
    const world = new World({ n: 4, clients: 16, batches: 5000, checkpointIntervalK: 50, windowK }).start();
    let maxLog = 0;
    const sample = () => {
      for (const r of world.replicas) maxLog = Math.max(maxLog, r.status().logEntries);
    };
    const origDeliver = world.deliver.bind(world);
    let i = 0;
    world.deliver = (e) => {
      origDeliver(e);
      if (++i % 500 === 0) sample();
    };
    world.run();
    sample();
    expect(world.client.done).toBe(true);
    expect(world.accepted).toHaveLength(5000);
    const height = world.replicas[0]!.ledger.height;
    world.expectAgreement(height);
    expect(maxLog).toBeLessThanOrEqual(windowK);
    for (let id = 0; id < 4; id++) {
      const r = world.parallel(id);
      expect(r.status().stableK).toBeGreaterThan(height - 50 - windowK);
      expect(r.clientTableSize).toBeLessThanOrEqual(16);
      expect(r.pendingRequests).toBe(0);
    }
  });
});

// ---------------------------------------------------------------------------------------

describe('hotstuff chained mode (Algorithm 3, one stable leader)', () => {
  /** Builds chained blocks by hand, signed with the ring's keys. */
  class Chain {
    constructor(
      readonly ring: KeyRing,
      readonly n: number,
    ) {}
    block(leader: number, view: number, parent: QuorumCert, request: ClientRequest): { msg: M; hash: Buffer; qc: (signers: number[]) => QuorumCert } {
      const b: HsBlock = { view, height: parent.k + 1, parentHash: parent.digest, request, justify: parent };
      const { proposal, hash } = makeProposal(this.ring.crypto, this.ring.replicaSigners[leader]!, leader, b);
      return { msg: proposal, hash, qc: (signers) => makeQC(this.ring, signers, PHASE_GENERIC, view, b.height, hash) };
    }
  }

  it('commits on a three-chain, not on a two-chain', () => {
    // Reference: HotStuff Algorithm 3: "start commit phase on b*'s grandparent ... lockedQC ←
    // b''.justify" (two-chain locks) and "start decide phase on b*'s great-grandparent ...
    // execute new commands through b" (three-chain commits).
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const chain = new Chain(ring, n);
    const subject = bareReplica(n, 3, 'chained', ring) as ChainedHotStuff;
    const q = [0, 1, 2];
    const b1 = chain.block(0, 0, genesisQC(ring.crypto), clientBatch(ring, 0, 0));
    const b2 = chain.block(0, 0, b1.qc(q), clientBatch(ring, 1, 0));
    const b3 = chain.block(0, 0, b2.qc(q), clientBatch(ring, 2, 0));
    const b4 = chain.block(0, 0, b3.qc(q), clientBatch(ring, 3, 0));
    const heights: number[] = [];
    for (const b of [b1, b2, b3]) {
      const outs = stepOne(subject, 0, b.msg);
      expect(votesIn(outs)).toHaveLength(1);
      heights.push(subject.ledger.height);
    }
    expect(heights).toEqual([0, 0, 0]);
    expect(subject.highQCNow.k).toBe(2);
    expect(subject.lockedQCNow.k).toBe(1);
    const outs = stepOne(subject, 0, b4.msg);
    expect(subject.ledger.height).toBe(1);
    expect(outs.filter((o) => o.kind === 'send' && o.msg.type === MSG_HS_REPLY)).toHaveLength(1);
  });

  it('a three-chain across views commits only once three blocks share a view', () => {
    // Reference: HotStuff Algorithm 3: the decide phase needs b'.parent = b and b''.parent = b'
    // (consecutive views); here views do not change per block, so the three share one view.
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const chain = new Chain(ring, n);
    const subject = bareReplica(n, 3, 'chained', ring) as ChainedHotStuff;
    const q = [0, 1, 2];
    const b1 = chain.block(0, 0, genesisQC(ring.crypto), clientBatch(ring, 0, 0));
    const c2 = chain.block(1, 1, b1.qc(q), clientBatch(ring, 1, 0));
    const c3 = chain.block(1, 1, c2.qc(q), clientBatch(ring, 2, 0));
    const c4 = chain.block(1, 1, c3.qc(q), clientBatch(ring, 3, 0));
    const c5 = chain.block(1, 1, c4.qc(q), clientBatch(ring, 4, 0));
    for (const b of [b1, c2, c3, c4]) stepOne(subject, b === b1 ? 0 : 1, b.msg);
    expect(subject.ledger.height).toBe(0);
    stepOne(subject, 1, c5.msg);
    expect(subject.ledger.height).toBe(2);
    expect(subject.ledger.viewAt(1)).toBe(0);
    expect(subject.ledger.viewAt(2)).toBe(1);
  });

  it('locking: refuses a fork with a lower justify, accepts one with a higher QC', () => {
    // Reference: HotStuff Algorithm 1 safeNode, Algorithm 3: "if safeNode(b*, b*.justify) then
    // send voteMsg".
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const chain = new Chain(ring, n);
    const subject = bareReplica(n, 3, 'chained', ring) as ChainedHotStuff;
    const q = [0, 1, 2];
    const g = genesisQC(ring.crypto);
    const b1 = chain.block(0, 0, g, clientBatch(ring, 0, 0));
    const b2 = chain.block(0, 0, b1.qc(q), clientBatch(ring, 1, 0));
    const b3 = chain.block(0, 0, b2.qc(q), clientBatch(ring, 2, 0));
    for (const b of [b1, b2, b3]) stepOne(subject, 0, b.msg);
    expect(subject.lockedQCNow.k).toBe(1);
    // View 1 (leader 1) forks from genesis: the justify (genesis) is below the lock.
    const y = chain.block(1, 1, g, clientBatch(ring, 5, 0));
    const refused = stepOne(subject, 1, y.msg);
    expect(votesIn(refused)).toEqual([]);
    expect(subject.currentView).toBe(1);
    // A block on y whose justify, QC(y) of view 1, outranks the lock from view 0: voted for.
    const z = chain.block(1, 1, y.qc(q), clientBatch(ring, 6, 0));
    expect(votesIn(stepOne(subject, 1, z.msg))).toEqual([{ to: 1, phase: PHASE_GENERIC, k: 2, view: 1 }]);
    // A fork on b1 (extends the locked node) is safe even with the same-rank justify: a fresh
    // replica in the same state votes for it.
    const other = bareReplica(n, 3, 'chained', ring) as ChainedHotStuff;
    for (const b of [b1, b2, b3]) stepOne(other, 0, b.msg);
    const w = chain.block(1, 1, b1.qc(q), clientBatch(ring, 7, 0));
    expect(votesIn(stepOne(other, 1, w.msg))).toEqual([{ to: 1, phase: PHASE_GENERIC, k: 2, view: 1 }]);
  });

  it('rejects forged proposals and QCs', () => {
    // Reference: PoE paper §4(8): every message signed; a QC is nf signatures.
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const chain = new Chain(ring, n);
    const subject = bareReplica(n, 2, 'chained', ring);
    const b1 = chain.block(0, 0, genesisQC(ring.crypto), clientBatch(ring, 0, 0));
    stepOne(subject, 0, b1.msg);
    const short = chain.block(0, 0, b1.qc([0, 1]), clientBatch(ring, 1, 0));
    expect(rejectionsIn(stepOne(subject, 0, short.msg)).join()).toMatch(/2 signatures, want 3/);
    const notLeader = chain.block(1, 0, b1.qc([0, 1, 3]), clientBatch(ring, 1, 0));
    expect(rejectionsIn(stepOne(subject, 1, notLeader.msg)).join()).toMatch(/not the leader of view 0/);
    const good = chain.block(0, 0, b1.qc([0, 1, 3]), clientBatch(ring, 1, 0));
    const forged = { ...(good.msg as { signature: Buffer }), signature: Buffer.alloc(64, 1) } as M;
    expect(rejectionsIn(stepOne(subject, 0, forged))).toEqual(['proposal: bad signature']);
    expect(votesIn(stepOne(subject, 0, good.msg))).toHaveLength(1);
  });

  it('sends (n-1) proposals + (n-1) votes + n replies per block, plus a three-block no-op tail', () => {
    // Reference: HotStuff Algorithm 3 (one generic phase per block, votes to the next leader,
    // the same while the view lasts); PoE paper §4(8): HotStuff sends the fewest messages.
    for (const n of [4, 16]) {
      const m = 10;
      const world = new World({ n, mode: 'chained', clients: m, batches: m, viaCodec: true }).start();
      world.run();
      expect(world.client.done).toBe(true);
      // Three no-op blocks follow the last batch: the three-chain that commits it.
      world.expectAgreement(m);
      const blocks = m + 3;
      expect(world.sentByType.get(MSG_HS_PROPOSAL)).toBe(blocks * (n - 1));
      expect(world.sentByType.get(MSG_HS_VOTE)).toBe(blocks * (n - 1));
      expect(world.sentByType.get(MSG_HS_REPLY)).toBe(m * n);
      expect(world.replicaSends).toBe(blocks * 2 * (n - 1) + m * n);
      for (const id of world.live()) expect(world.chained(id).status().logEntries).toBeLessThanOrEqual(4);
    }
  });

  it('runs through the client policy; memory stays bounded over 2000 batches', () => {
    // Reference: HotStuff Algorithm 3; DESIGN.md "Protocols": checkpoints and GC.
    const world = new World({ n: 4, mode: 'chained', clients: 16, batches: 2000, checkpointIntervalK: 50, windowK: 100 }).start();
    let maxBlocks = 0;
    const origDeliver = world.deliver.bind(world);
    world.deliver = (e) => {
      origDeliver(e);
      maxBlocks = Math.max(maxBlocks, world.replicas[1]!.status().logEntries);
    };
    world.run();
    expect(world.client.done).toBe(true);
    const height = world.replicas[0]!.ledger.height;
    expect(height).toBeGreaterThanOrEqual(2000);
    world.expectAgreement(height);
    expect(maxBlocks).toBeLessThanOrEqual(5);
    for (const id of world.live()) {
      expect(world.chained(id).collectorCount).toBeLessThanOrEqual(4);
      expect(world.chained(id).clientTableSize).toBeLessThanOrEqual(16);
      expect(world.replicas[id]!.status().stableK).toBeGreaterThan(height - 150);
    }
  });

  it('a crashed leader is replaced: NEW-VIEW to the next leader, which proposes on the highest QC', () => {
    // Reference: HotStuff Algorithm 3 (pacemaker): "as a leader // r = leader(curView): wait
    // for (n − f) NEW-VIEW messages: genericQC ← ... highest"; PoE paper §3.1: the client
    // broadcasts after its timeout and backups forward to the primary.
    const world = new World({ n: 4, mode: 'chained', clients: 4, batches: 40, down: [0] }).start();
    world.run();
    expect(world.client.done).toBe(true);
    world.expectAgreement(world.replicas[1]!.ledger.height);
    for (const id of world.live()) expect(world.chained(id).currentView).toBe(1);
    const started = world.events.filter((e) => e.event.name === 'viewChangeStarted').map((e) => e.node);
    expect(new Set(started)).toEqual(new Set([1, 2, 3]));
    expect(world.sentByType.get(MSG_HS_NEW_VIEW)).toBe(2);
    // Replies of view 1 taught the client the new leader: later batches went to replica 1 first.
    expect(world.accepted.every((a) => a.view === 1)).toBe(true);
  });

  it('a leader accepts NEW-VIEW only with a valid signature and QC', () => {
    // Reference: PoE paper §4(8): every message signed.
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const leader1 = bareReplica(n, 1, 'chained', ring);
    const g = genesisQC(ring.crypto);
    const badQC: QuorumCert = { ...g, k: 3, sigs: [] };
    expect(rejectionsIn(stepOne(leader1, 2, makeNewView(ring.replicaSigners[2]!, 2, 1, badQC))).join()).toMatch(/0 signatures/);
    const forged = { ...makeNewView(ring.replicaSigners[3]!, 3, 1, g), replica: 2 };
    expect(rejectionsIn(stepOne(leader1, 2, forged))).toEqual(['new-view: bad signature']);
    // f+1 = 2 valid NEW-VIEWs make the leader join view 1; with its own that is nf = 3.
    stepOne(leader1, 2, makeNewView(ring.replicaSigners[2]!, 2, 1, g));
    const outs = stepOne(leader1, 3, makeNewView(ring.replicaSigners[3]!, 3, 1, g));
    const events = outs.flatMap((o) => (o.kind === 'event' ? [o.event.name] : []));
    expect(events).toEqual(['viewChangeStarted', 'viewEntered']);
    expect((leader1 as ChainedHotStuff).currentView).toBe(1);
  });

  /** The BLOCK-REQUESTs in `outs`, as (to, hash). */
  function blockRequestsIn(outs: ReplicaOutput<M>[]): { to: Peer; hash: string }[] {
    return outs.flatMap((o) => (o.kind === 'send' && o.msg.type === MSG_HS_BLOCK_REQUEST ? [{ to: o.to, hash: o.msg.hash.toString('hex') }] : []));
  }

  it('a replica that missed blocks fetches them, committed ones included, and then votes on the chain', () => {
    // Reference: HotStuff Algorithm 3 votes only on a block whose branch the replica holds
    // (safeNode walks b.parent); a replica that missed proposals (here Twins' partitions, issue
    // 13) fetches the missing nodes by hash, as libhotstuff does, from the replica that sent a
    // block built on them. The answer is the original PROPOSAL, checked against its leader's key.
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const chain = new Chain(ring, n);
    const q = [0, 1, 2];
    const b1 = chain.block(0, 0, genesisQC(ring.crypto), clientBatch(ring, 0, 0));
    const b2 = chain.block(0, 0, b1.qc(q), clientBatch(ring, 1, 0));
    const b3 = chain.block(0, 0, b2.qc(q), clientBatch(ring, 2, 0));
    const b4 = chain.block(0, 0, b3.qc(q), clientBatch(ring, 3, 0));
    const b5 = chain.block(0, 0, b4.qc(q), clientBatch(ring, 4, 0));
    // Replica 1 saw everything up to b5: it committed b1 and b2 (no block tree below b2 any more).
    const holder = bareReplica(n, 1, 'chained', ring) as ChainedHotStuff;
    for (const b of [b1, b2, b3, b4, b5]) stepOne(holder, 0, b.msg);
    expect(holder.ledger.height).toBe(2);
    // Replica 3 saw only b5, passed on by replica 1: it is not the leader's, so 3 takes it only as an answer.
    const subject = bareReplica(n, 3, 'chained', ring) as ChainedHotStuff;
    expect(rejectionsIn(stepOne(subject, 1, b5.msg)).join()).toMatch(/not the leader of view 0/);
    let outs = stepOne(subject, 0, b5.msg);
    expect(blockRequestsIn(outs)).toEqual([{ to: 0, hash: b4.hash.toString('hex') }]);
    // The leader does not answer (Twins: it moved on); replica 1 does, down to b1 (committed at 1).
    let requests = blockRequestsIn(outs).map((r) => ({ ...r, to: 1 }));
    const asked: number[] = [];
    let votes: ReturnType<typeof votesIn> = [];
    while (requests.length > 0) {
      const answers = requests.flatMap((r) =>
        stepOne(holder, 3, { type: MSG_HS_BLOCK_REQUEST, replica: 3, hash: Buffer.from(r.hash, 'hex') }).flatMap((o) =>
          o.kind === 'send' && o.to === 3 ? [o.msg] : [],
        ),
      );
      outs = answers.flatMap((m) => {
        if (m.type === MSG_HS_PROPOSAL) asked.push(m.block.height);
        return stepOne(subject, 1, m);
      });
      expect(rejectionsIn(outs)).toEqual([]);
      votes = [...votes, ...votesIn(outs)];
      requests = blockRequestsIn(outs);
    }
    expect(asked).toEqual([4, 3, 2, 1]);
    // With the branch in place the orphans are released in order: it votes for b1..b5 (view 0) and
    // commits what the three-chain b3-b4-b5 decides.
    expect(votes.map((v) => v.k)).toEqual([1, 2, 3, 4, 5]);
    expect(subject.ledger.height).toBe(2);
    expect(subject.ledger.headHash.equals(holder.ledger.headHash)).toBe(true);
  });

  it('a new leader proposes on the highest QC of the NEW-VIEWs, fetching its block first', () => {
    // Reference: HotStuff Algorithm 3 (pacemaker): the new leader waits for (n - f) NEW-VIEWs and
    // proposes on the highest QC's node. Proposing on its own lower QC instead is refused by
    // replicas locked above it (safeNode), and the view passes without progress.
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const chain = new Chain(ring, n);
    const q = [0, 2, 3];
    const g = genesisQC(ring.crypto);
    const b1 = chain.block(0, 0, g, clientBatch(ring, 0, 0));
    const b2 = chain.block(0, 0, b1.qc(q), clientBatch(ring, 1, 0));
    const leader1 = bareReplica(n, 1, 'chained', ring) as ChainedHotStuff;
    stepOne(leader1, 0, b1.msg);
    expect(leader1.highQCNow.k).toBe(0);
    const qc2 = b2.qc(q);
    stepOne(leader1, 2, makeNewView(ring.replicaSigners[2]!, 2, 1, qc2));
    const outs = stepOne(leader1, 3, makeNewView(ring.replicaSigners[3]!, 3, 1, qc2));
    expect(outs.filter((o) => o.kind === 'broadcast')).toEqual([]);
    // Asked of every sender of that QC (2, 3) and every signer of it (0, 2, 3): a Byzantine one need not answer.
    const requests = blockRequestsIn(outs);
    expect(new Set(requests.map((r) => r.to))).toEqual(new Set([0, 2, 3]));
    expect(new Set(requests.map((r) => r.hash))).toEqual(new Set([b2.hash.toString('hex')]));
    expect(leader1.highQCNow.k).toBe(2);
    // The block arrives (replica 2 passes on leader 0's proposal): the leader proposes on it at height 3.
    const proposed = stepOne(leader1, 2, b2.msg).flatMap((o) => (o.kind === 'broadcast' && o.msg.type === MSG_HS_PROPOSAL ? [o.msg.block] : []));
    expect(proposed.map((b) => ({ view: b.view, height: b.height, parent: b.parentHash.toString('hex') }))).toEqual([
      { view: 1, height: 3, parent: b2.hash.toString('hex') },
    ]);
  });
});

// ---------------------------------------------------------------------------------------

describe("hotstuff 'paper' certificate rule (PoE paper §4(8): no threshold signatures, no forwarded votes)", () => {
  it('backups take the leader-signed phase message without signatures; a certificate with signatures is refused', () => {
    // Reference: PoE paper §4(8): "we neither require HotStuff to use threshold signatures, nor
    // require its primaries to forward each replica's message to every other replica".
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const backup = bareReplica(n, 1, 'parallel', ring, { hotstuffRule: 'paper' });
    const request = clientBatch(ring, 0, 0);
    const d = requestDigest(ring.crypto, request);
    const leader = ring.replicaSigners[0]!;
    stepOne(backup, 0, makePrepare(ring.crypto, leader, 0, 0, 1, request));
    const forwarded = stepOne(backup, 0, makePhase(leader, MSG_HS_PRE_COMMIT, 0, makeQC(ring, [0, 2, 3], PHASE_PREPARE, 0, 1, d)));
    expect(votesIn(forwarded)).toEqual([]);
    expect(rejectionsIn(forwarded).join()).toMatch(/signatures under the paper rule/);
    const named: QuorumCert = { phase: PHASE_PREPARE, view: 0, k: 1, digest: d, sigs: [] };
    expect(votesIn(stepOne(backup, 0, makePhase(leader, MSG_HS_PRE_COMMIT, 0, named)))).toEqual([{ to: 0, phase: PHASE_PRE_COMMIT, k: 1, view: 0 }]);
  });

  it('what it gives up: a Byzantine leader alone makes a backup decide a batch no quorum voted for', () => {
    // HOTSTUFF_PAPER_RULE_SAFETY, shown: no vote of any other replica is involved.
    expect(HOTSTUFF_PAPER_RULE_SAFETY).toMatch(/Byzantine leader/);
    const n = 4;
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
    const backup = bareReplica(n, 2, 'parallel', ring, { hotstuffRule: 'paper' });
    const request = clientBatch(ring, 0, 0);
    const d = requestDigest(ring.crypto, request);
    const leader = ring.replicaSigners[0]!;
    stepOne(backup, 0, makePrepare(ring.crypto, leader, 0, 0, 1, request));
    for (const [type, phase] of [
      [MSG_HS_PRE_COMMIT, PHASE_PREPARE],
      [MSG_HS_COMMIT, PHASE_PRE_COMMIT],
      [MSG_HS_DECIDE, PHASE_COMMIT],
    ] as const) {
      stepOne(backup, 0, makePhase(leader, type, 0, { phase, view: 0, k: 1, digest: d, sigs: [] }));
    }
    expect(backup.ledger.height).toBe(1);
    // Under 'qc' the same messages decide nothing.
    const strict = bareReplica(n, 2, 'parallel', ring, { hotstuffRule: 'qc' });
    stepOne(strict, 0, makePrepare(ring.crypto, leader, 0, 0, 1, request));
    const refused = stepOne(strict, 0, makePhase(leader, MSG_HS_PRE_COMMIT, 0, { phase: PHASE_PREPARE, view: 0, k: 1, digest: d, sigs: [] }));
    expect(rejectionsIn(refused).join()).toMatch(/0 signatures, want 3/);
  });
});

describe('hotstuff slot owners (issue 10, item 2: slots go to the leaders with work)', () => {
  it('epochs 0 and 1 belong to the first leader; epoch e+2 to the home leaders of the batches executed in epoch e', () => {
    const owners = new SlotOwners([0, 1, 2, 3], 10);
    expect([1, 10, 11, 20].map((k) => owners.owner(k, 0))).toEqual([0, 0, 0, 0]);
    expect(owners.owner(21, 0)).toBeUndefined();
    const batch = (clientId: number): ClientRequest => ({ ...noopRequest(0), clientId, origin: 0, writes: [{ key: 1, value: Buffer.from([1]) }] });
    // Epoch 0 (slots 1-10) executes batches of clients 1 and 7: homes 1 and 3 (clientId mod 4).
    for (let k = 1; k <= 10; k++) {
      const completed = owners.onExecuted(k, k === 3 ? batch(1) : k === 6 ? batch(7) : noopRequest(k));
      expect(completed).toBe(k === 10);
    }
    expect(owners.knownEpoch).toBe(2);
    expect([21, 22, 23, 24].map((k) => owners.owner(k, 0))).toEqual([1, 3, 1, 3]);
    expect(owners.nextOwn(1, 3, 100)).toBe(22);
    expect(owners.nextOwn(1, 0, 100)).toBe(1);
    expect(owners.nextOwn(11, 2, 100)).toBeUndefined();
    // A client whose home owns no slot in the current epoch goes to one of its owners.
    expect(owners.proposerOf(2, 21)).toBe(1);
    expect(owners.proposerOf(3, 21)).toBe(3);
    expect(owners.proposerOf(5, 21)).toBe(1);
    // Epoch 1 with no client batch gives epoch 3 to every leader.
    for (let k = 11; k <= 20; k++) owners.onExecuted(k, noopRequest(k));
    expect([31, 32, 33, 34].map((k) => owners.owner(k, 0))).toEqual([2, 3, 0, 1]);
  });

  it('a stranded batch goes to a leader of the newest known epoch; a home leads the rest of an epoch or keeps nothing', () => {
    const owners = new SlotOwners([0, 1, 2, 3], 10);
    const batch = (clientId: number): ClientRequest => ({ ...noopRequest(0), clientId, origin: 0, writes: [{ key: 1, value: Buffer.from([1]) }] });
    // Epoch 0 executes batches of homes 1 and 3 only: epoch 2 (slots 21-30) is theirs, 1 at odd k.
    for (let k = 1; k <= 10; k++) owners.onExecuted(k, k === 3 ? batch(1) : k === 6 ? batch(7) : noopRequest(k));
    expect(owners.knownEpoch).toBe(2);
    // Newest known epoch 2: home 3 leads there, home 2 does not (client 2 goes to one that does).
    expect(owners.proposerInNewest(3)).toBe(3);
    expect(owners.proposerInNewest(2)).toBe(1);
    expect(owners.proposerInNewest(0)).toBe(1);
    // Leader 1 leads 21, 23, ..., 29 and leader 3 22, ..., 30: from 29 on, only 1 still leads a slot of epoch 2.
    expect(owners.leadsRestOfEpoch(29, 1)).toBe(true);
    expect(owners.leadsRestOfEpoch(30, 1)).toBe(false);
    expect(owners.leadsRestOfEpoch(30, 3)).toBe(true);
    expect(owners.leadsRestOfEpoch(21, 0)).toBe(false);
    // More owners than slots in an epoch (epoch length 2, four leaders): only those leading a slot are chosen.
    const short = new SlotOwners([0, 1, 2, 3], 2);
    for (let k = 1; k <= 2; k++) short.onExecuted(k, noopRequest(k));
    expect(short.knownEpoch).toBe(2);
    expect(short.leadingIn(2)).toEqual([0, 1]);
    expect([0, 1, 2, 3].map((c) => short.proposerInNewest(c))).toEqual([0, 1, 0, 1]);
  });

  it('slots dealt by load refuse a window too short for the no-stall argument; the round-robin ablation does not need it', () => {
    const ring = new KeyRing(createCrypto('sim'), KEY_SEED, 4, 1);
    // Checkpoint interval 100 gives epochs of 64: the window must hold 100 + 3 x 64 - 1 = 291 slots.
    expect(() => bareReplica(4, 0, 'parallel', ring, { hotstuffSlots: 'byLoad' })).toThrow(/window of 200 slots is below 291/);
    expect(() => bareReplica(4, 0, 'parallel', ring, { hotstuffSlots: 'roundRobin' })).not.toThrow();
  });

  it('a batch a leader queued, handed on and got back is proposed, not lost to its dedup record (seed 1)', () => {
    // n = 16, four clients per leader: leaders hand queued batches to the epoch's proposers and
    // back as the epochs change. Before the fix, a batch that came back met the leader's record
    // of having taken it, every retransmission met the same refusal, and the client waited
    // forever (1,499 of 1,500 batches, 17,999 client timeouts at seed 1).
    const seed = 1;
    const r = runSimulation({ protocol: 'hotstuff', replicas: 16, clients: 64, batches: 1500, seed });
    expect(r.acceptedBatches, `seed ${seed}`).toBe(1500);
    expect(r.clientTimeouts, `seed ${seed}`).toBe(0);
    expect(r.valid, `seed ${seed}: ${r.violations.join('; ')}`).toBe(true);
  });

  it('roundRobin (the form before) gives every leader every L-th slot in every epoch', () => {
    const owners = new SlotOwners([0, 1, 2, 3], 10, false);
    expect([1, 2, 3, 4, 1001].map((k) => owners.owner(k, 0))).toEqual([0, 1, 2, 3, 0]);
  });
});

describe('hotstuff codec', () => {
  const n = 4;
  const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
  const s = ring.replicaSigners;
  const r = clientBatch(ring, 3, 9);
  const d = requestDigest(ring.crypto, r);
  const qc = makeQC(ring, [0, 1, 2], PHASE_PREPARE, 2, 7, d);
  const block: HsBlock = {
    view: 1,
    height: 4,
    parentHash: Buffer.alloc(32, 3),
    request: r,
    justify: makeQC(ring, [1, 2, 3], PHASE_GENERIC, 1, 3, Buffer.alloc(32, 3)),
  };
  const reply: HsReply = {
    type: MSG_HS_REPLY,
    replica: 2,
    view: 0,
    k: 7,
    digest: d,
    clientId: 3,
    reqNo: 9,
    result: Buffer.alloc(32, 5),
    signature: Buffer.alloc(64, 6),
  };
  const samples: [string, M][] = [
    ['request', r],
    ['checkpoint', { type: MSG_CHECKPOINT, replica: 1, k: 600, stateDigest: Buffer.alloc(32, 9) }],
    ['prepare without justify', makePrepare(ring.crypto, s[0]!, 0, 0, 1, r)],
    ['prepare with justify', makePrepare(ring.crypto, s[2]!, 2, 3, 7, r, qc)],
    ['prepare of a no-op', makePrepare(ring.crypto, s[1]!, 1, 0, 2, noopRequest(2))],
    ['pre-commit', makePhase(s[2]!, MSG_HS_PRE_COMMIT, 2, qc)],
    ['commit', makePhase(s[2]!, MSG_HS_COMMIT, 2, { ...qc, phase: PHASE_PRE_COMMIT })],
    ['decide', makePhase(s[2]!, MSG_HS_DECIDE, 2, { ...qc, phase: PHASE_COMMIT })],
    ['vote', makeVote(s[1]!, 1, PHASE_COMMIT, 5, 8, d)],
    ['reply', reply],
    ['proposal', makeProposal(ring.crypto, s[1]!, 1, block).proposal],
    ['new-view', makeNewView(s[3]!, 3, 5, genesisQC(ring.crypto))],
    ['block-request', { type: MSG_HS_BLOCK_REQUEST, replica: 2, hash: Buffer.alloc(32, 7) }],
  ];

  it.each(samples)('round-trips a %s', (_what, msg) => {
    const frame = hotstuffCodec.encode(msg);
    const back = hotstuffCodec.decode(frame);
    expect(hotstuffCodec.encode(back).equals(frame)).toBe(true);
    expect(normalise(back)).toEqual(normalise(msg));
    // Every proper prefix is rejected with CodecError, and so is a trailing byte.
    for (let len = 0; len < frame.length; len += Math.max(1, Math.floor(frame.length / 40))) {
      expect(() => hotstuffCodec.decode(frame.subarray(0, len))).toThrow(CodecError);
    }
    expect(() => hotstuffCodec.decode(Buffer.concat([frame, Buffer.from([0])]))).toThrow(CodecError);
  });

  it('rejects a bad phase byte and an oversized signature list', () => {
    const frame = Buffer.from(hotstuffCodec.encode(makeVote(s[1]!, 1, PHASE_COMMIT, 5, 8, d)));
    frame[3] = 9; // type, replica u16, phase
    expect(() => hotstuffCodec.decode(frame)).toThrow(/phase 9/);
    const pc = Buffer.from(hotstuffCodec.encode(makePhase(s[2]!, MSG_HS_PRE_COMMIT, 2, qc)));
    // type(1) leader(2) view(8) k(8) qc.phase(1) qc.view(8) qc.k(8) qc.digest(32) count(4)
    pc.writeUInt32BE(0xffff_ffff, 1 + 2 + 8 + 8 + 1 + 8 + 8 + 32);
    expect(() => hotstuffCodec.decode(pc)).toThrow(CodecError);
  });

  it('a QC with a forged signature survives decoding but is rejected by the replica', () => {
    // Reference: PoE paper §4(8): a QC is verified signature by signature.
    const backup = bareReplica(n, 3, 'parallel', ring);
    const req = clientBatch(ring, 0, 0);
    const dd = requestDigest(ring.crypto, req);
    stepOne(backup, 0, hotstuffCodec.decode(hotstuffCodec.encode(makePrepare(ring.crypto, s[0]!, 0, 0, 1, req))));
    const frame = Buffer.from(hotstuffCodec.encode(makePhase(s[0]!, MSG_HS_PRE_COMMIT, 0, makeQC(ring, [0, 1, 2], PHASE_PREPARE, 0, 1, dd))));
    // Flip a byte of the last QC signature (the leader's own signature follows it).
    frame[frame.length - 64 - 10]! ^= 0xff;
    const outs = stepOne(backup, 0, hotstuffCodec.decode(frame));
    expect(votesIn(outs)).toEqual([]);
    expect(rejectionsIn(outs).join()).toMatch(/bad signature from 2/);
  });
});

/** Buffers as hex, so toEqual compares content and not views into frames. */
function normalise(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (Array.isArray(v)) return v.map(normalise);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  return v;
}

// ---------------------------------------------------------------------------------------

describe('hotstuff client policy', () => {
  const n = 4;
  const ring = new KeyRing(createCrypto('sim'), KEY_SEED, n, 1);
  const request = clientBatch(ring, 5, 2);
  const digest = requestDigest(ring.crypto, request);
  const signedReply = (replica: number, k: number, result: Buffer): HsReply =>
    makeReply(ring.replicaSigners[replica]!, replica, { view: 0, k, digest, clientId: 5, reqNo: 2, result });

  it('checks no reply signature by default: the transport authenticated the sender (issue 10)', () => {
    const policy = hotstuff.createClientPolicy({ n, origin: 0, extra: { keySeed: KEY_SEED, cryptoProvider: 'sim' } });
    const p: PendingRequest = { request, digest, firstSentMs: 0, timeouts: 0 };
    const res = Buffer.alloc(32, 1);
    expect(policy.onReply(p, 1, { ...signedReply(1, 7, res), signature: Buffer.alloc(64) }, 0)).toBeUndefined();
    expect(policy.onReply(p, 2, { ...signedReply(2, 7, res), signature: Buffer.alloc(64) }, 0)?.accepted?.k).toBe(7);
  });

  it('counts only replies that match in k and result, whatever their views (the smallest is taken)', () => {
    // Reference: PoE paper §4(8): f+1 matching responses; a reply for another k, or with another
    // result, does not match even when the other field does.
    const policy = hotstuff.createClientPolicy({ n, origin: 0, extra: {} });
    const p: PendingRequest = { request, digest, firstSentMs: 0, timeouts: 0 };
    const res = Buffer.alloc(32, 1);
    expect(policy.onReply(p, 1, signedReply(1, 7, res), 0)).toBeUndefined();
    expect(policy.onReply(p, 2, signedReply(2, 8, res), 0)).toBeUndefined();
    expect(policy.onReply(p, 3, signedReply(3, 7, Buffer.alloc(32, 2)), 0)).toBeUndefined();
    const ok = policy.onReply(p, 0, { ...signedReply(0, 7, Buffer.from(res)), view: 3 }, 0);
    expect(ok?.accepted).toEqual({ k: 7, view: 0, digest, path: 'f+1' });
  });

  it('accepts on f+1 matching replies from distinct replicas, with valid signatures (verifyReplies)', () => {
    // Reference: PoE paper §4(8) (PBFT and HotStuff clients wait for f+1 matching responses).
    const policy = hotstuff.createClientPolicy({ n, origin: 0, extra: { keySeed: KEY_SEED, cryptoProvider: 'sim', verifyReplies: true } });
    expect(policy.targets(request)).toEqual([5 % 4]);
    const p: PendingRequest = { request, digest, firstSentMs: 0, timeouts: 0 };
    const res = Buffer.alloc(32, 1);
    expect(policy.onReply(p, 1, signedReply(1, 7, res), 0)).toBeUndefined();
    // The same replica again, a different result, a forged signature, a wrong sender: no.
    expect(policy.onReply(p, 1, signedReply(1, 7, res), 0)).toBeUndefined();
    expect(policy.onReply(p, 2, signedReply(2, 7, Buffer.alloc(32, 2)), 0)).toBeUndefined();
    expect(policy.onReply(p, 3, { ...signedReply(3, 7, res), signature: Buffer.alloc(64) }, 0)).toBeUndefined();
    expect(policy.onReply(p, 0, signedReply(3, 7, res), 0)).toBeUndefined();
    const ok = policy.onReply(p, 0, signedReply(0, 7, res), 0);
    expect(ok?.accepted?.k).toBe(7);
    expect(policy.onTimeout(p, 0)).toEqual([{ kind: 'broadcast', msg: request }]);
    expect(policy.replyKey(signedReply(0, 7, res))).toEqual({ clientId: 5, reqNo: 2 });
  });

  it('targets the configured leaders, or the primary in chained mode', () => {
    const parallel = hotstuff.createClientPolicy({ n, origin: 0, extra: { leaders: '1,3' } });
    expect(parallel.targets(clientBatch(ring, 0, 0))).toEqual([1]);
    expect(parallel.targets(clientBatch(ring, 1, 0))).toEqual([3]);
    const chained = hotstuff.createClientPolicy({ n, origin: 0, extra: { mode: 'chained' } });
    expect(chained.targets(clientBatch(ring, 1, 0))).toEqual([0]);
    expect(() => hotstuff.createClientPolicy({ n, origin: 0, extra: { mode: 'pipelined' } })).toThrow(RangeError);
  });
});

// ---------------------------------------------------------------------------------------

describe('hotstuff with real Ed25519 signatures (node crypto)', () => {
  it.each(['parallel', 'chained'] as const)('%s mode runs and agrees', (mode) => {
    // Reference: PoE paper §4(8): "HotStuff needs each of its replicas to sign every message
    // using digital signatures".
    const world = new World({ n: 4, mode, crypto: 'node', clients: 4, batches: 24, viaCodec: true, checkpointIntervalK: 10, windowK: 20 }).start();
    world.run();
    expect(world.client.done).toBe(true);
    world.expectAgreement(world.replicas[0]!.ledger.height);
    for (let id = 0; id < 4; id++) expect(world.rejections(id)).toEqual([]);
    // A vote signed by another replica's real key fails.
    const ring = world.ring;
    const forged = { ...makeVote(ring.replicaSigners[1]!, 1, PHASE_PREPARE, 0, 1, Buffer.alloc(32)), replica: 2 };
    expect(ring.replicaVerifiers[2]!.verify(voteBytes(PHASE_PREPARE, 0, 1, Buffer.alloc(32)), forged.signature)).toBe(false);
    expect(ring.replicaVerifiers[1]!.verify(voteBytes(PHASE_PREPARE, 0, 1, Buffer.alloc(32)), forged.signature)).toBe(true);
  });

  it('rejects a QC whose signature is forged, with real keys', () => {
    const n = 4;
    const ring = new KeyRing(createCrypto('node'), KEY_SEED, n, 1);
    const backup = bareReplica(n, 1, 'parallel', ring);
    const req = clientBatch(ring, 0, 0);
    const d = requestDigest(ring.crypto, req);
    stepOne(backup, 0, makePrepare(ring.crypto, ring.replicaSigners[0]!, 0, 0, 1, req));
    const qc = makeQC(ring, [0, 2, 3], PHASE_PREPARE, 0, 1, d);
    const sig = Buffer.from(qc.sigs[1]!.signature);
    sig[0]! ^= 1;
    const forgedQC: QuorumCert = { ...qc, sigs: [qc.sigs[0]!, { replica: 2, signature: sig }, qc.sigs[2]!] };
    const outs = stepOne(backup, 0, makePhase(ring.replicaSigners[0]!, MSG_HS_PRE_COMMIT, 0, forgedQC));
    expect(votesIn(outs)).toEqual([]);
    expect(rejectionsIn(outs).join()).toMatch(/bad signature from 2/);
    expect(votesIn(stepOne(backup, 0, makePhase(ring.replicaSigners[0]!, MSG_HS_PRE_COMMIT, 0, qc)))).toHaveLength(1);
  });
});
