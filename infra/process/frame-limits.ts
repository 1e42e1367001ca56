/**
 * The transport's frame layout and MAC limits (infra/process/transport.ts), in a module without
 * I/O so the simulator (infra/sim/mac-bytes.ts, sim-events.ts) can read them without loading
 * node:net.
 */
import { MAC_BYTES } from '../../replica/crypto.js';

/** A frame's header: its length (u32) and its MAC (MAC_BYTES, HMAC-SHA256). */
export const FRAME_HEADER_BYTES = 4 + MAC_BYTES;

/** Payloads at least this long are MAC'd through their SHA-256, shorter ones whole. */
export const MAC_DIGEST_FROM = 1024;
/** The most bytes around a batch (before and after it) a batch digest covers; a payload with more is MAC'd by its SHA-256. */
export const BATCH_FRAME_BYTES_MAX = 1024;
