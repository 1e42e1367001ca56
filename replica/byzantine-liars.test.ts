/**
 * The lying-replica wrappers of issue 13 (replica/byzantine.ts, byzantine-twins.ts) on a scripted
 * core, and the PBFT liar's forged certificates and votes (byzantine-hooks-pbft.ts). Whole runs
 * against the protocols are in infra/sim/scenarios.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { formatFault, parseFault, withFault } from './byzantine.js';
import { pbftAdversaryHooks } from './byzantine-hooks-pbft.js';
import { twinsCut, twinsSide, type TwinsSchedule } from './byzantine-twins.js';
import { createCrypto } from './crypto.js';
import { KeyRing } from './keys.js';
import { makeRequest, requestDigest } from './messages.js';
import { MSG_PRE_PREPARE, MSG_PREPARE, MSG_VIEW_CHANGE, type PbftMessage, type ViewChange } from './pbft.js';
import type { AdversaryHooks, Liar } from './protocol.js';
import { clientPeer, type ReplicaCore, type ReplicaInput, type ReplicaOutput, type WireMessage } from './types.js';

interface TestMsg extends WireMessage {
  readonly type: number;
  readonly view: number;
  readonly value: string;
}
const VC = 1;
const VOTE = 2;
const OTHER = 3;

/** A core that answers each input with the outputs `script` gives, and records its inputs. */
class Scripted implements ReplicaCore<TestMsg> {
  readonly inputs: ReplicaInput<TestMsg>[] = [];
  constructor(
    readonly id: number,
    private readonly script: (input: ReplicaInput<TestMsg>) => ReplicaOutput<TestMsg>[],
  ) {}
  get ledger(): never {
    throw new Error('no ledger');
  }
  get store(): never {
    throw new Error('no store');
  }
  status() {
    return { id: this.id, view: 0, executedK: 0, stableK: 0, inViewChange: false, logEntries: 0 };
  }
  step(input: ReplicaInput<TestMsg>): ReplicaOutput<TestMsg>[] {
    this.inputs.push(input);
    return this.script(input);
  }
}

/** A liar that marks what it forged, so the tests can see which copy went where. */
const testHooks: AdversaryHooks<TestMsg> = {
  liar: (): Liar<TestMsg> => ({
    observe() {},
    viewChangeView: (m) => (m.type === VC ? m.view : undefined),
    forgeViewChange: (m) => ({ ...m, value: `forged:${m.value}` }),
    staleViewChange: (m) => ({ ...m, value: `stale:${m.value}` }),
    conflictingVote: (m) => (m.type === VOTE ? { ...m, value: `lie:${m.value}` } : undefined),
  }),
};
const deps = new KeyRing(createCrypto('sim'), 'byz-test', 4, 1).replicaDeps(1);
const msg = (type: number, view: number, value: string): TestMsg => ({ type, view, value });
const sends = (out: ReplicaOutput<TestMsg>[]) =>
  out.flatMap((o) => (o.kind === 'send' ? [`${o.to}:${o.msg.value}`] : o.kind === 'broadcast' ? [`*:${o.msg.value}`] : []));

describe('fault specs of the lying replicas', () => {
  it('parse and format round trip', () => {
    for (const text of ['forgeViewChange', 'forgeViewChange:stale', 'conflictingVotes', 'twins:7:50:20', 'twins:7:50:20:0']) {
      expect(formatFault(parseFault(text))).toBe(text);
    }
    expect(formatFault(parseFault('twins:7:50:20:1'))).toBe('twins:7:50:20');
    expect(() => parseFault('twins:7:0:20')).toThrow(/SEED:ROUNDMS:ROUNDS/);
    expect(() => parseFault('forgeViewChange:yes')).toThrow(/stale/);
  });

  it('need adversary hooks, or for twins a second instance', () => {
    const core = new Scripted(1, () => []);
    expect(() => withFault(core, { kind: 'conflictingVotes' }, { name: 'poe' }, 4)).toThrow(/no adversary hooks/);
    expect(() => withFault(core, parseFault('twins:1:10:5'), { name: 'poe' }, 4)).toThrow(/second instance/);
  });
});

describe('forgeViewChange', () => {
  it('sends one forged message per view, to everybody and on every re-send, with the earlier views replayed', () => {
    let view = 1;
    const core = new Scripted(1, () => [
      { kind: 'broadcast', msg: msg(VC, view, `vc${view}`) },
      { kind: 'broadcast', msg: msg(OTHER, view, 'x') },
    ]);
    const w = withFault(core, { kind: 'forgeViewChange' }, { name: 'test' }, 4, { adversary: testHooks, deps });
    expect(sends(w.step({ kind: 'start' }, 0))).toEqual(['*:forged:vc1', '*:x']);
    expect(sends(w.step({ kind: 'start' }, 1))).toEqual(['*:forged:vc1', '*:x']);
    view = 2;
    expect(sends(w.step({ kind: 'start' }, 2))).toEqual(['*:forged:vc1', '*:forged:vc2', '*:x']);
    const stale = withFault(new Scripted(1, () => [{ kind: 'send', to: 2, msg: msg(VC, 1, 'vc') }]), parseFault('forgeViewChange:stale'), { name: 'test' }, 4, {
      adversary: testHooks,
      deps,
    });
    expect(sends(stale.step({ kind: 'start' }, 0))).toEqual(['2:stale:vc']);
  });
});

describe('conflictingVotes', () => {
  it('votes genuinely to the peers with (to + id) even and for another value to the others; other messages pass', () => {
    const core = new Scripted(1, () => [
      { kind: 'broadcast', msg: msg(VOTE, 0, 'v') },
      { kind: 'send', to: 2, msg: msg(VOTE, 0, 'w') },
      { kind: 'send', to: 3, msg: msg(VOTE, 0, 'w') },
      { kind: 'broadcast', msg: msg(OTHER, 0, 'o') },
    ]);
    const w = withFault(core, { kind: 'conflictingVotes' }, { name: 'test' }, 4, { adversary: testHooks, deps });
    expect(sends(w.step({ kind: 'start' }, 0))).toEqual(['0:lie:v', '2:lie:v', '3:v', '2:lie:w', '3:w', '*:o']);
  });
});

describe('Twins (Bano, Sonnino et al., OPODIS 2021)', () => {
  const schedule: TwinsSchedule = { seed: 11, roundMs: 10, rounds: 50, partitionOthers: true };

  it('each round draws both sides from the seed; after the last round nobody is cut', () => {
    const splits = new Set<string>();
    for (let r = 0; r < 50; r++) splits.add([0, 1, 2, 3].map((id) => twinsSide(schedule, id, r * 10)).join(''));
    expect(splits.size, `seed ${schedule.seed}: ${[...splits].join(' ')}`).toBeGreaterThan(4);
    expect(twinsSide(schedule, 0, 500)).toBeUndefined();
    expect(twinsCut(schedule, 0, 1, 500)).toBe(false);
    expect(twinsCut({ ...schedule, partitionOthers: false }, 0, 1, 0)).toBe(twinsCut({ ...schedule, partitionOthers: false }, 0, 1, 10));
    // Same inputs, same sides: a replay sees the same partitions.
    expect(twinsSide(schedule, 2, 123)).toBe(twinsSide({ ...schedule }, 2, 123));
  });

  it('routes each message to the instance on its sender’s side, keeps each instance to its side, and shows only instance A', () => {
    // Find a round in which replicas 0 and 2 are on different sides.
    let t = 0;
    while (twinsSide(schedule, 0, t) === twinsSide(schedule, 2, t)) t += 10;
    const side0 = twinsSide(schedule, 0, t)!;
    const made: Scripted[] = [];
    const make = () => {
      const tag = made.length === 0 ? 'A' : 'B';
      const c = new Scripted(1, (input) =>
        input.kind === 'timer'
          ? [{ kind: 'broadcast', msg: msg(OTHER, 0, `${tag}-${input.name}`) }]
          : [
              { kind: 'broadcast', msg: msg(OTHER, 0, tag) },
              { kind: 'setTimer', name: 't', afterMs: 5 },
              { kind: 'event', event: { name: 'executed', k: 1 } as never },
              { kind: 'send', to: clientPeer(0), msg: msg(OTHER, 0, `${tag}-reply`) },
            ],
      );
      made.push(c);
      return c;
    };
    const w = withFault(make(), { kind: 'twins', ...schedule }, { name: 'test' }, 4, { twin: make, twinned: new Set([1]) });
    const [a, b] = made as [Scripted, Scripted];
    const out = w.step({ kind: 'message', from: 0, msg: msg(OTHER, 0, 'hello') }, t);
    const hearer = side0 === 'a' ? a : b;
    const deaf = side0 === 'a' ? b : a;
    expect(hearer.inputs).toHaveLength(1);
    expect(deaf.inputs).toHaveLength(0);
    const tag = side0 === 'a' ? 'A' : 'B';
    // The instance sends only to replicas on its side (never to itself) and to clients.
    const reached = out.flatMap((o) => (o.kind === 'send' && o.msg.value === tag ? [o.to] : []));
    for (const to of reached) expect(twinsSide(schedule, to, t)).toBe(side0);
    expect(reached).toContain(0);
    expect(out.some((o) => o.kind === 'send' && o.to === clientPeer(0) && o.msg.value === `${tag}-reply`)).toBe(true);
    expect(out.some((o) => o.kind === 'setTimer' && o.name === `twin-${side0}:t`)).toBe(true);
    expect(out.filter((o) => o.kind === 'event')).toHaveLength(side0 === 'a' ? 1 : 0);
    // Clients reach both instances; timers go back to the instance that set them.
    w.step({ kind: 'message', from: clientPeer(0), msg: msg(OTHER, 0, 'req') }, t);
    expect(a.inputs.length + b.inputs.length).toBe(3);
    const fired = w.step({ kind: 'timer', name: `twin-${side0}:t` }, t);
    expect(hearer.inputs.at(-1)).toEqual({ kind: 'timer', name: 't' });
    expect(deaf.inputs.some((i) => i.kind === 'timer')).toBe(false);
    expect(fired.length).toBeGreaterThan(0);
  });
});

describe('PBFT liar (byzantine-hooks-pbft.ts)', () => {
  const crypto = createCrypto('sim');
  const ring = new KeyRing(crypto, 'byz-pbft', 7, 1);
  const signer = ring.clientSigner(0);
  const reqs = [0, 1, 2].map((i) => makeRequest(signer, 0, i, 0, [{ key: i, value: Buffer.alloc(8, i) }]));

  it('claims, above its checkpoint, a batch seen at another k as prepared and pre-prepared in the view before the new one (its P and Q sets)', () => {
    // Reference: PBFT §4.4's P_m; issue 13: "claim a prepared certificate for a sequence number that is already committed".
    const liar = pbftAdversaryHooks.liar(3, 7, ring.replicaDeps(3));
    reqs.forEach((request, i) => liar.observe({ type: MSG_PRE_PREPARE, replica: 0, view: 0, k: i + 1, originView: 0, request }, true));
    const vc: ViewChange = {
      type: MSG_VIEW_CHANGE,
      replica: 3,
      view: 2,
      checkpoint: { k: 0, stateDigest: Buffer.alloc(32), senders: [] },
      taken: [],
      prepared: [],
      prePrepared: [],
    };
    expect(liar.viewChangeView(vc)).toBe(2);
    const forged = liar.forgeViewChange(vc) as ViewChange;
    expect(forged.prepared.map((c) => c.k)).toEqual([1, 2, 3]);
    for (const c of forged.prepared) {
      expect(c.view).toBe(1);
      expect(c.digest.equals(requestDigest(crypto, reqs[c.k - 1]!))).toBe(false);
      expect(c.digest.equals(requestDigest(crypto, c.request!))).toBe(true);
    }
    // The same lies in Q: a forger consistent enough to pass the A2 rule's f+1 count if it had company.
    expect(forged.prePrepared.map((q) => [q.k, q.view, q.digest.toString('hex')])).toEqual(forged.prepared.map((c) => [c.k, c.view, c.digest.toString('hex')]));
    const vote: PbftMessage = { type: MSG_PREPARE, replica: 3, view: 0, k: 2, originView: 0, digest: requestDigest(crypto, reqs[1]!) };
    const lie = liar.conflictingVote(vote) as typeof vote;
    expect(lie.k).toBe(2);
    expect(lie.digest.equals(vote.digest)).toBe(false);
  });
});
