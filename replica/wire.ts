/**
 * The binary wire toolkit every message codec is written with.
 *
 * A hand-written Buffer codec (DESIGN.md, STYLE.md: measured about 4x faster than msgpackr on
 * this machine). The Reader checks every length before it reads and throws one typed error,
 * CodecError, for anything truncated, oversized or unknown, so a malformed or forged frame can
 * never crash a replica or make it allocate without bound.
 */

/** The only error a decoder throws. `reason` names the condition for counters and logs. */
export class CodecError extends Error {
  constructor(
    readonly reason: 'truncated' | 'oversized' | 'unknown-type' | 'trailing-bytes' | 'invalid',
    detail: string,
  ) {
    super(`codec: ${reason}: ${detail}`);
    this.name = 'CodecError';
  }
}

/** Upper bounds that keep decoding bounded whatever a sender claims. */
export const WIRE_LIMITS = {
  /** A whole frame: a view-change message with 600 executions of 8 KB batches fits. */
  frameBytesMax: 64 * 1024 * 1024,
  /** One variable-length byte field (a client batch of 300 writes of 1 KB fits). */
  bytesFieldMax: 16 * 1024 * 1024,
  /** One list (writes in a batch, signatures in a certificate, entries in a summary). */
  listLengthMax: 1 << 20,
} as const;

/** Appends fields to a growable buffer. Encoding never fails for well-typed input. */
export class Writer {
  private buf: Buffer;
  private pos = 0;

  /** A new buffer of `sizeHint` bytes, or `scratch` (written from its start) if given. */
  constructor(sizeHint = 256, scratch?: Buffer) {
    this.buf = scratch ?? Buffer.allocUnsafe(sizeHint);
  }

  /** The buffer written into now (a larger one than given, if the encoding outgrew it). */
  get buffer(): Buffer {
    return this.buf;
  }

  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  /** Unsigned integers up to 2^53 - 1 (sequence numbers, views, times in microseconds). */
  u53(v: number): this {
    this.ensure(8);
    this.buf.writeUInt32BE(Math.floor(v / 0x1_0000_0000), this.pos);
    this.buf.writeUInt32BE(v >>> 0, this.pos + 4);
    this.pos += 8;
    return this;
  }

  bool(v: boolean): this {
    return this.u8(v ? 1 : 0);
  }

  /** Exactly `length` raw bytes (digests, signatures): no length prefix. */
  fixed(bytes: Uint8Array, length: number): this {
    if (bytes.length !== length) throw new RangeError(`fixed field: ${bytes.length} bytes, want ${length}`);
    this.ensure(length);
    this.buf.set(bytes, this.pos);
    this.pos += length;
    return this;
  }

  /** A u32 length prefix, then the bytes. */
  bytes(bytes: Uint8Array): this {
    this.u32(bytes.length);
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  /** A u32 count, then each element through `write`. */
  list<T>(items: readonly T[], write: (w: Writer, item: T) => void): this {
    this.u32(items.length);
    for (const item of items) write(this, item);
    return this;
  }

  get length(): number {
    return this.pos;
  }

  /** The encoded bytes (a view: the Writer must not be reused afterwards). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }

  /** The encoded bytes copied into a new buffer of exactly their size. */
  copyOut(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    // TypedArray set, not Buffer.copy: copy makes a view of the range anyway and then calls the
    // same set, through two more calls (measured 2x slower for a 49-byte SUPPORT).
    out.set(this.buf.subarray(0, this.pos));
    return out;
  }
}

/** The scratch buffer `encodeOnce` writes into; it grows to the largest message and stays. */
const SCRATCH_BYTES = 64 * 1024;
/** A scratch buffer grown past this (a rare view-change message) is not kept. */
const SCRATCH_KEEP_MAX = 4 * 1024 * 1024;
let scratch: Buffer = Buffer.allocUnsafe(SCRATCH_BYTES);
let scratchInUse = false;

/**
 * Encodes with `write` into one scratch buffer kept across calls, then copies the bytes once
 * into a buffer of exactly their size: no growth and re-copy as a message outgrows a guessed
 * size (a Writer of 512 bytes grew five times and copied 15 KB for an 8 KB PROPOSE), and no
 * oversized buffer kept alive by the frame. An encoder that encodes another message inside
 * `write` gets a Writer of its own, so the nested call cannot overwrite the outer one's bytes.
 */
export function encodeOnce(write: (w: Writer) => void): Buffer {
  if (scratchInUse) {
    const own = new Writer(512);
    write(own);
    return own.copyOut();
  }
  scratchInUse = true;
  try {
    const w = new Writer(0, scratch);
    write(w);
    const out = w.copyOut();
    if (w.buffer.length <= SCRATCH_KEEP_MAX) scratch = w.buffer;
    return out;
  } finally {
    scratchInUse = false;
  }
}

/** Reads fields with a bounds check before every read. */
export class Reader {
  private pos: number;

  constructor(
    private readonly buf: Buffer,
    start = 0,
  ) {
    this.pos = start;
  }

  private need(n: number, what: string): void {
    if (n < 0 || this.pos + n > this.buf.length) {
      throw new CodecError('truncated', `${what}: need ${n} bytes at offset ${this.pos}, have ${this.buf.length - this.pos}`);
    }
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.buf[this.pos++]!;
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  u53(what = 'u53'): number {
    this.need(8, what);
    const hi = this.buf.readUInt32BE(this.pos);
    const lo = this.buf.readUInt32BE(this.pos + 4);
    if (hi >= 0x20_0000) throw new CodecError('invalid', `${what}: integer above 2^53`);
    this.pos += 8;
    return hi * 0x1_0000_0000 + lo;
  }

  bool(what = 'bool'): boolean {
    const v = this.u8(what);
    if (v > 1) throw new CodecError('invalid', `${what}: boolean byte ${v}`);
    return v === 1;
  }

  /** Exactly `length` bytes, as a view into the frame (no copy). */
  fixed(length: number, what = 'fixed'): Buffer {
    this.need(length, what);
    const out = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return out;
  }

  /** Moves past `length` bytes (bounds checked) without reading them. */
  skip(length: number, what = 'skip'): void {
    this.need(length, what);
    this.pos += length;
  }

  /** A u32 length prefix then that many bytes, as a view into the frame. */
  bytes(what = 'bytes', max: number = WIRE_LIMITS.bytesFieldMax): Buffer {
    const len = this.u32(`${what}.length`);
    if (len > max) throw new CodecError('oversized', `${what}: ${len} bytes exceeds ${max}`);
    return this.fixed(len, what);
  }

  /**
   * A u32 count then that many elements. The count is checked against the bytes left
   * (`minElementBytes` each) before anything is allocated, so a forged count cannot make the
   * decoder allocate more than the frame could hold.
   */
  list<T>(read: (r: Reader) => T, what = 'list', minElementBytes = 1, max: number = WIRE_LIMITS.listLengthMax): T[] {
    const count = this.u32(`${what}.count`);
    if (count > max) throw new CodecError('oversized', `${what}: ${count} elements exceeds ${max}`);
    if (count * minElementBytes > this.remaining) {
      throw new CodecError('truncated', `${what}: ${count} elements cannot fit in ${this.remaining} bytes`);
    }
    const out: T[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = read(this);
    return out;
  }

  /** Decoding ends here: any byte left over means the frame is not what it claims. */
  end(what = 'message'): void {
    if (this.pos !== this.buf.length) {
      throw new CodecError('trailing-bytes', `${what}: ${this.buf.length - this.pos} bytes left over`);
    }
  }
}
