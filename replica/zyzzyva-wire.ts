/**
 * Zyzzyva's wire: message types (ids 30-39), the history hash, the bytes each signature covers,
 * the commit-certificate check, and the codec. The protocol is in zyzzyva.ts (its header
 * cites the PoE paper §4(8) and Kotla et al., "Zyzzyva: Speculative Byzantine Fault
 * Tolerance", SOSP 2007, §3.2).
 */
import { hex } from './common.js';
import type { CryptoProvider, Verifier } from './crypto.js';
import { DIGEST_BYTES, SIGNATURE_BYTES } from './crypto.js';
import type { ClientRequest, CommonMessage, FieldCodec } from './messages.js';
import { commonCodecs, makeCodec, readRequest, writeRequest } from './messages.js';
import type { WireMessage } from './types.js';
import { type Reader, Writer } from './wire.js';

export const MSG_ORDER_REQ = 30;
export const MSG_SPEC_RESPONSE = 31;
export const MSG_COMMIT = 32;
export const MSG_LOCAL_COMMIT = 33;

/** ORDER-REQ(v, k, h_k, d, request): the primary's order for request d at k (Zyzzyva §3.2 step 2). */
export interface OrderReq extends WireMessage {
  readonly type: typeof MSG_ORDER_REQ;
  readonly view: number;
  readonly k: number;
  readonly history: Buffer;
  readonly digest: Buffer;
  readonly request: ClientRequest;
}

/** SPEC-RESPONSE: a replica's signed speculative reply (Zyzzyva §3.2 step 3). */
export interface SpecResponse extends WireMessage {
  readonly type: typeof MSG_SPEC_RESPONSE;
  readonly view: number;
  readonly k: number;
  readonly history: Buffer;
  readonly digest: Buffer;
  readonly clientId: number;
  readonly reqNo: number;
  readonly result: Buffer;
  readonly replica: number;
  readonly signature: Buffer;
}

/**
 * CC: nf SPEC-RESPONSEs from distinct replicas that agree on (v, k, h_k, d, result). They sign
 * the same bytes, so the certificate holds those fields once and one signature per replica.
 */
export interface CommitCertificate {
  readonly view: number;
  readonly k: number;
  readonly history: Buffer;
  readonly digest: Buffer;
  readonly result: Buffer;
  readonly signers: readonly { readonly replica: number; readonly signature: Buffer }[];
}

/** COMMIT(c, CC): the client's second phase (Zyzzyva §3.2, case 2). */
export interface Commit extends WireMessage {
  readonly type: typeof MSG_COMMIT;
  readonly clientId: number;
  readonly reqNo: number;
  readonly cert: CommitCertificate;
}

/** LOCAL-COMMIT: a replica holds the certified history up to k as committed. */
export interface LocalCommit extends WireMessage {
  readonly type: typeof MSG_LOCAL_COMMIT;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly history: Buffer;
  readonly clientId: number;
  readonly reqNo: number;
  readonly replica: number;
  readonly signature: Buffer;
}

export type ZyzzyvaMessage = CommonMessage | OrderReq | SpecResponse | Commit | LocalCommit;

// ---------------------------------------------------------------------------------------
// Hashes and signed bytes

/** h_0: the history before the first request. */
export const GENESIS_HISTORY: Buffer = Buffer.alloc(DIGEST_BYTES);

/** h_k = H(h_{k-1}, d) (Zyzzyva §3.2): one hash fixes the whole ordered history up to k. */
export function nextHistory(crypto: CryptoProvider, previous: Buffer, digest: Buffer): Buffer {
  return crypto.digestParts([previous, digest]);
}

// Domain tags keep a signature over one message kind from verifying as another.
const SPEC_TAG = 0x5a;
const LOCAL_COMMIT_TAG = 0x5b;

export interface SpecFields {
  readonly view: number;
  readonly k: number;
  readonly history: Buffer;
  readonly digest: Buffer;
  readonly clientId: number;
  readonly reqNo: number;
  readonly result: Buffer;
}

/** The bytes a replica signs in a SPEC-RESPONSE (the replica id is implied by the key). */
export function specSignedBytes(s: SpecFields): Buffer {
  const w = new Writer(1 + 16 + 3 * DIGEST_BYTES + 8);
  w.u8(SPEC_TAG).u53(s.view).u53(s.k).fixed(s.history, DIGEST_BYTES).fixed(s.digest, DIGEST_BYTES);
  w.u32(s.clientId).u32(s.reqNo).fixed(s.result, DIGEST_BYTES);
  return w.finish();
}

export type LocalCommitFields = Omit<LocalCommit, 'type' | 'replica' | 'signature'>;

export function localCommitSignedBytes(c: LocalCommitFields): Buffer {
  const w = new Writer(1 + 16 + 2 * DIGEST_BYTES + 8);
  w.u8(LOCAL_COMMIT_TAG).u53(c.view).u53(c.k).fixed(c.digest, DIGEST_BYTES).fixed(c.history, DIGEST_BYTES);
  w.u32(c.clientId).u32(c.reqNo);
  return w.finish();
}

/** Responses "match" when they agree on everything but the sender (Zyzzyva §3.2). */
export function specKey(s: SpecFields): string {
  return `${s.view}/${s.k}/${hex(s.history)}/${hex(s.digest)}/${hex(s.result)}`;
}

export function localCommitKey(c: LocalCommitFields): string {
  return `${c.view}/${c.k}/${hex(c.history)}/${hex(c.digest)}`;
}

/**
 * Counts the certificate's valid signatures from distinct replicas, stopping at `needed`.
 * A repeated signer, an unknown replica or a bad signature counts for nothing.
 */
export function countCertificateSigners(cert: CommitCertificate, clientId: number, reqNo: number, verifiers: readonly Verifier[], needed: number): number {
  const signed = specSignedBytes({ ...cert, clientId, reqNo });
  const seen = new Set<number>();
  for (const { replica, signature } of cert.signers) {
    if (seen.has(replica)) continue;
    const verifier = verifiers[replica];
    if (!verifier || !verifier.verify(signed, signature)) continue;
    seen.add(replica);
    if (seen.size >= needed) break;
  }
  return seen.size;
}

// ---------------------------------------------------------------------------------------
// Codec

/** A certificate never needs more signers than there are replicas; this bounds decoding. */
const CERT_SIGNERS_MAX = 1024;

const zyzzyvaCodecs: Record<number, FieldCodec<ZyzzyvaMessage>> = {
  ...(commonCodecs as Record<number, FieldCodec<ZyzzyvaMessage>>),
  [MSG_ORDER_REQ]: {
    write: (w, m) => {
      const o = m as OrderReq;
      w.u53(o.view).u53(o.k).fixed(o.history, DIGEST_BYTES).fixed(o.digest, DIGEST_BYTES);
      writeRequest(w, o.request);
    },
    read: (r): OrderReq => ({
      type: MSG_ORDER_REQ,
      view: r.u53('order.view'),
      k: r.u53('order.k'),
      history: r.fixed(DIGEST_BYTES, 'order.history'),
      digest: r.fixed(DIGEST_BYTES, 'order.digest'),
      request: readRequest(r),
    }),
    // type u8, view u53, k u53, history and digest (32 bytes each), then the batch.
    batchAt: 81,
  },
  [MSG_SPEC_RESPONSE]: {
    write: (w, m) => {
      const s = m as SpecResponse;
      w.u53(s.view).u53(s.k).fixed(s.history, DIGEST_BYTES).fixed(s.digest, DIGEST_BYTES);
      w.u32(s.clientId).u32(s.reqNo).fixed(s.result, DIGEST_BYTES).u16(s.replica).fixed(s.signature, SIGNATURE_BYTES);
    },
    read: (r): SpecResponse => ({
      type: MSG_SPEC_RESPONSE,
      view: r.u53('spec.view'),
      k: r.u53('spec.k'),
      history: r.fixed(DIGEST_BYTES, 'spec.history'),
      digest: r.fixed(DIGEST_BYTES, 'spec.digest'),
      clientId: r.u32('spec.clientId'),
      reqNo: r.u32('spec.reqNo'),
      result: r.fixed(DIGEST_BYTES, 'spec.result'),
      replica: r.u16('spec.replica'),
      signature: r.fixed(SIGNATURE_BYTES, 'spec.signature'),
    }),
  },
  [MSG_COMMIT]: {
    write: (w, m) => {
      const c = m as Commit;
      const cc = c.cert;
      w.u32(c.clientId).u32(c.reqNo);
      w.u53(cc.view).u53(cc.k).fixed(cc.history, DIGEST_BYTES).fixed(cc.digest, DIGEST_BYTES).fixed(cc.result, DIGEST_BYTES);
      w.list(cc.signers, (w2, s) => {
        w2.u16(s.replica).fixed(s.signature, SIGNATURE_BYTES);
      });
    },
    read: (r): Commit => ({
      type: MSG_COMMIT,
      clientId: r.u32('commit.clientId'),
      reqNo: r.u32('commit.reqNo'),
      cert: readCertificate(r),
    }),
  },
  [MSG_LOCAL_COMMIT]: {
    write: (w, m) => {
      const c = m as LocalCommit;
      w.u53(c.view).u53(c.k).fixed(c.digest, DIGEST_BYTES).fixed(c.history, DIGEST_BYTES);
      w.u32(c.clientId).u32(c.reqNo).u16(c.replica).fixed(c.signature, SIGNATURE_BYTES);
    },
    read: (r): LocalCommit => ({
      type: MSG_LOCAL_COMMIT,
      view: r.u53('localCommit.view'),
      k: r.u53('localCommit.k'),
      digest: r.fixed(DIGEST_BYTES, 'localCommit.digest'),
      history: r.fixed(DIGEST_BYTES, 'localCommit.history'),
      clientId: r.u32('localCommit.clientId'),
      reqNo: r.u32('localCommit.reqNo'),
      replica: r.u16('localCommit.replica'),
      signature: r.fixed(SIGNATURE_BYTES, 'localCommit.signature'),
    }),
  },
};

function readCertificate(r: Reader): CommitCertificate {
  return {
    view: r.u53('cert.view'),
    k: r.u53('cert.k'),
    history: r.fixed(DIGEST_BYTES, 'cert.history'),
    digest: r.fixed(DIGEST_BYTES, 'cert.digest'),
    result: r.fixed(DIGEST_BYTES, 'cert.result'),
    signers: r.list(
      (r2) => ({ replica: r2.u16('cert.signer'), signature: r2.fixed(SIGNATURE_BYTES, 'cert.signature') }),
      'cert.signers',
      2 + SIGNATURE_BYTES,
      CERT_SIGNERS_MAX,
    ),
  };
}

export const zyzzyvaCodec = makeCodec<ZyzzyvaMessage>(zyzzyvaCodecs, 'zyzzyva');
