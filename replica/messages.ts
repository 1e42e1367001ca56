/**
 * Messages every protocol shares (the client's signed batch and the checkpoint), and the
 * table-driven codec builder each protocol's codec is made with.
 *
 * Type ids: 1-9 common, 10-19 PoE, 20-29 PBFT, 30-39 Zyzzyva, 40-49 HotStuff.
 * Frame layout: [u8 type][fields...]; decoding consumes the frame exactly.
 */
import type { CryptoProvider, Signer } from './crypto.js';
import { DIGEST_BYTES, sha256, SIGNATURE_BYTES } from './crypto.js';
import type { MessageCodec, WireMessage } from './types.js';
import { CodecError, encodeOnce, Reader, WIRE_LIMITS, Writer } from './wire.js';
import { FLAT_WRITE_HEADER_BYTES as WRITE_HEADER_BYTES, type FlatWrites, type Write, type Writes } from './store.js';

export type { FlatWrites, Write, Writes };

export const MSG_REQUEST = 1;
export const MSG_CHECKPOINT = 2;

/**
 * ⟨T⟩c: a batch of writes signed by its client (paper §3.1, §4(2), §4(7)). `origin` is the
 * client machine (its key signs; replies go to it), `clientId` the logical client, `reqNo` its
 * request number: replicas deduplicate on (clientId, reqNo). `body` is the signed byte range,
 * and `digest` = SHA-256(body) is D(⟨T⟩c).
 */
export interface ClientRequest extends WireMessage {
  readonly type: typeof MSG_REQUEST;
  readonly origin: number;
  readonly clientId: number;
  readonly reqNo: number;
  /** Decoded and client-built requests hold them flat (WriteBatch); tests may give objects. */
  readonly writes: Writes;
  readonly body: Buffer;
  readonly signature: Buffer;
}

/** CHECKPOINT(k, state digest) from `replica` (DESIGN.md "Protocols"). */
export interface Checkpoint extends WireMessage {
  readonly type: typeof MSG_CHECKPOINT;
  readonly replica: number;
  readonly k: number;
  readonly stateDigest: Buffer;
}

export type CommonMessage = ClientRequest | Checkpoint;

// ---------------------------------------------------------------------------------------
// Client requests

const VALUE_BYTES_MAX = 64 * 1024;

function encodeRequestBody(origin: number, clientId: number, reqNo: number, writes: readonly Write[]): Buffer {
  const valueBytes = writes.reduce((s, x) => s + x.value.length, 0);
  const w = new Writer(16 + writes.length * 8 + valueBytes);
  w.u16(origin).u32(clientId).u32(reqNo);
  w.list(writes, (w2, x) => {
    w2.u32(x.key);
    if (x.value.length > VALUE_BYTES_MAX) throw new RangeError(`value of ${x.value.length} bytes`);
    w2.u16(x.value.length);
    w2.fixed(x.value, x.value.length);
  });
  return Buffer.from(w.finish());
}

/** Bytes of a request body before its writes: origin u16, clientId u32, reqNo u32, count u32. */
const BODY_HEADER_BYTES = 2 + 4 + 4 + 4;

/**
 * The writes of a request as they lie in its body, `[u32 key][u16 length][value]` each: key i
 * and value i are read from the bytes when asked, so decoding a batch allocates this one object
 * instead of an object and a Buffer view per write. When every value has the same length (every
 * client here sends such batches) write i is at `first + i * stride`; otherwise the offset of
 * each write is kept.
 */
export class WriteBatch implements FlatWrites {
  /** Made when first asked; private (#) so that it is no part of how two batches compare. */
  #view: DataView | undefined;

  constructor(
    readonly bytes: Buffer,
    /** Where write 0 starts in `bytes`. */
    readonly first: number,
    readonly length: number,
    /** Bytes per write when all values have one length; 0 when `offsets` says where each starts. */
    readonly stride: number,
    private readonly offsets?: readonly number[],
  ) {}

  /** `bytes` as a DataView (made once, when first asked). */
  get view(): DataView {
    return (this.#view ??= new DataView(this.bytes.buffer, this.bytes.byteOffset, this.bytes.length));
  }

  private at(i: number): number {
    return this.offsets ? this.offsets[i]! : this.first + i * this.stride;
  }

  keyAt(i: number): number {
    return this.view.getUint32(this.at(i));
  }

  valueLengthAt(i: number): number {
    return this.view.getUint16(this.at(i) + 4);
  }

  valueAt(i: number): number {
    return this.at(i) + WRITE_HEADER_BYTES;
  }

  /** Write i as an object (a view of its value): for tests and debugging, not the hot path. */
  write(i: number): Write {
    const at = this.valueAt(i);
    return { key: this.keyAt(i), value: this.bytes.subarray(at, at + this.valueLengthAt(i)) };
  }

  /** The writes as objects, so a request prints and compares (JSON) like one built from objects. */
  toJSON(): Write[] {
    return Array.from({ length: this.length }, (_, i) => this.write(i));
  }
}

/**
 * Every request this module builds (decoded from a frame, built by a client, made, or a no-op):
 * a ClientRequest whose digest D(⟨T⟩c) is kept on the object itself (a private field, so no
 * part of how two requests compare). Kept in a WeakMap keyed by the request, as a copy's still
 * is, the digest cost every replica
 * an ephemeron-table insertion per batch and the garbage collector an ephemeron fixpoint over
 * every request alive (about 2% of a PoE backup's CPU in `npm run bench`, measured with perf).
 */
class HeldRequest implements ClientRequest {
  readonly type = MSG_REQUEST;
  #digest: Buffer | undefined;

  constructor(
    readonly origin: number,
    readonly clientId: number,
    readonly reqNo: number,
    readonly writes: Writes,
    readonly body: Buffer,
    readonly signature: Buffer,
  ) {}

  get knownDigest(): Buffer | undefined {
    return this.#digest;
  }

  set knownDigest(digest: Buffer) {
    this.#digest = digest;
  }
}

/**
 * The writes of `body` from its count at `countAt` to its end, if they all have values of one
 * length and fill the body exactly; undefined otherwise (the general decoding then checks, and
 * names, what is wrong).
 */
function uniformWrites(body: Buffer, countAt: number): WriteBatch | undefined {
  if (countAt + 4 > body.length) return undefined;
  const count = body.readUInt32BE(countAt);
  const first = countAt + 4;
  if (count === 0) return first === body.length ? new WriteBatch(body, first, 0, 0) : undefined;
  if (count > WIRE_LIMITS.listLengthMax || first + WRITE_HEADER_BYTES > body.length) return undefined;
  const len = body.readUInt16BE(first + 4);
  const stride = WRITE_HEADER_BYTES + len;
  if (first + count * stride !== body.length) return undefined;
  for (let i = 1; i < count; i++) if (body.readUInt16BE(first + i * stride + 4) !== len) return undefined;
  return new WriteBatch(body, first, count, stride);
}

/** One write read past, bounds checked: where it starts. */
function skipWrite(r: Reader): number {
  const at = r.offset;
  r.skip(4, 'write.key');
  r.skip(r.u16('write.value.length'), 'write.value');
  return at;
}

function decodeRequestBody(body: Buffer): Pick<ClientRequest, 'origin' | 'clientId' | 'reqNo' | 'writes'> {
  const r = new Reader(body);
  const origin = r.u16('request.origin');
  const clientId = r.u32('request.clientId');
  const reqNo = r.u32('request.reqNo');
  let writes = uniformWrites(body, r.offset);
  if (writes) r.skip(r.remaining);
  else {
    const offsets = r.list(skipWrite, 'request.writes', WRITE_HEADER_BYTES);
    writes = new WriteBatch(body, 0, offsets.length, 0, offsets);
  }
  r.end('request body');
  return { origin, clientId, reqNo, writes };
}

/**
 * Builds and signs a request of `count` writes of `valueBytes` each, written straight into its
 * body: `write(i, body, valueAt, view)` writes value i at `valueAt` (the body starts zero-filled,
 * so only its non-zero bytes need writing; `view` is a DataView of the body) and returns its key.
 * The body is byte for byte the one makeRequest encodes from the same writes; no object per
 * write is made. Keys, lengths and values go through one DataView of the body: two Buffer
 * writes per value (each with its own range checks) cost 1 us of a batch's 4 us of building
 * (a micro-benchmark of this function with ClientCore's callback).
 */
export function makeRequestInPlace(
  signer: Signer,
  origin: number,
  clientId: number,
  reqNo: number,
  count: number,
  valueBytes: number,
  write: (i: number, body: Buffer, valueAt: number, view: DataView) => number,
): ClientRequest {
  if (valueBytes > VALUE_BYTES_MAX) throw new RangeError(`value of ${valueBytes} bytes`);
  const stride = WRITE_HEADER_BYTES + valueBytes;
  const body = Buffer.alloc(BODY_HEADER_BYTES + count * stride);
  body.writeUInt16BE(origin, 0);
  body.writeUInt32BE(clientId >>> 0, 2);
  body.writeUInt32BE(reqNo >>> 0, 6);
  body.writeUInt32BE(count, 10);
  const view = new DataView(body.buffer, body.byteOffset, body.length);
  for (let i = 0, at = BODY_HEADER_BYTES; i < count; i++, at += stride) {
    const key = write(i, body, at + WRITE_HEADER_BYTES, view);
    view.setUint32(at, key >>> 0);
    view.setUint16(at + 4, valueBytes);
  }
  const writes = new WriteBatch(body, BODY_HEADER_BYTES, count, stride);
  return new HeldRequest(origin, clientId, reqNo, writes, body, signer.sign(body));
}

/** Builds and signs a client request. */
export function makeRequest(signer: Signer, origin: number, clientId: number, reqNo: number, writes: readonly Write[]): ClientRequest {
  const body = encodeRequestBody(origin, clientId, reqNo, writes);
  // Held flat like a decoded request's, so that a request and its decoding are equal.
  return new HeldRequest(origin, clientId, reqNo, decodeRequestBody(body).writes, body, signer.sign(body));
}

/**
 * The no-op batch: fills a sequence number that has no client batch (PBFT's null request in a
 * NEW-VIEW, a HotStuff leader with nothing to propose while other leaders move on). It carries
 * no writes and no signature and is recognised by its reserved client id; replicas build it
 * themselves and never accept one from a client.
 */
export const NOOP_CLIENT_ID = 0xffff_ffff;
export const NOOP_ORIGIN = 0xffff;

export function noopRequest(k: number): ClientRequest {
  const body = encodeRequestBody(NOOP_ORIGIN, NOOP_CLIENT_ID, k >>> 0, []);
  return new HeldRequest(NOOP_ORIGIN, NOOP_CLIENT_ID, k >>> 0, new WriteBatch(body, BODY_HEADER_BYTES, 0, 0), body, Buffer.alloc(SIGNATURE_BYTES));
}

export function isNoop(req: ClientRequest): boolean {
  return req.clientId === NOOP_CLIENT_ID && req.origin === NOOP_ORIGIN && req.writes.length === 0;
}

/** D(⟨T⟩c) of requests that are not HeldRequests (tests, fault wrappers that copy a request). */
const digestCache = new WeakMap<ClientRequest, Buffer>();

/**
 * The SHA-256 of the batch body the transport hashed last, for a received frame's MAC
 * (`batchBodyDigestInto`): the bytes it covers, by their place in memory, and the digest.
 */
let lastBodyHashed: { readonly buffer: ArrayBufferLike; readonly byteOffset: number; readonly length: number; readonly digest: Buffer } | undefined;

/**
 * D(⟨T⟩c): SHA-256 of the signed body, computed once per request object. A request decoded
 * from a frame whose MAC already hashed this very body has it already (`readRequest`).
 */
export function requestDigest(crypto: CryptoProvider, req: ClientRequest): Buffer {
  if (req instanceof HeldRequest) return (req.knownDigest ??= crypto.digest(req.body));
  let d = digestCache.get(req);
  if (!d) {
    d = crypto.digest(req.body);
    digestCache.set(req, d);
  }
  return d;
}

/** The digest of `req` if it was computed (or taken from its frame's MAC) already. */
function knownDigest(req: ClientRequest): Buffer | undefined {
  return req instanceof HeldRequest ? req.knownDigest : digestCache.get(req);
}

/** Requests written by `writeRequest` during the current `makeCodec` encode, and the last of them. */
let requestsWritten = 0;
let requestWritten: ClientRequest | undefined;
/** The payload `makeCodec` encoded last, if it carries one batch whose digest was known then, and that digest. */
let lastEncoded: { readonly payload: Buffer; readonly bodyLength: number; readonly digest: Buffer } | undefined;

export function writeRequest(w: Writer, req: ClientRequest): void {
  requestsWritten++;
  requestWritten = req;
  w.bytes(req.body);
  w.fixed(req.signature, SIGNATURE_BYTES);
}

/**
 * Where a message type carries its one client batch, for the message types whose fields
 * before it have a fixed size: the offset in the payload (type byte included) of the batch's
 * u32 length prefix, as `writeRequest` writes it; -1 for every other type. Filled by `makeCodec`
 * from `FieldCodec.batchAt`; type ids are unique across protocols (see the module comment).
 */
const batchAtByType = new Int32Array(256).fill(-1);

/**
 * Where the client batch body a payload carries starts (after its u32 length prefix), by its
 * type's `batchAt`; -1 if its type carries none at a fixed place. The transport MACs such a
 * payload through the body's digest (infra/process/transport.ts, MAC_OF_BATCH), which the
 * request digest then reuses: the batch is hashed once per process, not once for the MAC and
 * once for D(⟨T⟩c).
 */
export function batchBodyAt(payload: Buffer): number {
  if (payload.length === 0) return -1;
  const at = batchAtByType[payload[0]!]!;
  return at >= 0 && at + 4 <= payload.length ? at + 4 : -1;
}

/**
 * Writes SHA-256(payload[start, end)), the batch body a payload carries, into `out` at
 * `offset`. A payload `makeCodec` just encoded from a request whose digest was known gives
 * that digest (the body was copied from the request, unchanged); otherwise the body is hashed
 * and remembered, so that `requestDigest` of the request decoded from these very bytes does
 * not hash them again.
 */
export function batchBodyDigestInto(payload: Buffer, start: number, end: number, out: Buffer, offset: number): void {
  const enc = lastEncoded;
  if (enc !== undefined && enc.payload === payload && enc.bodyLength === end - start) {
    out.set(enc.digest, offset);
    return;
  }
  const digest = sha256(payload.subarray(start, end));
  lastBodyHashed = { buffer: payload.buffer, byteOffset: payload.byteOffset + start, length: end - start, digest };
  out.set(digest, offset);
}

/**
 * Reads a request. When the frame's MAC check just hashed this very body (the same bytes in
 * memory, by this process: `batchBodyDigestInto`), the request takes that digest now, at
 * decode time: a core that digests it later (a PoE primary proposing a queued request) finds
 * it cached, where the single last-hashed slot would by then hold another frame's body.
 */
export function readRequest(r: Reader): ClientRequest {
  const body = r.bytes('request.body');
  const signature = r.fixed(SIGNATURE_BYTES, 'request.signature');
  const { origin, clientId, reqNo, writes } = decodeRequestBody(body);
  const req = new HeldRequest(origin, clientId, reqNo, writes, body, signature);
  const last = lastBodyHashed;
  if (last !== undefined && last.buffer === body.buffer && last.byteOffset === body.byteOffset && last.length === body.length) req.knownDigest = last.digest;
  return req;
}

// ---------------------------------------------------------------------------------------
// The codec builder

/** How one message type is written and read (the type byte is handled by the builder). */
export interface FieldCodec<M extends WireMessage> {
  write(w: Writer, msg: M): void;
  read(r: Reader): M;
  /**
   * For a type that carries one client batch after fields of a fixed size: the offset in the
   * payload (type byte included) of the u32 length prefix `writeRequest` writes (see `batchBodyAt`).
   */
  readonly batchAt?: number;
}

/** The template's value for a digest field until one is read. */
const EMPTY_DIGEST = Buffer.alloc(DIGEST_BYTES);

/** A field of a fixed-layout message: an unsigned integer of 16, 32 or 53 bits, or a digest (DIGEST_BYTES). */
export type FlatField = 'u16' | 'u32' | 'u53' | 'digest';

/** Every field of M but its type, each with the kind its value is written as. */
export type FlatLayout<M extends WireMessage> = { readonly [K in Exclude<keyof M, 'type'>]: M[K] extends Buffer ? 'digest' : Exclude<FlatField, 'digest'> };

/**
 * The codec of a message that is a fixed sequence of integers and digests, written and read in
 * the order of `layout` from that one list, so that the two directions cannot disagree. A read
 * names a short field `<name>.<field>` in its CodecError.
 */
export function flatCodec<M extends WireMessage>(type: M['type'], name: string, layout: FlatLayout<M>): FieldCodec<M> {
  const fields = Object.entries(layout) as [string, FlatField][];
  const labels = fields.map(([key]) => `${name}.${key}`);
  const template: Record<string, unknown> = { type };
  for (const [key, kind] of fields) template[key] = kind === 'digest' ? EMPTY_DIGEST : 0;
  return {
    write: (w, m) => {
      const values = m as unknown as Record<string, number & Buffer>;
      for (const [key, kind] of fields) {
        if (kind === 'digest') w.fixed(values[key]!, DIGEST_BYTES);
        else w[kind](values[key]!);
      }
    },
    read: (r) => {
      // A copy of the template has every field already, in order: one allocation of the final
      // shape instead of growing an object field by field (and the labels are made once).
      const m: Record<string, unknown> = { ...template };
      for (let i = 0; i < fields.length; i++) {
        const [key, kind] = fields[i]!;
        m[key] = kind === 'digest' ? r.fixed(DIGEST_BYTES, labels[i]) : r[kind](labels[i]);
      }
      return m as unknown as M;
    },
  };
}

/** Codecs for the common messages, to be merged into each protocol's table. */
export const commonCodecs: Record<number, FieldCodec<CommonMessage>> = {
  [MSG_REQUEST]: {
    write: (w, m) => writeRequest(w, m as ClientRequest),
    read: (r) => readRequest(r),
    batchAt: 1,
  },
  [MSG_CHECKPOINT]: flatCodec<Checkpoint>(MSG_CHECKPOINT, 'checkpoint', { replica: 'u16', k: 'u53', stateDigest: 'digest' }),
};

/**
 * A codec from a table of per-type field codecs. Decoding rejects an unknown type, a
 * truncated field and trailing bytes with CodecError; any other exception a field reader
 * throws (it should not) is converted to CodecError too, so callers catch exactly one type.
 */
export function makeCodec<M extends WireMessage>(table: Record<number, FieldCodec<M>>, name: string): MessageCodec<M> {
  for (const [type, entry] of Object.entries(table)) {
    const at = entry.batchAt ?? -1;
    const known = batchAtByType[Number(type)]!;
    if (known !== -1 && at !== -1 && known !== at) throw new Error(`${name}: message type ${type} carries its batch at ${at}, another codec says ${known}`);
    if (at !== -1) batchAtByType[Number(type)] = at;
  }
  return {
    encode(msg: M): Buffer {
      const entry = table[msg.type];
      if (!entry) throw new RangeError(`${name}: cannot encode unknown message type ${msg.type}`);
      // Counted per encode; an encode nested in another's `write` adds its requests to the outer
      // one's count, which then carries no single batch of its own and takes no digest below.
      const outerCount = requestsWritten;
      const outerRequest = requestWritten;
      requestsWritten = 0;
      requestWritten = undefined;
      const out = encodeOnce((w) => {
        w.u8(msg.type);
        entry.write(w, msg);
      });
      const count: number = requestsWritten;
      // Set by writeRequest inside `entry.write` (TypeScript cannot see through the call).
      const req = requestWritten as ClientRequest | undefined;
      requestsWritten = outerCount + count;
      requestWritten = count > 0 ? req : outerRequest;
      // A batch carrier whose request's digest is known: its frame MAC takes that digest (batchBodyDigestInto).
      const digest = entry.batchAt !== undefined && count === 1 && req ? knownDigest(req) : undefined;
      lastEncoded = digest && req ? { payload: out, bodyLength: req.body.length, digest } : undefined;
      return out;
    },
    decode(frame: Buffer): M {
      if (frame.length === 0) throw new CodecError('truncated', `${name}: empty frame`);
      const type = frame[0]!;
      const entry = table[type];
      if (!entry) throw new CodecError('unknown-type', `${name}: message type ${type}`);
      const r = new Reader(frame, 1);
      let msg: M;
      try {
        msg = entry.read(r);
      } catch (err) {
        if (err instanceof CodecError) throw err;
        throw new CodecError('invalid', `${name}: type ${type}: ${(err as Error).message}`);
      }
      // The label is built only for a frame with trailing bytes: a template string per decode
      // was a visible share of the simulator's profile (5.5% for this module, PoE at n = 16).
      if (r.remaining !== 0) r.end(`${name} type ${type}`);
      return msg;
    },
  };
}
