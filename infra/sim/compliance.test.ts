/**
 * The compliance suite every protocol core must pass (STYLE.md: one suite run against PoE, PBFT,
 * Zyzzyva and HotStuff, like libp2p's interface-compliance-tests), in the deterministic
 * simulator with the sim crypto:
 *
 * - safety and liveness for n = 4, 7, 16 (several seeds each) and 32 (one seed), fault-free
 *   and with the paper's n - 3f silent backups (DESIGN.md figure 10: 1, 1, 1, 2), over a
 *   jittered network that reorders messages: the online canonical-commit check, agreeing
 *   final ledgers, every accepted batch in every non-faulty ledger at its k, execution strictly
 *   in order, and every issued batch accepted;
 * - the same with duplicated messages: duplicates must not inflate a quorum or execute twice;
 * - a primary crash mid-run, for protocols with a view change;
 * - determinism: one seed, byte-identical results;
 * - the normal-case message pattern: replica-sent messages per accepted batch, exactly, in
 *   fault-free runs (CHECKPOINT counted apart).
 *
 * A protocol whose module is not registered yet is skipped with a visible reason. A failing
 * case prints its seed and the `poe-bench sim` line that replays it.
 *
 * Longer runs: SIM_SEEDS=N runs N seeds per small case (default 3), SIM_SEED_BASE=S starts the
 * seeds at S (default 1), e.g. `SIM_SEEDS=50 SIM_SEED_BASE=1000 npx vitest run infra/sim/compliance.test.ts`.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { CountingCrypto } from '../../replica/crypto-counter.js';
import { createCrypto } from '../../replica/crypto.js';
import { type HotStuffMessage, hotstuff } from '../../replica/hotstuff.js';
import { KeyRing } from '../../replica/keys.js';
import { makeRequest } from '../../replica/messages.js';
import { hasProtocol } from '../../replica/protocols.js';
import { clientPeer, isClientPeer, type Peer, PROTOCOLS, type ProtocolName, quorums, type ReplicaOutput } from '../../replica/types.js';
import type { SimInput } from './options.js';
import { runSimulation, type SimResult } from './simulator.js';

const SEEDS = envInt('SIM_SEEDS', 3);
const SEED_BASE = envInt('SIM_SEED_BASE', 1);

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new RangeError(`${name} must be an integer >= 1, got '${raw}'`);
  return v;
}

/** n - 3f: the backups the paper's figure 10 crashes so that exactly 3f + 1 replicas take part. */
const paperCrashed = (n: number): number => n - 3 * quorums(n).f;

interface SizeCase {
  readonly n: number;
  readonly batches: number;
  readonly seeds: number;
}

/** Batch counts keep the whole suite well under a few minutes on two shared cores. */
const SIZES: readonly SizeCase[] = [
  { n: 4, batches: 1500, seeds: SEEDS },
  { n: 7, batches: 1000, seeds: SEEDS },
  { n: 16, batches: 200, seeds: Math.max(1, Math.ceil((SEEDS * 2) / 3)) },
  { n: 32, batches: 60, seeds: Math.max(1, Math.floor(SEEDS / 3)) },
];

/**
 * HotStuff runs four phases per slot, which makes it about twice as costly per batch to
 * simulate as the others; its safety-and-liveness cases run half the batches to keep the file
 * short.
 */
const BATCH_SCALE: Partial<Record<ProtocolName, number>> = { hotstuff: 0.5 };
const scaled = (protocol: ProtocolName, batches: number): number => Math.max(20, Math.round(batches * (BATCH_SCALE[protocol] ?? 1)));

/**
 * Replica-sent messages per accepted batch in a fault-free run, CHECKPOINT excluded:
 * PoE: (n-1) PROPOSE + (n-1)^2 SUPPORT + n INFORM = n^2 (paper §3.5);
 * PBFT: (n-1) PRE-PREPARE + (n-1)^2 PREPARE + n(n-1) COMMIT + n REPLY (paper §4(8));
 * Zyzzyva: (n-1) ORDER-REQ + n SPEC-RESPONSE (fast path);
 * HotStuff, parallel: per slot 4 leader broadcasts of n-1 and 3 phases of n-1 votes, + n REPLY.
 */
const EXPECTED_MESSAGES_PER_BATCH: Record<ProtocolName, (n: number) => number> = {
  poe: (n) => n * n,
  pbft: (n) => n - 1 + (n - 1) ** 2 + n * (n - 1) + n,
  zyzzyva: (n) => n - 1 + n,
  hotstuff: (n) => 7 * (n - 1) + n,
};

/**
 * HotStuff's no-op slots (a leader that owns a slot it has no batch for) cost a slot minus the
 * replies. They run only while execution waits for such a slot (replica/hotstuff-parallel.ts);
 * with slots dealt to the leaders that have work (hotstuff-owners.ts) there are so few that
 * messages per accepted batch stay within NOOP_TOLERANCE of a real slot's count (issue 10,
 * item 2), and none at all with load on one leader.
 */
const EXPECTED_MESSAGES_PER_NOOP: Partial<Record<ProtocolName, (n: number) => number>> = {
  hotstuff: (n) => 7 * (n - 1),
};
const NOOP_TOLERANCE = 0.05;

/**
 * The primary crashes mid-run (DESIGN.md figure 11b): the protocol's view change must restore
 * liveness without losing or contradicting an accepted batch. `extra` selects the form that
 * has a view change; protocols without one are skipped with the reason.
 */
const VIEW_CHANGE: Record<ProtocolName, { readonly extra: Record<string, string> } | { readonly skip: string }> = {
  poe: { extra: {} },
  pbft: { extra: {} },
  zyzzyva: { skip: 'replica/zyzzyva.ts implements no view change (crashed backups only, as its header says)' },
  hotstuff: { extra: { mode: 'chained' } },
};

/** Early enough that every case still has most of its batches to go (a batch takes ~5-15 ms). */
const PRIMARY_CRASH_AT_MS = 30;

function explain(r: SimResult): string {
  const shown = r.violations.slice(0, 8).map((v) => `  - ${v}`);
  if (r.violations.length > 8) shown.push(`  ... ${r.violations.length - 8} more`);
  return [
    `${r.protocol} n=${r.n} crashed=[${r.crashed.join(',')}] seed ${r.seed}: ${r.acceptedBatches}/${r.issuedBatches} accepted, stopped: ${r.stopReason}`,
    ...shown,
    `replay: ${r.replay}`,
  ].join('\n');
}

interface Tally {
  cases: number;
  batches: number;
  wallMs: number;
  failures: number;
  notes: string[];
}

const tallies = new Map<string, Tally>();
function tally(protocol: string): Tally {
  let t = tallies.get(protocol);
  if (!t) {
    t = { cases: 0, batches: 0, wallMs: 0, failures: 0, notes: [] };
    tallies.set(protocol, t);
  }
  return t;
}

/**
 * At least one logical client per replica: HotStuff's parallel leaders each serve the clients
 * with id = leader (mod n), so with fewer clients than replicas some leaders only ever fill
 * their slots with no-ops, which costs time and tests little.
 */
const clientsFor = (n: number): number => Math.max(8, n);

/** Runs one case, records it, and asserts safety and liveness with a replayable message. */
function runCase(caseInput: SimInput): SimResult {
  const input: SimInput = { clients: clientsFor(caseInput.n), ...caseInput };
  const started = performance.now();
  const r = runSimulation(input);
  const t = tally(input.protocol);
  t.cases++;
  t.batches += r.acceptedBatches;
  t.wallMs += performance.now() - started;
  if (!r.valid) t.failures++;
  expect(r.valid, explain(r)).toBe(true);
  expect(r.acceptedBatches, explain(r)).toBe(input.batches);
  expect(r.stopReason, explain(r)).toBe('done');
  return r;
}

const seedsFor = (count: number): number[] => Array.from({ length: count }, (_, i) => SEED_BASE + i);

for (const protocol of PROTOCOLS) {
  describe(`compliance: ${protocol}`, () => {
    if (!hasProtocol(protocol)) {
      it.skip(`${protocol}: replica/${protocol}.ts is not registered in replica/protocols.ts yet, so its cases cannot run`, () => {});
      return;
    }

    describe('safety and liveness', () => {
      for (const size of SIZES) {
        const batches = scaled(protocol, size.batches);
        for (const crashed of [0, paperCrashed(size.n)]) {
          for (const seed of seedsFor(size.seeds)) {
            it(`n=${size.n}, ${crashed} silent backup(s), ${batches} batches, seed ${seed}`, () => {
              const r = runCase({ protocol, n: size.n, seed, batches, crashed });
              expect(r.crashed).toEqual(crashed === 0 ? [] : Array.from({ length: crashed }, (_, i) => size.n - crashed + i));
              expect(r.ledgerHeight.min, explain(r)).toBeGreaterThanOrEqual(batches);
            });
          }
        }
      }
    });

    it('is deterministic: the same seed gives byte-identical results over a jittery, duplicating network', () => {
      const input: SimInput = {
        protocol,
        n: 4,
        seed: SEED_BASE,
        batches: 200,
        crashed: 1,
        duplicateProbability: 0.05,
        delay: { baseMs: 1, jitterMs: 2, tailMeanMs: 1 },
      };
      const first = runCase(input);
      const second = runSimulation({ clients: clientsFor(input.n), ...input });
      expect(JSON.stringify(second)).toBe(JSON.stringify(first));
    });

    describe('duplicated messages', () => {
      for (const n of [4, 7]) {
        for (const seed of seedsFor(Math.max(1, Math.ceil(SEEDS / 2)))) {
          it(`n=${n}, 10% of message copies delivered twice, 500 batches, seed ${seed}: safe, live, nothing ordered twice`, () => {
            const r = runCase({ protocol, n, seed, batches: 500, duplicateProbability: 0.1 });
            expect(r.network.duplicated, explain(r)).toBeGreaterThan(0);
            // Replicas deduplicate (DESIGN.md "Workload"): a REQUEST the network delivered twice
            // must not be given a second sequence number.
            expect(r.orderedTwice, `${explain(r)}\n${r.orderedTwice} client batches were ordered twice`).toBe(0);
          });
        }
      }
    });

    describe(`primary crash at ${PRIMARY_CRASH_AT_MS} ms (view change)`, () => {
      const vc = VIEW_CHANGE[protocol];
      if ('skip' in vc) {
        it.skip(`${protocol}: ${vc.skip}`, () => {});
        return;
      }
      const mode = Object.entries(vc.extra)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ');
      // With the primary down, the silent backups may add up to f faults in all.
      for (const { n, batches, crashed } of [
        { n: 4, batches: 800, crashed: 0 },
        { n: 7, batches: 600, crashed: 1 },
        { n: 16, batches: 200, crashed: 1 },
      ]) {
        for (const seed of seedsFor(Math.max(1, Math.ceil(SEEDS / 2)))) {
          it(`n=${n}${mode ? ` ${mode}` : ''}, ${crashed} silent backup(s), ${batches} batches, seed ${seed}: a new view, nothing lost`, () => {
            const r = runCase({ protocol, n, seed, batches, crashed, crashes: [{ replica: 0, atMs: PRIMARY_CRASH_AT_MS }], extra: vc.extra });
            expect(r.viewChanges, `${explain(r)}\nno view change although the primary crashed`).toBeGreaterThanOrEqual(1);
          });
        }
      }
    });

    describe('normal-case messages per accepted batch (fault-free, CHECKPOINT apart)', () => {
      for (const n of [4, 16]) {
        it(`n=${n}: ${EXPECTED_MESSAGES_PER_BATCH[protocol](n)} messages per batch`, () => {
          const batches = n === 4 ? 400 : 120;
          const r = runCase({ protocol, n, seed: SEED_BASE, batches });
          const perBatch = EXPECTED_MESSAGES_PER_BATCH[protocol](n);
          const perNoop = EXPECTED_MESSAGES_PER_NOOP[protocol]?.(n);
          // Every replica executes every slot in a fault-free run, so the height counts the slots.
          const noops = r.ledgerHeight.max - r.acceptedBatches;
          const protocolMessages = r.replicaMessages - r.checkpointMessages;
          const context = `${explain(r)}\nby type: ${JSON.stringify(r.messagesByType)}; no-op slots: ${noops}`;
          if (perNoop === undefined) {
            expect(noops, context).toBe(0);
            expect(r.protocolMessagesPerBatch, context).toBe(perBatch);
          } else {
            // Client batches a leader hands to another (hotstuff-owners.ts) are counted apart.
            const forwarded = r.messagesByType['REQUEST'] ?? 0;
            expect(protocolMessages - forwarded, context).toBe(r.acceptedBatches * perBatch + noops * perNoop);
            expect(r.protocolMessagesPerBatch / perBatch, `${context}\nno-op slots cost more than ${NOOP_TOLERANCE * 100}%`).toBeLessThanOrEqual(
              1 + NOOP_TOLERANCE,
            );
          }
          // Checkpoints: each replica sends one to the n-1 others per interval it completes.
          tally(protocol).notes.push(
            `n=${n}: ${fmt(r.protocolMessagesPerBatch)} msgs/batch (expected ${perBatch}${noops ? `, ${noops} no-op slots` : ''}), ` +
              `${r.checkpointMessages} CHECKPOINT (${fmt(r.checkpointMessages / r.acceptedBatches)}/batch), ${fmt(r.bytesSent / r.acceptedBatches, 0)} bytes/batch`,
          );
        });
      }
    });
  });
}

function fmt(x: number, digits = 2): string {
  return Number.isInteger(x) ? String(x) : x.toFixed(digits);
}

afterAll(() => {
  const lines = [`compliance summary (SIM_SEEDS=${SEEDS}, SIM_SEED_BASE=${SEED_BASE}):`];
  for (const p of PROTOCOLS) {
    const t = tallies.get(p);
    if (!t) {
      lines.push(`  ${p.padEnd(8)} no case ran (${hasProtocol(p) ? 'filtered out' : 'not registered'})`);
      continue;
    }
    lines.push(`  ${p.padEnd(8)} ${t.cases} cases, ${t.batches} batches accepted, ${t.failures} failed, ${(t.wallMs / 1000).toFixed(1)} s`);
    for (const note of t.notes) lines.push(`           ${note}`);
  }
  console.log(lines.join('\n'));
});

// ---------------------------------------------------------------------------------------
// HotStuff: what a slot costs under each certificate rule and mode (issue 10, items 1 and 2)

/** Ed25519 work and messages of n HotStuff replicas, counted by CountingCrypto (never estimated). */
interface SlotCost {
  readonly signs: number;
  readonly verifies: number;
  readonly messages: number;
}

/**
 * A test-local world: n HotStuff cores sharing one CountingCrypto, a FIFO network, no timers.
 * `batches` client batches of client 0 (home leader 0, which leads view 0 in both modes) go to
 * replica 0 at once; the network runs until quiet. Client signing is not counted: the counts
 * are the replicas' work (REPLY signatures included, the client's checks of them not).
 */
function hotstuffCost(mode: 'parallel' | 'chained', rule: 'paper' | 'qc', n: number, batches: number): SlotCost & { readonly height: number } {
  const crypto = new CountingCrypto(createCrypto('sim'));
  const ring = new KeyRing(crypto, 'compliance-cost', n, 1);
  const extra = { mode, hotstuffRule: rule };
  const replicas = Array.from({ length: n }, (_, id) =>
    hotstuff.createReplica(
      { id, n, checkpointIntervalK: 1000, windowK: 2000, records: 1000, valueBytes: 8, viewChangeTimeoutMs: 1e9, extra },
      ring.replicaDeps(id),
    ),
  );
  const client = ring.clientSigner(0);
  const requests = Array.from({ length: batches }, (_, reqNo) => makeRequest(client, 0, 0, reqNo, [{ key: reqNo, value: Buffer.from([reqNo]) }]));
  const queue: { from: Peer; to: number; msg: HotStuffMessage }[] = [];
  let messages = 0;
  const route = (from: number, outs: readonly ReplicaOutput<HotStuffMessage>[]): void => {
    for (const o of outs) {
      if (o.kind === 'send') {
        messages++;
        if (!isClientPeer(o.to)) queue.push({ from, to: o.to, msg: o.msg });
      } else if (o.kind === 'broadcast') {
        for (let to = 0; to < n; to++) if (to !== from) queue.push({ from, to, msg: o.msg });
        messages += n - 1;
      }
    }
  };
  for (let id = 0; id < n; id++) route(id, replicas[id]!.step({ kind: 'start' }, 0));
  crypto.reset();
  for (const msg of requests) route(0, replicas[0]!.step({ kind: 'message', from: clientPeer(0), msg }, 0));
  for (let i = 0; i < queue.length; i++) {
    const e = queue[i]!;
    route(e.to, replicas[e.to]!.step({ kind: 'message', from: e.from, msg: e.msg }, 0));
  }
  const height = replicas[0]!.ledger.height;
  for (const r of replicas) expect(r.ledger.height, `${mode}/${rule} n=${n}: every replica executes every slot`).toBe(height);
  return { signs: crypto.counts.signs, verifies: crypto.counts.verifies, messages, height };
}

/**
 * The header of replica/hotstuff.ts states these per slot (parallel) and per block (chained),
 * fault-free, over all n replicas; f = (n-1)/3 rounded down, nf = n - f.
 * Parallel, both rules: the leader signs PREPARE, PRE-COMMIT, COMMIT, DECIDE (4); each of the
 * n-1 backups signs 3 votes; all n sign a REPLY; the leader verifies the client batch and
 * nf-1 votes per phase (3(nf-1)); each backup verifies the client batch and 4 phase messages.
 * 'qc' adds the leader's signed own vote (3) and, per certificate (3), every backup's check
 * of the nf signatures but its own: (nf-1) backups in it check nf-1, (n-nf) check nf.
 * Chained, per block in the steady state: the leader signs the proposal, every replica its
 * vote (the leader's own only under 'qc') and a REPLY; the leader verifies the client batch
 * and nf-1 votes; each backup the client batch and the proposal, and under 'qc' the justify.
 */
function expectedHotStuffCost(mode: 'parallel' | 'chained', rule: 'paper' | 'qc', n: number): SlotCost {
  const { nf } = quorums(n);
  const qcChecks = (nf - 1) * (nf - 1) + (n - nf) * nf;
  if (mode === 'parallel') {
    const signs = 4 + 3 * (n - 1) + n + (rule === 'qc' ? 3 : 0);
    const verifies = 1 + 3 * (nf - 1) + (n - 1) * (1 + 4) + (rule === 'qc' ? 3 * qcChecks : 0);
    return { signs, verifies, messages: 7 * (n - 1) + n };
  }
  const signs = 1 + (n - 1) + n + (rule === 'qc' ? 1 : 0);
  const verifies = 1 + (nf - 1) + (n - 1) * 2 + (rule === 'qc' ? qcChecks : 0);
  return { signs, verifies, messages: 2 * (n - 1) + n };
}

describe('HotStuff certificate rules: Ed25519 signatures and verifications per slot, counted (issue 10, item 1)', () => {
  for (const mode of ['parallel', 'chained'] as const) {
    for (const rule of ['paper', 'qc'] as const) {
      for (const n of [4, 16]) {
        const want = expectedHotStuffCost(mode, rule, n);
        it(`${mode}, ${rule}, n=${n}: ${want.signs} signatures, ${want.verifies} verifications, ${want.messages} messages per ${mode === 'parallel' ? 'slot' : 'block'}`, () => {
          let per: SlotCost;
          if (mode === 'parallel') {
            const c = hotstuffCost(mode, rule, n, 4);
            expect(c.height).toBe(4);
            per = { signs: c.signs / 4, verifies: c.verifies / 4, messages: c.messages / 4 };
          } else {
            // Four more batches in the pipeline add four blocks; the three-block no-op tail that
            // commits the last batch is the same in both runs and cancels out.
            const a = hotstuffCost(mode, rule, n, 4);
            const b = hotstuffCost(mode, rule, n, 8);
            expect(b.height - a.height).toBe(4);
            per = { signs: (b.signs - a.signs) / 4, verifies: (b.verifies - a.verifies) / 4, messages: (b.messages - a.messages) / 4 };
          }
          tally('hotstuff').notes.push(
            `${mode} ${rule} n=${n}: ${per.signs} signs, ${per.verifies} verifies, ${per.messages} messages per ${mode === 'parallel' ? 'slot' : 'block'}`,
          );
          expect(per).toEqual(want);
        });
      }
    }
  }
  it("'paper' verifies fewer signatures than 'qc', which verifies fewer than before issue 10 (49 and 601 per slot at n = 4, 16)", () => {
    for (const [n, before] of [
      [4, 49],
      [16, 601],
    ] as const) {
      const paper = expectedHotStuffCost('parallel', 'paper', n).verifies;
      const qc = expectedHotStuffCost('parallel', 'qc', n).verifies;
      expect(paper).toBeLessThan(qc);
      expect(qc).toBeLessThan(before);
    }
  });
});

describe('HotStuff slots dealt to the leaders with work: no no-op instances (issue 10, item 2)', () => {
  for (const n of [4, 16]) {
    for (const rule of ['paper', 'qc'] as const) {
      it(`n=${n}, ${rule}: load on one leader (one client): exactly ${7 * (n - 1) + n} messages per batch, no no-op slot`, () => {
        const r = runCase({ protocol: 'hotstuff', n, seed: SEED_BASE, batches: n === 4 ? 300 : 120, clients: 1, extra: { hotstuffRule: rule } });
        const context = `${explain(r)}\nby type: ${JSON.stringify(r.messagesByType)}`;
        expect(r.ledgerHeight.max, `${context}\nno-op slots ran`).toBe(r.acceptedBatches);
        expect(r.protocolMessagesPerBatch, context).toBe(7 * (n - 1) + n);
      });
    }
    it(`n=${n}: the fixed round-robin (hotstuffSlots=roundRobin, the form before) runs no-op slots for the same load`, () => {
      const r = runCase({ protocol: 'hotstuff', n, seed: SEED_BASE, batches: 40, clients: 1, extra: { hotstuffSlots: 'roundRobin' } });
      expect(r.ledgerHeight.max - r.acceptedBatches, explain(r)).toBeGreaterThan(r.acceptedBatches);
    });
  }
});
