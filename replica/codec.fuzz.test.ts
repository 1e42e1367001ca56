/**
 * Fuzzes the common codec (makeCodec(commonCodecs)) with random frames and mutated valid
 * frames: bit flips, truncations, extensions, corrupted length fields and counts. Whatever
 * arrives, decoding either returns a message that re-encodes to the very same frame or throws
 * CodecError (wire.ts: "the ONLY error decoders throw"); and no list is allocated with more
 * elements than the frame has bytes, so a forged count cannot make a replica allocate.
 *
 * Replay a failure with FUZZ_SEED=<seed> npx vitest run replica/codec.fuzz.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Rng } from '../client/random.js';
import { createCrypto } from './crypto.js';
import { commonCodecs, makeCodec, makeRequest, MSG_CHECKPOINT, noopRequest, type CommonMessage, type Write } from './messages.js';
import { CodecError, Reader, type Writer } from './wire.js';

const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed_c0de);
const MUTATED_FRAMES = 6000;
const RANDOM_FRAMES = 3000;

const codec = makeCodec<CommonMessage>(commonCodecs, 'common');
const crypto = createCrypto('node');
const signer = crypto.signer(Buffer.alloc(32, 3));

// Request frame layout: [type][u32 body length][u16 origin][u32 clientId][u32 reqNo]
// [u32 write count][writes: u32 key, u16 value length, value]...[64-byte signature].
const BODY_LENGTH_AT = 1;
const WRITE_COUNT_AT = 15;
const FIRST_VALUE_LENGTH_AT = 23;
// Checkpoint frame layout: [type][u16 replica][u53 k][32-byte digest].
const CHECKPOINT_K_AT = 3;

function validFrames(rng: Rng): Buffer[] {
  const frames: Buffer[] = [];
  for (const [count, valueBytes] of [
    [0, 0],
    [1, 1],
    [3, 8],
    [10, 64],
    [100, 16],
  ] as const) {
    const writes: Write[] = [];
    for (let i = 0; i < count; i++) {
      const value = Buffer.alloc(valueBytes);
      for (let b = 0; b < valueBytes; b++) value[b] = rng.nextInt(256);
      writes.push({ key: rng.nextU32(), value });
    }
    frames.push(codec.encode(makeRequest(signer, rng.nextInt(65536), rng.nextU32(), rng.nextU32(), writes)));
  }
  frames.push(codec.encode(noopRequest(7)));
  frames.push(codec.encode({ type: MSG_CHECKPOINT, replica: 3, k: 600, stateDigest: crypto.digest(Buffer.from('state')) }));
  frames.push(codec.encode({ type: MSG_CHECKPOINT, replica: 0, k: Number.MAX_SAFE_INTEGER, stateDigest: Buffer.alloc(32) }));
  return frames;
}

/** Counts and lengths a forger would pick: limits, limits plus one, powers of two, all ones. */
const FORGED_U32 = [0, 1, 2, 255, 65535, 65536, 2 ** 20, 2 ** 20 + 1, 2 ** 24, 2 ** 31 - 1, 2 ** 31, 0xffff_ffff];

function mutate(rng: Rng, frame: Buffer): Buffer {
  const out = Buffer.from(frame);
  switch (rng.nextInt(7)) {
    case 0: {
      // Flip 1 to 8 bits.
      const flips = 1 + rng.nextInt(8);
      for (let i = 0; i < flips; i++) out[rng.nextInt(out.length)]! ^= 1 << rng.nextInt(8);
      return out;
    }
    case 1:
      return out.subarray(0, rng.nextInt(out.length));
    case 2: {
      const extra = Buffer.alloc(1 + rng.nextInt(64));
      for (let i = 0; i < extra.length; i++) extra[i] = rng.nextInt(256);
      return Buffer.concat([out, extra]);
    }
    case 3:
      return writeU32(out, BODY_LENGTH_AT, forged(rng));
    case 4:
      return writeU32(out, WRITE_COUNT_AT, forged(rng));
    case 5:
      if (out.length >= FIRST_VALUE_LENGTH_AT + 2) out.writeUInt16BE(rng.nextInt(65536), FIRST_VALUE_LENGTH_AT);
      if (out[0] === MSG_CHECKPOINT) out.writeUInt32BE(rng.nextU32(), CHECKPOINT_K_AT);
      return out;
    default:
      // A forged u32 anywhere, then maybe another type byte.
      if (out.length >= 4) writeU32(out, rng.nextInt(out.length - 3), forged(rng));
      if (rng.chance(0.2)) out[0] = rng.nextInt(256);
      return out;
  }
}

function forged(rng: Rng): number {
  return rng.chance(0.7) ? FORGED_U32[rng.nextInt(FORGED_U32.length)]! : rng.nextU32();
}

function writeU32(buf: Buffer, at: number, value: number): Buffer {
  if (at + 4 <= buf.length) buf.writeUInt32BE(value >>> 0, at);
  return buf;
}

function randomFrame(rng: Rng): Buffer {
  const frame = Buffer.alloc(rng.nextInt(300));
  for (let i = 0; i < frame.length; i++) frame[i] = rng.nextInt(256);
  // Mostly known types, so the fuzzing reaches the field readers.
  if (frame.length > 0 && rng.chance(0.8)) frame[0] = 1 + rng.nextInt(2);
  return frame;
}

type Outcome = 'decoded' | CodecError['reason'];

/** Decodes one frame and checks the contract; returns what happened. */
function check(frame: Buffer, where: string): Outcome {
  let msg: CommonMessage;
  try {
    msg = codec.decode(frame);
  } catch (err) {
    if (err instanceof CodecError) return err.reason;
    throw new Error(`${where}: decode threw ${(err as Error).name}: ${(err as Error).message} for ${frame.toString('hex')}`);
  }
  const again = codec.encode(msg);
  if (!again.equals(frame)) throw new Error(`${where}: decoded but re-encodes differently: ${frame.toString('hex')}`);
  return 'decoded';
}

// Every list the decoder allocates must be bounded by the frame: wrap Reader.list to check the
// count it is about to allocate for (seen at the first element read) against the frame size.
const originalList = Reader.prototype.list;
let largestListElements = 0;
let frameBytes = 0;
/** Recorded, not thrown: makeCodec turns anything a field reader throws into CodecError. */
let allocationViolation: string | undefined;
beforeAll(() => {
  vi.spyOn(Reader.prototype, 'list').mockImplementation(function <T>(
    this: Reader,
    read: (r: Reader) => T,
    what?: string,
    minElementBytes?: number,
    max?: number,
  ): T[] {
    const countAt = this.offset;
    const bytes = (this as unknown as { buf: Buffer }).buf;
    let first = true;
    return originalList.call(
      this,
      (r: Reader) => {
        if (first) {
          first = false;
          const count = bytes.readUInt32BE(countAt);
          largestListElements = Math.max(largestListElements, count);
          if (count > frameBytes) allocationViolation ??= `allocated a list of ${count} elements from a ${frameBytes}-byte frame`;
        }
        return read(r);
      },
      what,
      minElementBytes,
      max,
    ) as T[];
  });
});
afterAll(() => {
  vi.restoreAllMocks();
});

function decodeFrame(frame: Buffer, where: string): Outcome {
  frameBytes = frame.length;
  allocationViolation = undefined;
  const outcome = check(frame, where);
  if (allocationViolation) throw new Error(`${where}: ${allocationViolation}: ${frame.toString('hex')}`);
  return outcome;
}

describe(`common codec fuzz (seed ${SEED})`, () => {
  it('valid frames decode and re-encode byte for byte', () => {
    console.log(`codec fuzz seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
    const rng = new Rng(SEED);
    for (const frame of validFrames(rng)) expect(decodeFrame(frame, 'valid')).toBe('decoded');
  });

  it('mutated valid frames only ever throw CodecError', () => {
    const rng = new Rng(SEED);
    const frames = validFrames(rng);
    const outcomes = new Map<Outcome, number>();
    for (let i = 0; i < MUTATED_FRAMES; i++) {
      const frame = mutate(rng, frames[rng.nextInt(frames.length)]!);
      const outcome = decodeFrame(frame, `seed ${SEED} mutation ${i}`);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
    // The mutations reach every rejection the common messages can produce.
    for (const reason of ['truncated', 'oversized', 'unknown-type', 'trailing-bytes', 'invalid'] as const) {
      expect(outcomes.get(reason) ?? 0, `seed ${SEED}: no frame was rejected as ${reason}`).toBeGreaterThan(0);
    }
    // Some mutations (bit flips inside values and signatures) still decode.
    expect(outcomes.get('decoded') ?? 0).toBeGreaterThan(0);
    expect(largestListElements).toBeGreaterThan(0);
  });

  it('random frames only ever throw CodecError', () => {
    const rng = new Rng(SEED ^ 0x9e37_79b9);
    for (let i = 0; i < RANDOM_FRAMES; i++) decodeFrame(randomFrame(rng), `seed ${SEED} random frame ${i}`);
  });

  it('a forged write count of 2^31 is refused before allocation', () => {
    const frame = codec.encode(makeRequest(signer, 1, 2, 3, [{ key: 1, value: Buffer.alloc(4) }]));
    for (const count of [2 ** 31, 0xffff_ffff, 2 ** 20 + 1]) {
      expect(decodeFrame(writeU32(Buffer.from(frame), WRITE_COUNT_AT, count), `count ${count}`)).toBe('oversized');
    }
    // Within the list limit but more than the body could hold.
    expect(decodeFrame(writeU32(Buffer.from(frame), WRITE_COUNT_AT, 2 ** 20), 'count 2^20')).toBe('truncated');
  });

  it('a forged body length is refused without reading past the frame', () => {
    const frame = codec.encode(makeRequest(signer, 1, 2, 3, []));
    expect(decodeFrame(writeU32(Buffer.from(frame), BODY_LENGTH_AT, 2 ** 31), 'body 2^31')).toBe('oversized');
    expect(decodeFrame(writeU32(Buffer.from(frame), BODY_LENGTH_AT, 2 ** 20), 'body 2^20')).toBe('truncated');
  });

  it('rejects the empty frame and unknown types', () => {
    expect(decodeFrame(Buffer.alloc(0), 'empty')).toBe('truncated');
    expect(decodeFrame(Buffer.from([0]), 'type 0')).toBe('unknown-type');
    expect(decodeFrame(Buffer.from([10, 0, 0]), 'type 10')).toBe('unknown-type');
  });

  it('converts a field reader that throws something else into CodecError', () => {
    const odd = makeCodec<CommonMessage>(
      {
        ...commonCodecs,
        9: {
          write: (w: Writer) => void w,
          read: () => {
            throw new TypeError('bug in a reader');
          },
        },
      },
      'odd',
    );
    expect(() => odd.decode(Buffer.from([9]))).toThrow(CodecError);
  });
});
