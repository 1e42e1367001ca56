/**
 * PoE's view change (replica/poe-view-change.ts and the core's start and entry of views; paper
 * Figure 5, §3.3), driven directly and in the loop of test/poe-harness.ts. Randomised tests print
 * their seed on failure; replay with POE_TEST_SEED=<seed>, more seeds with POE_TEST_SEEDS=<count>.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../client/random.js';
import { MSG_REQUEST } from './messages.js';
import {
  buildNewView,
  messageDigest,
  MSG_NV_ACK,
  MSG_NV_PROPOSE,
  MSG_PROPOSE,
  MSG_SUPPORT,
  MSG_VC_ACK,
  MSG_VC_REQUEST,
  type PoeReplica,
  POE_TIMERS,
  type NvAck,
  type NvPropose,
  type Propose,
  type Support,
  type VcAck,
  type VcRequest,
} from './poe.js';
import { clientPeer, isClientPeer } from './types.js';
import {
  cluster,
  request,
  msg,
  sent,
  events,
  rejections,
  proposeAtPrimary,
  Loop,
  runLoop,
  expectLedgersAgree,
  expectAcceptedKept,
  timeOut,
  executedCluster,
} from '../test/poe-harness.js';

// ---------------------------------------------------------------------------------------
// View change (Figure 5, §3.3)

describe('PoE view change (Figure 5)', () => {
  it.each([4, 7])('primary silent: backups time out, all enter view 1, accepted batches are kept (n=%i)', (n) => {
    // Reference: paper §3.3.1 (1), Figure 5 lines 1-22, Proposition 3.5 (no accepted request is lost)
    const { replicas, loop, client } = runLoop(n, { clients: 4, maxBatches: 200, checkpointIntervalK: 10, windowK: 30, requestTimeoutMs: 300 });
    loop.start();
    loop.run(100_000, () => client.acceptedBatches >= 57);
    loop.crashed.add(0);
    const acceptedBefore = loop.accepted.length;
    loop.run(100_000, () => client.done);
    loop.settle();
    expect(client.acceptedBatches).toBe(200);
    const correct = replicas.slice(1);
    for (const r of correct) {
      expect(r.status(), `replica ${r.id}`).toMatchObject({ view: 1, inViewChange: false });
      expect(loop.eventsOf(r.id, 'viewChangeStarted')).toEqual([{ name: 'viewChangeStarted', view: 1 }]);
      expect(loop.eventsOf(r.id, 'viewEntered')).toEqual([{ name: 'viewEntered', view: 1 }]);
    }
    expect(loop.accepted.slice(acceptedBefore).some((a) => a.view === 1)).toBe(true);
    expectLedgersAgree(correct);
    expectAcceptedKept(loop.accepted, correct);
  });

  it('rolls back a speculative execution that the new view does not keep', () => {
    // Reference: paper §3.3.5 ("If R executed transactions not in E' ... R needs to rollback"), Example 3.4 case 2
    const { ring, replicas } = cluster(4);
    const loop = new Loop(replicas, []);
    const [r0, , , r3] = replicas as [PoeReplica, PoeReplica, PoeReplica, PoeReplica];
    const t = request(ring, 1, 0, 42);
    const p = proposeAtPrimary(r0, t);
    // Only replicas 2 and 3 get the PROPOSE; only 3 gets 2's SUPPORT; 3's SUPPORT reaches nobody.
    // So 3 alone holds nf = 3 supports (primary, 2, itself) and executes T as k=1.
    loop.filter = (e) => {
      if (e.msg.type === MSG_SUPPORT && (e.msg as Support).view === 0) return e.from === 2 && e.to === 3;
      if (e.msg.type === MSG_REQUEST && !isClientPeer(e.from)) return false; // forwards to the primary are lost
      if (e.msg.type === MSG_VC_REQUEST && e.from === 3 && e.to === 1) return false; // the new primary never hears 3
      return true;
    };
    loop.inject(0, 2, p);
    loop.inject(0, 3, p);
    loop.settle();
    expect(replicas.map((r) => r.status().executedK)).toEqual([0, 0, 0, 1]);
    const written = Buffer.from(r3.store.read(42));
    expect(written.equals(replicas[1]!.store.read(42))).toBe(false);
    // A client broadcasts another request; the backups forward it, time out, and change view.
    const t2 = request(ring, 2, 0, 77);
    for (const j of [1, 2, 3]) loop.inject(clientPeer(0), j, t2);
    loop.run(10_000, () => replicas.every((r) => r.status().view === 1 && !r.status().inViewChange && r.status().executedK === 1));
    loop.settle();
    // V = {0, 1, 2}: E' is empty, so 3 rolls T back; the new primary proposes T2 as k=1.
    expect(loop.eventsOf(3, 'rollback')).toEqual([{ name: 'rollback', fromK: 1, toK: 0 }]);
    for (const r of replicas) {
      expect(r.status(), `replica ${r.id}`).toMatchObject({ view: 1, inViewChange: false, executedK: 1 });
      expect(r.ledger.digestAt(1).equals(ring.crypto.digest(t2.body))).toBe(true);
      expect(r.store.read(42).equals(replicas[1]!.store.read(42)), `replica ${r.id} store after rollback`).toBe(true);
      expect(r.store.read(77).equals(replicas[1]!.store.read(77))).toBe(true);
    }
    expect(r3.store.read(42).equals(written)).toBe(false);
    expectLedgersAgree(replicas);
  });

  it('doubles the new-view timeout when the next primary fails too, and reaches view 2 (n=7)', () => {
    // Reference: paper Theorem 3.7 proof (exponential backoff), §3.3 ("initiate a view-change for the next view")
    const { replicas, loop, client } = runLoop(7, { clients: 2, maxBatches: 40, requestTimeoutMs: 300, viewChangeTimeoutMs: 1000 });
    loop.start();
    loop.run(100_000, () => client.acceptedBatches >= 10);
    loop.crashed.add(0);
    loop.crashed.add(1);
    loop.run(100_000, () => client.done);
    loop.settle();
    expect(client.acceptedBatches).toBe(40);
    const correct = replicas.slice(2);
    for (const r of correct) {
      expect(r.status(), `replica ${r.id}`).toMatchObject({ view: 2, inViewChange: false });
      expect(loop.eventsOf(r.id, 'viewChangeStarted').map((e) => (e as { view: number }).view)).toEqual([1, 2]);
      // Each new-view timeout runs in two halves (the first ends by re-sending the VC-REQUEST);
      // the view change to 1 fails after 1000 ms, the one to 2 gets 2000 ms and succeeds within its first half.
      const nv = loop.timerLog.filter((t) => t.node === r.id && t.name === POE_TIMERS.newView).map((t) => t.afterMs);
      expect(nv, `replica ${r.id} new-view timeouts`).toEqual([500, 500, 1000]);
    }
    expectLedgersAgree(correct);
    expectAcceptedKept(loop.accepted, correct);
  });

  it('doubles the new-view timeout after each failed view change: three faulty primaries in a row (n=10)', () => {
    // Reference: paper Theorem 3.7 proof (exponential backoff): the timeout the core sets, through
    // backoffMs and nextBackoffExp of replica/backoff.ts, doubles with every view change that fails.
    const { replicas, loop, client } = runLoop(10, { clients: 2, maxBatches: 30, requestTimeoutMs: 300, viewChangeTimeoutMs: 1000 });
    loop.start();
    loop.run(100_000, () => client.acceptedBatches >= 10);
    for (const crashed of [0, 1, 2]) loop.crashed.add(crashed);
    loop.run(200_000, () => client.done);
    loop.settle();
    expect(client.acceptedBatches).toBe(30);
    const correct = replicas.slice(3);
    for (const r of correct) {
      expect(r.status(), `replica ${r.id}`).toMatchObject({ view: 3, inViewChange: false });
      expect(loop.eventsOf(r.id, 'viewChangeStarted').map((e) => (e as { view: number }).view)).toEqual([1, 2, 3]);
      // Each timeout in two halves (the first ends by re-sending the VC-REQUEST): 1000 ms for
      // view 1, 2000 ms for view 2, 4000 ms for view 3, which succeeds within its first half.
      const nv = loop.timerLog.filter((t) => t.node === r.id && t.name === POE_TIMERS.newView).map((t) => t.afterMs);
      expect(nv, `replica ${r.id} new-view timeouts`).toEqual([500, 500, 1000, 1000, 2000]);
    }
    expectLedgersAgree(correct);
    expectAcceptedKept(loop.accepted, correct);
  });

  it('joins a view change on f+1 VC-REQUESTs for the current view, not on f, and halts the normal case', () => {
    // Reference: paper Figure 5, lines 6-7 and line 2; §3.3.1 (2)
    const { ring, replicas } = cluster(4);
    const [r0, r1, r2, r3] = replicas as [PoeReplica, PoeReplica, PoeReplica, PoeReplica];
    const vc2 = sent<VcRequest>(timeOut(r2, ring, 5, 0), MSG_VC_REQUEST)[0]!;
    const vc3 = sent<VcRequest>(timeOut(r3, ring, 6, 0), MSG_VC_REQUEST)[0]!;
    expect(vc2).toMatchObject({ view: 0, replica: 2, stableK: 0, entries: [] });
    const one = r1.step(msg(2, vc2), 10);
    expect(sent(one, MSG_VC_REQUEST)).toHaveLength(0); // f = 1 request: could be a faulty replica
    expect(r1.status().inViewChange).toBe(false);
    const two = r1.step(msg(3, vc3), 10);
    expect(sent<VcRequest>(two, MSG_VC_REQUEST)).toMatchObject([{ view: 0, replica: 1 }]);
    expect(events(two, 'viewChangeStarted')).toEqual([{ name: 'viewChangeStarted', view: 1 }]);
    expect(r1.status().inViewChange).toBe(true);
    // Halted: a PROPOSE of view 0 is no longer supported.
    const p = proposeAtPrimary(r0, request(ring, 7, 0));
    expect(sent(r1.step(msg(0, p), 20), MSG_SUPPORT)).toHaveLength(0);
  });

  it('acknowledges a VC-REQUEST only under the conditions of line 9, never its own', () => {
    // Reference: paper Figure 5, line 9 conditions (1)-(3), line 10; §3.5 (3)
    const { ring, replicas } = executedCluster(4, 2);
    const [, r1, r2] = replicas as [PoeReplica, PoeReplica, PoeReplica, PoeReplica];
    const entry = (k: number, clientId: number) => ({ view: 0, k, request: request(ring, clientId, 0) });
    const genesis = Buffer.from(r1.ledger.hashAt(0));
    const vc = (replica: number, view: number, stableK: number, entries: ReturnType<typeof entry>[], stableDigest: Buffer = genesis): VcRequest => ({
      type: MSG_VC_REQUEST,
      view,
      replica,
      stableK,
      stableDigest,
      entries,
    });
    const good = vc(3, 0, 0, [entry(1, 100), entry(2, 101)]);
    const contradicting = vc(0, 0, 0, [entry(1, 100), entry(2, 555)]);
    const gap = vc(3, 1, 0, [entry(2, 101)]);
    const laterCheckpoint = vc(1, 0, 100, []);
    const otherState = vc(1, 1, 0, [], ring.crypto.digest(Buffer.from('not genesis')));

    // Condition (2): replica 1 has not detected failure: it keeps the request but does not acknowledge yet.
    expect(sent(r1.step(msg(3, good), 0), MSG_VC_ACK)).toHaveLength(0);
    const own = timeOut(r1, ring, 9, 0);
    const ownRequest = sent<VcRequest>(own, MSG_VC_REQUEST)[0]!;
    expect(ownRequest.entries.map((e) => e.k)).toEqual([1, 2]); // E: its executions (line 3)
    const acks = sent<VcAck>(own, MSG_VC_ACK);
    // On detecting failure it acknowledges the stored request; never its own (§3.5 (3)).
    expect(acks.map((a) => a.replica)).toEqual([3]);
    expect(acks[0]!.digest.equals(messageDigest(ring.crypto, good))).toBe(true);

    timeOut(r2, ring, 9, 0);
    // Condition (3): an entry that contradicts what replica 2 executed.
    expect(sent(r2.step(msg(0, contradicting), 5), MSG_VC_ACK)).toHaveLength(0);
    // Condition (1): entries must be consecutive from the checkpoint.
    expect(rejections(r2.step(msg(3, gap), 5))).toContain('VC-REQUEST: entries not consecutive from the stable checkpoint');
    // A checkpoint that does not agree with our own state is not acknowledged.
    expect(sent(r2.step(msg(1, laterCheckpoint), 5), MSG_VC_ACK)).toHaveLength(0);
    expect(sent(r2.step(msg(1, otherState), 5), MSG_VC_ACK)).toHaveLength(0);
    expect(sent(r2.step(msg(3, good), 5), MSG_VC_ACK)).toHaveLength(1);
  });

  it('validates NV-PROPOSE fully (in V) or partially (not in V), acknowledges it, and enters on nf NV-ACKs', () => {
    // Reference: paper Figure 5, lines 12-20; §3.3.3, §3.3.4; §3.5 (4)
    const { ring, replicas, loop } = executedCluster(4, 2);
    const [r0, r1, r2, r3] = replicas as [PoeReplica, PoeReplica, PoeReplica, PoeReplica];
    let proposal: NvPropose | undefined;
    loop.filter = (e) => {
      if (e.from === 0) return false; // replica 0 is slow: nothing it sends arrives
      if (e.msg.type === MSG_NV_PROPOSE) {
        proposal = e.msg as NvPropose;
        return false;
      }
      return true;
    };
    for (const r of [r1, r2, r3])
      for (const o of timeOut(r, ring, 9, 0)) if (o.kind === 'broadcast') for (let j = 0; j < 4; j++) if (j !== r.id) loop.inject(r.id, j, o.msg);
    loop.settle();
    expect(proposal, 'the new primary (replica 1) proposes once nf requests are mutually acknowledged').toBeDefined();
    const m = proposal!;
    expect(m).toMatchObject({ view: 1, stableK: 0 });
    expect(m.certificate.map((c) => c.replica)).toEqual([1, 2, 3]);
    expect(m.entries.map((e) => [e.view, e.k])).toEqual([
      [0, 1],
      [0, 2],
    ]);
    expect(r0.status().inViewChange, 'replica 0 joined on f+1 requests').toBe(true);

    // Full validation at replica 2 (in V): a proposal that drops an entry is not m'.
    const tampered: NvPropose = { ...m, entries: m.entries.slice(0, 1) };
    const bad = r2.step(msg(1, tampered), 10);
    expect(sent(bad, MSG_NV_ACK)).toHaveLength(0);
    expect(rejections(bad)).toContain("invalid NV-PROPOSE: m differs from the m' rebuilt from V");
    // ... so replica 2 detects failure of the new primary and asks for view 2.
    expect(sent<VcRequest>(bad, MSG_VC_REQUEST)).toMatchObject([{ view: 1, replica: 2 }]);

    // Partial validation at replica 0 (not in V): E of replica 1 is not contained in the tampered E'.
    const badAt0 = r0.step(msg(1, tampered), 10);
    expect(sent(badAt0, MSG_NV_ACK)).toHaveLength(0);
    expect(rejections(badAt0)).toContain("invalid NV-PROPOSE: E of a request in V is not contained in E'");

    // The genuine proposal: replica 3 validates fully, replica 0 partially (with a fresh replica 0 state,
    // since the tampered one made it ask for view 2). Neither enters before nf NV-ACKs.
    const ack3 = r3.step(msg(1, m), 20);
    const [nvAck] = sent<NvAck>(ack3, MSG_NV_ACK);
    expect(nvAck).toMatchObject({ view: 1 });
    expect(nvAck!.digest.equals(messageDigest(ring.crypto, m))).toBe(true);
    expect(events(ack3, 'viewEntered')).toHaveLength(0); // the primary's proposal + its own ack: 2 < nf
    const entered = r3.step(msg(2, { type: MSG_NV_ACK, view: 1, digest: nvAck!.digest }), 20);
    expect(events(entered, 'viewEntered')).toEqual([{ name: 'viewEntered', view: 1 }]);
    expect(r3.status()).toMatchObject({ view: 1, inViewChange: false, executedK: 2 });

    // The primary does not acknowledge its own proposal (§3.5 (4)): it enters on nf - 1 NV-ACKs.
    expect(events(r1.step(msg(3, { type: MSG_NV_ACK, view: 1, digest: nvAck!.digest }), 20), 'viewEntered')).toHaveLength(0);
    const primaryEntered = r1.step(msg(0, { type: MSG_NV_ACK, view: 1, digest: nvAck!.digest }), 20);
    expect(events(primaryEntered, 'viewEntered')).toHaveLength(1);
    // It continues numbering after E' (§3.3.5), first with the request a client broadcast while the old primary failed.
    expect(sent<Propose>(primaryEntered, MSG_PROPOSE)).toMatchObject([{ view: 1, k: 3, request: { clientId: 9 } }]);
    expect(sent<Propose>(r1.step(msg(clientPeer(0), request(ring, 50, 0)), 30), MSG_PROPOSE)).toMatchObject([{ view: 1, k: 4 }]);
  });

  it('partial validation accepts a proposal that contains the E of every request it knows', () => {
    // Reference: paper §3.3.4 ("R can only partially validate ... by checking whether E ⊆ E'")
    const { ring, replicas, loop } = executedCluster(4, 3);
    const [r0, r1, r2, r3] = replicas as [PoeReplica, PoeReplica, PoeReplica, PoeReplica];
    let proposal: NvPropose | undefined;
    loop.filter = (e) => {
      if (e.from === 0) return false;
      if (e.msg.type === MSG_NV_PROPOSE) {
        proposal = e.msg as NvPropose;
        return false;
      }
      return true;
    };
    for (const r of [r1, r2, r3])
      for (const o of timeOut(r, ring, 9, 0)) if (o.kind === 'broadcast') for (let j = 0; j < 4; j++) if (j !== r.id) loop.inject(r.id, j, o.msg);
    loop.settle();
    const out = r0.step(msg(1, proposal!), 10);
    expect(rejections(out)).toEqual([]);
    expect(sent(out, MSG_NV_ACK)).toHaveLength(1);
    // The NV-PROPOSE is what buildNewView gives for the certified requests (deterministic, §3.3.4 m = m').
    void buildNewView;
  });
});

describe('PoE view change under reordering (randomised)', () => {
  it('keeps every accepted batch and converges after the primary crashes at a random point', () => {
    // Reference: paper Proposition 3.5, Proposition 3.6, Theorem 3.7
    const seed = Number(process.env.POE_TEST_SEED ?? 5150);
    for (let i = 0; i < Number(process.env.POE_TEST_SEEDS ?? 6); i++) {
      const s = seed + i;
      const rng = new Rng(s);
      const crashAfter = 5 + rng.nextInt(60);
      const { replicas, loop, client } = runLoop(4, { clients: 6, maxBatches: 150, checkpointIntervalK: 10, windowK: 30, requestTimeoutMs: 300, rng });
      loop.start();
      loop.run(100_000, () => client.acceptedBatches >= crashAfter);
      loop.crashed.add(0);
      loop.run(1_000_000, () => client.done);
      loop.settle();
      const correct = replicas.slice(1);
      expect(client.acceptedBatches, `seed ${s}`).toBe(150);
      for (const r of correct) expect(r.status().inViewChange, `seed ${s} replica ${r.id}`).toBe(false);
      expectLedgersAgree(correct);
      expectAcceptedKept(loop.accepted, correct);
    }
  });
});
