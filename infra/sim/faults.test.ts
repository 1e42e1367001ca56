/**
 * The Byzantine wrappers (replica/byzantine.ts) on each protocol's own proposals, through its
 * FaultHooks: `inTheDark` withholds every proposal from its victims and nothing else;
 * `equivocate` sends the deceived half of the backups consecutive proposals with their batches
 * swapped, and the rest the genuine ones; and what a deceived backup makes of a forged proposal
 * (PoE and PBFT: a valid conflicting proposal it votes for; Zyzzyva: rejected, its history hash
 * does not extend h_{k-1}; HotStuff: rejected, the leader's signature does not cover it). Then
 * the simulator's side of faults: `--fault` flags, composition, faulty replicas left out of the
 * checks, the settle phase, a network that heals, and partitions validated up front.
 */
import { describe, expect, it } from 'vitest';
import { EQUIVOCATE_HOLD_MS, FaultConfigError, formatReplicaFault, withFault, type FaultSpec } from '../../replica/byzantine.js';
import { createCrypto } from '../../replica/crypto.js';
import { KeyRing } from '../../replica/keys.js';
import { makeRequest, requestDigest, type ClientRequest } from '../../replica/messages.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import { getProtocol } from '../../replica/protocols.js';
import { clientPeer, PROTOCOLS, type ProtocolName, type ReplicaCore, type ReplicaOptions, type ReplicaOutput, type WireMessage } from '../../replica/types.js';
import { validatePartitions } from './network.js';
import { faultAssignmentProblem, parseFaultAssignment, resolveSimConfig, simArgs } from './options.js';
import { parseSimFlags } from './command.js';
import { runSimulation, Simulation } from './simulator.js';

const N = 4;
const KEY_SEED = 'faults-test';
const crypto = createCrypto('sim');
const ring = new KeyRing(crypto, KEY_SEED, N, 1);

function options(id: number): ReplicaOptions {
  return {
    id,
    n: N,
    checkpointIntervalK: 50,
    windowK: 200,
    records: 1000,
    valueBytes: 8,
    viewChangeTimeoutMs: 500,
    extra: { keySeed: KEY_SEED, cryptoProvider: 'sim' },
  };
}

const moduleOf = (p: ProtocolName): ProtocolModule<WireMessage> => getProtocol(p) as ProtocolModule<WireMessage>;

/** Client ids whose batches replica 0 proposes (HotStuff's parallel leader 0 serves ids = 0 mod n). */
function requestsForLeader0(count: number): ClientRequest[] {
  return Array.from({ length: count }, (_, i) => makeRequest(ring.clientSigner(0), 0, i * N, 0, [{ key: i + 1, value: Buffer.from([i, 1, 2, 3]) }]));
}

interface Seen {
  readonly k: number;
  readonly digest: string;
}

/** Proposals each replica receives from `outs`, in order, broadcasts expanded. */
function proposalsByRecipient(module: ProtocolModule<WireMessage>, outs: readonly ReplicaOutput<WireMessage>[]): Map<number, Seen[]> {
  const by = new Map<number, Seen[]>();
  for (let r = 1; r < N; r++) by.set(r, []);
  const note = (to: number, msg: WireMessage): void => {
    const slot = module.faults!.proposalSlot(msg);
    if (slot) by.get(to)!.push({ k: slot.k, digest: requestDigest(crypto, batchOf(msg)).toString('hex') });
  };
  for (const o of outs) {
    if (o.kind === 'broadcast') for (let r = 1; r < N; r++) note(r, o.msg);
    else if (o.kind === 'send') note(o.to, o.msg);
  }
  return by;
}

/** The client batch a proposal carries (every protocol's proposal has `request`, HotStuff's chained one in its block). */
function batchOf(msg: WireMessage): ClientRequest {
  const m = msg as { request?: ClientRequest; block?: { request: ClientRequest } };
  return (m.request ?? m.block!.request)!;
}

/** Replica 0 wrapped in `fault`, fed `start` and the requests (one step each, 1 ms apart). */
function drive(
  protocol: ProtocolName,
  fault: FaultSpec,
  requests: readonly ClientRequest[],
): { core: ReplicaCore<WireMessage>; outs: ReplicaOutput<WireMessage>[] } {
  const module = moduleOf(protocol);
  const core = withFault(module.createReplica(options(0), ring.replicaDeps(0)), fault, module, N);
  const outs = [...core.step({ kind: 'start' }, 0)];
  requests.forEach((req, i) => outs.push(...core.step({ kind: 'message', from: clientPeer(0), msg: req }, i + 1)));
  return { core, outs };
}

const hex = (req: ClientRequest): string => requestDigest(crypto, req).toString('hex');

/** What a fresh backup 3 does with a proposal from replica 0. */
function backupReaction(protocol: ProtocolName, msg: WireMessage): ReplicaOutput<WireMessage>[] {
  const module = moduleOf(protocol);
  const backup = module.createReplica(options(3), ring.replicaDeps(3));
  backup.step({ kind: 'start' }, 0);
  return backup.step({ kind: 'message', from: 0, msg }, 10);
}

const rejections = (outs: readonly ReplicaOutput<WireMessage>[]): string[] =>
  outs.flatMap((o) => (o.kind === 'event' && o.event.name === 'rejected' ? [o.event.reason] : []));
const votesFor = (outs: readonly ReplicaOutput<WireMessage>[], digest: string): number =>
  outs.filter((o) => (o.kind === 'broadcast' || o.kind === 'send') && (o.msg as { digest?: Buffer }).digest?.toString('hex') === digest).length;

describe('Byzantine wrappers on each protocol (FaultHooks)', () => {
  for (const protocol of PROTOCOLS) {
    describe(protocol, () => {
      it('has proposal hooks that recognise its proposals and nothing else', () => {
        const module = moduleOf(protocol);
        expect(module.faults, `${protocol} has no FaultHooks`).toBeDefined();
        const [req] = requestsForLeader0(1);
        expect(module.faults!.proposalSlot(req!)).toBeUndefined();
      });

      it('inTheDark: the victim receives no proposal, the other backups every one', () => {
        // Reference: paper Example 3.4, case 2
        const reqs = requestsForLeader0(3);
        const { outs } = drive(protocol, { kind: 'inTheDark', victims: [2] }, reqs);
        const by = proposalsByRecipient(moduleOf(protocol), outs);
        expect(by.get(2)).toEqual([]);
        const expected = reqs.map(hex);
        for (const r of [1, 3])
          expect(
            by.get(r)!.map((s) => s.digest),
            `backup ${r}`,
          ).toEqual(expected);
        // Everything but proposals still reaches the victim (a broadcast other than a proposal stays one).
        const plain = outs.filter((o) => o.kind === 'broadcast' && !moduleOf(protocol).faults!.proposalSlot(o.msg));
        for (const o of plain) expect(o.kind).toBe('broadcast');
      });

      it('equivocate: the deceived half gets consecutive batches swapped, the rest the genuine proposals', () => {
        // Reference: paper Example 3.4, case 1 ("sending proposals for different transactions to different non-faulty replicas")
        const reqs = requestsForLeader0(2);
        const { outs } = drive(protocol, { kind: 'equivocate' }, reqs);
        const by = proposalsByRecipient(moduleOf(protocol), outs);
        const [a, b] = reqs.map(hex) as [string, string];
        const genuine = by.get(1)!;
        expect(genuine.map((s) => s.digest)).toEqual([a, b]);
        expect(by.get(2)).toEqual(genuine);
        // Backups [1, 2, 3]: the second half, replica 3, is deceived: same (v, k), the other batch.
        const lied = by.get(3)!;
        expect(lied.map((s) => s.k)).toEqual(genuine.map((s) => s.k));
        expect(lied.map((s) => s.digest)).toEqual([b, a]);
      });

      it('equivocate: a proposal left without a partner leaves unchanged, to all, when the hold timer fires', () => {
        const [req] = requestsForLeader0(1);
        const { core, outs } = drive(protocol, { kind: 'equivocate' }, [req!]);
        const module = moduleOf(protocol);
        expect(outs.some((o) => (o.kind === 'send' || o.kind === 'broadcast') && module.faults!.proposalSlot(o.msg))).toBe(false);
        const timer = outs.find((o) => o.kind === 'setTimer' && o.name === 'byz-equivocate');
        expect(timer).toMatchObject({ afterMs: EQUIVOCATE_HOLD_MS });
        const flushed = core.step({ kind: 'timer', name: 'byz-equivocate' }, 1 + EQUIVOCATE_HOLD_MS);
        const by = proposalsByRecipient(module, flushed);
        for (let r = 1; r < N; r++) expect(by.get(r)!.map((s) => s.digest)).toEqual([hex(req!)]);
      });

      it('a deceived backup treats the forged proposal as its protocol says', () => {
        const reqs = requestsForLeader0(2);
        const { outs } = drive(protocol, { kind: 'equivocate' }, reqs);
        const module = moduleOf(protocol);
        const forged = outs.find((o) => o.kind === 'send' && o.to === 3 && module.faults!.proposalSlot(o.msg) !== undefined);
        expect(forged).toBeDefined();
        const msg = (forged as { msg: WireMessage }).msg;
        const reaction = backupReaction(protocol, msg);
        const swapped = hex(batchOf(msg));
        expect(swapped).toBe(hex(reqs[1]!));
        if (protocol === 'poe' || protocol === 'pbft') {
          // Not signed by the primary (MACs are per link): a valid conflicting proposal, and the backup votes for it.
          expect(rejections(reaction)).toEqual([]);
          expect(votesFor(reaction, swapped), 'SUPPORT / PREPARE for the swapped batch').toBeGreaterThan(0);
        } else if (protocol === 'zyzzyva') {
          // The wrappers cannot forge h_k = H(h_{k-1}, d'): the forged ORDER-REQ keeps the genuine h_k.
          expect(rejections(reaction).join('; ')).toMatch(/history hash does not extend h_0/);
        } else {
          // The leader signed the genuine PREPARE; the wrappers hold no key to re-sign.
          expect(rejections(reaction)).toContain('prepare: bad signature');
        }
      });
    });
  }
});

describe('faults in the simulator', () => {
  it('parses and formats --fault REPLICA=FAULT, and names what is wrong', () => {
    for (const text of ['0=equivocate', '0=inTheDark:2,3', '1=stopAfter:50', '2=crashAt:120', '3=slow:5', '3=silent']) {
      expect(formatReplicaFault(parseFaultAssignment(text))).toBe(text);
    }
    expect(() => parseFaultAssignment('equivocate')).toThrow(FaultConfigError);
    expect(() => parseFaultAssignment('0=lie')).toThrow(/unknown fault 'lie'/);
    expect(faultAssignmentProblem(parseFaultAssignment('4=silent'), 4)).toMatch(/replicas are 0..3/);
    expect(faultAssignmentProblem(parseFaultAssignment('0=inTheDark:0'), 4)).toMatch(/cannot keep itself in the dark/);
    expect(faultAssignmentProblem(parseFaultAssignment('0=inTheDark:7'), 4)).toMatch(/victim 7 does not exist/);
  });

  it('CLI flags: --fault is repeatable and composes; more than f faulty replicas need --force', () => {
    const [c] = parseSimFlags({ protocol: 'poe', fault: ['0=equivocate', '0=inTheDark:3', '0=stopAfter:50'], settleMs: '1000', healAtMs: '300' });
    expect(c!.faults.map(formatReplicaFault)).toEqual(['0=equivocate', '0=inTheDark:3', '0=stopAfter:50']);
    expect(c!.settleMs).toBe(1000);
    expect(c!.healAtMs).toBe(300);
    expect(simArgs(c!).join(' ')).toContain('--faults 0=equivocate --faults 0=inTheDark:3 --faults 0=stopAfter:50');
    expect(simArgs(c!).join(' ')).toContain('--heal-at-ms 300');
    expect(() => parseSimFlags({ protocol: 'poe', fault: ['0=equivocate', '1=silent'] })).toThrow(
      /--faults: 2 faulty replicas \(0, 1: .*\) exceed f = 1 for n = 4 .*--force/,
    );
    expect(parseSimFlags({ protocol: 'poe', fault: ['0=equivocate', '1=silent'], force: true })[0]!.faults).toHaveLength(2);
    expect(() => parseSimFlags({ protocol: 'poe', fault: ['5=silent'] })).toThrow(/--faults: fault on replica 5: replicas are 0..3/);
    expect(() => parseSimFlags({ protocol: 'poe', fault: ['0=inTheDark:x'] })).toThrow(/--faults: fault 'inTheDark:x': inTheDark needs replica ids/);
  });

  it('a faulty replica is recorded and left out of the checks; several faults on one replica compose', () => {
    const r = runSimulation({
      protocol: 'poe',
      n: 4,
      seed: 3,
      batches: 120,
      faults: [
        { replica: 0, fault: { kind: 'equivocate' } },
        { replica: 0, fault: { kind: 'stopAfter', batches: 40 } },
      ],
    });
    expect(r.valid, r.violations.join('\n')).toBe(true);
    expect(r.crashed).toEqual([0]);
    expect(r.faults).toEqual(['0=equivocate', '0=stopAfter:40']);
    // The primary stopped after 40 batches, so the clients needed a new view.
    expect(r.viewChanges).toBeGreaterThanOrEqual(1);
    expect(r.replay).toContain('--faults 0=equivocate --faults 0=stopAfter:40');
  });

  it('equivocation really happens in a run: the deceived PoE backup receives other batches than the ledger holds', () => {
    // Replica 3 (the deceived half of backups [1, 2, 3]) records every PROPOSE it receives.
    const base = moduleOf('poe');
    const received: { k: number; digest: Buffer }[] = [];
    const module: ProtocolModule<WireMessage> = {
      ...base,
      createReplica: (o, d) => {
        const core = base.createReplica(o, d);
        if (o.id !== 3) return core;
        return {
          id: core.id,
          ledger: core.ledger,
          store: core.store,
          status: () => core.status(),
          step: (input, nowMs) => {
            const slot = input.kind === 'message' && input.from === 0 ? base.faults!.proposalSlot(input.msg) : undefined;
            if (input.kind === 'message' && slot) received.push({ k: slot.k, digest: requestDigest(crypto, batchOf(input.msg)) });
            return core.step(input, nowMs);
          },
        };
      },
    };
    const sim = new Simulation({ protocol: 'poe', module, n: 4, seed: 1, batches: 200, faults: [{ replica: 0, fault: { kind: 'equivocate' } }] });
    const r = sim.run();
    expect(r.valid, r.violations.join('\n')).toBe(true);
    const ledger = sim.replicaCores()[1]!.ledger;
    const lies = received.filter((p) => p.k <= ledger.height && !ledger.digestAt(p.k).equals(p.digest));
    expect(lies.length, `${received.length} proposals received`).toBeGreaterThan(10);
  });

  it("settle phase: a replica that lost the last batches' messages catches up by its protocol's own means once the clients are done", () => {
    // n=7 on a lossy network: the clients accept on nf replies without the replica that lost the
    // last SUPPORTs / COMMITs, and nobody retransmits. PoE fetches the blocks of its view (FETCH /
    // BLOCKS), PBFT the batches (FETCH / BATCHES); both need their timers after the clients stop.
    for (const protocol of ['poe', 'pbft'] as const) {
      // A seed whose run leaves a replica behind (PBFT's seed 1 no longer does since its view change has ACKs).
      const input = { protocol, n: 7, seed: protocol === 'pbft' ? 4 : 1, batches: 100, dropProbability: 0.03 };
      const sim = new Simulation(input);
      const r = sim.run();
      expect(r.valid, `${protocol}: ${r.violations.slice(0, 3).join('\n')}\nreplay: ${r.replay}`).toBe(true);
      expect(r.settledMs, protocol).toBeGreaterThan(0);
      expect(r.converged).toBe(true);
      const heights = sim.replicaCores().map((c) => c.ledger.height);
      expect(new Set(heights).size, `${protocol} heights ${heights.join(',')}`).toBe(1);
      // Without the settle phase the same run ends with a replica behind: what the phase is for.
      const unsettled = runSimulation({ ...input, settleMs: 0 });
      expect(unsettled.converged, protocol).toBe(false);
      expect(unsettled.valid, `${protocol}: without settling, lagging is no violation`).toBe(true);
    }
  });

  it('settle phase: replicas that cannot converge are reported, with their heights', () => {
    // Zyzzyva has no state transfer: a backup that lost its ORDER-REQs stays behind for good.
    const r = runSimulation({ protocol: 'zyzzyva', n: 4, seed: 1, batches: 100, dropProbability: 0.05, settleMs: 2000 });
    expect(r.converged).toBe(false);
    expect(
      r.violations.some((v) => /^convergence: the non-faulty replicas' ledgers still differ .*: nothing was left to happen .*per replica: 0: \d+ /.test(v)),
      r.violations.join('\n'),
    ).toBe(true);
  });

  it('--heal-at-ms: no message is lost or duplicated after it', () => {
    const lossy = runSimulation({ protocol: 'poe', n: 4, seed: 4, batches: 300, dropProbability: 0.05, duplicateProbability: 0.05, healAtMs: 40 });
    const always = runSimulation({ protocol: 'poe', n: 4, seed: 4, batches: 300, dropProbability: 0.05, duplicateProbability: 0.05 });
    expect(lossy.valid && always.valid).toBe(true);
    expect(lossy.network.dropped).toBeGreaterThan(0);
    expect(lossy.network.dropped).toBeLessThan(always.network.dropped / 2);
    expect(lossy.network.duplicated).toBeLessThan(always.network.duplicated / 2);
  });

  it('rejects malformed partitions with a clear error instead of a TypeError', () => {
    const bad: unknown[] = [
      null,
      'x',
      [null],
      [{ fromMs: 0, toMs: 10 }],
      [{ nodes: '2', fromMs: 0, toMs: 10 }],
      [{ nodes: [2], fromMs: 10, toMs: 5 }],
      [{ nodes: [2], fromMs: 0 }],
      [{ nodes: [-1], fromMs: 0, toMs: 5 }],
    ];
    for (const partitions of bad) {
      expect(() => validatePartitions(partitions), JSON.stringify(partitions)).toThrow(RangeError);
      expect(() => new Simulation({ protocol: 'poe', n: 4, seed: 1, batches: 1, partitions: partitions as never }), JSON.stringify(partitions)).toThrow(
        RangeError,
      );
    }
    expect(() => validatePartitions([{ nodes: [2], fromMs: 0, toMs: 10 }])).not.toThrow();
  });

  it('the defaults stay out of replay lines', () => {
    expect(simArgs(resolveSimConfig({ protocol: 'poe', n: 4, seed: 1, batches: 10 }))).toEqual([
      '--protocol',
      'poe',
      '--replicas',
      '4',
      '--batches',
      '10',
      '--seed',
      '1',
    ]);
  });
});
