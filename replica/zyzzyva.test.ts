/**
 * Zyzzyva core and client policy, driven directly: a tiny FIFO delivery loop in virtual time
 * stands in for the simulator (infra/sim). Crypto is the 'sim' provider for speed, except in
 * the one test that runs with real Ed25519 ('node').
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ClientCore } from '../client/core.js';
import { CountingCrypto } from './crypto-counter.js';
import { createCrypto, type CryptoProviderName } from './crypto.js';
import { KeyRing } from './keys.js';
import { makeRequest, MSG_CHECKPOINT, MSG_REQUEST, requestDigest, type ClientRequest } from './messages.js';
import type { PendingRequest } from './protocol.js';
import type { AcceptedBatch, ClientOutput, Peer, ReplicaEvent, ReplicaOutput } from './types.js';
import { clientPeer, isClientPeer, quorums } from './types.js';
import { CodecError } from './wire.js';
import {
  GENESIS_HISTORY,
  MSG_COMMIT,
  MSG_LOCAL_COMMIT,
  MSG_ORDER_REQ,
  MSG_SPEC_RESPONSE,
  specSignedBytes,
  zyzzyva,
  ZyzzyvaClientPolicy,
  type ZyzzyvaReplica,
  type Commit,
  type LocalCommit,
  type OrderReq,
  type SpecResponse,
  type ZyzzyvaMessage,
} from './zyzzyva.js';

const KEY_SEED = 'zyzzyva-test';
const ORIGIN = 0;
const CLIENT = clientPeer(ORIGIN);

interface SetupOptions {
  readonly n: number;
  readonly provider?: CryptoProviderName;
  readonly checkpointIntervalK?: number;
  readonly windowK?: number;
}

function setup(o: SetupOptions) {
  const provider = o.provider ?? 'sim';
  const ring = new KeyRing(createCrypto(provider), KEY_SEED, o.n, 1);
  const replicas = Array.from(
    { length: o.n },
    (_, id) =>
      zyzzyva.createReplica(
        {
          id,
          n: o.n,
          checkpointIntervalK: o.checkpointIntervalK ?? 1000,
          windowK: o.windowK ?? 2000,
          records: 1000,
          valueBytes: 16,
          viewChangeTimeoutMs: 2000,
        },
        ring.replicaDeps(id),
      ) as ZyzzyvaReplica,
  );
  const policy = () => zyzzyva.createClientPolicy({ n: o.n, origin: ORIGIN, extra: { keySeed: KEY_SEED, cryptoProvider: provider } }) as ZyzzyvaClientPolicy;
  return { ring, replicas, policy, signer: ring.clientSigner(ORIGIN) };
}

let valueCounter = 0;
function request(signer: ReturnType<KeyRing['clientSigner']>, clientId: number, reqNo: number): ClientRequest {
  const value = Buffer.alloc(16);
  value.writeUInt32BE(valueCounter++, 0);
  return makeRequest(signer, ORIGIN, clientId, reqNo, [{ key: (clientId * 7 + reqNo) % 1000, value }]);
}

const sent = (outs: readonly ReplicaOutput<ZyzzyvaMessage>[], type: number) =>
  outs.flatMap((o) => ((o.kind === 'send' || o.kind === 'broadcast') && o.msg.type === type ? [o] : []));
const events = (outs: readonly ReplicaOutput<ZyzzyvaMessage>[], name: ReplicaEvent['name']) =>
  outs.flatMap((o) => (o.kind === 'event' && o.event.name === name ? [o.event] : []));

/**
 * Orders one request by hand: the primary (replica 0) gets it from the client, every backup
 * gets the ORDER-REQ. Returns the ORDER-REQ and every replica's SPEC-RESPONSE, in replica order.
 */
function orderOne(replicas: ZyzzyvaReplica[], req: ClientRequest): { order: OrderReq; specs: SpecResponse[] } {
  const outs = replicas[0]!.step({ kind: 'message', from: CLIENT, msg: req }, 0);
  const order = sent(outs, MSG_ORDER_REQ)[0]!.msg as OrderReq;
  const specs = [sent(outs, MSG_SPEC_RESPONSE)[0]!.msg as SpecResponse];
  for (const r of replicas.slice(1)) {
    const o = r.step({ kind: 'message', from: 0, msg: order }, 0);
    specs.push(sent(o, MSG_SPEC_RESPONSE)[0]!.msg as SpecResponse);
  }
  return { order, specs };
}

const pending = (crypto: ReturnType<typeof createCrypto>, req: ClientRequest): PendingRequest => ({
  request: req,
  digest: requestDigest(crypto, req),
  firstSentMs: 0,
  timeouts: 0,
});

// ---------------------------------------------------------------------------------------
// A tiny delivery loop: FIFO, zero latency, virtual time advances only to fire client timers.

interface ClusterOptions extends SetupOptions {
  readonly clients?: number;
  readonly batches: number;
  readonly silent?: readonly number[];
  readonly roundTrip?: boolean;
  readonly requestTimeoutMs?: number;
  /** Called every `checkEvery` deliveries (bounded-memory checks). */
  readonly onCheck?: (replicas: ZyzzyvaReplica[]) => void;
}

function runCluster(o: ClusterOptions) {
  const { ring, replicas, policy } = setup(o);
  const silent = new Set(o.silent ?? []);
  let keyNo = 0;
  const client = new ClientCore<ZyzzyvaMessage>(
    {
      origin: ORIGIN,
      clients: o.clients ?? 1,
      clientIdBase: 0,
      batchSize: 1,
      valueBytes: 16,
      requestTimeoutMs: o.requestTimeoutMs ?? 500,
      maxBatches: o.batches,
    },
    { crypto: ring.crypto, signer: ring.clientSigner(ORIGIN), keys: { nextKey: () => keyNo++ % 1000 }, policy: policy() },
  );
  const queue: { from: Peer; to: Peer; msg: ZyzzyvaMessage }[] = [];
  let head = 0;
  const timers = new Map<string, number>();
  const replicaSent = new Map<number, number>();
  const clientSent = new Map<number, number>();
  const accepted: AcceptedBatch[] = [];
  const rejected: ReplicaEvent[] = [];
  let timeouts = 0;
  let nowMs = 0;
  const count = (m: Map<number, number>, type: number, by: number) => m.set(type, (m.get(type) ?? 0) + by);

  const enqueue = (from: Peer, to: Peer, msg: ZyzzyvaMessage) => {
    const wire = o.roundTrip ? zyzzyva.codec.decode(Buffer.from(zyzzyva.codec.encode(msg))) : msg;
    queue.push({ from, to, msg: wire });
  };
  const onReplica = (id: number, outs: ReplicaOutput<ZyzzyvaMessage>[]) => {
    for (const out of outs) {
      if (out.kind === 'send') {
        expect(out.to, 'replicas never send to themselves').not.toBe(id);
        count(replicaSent, out.msg.type, 1);
        enqueue(id, out.to, out.msg);
      } else if (out.kind === 'broadcast') {
        count(replicaSent, out.msg.type, o.n - 1);
        for (let j = 0; j < o.n; j++) if (j !== id) enqueue(id, j, out.msg);
      } else if (out.kind === 'event' && out.event.name === 'rejected') {
        rejected.push(out.event);
      }
    }
  };
  const onClient = (outs: ClientOutput<ZyzzyvaMessage>[]) => {
    for (const out of outs) {
      if (out.kind === 'send') {
        count(clientSent, out.msg.type, 1);
        enqueue(CLIENT, out.to, out.msg);
      } else if (out.kind === 'broadcast') {
        count(clientSent, out.msg.type, o.n);
        for (let j = 0; j < o.n; j++) enqueue(CLIENT, j, out.msg);
      } else if (out.kind === 'setTimer') timers.set(out.name, nowMs + out.afterMs);
      else if (out.kind === 'cancelTimer') timers.delete(out.name);
      else if (out.kind === 'accepted') accepted.push(out.batch);
      else if (out.kind === 'event' && out.event.name === 'timeout') timeouts++;
    }
  };

  onClient(client.step({ kind: 'start' }, nowMs));
  let deliveries = 0;
  // Deliver until the client is done and the network is quiet (checkpoints still in flight).
  for (;;) {
    if (head < queue.length) {
      const { from, to, msg } = queue[head++]!;
      if (head > 4096) {
        queue.splice(0, head);
        head = 0;
      }
      deliveries++;
      if (o.onCheck && deliveries % 1000 === 0) o.onCheck(replicas);
      if (isClientPeer(to)) onClient(client.step({ kind: 'message', from, msg }, nowMs));
      else if (!silent.has(to)) onReplica(to, replicas[to]!.step({ kind: 'message', from, msg }, nowMs));
      continue;
    }
    if (client.done || timers.size === 0) break;
    const [name, atMs] = [...timers].reduce((a, b) => (b[1] < a[1] ? b : a));
    timers.delete(name);
    nowMs = Math.max(nowMs, atMs);
    onClient(client.step({ kind: 'timer', name }, nowMs));
  }
  return { replicas, client, accepted, replicaSent, clientSent, rejected, timeouts, nowMs };
}

// ---------------------------------------------------------------------------------------

describe('zyzzyva codec', () => {
  it('round-trips every message type and rejects truncated or padded frames', () => {
    const { replicas, signer } = setup({ n: 4 });
    const req = request(signer, 1, 0);
    const { order, specs } = orderOne(replicas, req);
    const s = specs[0]!;
    const commit: Commit = {
      type: MSG_COMMIT,
      clientId: 1,
      reqNo: 0,
      cert: {
        view: s.view,
        k: s.k,
        history: s.history,
        digest: s.digest,
        result: s.result,
        signers: specs.slice(0, 3).map((x) => ({ replica: x.replica, signature: x.signature })),
      },
    };
    const lcOut = replicas[1]!.step({ kind: 'message', from: CLIENT, msg: commit }, 0);
    const lc = sent(lcOut, MSG_LOCAL_COMMIT)[0]!.msg as LocalCommit;
    const checkpoint: ZyzzyvaMessage = { type: MSG_CHECKPOINT, replica: 2, k: 600, stateDigest: Buffer.alloc(32, 7) };
    const all: ZyzzyvaMessage[] = [req, order, s, commit, lc, checkpoint];
    expect(all.map((m) => m.type)).toEqual([MSG_REQUEST, MSG_ORDER_REQ, MSG_SPEC_RESPONSE, MSG_COMMIT, MSG_LOCAL_COMMIT, MSG_CHECKPOINT]);
    for (const m of all) {
      const frame = Buffer.from(zyzzyva.codec.encode(m));
      const back = zyzzyva.codec.decode(frame);
      expect(Buffer.from(zyzzyva.codec.encode(back)).equals(frame), `type ${m.type}`).toBe(true);
      expect(back.type).toBe(m.type);
      for (const cut of [1, 2, frame.length >> 1, frame.length - 1]) {
        expect(() => zyzzyva.codec.decode(frame.subarray(0, cut)), `type ${m.type} cut at ${cut}`).toThrow(CodecError);
      }
      expect(() => zyzzyva.codec.decode(Buffer.concat([frame, Buffer.from([0])]))).toThrow(CodecError);
    }
    // Field by field for the Zyzzyva types.
    const o2 = zyzzyva.codec.decode(Buffer.from(zyzzyva.codec.encode(order))) as OrderReq;
    expect([o2.view, o2.k, o2.history.equals(order.history), o2.digest.equals(order.digest), o2.request.body.equals(req.body)]).toEqual([
      0,
      1,
      true,
      true,
      true,
    ]);
    const c2 = zyzzyva.codec.decode(Buffer.from(zyzzyva.codec.encode(commit))) as Commit;
    expect(c2.cert.signers.map((x) => x.replica)).toEqual([0, 1, 2]);
    expect(c2.cert.signers[2]!.signature.equals(specs[2]!.signature)).toBe(true);
    const s2 = zyzzyva.codec.decode(Buffer.from(zyzzyva.codec.encode(s))) as SpecResponse;
    expect([s2.clientId, s2.reqNo, s2.replica, s2.result.equals(s.result), s2.signature.equals(s.signature)]).toEqual([1, 0, 0, true, true]);
    expect(() => zyzzyva.codec.decode(Buffer.from([39]))).toThrow(CodecError);
  });
});

describe('zyzzyva replicas', () => {
  it('chains the history hash h_k = SHA-256(h_{k-1} || d) and every replica executes the same history', () => {
    // Reference: Zyzzyva (Kotla et al. 2007) §3.2: ORDER-REQ carries h_n = H(h_{n-1}, d).
    const { replicas, signer } = setup({ n: 4 });
    const orders: OrderReq[] = [];
    for (let i = 0; i < 5; i++) orders.push(orderOne(replicas, request(signer, i, 0)).order);
    let h = GENESIS_HISTORY;
    for (const o of orders) {
      h = createHash('sha256').update(h).update(o.digest).digest();
      expect(o.history.equals(h), `h_${o.k}`).toBe(true);
      for (const r of replicas) expect(r.historyAt(o.k)!.equals(h), `replica ${r.id} h_${o.k}`).toBe(true);
    }
    expect(orders.map((o) => o.k)).toEqual([1, 2, 3, 4, 5]);
    for (const r of replicas) expect(r.ledger.headHash.equals(replicas[0]!.ledger.headHash)).toBe(true);
  });

  it('executes in order: out-of-order ORDER-REQs wait, a broken chain or a non-primary sender is rejected', () => {
    // Reference: Zyzzyva §3.2 step 3: a replica accepts ORDER-REQ only in sequence-number order,
    // with h_k = H(h_{k-1}, d); PoE paper §4(8): backups execute at once.
    const { replicas, signer } = setup({ n: 4, windowK: 10, checkpointIntervalK: 5 });
    const [primary, backup] = [replicas[0]!, replicas[1]!];
    const orders: OrderReq[] = [];
    for (let i = 0; i < 3; i++) {
      const outs = primary.step({ kind: 'message', from: CLIENT, msg: request(signer, i, 0) }, 0);
      orders.push(sent(outs, MSG_ORDER_REQ)[0]!.msg as OrderReq);
    }
    const executed: number[] = [];
    const deliver = (o: OrderReq, from = 0) => {
      const outs = backup.step({ kind: 'message', from, msg: o }, 0);
      executed.push(...events(outs, 'executed').map((e) => (e as { k: number }).k));
      return outs;
    };
    deliver(orders[2]!);
    deliver(orders[1]!);
    expect(executed).toEqual([]);
    expect(backup.status().executedK).toBe(0);
    expect(events(deliver(orders[0]!, 2), 'rejected')).toHaveLength(1); // not from the primary
    const outs = deliver(orders[0]!);
    expect(executed).toEqual([1, 2, 3]);
    expect(sent(outs, MSG_SPEC_RESPONSE).map((s) => (s.msg as SpecResponse).k)).toEqual([1, 2, 3]);

    // k=4 whose h does not extend h_3 is rejected and not executed.
    const next = sent(primary.step({ kind: 'message', from: CLIENT, msg: request(signer, 9, 0) }, 0), MSG_ORDER_REQ)[0]!.msg as OrderReq;
    const forged: OrderReq = { ...next, history: Buffer.alloc(32, 1) };
    expect(events(deliver(forged), 'rejected')).toHaveLength(1);
    expect(backup.status().executedK).toBe(3);
    // A request whose client signature does not verify is rejected.
    const badReq = { ...next.request, signature: Buffer.alloc(64, 3) };
    expect(events(deliver({ ...next, request: badReq }), 'rejected')).toHaveLength(1);
    // Beyond the window (stableK 0 + windowK 10).
    expect(events(deliver({ ...next, k: 11 }), 'rejected')).toHaveLength(1);
    deliver(next);
    expect(backup.status().executedK).toBe(4);
  });

  it('deduplicates by (clientId, reqNo): cached replies are re-sent, nothing executes twice; backups forward', () => {
    // Reference: Zyzzyva §3.2 case 3 (client retransmits to all: replicas answer from their
    // cache or forward to the primary); DESIGN.md "requests carry (client id, request number)".
    const { replicas, signer } = setup({ n: 4 });
    const req = request(signer, 5, 0);
    const { order, specs } = orderOne(replicas, req);
    const [primary, backup] = [replicas[0]!, replicas[1]!];

    const again = primary.step({ kind: 'message', from: CLIENT, msg: req }, 0);
    expect(sent(again, MSG_ORDER_REQ)).toHaveLength(0);
    expect(sent(again, MSG_SPEC_RESPONSE).map((o) => o.msg)).toEqual([specs[0]]);
    expect(primary.status().executedK).toBe(1);

    // A backup that executed it answers from its cache.
    const cached = backup.step({ kind: 'message', from: CLIENT, msg: req }, 0);
    expect(cached).toEqual([{ kind: 'send', to: CLIENT, msg: specs[1] }]);
    // A backup forwarding an ordered request gets the ORDER-REQ again (it missed it).
    const forwarded = primary.step({ kind: 'message', from: 2, msg: req }, 0);
    expect(forwarded).toContainEqual({ kind: 'send', to: 2, msg: order });

    // A fresh request sent to a backup goes to the primary, unexecuted.
    const fresh = request(signer, 6, 0);
    expect(backup.step({ kind: 'message', from: CLIENT, msg: fresh }, 0)).toEqual([{ kind: 'send', to: 0, msg: fresh }]);
    expect(backup.status().executedK).toBe(1);

    // An older request number of the same client is not ordered again.
    orderOne(replicas, request(signer, 5, 1));
    const stale = primary.step({ kind: 'message', from: CLIENT, msg: req }, 0);
    expect(sent(stale, MSG_ORDER_REQ)).toHaveLength(0);
    expect(events(stale, 'rejected')).toHaveLength(1);
    expect(primary.status().executedK).toBe(2);
  });

  it('answers COMMIT with LOCAL-COMMIT only for nf valid distinct signatures over its own history', () => {
    // Reference: Zyzzyva §3.2 case 2 (two-phase commit): the replica checks CC and that its
    // history matches, then sends LOCAL-COMMIT; PoE paper §4(8): messages to clients are signed.
    const { ring, replicas, signer } = setup({ n: 4 });
    const { specs } = orderOne(replicas, request(signer, 1, 0));
    const s = specs[0]!;
    const sig = (i: number) => ({ replica: i, signature: specs[i]!.signature });
    const commitWith = (signers: { replica: number; signature: Buffer }[], history = s.history): Commit => ({
      type: MSG_COMMIT,
      clientId: 1,
      reqNo: 0,
      cert: { view: 0, k: 1, history, digest: s.digest, result: s.result, signers },
    });
    const r = replicas[2]!;
    const answer = (c: Commit) => r.step({ kind: 'message', from: CLIENT, msg: c }, 0);

    expect(sent(answer(commitWith([sig(0), sig(1)])), MSG_LOCAL_COMMIT)).toHaveLength(0); // nf - 1
    expect(sent(answer(commitWith([sig(0), sig(1), sig(1)])), MSG_LOCAL_COMMIT)).toHaveLength(0); // repeated signer
    expect(sent(answer(commitWith([sig(0), sig(1), { replica: 3, signature: specs[2]!.signature }])), MSG_LOCAL_COMMIT)).toHaveLength(0); // wrong key
    const forged = ring.replicaSigners[0]!.sign(specSignedBytes({ ...s, history: Buffer.alloc(32, 9) }));
    expect(sent(answer(commitWith([sig(0), sig(1), { replica: 0, signature: forged }])), MSG_LOCAL_COMMIT)).toHaveLength(0);
    // Validly signed, but not this replica's history: no LOCAL-COMMIT.
    const other = Buffer.alloc(32, 9);
    const signedOther = [0, 1, 2].map((i) => ({ replica: i, signature: ring.replicaSigners[i]!.sign(specSignedBytes({ ...s, history: other })) }));
    expect(sent(answer(commitWith(signedOther, other)), MSG_LOCAL_COMMIT)).toHaveLength(0);
    expect(r.committedK).toBe(0);

    const ok = sent(answer(commitWith([sig(0), sig(1), sig(3)])), MSG_LOCAL_COMMIT);
    expect(ok).toHaveLength(1);
    expect(ok[0]).toMatchObject({ to: CLIENT, msg: { k: 1, replica: 2, clientId: 1, reqNo: 0 } });
    expect(r.committedK).toBe(1);
  });

  it('counts exactly (n-1) ORDER-REQ + n SPEC-RESPONSE per fault-free batch, checkpoints apart (n = 4, 16)', () => {
    // Reference: PoE paper §4(8): the primary orders, each replica executes and replies
    // directly; Zyzzyva §3.2 case 1. Checkpoints: one broadcast per replica per interval.
    for (const n of [4, 16]) {
      const batches = 30;
      const run = runCluster({ n, batches, clients: 3, checkpointIntervalK: 10, windowK: 20, roundTrip: true });
      expect(run.accepted).toHaveLength(batches);
      expect(new Set(run.accepted.map((a) => a.path))).toEqual(new Set(['fast']));
      expect(run.timeouts).toBe(0);
      expect(run.rejected).toEqual([]);
      expect(Object.fromEntries(run.replicaSent)).toEqual({
        [MSG_ORDER_REQ]: (n - 1) * batches,
        [MSG_SPEC_RESPONSE]: n * batches,
        [MSG_CHECKPOINT]: n * (n - 1) * (batches / 10),
      });
      expect(Object.fromEntries(run.clientSent)).toEqual({ [MSG_REQUEST]: batches });
      for (const r of run.replicas) {
        expect(r.ledger.headHash.equals(run.replicas[0]!.ledger.headHash), `n=${n} replica ${r.id}`).toBe(true);
        expect(r.status().stableK).toBe(30);
      }
    }
  });

  it('keeps memory bounded over 5000 batches: stable checkpoints garbage-collect log, history and undo records', () => {
    // Reference: DESIGN.md "a checkpoint every checkpointInterval ... stable at nf matching, then
    // garbage collection"; Zyzzyva §3.1 (checkpoint protocol).
    const checkpointIntervalK = 50;
    const windowK = 100;
    let maxLog = 0;
    let maxUndo = 0;
    const run = runCluster({
      n: 4,
      batches: 5000,
      clients: 8,
      checkpointIntervalK,
      windowK,
      onCheck: (rs) => {
        for (const r of rs) {
          maxLog = Math.max(maxLog, r.status().logEntries);
          maxUndo = Math.max(maxUndo, r.store.undoDepth);
        }
      },
    });
    expect(run.accepted).toHaveLength(5000);
    expect(maxLog).toBeGreaterThan(0);
    expect(maxLog).toBeLessThanOrEqual(windowK + 8);
    expect(maxUndo).toBeLessThanOrEqual(windowK);
    for (const r of run.replicas) {
      expect(r.status().executedK).toBe(5000);
      expect(r.status().stableK).toBe(5000);
      expect(r.status().logEntries).toBe(0);
      expect(r.store.undoDepth).toBe(0);
      expect(r.historyAt(4999)).toBeUndefined();
      expect(r.historyAt(5000)).toBeDefined();
      expect(r.ledger.headHash.equals(run.replicas[0]!.ledger.headHash)).toBe(true);
    }
  });
});

describe('zyzzyva client policy', () => {
  it('accepts on n matching SPEC-RESPONSEs, not on n-1; relabelled or mismatched ones do not count', () => {
    // Reference: Zyzzyva §3.2 case 1 (fast path: 3f+1 = n matching responses); PoE paper §4(8):
    // "This forces the client to wait for identical responses from all n replicas".
    const { ring, replicas, policy, signer } = setup({ n: 4 });
    const req = request(signer, 3, 0);
    const { specs } = orderOne(replicas, req);
    const pol = policy();
    expect(pol.targets()).toEqual([0]);
    expect(pol.replyKey(specs[0]!)).toEqual({ clientId: 3, reqNo: 0 });
    const p = pending(ring.crypto, req);
    for (let i = 0; i < 3; i++) expect(pol.onReply(p, i, specs[i]!, 0)?.accepted, `after ${i + 1}`).toBeUndefined();
    // Repeats from replicas already counted, and a response relabelled as another replica's.
    expect(pol.onReply(p, 2, specs[2]!, 0)).toBeUndefined();
    expect(pol.onReply(p, 1, { ...specs[2]!, replica: 3 }, 0)).toBeUndefined();
    // Replica 3's response with a different result, correctly signed: does not match.
    const different = { ...specs[3]!, result: Buffer.alloc(32, 5) };
    const mismatched = { ...different, signature: ring.replicaSigners[3]!.sign(specSignedBytes(different)) };
    const q = pending(ring.crypto, req);
    for (let i = 0; i < 3; i++) pol.onReply(q, i, specs[i]!, 0);
    expect(pol.onReply(q, 3, mismatched, 0)?.accepted).toBeUndefined();
    // The fast path checks no signature (the transport's MAC authenticated the sender): a
    // matching response with a garbage signature completes it (issue 10, item 3).
    expect(pol.onReply(p, 3, { ...specs[3]!, signature: Buffer.alloc(64, 1) }, 0)?.accepted).toEqual({ k: 1, view: 0, digest: specs[3]!.digest, path: 'fast' });
  });

  it("verifies no reply signature on the fast path and exactly the certificate's nf on the slow path", () => {
    // Reference: Zyzzyva §3.2 case 1 and case 2: only the commit certificate carries the
    // replicas' signatures to third parties; issue 10, item 3.
    for (const n of [4, 16]) {
      const { nf } = quorums(n);
      const { ring, replicas, signer } = setup({ n });
      const counting = new CountingCrypto(createCrypto('sim'));
      const pol = new ZyzzyvaClientPolicy({ n, origin: ORIGIN, extra: { keySeed: KEY_SEED, cryptoProvider: 'sim' } }, counting);
      const fast = request(signer, 5, 0);
      const { specs } = orderOne(replicas, fast);
      counting.reset();
      const p = pending(ring.crypto, fast);
      for (let i = 0; i < n; i++) pol.onReply(p, i, specs[i]!, 0);
      expect(counting.reset().verifies, `n=${n}: fast path`).toBe(0);

      const slow = request(signer, 6, 0);
      const { specs: slowSpecs } = orderOne(replicas, slow);
      const q = pending(ring.crypto, slow);
      for (let i = 0; i < n - 1; i++) pol.onReply(q, i, slowSpecs[i]!, 0);
      expect(counting.reset().verifies, `n=${n}: replies before the timeout`).toBe(0);
      q.timeouts++;
      const out = pol.onTimeout(q, 500);
      const commit = (out[0] as { msg: ZyzzyvaMessage }).msg as Commit;
      expect(commit.type).toBe(MSG_COMMIT);
      expect(commit.cert.signers).toHaveLength(nf);
      expect(counting.reset().verifies, `n=${n}: building the commit certificate`).toBe(nf);
      const lcs = replicas.slice(0, nf).map((r) => sent(r.step({ kind: 'message', from: CLIENT, msg: commit }, 0), MSG_LOCAL_COMMIT)[0]!.msg as LocalCommit);
      let accepted: unknown;
      for (let i = 0; i < nf; i++) accepted = pol.onReply(q, i, lcs[i]!, 0)?.accepted ?? accepted;
      expect(accepted).toBeDefined();
      expect(counting.reset().verifies, `n=${n}: LOCAL-COMMITs`).toBe(0);
    }
  });

  it('after a timeout: COMMIT with nf matching responses, request broadcast with fewer; accepts on nf LOCAL-COMMITs, not nf-1', () => {
    // Reference: Zyzzyva §3.2 case 2 (two-phase commit: 2f+1 = nf matching responses form a
    // commit certificate; nf LOCAL-COMMITs complete) and case 3 (fewer: resend to all).
    const { ring, replicas, policy, signer } = setup({ n: 4 });
    const { nf } = quorums(4);
    const req = request(signer, 4, 0);
    const { specs } = orderOne(replicas, req);
    const pol = policy();

    const few = pending(ring.crypto, req);
    pol.onReply(few, 0, specs[0]!, 0);
    pol.onReply(few, 1, specs[1]!, 0);
    expect(pol.onTimeout(few, 500)).toEqual([{ kind: 'broadcast', msg: req }]);

    const p = pending(ring.crypto, req);
    for (let i = 0; i < nf; i++) expect(pol.onReply(p, i, specs[i]!, 0)).toBeUndefined();
    p.timeouts++;
    const sentOut = pol.onTimeout(p, 500);
    expect(sentOut).toHaveLength(1);
    expect(sentOut[0]!.kind).toBe('broadcast');
    const commit = (sentOut[0] as { msg: ZyzzyvaMessage }).msg as Commit;
    expect(commit.type).toBe(MSG_COMMIT);
    expect(commit.cert.signers.map((s) => s.replica)).toEqual([0, 1, 2]);

    const lcs = replicas.slice(0, nf).map((r) => sent(r.step({ kind: 'message', from: CLIENT, msg: commit }, 0), MSG_LOCAL_COMMIT)[0]!.msg as LocalCommit);
    // A LOCAL-COMMIT relabelled as another replica's counts for nothing (the transport names
    // the sender; the client checks no LOCAL-COMMIT signature, issue 10 item 3).
    expect(pol.onReply(p, 3, { ...lcs[0]!, replica: 2 }, 0)).toBeUndefined();
    for (let i = 0; i < nf - 1; i++) expect(pol.onReply(p, i, lcs[i]!, 0)?.accepted, `after ${i + 1} LOCAL-COMMITs`).toBeUndefined();
    expect(pol.onReply(p, nf - 1, lcs[nf - 1]!, 0)?.accepted).toEqual({ k: 1, view: 0, digest: lcs[0]!.digest, path: 'slow' });
  });

  it('requires extra.keySeed and a known crypto provider', () => {
    expect(() => zyzzyva.createClientPolicy({ n: 4, origin: 0 })).toThrow(/keySeed/);
    expect(() => zyzzyva.createClientPolicy({ n: 4, origin: 0, extra: { keySeed: 'x', cryptoProvider: 'rsa' } })).toThrow(/cryptoProvider/);
  });
});

describe('zyzzyva end to end (delivery loop)', () => {
  for (const provider of ['sim', 'node'] as const) {
    it(`one silent backup: the client times out, sends CC, accepts on nf LOCAL-COMMITs (${provider} crypto)`, () => {
      // Reference: Zyzzyva §3.2 case 2; PoE paper §4(8): "In case the client does not receive
      // n responses, it times out and sends a message to all the replicas".
      const batches = provider === 'node' ? 4 : 20;
      const run = runCluster({ n: 4, provider, batches, clients: 2, silent: [3], requestTimeoutMs: 500, roundTrip: true });
      expect(run.accepted).toHaveLength(batches);
      expect(new Set(run.accepted.map((a) => a.path))).toEqual(new Set(['slow']));
      expect(run.timeouts).toBe(batches);
      expect(run.clientSent.get(MSG_COMMIT)).toBe(4 * batches);
      expect(run.rejected).toEqual([]);
      for (const r of run.replicas.slice(0, 3)) {
        expect(r.committedK).toBe(batches);
        expect(r.ledger.headHash.equals(run.replicas[0]!.ledger.headHash)).toBe(true);
      }
      expect(run.replicas[3]!.status().executedK).toBe(0);
      for (const a of run.accepted) expect(a.acceptedMs - a.firstSentMs).toBe(500);
    });
  }

  it('fast path with real Ed25519 (node crypto)', () => {
    const run = runCluster({ n: 4, provider: 'node', batches: 6, clients: 2, roundTrip: true });
    expect(run.accepted.map((a) => a.path)).toEqual(Array(6).fill('fast'));
    expect(run.timeouts).toBe(0);
  });
});
