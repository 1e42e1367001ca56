/**
 * The bytes the transport's frame MAC hashes (infra/process/transport.ts), for the cost model:
 * the simulator does not run the transport, so it charges its MACs by this rule.
 *
 * - A payload that carries a client batch (replica/messages.ts batchBodyAt) with at most
 *   BATCH_FRAME_BYTES_MAX bytes around it is MAC'd through the body's SHA-256, which the
 *   request digest already computed (MAC_OF_BATCH): the hashing is the bytes around the body
 *   plus the body's 32-byte digest. The body itself is charged once, as the request digest the
 *   core asks its crypto provider for.
 * - Any other payload of MAC_DIGEST_FROM bytes or more is MAC'd through its SHA-256: all of it.
 * - A shorter one is MAC'd whole.
 * A broadcast hashes a long payload once (the transport keeps the last payload's digest): its
 * second and later copies cost only the HMAC of the 33-byte kind and digest.
 */
import { DIGEST_BYTES } from '../../replica/crypto.js';
import { batchBodyAt } from '../../replica/messages.js';
import { BATCH_FRAME_BYTES_MAX, MAC_DIGEST_FROM } from '../process/frame-limits.js';

/** The bytes hashed for the MAC of `payload` sent (or checked) once; `firstCopy` false: a later copy of the same broadcast. */
export function macHashBytes(payload: Buffer, firstCopy: boolean): number {
  const len = payload.length;
  const start = batchBodyAt(payload);
  if (start >= 0) {
    const end = start + payload.readUInt32BE(start - 4);
    const around = len - (end - start);
    if (end <= len && around <= BATCH_FRAME_BYTES_MAX) return firstCopy ? around + DIGEST_BYTES : 1 + DIGEST_BYTES;
  }
  if (len >= MAC_DIGEST_FROM) return firstCopy ? len : 1 + DIGEST_BYTES;
  return len;
}
