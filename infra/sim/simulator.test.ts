/**
 * The simulator itself, driven by the toy protocol (toy-protocol.ts) so that these tests do not
 * depend on the protocol cores they exist to check: determinism, message accounting, faults,
 * and the online and final checks failing runs that are unsafe or not live.
 */
import { describe, expect, it } from 'vitest';
import * as messages from '../../replica/messages.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import { typeNamesFromExports } from '../../replica/protocols.js';
import type { WireMessage } from '../../replica/types.js';
import type { SimInput } from './options.js';
import { runSimulation, Simulation, type SimResult } from './simulator.js';
import * as toyModule from '../../test/fakes/toy-protocol.js';

type ToyInput = Omit<SimInput, 'protocol'> & Partial<Pick<SimInput, 'protocol'>>;

function toySim(input: ToyInput): SimInput {
  return {
    protocol: 'toy',
    module: toyModule.toy as unknown as ProtocolModule<WireMessage>,
    typeNames: typeNamesFromExports(messages, toyModule),
    ...input,
  };
}

const explain = (r: SimResult): string => `seed ${r.seed}: ${r.violations.join('; ')}\nreplay: ${r.replay}`;

describe('simulator', () => {
  it('runs a fault-free cluster to completion, every batch accepted, and counts every message', () => {
    const r = runSimulation(toySim({ n: 4, seed: 1, batches: 500 }));
    expect(r.valid, explain(r)).toBe(true);
    expect(r.stopReason).toBe('done');
    expect(r.acceptedBatches).toBe(500);
    expect(r.issuedBatches).toBe(500);
    // Toy: ORDER to n-1 backups, REPLY from n replicas.
    expect(r.messagesByType['TOY_ORDER']).toBe(500 * 3);
    expect(r.messagesByType['TOY_REPLY']).toBe(500 * 4);
    expect(r.protocolMessagesPerBatch).toBe(7);
    // A checkpoint every 50 batches, each replica to the n-1 others.
    expect(r.checkpointMessages).toBe((500 / 50) * 4 * 3);
    expect(r.messagesPerBatch).toBeCloseTo(7 + 120 / 500, 10);
    expect(r.highestStableCheckpoint).toBe(500);
    expect(r.clientMessages).toBe(500);
    expect(r.bytesSent).toBeGreaterThan(r.replicaMessages * 30);
    expect(r.network.sent).toBe(r.replicaMessages + r.clientMessages);
    expect(r.network.delivered).toBe(r.network.sent);
    expect(r.latencyMs.mean).toBeGreaterThan(0);
  });

  it('is deterministic: the same seed gives byte-identical JSON, another seed does not', () => {
    const input = toySim({ n: 7, seed: 42, batches: 300, dropProbability: 0, duplicateProbability: 0.05, delay: { baseMs: 1, jitterMs: 3, tailMeanMs: 2 } });
    const a = JSON.stringify(runSimulation(input));
    const b = JSON.stringify(runSimulation(input));
    expect(a).toBe(b);
    const c = JSON.stringify(runSimulation({ ...input, seed: 43 }));
    expect(c).not.toBe(a);
  });

  it('spreads batches over several client machines, each with its logical clients', () => {
    const r = runSimulation(toySim({ n: 4, seed: 3, batches: 101, clientMachines: 3, clients: 5 }));
    expect(r.valid, explain(r)).toBe(true);
    expect(r.acceptedBatches).toBe(101);
    // Every reply goes to the machine that sent the batch: n replies per batch, none lost.
    expect(r.messagesByType['TOY_REPLY']).toBe(101 * 4);
  });

  it('makes the highest-numbered backups silent for --crashed K and records them', () => {
    const sim = new Simulation(toySim({ n: 7, seed: 5, batches: 200, crashed: 2 }));
    expect(sim.silent).toEqual([5, 6]);
    const r = sim.run();
    expect(r.valid, explain(r)).toBe(true);
    expect(r.crashed).toEqual([5, 6]);
    // Messages to the silent backups are sent (and counted) but never delivered.
    expect(r.network.toCrashed).toBeGreaterThan(0);
    const cores = sim.replicaCores();
    expect(cores[5]!.ledger.height).toBe(0);
    expect(cores[6]!.ledger.height).toBe(0);
    expect(cores[0]!.ledger.height).toBe(200);
  });

  it('delivers nothing to a replica after it crashes', () => {
    const sim = new Simulation(toySim({ n: 4, seed: 6, batches: 400, crashes: [{ replica: 2, atMs: 60 }] }));
    const r = sim.run();
    expect(r.valid, explain(r)).toBe(true);
    expect(r.crashed).toEqual([2]);
    const h = sim.replicaCores()[2]!.ledger.height;
    expect(h).toBeGreaterThan(0);
    expect(h).toBeLessThan(400);
  });

  it('fails the run the moment a replica executes something else than the canonical commit, with a replay line', () => {
    const r = runSimulation(toySim({ n: 4, seed: 7, batches: 200, extra: { corruptReplica: 2, corruptK: 5 } }));
    expect(r.valid).toBe(false);
    expect(r.stopReason).toBe('safety-violation');
    expect(r.violations[0]).toMatch(/^replica 2 executed digest \w+ at k=5 in view 0, but the canonical commit there is/);
    expect(r.replay).toBe('poe-bench sim --protocol toy --replicas 4 --batches 200 --seed 7 --extra corruptReplica=2 --extra corruptK=5');
  });

  it('without stop-on-violation, the final check still finds the diverging ledger', () => {
    const r = runSimulation(toySim({ n: 4, seed: 7, batches: 100, stopOnViolation: false, extra: { corruptReplica: 1, corruptK: 9 } }));
    expect(r.stopReason).toBe('done');
    expect(r.violations.some((v) => /ledgers diverge: replica \d and replica 1 differ at height 9/.test(v))).toBe(true);
  });

  it('reports a liveness violation when batches stay unaccepted, with why the run stopped', () => {
    // The toy has no view change: with its primary crashed nothing more is accepted.
    const r = runSimulation(toySim({ n: 4, seed: 8, batches: 300, crashes: [{ replica: 0, atMs: 40 }], maxTimeMs: 5000 }));
    expect(r.valid).toBe(false);
    expect(r.stopReason).toBe('time-limit');
    expect(r.acceptedBatches).toBeLessThan(300);
    expect(r.clientTimeouts).toBeGreaterThan(0);
    expect(r.violations.at(-1)).toBe(
      `liveness: ${r.acceptedBatches} of 300 batches accepted (${r.issuedBatches} issued; stopped: time-limit at 5000 ms virtual)`,
    );
  });

  it('stops at the event limit and says so', () => {
    const r = runSimulation(toySim({ n: 4, seed: 9, batches: 1000, maxEvents: 2000 }));
    expect(r.stopReason).toBe('event-limit');
    expect(r.events).toBe(2000);
    expect(r.valid).toBe(false);
  });

  it('a replica cut off by a partition falls behind, and the final check says which accepted batches it lacks', () => {
    // The toy does not retransmit or transfer state, so replica 3 never catches up.
    const r = runSimulation(toySim({ n: 4, seed: 10, batches: 200, partitions: [{ nodes: [3], fromMs: 20, toMs: 40 }] }));
    expect(r.network.partitioned).toBeGreaterThan(0);
    expect(r.acceptedBatches).toBe(200);
    expect(r.violations.some((v) => /is missing from the final ledger of replica 3$/.test(v))).toBe(true);
    expect(r.replay).toContain('--partition 3@20-40');
  });

  it('drops and duplicates messages at the configured rates inside a run', () => {
    const r = runSimulation(toySim({ n: 4, seed: 11, batches: 300, dropProbability: 0.05, duplicateProbability: 0.1, maxTimeMs: 3000 }));
    const { sent, dropped, duplicated } = r.network;
    expect(dropped / sent).toBeGreaterThan(0.03);
    expect(dropped / sent).toBeLessThan(0.07);
    expect(duplicated / sent).toBeGreaterThan(0.08);
    expect(duplicated / sent).toBeLessThan(0.12);
  });

  /** The toy, with replica 2's 'executed' events rewritten by `edit` (undefined drops one). */
  function toyWithEvents(edit: (k: number) => number | undefined): ProtocolModule<WireMessage> {
    return {
      ...(toyModule.toy as unknown as ProtocolModule<WireMessage>),
      createReplica: (options, deps) => {
        const core = toyModule.toy.createReplica(options, deps);
        return {
          id: core.id,
          ledger: core.ledger,
          store: core.store,
          status: () => core.status(),
          step: (input, nowMs) =>
            core.step(input as never, nowMs).flatMap((o) => {
              if (options.id !== 2 || o.kind !== 'event' || o.event.name !== 'executed') return [o];
              const k = edit(o.event.k);
              return k === undefined ? [] : [{ ...o, event: { ...o.event, k } }];
            }) as never,
        };
      },
    };
  }

  it('flags an execution that skips a sequence number', () => {
    const r = runSimulation({ protocol: 'toy', module: toyWithEvents((k) => (k === 3 ? 4 : k)), n: 4, seed: 13, batches: 20 });
    expect(r.stopReason).toBe('safety-violation');
    expect(r.violations[0]).toMatch(/^replica 2 executed k=4 right after k=2: execution must be strictly in order/);
  });

  it("flags a replica whose 'executed' events disagree with its ledger", () => {
    const r = runSimulation({ protocol: 'toy', module: toyWithEvents((k) => (k === 20 ? undefined : k)), n: 4, seed: 13, batches: 20 });
    expect(r.stopReason).toBe('done');
    expect(r.violations).toEqual([`replica 2: its ledger height is 20, but its 'executed' and 'rollback' events add up to k=19`]);
  });

  it('a core that throws stops the run with the exception as a violation', () => {
    const broken: ProtocolModule<WireMessage> = {
      ...(toyModule.toy as unknown as ProtocolModule<WireMessage>),
      createReplica: (options, deps) => {
        const core = toyModule.toy.createReplica(options, deps);
        return {
          id: core.id,
          ledger: core.ledger,
          store: core.store,
          status: () => core.status(),
          step: (input, nowMs) => {
            if (options.id === 1 && input.kind === 'message') throw new Error('boom');
            return core.step(input as never, nowMs) as never;
          },
        };
      },
    };
    const r = runSimulation({ protocol: 'toy', module: broken, n: 4, seed: 12, batches: 10 });
    expect(r.stopReason).toBe('exception');
    expect(r.violations[0]).toMatch(/^replica 1 threw on message input: Error: boom/);
  });
});
