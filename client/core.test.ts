/**
 * The client core's request timeout (issue 11 item 2): fixed by default, following the
 * observed latency when adaptive, so a slow protocol is not measured through its own timeouts.
 */
import { describe, expect, it } from 'vitest';
import { createCrypto } from '../replica/crypto.js';
import { KeyRing } from '../replica/keys.js';
import type { ClientPolicy } from '../replica/protocol.js';
import type { ClientOutput, WireMessage } from '../replica/types.js';
import { ADAPTIVE_TIMEOUT_MULTIPLE, ClientCore, LATENCY_SAMPLES } from './core.js';

interface Reply extends WireMessage {
  readonly type: 'reply';
  readonly clientId: number;
  readonly reqNo: number;
}

/** A protocol whose client accepts on one reply from replica 0. */
const policy: ClientPolicy<Reply> = {
  targets: () => [0],
  replyKey: (m) => ({ clientId: m.clientId, reqNo: m.reqNo }),
  onReply: (p) => ({ accepted: { k: p.request.reqNo, view: 0, digest: p.digest, path: 'fast' } }),
  onTimeout: () => [],
};

function core(adaptive: boolean, clients = 1): ClientCore<Reply> {
  const crypto = createCrypto('node');
  const ring = new KeyRing(crypto, 'core-test', 4, 1);
  let key = 0;
  return new ClientCore<Reply>(
    { origin: 0, clients, clientIdBase: 0, batchSize: 1, valueBytes: 8, requestTimeoutMs: 100, maxBatches: Infinity, adaptiveTimeout: adaptive },
    { crypto, signer: ring.clientSigner(0), keys: { nextKey: () => key++ }, policy },
  );
}

const timerOf = (out: readonly ClientOutput<Reply>[]): number | undefined =>
  out.flatMap((o) => (o.kind === 'setTimer' && o.name.startsWith('req:') ? [o.afterMs] : [])).at(-1);

/** Runs `count` requests of one client, each accepted `latencyMs` after it was sent; returns the last timer set. */
function drive(c: ClientCore<Reply>, count: number, latencyMs: number): number | undefined {
  let now = 0;
  let last = timerOf(c.step({ kind: 'start' }, now));
  for (let reqNo = 0; reqNo < count; reqNo++) {
    now += latencyMs;
    last = timerOf(c.step({ kind: 'message', from: 0, msg: { type: 'reply', clientId: 0, reqNo } as Reply }, now)) ?? last;
  }
  return last;
}

describe('client request timeout', () => {
  it('stays at requestTimeoutMs when not adaptive, however slow the replies', () => {
    expect(drive(core(false), LATENCY_SAMPLES, 500)).toBe(100);
  });

  it('adaptive: rises to a multiple of the recent p99 latency, never below requestTimeoutMs', () => {
    expect(drive(core(true), LATENCY_SAMPLES, 500)).toBe(ADAPTIVE_TIMEOUT_MULTIPLE * 500);
    expect(drive(core(true), LATENCY_SAMPLES, 5)).toBe(100);
  });

  it('adaptive: a first wave slower than requestTimeoutMs is held to the timeout its first replies give, not retransmitted', () => {
    const timeoutsOf = (out: readonly ClientOutput<Reply>[]) => out.filter((o) => o.kind === 'event' && o.event.name === 'timeout').length;
    const reply = (clientId: number): { kind: 'message'; from: number; msg: Reply } => ({
      kind: 'message',
      from: 0,
      msg: { type: 'reply', clientId, reqNo: 0 } as Reply,
    });
    for (const adaptive of [true, false]) {
      const c = core(adaptive, 2);
      c.step({ kind: 'start' }, 0); // clients 0 and 1 each send one request, timers at 100 ms
      c.step(reply(0), 80); // client 0's reply after 80 ms: the adaptive timeout becomes 4 x 80
      const fired = c.step({ kind: 'timer', name: 'req:1' }, 100);
      if (adaptive) {
        // Held: re-armed to 0 + 320 ms, no timeout, nothing resent.
        expect(timeoutsOf(fired)).toBe(0);
        expect(timerOf(fired)).toBe(ADAPTIVE_TIMEOUT_MULTIPLE * 80 - 100);
        expect(timeoutsOf(c.step({ kind: 'timer', name: 'req:1' }, ADAPTIVE_TIMEOUT_MULTIPLE * 80))).toBe(1);
      } else {
        expect(timeoutsOf(fired)).toBe(1);
      }
    }
  });
});
