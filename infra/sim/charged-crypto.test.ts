/**
 * Crypto charged without being computed (issue 12 item 1): the stand-in provider keeps what
 * honest cores rely on, an honest run takes the same course with it as with computed crypto,
 * and a run with a Byzantine replica always computes, so a forgery still fails to verify.
 */
import { describe, expect, it } from 'vitest';
import { CountingCrypto } from '../../replica/crypto-counter.js';
import { createCrypto, DIGEST_BYTES, SIGNATURE_BYTES } from '../../replica/crypto.js';
import type { ClientRequest } from '../../replica/messages.js';
import { MSG_PROPOSE, type PoeMessage } from '../../replica/poe-wire.js';
import type { ProtocolModule } from '../../replica/protocol.js';
import { getProtocol } from '../../replica/protocols.js';
import type { ProtocolName, ReplicaCore, ReplicaOutput, WireMessage } from '../../replica/types.js';
import { ChargedCrypto } from './charged-crypto.js';
import { simCryptoMode, type SimInput } from './options.js';
import { scenario, type ScenarioName } from './scenarios.js';
import { Simulation, type SimResult } from './simulator.js';
import { WorkCounter } from './work-counter.js';

const bytes = (s: string): Buffer => Buffer.from(s);

describe('ChargedCrypto', () => {
  const c = new ChargedCrypto();

  it('digests: 32 bytes, equal for equal input, different for inputs that differ in one bit, length or split', () => {
    const seen = new Set<string>();
    const inputs: Buffer[] = [Buffer.alloc(0), Buffer.alloc(1), Buffer.alloc(2), Buffer.alloc(4), Buffer.alloc(5)];
    const base = Buffer.alloc(64, 7);
    for (let bit = 0; bit < 64 * 8; bit++) {
      const b = Buffer.from(base);
      b[bit >> 3]! ^= 1 << (bit & 7);
      inputs.push(b);
    }
    for (const x of inputs) {
      const d = c.digest(x);
      expect(d.length).toBe(DIGEST_BYTES);
      expect(c.digest(Buffer.from(x)).equals(d)).toBe(true);
      seen.add(d.toString('hex'));
    }
    expect(seen.size).toBe(inputs.length);
    // digestParts hashes the concatenation, whatever the split.
    expect(c.digestParts([bytes('ab'), bytes('cdefg')]).equals(c.digest(bytes('abcdefg')))).toBe(true);
    // Every split of 13 bytes into three parts (empty ones and words straddling parts included).
    const whole = bytes('0123456789abc');
    for (let i = 0; i <= whole.length; i++) {
      for (let j = i; j <= whole.length; j++) {
        const parts = [whole.subarray(0, i), whole.subarray(i, j), whole.subarray(j)];
        expect(c.digestParts(parts).equals(c.digest(whole)), `split at ${i} and ${j}`).toBe(true);
      }
    }
    expect(c.digestParts([bytes('0123456789ab'), bytes('d')]).equals(c.digest(whole))).toBe(false);
  });

  it('signatures verify under the signer’s key over the same bytes only', () => {
    const alice = c.signer(Buffer.alloc(32, 1));
    const bob = c.signer(Buffer.alloc(32, 2));
    const msg = bytes('batch 17: 10 writes');
    const sig = alice.sign(msg);
    expect(sig.length).toBe(SIGNATURE_BYTES);
    expect(c.verifier(alice.publicKey).verify(msg, sig)).toBe(true);
    expect(c.verifier(bob.publicKey).verify(msg, sig)).toBe(false);
    expect(c.verifier(alice.publicKey).verify(bytes('batch 17: 10 writez'), sig)).toBe(false);
    expect(c.verifier(alice.publicKey).verify(msg, bob.sign(msg))).toBe(false);
    expect(c.verifier(alice.publicKey).verify(msg, sig.subarray(0, 32))).toBe(false);
    // A key this provider never made verifies nothing.
    expect(c.verifier(Buffer.alloc(32, 9)).verify(msg, sig)).toBe(false);
  });

  it('MACs check under the same key over the same bytes only', () => {
    const k1 = Buffer.alloc(32, 3);
    const k2 = Buffer.alloc(32, 4);
    const tag = c.mac(k1, bytes('frame'));
    expect(c.macVerify(k1, bytes('frame'), tag)).toBe(true);
    expect(c.macVerify(k2, bytes('frame'), tag)).toBe(false);
    expect(c.macVerify(k1, bytes('frame!'), tag)).toBe(false);
    expect(c.macVerify(k1, bytes('frame'), tag.subarray(0, 31))).toBe(false);
    for (let byte = 0; byte < tag.length; byte++) {
      const forged = Buffer.from(tag);
      forged[byte]! ^= 0x80;
      expect(c.macVerify(k1, bytes('frame'), forged), `tag byte ${byte} flipped`).toBe(false);
    }
  });

  it('is counted call for call as the computing provider is (the cost model charges the same work)', () => {
    const run = (inner: ReturnType<typeof createCrypto> | ChargedCrypto) => {
      const counted = new CountingCrypto(inner);
      const s = counted.signer(Buffer.alloc(32, 5));
      const v = counted.verifier(s.publicKey);
      v.verify(bytes('x'.repeat(300)), s.sign(bytes('x'.repeat(300))));
      counted.digest(bytes('y'.repeat(90)));
      counted.digestParts([bytes('a'), bytes('bc')]);
      counted.macVerify(bytes('k'), bytes('z'.repeat(40)), counted.mac(bytes('k'), bytes('z'.repeat(40))));
      return counted.counts;
    };
    expect(run(new ChargedCrypto())).toEqual(run(createCrypto('sim')));
  });
});

describe('simCryptoMode: charged only where no replica is Byzantine', () => {
  it('charges honest runs and runs with crashes or slow replicas, computes with a Byzantine fault, refuses to charge one', () => {
    expect(simCryptoMode(undefined, [])).toBe('charged');
    expect(
      simCryptoMode('auto', [
        { replica: 1, fault: { kind: 'silent' } },
        { replica: 2, fault: { kind: 'slow', delayMs: 5 } },
      ]),
    ).toBe('charged');
    expect(simCryptoMode('computed', [])).toBe('computed');
    for (const fault of [{ kind: 'equivocate' }, { kind: 'forgeViewChange' }, { kind: 'conflictingVotes' }] as const) {
      expect(simCryptoMode('auto', [{ replica: 0, fault }])).toBe('computed');
      expect(() => simCryptoMode('charged', [{ replica: 0, fault }])).toThrow(/Byzantine/);
    }
  });
});

/** Everything a run reports, less the crypto mode: none of it may depend on how crypto was done. */
function outcome(sim: Simulation, r: SimResult): object {
  const { crypto, ...rest } = r;
  void crypto;
  // Digests differ between the providers (other hash functions); the batches, their positions and times may not.
  const accepted = sim.acceptedList().map(({ digest, ...a }) => (void digest, a));
  const ledgers = sim.replicaCores().map((core) => core.ledger.height);
  return { rest, accepted, ledgers };
}

function both(input: SimInput): { charged: object; computed: object; chargedMode: string; computedMode: string; valid: boolean } {
  const a = new Simulation({ ...input, crypto: 'auto' });
  const ra = a.run();
  const b = new Simulation({ ...input, crypto: 'computed' });
  const rb = b.run();
  return { charged: outcome(a, ra), computed: outcome(b, rb), chargedMode: ra.crypto, computedMode: rb.crypto, valid: ra.valid && rb.valid };
}

describe('an honest run takes the same course with charged and with computed crypto', () => {
  // Zyzzyva and HotStuff are not live under this loss with either crypto (seed 1: the same
  // violations both ways), so they run with duplication and reordering only.
  const protocols: [ProtocolName, number][] = [
    ['poe', 0.05],
    ['pbft', 0.05],
    ['zyzzyva', 0],
    ['hotstuff', 0],
  ];
  for (const [protocol, drop] of protocols) {
    for (const seed of [1, 2]) {
      it(`${protocol}, n=7, 150 batches, ${drop * 100}% loss, 5% duplication, seed ${seed}: same accepted batches, ledgers, messages and times`, () => {
        const r = both({
          protocol,
          n: 7,
          seed,
          batches: 150,
          dropProbability: drop,
          duplicateProbability: 0.05,
          delay: { baseMs: 1, jitterMs: 2, tailMeanMs: 0.5 },
        });
        expect(r.chargedMode).toBe('charged');
        expect(r.computedMode).toBe('computed');
        expect(r.valid, `seed ${seed}`).toBe(true);
        expect(r.charged, `seed ${seed}`).toEqual(r.computed);
      });
    }
  }
  const families: ScenarioName[] = ['primary-crash', 'healing-partition', 'crash-and-loss'];
  for (const family of families) {
    for (const protocol of ['poe', 'pbft'] as const) {
      const seed = 3;
      it(`scenario ${family}, ${protocol}, seed ${seed}`, () => {
        const r = both(scenario(family).build(protocol, seed));
        expect(r.chargedMode).toBe('charged');
        expect(r.charged, `seed ${seed}`).toEqual(r.computed);
      });
    }
  }

  it('with a cost hook the counted work is the same too (the model charges what computed crypto would)', () => {
    const input: SimInput = { protocol: 'poe', n: 4, seed: 5, batches: 120 };
    const charged = new WorkCounter();
    const computed = new WorkCounter();
    expect(new Simulation({ ...input, crypto: 'auto' }, charged).run().crypto).toBe('charged');
    expect(new Simulation({ ...input, crypto: 'computed' }, computed).run().crypto).toBe('computed');
    expect(charged.replicas).toEqual(computed.replicas);
    expect(charged.clients).toEqual(computed.clients);
    expect(charged.replicas.crypto.verifies).toBeGreaterThan(0);
  });
});

/**
 * A PoE primary that forges its clients' batches: it changes the first write's value in every
 * PROPOSE it broadcasts and keeps the client's signature (paper §3.1: replicas accept only
 * batches their clients signed; Figure 3, line 8: a backup checks the proposal is valid).
 */
function forgingPoe(forger: number): ProtocolModule<WireMessage> {
  const base = getProtocol('poe');
  const forge = (req: ClientRequest): ClientRequest => {
    const body = Buffer.from(req.body);
    body[body.length - 1]! ^= 0xff;
    return { ...req, body };
  };
  const tamper = (o: ReplicaOutput<WireMessage>): ReplicaOutput<WireMessage> => {
    if ((o.kind === 'broadcast' || o.kind === 'send') && o.msg.type === MSG_PROPOSE) {
      const m = o.msg as PoeMessage & { type: typeof MSG_PROPOSE };
      return { ...o, msg: { ...m, request: forge(m.request) } };
    }
    return o;
  };
  return {
    ...base,
    createReplica: (options, deps) => {
      const core = base.createReplica(options, deps);
      if (options.id !== forger) return core;
      return new Proxy(core, {
        get(target, key) {
          if (key === 'step') return (input: Parameters<ReplicaCore<WireMessage>['step']>[0], nowMs: number) => target.step(input, nowMs).map(tamper);
          const v = Reflect.get(target, key, target) as unknown;
          return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
        },
      });
    },
  };
}

describe('a run with a Byzantine replica computes crypto, and a forged client signature is rejected', () => {
  for (const seed of [1, 2]) {
    it(`PoE n=4, the view-0 primary forges batches (declared Byzantine), seed ${seed}: computed, rejected, safe and live`, () => {
      const input: SimInput = {
        protocol: 'poe',
        module: forgingPoe(0),
        n: 4,
        seed,
        batches: 60,
        faults: [{ replica: 0, fault: { kind: 'forgeViewChange' } }],
      };
      const r = new Simulation(input).run();
      expect(r.crypto).toBe('computed');
      expect(r.rejectedByReason['PROPOSE with an invalid client request'] ?? 0, `seed ${seed}: ${JSON.stringify(r.rejectedByReason)}`).toBeGreaterThan(0);
      // The backups moved past the forger by a view change and ordered only what the clients signed.
      expect(r.viewChanges, `seed ${seed}`).toBeGreaterThan(0);
      expect(r.valid, `seed ${seed}: ${r.violations.join('; ')}`).toBe(true);
      expect(r.acceptedBatches).toBe(60);
      expect(() => new Simulation({ ...input, crypto: 'charged' })).toThrow(/Byzantine/);
    });
  }
});
