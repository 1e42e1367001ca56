/**
 * The transport's frame MAC limits (infra/process/transport.ts), in a module without I/O so the
 * simulator's cost model (infra/sim/mac-bytes.ts) can read them without loading node:net.
 */

/** Payloads at least this long are MAC'd through their SHA-256, shorter ones whole. */
export const MAC_DIGEST_FROM = 1024;
/** The most bytes around a batch (before and after it) a batch digest covers; a payload with more is MAC'd by its SHA-256. */
export const BATCH_FRAME_BYTES_MAX = 1024;
