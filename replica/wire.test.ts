/**
 * The wire toolkit: every field round-trips, and every read that would run past the frame,
 * exceed a limit or leave bytes over throws CodecError with the reason named.
 */
import { describe, expect, it } from 'vitest';
import { CodecError, encodeOnce, Reader, WIRE_LIMITS, Writer } from './wire.js';

function codecReason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CodecError) return err.reason;
    throw err;
  }
  throw new Error('expected a CodecError, nothing was thrown');
}

describe('Writer and Reader', () => {
  it('round-trip every field type', () => {
    const digest = Buffer.alloc(32, 7);
    const w = new Writer(4);
    w.u8(255).u16(65535).u32(0xffff_ffff).u53(Number.MAX_SAFE_INTEGER).u53(0).bool(true).bool(false);
    w.fixed(digest, 32).bytes(Buffer.from('hello')).bytes(Buffer.alloc(0));
    w.list([1, 2, 3], (w2, x) => w2.u16(x));
    const frame = w.finish();
    expect(w.length).toBe(frame.length);

    const r = new Reader(frame);
    expect(r.u8()).toBe(255);
    expect(r.u16()).toBe(65535);
    expect(r.u32()).toBe(0xffff_ffff);
    expect(r.u53()).toBe(Number.MAX_SAFE_INTEGER);
    expect(r.u53()).toBe(0);
    expect(r.bool()).toBe(true);
    expect(r.bool()).toBe(false);
    expect(r.fixed(32).equals(digest)).toBe(true);
    expect(r.bytes().toString()).toBe('hello');
    expect(r.bytes().length).toBe(0);
    expect(r.list((r2) => r2.u16())).toEqual([1, 2, 3]);
    expect(r.remaining).toBe(0);
    r.end();
  });

  it('grows its buffer across many writes without losing bytes', () => {
    const w = new Writer(1);
    for (let i = 0; i < 10_000; i++) w.u32(i * 2654435761);
    const r = new Reader(w.finish());
    for (let i = 0; i < 10_000; i++) expect(r.u32()).toBe((i * 2654435761) >>> 0);
    r.end();
  });

  it('starts at the given offset', () => {
    const r = new Reader(Buffer.from([9, 0, 5]), 1);
    expect(r.offset).toBe(1);
    expect(r.u16()).toBe(5);
  });

  it('refuses a fixed field of the wrong length when encoding', () => {
    expect(() => new Writer().fixed(Buffer.alloc(31), 32)).toThrow(RangeError);
  });
});

describe('Reader bounds', () => {
  it('throws truncated for every field that runs past the frame', () => {
    const one = Buffer.alloc(1);
    expect(codecReason(() => new Reader(Buffer.alloc(0)).u8())).toBe('truncated');
    expect(codecReason(() => new Reader(one).u16())).toBe('truncated');
    expect(codecReason(() => new Reader(Buffer.alloc(3)).u32())).toBe('truncated');
    expect(codecReason(() => new Reader(Buffer.alloc(7)).u53())).toBe('truncated');
    expect(codecReason(() => new Reader(Buffer.alloc(0)).bool())).toBe('truncated');
    expect(codecReason(() => new Reader(Buffer.alloc(31)).fixed(32))).toBe('truncated');
    expect(codecReason(() => new Reader(Buffer.alloc(2)).bytes())).toBe('truncated');
  });

  it('rejects a byte field whose length prefix claims more than the frame holds', () => {
    const frame = new Writer().u32(100).finish();
    expect(codecReason(() => new Reader(Buffer.concat([frame, Buffer.alloc(99)])).bytes())).toBe('truncated');
  });

  it('rejects a byte field above its limit before looking for the bytes', () => {
    const frame = new Writer().u32(WIRE_LIMITS.bytesFieldMax + 1).finish();
    expect(codecReason(() => new Reader(frame).bytes())).toBe('oversized');
    expect(codecReason(() => new Reader(new Writer().u32(11).finish()).bytes('small', 10))).toBe('oversized');
    expect(codecReason(() => new Reader(new Writer().u32(0xffff_ffff).finish()).bytes())).toBe('oversized');
  });

  it('rejects integers above 2^53 and boolean bytes other than 0 and 1', () => {
    const big = new Writer().u32(0x20_0000).u32(0).finish();
    expect(codecReason(() => new Reader(big).u53())).toBe('invalid');
    expect(codecReason(() => new Reader(Buffer.from([2])).bool())).toBe('invalid');
  });

  it('rejects trailing bytes at the end of a message', () => {
    const r = new Reader(Buffer.from([1, 2]));
    r.u8();
    expect(codecReason(() => r.end())).toBe('trailing-bytes');
  });
});

describe('Reader.list allocation bound', () => {
  it('rejects a forged count of 2^31 as oversized before allocating', () => {
    const frame = new Writer().u32(2 ** 31).finish();
    let reads = 0;
    expect(codecReason(() => new Reader(frame).list(() => reads++))).toBe('oversized');
    expect(reads).toBe(0);
  });

  it('rejects a count within the limit that the remaining bytes cannot hold', () => {
    // 2^20 elements of at least 6 bytes cannot fit in 100 bytes: refused before any element.
    const frame = Buffer.concat([new Writer().u32(WIRE_LIMITS.listLengthMax).finish(), Buffer.alloc(100)]);
    let reads = 0;
    expect(codecReason(() => new Reader(frame).list(() => reads++, 'writes', 6))).toBe('truncated');
    expect(reads).toBe(0);
  });

  it('accepts the largest count the bytes can hold, and one more is refused', () => {
    const body = Buffer.alloc(12);
    const ok = Buffer.concat([new Writer().u32(4).finish(), body]);
    expect(new Reader(ok).list((r) => r.fixed(3), 'x', 3)).toHaveLength(4);
    const tooMany = Buffer.concat([new Writer().u32(5).finish(), body]);
    expect(codecReason(() => new Reader(tooMany).list((r) => r.fixed(3), 'x', 3))).toBe('truncated');
  });

  it('honours a tighter per-list maximum', () => {
    const frame = Buffer.concat([new Writer().u32(3).finish(), Buffer.alloc(3)]);
    expect(codecReason(() => new Reader(frame).list((r) => r.u8(), 'x', 1, 2))).toBe('oversized');
  });

  it('reads an empty list from a frame with no element bytes', () => {
    expect(new Reader(new Writer().u32(0).finish()).list((r) => r.u8())).toEqual([]);
  });
});

describe('encodeOnce', () => {
  const encodeBlob = (tag: number, len: number): Buffer => encodeOnce((w) => w.u8(tag).bytes(Buffer.alloc(len, tag)));

  it('returns a buffer of exactly the encoded size that owns its bytes', () => {
    for (const len of [0, 1, 100, 8_300, 70_000, 300_000]) {
      const frame = encodeBlob(len % 251, len);
      const plain = new Writer(8)
        .u8(len % 251)
        .bytes(Buffer.alloc(len, len % 251))
        .finish();
      expect(frame.length).toBe(1 + 4 + len);
      expect(frame.equals(plain)).toBe(true);
      // Its own memory: not a view into a larger (scratch or grown) buffer.
      expect(frame.byteLength).toBe(frame.length);
      expect(frame.buffer.byteLength === frame.length || frame.length < 4096).toBe(true);
    }
  });

  it('later encodings do not overwrite an earlier result (the scratch buffer is reused)', () => {
    const first = encodeBlob(1, 8_000);
    const copy = Buffer.from(first);
    for (let i = 2; i < 50; i++) encodeBlob(i, 1000 + i * 400);
    expect(first.equals(copy)).toBe(true);
  });

  it('a message encoded inside another encoding gets its own Writer', () => {
    let inner: Buffer | undefined;
    const outer = encodeOnce((w) => {
      w.u8(7).u32(0xdead_beef);
      inner = encodeBlob(9, 5_000);
      w.bytes(inner);
    });
    const r = new Reader(outer);
    expect(r.u8()).toBe(7);
    expect(r.u32()).toBe(0xdead_beef);
    expect(r.bytes().equals(inner!)).toBe(true);
    r.end();
    expect(inner!.equals(new Writer().u8(9).bytes(Buffer.alloc(5_000, 9)).finish())).toBe(true);
  });

  it('an encoder that throws leaves the scratch buffer usable', () => {
    expect(() => encodeOnce((w) => w.u8(1).fixed(Buffer.alloc(3), 4))).toThrow(RangeError);
    expect(encodeBlob(3, 10).equals(new Writer().u8(3).bytes(Buffer.alloc(10, 3)).finish())).toBe(true);
  });
});
