/**
 * Tests for the PoE core (replica/poe.ts), driven directly (no simulator): single steps for the rules of
 * Figure 3 and Figure 5, and a tiny in-test loop (virtual time; zero-delay FIFO, seeded random
 * order, or seeded latencies; every message through the codec) for whole runs, including
 * randomised drops, crashes and Byzantine primaries (Example 3.4). Each test names the sentence
 * or line of the paper it checks (../shared/seeds/poe-paper.txt), as etcd's raft_paper_test does.
 *
 * Randomised tests print their seed on failure; replay with POE_TEST_SEED=<seed>, and run more
 * seeds with POE_TEST_SEEDS=<count>.
 *
 * Beside this file: poe-wire.test.ts (codec), poe-client.test.ts (client rule),
 * poe-view-change.test.ts (Figure 5), poe-fetch.test.ts (recovery, §4(6)); the fixtures and the
 * loop are test/poe-harness.ts.
 */
import { describe, expect, it } from 'vitest';
import { Rng } from '../client/random.js';
import { MSG_CHECKPOINT, MSG_REQUEST, type ClientRequest } from './messages.js';
import { MSG_INFORM, MSG_PROPOSE, MSG_SUPPORT, POE_TIMERS, type Inform, type PoeMessage, type Propose, type Support } from './poe.js';
import { clientPeer, isClientPeer, quorums } from './types.js';
import { cluster, request, msg, sent, events, rejections, proposeAtPrimary, runLoop, expectLedgersAgree, expectAcceptedKept } from '../test/poe-harness.js';

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
    const early = backup.step(msg(2, { type: MSG_SUPPORT, view: 0, k: 1, digest }), 0);
    expect(sent(early, MSG_SUPPORT)).toHaveLength(0);
    expect(events(early, 'executed')).toHaveLength(0);
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
    // A client that timed out sends it again: the primary retransmits the same PROPOSE, no new k.
    expect(sent<Propose>(primary.step(msg(clientPeer(0), req), 5000), MSG_PROPOSE)).toMatchObject([{ view: 0, k: 1 }]);
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
    for (let i = 0; i < Number(process.env.POE_TEST_SEEDS ?? 5); i++) {
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

// ---------------------------------------------------------------------------------------
// Randomised faults: drops, crashes, Byzantine primaries

interface FaultScenario {
  readonly n: number;
  readonly dropP: number;
  readonly crashes: readonly number[];
  /** How the primary of view 0 misbehaves (paper Example 3.4): none, keep the last replica in the dark, equivocate, leave a hole at k=17. */
  readonly primary: 'correct' | 'dark' | 'equivocate' | 'hole';
}

/** Runs one scenario: faults while the clients work, then drops stop; returns a description of what went wrong, or undefined. */
function runScenario(seed: number, s: FaultScenario): string | undefined {
  const rng = new Rng(seed);
  const batches = 120;
  const { ring, replicas, loop, client } = runLoop(s.n, { clients: 6, maxBatches: batches, checkpointIntervalK: 20, windowK: 100, requestTimeoutMs: 300 });
  loop.latency = () => 1 + rng.nextInt(10);
  let dropping = true;
  const { f } = quorums(s.n);
  loop.filter = (e) => {
    if (dropping && !isClientPeer(e.from) && !isClientPeer(e.to) && rng.chance(s.dropP)) return false;
    if (e.from === 0 && e.msg.type === MSG_PROPOSE) {
      const p = e.msg as Propose;
      if (s.primary === 'dark' && e.to === s.n - 1) return false;
      if (s.primary === 'hole' && p.k === 17) return false;
      // A different, validly signed request at the same (v, k) for the last f replicas.
      if (s.primary === 'equivocate' && p.k % 5 === 0 && e.to >= s.n - f) (e as { msg: PoeMessage }).msg = { ...p, request: request(ring, 5000 + p.k, 0) };
    }
    return true;
  };
  loop.start();
  let crashAt = 5 + rng.nextInt(40);
  for (const c of s.crashes) {
    loop.run(200_000, () => client.acceptedBatches >= crashAt);
    loop.crashed.add(c);
    crashAt += 5 + rng.nextInt(40);
  }
  loop.run(loop.nowMs + 20_000, () => client.done);
  dropping = false;
  loop.run(loop.nowMs + 600_000, () => client.done);
  // A primary whose messages the filter tampers with is Byzantine: no guarantee covers it.
  const correct = replicas.filter((r) => !loop.crashed.has(r.id) && !(s.primary !== 'correct' && r.id === 0));
  // A request proposed again after a view change runs twice (the second time as a duplicate, without writes).
  const converged = () => correct.every((r) => r.status().executedK >= batches && r.status().executedK === correct[0]!.status().executedK);
  loop.run(loop.nowMs + 20_000, converged);
  // Safety: ledgers agree wherever they overlap, and no accepted batch was replaced.
  const height = Math.min(...correct.map((r) => r.ledger.height));
  const ref = correct[0]!.ledger.hashAt(height);
  for (const r of correct) if (!r.ledger.hashAt(height).equals(ref)) return `ledgers differ at ${height} (replica ${r.id})`;
  for (const a of loop.accepted) {
    for (const r of correct) if (r.ledger.height >= a.k && !r.ledger.digestAt(a.k).equals(a.digest)) return `accepted k=${a.k} replaced at replica ${r.id}`;
  }
  // Liveness once drops stop: every batch accepted, every correct replica executed all of them.
  if (client.acceptedBatches !== batches) return `clients accepted ${client.acceptedBatches} of ${batches}`;
  if (!converged()) return `replicas did not converge: executed ${correct.map((r) => r.status().executedK).join(', ')}`;
  return undefined;
}

describe('PoE under random faults (randomised)', () => {
  const scenarios: FaultScenario[] = [
    { n: 4, dropP: 0.05, crashes: [], primary: 'correct' },
    { n: 4, dropP: 0.03, crashes: [0], primary: 'correct' },
    { n: 7, dropP: 0.03, crashes: [0, 1], primary: 'correct' },
    { n: 4, dropP: 0.03, crashes: [], primary: 'hole' },
    { n: 4, dropP: 0.03, crashes: [], primary: 'equivocate' },
    { n: 7, dropP: 0.03, crashes: [], primary: 'dark' },
  ];
  it.each(scenarios)('stays safe, and live once drops stop: n=$n drop=$dropP crashes=$crashes primary=$primary', (s) => {
    // Reference: paper Definition 3.1 (speculative non-divergence), Proposition 3.5, Theorem 3.7, Example 3.4
    const seed = Number(process.env.POE_TEST_SEED ?? 7070);
    for (let i = 0; i < Number(process.env.POE_TEST_SEEDS ?? 3); i++) {
      const problem = runScenario(seed + i, s);
      expect(problem, `seed ${seed + i}: ${problem}`).toBeUndefined();
    }
  });
});
