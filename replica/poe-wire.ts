/**
 * PoE's wire messages and their codec (paper Figure 3 and Figure 5; type ids 10-19), beside
 * the core in replica/poe.ts. The normal case: PROPOSE (Figure 3, line 7), SUPPORT (lines
 * 12-13), INFORM (line 22). The view change: VC-REQUEST (Figure 5, line 4), VC-ACK (line 10),
 * NV-PROPOSE (line 14), NV-ACK (line 18). Recovery (paper §4(6)): FETCH and BLOCKS. The codec
 * is canonical, so D(m) of a view-change message is the digest of its encoding (messageDigest).
 */
import type { CryptoProvider } from './crypto.js';
import { DIGEST_BYTES } from './crypto.js';
import type { ClientRequest, CommonMessage, FieldCodec } from './messages.js';
import { commonCodecs, flatCodec, makeCodec, readRequest, writeRequest } from './messages.js';
import type { WireMessage } from './types.js';
import type { Reader, Writer } from './wire.js';

// Messages (type ids 10-19)

export const MSG_PROPOSE = 10;
export const MSG_SUPPORT = 11;
export const MSG_INFORM = 12;
export const MSG_VC_REQUEST = 13;
export const MSG_VC_ACK = 14;
export const MSG_NV_PROPOSE = 15;
export const MSG_NV_ACK = 16;
export const MSG_FETCH = 17;
export const MSG_BLOCKS = 18;

/** PROPOSE(⟨T⟩c, v, k): the primary proposes T as the k-th transaction of view v (Figure 3, line 7). */
export interface Propose extends WireMessage {
  readonly type: typeof MSG_PROPOSE;
  readonly view: number;
  readonly k: number;
  readonly request: ClientRequest;
}

/** SUPPORT(D(⟨T⟩c), v, k): a replica supports the first proposal for (v, k) it accepted (line 13). */
export interface Support extends WireMessage {
  readonly type: typeof MSG_SUPPORT;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
}

/**
 * INFORM(D(⟨T⟩c), v, k, r) to the client machine (line 22). `view` is the view the batch was
 * proposed in (the ledger block's view), so replicas that executed it in different views report
 * the same triple. clientId and reqNo let the client machine route it to its logical client.
 */
export interface Inform extends WireMessage {
  readonly type: typeof MSG_INFORM;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly clientId: number;
  readonly reqNo: number;
  /** The ledger block hash after executing k. */
  readonly result: Buffer;
}

/** One element of a summary E or E': (w, k, ⟨T⟩c), T executed as the k-th transaction of view w (Figure 5, line 3). */
export interface ExecutionEntry {
  readonly view: number;
  readonly k: number;
  readonly request: ClientRequest;
}

/**
 * VC-REQUEST(v, E) (Figure 5, line 4): `replica` detected failure of the primary of `view`.
 * `entries` are its executions from stableK + 1 on, consecutively (§3.5: only information after
 * the last checkpoint is exchanged).
 */
export interface VcRequest extends WireMessage {
  readonly type: typeof MSG_VC_REQUEST;
  readonly view: number;
  readonly replica: number;
  readonly stableK: number;
  /** The state digest (ledger hash) of that checkpoint, so others can check the claim. */
  readonly stableDigest: Buffer;
  readonly entries: readonly ExecutionEntry[];
}

/** VC-ACK(v, id(Q), D(m)): the sender acknowledges Q's VC-REQUEST m (Figure 5, line 10). */
export interface VcAck extends WireMessage {
  readonly type: typeof MSG_VC_ACK;
  readonly view: number;
  readonly replica: number;
  readonly digest: Buffer;
}

/** (id(Q_i), D(m_i)): one element of V (Figure 5, line 13). */
export interface CertificateEntry {
  readonly replica: number;
  readonly digest: Buffer;
}

/**
 * NV-PROPOSE(v+1, E', V) (Figure 5, line 14). `view` is the new view; E' is `entries`,
 * consecutive from stableK + 1, where stableK is the highest stable checkpoint among the
 * requests in V.
 */
export interface NvPropose extends WireMessage {
  readonly type: typeof MSG_NV_PROPOSE;
  readonly view: number;
  readonly stableK: number;
  /** The ledger hash at stableK that V's requests claimed (replicas behind it fetch blocks to it). */
  readonly stableDigest: Buffer;
  readonly entries: readonly ExecutionEntry[];
  readonly certificate: readonly CertificateEntry[];
}

/** NV-ACK(v+1, D(m)) (Figure 5, line 18). */
export interface NvAck extends WireMessage {
  readonly type: typeof MSG_NV_ACK;
  readonly view: number;
  readonly digest: Buffer;
}

/**
 * FETCH(fromK, toK): a replica behind a stable checkpoint asks for the executed blocks it lacks
 * (paper §4(6): "A recovering replica ... can ask other replicas for the blocks").
 */
export interface Fetch extends WireMessage {
  readonly type: typeof MSG_FETCH;
  readonly fromK: number;
  readonly toK: number;
}

/** BLOCKS: executed batches (w, k, ⟨T⟩c) from fromK on; the receiver checks them against the hash chain. */
export interface Blocks extends WireMessage {
  readonly type: typeof MSG_BLOCKS;
  readonly entries: readonly ExecutionEntry[];
}

export type PoeMessage = CommonMessage | Propose | Support | Inform | VcRequest | VcAck | NvPropose | NvAck | Fetch | Blocks;

// ---------------------------------------------------------------------------------------
// Codec

/** view, k and the smallest request (empty body, signature) an entry can hold. */
const ENTRY_BYTES_MIN = 8 + 8 + 4 + 64;

function writeEntry(w: Writer, e: ExecutionEntry): void {
  w.u53(e.view).u53(e.k);
  writeRequest(w, e.request);
}

function readEntry(r: Reader): ExecutionEntry {
  const view = r.u53('entry.view');
  const k = r.u53('entry.k');
  return { view, k, request: readRequest(r) };
}

/** The layouts of SUPPORT and INFORM, for flatCodec: what their hand-written codecs below must match. */
export const SUPPORT_LAYOUT = { view: 'u53', k: 'u53', digest: 'digest' } as const;
export const INFORM_LAYOUT = { view: 'u53', k: 'u53', digest: 'digest', clientId: 'u32', reqNo: 'u32', result: 'digest' } as const;

/**
 * SUPPORT and INFORM are the messages of every batch at every replica ((n-1)^2 SUPPORTs and n
 * INFORMs per batch), so they are written and read field by field rather than by flatCodec's
 * loop over a layout, whose keyed reads and writes are shared by every flat message type and
 * never specialise. The bytes, the decoded messages (fields in layout order) and the errors are
 * flatCodec's with SUPPORT_LAYOUT and INFORM_LAYOUT (poe-wire.test.ts checks them against it).
 */
const supportCodec: FieldCodec<Support> = {
  write: (w, m) => {
    w.u53(m.view).u53(m.k).fixed(m.digest, DIGEST_BYTES);
  },
  read: (r) => ({ type: MSG_SUPPORT, view: r.u53('support.view'), k: r.u53('support.k'), digest: r.fixed(DIGEST_BYTES, 'support.digest') }),
};

const informCodec: FieldCodec<Inform> = {
  write: (w, m) => {
    w.u53(m.view).u53(m.k).fixed(m.digest, DIGEST_BYTES).u32(m.clientId).u32(m.reqNo).fixed(m.result, DIGEST_BYTES);
  },
  read: (r) => ({
    type: MSG_INFORM,
    view: r.u53('inform.view'),
    k: r.u53('inform.k'),
    digest: r.fixed(DIGEST_BYTES, 'inform.digest'),
    clientId: r.u32('inform.clientId'),
    reqNo: r.u32('inform.reqNo'),
    result: r.fixed(DIGEST_BYTES, 'inform.result'),
  }),
};

const poeCodecs: Record<number, FieldCodec<PoeMessage>> = {
  ...(commonCodecs as Record<number, FieldCodec<PoeMessage>>),
  [MSG_PROPOSE]: {
    write: (w, m) => {
      const p = m as Propose;
      w.u53(p.view).u53(p.k);
      writeRequest(w, p.request);
    },
    read: (r) => ({ type: MSG_PROPOSE, view: r.u53('propose.view'), k: r.u53('propose.k'), request: readRequest(r) }),
    // type u8, view u53, k u53, then the batch.
    batchAt: 17,
  },
  [MSG_SUPPORT]: supportCodec as FieldCodec<PoeMessage>,
  [MSG_INFORM]: informCodec as FieldCodec<PoeMessage>,
  [MSG_VC_REQUEST]: {
    write: (w, m) => {
      const v = m as VcRequest;
      w.u53(v.view).u16(v.replica).u53(v.stableK).fixed(v.stableDigest, DIGEST_BYTES).list(v.entries, writeEntry);
    },
    read: (r) => ({
      type: MSG_VC_REQUEST,
      view: r.u53('vcRequest.view'),
      replica: r.u16('vcRequest.replica'),
      stableK: r.u53('vcRequest.stableK'),
      stableDigest: r.fixed(DIGEST_BYTES, 'vcRequest.stableDigest'),
      entries: r.list(readEntry, 'vcRequest.entries', ENTRY_BYTES_MIN),
    }),
  },
  [MSG_VC_ACK]: flatCodec<VcAck>(MSG_VC_ACK, 'vcAck', { view: 'u53', replica: 'u16', digest: 'digest' }),
  [MSG_NV_PROPOSE]: {
    write: (w, m) => {
      const p = m as NvPropose;
      w.u53(p.view).u53(p.stableK).fixed(p.stableDigest, DIGEST_BYTES).list(p.entries, writeEntry);
      w.list(p.certificate, (w2, c) => w2.u16(c.replica).fixed(c.digest, DIGEST_BYTES));
    },
    read: (r) => ({
      type: MSG_NV_PROPOSE,
      view: r.u53('nvPropose.view'),
      stableK: r.u53('nvPropose.stableK'),
      stableDigest: r.fixed(DIGEST_BYTES, 'nvPropose.stableDigest'),
      entries: r.list(readEntry, 'nvPropose.entries', ENTRY_BYTES_MIN),
      certificate: r.list(
        (r2) => ({ replica: r2.u16('certificate.replica'), digest: r2.fixed(DIGEST_BYTES, 'certificate.digest') }),
        'nvPropose.certificate',
        2 + DIGEST_BYTES,
      ),
    }),
  },
  [MSG_NV_ACK]: flatCodec<NvAck>(MSG_NV_ACK, 'nvAck', { view: 'u53', digest: 'digest' }),
  [MSG_FETCH]: flatCodec<Fetch>(MSG_FETCH, 'fetch', { fromK: 'u53', toK: 'u53' }),
  [MSG_BLOCKS]: {
    write: (w, m) => {
      w.list((m as Blocks).entries, writeEntry);
    },
    read: (r) => ({ type: MSG_BLOCKS, entries: r.list(readEntry, 'blocks.entries', ENTRY_BYTES_MIN) }),
  },
};

export const poeCodec = makeCodec<PoeMessage>(poeCodecs, 'poe');

/** D(m) of a view-change message: SHA-256 of its encoding (the codec is canonical). */
export function messageDigest(crypto: CryptoProvider, msg: PoeMessage): Buffer {
  return crypto.digest(poeCodec.encode(msg));
}
