/**
 * HotStuff's wire: message types (ids 40-49), the bytes each signature covers, the
 * constructors that sign them, the quorum-certificate check, and the codec. The protocol is
 * in hotstuff.ts (its header cites the PoE paper §4(8) and Yin et al., "HotStuff: BFT
 * Consensus with Linearity and Responsiveness", PODC 2019, Algorithms 2 and 3).
 *
 * Every message is Ed25519-signed by its sender (paper §4(8): "each of its replicas [signs]
 * every message using digital signatures"). A quorum certificate is a list of (replica,
 * signature) pairs, no threshold signature; under the 'paper' rule (hotstuff.ts) the leader
 * forwards no votes, so the certificates its phase messages carry have no signatures and name
 * only what they certify (phase, view, k, digest).
 */
import type { CryptoProvider, Signer, Verifier } from './crypto.js';
import { DIGEST_BYTES, SIGNATURE_BYTES } from './crypto.js';
import type { ClientRequest, CommonMessage, FieldCodec } from './messages.js';
import { commonCodecs, makeCodec, readRequest, requestDigest, writeRequest } from './messages.js';
import type { Quorums, WireMessage } from './types.js';
import { CodecError, type Reader, Writer } from './wire.js';

export const MSG_HS_PREPARE = 40;
export const MSG_HS_PRE_COMMIT = 41;
export const MSG_HS_COMMIT = 42;
export const MSG_HS_DECIDE = 43;
export const MSG_HS_VOTE = 44;
export const MSG_HS_REPLY = 45;
export const MSG_HS_PROPOSAL = 46;
export const MSG_HS_NEW_VIEW = 47;
export const MSG_HS_BLOCK_REQUEST = 48;

/** What a vote (and so a QC) is about: Algorithm 2's three voting phases, Algorithm 3's one. */
export const PHASE_PREPARE = 0;
export const PHASE_PRE_COMMIT = 1;
export const PHASE_COMMIT = 2;
export const PHASE_GENERIC = 3;
export type Phase = typeof PHASE_PREPARE | typeof PHASE_PRE_COMMIT | typeof PHASE_COMMIT | typeof PHASE_GENERIC;

export interface QcSignature {
  readonly replica: number;
  readonly signature: Buffer;
}

/**
 * A quorum certificate: nf distinct replicas' signatures over the same vote bytes
 * (phase, view, k, digest). Without threshold signatures it is the list itself (paper §4(8)).
 * `k` is the slot (parallel) or the block height (chained); `digest` the batch digest
 * (parallel) or the block hash (chained).
 */
export interface QuorumCert {
  readonly phase: Phase;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly sigs: readonly QcSignature[];
}

/** PREPARE: the leader's proposal for slot k in view v; justify is its highQC (none in view 0). */
export interface HsPrepare extends WireMessage {
  readonly type: typeof MSG_HS_PREPARE;
  readonly leader: number;
  readonly view: number;
  readonly k: number;
  readonly request: ClientRequest;
  readonly justify: QuorumCert | undefined;
  readonly signature: Buffer;
}

/** PRE-COMMIT(prepareQC), COMMIT(precommitQC), DECIDE(commitQC) for slot k (Algorithm 2). */
export interface HsPhaseMessage extends WireMessage {
  readonly type: typeof MSG_HS_PRE_COMMIT | typeof MSG_HS_COMMIT | typeof MSG_HS_DECIDE;
  readonly leader: number;
  readonly view: number;
  readonly k: number;
  readonly qc: QuorumCert;
  readonly signature: Buffer;
}

/** A replica's signed vote; the signature is what the leader puts into the QC. */
export interface HsVote extends WireMessage {
  readonly type: typeof MSG_HS_VOTE;
  readonly replica: number;
  readonly phase: Phase;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly signature: Buffer;
}

/** The reply to the client after executing k. */
export interface HsReply extends WireMessage {
  readonly type: typeof MSG_HS_REPLY;
  readonly replica: number;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly clientId: number;
  readonly reqNo: number;
  readonly result: Buffer;
  readonly signature: Buffer;
}

/** A chained-HotStuff block: one batch, its parent, and the QC of that parent. */
export interface HsBlock {
  readonly view: number;
  readonly height: number;
  readonly parentHash: Buffer;
  readonly request: ClientRequest;
  readonly justify: QuorumCert;
}

export interface HsProposal extends WireMessage {
  readonly type: typeof MSG_HS_PROPOSAL;
  readonly leader: number;
  readonly block: HsBlock;
  readonly signature: Buffer;
}

/** NEW-VIEW(v, highQC) to the leader of view v (Algorithm 3, pacemaker). */
export interface HsNewView extends WireMessage {
  readonly type: typeof MSG_HS_NEW_VIEW;
  readonly replica: number;
  readonly view: number;
  readonly highQC: QuorumCert;
  readonly signature: Buffer;
}

/**
 * Chained mode: a replica asks a peer for the block with this hash, which a proposal it holds
 * builds on or a NEW-VIEW's highQC certifies (a replica missing a block fetches it, as
 * libhotstuff does). The answer is the block's original PROPOSAL, signed by its leader.
 */
export interface HsBlockRequest extends WireMessage {
  readonly type: typeof MSG_HS_BLOCK_REQUEST;
  readonly replica: number;
  readonly hash: Buffer;
}

export type HotStuffMessage = CommonMessage | HsPrepare | HsPhaseMessage | HsVote | HsReply | HsProposal | HsNewView | HsBlockRequest;

// ---------------------------------------------------------------------------------------
// Signed bytes. A tag per kind keeps a signature for one kind from passing as another.

const SIGN_TAG = 0x48;
const SIGN_VOTE = 1;
const SIGN_PREPARE = 2;
const SIGN_PHASE = 3;
const SIGN_PROPOSAL = 4;
const SIGN_NEW_VIEW = 5;
const SIGN_REPLY = 6;
const BLOCK_TAG = 0x10;

/** Stands in for the leader's own vote under the 'paper' rule, where no certificate carries it. */
export const EMPTY_SIGNATURE: Buffer = Buffer.alloc(SIGNATURE_BYTES);

/** What a vote signs, and so what every signature in a QC is checked against. */
export function voteBytes(phase: Phase, view: number, k: number, digest: Buffer): Buffer {
  return new Writer(64).u8(SIGN_TAG).u8(SIGN_VOTE).u8(phase).u53(view).u53(k).fixed(digest, DIGEST_BYTES).finish();
}

export function prepareBytes(view: number, k: number, digest: Buffer, justify: QuorumCert | undefined): Buffer {
  const w = new Writer(128).u8(SIGN_TAG).u8(SIGN_PREPARE).u53(view).u53(k).fixed(digest, DIGEST_BYTES);
  if (justify) w.u8(1).u53(justify.view).fixed(justify.digest, DIGEST_BYTES);
  else w.u8(0);
  return w.finish();
}

export function phaseBytes(type: number, view: number, k: number, qc: QuorumCert): Buffer {
  return new Writer(96).u8(SIGN_TAG).u8(SIGN_PHASE).u8(type).u53(view).u53(k).u8(qc.phase).u53(qc.view).fixed(qc.digest, DIGEST_BYTES).finish();
}

export function proposalBytes(blockHash: Buffer): Buffer {
  return new Writer(40).u8(SIGN_TAG).u8(SIGN_PROPOSAL).fixed(blockHash, DIGEST_BYTES).finish();
}

export function newViewBytes(view: number, qc: QuorumCert): Buffer {
  return new Writer(96).u8(SIGN_TAG).u8(SIGN_NEW_VIEW).u53(view).u8(qc.phase).u53(qc.view).u53(qc.k).fixed(qc.digest, DIGEST_BYTES).finish();
}

function replyBytes(m: Omit<HsReply, 'signature' | 'type' | 'replica'>): Buffer {
  return new Writer(128)
    .u8(SIGN_TAG)
    .u8(SIGN_REPLY)
    .u53(m.view)
    .u53(m.k)
    .fixed(m.digest, DIGEST_BYTES)
    .u32(m.clientId)
    .u32(m.reqNo)
    .fixed(m.result, DIGEST_BYTES)
    .finish();
}

/** A block's identity: view, height, parent, batch digest and the view of its justify. */
export function hsBlockHash(crypto: CryptoProvider, view: number, height: number, parentHash: Buffer, batchDigest: Buffer, justifyView: number): Buffer {
  return crypto.digest(
    new Writer(112).u8(SIGN_TAG).u8(BLOCK_TAG).u53(view).u53(height).fixed(parentHash, DIGEST_BYTES).fixed(batchDigest, DIGEST_BYTES).u53(justifyView).finish(),
  );
}

/** A signed PREPARE (Algorithm 2, prepare phase) from `leader`. */
export function makePrepare(
  crypto: CryptoProvider,
  signer: Signer,
  leader: number,
  view: number,
  k: number,
  request: ClientRequest,
  justify?: QuorumCert,
): HsPrepare {
  const signature = signer.sign(prepareBytes(view, k, requestDigest(crypto, request), justify));
  return { type: MSG_HS_PREPARE, leader, view, k, request, justify, signature };
}

/** A signed PRE-COMMIT, COMMIT or DECIDE carrying the QC of the phase before. */
export function makePhase(signer: Signer, type: HsPhaseMessage['type'], leader: number, qc: QuorumCert): HsPhaseMessage {
  return { type, leader, view: qc.view, k: qc.k, qc, signature: signer.sign(phaseBytes(type, qc.view, qc.k, qc)) };
}

/** A signed vote of `replica`. */
export function makeVote(signer: Signer, replica: number, phase: Phase, view: number, k: number, digest: Buffer): HsVote {
  return { type: MSG_HS_VOTE, replica, phase, view, k, digest, signature: signer.sign(voteBytes(phase, view, k, digest)) };
}

/** A signed chained-HotStuff proposal of `block`, and the block's hash. */
export function makeProposal(crypto: CryptoProvider, signer: Signer, leader: number, block: HsBlock): { proposal: HsProposal; hash: Buffer } {
  const hash = hsBlockHash(crypto, block.view, block.height, block.parentHash, requestDigest(crypto, block.request), block.justify.view);
  return { proposal: { type: MSG_HS_PROPOSAL, leader, block, signature: signer.sign(proposalBytes(hash)) }, hash };
}

export function makeNewView(signer: Signer, replica: number, view: number, highQC: QuorumCert): HsNewView {
  return { type: MSG_HS_NEW_VIEW, replica, view, highQC, signature: signer.sign(newViewBytes(view, highQC)) };
}

/** A signed REPLY of `replica`. */
export function makeReply(signer: Signer, replica: number, body: Omit<HsReply, 'signature' | 'type' | 'replica'>): HsReply {
  return { type: MSG_HS_REPLY, replica, ...body, signature: signer.sign(replyBytes(body)) };
}

/** Whether a REPLY's signature is `replica`'s (for clients that hold the replicas' keys). */
export function replySignatureValid(verifier: Verifier, reply: HsReply): boolean {
  return verifier.verify(replyBytes(reply), reply.signature);
}

/** The root of the chained block tree; its QC is the only one without signatures. */
export function hsGenesisHash(crypto: CryptoProvider): Buffer {
  return crypto.digest(Buffer.from('poe-bench hotstuff genesis block'));
}

export function genesisQC(crypto: CryptoProvider): QuorumCert {
  return { phase: PHASE_GENERIC, view: 0, k: 0, digest: hsGenesisHash(crypto), sigs: [] };
}

/** How a replica checks a certificate under the 'qc' rule (the rules are described in hotstuff.ts). */
export interface QcCheck {
  /**
   * The checking replica and whether it cast exactly this vote itself: then its own entry needs
   * no verification (it knows what it signed), only everyone else's.
   */
  readonly self?: number;
  readonly selfVoted?: boolean;
  /** Chained mode: the genesis block's hash, whose QC is the only one without signatures. */
  readonly genesisHash?: Buffer;
}

/** The certificate rules: see hotstuff.ts's header. */
export type HotStuffRule = 'paper' | 'qc';

/** The 'paper' rule's check of a certificate other than the chained genesis QC: it carries no signatures. */
export function paperQcProblem(qc: QuorumCert): string | undefined {
  return qc.sigs.length === 0 ? undefined : 'qc: signatures under the paper rule';
}

/** The chained genesis block's QC, under either rule: no signatures, over the genesis hash. */
export function genesisQcProblem(qc: QuorumCert, genesisHash: Buffer): string | undefined {
  return qc.phase === PHASE_GENERIC && qc.view === 0 && qc.sigs.length === 0 && qc.digest.equals(genesisHash) ? undefined : 'qc: malformed genesis qc';
}

/**
 * Why a QC is not valid under the 'qc' rule, or undefined if it is: exactly nf signatures from distinct
 * known replicas, each a valid signature over the vote bytes (a list of signatures, no
 * threshold signature), the checker's own entry excepted when it cast that vote; the chained
 * genesis QC by genesisQcProblem. The 'paper' rule's certificates: paperQcProblem.
 */
export function qcProblem(qc: QuorumCert, q: Quorums, verifiers: readonly Verifier[], check: QcCheck): string | undefined {
  if (check.genesisHash && qc.k === 0) return genesisQcProblem(qc, check.genesisHash);
  if (qc.sigs.length !== q.nf) return `qc: ${qc.sigs.length} signatures, want ${q.nf}`;
  const bytes = voteBytes(qc.phase, qc.view, qc.k, qc.digest);
  const seen = new Set<number>();
  for (const s of qc.sigs) {
    const verifier = verifiers[s.replica];
    if (!verifier || s.replica >= q.n) return `qc: unknown signer ${s.replica}`;
    if (seen.has(s.replica)) return `qc: duplicate signer ${s.replica}`;
    seen.add(s.replica);
    if (s.replica === check.self && check.selfVoted) continue;
    if (!verifier.verify(bytes, s.signature)) return `qc: bad signature from ${s.replica}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------
// Codec

/** More signatures than any QC of a realistic n holds; bounds decoding. */
const QC_SIGNATURES_MAX = 1024;

function writeQC(w: Writer, qc: QuorumCert): void {
  w.u8(qc.phase).u53(qc.view).u53(qc.k).fixed(qc.digest, DIGEST_BYTES);
  w.list(qc.sigs, (w2, s) => {
    w2.u16(s.replica);
    w2.fixed(s.signature, SIGNATURE_BYTES);
  });
}

function readPhase(r: Reader, what: string): Phase {
  const p = r.u8(what);
  if (p > PHASE_GENERIC) throw new CodecError('invalid', `${what}: phase ${p}`);
  return p as Phase;
}

function readQC(r: Reader): QuorumCert {
  const phase = readPhase(r, 'qc.phase');
  const view = r.u53('qc.view');
  const k = r.u53('qc.k');
  const digest = r.fixed(DIGEST_BYTES, 'qc.digest');
  const sigs = r.list(
    (r2) => ({ replica: r2.u16('qc.replica'), signature: r2.fixed(SIGNATURE_BYTES, 'qc.signature') }),
    'qc.sigs',
    2 + SIGNATURE_BYTES,
    QC_SIGNATURES_MAX,
  );
  return { phase, view, k, digest, sigs };
}

function phaseCodec(type: HsPhaseMessage['type']): FieldCodec<HotStuffMessage> {
  return {
    write: (w, m) => {
      const p = m as HsPhaseMessage;
      w.u16(p.leader).u53(p.view).u53(p.k);
      writeQC(w, p.qc);
      w.fixed(p.signature, SIGNATURE_BYTES);
    },
    read: (r) => ({
      type,
      leader: r.u16('phase.leader'),
      view: r.u53('phase.view'),
      k: r.u53('phase.k'),
      qc: readQC(r),
      signature: r.fixed(SIGNATURE_BYTES, 'phase.signature'),
    }),
  };
}

const hotstuffTable: Record<number, FieldCodec<HotStuffMessage>> = {
  ...commonCodecs,
  [MSG_HS_PREPARE]: {
    write: (w, m) => {
      const p = m as HsPrepare;
      w.u16(p.leader).u53(p.view).u53(p.k);
      writeRequest(w, p.request);
      w.bool(p.justify !== undefined);
      if (p.justify) writeQC(w, p.justify);
      w.fixed(p.signature, SIGNATURE_BYTES);
    },
    read: (r) => {
      const leader = r.u16('prepare.leader');
      const view = r.u53('prepare.view');
      const k = r.u53('prepare.k');
      const request = readRequest(r);
      const justify = r.bool('prepare.hasJustify') ? readQC(r) : undefined;
      return { type: MSG_HS_PREPARE, leader, view, k, request, justify, signature: r.fixed(SIGNATURE_BYTES, 'prepare.signature') };
    },
    // type u8, leader u16, view u53, k u53, then the batch (replica/messages.ts batchBodyAt).
    batchAt: 19,
  },
  [MSG_HS_PRE_COMMIT]: phaseCodec(MSG_HS_PRE_COMMIT),
  [MSG_HS_COMMIT]: phaseCodec(MSG_HS_COMMIT),
  [MSG_HS_DECIDE]: phaseCodec(MSG_HS_DECIDE),
  [MSG_HS_VOTE]: {
    write: (w, m) => {
      const v = m as HsVote;
      w.u16(v.replica).u8(v.phase).u53(v.view).u53(v.k).fixed(v.digest, DIGEST_BYTES).fixed(v.signature, SIGNATURE_BYTES);
    },
    read: (r) => ({
      type: MSG_HS_VOTE,
      replica: r.u16('vote.replica'),
      phase: readPhase(r, 'vote.phase'),
      view: r.u53('vote.view'),
      k: r.u53('vote.k'),
      digest: r.fixed(DIGEST_BYTES, 'vote.digest'),
      signature: r.fixed(SIGNATURE_BYTES, 'vote.signature'),
    }),
  },
  [MSG_HS_REPLY]: {
    write: (w, m) => {
      const p = m as HsReply;
      w.u16(p.replica).u53(p.view).u53(p.k).fixed(p.digest, DIGEST_BYTES).u32(p.clientId).u32(p.reqNo);
      w.fixed(p.result, DIGEST_BYTES).fixed(p.signature, SIGNATURE_BYTES);
    },
    read: (r) => ({
      type: MSG_HS_REPLY,
      replica: r.u16('reply.replica'),
      view: r.u53('reply.view'),
      k: r.u53('reply.k'),
      digest: r.fixed(DIGEST_BYTES, 'reply.digest'),
      clientId: r.u32('reply.clientId'),
      reqNo: r.u32('reply.reqNo'),
      result: r.fixed(DIGEST_BYTES, 'reply.result'),
      signature: r.fixed(SIGNATURE_BYTES, 'reply.signature'),
    }),
  },
  [MSG_HS_PROPOSAL]: {
    write: (w, m) => {
      const p = m as HsProposal;
      const b = p.block;
      w.u16(p.leader).u53(b.view).u53(b.height).fixed(b.parentHash, DIGEST_BYTES);
      writeRequest(w, b.request);
      writeQC(w, b.justify);
      w.fixed(p.signature, SIGNATURE_BYTES);
    },
    read: (r) => {
      const leader = r.u16('proposal.leader');
      const view = r.u53('proposal.view');
      const height = r.u53('proposal.height');
      const parentHash = r.fixed(DIGEST_BYTES, 'proposal.parentHash');
      const request = readRequest(r);
      const justify = readQC(r);
      return {
        type: MSG_HS_PROPOSAL,
        leader,
        block: { view, height, parentHash, request, justify },
        signature: r.fixed(SIGNATURE_BYTES, 'proposal.signature'),
      };
    },
    // type u8, leader u16, view u53, height u53, parentHash (32 bytes), then the batch.
    batchAt: 51,
  },
  [MSG_HS_NEW_VIEW]: {
    write: (w, m) => {
      const p = m as HsNewView;
      w.u16(p.replica).u53(p.view);
      writeQC(w, p.highQC);
      w.fixed(p.signature, SIGNATURE_BYTES);
    },
    read: (r) => ({
      type: MSG_HS_NEW_VIEW,
      replica: r.u16('newView.replica'),
      view: r.u53('newView.view'),
      highQC: readQC(r),
      signature: r.fixed(SIGNATURE_BYTES, 'newView.signature'),
    }),
  },
  [MSG_HS_BLOCK_REQUEST]: {
    write: (w, m) => {
      const p = m as HsBlockRequest;
      w.u16(p.replica).fixed(p.hash, DIGEST_BYTES);
    },
    read: (r) => ({ type: MSG_HS_BLOCK_REQUEST, replica: r.u16('blockRequest.replica'), hash: r.fixed(DIGEST_BYTES, 'blockRequest.hash') }),
  },
};

export const hotstuffCodec = makeCodec<HotStuffMessage>(hotstuffTable, 'hotstuff');
