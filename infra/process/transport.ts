/**
 * The TCP transport of the real runtime: authenticated frames between replicas and between
 * client machines and replicas (DESIGN.md "Protocols": replica messages carry MACs with
 * pairwise keys; the paper used CMAC-AES, we use HMAC-SHA256 from node:crypto).
 *
 * Wire format. Every frame is `[u32 length][32-byte MAC][payload]`, where `length` counts the
 * MAC and the payload, and the MAC is HMAC-SHA256 under the key shared by the two ends. A
 * payload shorter than MAC_DIGEST_FROM (1 KB: votes, replies) is MAC'd whole, as the byte
 * 0x00 followed by the payload; a longer one (a proposal carrying a batch) as the byte 0x01
 * followed by SHA-256(payload). That digest is computed once per frame however many peers it
 * goes to, and each destination's MAC then hashes 33 bytes instead of the whole payload: this
 * is how Castro and Liskov's authenticators MAC a message's digest once per receiver (PBFT,
 * OSDI '99 §4.4; TOCS 2002 §3.2). It is as strong as an HMAC of the payload itself as long as
 * SHA-256 is collision resistant (the assumption every protocol's digests already rest on),
 * the leading byte keeps the two kinds of input apart (no MAC of a digest verifies as the MAC
 * of a 32-byte payload), and it is still one MAC per pair of nodes. The HMAC is RFC 2104's
 * construction with one-shot SHA-256 over key pads XORed once per connection (`FrameMac`),
 * cheaper here than a createHmac object per MAC. A long payload that carries a client batch
 * (a REQUEST, PROPOSE, PRE-PREPARE, ORDER-REQ: `TransportOptions.batch` says where) is MAC'd
 * through the batch's own digest instead, as the byte 0x02 followed by SHA-256(the bytes before
 * the batch body || SHA-256(body) || the bytes after it) (`batchMacDigestInto`): the receiver
 * needs SHA-256(body) as the request digest D(⟨T⟩c) anyway, so each process hashes a batch
 * once, not once for the MAC and again for the digest. The first frame on a connection is a HELLO
 * that names the dialer and the peer it meant to reach; it is MAC'd like every other frame,
 * so a connection is bound to a peer before any message is delivered.
 *
 * Topology. One connection per replica pair: the lower id dials, the higher id accepts, and
 * both ends use it in both directions, so there is never a duplicate to resolve; if a valid
 * HELLO arrives for a peer that already has a connection (the dialer reconnected after a
 * half-open link), the new connection replaces the old one. Client machines dial every
 * replica. Dialers reconnect with capped exponential backoff after a connection drops.
 *
 * Hostile input. A frame whose MAC does not verify is dropped and counted; the connection
 * stays (the next frame can still be good). A length outside [32, frameBytesMax] or a bad
 * HELLO means the byte stream cannot be trusted to resynchronise: it is counted and the
 * connection is closed. Nothing a peer sends can make the transport throw or allocate more
 * than one frame's bound.
 *
 * Writes. Frames are queued per connection and written once per event-loop turn, in one
 * writev syscall per connection per burst of outputs (cork, one write per piece, uncork; a
 * write syscall per frame is 10-30x slower on this machine). A payload is encoded once and
 * shared by every destination's queue; payloads of at least `COPY_BELOW` bytes go to the
 * socket by reference, and the headers and small payloads between them are copied into one
 * buffer. Measured on this machine (a burst of 3 frames of 8 KB and 30 of 120 bytes, sender
 * and receiver CPU): concatenating everything 20-38 us, a write per piece under cork 19-23 us,
 * this 11-15 us per burst. Queues are bounded: above `queueBytesHigh`
 * (our queue plus the socket's) the transport reports congestion, and the runtime stops
 * reading client connections until it drains; above `queueBytesMax` frames to that peer are
 * dropped and counted, like a lossy link, so memory stays bounded whatever a slow peer does.
 * Frames for a peer with no connection (a crashed replica, a link being re-dialled) are
 * dropped and counted as unroutable.
 *
 * Replay protection is out of scope: MACs authenticate the sender, as in the paper; a
 * benchmark on a private network does not face an attacker who records traffic.
 */
import { createHmac, hash, timingSafeEqual } from 'node:crypto';
import * as net from 'node:net';
import { linkShaperFromEnv, type LinkShaper } from './link-shaper.js';
import { isClientPeer, type Peer } from '../../replica/types.js';
import { MAC_BYTES, sha256, sha256Into } from '../../replica/crypto.js';
import { WIRE_LIMITS } from '../../replica/wire.js';
import { BATCH_FRAME_BYTES_MAX, FRAME_HEADER_BYTES as HEADER_BYTES, MAC_DIGEST_FROM } from './frame-limits.js';

const HELLO_MAGIC = 0x504f_4542; // "POEB"
const HELLO_VERSION = 1;
const HELLO_BYTES = 4 + 2 + 4 + 4;
const RECONNECT_MS_MIN = 20;
const RECONNECT_MS_MAX = 1000;

export interface TransportOptions {
  /** This node's peer number (replica id, or clientPeer(origin)). */
  readonly self: Peer;
  /** The MAC key this node shares with `peer`, or undefined if `peer` may not connect. */
  macKey(peer: Peer): Buffer | undefined;
  /** Queued bytes on one connection above which the transport reports congestion. */
  readonly queueBytesHigh?: number;
  /** Queued bytes on one connection above which frames to it are dropped. */
  readonly queueBytesMax?: number;
  readonly frameBytesMax?: number;
  /**
   * Link emulation (infra/process/link-shaper.ts): every sent frame goes through it. Default: the
   * shaper POE_BENCH_LINK asks for, if any; null: none, whatever the environment says.
   */
  readonly link?: LinkShaper | null;
  /**
   * Where a payload carries a client batch, and its digest (replica/messages.ts batchBodyAt and
   * batchBodyDigestInto): such a long payload is MAC'd through the batch's digest (MAC_OF_BATCH),
   * which the request digest then reuses. Both ends of a connection must be given the same.
   * Absent: every long payload is MAC'd through its own SHA-256.
   */
  readonly batch?: BatchLocator;
}

/** How the transport finds a payload's client batch and digests it (see TransportOptions.batch). */
export interface BatchLocator {
  /** Where the batch body starts (after its u32 length prefix), or -1. */
  bodyAt(payload: Buffer): number;
  /** Writes SHA-256(payload[start, end)) into `out` at `offset`. */
  bodyDigestInto(payload: Buffer, start: number, end: number, out: Buffer, offset: number): void;
}

export interface TransportHandlers {
  /** One authenticated payload from `from`. */
  onFrame(from: Peer, payload: Buffer): void;
  /** Some connection's queue went above `queueBytesHigh` (true) or every queue drained (false). */
  onCongestion?(congested: boolean): void;
  onPeerUp?(peer: Peer): void;
  onPeerDown?(peer: Peer): void;
  /** Called once per event-loop turn before queued frames are written (after a burst of input). */
  onBeforeFlush?(): void;
}

/** Counters the runtime reports; all monotone. */
export interface TransportCounters {
  framesSent: number;
  bytesSent: number;
  /** Socket writes (syscalls): framesSent / writes is how well bursts coalesce. */
  writes: number;
  /** Socket reads ('data' events, one read syscall each): framesReceived / reads is how well arrivals coalesce. */
  reads: number;
  framesReceived: number;
  bytesReceived: number;
  /** Frames whose MAC did not verify (dropped, connection kept). */
  badMac: number;
  /** Byte streams that could not be framed: a length out of bounds (connection closed). */
  badFrame: number;
  /** HELLOs that were malformed, unauthenticated, or from a peer that may not connect. */
  badHello: number;
  /** Frames for a peer with no connection. */
  unroutable: number;
  /** Frames dropped because the peer's queue was full. */
  queueFull: number;
  connectionsAccepted: number;
  connectionsDialled: number;
  connectionsLost: number;
}

export function newTransportCounters(): TransportCounters {
  return {
    framesSent: 0,
    bytesSent: 0,
    writes: 0,
    reads: 0,
    framesReceived: 0,
    bytesReceived: 0,
    badMac: 0,
    badFrame: 0,
    badHello: 0,
    unroutable: 0,
    queueFull: 0,
    connectionsAccepted: 0,
    connectionsDialled: 0,
    connectionsLost: 0,
  };
}

/** Payloads at least this long are written by reference; shorter ones are copied into a run. */
const COPY_BELOW = 1024;
/** The first byte of the MAC input: the payload itself follows, or its SHA-256, or its batch digest (`batchDigest`). */
const MAC_OF_PAYLOAD = 0x00;
const MAC_OF_DIGEST = 0x01;
const MAC_OF_BATCH = 0x02;
const SHA256_BLOCK = 64;
const DIGEST_BYTES = 32;

/** SHA-256 of a frame's payload, one-shot. */
export function payloadDigest(payload: Uint8Array): Buffer {
  return sha256(payload);
}

/**
 * Writes the 33 bytes a long payload's MAC is the HMAC of into `out` at `offset`: a kind byte,
 * then a digest. This is MAC_OF_DIGEST || SHA-256(payload).
 */
export type MacDigestInto = (payload: Buffer, out: Buffer, offset: number) => void;

export const plainMacDigestInto: MacDigestInto = (payload, out, offset) => {
  out[offset] = MAC_OF_DIGEST;
  sha256Into(payload, out, offset + 1);
};

/**
 * The MAC input of a long payload that carries a client batch at [start, end): MAC_OF_BATCH ||
 * SHA-256(payload[0, start) || SHA-256(batch body) || payload[end, length)), the batch body's
 * digest from `batch.bodyDigestInto`. The receiver needs D(⟨T⟩c) = SHA-256(body) anyway, so a
 * frame's batch is hashed once, not once for its MAC and once more for the request digest. As
 * strong as MAC_OF_DIGEST: where the batch lies is a function of the bytes before it (the type
 * byte and the length prefix, both hashed), so two payloads with one digest would need a
 * SHA-256 collision; the kind byte keeps it apart from the other MAC inputs. Returns false
 * (nothing written) when the payload carries no batch at a fixed place, or more than
 * BATCH_FRAME_BYTES_MAX bytes around it.
 */
export function batchMacDigestInto(batch: BatchLocator, scratch: Buffer, payload: Buffer, out: Buffer, offset: number): boolean {
  const start = batch.bodyAt(payload);
  if (start < 0) return false;
  const end = start + payload.readUInt32BE(start - 4);
  const after = payload.length - end;
  if (end > payload.length || start + after > BATCH_FRAME_BYTES_MAX) return false;
  payload.copy(scratch, 0, 0, start);
  batch.bodyDigestInto(payload, start, end, scratch, start);
  payload.copy(scratch, start + DIGEST_BYTES, end);
  out[offset] = MAC_OF_BATCH;
  sha256Into(scratch.subarray(0, start + DIGEST_BYTES + after), out, offset + 1);
  return true;
}

/** The bytes a frame's MAC is the HMAC of: 0x00 || payload, or 0x01 || SHA-256(payload) from MAC_DIGEST_FROM bytes. */
export function macInput(payload: Buffer): Buffer {
  return payload.length < MAC_DIGEST_FROM
    ? Buffer.concat([Buffer.from([MAC_OF_PAYLOAD]), payload])
    : Buffer.concat([Buffer.from([MAC_OF_DIGEST]), payloadDigest(payload)]);
}

/**
 * The frame MAC under one pairwise key: HMAC-SHA256(key, macInput(payload)) by RFC 2104, with
 * the key pads XORed once here and two one-shot hashes per MAC, the inner one over the inner
 * pad and the MAC input copied behind it, the outer one over the outer pad and the inner hash.
 * Every hash result is written straight into this object's buffers or the frame header
 * (sha256Into), so a MAC allocates no buffer: with node's Buffer results each MAC cost three
 * fresh ArrayBuffers and 2.2 us, this way 0.7 us (a 60-byte payload, CPU time with GC).
 */
export class FrameMac {
  private readonly inner = Buffer.alloc(SHA256_BLOCK + 1 + Math.max(MAC_DIGEST_FROM, DIGEST_BYTES));
  /** The inner block when it holds a digest: the same length every time, so one view. */
  private readonly innerOfDigest = this.inner.subarray(0, SHA256_BLOCK + 1 + DIGEST_BYTES);
  private readonly outer = Buffer.alloc(SHA256_BLOCK + DIGEST_BYTES);
  private readonly check = Buffer.alloc(MAC_BYTES);
  /** Views of the inner block by length, made once each: a view per MAC was a fifth of a replica's allocations. */
  private readonly innerViews: Buffer[] = [];

  constructor(key: Buffer) {
    // RFC 2104: a key longer than the block is hashed first; a shorter one is zero-padded.
    const k = key.length > SHA256_BLOCK ? hash('sha256', key, 'buffer') : key;
    for (let i = 0; i < SHA256_BLOCK; i++) {
      const b = i < k.length ? k[i]! : 0;
      this.inner[i] = b ^ 0x36;
      this.outer[i] = b ^ 0x5c;
    }
  }

  /**
   * Writes the MAC of `payload` into `out` at `offset`. `digestInto` writes the kind byte and
   * digest of a long payload (MacDigestInto): a sender passes one that remembers it, so a
   * broadcast hashes its payload once for all destinations.
   */
  into(payload: Buffer, out: Buffer, offset: number, digestInto: MacDigestInto = plainMacDigestInto): void {
    let input: Buffer;
    if (payload.length < MAC_DIGEST_FROM) {
      this.inner[SHA256_BLOCK] = MAC_OF_PAYLOAD;
      this.inner.set(payload, SHA256_BLOCK + 1);
      const end = SHA256_BLOCK + 1 + payload.length;
      input = this.innerViews[end] ??= this.inner.subarray(0, end);
    } else {
      digestInto(payload, this.inner, SHA256_BLOCK);
      input = this.innerOfDigest;
    }
    sha256Into(input, this.outer, SHA256_BLOCK);
    sha256Into(this.outer, out, offset);
  }

  /** True if the 32 bytes of `frame` at `macAt` are the MAC of `payload` (constant time: no early exit). */
  verifyAt(payload: Buffer, frame: Buffer, macAt: number, digestInto: MacDigestInto = plainMacDigestInto): boolean {
    this.into(payload, this.check, 0, digestInto);
    let diff = 0;
    for (let i = 0; i < MAC_BYTES; i++) diff |= this.check[i]! ^ frame[macAt + i]!;
    return diff === 0;
  }
}

/** The frame MAC of `payload` under `key` (the reference form, with node's HMAC). */
export function computeMac(key: Buffer, payload: Buffer): Buffer {
  return createHmac('sha256', key).update(macInput(payload)).digest();
}

/** One frame as it goes on the wire (tests use this to speak the protocol by hand). */
export function encodeFrame(key: Buffer, payload: Buffer): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32BE(MAC_BYTES + payload.length, 0);
  computeMac(key, payload).copy(header, 4);
  return Buffer.concat([header, payload]);
}

export function encodeHello(from: Peer, to: Peer): Buffer {
  const b = Buffer.allocUnsafe(HELLO_BYTES);
  b.writeUInt32BE(HELLO_MAGIC, 0);
  b.writeUInt16BE(HELLO_VERSION, 4);
  b.writeUInt32BE(from, 6);
  b.writeUInt32BE(to, 10);
  return b;
}

function decodeHello(payload: Buffer): { from: Peer; to: Peer } | undefined {
  if (payload.length !== HELLO_BYTES) return undefined;
  if (payload.readUInt32BE(0) !== HELLO_MAGIC || payload.readUInt16BE(4) !== HELLO_VERSION) return undefined;
  return { from: payload.readUInt32BE(6), to: payload.readUInt32BE(10) };
}

/**
 * Splits a byte stream into frames. Frames that lie inside one chunk are delivered as views of
 * it (no copy); only a frame split across chunks is copied, once, into a buffer of exactly its
 * size, and the rest of the chunk that completed it is again read in place. (Joining the
 * leftover with the whole next chunk would copy every byte of a busy stream a second time.)
 */
export class FrameReader {
  /** The pieces of one incomplete frame; their total is below the frame's size. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  /** The largest frame accepted now: a HELLO's size until the peer is known, then the wire limit. */
  constructor(public frameBytesMax: number) {}

  private validLength(len: number): boolean {
    return len >= MAC_BYTES && len <= this.frameBytesMax;
  }

  /** The u32 at the start of the pending pieces (which hold at least 4 bytes). */
  private pendingLength(): number {
    const first = this.pending[0]!;
    if (first.length >= 4) return first.readUInt32BE(0);
    const head = Buffer.concat(this.pending, this.pendingBytes).subarray(0, 4);
    return head.readUInt32BE(0);
  }

  /**
   * Feeds a chunk; calls `onFrame(bytes, macAt, payload)` for every complete frame, whose MAC is
   * the 32 bytes of `bytes` at `macAt` (no view is made for it). Returns false if the stream is
   * corrupt (a length out of bounds); the caller must close the connection.
   */
  push(chunk: Buffer, onFrame: (bytes: Buffer, macAt: number, payload: Buffer) => boolean): boolean {
    let off = 0;
    if (this.pendingBytes > 0) {
      const total = this.pendingBytes + chunk.length;
      if (total < 4) {
        this.pending.push(chunk);
        this.pendingBytes = total;
        return true;
      }
      if (this.pendingBytes < 4) {
        // The length itself is split: gather just enough of this chunk to read it.
        this.pending.push(chunk.subarray(0, 4 - this.pendingBytes));
        off = 4 - this.pendingBytes;
        this.pendingBytes = 4;
      }
      const len = this.pendingLength();
      if (!this.validLength(len)) return false;
      const need = 4 + len;
      const missing = need - this.pendingBytes;
      if (chunk.length - off < missing) {
        // Still incomplete: keep a view (only until the frame completes) and wait.
        this.pending.push(chunk.subarray(off));
        this.pendingBytes += chunk.length - off;
        return true;
      }
      const frame = Buffer.allocUnsafe(need);
      let at = 0;
      for (const piece of this.pending) at += piece.copy(frame, at);
      chunk.copy(frame, at, off, off + missing);
      off += missing;
      this.pending = [];
      this.pendingBytes = 0;
      if (!onFrame(frame, 4, frame.subarray(HEADER_BYTES))) return false;
    }
    while (chunk.length - off >= 4) {
      const len = chunk.readUInt32BE(off);
      if (!this.validLength(len)) return false;
      if (chunk.length - off - 4 < len) break;
      const macAt = off + 4;
      const payload = chunk.subarray(off + HEADER_BYTES, off + 4 + len);
      off += 4 + len;
      if (!onFrame(chunk, macAt, payload)) return false;
    }
    if (off < chunk.length) {
      this.pending = [chunk.subarray(off)];
      this.pendingBytes = chunk.length - off;
    }
    return true;
  }
}

/** One TCP connection to a known (authenticated) peer, or one still waiting for its HELLO. */
class Connection {
  peer: Peer | undefined;
  key: Buffer | undefined;
  mac: FrameMac | undefined;
  /** Frames queued until the next flush. */
  readonly queue = new OutputQueue();
  congested = false;
  private readonly reader: FrameReader;

  constructor(
    readonly socket: net.Socket,
    private readonly transport: Transport,
    readonly dialled: boolean,
  ) {
    // Until its HELLO verifies, a connection may send nothing larger than a HELLO.
    this.reader = new FrameReader(dialled ? transport.frameBytesMax : MAC_BYTES + HELLO_BYTES);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', () => {
      /* 'close' follows; errors of a peer's connection are not ours to throw */
    });
    socket.on('close', () => transport.onConnectionClosed(this));
  }

  get queuedBytes(): number {
    return this.queue.bytes + this.socket.writableLength;
  }

  /**
   * Writes everything queued in one writev: large payloads by reference, the headers and small
   * payloads between them as one piece per run (OutputQueue). Returns the bytes written.
   */
  flush(): number {
    const bytes = this.queue.bytes;
    if (bytes === 0) return 0;
    const parts = this.queue.take();
    if (this.socket.destroyed) return 0;
    if (parts.length === 1) {
      this.socket.write(parts[0]!);
    } else {
      this.socket.cork();
      for (const part of parts) this.socket.write(part);
      this.socket.uncork();
    }
    this.transport.counters.writes++;
    if (!this.congested && this.socket.writableLength > this.transport.queueBytesHigh) {
      this.congested = true;
      this.transport.onCongestionChange(this, true);
    }
    return bytes;
  }

  private onDrain(): void {
    if (this.congested) {
      this.congested = false;
      this.transport.onCongestionChange(this, false);
    }
  }

  private onData(chunk: Buffer): void {
    this.transport.counters.reads++;
    this.transport.counters.bytesReceived += chunk.length;
    const ok = this.reader.push(chunk, this.onRawFrame);
    if (!ok) {
      if (this.peer === undefined) this.transport.counters.badHello++;
      else this.transport.counters.badFrame++;
      this.socket.destroy();
    }
  }

  private readonly onRawFrame = (bytes: Buffer, macAt: number, payload: Buffer): boolean => {
    if (this.socket.destroyed) return false;
    if (this.peer === undefined) return this.onHello(bytes.subarray(macAt, macAt + MAC_BYTES), payload);
    if (!this.mac!.verifyAt(payload, bytes, macAt, this.transport.macDigestInto)) {
      this.transport.counters.badMac++;
      return true;
    }
    this.transport.counters.framesReceived++;
    this.transport.deliver(this.peer, payload);
    return true;
  };

  private onHello(mac: Buffer, payload: Buffer): boolean {
    const hello = decodeHello(payload);
    const key = hello && hello.to === this.transport.self ? this.transport.macKeyFor(hello.from) : undefined;
    if (!hello || !key || !timingSafeEqual(computeMac(key, payload), mac)) return false;
    this.reader.frameBytesMax = this.transport.frameBytesMax;
    this.transport.onHelloAccepted(this, hello.from, key);
    return true;
  }
}

/** Bytes of the buffer headers and small payloads are copied into (a new one when it is full). */
const QUEUE_BUFFER_BYTES = 64 * 1024;

/**
 * The frames queued for one connection until its next flush, laid out as they go on the wire:
 * each frame's header (length, then the MAC written in place by FrameMac.into) and every payload
 * shorter than COPY_BELOW are copied, as they are sent, into one buffer; a longer payload is
 * kept by reference and ends the current piece. `take()` hands out the pieces for one writev, in
 * order. Nothing is allocated per frame (a header buffer per frame and a copy of every run at
 * flush were most of the transport's allocations), and bytes handed out are never written again:
 * later frames go after them in the same buffer, or into a new one.
 */
export class OutputQueue {
  private buf: Buffer | undefined;
  /** Bytes of `buf` written. */
  private at = 0;
  /** Where the piece being built starts in `buf`. */
  private runStart = 0;
  private parts: Buffer[] = [];
  /** Bytes queued (headers and payloads) since the last take. */
  bytes = 0;

  /** Queues one frame of `payload`, its MAC computed by `mac` straight into the header. */
  push(payload: Buffer, mac: FrameMac, digestInto?: MacDigestInto): void {
    const small = payload.length < COPY_BELOW;
    this.reserve(HEADER_BYTES + (small ? payload.length : 0));
    const b = this.buf!;
    b.writeUInt32BE(MAC_BYTES + payload.length, this.at);
    mac.into(payload, b, this.at + 4, digestInto);
    this.at += HEADER_BYTES;
    if (small) {
      b.set(payload, this.at);
      this.at += payload.length;
    } else {
      this.parts.push(b.subarray(this.runStart, this.at), payload);
      this.runStart = this.at;
    }
    this.bytes += HEADER_BYTES + payload.length;
  }

  /** Room for `need` more bytes of the current piece: a new buffer (the piece moved to it) when full. */
  private reserve(need: number): void {
    if (this.buf && this.at + need <= this.buf.length) return;
    const run = this.at - this.runStart;
    const next = Buffer.allocUnsafe(Math.max(QUEUE_BUFFER_BYTES, 2 * (run + need)));
    if (run > 0) this.buf!.copy(next, 0, this.runStart, this.at);
    this.buf = next;
    this.runStart = 0;
    this.at = run;
  }

  /** The pieces queued since the last take, in order; the queue is empty afterwards. */
  take(): Buffer[] {
    if (this.at > this.runStart) this.parts.push(this.buf!.subarray(this.runStart, this.at));
    this.runStart = this.at;
    const parts = this.parts;
    this.parts = [];
    this.bytes = 0;
    return parts;
  }
}

interface Dialer {
  readonly peer: Peer;
  readonly host: string;
  readonly port: number;
  backoffMs: number;
  timer: NodeJS.Timeout | undefined;
  connection: Connection | undefined;
}

export class Transport {
  readonly self: Peer;
  readonly counters = newTransportCounters();
  readonly queueBytesHigh: number;
  readonly queueBytesMax: number;
  readonly frameBytesMax: number;
  private readonly connections = new Map<Peer, Connection>();
  private readonly pending = new Set<Connection>();
  private readonly dialers = new Map<Peer, Dialer>();
  private readonly dirty = new Set<Connection>();
  private flushScheduled = false;
  private lastPayload: Buffer | undefined;
  /** The MAC input's kind byte and digest of `lastPayload`. */
  private readonly lastDigest = Buffer.alloc(1 + DIGEST_BYTES);
  /** Where a batch digest's input is laid out (batchMacDigestInto). */
  private readonly batchScratch = Buffer.alloc(BATCH_FRAME_BYTES_MAX + DIGEST_BYTES);
  private congestedCount = 0;
  private clientIntakePaused = false;
  private server: net.Server | undefined;
  private closed = false;
  /** Emulated links, when the harness asked for them (infra/link.ts). */
  readonly link: LinkShaper | undefined;

  constructor(
    private readonly options: TransportOptions,
    private readonly handlers: TransportHandlers,
  ) {
    this.self = options.self;
    this.link = options.link === undefined ? linkShaperFromEnv() : (options.link ?? undefined);
    this.queueBytesHigh = options.queueBytesHigh ?? 8 * 1024 * 1024;
    this.queueBytesMax = options.queueBytesMax ?? 64 * 1024 * 1024;
    this.frameBytesMax = options.frameBytesMax ?? WIRE_LIMITS.frameBytesMax;
    const batch = options.batch;
    this.macDigestInto = batch
      ? (payload, out, offset) => {
          if (!batchMacDigestInto(batch, this.batchScratch, payload, out, offset)) plainMacDigestInto(payload, out, offset);
        }
      : plainMacDigestInto;
  }

  /** The kind byte and digest of a long payload's MAC input (plain, or through its batch when `options.batch` is given). */
  readonly macDigestInto: MacDigestInto;

  macKeyFor(peer: Peer): Buffer | undefined {
    return peer === this.self ? undefined : this.options.macKey(peer);
  }

  /** Listens on host:port (0 = any free port); resolves with the bound port. */
  listen(port: number, host = '127.0.0.1'): Promise<number> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((socket) => this.onAccept(socket));
      server.once('error', reject);
      server.listen({ port, host, exclusive: true }, () => {
        server.off('error', reject);
        server.on('error', () => {
          /* accept errors (EMFILE) must not kill the process; connections retry */
        });
        this.server = server;
        resolve((server.address() as net.AddressInfo).port);
      });
    });
  }

  /** Keeps a connection to `peer` at host:port, re-dialling after every drop. */
  dial(peer: Peer, host: string, port: number): void {
    if (this.dialers.has(peer)) return;
    const d: Dialer = { peer, host, port, backoffMs: RECONNECT_MS_MIN, timer: undefined, connection: undefined };
    this.dialers.set(peer, d);
    this.connect(d);
  }

  private connect(d: Dialer): void {
    if (this.closed) return;
    d.timer = undefined;
    const key = this.macKeyFor(d.peer);
    if (!key) throw new Error(`no MAC key for peer ${d.peer}`);
    const socket = net.connect({ host: d.host, port: d.port });
    const conn = new Connection(socket, this, true);
    d.connection = conn;
    socket.once('connect', () => {
      this.counters.connectionsDialled++;
      d.backoffMs = RECONNECT_MS_MIN;
      // The HELLO goes first, alone, so the acceptor can bind the connection before any message.
      socket.write(encodeFrame(key, encodeHello(this.self, d.peer)));
      this.bind(conn, d.peer, key);
    });
  }

  get connectedPeers(): Peer[] {
    return [...this.connections.keys()];
  }

  isConnected(peer: Peer): boolean {
    return this.connections.has(peer);
  }

  private onAccept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.counters.connectionsAccepted++;
    const conn = new Connection(socket, this, false);
    this.pending.add(conn);
  }

  /** Called by a Connection whose HELLO verified. */
  onHelloAccepted(conn: Connection, from: Peer, key: Buffer): void {
    this.pending.delete(conn);
    this.bind(conn, from, key);
  }

  private bind(conn: Connection, peer: Peer, key: Buffer): void {
    conn.peer = peer;
    conn.key = key;
    conn.mac = new FrameMac(key);
    const old = this.connections.get(peer);
    this.connections.set(peer, conn);
    if (old && old !== conn) {
      // A reconnect after a half-open link: the newest authenticated connection wins.
      this.retire(old);
      old.socket.destroy();
    }
    if (isClientPeer(peer) && this.clientIntakePaused) conn.socket.pause();
    this.handlers.onPeerUp?.(peer);
  }

  private retire(conn: Connection): void {
    this.dirty.delete(conn);
    if (conn.congested) {
      conn.congested = false;
      this.onCongestionChange(conn, false);
    }
  }

  onConnectionClosed(conn: Connection): void {
    this.pending.delete(conn);
    const peer = conn.peer;
    if (peer !== undefined && this.connections.get(peer) === conn) {
      this.connections.delete(peer);
      this.retire(conn);
      this.counters.connectionsLost++;
      this.handlers.onPeerDown?.(peer);
    }
    // Only the dialling side re-dials; the accepting side waits for the dialer to come back.
    for (const d of this.dialers.values()) {
      if (d.connection === conn && !this.closed && d.timer === undefined) {
        d.connection = undefined;
        d.timer = setTimeout(() => this.connect(d), d.backoffMs);
        d.backoffMs = Math.min(RECONNECT_MS_MAX, d.backoffMs * 2);
      }
    }
  }

  onCongestionChange(conn: Connection, congested: boolean): void {
    const before = this.congestedCount > 0;
    this.congestedCount += congested ? 1 : -1;
    const after = this.congestedCount > 0;
    if (before !== after) this.handlers.onCongestion?.(after);
    void conn;
  }

  deliver(from: Peer, payload: Buffer): void {
    this.handlers.onFrame(from, payload);
  }

  /**
   * Queues `payload` for `to`; it is written at the end of this event-loop turn. Returns false
   * if the frame was dropped (no connection, or the peer's queue is full).
   */
  send(to: Peer, payload: Buffer): boolean {
    // An emulated link holds the frame until its release time (or drops it: loss).
    if (this.link) return this.link.send(to, payload, (p) => this.sendNow(to, p));
    return this.sendNow(to, payload);
  }

  private sendNow(to: Peer, payload: Buffer): boolean {
    const conn = this.connections.get(to);
    if (!conn) {
      this.counters.unroutable++;
      return false;
    }
    if (conn.queuedBytes > this.queueBytesMax) {
      this.counters.queueFull++;
      return false;
    }
    conn.queue.push(payload, conn.mac!, this.digestInto);
    this.counters.framesSent++;
    this.dirty.add(conn);
    this.scheduleFlush();
    return true;
  }

  /**
   * SHA-256 of a payload, once per frame: a broadcast sends one encoded payload to every peer
   * in a row, so the last payload's digest is kept and reused while the same buffer comes back.
   * (Payloads are never modified after they are sent: they sit in the queues until written.)
   */
  private readonly digestInto: MacDigestInto = (payload, out, offset) => {
    if (payload !== this.lastPayload) {
      this.lastPayload = payload;
      this.macDigestInto(payload, this.lastDigest, 0);
    }
    out.set(this.lastDigest, offset);
  };

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate runs after the poll phase: every 'data' event of this turn is handled first,
    // so one write per connection carries the whole burst. Writing earlier was measured for
    // issue 10 (ABBA pairs of `run --warmup 5 --duration 10 --fixed-warmup`, 2026-12-05, CPU
    // of all processes per accepted batch): a flush after every read, HotStuff n = 4 (load
    // 6,400 txns), 4 pairs: 2.14 against 2.17 ms per turn, 9.3 against 14.1 frames per write;
    // a flush once the oldest queued frame waited 0.25 ms, PoE n = 4, 2 pairs: 0.55 against
    // 0.55 ms, 8.9 against 25 frames per write. No CPU saved beyond the noise, more syscalls.
    setImmediate(() => this.flush());
  }

  /** Writes every queued frame now. */
  flush(): void {
    this.flushScheduled = false;
    this.handlers.onBeforeFlush?.();
    for (const conn of this.dirty) this.counters.bytesSent += conn.flush();
    this.dirty.clear();
  }

  /** Stops (or resumes) reading from client machines: backpressure on new requests. */
  setClientIntakePaused(paused: boolean): void {
    if (this.clientIntakePaused === paused) return;
    this.clientIntakePaused = paused;
    for (const [peer, conn] of this.connections) {
      if (!isClientPeer(peer)) continue;
      if (paused) conn.socket.pause();
      else conn.socket.resume();
    }
  }

  /** Closes the listener and every connection; stops re-dialling. */
  close(): Promise<void> {
    this.closed = true;
    this.link?.close();
    for (const d of this.dialers.values()) if (d.timer) clearTimeout(d.timer);
    for (const conn of [...this.connections.values(), ...this.pending]) conn.socket.destroy();
    for (const d of this.dialers.values()) d.connection?.socket.destroy();
    return new Promise((resolve) => {
      if (!this.server) return resolve();
      this.server.close(() => resolve());
    });
  }
}
