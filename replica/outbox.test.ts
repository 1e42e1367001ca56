import { describe, expect, it } from 'vitest';
import { Outbox } from './outbox.js';
import type { WireMessage } from './types.js';

const msg = (type: number): WireMessage => ({ type }) as WireMessage;

describe('Outbox', () => {
  it('returns outputs in the order they were produced, then starts empty', () => {
    const box = new Outbox<WireMessage>();
    box.broadcast(msg(1));
    box.send(2, msg(2));
    box.setTimer('vc', 100);
    box.cancelTimer('vc');
    box.reject('bad digest', 3);
    expect(box.pending).toHaveLength(5);
    expect(box.drain()).toEqual([
      { kind: 'broadcast', msg: msg(1) },
      { kind: 'send', to: 2, msg: msg(2) },
      { kind: 'setTimer', name: 'vc', afterMs: 100 },
      { kind: 'cancelTimer', name: 'vc' },
      { kind: 'event', event: { name: 'rejected', reason: 'bad digest', from: 3 } },
    ]);
    expect(box.drain()).toEqual([]);
  });
});
