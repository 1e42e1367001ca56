/** PoE's codec (replica/poe-wire.ts): every message type round-trips exactly; bad frames fail with CodecError only. */
import { describe, expect, it } from 'vitest';
import { createCrypto } from './crypto.js';
import { KeyRing } from './keys.js';
import { flatCodec, makeCodec, MSG_CHECKPOINT } from './messages.js';
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
  poeCodec,
  type PoeMessage,
  INFORM_LAYOUT,
  SUPPORT_LAYOUT,
  type Inform,
  type Support,
} from './poe.js';
import { CodecError } from './wire.js';
import { request } from '../test/poe-harness.js';

// ---------------------------------------------------------------------------------------
// Codec

describe('PoE codec', () => {
  const ring = new KeyRing(createCrypto('sim'), 'seed', 4, 1);
  const req = request(ring, 3, 9);
  const d = ring.crypto.digest(Buffer.from('d'));
  const entries = [
    { view: 0, k: 601, request: req },
    { view: 1, k: 602, request: request(ring, 4, 1) },
  ];
  const all: PoeMessage[] = [
    req,
    { type: MSG_CHECKPOINT, replica: 2, k: 600, stateDigest: d },
    { type: MSG_PROPOSE, view: 3, k: 17, request: req },
    { type: MSG_SUPPORT, view: 3, k: 17, digest: d },
    { type: MSG_INFORM, view: 3, k: 17, digest: d, clientId: 3, reqNo: 9, result: ring.crypto.digest(d) },
    { type: MSG_VC_REQUEST, view: 2, replica: 1, stableK: 600, stableDigest: d, entries },
    { type: MSG_VC_REQUEST, view: 0, replica: 0, stableK: 0, stableDigest: d, entries: [] },
    { type: MSG_VC_ACK, view: 2, replica: 3, digest: d },
    {
      type: MSG_NV_PROPOSE,
      view: 3,
      stableK: 600,
      stableDigest: d,
      entries,
      certificate: [
        { replica: 0, digest: d },
        { replica: 2, digest: d },
      ],
    },
    { type: MSG_NV_ACK, view: 3, digest: d },
    { type: MSG_FETCH, fromK: 601, toK: 1200 },
    { type: MSG_BLOCKS, entries },
  ];

  it('round-trips every message type exactly and re-encodes to the same frame', () => {
    for (const m of all) {
      const frame = poeCodec.encode(m);
      const back = poeCodec.decode(frame);
      expect(back.type).toBe(m.type);
      expect(poeCodec.encode(back).equals(frame), `type ${m.type} re-encodes identically`).toBe(true);
      // Field by field, ignoring how Buffers are held.
      expect(JSON.parse(JSON.stringify(back))).toEqual(JSON.parse(JSON.stringify(m)));
    }
  });

  it('rejects truncated frames and trailing bytes with CodecError only', () => {
    for (const m of all) {
      const frame = poeCodec.encode(m);
      for (const cut of [1, Math.floor(frame.length / 2), frame.length - 1]) {
        expect(() => poeCodec.decode(frame.subarray(0, cut)), `type ${m.type} cut at ${cut}`).toThrow(CodecError);
      }
      expect(() => poeCodec.decode(Buffer.concat([frame, Buffer.from([0])]))).toThrow(CodecError);
    }
    expect(() => poeCodec.decode(Buffer.from([19]))).toThrow(CodecError);
  });

  it('writes and reads SUPPORT and INFORM exactly as flatCodec with their layouts (bytes, fields in order, errors)', () => {
    const flat = makeCodec<PoeMessage>(
      {
        [MSG_SUPPORT]: flatCodec<Support>(MSG_SUPPORT, 'support', SUPPORT_LAYOUT),
        [MSG_INFORM]: flatCodec<Inform>(MSG_INFORM, 'inform', INFORM_LAYOUT),
      } as never,
      'flat',
    );
    const big = 2 ** 53 - 1;
    const msgs: PoeMessage[] = [
      { type: MSG_SUPPORT, view: 0, k: 1, digest: d },
      { type: MSG_SUPPORT, view: big, k: 2 ** 40 + 3, digest: ring.crypto.digest(d) },
      { type: MSG_INFORM, view: 7, k: big, digest: d, clientId: 2 ** 32 - 1, reqNo: 0, result: ring.crypto.digest(d) },
      { type: MSG_INFORM, view: 0, k: 1, digest: ring.crypto.digest(d), clientId: 5, reqNo: 2 ** 31, result: d },
    ];
    const errorOf = (f: () => unknown): string => {
      try {
        f();
      } catch (err) {
        return `${(err as Error).name}: ${(err as Error).message}`;
      }
      return 'no error';
    };
    for (const m of msgs) {
      const frame = poeCodec.encode(m);
      expect(frame.equals(flat.encode(m)), `type ${m.type} encodes as flatCodec does`).toBe(true);
      const mine = poeCodec.decode(frame);
      const theirs = flat.decode(frame);
      expect(Object.keys(mine)).toEqual(Object.keys(theirs));
      expect(JSON.parse(JSON.stringify(mine))).toEqual(JSON.parse(JSON.stringify(theirs)));
      for (let cut = 1; cut < frame.length; cut += 5) {
        const a = errorOf(() => poeCodec.decode(frame.subarray(0, cut)));
        expect(a).toMatch(/^CodecError/);
        expect(a.replace('poe', 'flat')).toBe(errorOf(() => flat.decode(frame.subarray(0, cut))));
      }
    }
  });
});
