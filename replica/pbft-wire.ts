/**
 * PBFT's wire messages and their codec (type ids 20-29): Castro and Liskov, OSDI'99 §4.1-§4.4
 * for the normal case and checkpoints, and for the view change the MAC-based protocol of their
 * TOCS 2002 paper ("Practical Byzantine Fault Tolerance and Proactive Recovery", §4 / the BFT-PR
 * view change): VIEW-CHANGE with the stable checkpoint and the P and Q sets, VIEW-CHANGE-ACK to
 * the new primary, NEW-VIEW with V and O. The paper's ResilientDB implementation of PBFT is
 * §4(8) of the PoE paper. The replica core is replica/pbft.ts.
 */
import { DIGEST_BYTES } from './crypto.js';
import { commonCodecs, makeCodec, readRequest, writeRequest, type ClientRequest, type CommonMessage, type FieldCodec } from './messages.js';
import type { WireMessage } from './types.js';
import { type Reader, Writer } from './wire.js';

export const MSG_PRE_PREPARE = 20;
export const MSG_PREPARE = 21;
export const MSG_COMMIT = 22;
export const MSG_REPLY = 23;
export const MSG_VIEW_CHANGE = 24;
export const MSG_NEW_VIEW = 25;
export const MSG_FETCH = 26;
export const MSG_BATCHES = 27;
export const MSG_VIEW_CHANGE_ACK = 28;

/** ⟨PRE-PREPARE, v, k, d⟩ with the request itself (PBFT §4.2). */
export interface PrePrepare extends WireMessage {
  readonly type: typeof MSG_PRE_PREPARE;
  readonly replica: number;
  readonly view: number;
  readonly k: number;
  /** The view in which k was first assigned this batch (see the module comment). */
  readonly originView: number;
  readonly request: ClientRequest;
}

/** ⟨PREPARE, v, k, d, i⟩ (PBFT §4.2). */
export interface Prepare extends WireMessage {
  readonly type: typeof MSG_PREPARE;
  readonly replica: number;
  readonly view: number;
  readonly k: number;
  readonly originView: number;
  readonly digest: Buffer;
}

/** ⟨COMMIT, v, k, d, i⟩ (PBFT §4.2). */
export interface Commit extends WireMessage {
  readonly type: typeof MSG_COMMIT;
  readonly replica: number;
  readonly view: number;
  readonly k: number;
  readonly originView: number;
  readonly digest: Buffer;
}

/** ⟨REPLY, v, t, c, i, r⟩ (PBFT §4.1): `result` is the ledger block hash after executing k. */
export interface Reply extends WireMessage {
  readonly type: typeof MSG_REPLY;
  readonly replica: number;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly clientId: number;
  readonly reqNo: number;
  readonly result: Buffer;
}

/** A checkpoint a replica took: its sequence number and state digest (the ledger head hash there). */
export interface CheckpointClaim {
  readonly k: number;
  readonly stateDigest: Buffer;
}

/** A stable checkpoint and its proof: the nf replicas that sent matching CHECKPOINTs. */
export interface CheckpointProof {
  readonly k: number;
  readonly stateDigest: Buffer;
  readonly senders: readonly number[];
}

/**
 * One element of a VIEW-CHANGE's P set (TOCS 2002 §4): batch `digest` (with its origin view)
 * prepared at the sender with sequence number k in `view`, and nothing prepared there for k in
 * a later view. A VIEW-CHANGE carries the request itself so the new primary can re-propose it
 * to replicas that never saw it; NEW-VIEW's copy of V omits it (O carries each request once).
 * Under MACs this is a claim, not a proof: the new primary's decision rule (pbft-view-change.ts)
 * never takes one replica's word for it.
 */
export interface PreparedCert {
  readonly k: number;
  readonly view: number;
  readonly originView: number;
  readonly digest: Buffer;
  readonly request?: ClientRequest;
}

/**
 * One element of a VIEW-CHANGE's Q set (TOCS 2002 §4): batch `digest` (with its origin view)
 * pre-prepared at the sender with sequence number k, `view` the latest view in which it did.
 */
export interface PrePreparedInfo {
  readonly k: number;
  readonly view: number;
  readonly originView: number;
  readonly digest: Buffer;
}

/** ⟨VIEW-CHANGE, v+1, h, C, P, Q, i⟩ (TOCS 2002 §4; OSDI'99 §4.4 without Q). */
export interface ViewChange extends WireMessage {
  readonly type: typeof MSG_VIEW_CHANGE;
  readonly replica: number;
  /** The view being moved to. */
  readonly view: number;
  /** The sender's stable checkpoint (h and its digest; `senders` is a claim, not a proof). */
  readonly checkpoint: CheckpointProof;
  /** The rest of C: checkpoints the sender took (executed) above h, not yet stable there. */
  readonly taken: readonly CheckpointClaim[];
  /** P: what prepared at the sender above h, at most one entry per k. */
  readonly prepared: readonly PreparedCert[];
  /** Q: what pre-prepared at the sender above h, at most PBFT_Q_PER_K entries per k. */
  readonly prePrepared: readonly PrePreparedInfo[];
}

/**
 * ⟨VIEW-CHANGE-ACK, v+1, i, j, d⟩ (TOCS 2002 §4): replica `replica` tells the new primary it
 * received VIEW-CHANGE `digest` (of its bytes without requests) from replica `of`.
 */
export interface ViewChangeAck extends WireMessage {
  readonly type: typeof MSG_VIEW_CHANGE_ACK;
  readonly replica: number;
  readonly view: number;
  readonly of: number;
  readonly digest: Buffer;
}

/** Q keeps at most this many batches per sequence number (those of the latest views). */
export const PBFT_Q_PER_K = 4;

/** One pre-prepare of O: ⟨PRE-PREPARE, v+1, k, d⟩, with the request (a null request if none). */
export interface NewViewEntry {
  readonly k: number;
  readonly originView: number;
  readonly request: ClientRequest;
}

/**
 * ⟨NEW-VIEW, v+1, V, O⟩ (TOCS 2002 §4): V the VIEW-CHANGEs the decision was made on (without
 * their requests), O a pre-prepare for every k between the chosen checkpoint and the highest k
 * of a P entry in V.
 */
export interface NewView extends WireMessage {
  readonly type: typeof MSG_NEW_VIEW;
  readonly replica: number;
  readonly view: number;
  readonly viewChanges: readonly ViewChange[];
  readonly prePrepares: readonly NewViewEntry[];
}

/**
 * Asks for the executed batches fromK..toK. A replica that a stable checkpoint has overtaken
 * (it missed a PRE-PREPARE the others committed and then garbage-collected) fetches them from
 * the checkpoint's signers: PBFT §4.3's state transfer, reduced to replaying batches.
 */
export interface Fetch extends WireMessage {
  readonly type: typeof MSG_FETCH;
  readonly replica: number;
  readonly fromK: number;
  readonly toK: number;
}

/** The answer to FETCH: executed batches with their sequence numbers and origin views, in order. */
export interface Batches extends WireMessage {
  readonly type: typeof MSG_BATCHES;
  readonly replica: number;
  readonly entries: readonly NewViewEntry[];
}

export type PbftMessage = CommonMessage | PrePrepare | Prepare | Commit | Reply | ViewChange | ViewChangeAck | NewView | Fetch | Batches;

// ---------------------------------------------------------------------------------------
// Codec

const VOTE_CODEC = {
  write(w: Writer, m: Prepare | Commit): void {
    w.u16(m.replica).u53(m.view).u53(m.k).u53(m.originView).fixed(m.digest, DIGEST_BYTES);
  },
  read<T extends typeof MSG_PREPARE | typeof MSG_COMMIT>(r: Reader, type: T, what: string) {
    return {
      type,
      replica: r.u16(`${what}.replica`),
      view: r.u53(`${what}.view`),
      k: r.u53(`${what}.k`),
      originView: r.u53(`${what}.originView`),
      digest: r.fixed(DIGEST_BYTES, `${what}.digest`),
    };
  },
};

const readSender = (r: Reader): number => r.u16('sender');
const writeSender = (w: Writer, s: number): void => void w.u16(s);

function writeCert(w: Writer, c: PreparedCert): void {
  w.u53(c.k).u53(c.view).u53(c.originView).fixed(c.digest, DIGEST_BYTES);
  w.bool(c.request !== undefined);
  if (c.request) writeRequest(w, c.request);
}

function readCert(r: Reader): PreparedCert {
  const k = r.u53('cert.k');
  const view = r.u53('cert.view');
  const originView = r.u53('cert.originView');
  const digest = r.fixed(DIGEST_BYTES, 'cert.digest');
  const hasRequest = r.bool('cert.hasRequest');
  const cert: PreparedCert = { k, view, originView, digest };
  return hasRequest ? { ...cert, request: readRequest(r) } : cert;
}

/** Minimum encoded size of a certificate, bounding forged list counts before allocation. */
const CERT_BYTES_MIN = 8 * 3 + DIGEST_BYTES + 1;

function writeInfo(w: Writer, q: PrePreparedInfo): void {
  w.u53(q.k).u53(q.view).u53(q.originView).fixed(q.digest, DIGEST_BYTES);
}

function readInfo(r: Reader): PrePreparedInfo {
  return { k: r.u53('q.k'), view: r.u53('q.view'), originView: r.u53('q.originView'), digest: r.fixed(DIGEST_BYTES, 'q.digest') };
}

const INFO_BYTES = 8 * 3 + DIGEST_BYTES;

function writeEntry(w: Writer, e: NewViewEntry): void {
  w.u53(e.k).u53(e.originView);
  writeRequest(w, e.request);
}

function readEntry(r: Reader): NewViewEntry {
  return { k: r.u53('entry.k'), originView: r.u53('entry.originView'), request: readRequest(r) };
}

/** Minimum encoded size of an entry (k, origin view, empty request body, signature). */
const ENTRY_BYTES_MIN = 8 + 8 + 4 + 64;

function writeViewChange(w: Writer, m: ViewChange): void {
  w.u16(m.replica).u53(m.view);
  w.u53(m.checkpoint.k).fixed(m.checkpoint.stateDigest, DIGEST_BYTES).list(m.checkpoint.senders, writeSender);
  w.list(m.taken, (w2, c) => void w2.u53(c.k).fixed(c.stateDigest, DIGEST_BYTES));
  w.list(m.prepared, writeCert);
  w.list(m.prePrepared, writeInfo);
}

function readViewChange(r: Reader): ViewChange {
  const replica = r.u16('viewChange.replica');
  const view = r.u53('viewChange.view');
  const checkpoint: CheckpointProof = {
    k: r.u53('viewChange.checkpoint.k'),
    stateDigest: r.fixed(DIGEST_BYTES, 'viewChange.checkpoint.stateDigest'),
    senders: r.list(readSender, 'viewChange.checkpoint.senders', 2),
  };
  const taken = r.list((r2) => ({ k: r2.u53('taken.k'), stateDigest: r2.fixed(DIGEST_BYTES, 'taken.stateDigest') }), 'viewChange.taken', 8 + DIGEST_BYTES);
  const prepared = r.list(readCert, 'viewChange.prepared', CERT_BYTES_MIN);
  const prePrepared = r.list(readInfo, 'viewChange.prePrepared', INFO_BYTES);
  return { type: MSG_VIEW_CHANGE, replica, view, checkpoint, taken, prepared, prePrepared };
}

const pbftCodecs: Record<number, FieldCodec<PbftMessage>> = {
  [MSG_PRE_PREPARE]: {
    write: (w, m) => {
      const p = m as PrePrepare;
      w.u16(p.replica).u53(p.view).u53(p.k).u53(p.originView);
      writeRequest(w, p.request);
    },
    read: (r) => ({
      type: MSG_PRE_PREPARE,
      replica: r.u16('prePrepare.replica'),
      view: r.u53('prePrepare.view'),
      k: r.u53('prePrepare.k'),
      originView: r.u53('prePrepare.originView'),
      request: readRequest(r),
    }),
    // type u8, replica u16, view u53, k u53, originView u53, then the batch.
    batchAt: 27,
  },
  [MSG_PREPARE]: {
    write: (w, m) => VOTE_CODEC.write(w, m as Prepare),
    read: (r) => VOTE_CODEC.read(r, MSG_PREPARE, 'prepare'),
  },
  [MSG_COMMIT]: {
    write: (w, m) => VOTE_CODEC.write(w, m as Commit),
    read: (r) => VOTE_CODEC.read(r, MSG_COMMIT, 'commit'),
  },
  [MSG_REPLY]: {
    write: (w, m) => {
      const p = m as Reply;
      w.u16(p.replica).u53(p.view).u53(p.k).fixed(p.digest, DIGEST_BYTES).u32(p.clientId).u32(p.reqNo).bytes(p.result);
    },
    read: (r) => ({
      type: MSG_REPLY,
      replica: r.u16('reply.replica'),
      view: r.u53('reply.view'),
      k: r.u53('reply.k'),
      digest: r.fixed(DIGEST_BYTES, 'reply.digest'),
      clientId: r.u32('reply.clientId'),
      reqNo: r.u32('reply.reqNo'),
      result: r.bytes('reply.result', 1024),
    }),
  },
  [MSG_VIEW_CHANGE]: {
    write: (w, m) => writeViewChange(w, m as ViewChange),
    read: (r) => readViewChange(r),
  },
  [MSG_VIEW_CHANGE_ACK]: {
    write: (w, m) => {
      const p = m as ViewChangeAck;
      w.u16(p.replica).u53(p.view).u16(p.of).fixed(p.digest, DIGEST_BYTES);
    },
    read: (r) => ({
      type: MSG_VIEW_CHANGE_ACK,
      replica: r.u16('viewChangeAck.replica'),
      view: r.u53('viewChangeAck.view'),
      of: r.u16('viewChangeAck.of'),
      digest: r.fixed(DIGEST_BYTES, 'viewChangeAck.digest'),
    }),
  },
  [MSG_NEW_VIEW]: {
    write: (w, m) => {
      const p = m as NewView;
      w.u16(p.replica).u53(p.view);
      w.list(p.viewChanges, writeViewChange);
      w.list(p.prePrepares, writeEntry);
    },
    read: (r) => ({
      type: MSG_NEW_VIEW,
      replica: r.u16('newView.replica'),
      view: r.u53('newView.view'),
      viewChanges: r.list(readViewChange, 'newView.viewChanges', 2 + 8 + 8 + DIGEST_BYTES + 4 * 4),
      prePrepares: r.list(readEntry, 'newView.prePrepares', ENTRY_BYTES_MIN),
    }),
  },
  [MSG_FETCH]: {
    write: (w, m) => {
      const p = m as Fetch;
      w.u16(p.replica).u53(p.fromK).u53(p.toK);
    },
    read: (r) => ({ type: MSG_FETCH, replica: r.u16('fetch.replica'), fromK: r.u53('fetch.fromK'), toK: r.u53('fetch.toK') }),
  },
  [MSG_BATCHES]: {
    write: (w, m) => {
      const p = m as Batches;
      w.u16(p.replica).list(p.entries, writeEntry);
    },
    read: (r) => ({ type: MSG_BATCHES, replica: r.u16('batches.replica'), entries: r.list(readEntry, 'batches.entries', ENTRY_BYTES_MIN) }),
  },
};

export const pbftCodec = makeCodec<PbftMessage>({ ...commonCodecs, ...pbftCodecs }, 'pbft');

/** The bytes of a VIEW-CHANGE without its requests: what NEW-VIEW's V carries and backups compare. */
export function stripRequests(vc: ViewChange): ViewChange {
  return { ...vc, prepared: vc.prepared.map(({ request: _request, ...cert }) => cert) };
}

export function summaryBytes(vc: ViewChange): Buffer {
  const w = new Writer(256);
  writeViewChange(w, stripRequests(vc));
  return w.finish();
}
