/**
 * PoE's recovery from lost messages (replica/poe-fetch.ts; paper §4(6), §3.3.1): fetching
 * certified blocks, voting on uncertified ones, rebasing a replica that speculated alone, and
 * how far behind a replica can still catch up.
 */
import { describe, expect, it } from 'vitest';
import { MSG_CHECKPOINT, type ClientRequest } from './messages.js';
import {
  MSG_BLOCKS,
  MSG_FETCH,
  MSG_INFORM,
  MSG_NV_ACK,
  MSG_NV_PROPOSE,
  MSG_PROPOSE,
  MSG_SUPPORT,
  MSG_VC_ACK,
  MSG_VC_REQUEST,
  type PoeReplica,
  POE_TIMERS,
  type NvPropose,
  type PoeMessage,
  type Support,
  type VcAck,
  type VcRequest,
} from './poe.js';
import { clientPeer } from './types.js';
import {
  cluster,
  request,
  msg,
  sent,
  events,
  rejections,
  runLoop,
  expectLedgersAgree,
  expectAcceptedKept,
  timeOut,
  executedCluster,
} from '../test/poe-harness.js';

// ---------------------------------------------------------------------------------------
// Recovery from lost messages (beyond the paper's reliable links: paper §4(6), §3.3.1)

describe('PoE recovery from lost messages', () => {
  it('a replica kept in the dark catches up by fetching blocks that chain to the certified checkpoint', () => {
    // Reference: paper §4(6) ("the recovering replica can verify the validity of the received blocks"), Example 3.4 case 2
    const { replicas, loop, client } = runLoop(4, { clients: 2, maxBatches: 60, checkpointIntervalK: 10, windowK: 40 });
    let dark = true;
    loop.filter = (e) => !(dark && e.to === 3 && (e.msg.type === MSG_PROPOSE || e.msg.type === MSG_SUPPORT));
    loop.start();
    loop.run(100_000, () => client.acceptedBatches >= 30);
    dark = false;
    loop.run(100_000, () => client.done);
    loop.run(loop.nowMs + 10_000, () => replicas[3]!.status().executedK === 60);
    expect(client.acceptedBatches).toBe(60);
    expect(loop.sentByType.get(MSG_FETCH) ?? 0).toBeGreaterThan(0);
    expect(loop.sentByType.get(MSG_BLOCKS) ?? 0).toBeGreaterThan(0);
    for (const r of replicas) expect(r.status(), `replica ${r.id}`).toMatchObject({ view: 0, inViewChange: false, executedK: 60 });
    expectLedgersAgree(replicas);
  });

  it('rejects fetched blocks that do not reproduce the certified checkpoint', () => {
    // Reference: paper §4(6) (blocks are checked against the hash chain, "even if it only receives blocks from malicious replicas")
    const { ring, replicas, loop } = executedCluster(4, 0, { checkpointIntervalK: 5, windowK: 20 });
    const [, r1, , r3] = replicas as [PoeReplica, PoeReplica, PoeReplica, PoeReplica];
    // Five batches execute at replicas 0-2 only; replica 3 learns the checkpoint but not the blocks.
    loop.filter = (e) => !(e.to === 3 && e.msg.type !== MSG_CHECKPOINT);
    for (let i = 0; i < 5; i++) {
      for (const out of replicas[0]!.step(msg(clientPeer(0), request(ring, 200 + i, 0)), 0))
        if (out.kind === 'broadcast') for (const j of [1, 2, 3]) loop.inject(0, j, out.msg);
      loop.settle();
    }
    expect(r3.status()).toMatchObject({ executedK: 0, stableK: 5 });
    const blocks = sent<{ type: typeof MSG_BLOCKS; entries: { view: number; k: number; request: ClientRequest }[] }>(
      r1.step(msg(3, { type: MSG_FETCH, fromK: 1, toK: 5 }), 0),
      MSG_BLOCKS,
    )[0]!;
    expect(blocks.entries.map((e) => e.k)).toEqual([1, 2, 3, 4, 5]);
    const forged = { ...blocks, entries: blocks.entries.map((e) => (e.k === 3 ? { ...e, request: request(ring, 999, 0) } : e)) };
    expect(rejections(r3.step(msg(1, forged), 10))).toContain('BLOCKS do not reproduce the certified checkpoint');
    expect(r3.status().executedK).toBe(0);
    const out = r3.step(msg(1, blocks), 10);
    expect(events(out, 'executed').map((e) => (e as { k: number }).k)).toEqual([1, 2, 3, 4, 5]);
    expectLedgersAgree(replicas);
  });

  it('a replica that lost the last SUPPORTs of a run catches up from f+1 replicas that send the same blocks', () => {
    // Found by the simulator (infra/sim/scenarios.ts crash-and-loss, n=7): the clients accept on nf
    // INFORMs without the lagging replica, so nobody retransmits, and no later checkpoint certifies
    // the last batches. Reference: paper §4(6) (recovering replicas fetch blocks), Proposition 3.2.
    const { ring, replicas, loop, client } = runLoop(7, { clients: 4, maxBatches: 30, checkpointIntervalK: 100, windowK: 200 });
    loop.filter = (e) => !(e.to === 6 && e.msg.type === MSG_SUPPORT && (e.msg as Support).k > 24);
    loop.start();
    loop.run(10_000, () => client.done);
    expect(client.acceptedBatches).toBe(30);
    expect(replicas[6]!.status().executedK).toBe(24);
    loop.run(loop.nowMs + 10_000, () => replicas[6]!.status().executedK === 30);
    expect(replicas[6]!.status().executedK).toBe(30);
    expectLedgersAgree(replicas);
    // f matching blocks are not enough: a Byzantine sender alone (or with f-1 others) gets nothing executed.
    const { replicas: fresh } = runLoop(7, { clients: 1, maxBatches: 1 });
    const lone = fresh[6]!;
    const fake = { type: MSG_BLOCKS, entries: [{ view: 0, k: 1, request: request(ring, 77, 0) }] } as const;
    for (const from of [1, 2]) expect(events(lone.step(msg(from, fake), 1), 'executed'), `after ${from}`).toEqual([]);
    expect(events(lone.step(msg(3, fake), 1), 'executed').map((e) => (e as { k: number }).k)).toEqual([1]);
  });

  it('a replica in a view change executes blocks of its view f+1 replicas send alike, below the next checkpoint and without INFORM', () => {
    // Found by the simulator (crash-and-loss n=7, seed 21588): a replica whose NV-PROPOSE was lost gave up
    // alone on view 1 while the others ran it; it never enters a view it asked to leave, so it caught up
    // only to the last certified checkpoint. Its VC-REQUEST is out and does not list what it executes
    // now, so it must not count towards a client's nf INFORMs (Proposition 3.5), nor vouch for a
    // checkpoint. Reference: paper §4(6), Figure 5 lines 1-4, Proposition 3.2.
    const { ring, replicas } = cluster(7, { checkpointIntervalK: 4, windowK: 8 });
    const r6 = replicas[6]!;
    timeOut(r6, ring, 50, 0);
    expect(r6.status().inViewChange).toBe(true);
    const entries = [1, 2, 3, 4, 5].map((k) => ({ view: 0, k, request: request(ring, 60 + k, 0) }));
    const blocks = { type: MSG_BLOCKS, entries } as const;
    const outs = [1, 2, 3].flatMap((from) => r6.step(msg(from, blocks), 10));
    // f+1 = 3 senders; k=4 is a checkpoint: executing it would make our CHECKPOINT vouch for it.
    expect(events(outs, 'executed').map((e) => (e as { k: number }).k)).toEqual([1, 2, 3]);
    expect(sent(outs, MSG_INFORM), 'no INFORM while our VC-REQUEST does not list the blocks').toEqual([]);
    expect(sent(outs, MSG_CHECKPOINT)).toEqual([]);
    // A client re-sending its request gets no INFORM either, while the view change lasts.
    expect(sent(r6.step(msg(clientPeer(0), entries[0]!.request), 20), MSG_INFORM)).toEqual([]);
  });

  it('a primary cut off after speculating alone rolls back to the certified chain and catches up once the network heals', () => {
    // Found by the simulator (infra/sim/scenarios.ts lossy-primary-partition): the old primary executed
    // k=3 in view 0, nobody else did, the others moved to view 1 and went on; back, it fetched blocks
    // chained onto its own branch, which never reproduced the certified checkpoint, for good.
    // Reference: paper §3.3.5 (speculative executions the others did not keep are rolled back), §4(6).
    const { replicas, loop, client } = runLoop(4, { clients: 2, maxBatches: 20, checkpointIntervalK: 5, windowK: 20, requestTimeoutMs: 300 });
    let phase: 'alone' | 'cut' | 'healed' = 'alone';
    // View 0's SUPPORTs for k >= 3 reach the primary only: it alone view-commits k=3.
    const onlyToPrimary = (e: { msg: PoeMessage; to: number }): boolean =>
      e.msg.type === MSG_SUPPORT && (e.msg as Support).view === 0 && (e.msg as Support).k >= 3 && e.to !== 0;
    loop.filter = (e) => {
      if (onlyToPrimary(e)) return false;
      if (phase === 'cut') return e.from !== 0 && e.to !== 0;
      return true;
    };
    loop.start();
    loop.run(200, () => replicas[0]!.status().executedK >= 3);
    expect(replicas.map((r) => r.status().executedK)).toEqual([3, 2, 2, 2]);
    phase = 'cut';
    loop.run(60_000, () => client.done);
    expect(client.acceptedBatches).toBe(20);
    expect(replicas[1]!.status().view).toBe(1);
    expect(replicas[1]!.ledger.viewAt(3)).toBe(1);
    phase = 'healed';
    loop.run(loop.nowMs + 20_000, () => replicas[0]!.status().executedK >= replicas[1]!.status().executedK);
    expect(loop.events.get(0)!.filter((e) => e.name === 'rollback')).toEqual([{ name: 'rollback', fromK: 3, toK: 2 }]);
    expect(replicas[0]!.ledger.height).toBe(replicas[1]!.ledger.height);
    expectLedgersAgree(replicas);
    expectAcceptedKept(loop.accepted, replicas);
    for (let key = 0; key < 1000; key++) expect(replicas[0]!.store.read(key).equals(replicas[1]!.store.read(key)), `key ${key}`).toBe(true);
  });

  it('retransmits the PROPOSE when a client re-sends an in-flight request, and backups re-send their SUPPORT', () => {
    // Reference: paper §3.2 last paragraph (the client broadcasts; replicas forward to the primary)
    const { replicas, loop, client } = runLoop(4, { clients: 1, maxBatches: 3, requestTimeoutMs: 300 });
    let dropped = 0;
    // Every first-round SUPPORT for k=2 is lost: most replicas cannot view-commit it. BLOCKS are
    // lost too, so that the replicas behind recover by retransmission, not from those that executed it (voteTail).
    loop.filter = (e) => {
      if (e.msg.type === MSG_BLOCKS) return false;
      if (e.msg.type === MSG_SUPPORT && (e.msg as Support).k === 2 && dropped < 6) {
        dropped++;
        return false;
      }
      return true;
    };
    loop.start();
    loop.run(10_000, () => client.done);
    loop.settle();
    expect(client.acceptedBatches).toBe(3);
    expect(loop.sentByType.get(MSG_PROPOSE)).toBeGreaterThan(3 * 3);
    for (const r of replicas) expect(r.status(), `replica ${r.id}`).toMatchObject({ view: 0, inViewChange: false, executedK: 3 });
  });

  it('re-sends the NV-PROPOSE to a replica that lost it and repeats its VC-REQUEST', () => {
    // Reference: paper Figure 5, lines 14-20 (liveness needs every non-faulty replica to receive m)
    const { replicas, loop, client } = runLoop(4, { clients: 2, maxBatches: 40, requestTimeoutMs: 300 });
    let lost = 0;
    loop.filter = (e) => {
      if (e.msg.type === MSG_NV_PROPOSE && e.to === 3 && lost === 0) {
        lost++;
        return false;
      }
      return true;
    };
    loop.start();
    loop.run(100_000, () => client.acceptedBatches >= 10);
    loop.crashed.add(0);
    loop.run(100_000, () => client.done);
    loop.settle();
    expect(lost).toBe(1);
    expect(client.acceptedBatches).toBe(40);
    for (const r of replicas.slice(1)) {
      expect(r.status(), `replica ${r.id}`).toMatchObject({ view: 1, inViewChange: false });
      expect(loop.eventsOf(r.id, 'viewEntered')).toEqual([{ name: 'viewEntered', view: 1 }]);
    }
    expectLedgersAgree(replicas.slice(1));
  });

  it('never enters a view it asked to leave', () => {
    // Reference: paper Proposition 3.5's proof (each request in V holds all its sender's executions)
    const { ring, replicas } = cluster(4);
    const [, r1, r2, r3] = replicas as [PoeReplica, PoeReplica, PoeReplica, PoeReplica];
    const requests = [r1, r2, r3].map((r) => sent<VcRequest>(timeOut(r, ring, 10 + r.id, 0), MSG_VC_REQUEST)[0]!);
    // Replica 1 (the next primary) and replica 3 get everything; their acknowledgements reach replica 1.
    const acksFor1: VcAck[] = [];
    for (const [i, r] of [r1, r2, r3].entries()) {
      for (const vc of requests)
        if (vc.replica !== r.id) acksFor1.push(...sent<VcAck>(r.step(msg(vc.replica, vc), 10), MSG_VC_ACK).map((a) => ({ ...a, from: [1, 2, 3][i] })));
    }
    // Replica 2's new-view timer runs out (two halves with nf requests in): it asks to leave view 1 too.
    r2.step({ kind: 'timer', name: POE_TIMERS.newView }, 600);
    const escalate = r2.step({ kind: 'timer', name: POE_TIMERS.newView }, 1100);
    expect(sent<VcRequest>(escalate, MSG_VC_REQUEST)).toMatchObject([{ view: 1, replica: 2 }]);
    let proposal: NvPropose | undefined;
    for (const a of acksFor1 as (VcAck & { from: number })[]) {
      if (a.from === 1) continue;
      const out = r1.step(msg(a.from, { type: MSG_VC_ACK, view: a.view, replica: a.replica, digest: a.digest }), 20);
      proposal ??= sent<NvPropose>(out, MSG_NV_PROPOSE)[0];
    }
    expect(proposal).toMatchObject({ view: 1 });
    // Replica 3 acknowledges it; replica 2, which asked to leave view 1, ignores it.
    expect(sent(r3.step(msg(1, proposal!), 30), MSG_NV_ACK)).toHaveLength(1);
    const at2 = r2.step(msg(1, proposal!), 30);
    expect(sent(at2, MSG_NV_ACK)).toHaveLength(0);
    expect(r2.status()).toMatchObject({ view: 1, inViewChange: true });
  });

  it('adopts a checkpoint that f+1 replicas claim stable in their VC-REQUESTs, not one that f claim', () => {
    // Reference: paper §3.5 last paragraph (checkpoints); Figure 5, line 6 (f+1 distinct replicas include a non-faulty one)
    const { ring, replicas, loop } = executedCluster(4, 0, { checkpointIntervalK: 5, windowK: 20 });
    const [, r1, r2, r3] = replicas as [PoeReplica, PoeReplica, PoeReplica, PoeReplica];
    loop.filter = (e) => e.to !== 3;
    for (let i = 0; i < 5; i++) {
      for (const out of replicas[0]!.step(msg(clientPeer(0), request(ring, 300 + i, 0)), 0))
        if (out.kind === 'broadcast') for (const j of [1, 2, 3]) loop.inject(0, j, out.msg);
      loop.settle();
    }
    expect(r1.status().stableK).toBe(5);
    expect(r3.status().stableK).toBe(0);
    const vc1 = sent<VcRequest>(timeOut(r1, ring, 40, 10), MSG_VC_REQUEST)[0]!;
    const vc2 = sent<VcRequest>(timeOut(r2, ring, 41, 10), MSG_VC_REQUEST)[0]!;
    expect(vc1).toMatchObject({ stableK: 5 });
    r3.step(msg(1, vc1), 20);
    expect(r3.status().stableK).toBe(0);
    const out = r3.step(msg(2, vc2), 20);
    expect(events(out, 'checkpointStable')).toEqual([{ name: 'checkpointStable', k: 5 }]);
    expect(r3.status().stableK).toBe(5);
  });
});

describe('PoE catch-up after a long partition', () => {
  it.each([
    { archiveK: 500, caughtUp: true },
    { archiveK: 40, caughtUp: false },
  ])('a replica cut off for many windows catches up iff the archive reaches back that far (archiveK=$archiveK)', ({ archiveK, caughtUp }) => {
    // Reference: paper §4(6) (recovering replicas fetch blocks); §3.5 (checkpoints bound what is kept)
    const { replicas, loop, client } = runLoop(4, { clients: 4, maxBatches: 300, checkpointIntervalK: 10, windowK: 20, archiveK });
    let cut = true;
    loop.filter = (e) => !(cut && (e.to === 3 || e.from === 3));
    loop.start();
    loop.run(100_000, () => client.acceptedBatches >= 200);
    cut = false;
    loop.run(100_000, () => client.done);
    loop.run(loop.nowMs + 20_000, () => replicas[3]!.status().executedK === 300);
    expect(client.acceptedBatches).toBe(300);
    expect(replicas[3]!.status().executedK === 300, `replica 3 at ${replicas[3]!.status().executedK}`).toBe(caughtUp);
    expectLedgersAgree(replicas);
  });
});

describe('PoE catch-up once the system is idle (issue 13: twins seed 437)', () => {
  it('a replica cut off until the clients are done learns from the idle status that it is behind, and catches up', () => {
    // Reference: paper §4(6), line 395 (a recovering replica asks others for the blocks); §3.5, line 343
    // (checkpoints). Nothing is in flight once the clients are done: before the idle status, the
    // CHECKPOINTs replica 3 missed were never sent again and it stayed at 0 (the simulator's twins seed 437).
    const timeoutMs = 1000;
    const { replicas, loop, client } = runLoop(4, { clients: 2, maxBatches: 45, checkpointIntervalK: 10, windowK: 40, viewChangeTimeoutMs: timeoutMs });
    let cut = true;
    loop.filter = (e) => !(cut && (e.to === 3 || e.from === 3));
    loop.start();
    loop.run(100_000, () => client.done);
    expect(client.acceptedBatches).toBe(45);
    expect(replicas[3]!.status().executedK).toBe(0);
    // The busy run sent no status: the normal case is unchanged.
    expect(loop.sentByType.get(MSG_FETCH) ?? 0).toBe(0);
    cut = false;
    const healedMs = loop.nowMs;
    loop.run(healedMs + 60_000, () => replicas.every((r) => r.status().executedK === 45));
    for (const r of replicas) expect(r.status(), `replica ${r.id}`).toMatchObject({ view: 0, inViewChange: false, executedK: 45 });
    // Past the last checkpoint (40) too: the tail came by f+1 matching blocks (voteTail).
    expect(replicas[3]!.status().stableK).toBe(40);
    // Within the first idle status (two to four timeouts) plus a few fetch rounds.
    expect(loop.nowMs - healedMs).toBeLessThanOrEqual(6 * timeoutMs);
    expect(loop.sentByType.get(MSG_BLOCKS) ?? 0).toBeGreaterThan(0);
    expectLedgersAgree(replicas);
    expectAcceptedKept(loop.accepted, replicas);
  });

  it('an idle, converged cluster sends its status ever more slowly (backoff to 2^6 times two timeouts)', () => {
    const timeoutMs = 1000;
    const { replicas, loop, client } = runLoop(4, { clients: 2, maxBatches: 20, checkpointIntervalK: 10, windowK: 40, viewChangeTimeoutMs: timeoutMs });
    loop.start();
    loop.run(100_000, () => client.done);
    expect(loop.sentByType.get(MSG_FETCH) ?? 0).toBe(0);
    const doneMs = loop.nowMs;
    loop.run(doneMs + 1_000_000);
    for (const r of replicas) expect(r.status().executedK).toBe(20);
    const delays = loop.timerLog.filter((t) => t.node === 0 && t.name === POE_TIMERS.status).map((t) => t.afterMs);
    expect(Math.max(...delays)).toBe(2 * timeoutMs * 2 ** 6);
    // Per replica: probes after 2x, 4x, 8x, ... 128x two timeouts, then every 128x: about 13 in 1000 s.
    const probes = (loop.sentByType.get(MSG_FETCH) ?? 0) / 3;
    expect(probes).toBeGreaterThanOrEqual(4 * 6);
    expect(probes).toBeLessThanOrEqual(4 * 16);
    // Nobody is behind: a status from a replica level with the others is not answered.
    expect(loop.sentByType.get(MSG_BLOCKS) ?? 0).toBe(0);
    expect(loop.sentByType.get(MSG_CHECKPOINT) ?? 0).toBe(2 * 4 * 3);
  });
});
