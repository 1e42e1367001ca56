/** PoE's client rule (replica/poe-client.ts; paper Figure 3, lines 1-3, §3.2). */
import { describe, expect, it } from 'vitest';
import { createCrypto } from './crypto.js';
import { KeyRing } from './keys.js';
import { makeRequest, requestDigest } from './messages.js';
import { MSG_INFORM, poe, PoeClientPolicy, type Inform, type PoeMessage } from './poe.js';
import type { PendingRequest } from './protocol.js';
import { clientPeer } from './types.js';
import { request } from '../test/poe-harness.js';

// ---------------------------------------------------------------------------------------
// Client (Figure 3, lines 1-3)

describe('PoE client policy', () => {
  const ring = new KeyRing(createCrypto('sim'), 'seed', 4, 1);
  const req = request(ring, 1, 0);
  const digest = ring.crypto.digest(req.body);
  const inform = (over: Partial<Inform> = {}): Inform => ({
    type: MSG_INFORM,
    view: 0,
    k: 5,
    digest,
    clientId: 1,
    reqNo: 0,
    result: ring.crypto.digest(Buffer.from('block 5')),
    ...over,
  });
  const pending = (): PendingRequest => ({ request: req, digest, firstSentMs: 0, timeouts: 0 });

  it('accepts on nf identical INFORMs from distinct replicas, not on nf - 1', () => {
    // Reference: paper Figure 3, lines 2-3
    const policy = new PoeClientPolicy({ n: 4, origin: 0 });
    const p = pending();
    expect(policy.onReply(p, 0, inform(), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 0, inform(), 0)?.accepted).toBeUndefined(); // same replica twice
    expect(policy.onReply(p, 1, inform(), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 2, inform(), 0)?.accepted).toEqual({ k: 5, view: 0, digest, path: 'inform' });
  });

  it('does not count non-identical INFORMs together', () => {
    // Reference: paper Figure 3, line 2 ("identical"), Theorem 3.3
    const policy = new PoeClientPolicy({ n: 4, origin: 0 });
    const p = pending();
    expect(policy.onReply(p, 0, inform(), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 1, inform(), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 2, inform({ result: ring.crypto.digest(Buffer.from('other')) }), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 3, inform({ k: 6 }), 0)?.accepted).toBeUndefined();
    expect(policy.onReply(p, 3, inform({ view: 1 }), 0)?.accepted).toBeUndefined();
    // An INFORM for another batch, or from a client peer, never counts.
    expect(policy.onReply(p, 3, inform({ digest: ring.crypto.digest(Buffer.from('x')) }), 0)).toBeUndefined();
    expect(policy.onReply(p, clientPeer(0), inform(), 0)).toBeUndefined();
    expect(policy.onReply(p, 3, inform(), 0)?.accepted).toMatchObject({ k: 5 });
  });

  it('sends to the primary of the last accepted view and broadcasts on timeout', () => {
    // Reference: paper Figure 3, line 1; §3.2 ("it can broadcast its request to all replicas")
    const policy = new PoeClientPolicy({ n: 4, origin: 0 });
    expect(policy.targets(req)).toEqual([0]);
    const p = pending();
    for (const j of [1, 2, 3]) policy.onReply(p, j, inform({ view: 5 }), 0);
    expect(policy.targets(req)).toEqual([1]);
    expect(policy.onTimeout(p, 0)).toEqual([{ kind: 'broadcast', msg: req }]);
  });
});

describe('PoE client rule against a flooding replica', () => {
  it('counts one INFORM per replica, so a faulty replica sending many variants cannot block acceptance', () => {
    // Reference: paper Figure 3, lines 2-3 (nf identical INFORMs from distinct replicas).
    const n = 4;
    const policy = poe.createClientPolicy({ n, origin: 0 });
    const crypto = createCrypto('sim');
    const ring = new KeyRing(crypto, 'flood', n, 1);
    const request = makeRequest(ring.clientSigner(0), 0, 7, 0, [{ key: 1, value: Buffer.alloc(8) }]);
    const digest = requestDigest(crypto, request);
    const p: PendingRequest = { request, digest, firstSentMs: 0, timeouts: 0 };
    const inform = (result: number) => ({ type: MSG_INFORM, view: 0, k: 1, digest, clientId: 7, reqNo: 0, result: Buffer.alloc(32, result) }) as PoeMessage;
    for (let i = 0; i < 200; i++) expect(policy.onReply(p, 3, inform(100 + (i % 150)), 0)).toBeUndefined();
    expect(policy.onReply(p, 0, inform(1), 0)).toBeUndefined();
    expect(policy.onReply(p, 1, inform(1), 0)).toBeUndefined();
    expect(policy.onReply(p, 2, inform(1), 0)?.accepted?.k).toBe(1);
  });
});
