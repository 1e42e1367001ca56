/**
 * HotStuff (Yin, Malkhi, Reiter, Golan Gueta, Abraham: "HotStuff: BFT Consensus with Linearity
 * and Responsiveness", PODC 2019) as the PoE paper ran it for comparison (paper §4(8), lines
 * ~405-410): "four phases"; each phase is a leader broadcast followed by every replica answering
 * the leader; "each of its replicas [signs] every message using digital signatures" (Ed25519);
 * no threshold signatures, so a quorum certificate (QC) is a list of nf (replica, signature)
 * pairs, each verified on its own; and "we permit all of its replicas to act as primaries and
 * work in parallel". Two modes, chosen by `options.extra.mode`:
 *
 * 'parallel' (default; what the paper's figures measured). Basic HotStuff (Algorithm 2) once per
 * sequence number k, many k in flight. Slot k belongs to leaders[(k-1+v) mod L] in view v, with
 * `options.extra.leaders` the comma-separated leader ids (default: all replicas 0..n-1). The
 * leader runs PREPARE(v, k, request, justify) -> PREPARE votes -> PRE-COMMIT(v, k, prepareQC)
 * -> votes -> COMMIT(v, k, precommitQC) -> votes -> DECIDE(v, k, commitQC); a replica locks on
 * COMMIT (lockedQC) and votes for a PREPARE only if safeNode holds; on DECIDE it commits k and
 * executes strictly in global k order. A leader with nothing to propose whose next own slot lies
 * below a slot another leader has proposed fills it with a no-op, so the global order never
 * waits for an idle leader.
 *   There is no per-slot view change: every slot runs in view 0, so a crashed leader would
 *   block every slot above its first unfilled one. The harness therefore passes in `leaders`
 *   only the replicas that take part (the simulator and runner do so when they crash backups);
 *   the PREPARE's justify field and the locking rule are still enforced for views above 0.
 *
 * 'chained' (Algorithm 3, chained HotStuff). One leader, primaryOf(view, n), stable while it is
 * correct. Each proposal is a block at height h = k carrying one batch (or a no-op), its parent's
 * hash and justify = highQC, the QC of its parent (Algorithm 3: createLeaf(genericQC.node, cmd,
 * genericQC)). Replicas vote to the leader of the next height, which while the view lasts is
 * the same leader. A new QC updates highQC (one-chain), a two-chain updates lockedQC, and a
 * three-chain of direct parents commits and executes every ancestor in order. Rounds are
 * ordered by (view, height); a replica votes once per round, and since the view does not change
 * per block, the three-chain must lie in one view to be the paper's "consecutive views" chain.
 * A replica whose client-reported request is not executed within viewChangeTimeoutMs moves to
 * the next view and sends NEW-VIEW(v, highQC) to its leader, which proposes once it holds nf
 * (Algorithm 3's pacemaker, in its simplest form).
 *
 * Checkpoints (CHECKPOINT, common type 2) use the shared CheckpointTracker and are, like every
 * protocol's, authenticated by the transport rather than signed.
 *
 * Messages (type ids 40-49), every one signed by its sender (σ):
 *   PREPARE(v, k, request, justify?)σ        leader  -> replicas   (parallel)
 *   PRE-COMMIT / COMMIT / DECIDE(v, k, qc)σ  leader  -> replicas   (parallel)
 *   VOTE(phase, v, k, d)σ                    replica -> leader     (both; σ goes into the QC)
 *   REPLY(v, k, d, clientId, reqNo, result)σ replica -> client     (both)
 *   PROPOSAL(block{v, h, parent, request, justify})σ leader -> replicas (chained)
 *   NEW-VIEW(v, highQC)σ                     replica -> leader     (chained)
 * `result` is the ledger block hash after executing k, so matching results mean matching
 * executions up to k.
 *
 * Not implemented: block or slot state transfer (a replica that misses a message for good,
 * which needs message loss, stays behind), the per-slot view change of parallel mode.
 */
import type { FaultHooks } from './byzantine.js';
import { CheckpointTracker, Executor, hex, type Execution } from './common.js';
import type { CryptoProvider, CryptoProviderName, Signer, Verifier } from './crypto.js';
import { createCrypto, DIGEST_BYTES, SIGNATURE_BYTES } from './crypto.js';
import { KeyRing } from './keys.js';
import { Ledger } from './ledger.js';
import type { Checkpoint, ClientRequest, CommonMessage, FieldCodec } from './messages.js';
import { commonCodecs, isNoop, makeCodec, MSG_CHECKPOINT, MSG_REQUEST, noopRequest, readRequest, requestDigest, writeRequest } from './messages.js';
import type { ClientPolicy, ClientPolicyOptions, PendingRequest, ProtocolModule, ReplyOutcome } from './protocol.js';
import { YcsbStore } from './store.js';
import type {
  ClientOutput,
  Peer,
  Quorums,
  ReplicaCore,
  ReplicaDeps,
  ReplicaEvent,
  ReplicaInput,
  ReplicaOptions,
  ReplicaOutput,
  ReplicaStatus,
  WireMessage,
} from './types.js';
import { clientPeer, isClientPeer, primaryOf, quorums } from './types.js';
import { CodecError, Writer, type Reader } from './wire.js';

// ---------------------------------------------------------------------------------------
// Messages

export const MSG_HS_PREPARE = 40;
export const MSG_HS_PRE_COMMIT = 41;
export const MSG_HS_COMMIT = 42;
export const MSG_HS_DECIDE = 43;
export const MSG_HS_VOTE = 44;
export const MSG_HS_REPLY = 45;
export const MSG_HS_PROPOSAL = 46;
export const MSG_HS_NEW_VIEW = 47;

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

export type HotStuffMessage = CommonMessage | HsPrepare | HsPhaseMessage | HsVote | HsReply | HsProposal | HsNewView;

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

/** What a vote signs, and so what every signature in a QC is checked against. */
export function voteBytes(phase: Phase, view: number, k: number, digest: Buffer): Buffer {
  return new Writer(64).u8(SIGN_TAG).u8(SIGN_VOTE).u8(phase).u53(view).u53(k).fixed(digest, DIGEST_BYTES).finish();
}

function prepareBytes(view: number, k: number, digest: Buffer, justify: QuorumCert | undefined): Buffer {
  const w = new Writer(128).u8(SIGN_TAG).u8(SIGN_PREPARE).u53(view).u53(k).fixed(digest, DIGEST_BYTES);
  if (justify) w.u8(1).u53(justify.view).fixed(justify.digest, DIGEST_BYTES);
  else w.u8(0);
  return w.finish();
}

function phaseBytes(type: number, view: number, k: number, qc: QuorumCert): Buffer {
  return new Writer(96).u8(SIGN_TAG).u8(SIGN_PHASE).u8(type).u53(view).u53(k).u8(qc.phase).u53(qc.view).fixed(qc.digest, DIGEST_BYTES).finish();
}

function proposalBytes(blockHash: Buffer): Buffer {
  return new Writer(40).u8(SIGN_TAG).u8(SIGN_PROPOSAL).fixed(blockHash, DIGEST_BYTES).finish();
}

function newViewBytes(view: number, qc: QuorumCert): Buffer {
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

/**
 * Why a QC is not valid, or undefined if it is: exactly nf signatures from distinct known
 * replicas, each a valid signature over the vote bytes (paper §4(8): a list of signatures, no
 * threshold signature). The chained genesis QC is the one exception.
 */
export function qcProblem(qc: QuorumCert, q: Quorums, verifiers: readonly Verifier[], genesisHash?: Buffer): string | undefined {
  if (genesisHash && qc.k === 0) {
    return qc.phase === PHASE_GENERIC && qc.view === 0 && qc.sigs.length === 0 && qc.digest.equals(genesisHash) ? undefined : 'qc: malformed genesis qc';
  }
  if (qc.sigs.length !== q.nf) return `qc: ${qc.sigs.length} signatures, want ${q.nf}`;
  const bytes = voteBytes(qc.phase, qc.view, qc.k, qc.digest);
  const seen = new Set<number>();
  for (const s of qc.sigs) {
    const verifier = verifiers[s.replica];
    if (!verifier || s.replica >= q.n) return `qc: unknown signer ${s.replica}`;
    if (seen.has(s.replica)) return `qc: duplicate signer ${s.replica}`;
    seen.add(s.replica);
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
};

export const hotstuffCodec = makeCodec<HotStuffMessage>(hotstuffTable, 'hotstuff');

// ---------------------------------------------------------------------------------------
// Options

export type HotStuffMode = 'parallel' | 'chained';

export function hotstuffMode(extra: ReplicaOptions['extra']): HotStuffMode {
  const mode = extra?.['mode'] ?? 'parallel';
  if (mode !== 'parallel' && mode !== 'chained') throw new RangeError(`hotstuff: extra.mode must be 'parallel' or 'chained', got ${String(mode)}`);
  return mode;
}

/**
 * The parallel-mode leaders: `extra.leaders` as comma-separated replica ids (or one number),
 * sorted so that every node derives the same slot owners; default every replica.
 */
export function hotstuffLeaders(n: number, extra: ReplicaOptions['extra']): number[] {
  const raw = extra?.['leaders'];
  if (raw === undefined || raw === '') return Array.from({ length: n }, (_, i) => i);
  const ids =
    typeof raw === 'number'
      ? [raw]
      : String(raw)
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s !== '')
          .map(Number);
  const unique = [...new Set(ids)].sort((a, b) => a - b);
  if (unique.length === 0 || unique.length !== ids.length || unique.some((id) => !Number.isInteger(id) || id < 0 || id >= n)) {
    throw new RangeError(`hotstuff: extra.leaders must be distinct replica ids in [0, ${n}), got '${String(raw)}'`);
  }
  return unique;
}

/** Requests a leader queues before it has a slot for them (closed-loop clients bound it too). */
const PENDING_REQUESTS_MAX = 1 << 16;
/** Client requests a chained backup waits on before suspecting the leader. */
const AWAITED_REQUESTS_MAX = 1 << 16;
/** Proposals held until their parent arrives (the network may reorder). */
const ORPHANS_MAX = 256;
/** The view-change timer doubles per failed view, up to this factor. */
const BACKOFF_MAX = 64;
/**
 * Chained mode: heights the chain may run past the window. A batch at the window's top only
 * commits once three more blocks certify it, and the checkpoint that moves the window needs it
 * executed.
 */
const CHAIN_SLACK_K = 3;
/** NEW-VIEWs for views further ahead than this are ignored (bounds the memory a sender can take). */
const NEW_VIEW_AHEAD_MAX = 64;
export const VIEW_CHANGE_TIMER = 'view-change';

/** A FIFO of client requests with O(1) removal at the head. */
class RequestQueue {
  private items: ClientRequest[] = [];
  private head = 0;

  get size(): number {
    return this.items.length - this.head;
  }

  push(req: ClientRequest): void {
    this.items.push(req);
  }

  shift(): ClientRequest | undefined {
    if (this.head >= this.items.length) return undefined;
    const req = this.items[this.head++];
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return req;
  }
}

/** Votes a leader collects for one (phase, view, k, digest); `done` once the QC is formed. */
interface VoteCollector {
  readonly phase: Phase;
  readonly view: number;
  readonly k: number;
  readonly digest: Buffer;
  readonly sigs: Map<number, Buffer>;
  done: boolean;
}

function newCollector(phase: Phase, view: number, k: number, digest: Buffer): VoteCollector {
  return { phase, view, k, digest, sigs: new Map(), done: false };
}

function collectorQC(c: VoteCollector): QuorumCert {
  return { phase: c.phase, view: c.view, k: c.k, digest: c.digest, sigs: [...c.sigs].map(([replica, signature]) => ({ replica, signature })) };
}

/** (view, k) rounds are ordered lexicographically. */
function rankAbove(view: number, k: number, than: { readonly view: number; readonly k: number }): boolean {
  return view > than.view || (view === than.view && k > than.k);
}

// ---------------------------------------------------------------------------------------
// What both modes share: request intake, execution, replies, checkpoints

abstract class HotStuffReplica implements ReplicaCore<HotStuffMessage> {
  readonly id: number;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  protected readonly q: Quorums;
  protected readonly crypto: CryptoProvider;
  protected readonly signer: Signer;
  protected readonly verifiers: readonly Verifier[];
  protected readonly executor: Executor;
  protected readonly checkpoints: CheckpointTracker;
  protected readonly windowK: number;
  /** Leader side: client requests waiting for a slot or block. */
  protected readonly pending = new RequestQueue();
  /** Leader side: highest reqNo queued per client, so a request is proposed once (dedup). */
  protected readonly proposedReqNo = new Map<number, number>();
  /** The last reply per client, re-sent when the client retransmits an executed request. */
  private readonly lastReply = new Map<number, HsReply>();
  private out: ReplicaOutput<HotStuffMessage>[] = [];

  constructor(
    protected readonly options: ReplicaOptions,
    protected readonly deps: ReplicaDeps,
  ) {
    this.id = options.id;
    this.q = quorums(options.n);
    if (!Number.isInteger(options.id) || options.id < 0 || options.id >= options.n)
      throw new RangeError(`hotstuff: id ${options.id} outside [0, ${options.n})`);
    if (!Number.isInteger(options.windowK) || options.windowK < options.checkpointIntervalK) {
      throw new RangeError(`hotstuff: windowK (${options.windowK}) must be an integer >= checkpointIntervalK (${options.checkpointIntervalK})`);
    }
    this.windowK = options.windowK;
    this.crypto = deps.crypto;
    this.signer = deps.signer;
    this.verifiers = deps.replicaVerifiers;
    this.ledger = new Ledger(deps.crypto, 0);
    this.store = new YcsbStore(options.records, options.valueBytes);
    this.executor = new Executor(this.store, this.ledger, false);
    this.checkpoints = new CheckpointTracker(this.q.nf, options.checkpointIntervalK);
  }

  step(input: ReplicaInput<HotStuffMessage>, nowMs: number): ReplicaOutput<HotStuffMessage>[] {
    void nowMs;
    this.out = [];
    switch (input.kind) {
      case 'start':
        break;
      case 'timer':
        this.onTimer(input.name);
        break;
      case 'message':
        this.onMessage(input.from, input.msg);
        break;
    }
    return this.out;
  }

  abstract status(): ReplicaStatus;
  /** Which replica proposes a request of this client now. */
  protected abstract clientLeader(clientId: number): number;
  protected abstract onProtocolMessage(from: Peer, msg: HotStuffMessage): void;
  protected abstract tryPropose(): void;
  protected abstract collectGarbage(stableK: number): void;
  protected onTimer(name: string): void {
    void name;
  }
  /** A client sent a request straight to this replica, which is not its leader (the client timed out). */
  protected onClientRetransmission(req: ClientRequest): void {
    void req;
  }
  protected onExecuted(e: Execution): void {
    void e;
  }

  // --- outputs

  protected send(to: Peer, msg: HotStuffMessage): void {
    this.out.push({ kind: 'send', to, msg });
  }

  protected broadcast(msg: HotStuffMessage): void {
    this.out.push({ kind: 'broadcast', msg });
  }

  protected emit(event: ReplicaEvent): void {
    this.out.push({ kind: 'event', event });
  }

  protected setTimer(name: string, afterMs: number): void {
    this.out.push({ kind: 'setTimer', name, afterMs });
  }

  protected cancelTimer(name: string): void {
    this.out.push({ kind: 'cancelTimer', name });
  }

  protected reject(reason: string, from: Peer): void {
    this.emit({ name: 'rejected', reason, from });
  }

  protected get stableK(): number {
    return this.checkpoints.stableK;
  }

  /** The highest sequence number that may be proposed now (watermark window). */
  protected get highK(): number {
    return this.checkpoints.stableK + this.windowK;
  }

  /** A replica's message claims a sender; the transport authenticated `from`. */
  protected fromReplica(from: Peer, claimed: number): boolean {
    return !isClientPeer(from) && from < this.q.n && from === claimed && from !== this.id;
  }

  private onMessage(from: Peer, msg: HotStuffMessage): void {
    switch (msg.type) {
      case MSG_REQUEST:
        this.onRequest(from, msg);
        return;
      case MSG_CHECKPOINT:
        this.onCheckpoint(from, msg);
        return;
      default:
        if (isClientPeer(from) || from >= this.q.n) {
          this.reject(`message type ${msg.type} from a client`, from);
          return;
        }
        this.onProtocolMessage(from, msg);
    }
  }

  // --- requests

  /** Why a batch in a proposal for k is not acceptable, or undefined. */
  protected proposedRequestProblem(req: ClientRequest, k: number): string | undefined {
    if (isNoop(req)) return req.reqNo === k >>> 0 ? undefined : 'no-op for another sequence number';
    return this.clientRequestProblem(req);
  }

  /** Client batches are Ed25519-signed by their client machine (paper §4(7)). */
  protected clientRequestProblem(req: ClientRequest): string | undefined {
    if (isNoop(req)) return 'no-op from a client';
    const verifier = this.deps.clientVerifier(req.origin);
    if (!verifier) return `unknown client machine ${req.origin}`;
    if (!verifier.verify(req.body, req.signature)) return 'bad client signature';
    if (!this.store.validWrites(req.writes)) return 'write outside the table';
    return undefined;
  }

  private onRequest(from: Peer, req: ClientRequest): void {
    if (this.executor.isExecuted(req)) {
      // A retransmission of an executed request: the reply was lost or is slow (paper §3.1).
      const reply = this.lastReply.get(req.clientId);
      if (reply && reply.reqNo === req.reqNo && isClientPeer(from)) this.send(from, reply);
      return;
    }
    const leader = this.clientLeader(req.clientId);
    if (leader === this.id) {
      this.acceptRequest(req, from);
      return;
    }
    // A client broadcasts only after its timer fired: pass the request to its leader. Requests
    // other replicas forward are not forwarded again, so nothing circulates.
    if (isClientPeer(from)) {
      this.send(leader, req);
      this.onClientRetransmission(req);
    }
  }

  /** The leader takes a new, valid request of a client once (dedup on (clientId, reqNo)). */
  protected acceptRequest(req: ClientRequest, from: Peer): void {
    if (req.reqNo <= (this.proposedReqNo.get(req.clientId) ?? -1)) return;
    if (this.pending.size >= PENDING_REQUESTS_MAX) {
      this.reject('request queue full', from);
      return;
    }
    const problem = this.clientRequestProblem(req);
    if (problem) {
      this.reject(`request: ${problem}`, from);
      return;
    }
    this.proposedReqNo.set(req.clientId, req.reqNo);
    this.pending.push(req);
    this.tryPropose();
  }

  /** The next queued request that was not executed in the meantime. */
  protected takePending(): ClientRequest | undefined {
    for (;;) {
      const req = this.pending.shift();
      if (!req || !this.executor.isExecuted(req)) return req;
    }
  }

  // --- execution

  /** Commits batch k and executes whatever now continues the ledger, strictly in k order. */
  protected commitBatch(k: number, view: number, request: ClientRequest, digest: Buffer): void {
    this.executor.commit(k, view, request, digest);
    for (const e of this.executor.drain()) this.afterExecution(e);
  }

  private afterExecution(e: Execution): void {
    const noop = isNoop(e.request);
    this.emit({ name: 'executed', k: e.k, view: e.view, txns: noop || e.duplicate ? 0 : e.request.writes.length });
    if (!noop && !e.duplicate) this.reply(e);
    this.onExecuted(e);
    if (this.checkpoints.isCheckpoint(e.k)) {
      const cp = this.checkpoints.makeCheckpoint(this.id, e.k, e.blockHash);
      this.broadcast(cp);
      this.addCheckpoint(this.id, cp);
    }
  }

  private reply(e: Execution): void {
    const body = { view: e.view, k: e.k, digest: e.digest, clientId: e.request.clientId, reqNo: e.request.reqNo, result: e.blockHash };
    const reply = makeReply(this.signer, this.id, body);
    this.lastReply.set(e.request.clientId, reply);
    this.send(clientPeer(e.request.origin), reply);
  }

  // --- checkpoints

  private onCheckpoint(from: Peer, c: Checkpoint): void {
    if (!this.fromReplica(from, c.replica)) {
      this.reject('checkpoint: sender mismatch', from);
      return;
    }
    this.addCheckpoint(from, c);
  }

  private addCheckpoint(from: number, c: Checkpoint): void {
    const stable = this.checkpoints.add(from, c.k, c.stateDigest, this.highK);
    if (stable === undefined) return;
    this.emit({ name: 'checkpointStable', k: stable });
    this.executor.forget(stable);
    this.collectGarbage(stable);
    this.tryPropose();
  }

  /** Size of the client tables (for the memory-bound tests). */
  get clientTableSize(): number {
    return Math.max(this.lastReply.size, this.proposedReqNo.size);
  }

  get pendingRequests(): number {
    return this.pending.size;
  }
}

// ---------------------------------------------------------------------------------------
// Parallel mode: basic HotStuff (Algorithm 2) per slot, every leader in parallel

/** One slot's basic-HotStuff state at this replica. */
interface Slot {
  /** The view whose proposal this replica adopted (Algorithm 2's curView, per slot). */
  view: number;
  request: ClientRequest | undefined;
  digest: Buffer | undefined;
  /** Highest phase voted for in `view`; -1 for none. */
  voted: number;
  prepareQC: QuorumCert | undefined;
  lockedQC: QuorumCert | undefined;
  decided: boolean;
  /** Leader side: the votes of the phase in progress. */
  votes: VoteCollector | undefined;
  /** Phase messages that arrived before their PREPARE (reordering), one per type. */
  early: HsPhaseMessage[] | undefined;
}

const QC_PHASE_OF: Record<HsPhaseMessage['type'], Phase> = {
  [MSG_HS_PRE_COMMIT]: PHASE_PREPARE,
  [MSG_HS_COMMIT]: PHASE_PRE_COMMIT,
  [MSG_HS_DECIDE]: PHASE_COMMIT,
};
const NEXT_MESSAGE_OF: Record<number, HsPhaseMessage['type']> = {
  [PHASE_PREPARE]: MSG_HS_PRE_COMMIT,
  [PHASE_PRE_COMMIT]: MSG_HS_COMMIT,
  [PHASE_COMMIT]: MSG_HS_DECIDE,
};

export class ParallelHotStuff extends HotStuffReplica {
  readonly leaders: readonly number[];
  private readonly slots = new Map<number, Slot>();
  private readonly leaderIndex: number;
  /** This leader's next own slot (view 0), or Infinity for a replica that leads no slot. */
  private nextOwnK: number;
  /** Highest slot any leader was seen to propose: own slots below it are filled with no-ops. */
  private maxProposedK = 0;
  noopsProposed = 0;

  constructor(options: ReplicaOptions, deps: ReplicaDeps) {
    super(options, deps);
    this.leaders = hotstuffLeaders(options.n, options.extra);
    this.leaderIndex = this.leaders.indexOf(this.id);
    this.nextOwnK = this.leaderIndex >= 0 ? this.leaderIndex + 1 : Infinity;
  }

  status(): ReplicaStatus {
    return { id: this.id, view: 0, executedK: this.executor.executedK, stableK: this.stableK, inViewChange: false, logEntries: this.slots.size };
  }

  /** Paper §4(8): slot k belongs to leaders[(k-1) mod L]; a higher view moves it to the next leader. */
  slotLeader(k: number, view: number): number {
    return this.leaders[(k - 1 + view) % this.leaders.length]!;
  }

  protected clientLeader(clientId: number): number {
    return this.leaders[clientId % this.leaders.length]!;
  }

  /**
   * Slots still to be decided here: above the stable checkpoint, or above this replica's own
   * execution if it lags behind a checkpoint the others made stable (there is no state
   * transfer, so it must still decide those slots itself).
   */
  private inWindow(k: number): boolean {
    return Number.isSafeInteger(k) && k > Math.min(this.stableK, this.executor.executedK) && k <= this.highK;
  }

  private slotFor(k: number): Slot {
    let s = this.slots.get(k);
    if (!s) {
      s = {
        view: 0,
        request: undefined,
        digest: undefined,
        voted: -1,
        prepareQC: undefined,
        lockedQC: undefined,
        decided: false,
        votes: undefined,
        early: undefined,
      };
      this.slots.set(k, s);
    }
    return s;
  }

  protected onProtocolMessage(from: Peer, msg: HotStuffMessage): void {
    switch (msg.type) {
      case MSG_HS_PREPARE:
        this.onPrepare(from, msg);
        return;
      case MSG_HS_PRE_COMMIT:
      case MSG_HS_COMMIT:
      case MSG_HS_DECIDE:
        this.onPhase(from, msg);
        return;
      case MSG_HS_VOTE:
        this.onVote(from, msg);
        return;
      default:
        this.reject(`parallel mode: unexpected message type ${msg.type}`, from);
    }
  }

  // --- leader

  /**
   * Puts pending requests into this leader's next own slots inside the window; with none
   * pending, fills own slots below the highest proposed slot with no-ops. No-ops only go below
   * a slot some leader already proposed, so they never raise it: the filling stops by itself.
   */
  protected tryPropose(): void {
    while (this.nextOwnK <= this.highK) {
      const k = this.nextOwnK;
      const existing = this.slots.get(k);
      if (existing && (existing.view > 0 || existing.request)) {
        // Taken over in a higher view (never by correct leaders, which stay in view 0).
        this.nextOwnK += this.leaders.length;
        continue;
      }
      let request = this.takePending();
      if (!request) {
        if (k >= this.maxProposedK) return;
        request = noopRequest(k);
        this.noopsProposed++;
      }
      this.nextOwnK += this.leaders.length;
      this.propose(k, request);
    }
  }

  /** Algorithm 2, prepare phase, as the leader: broadcast PREPARE and vote for it itself. */
  private propose(k: number, request: ClientRequest): void {
    const view = 0;
    const digest = requestDigest(this.crypto, request);
    const s = this.slotFor(k);
    s.view = view;
    s.request = request;
    s.digest = digest;
    s.votes = newCollector(PHASE_PREPARE, view, k, digest);
    this.maxProposedK = Math.max(this.maxProposedK, k);
    this.broadcast(makePrepare(this.crypto, this.signer, this.id, view, k, request));
    this.vote(s, k, PHASE_PREPARE);
  }

  private onVote(from: Peer, m: HsVote): void {
    if (!this.fromReplica(from, m.replica) || m.phase === PHASE_GENERIC) {
      this.reject('vote: sender mismatch or wrong phase', from);
      return;
    }
    const s = this.slots.get(m.k);
    const c = s?.votes;
    // Late votes (the f beyond nf) and votes for a phase already certified need no check.
    if (!s || !c || s.decided || c.done || c.phase !== m.phase || c.view !== m.view || c.sigs.has(m.replica)) return;
    if (!c.digest.equals(m.digest)) {
      this.reject(`vote for another batch at ${m.k}`, from);
      return;
    }
    if (!this.verifiers[m.replica]!.verify(voteBytes(m.phase, m.view, m.k, m.digest), m.signature)) {
      this.reject('vote: bad signature', from);
      return;
    }
    this.addVote(s, m.k, m.replica, m.signature);
  }

  private addVote(s: Slot, k: number, replica: number, signature: Buffer): void {
    const c = s.votes!;
    c.sigs.set(replica, signature);
    if (c.sigs.size < this.q.nf) return;
    c.done = true;
    this.onQuorum(s, k, collectorQC(c));
  }

  /**
   * Algorithm 2 as the leader: nf PREPARE votes make prepareQC, sent in PRE-COMMIT; nf
   * PRE-COMMIT votes make precommitQC, sent in COMMIT; nf COMMIT votes make commitQC, sent in
   * DECIDE. The leader acts on each message as a replica does, without sending it to itself.
   */
  private onQuorum(s: Slot, k: number, qc: QuorumCert): void {
    const type = NEXT_MESSAGE_OF[qc.phase]!;
    this.broadcast(makePhase(this.signer, type, this.id, qc));
    this.applyPhase(s, k, type, qc);
  }

  // --- replica

  /**
   * Algorithm 2, prepare phase, as a replica: vote for the leader's proposal if it comes from
   * the slot's leader of that view, carries a valid client batch and a valid justify, and
   * safeNode holds.
   */
  private onPrepare(from: Peer, m: HsPrepare): void {
    if (!this.fromReplica(from, m.leader) || m.leader !== this.slotLeader(m.k, m.view)) {
      this.reject(`prepare: ${from} does not lead slot ${m.k} in view ${m.view}`, from);
      return;
    }
    if (!this.inWindow(m.k)) {
      if (m.k > this.highK) this.reject(`prepare: ${m.k} outside the window`, from);
      return;
    }
    const existing = this.slots.get(m.k);
    if (existing && (existing.decided || m.view < existing.view)) return;
    const digest = requestDigest(this.crypto, m.request);
    if (existing?.request && m.view === existing.view) {
      if (!existing.digest!.equals(digest)) this.reject(`prepare: leader ${m.leader} equivocates at ${m.k}`, from);
      return;
    }
    if (!this.verifiers[m.leader]!.verify(prepareBytes(m.view, m.k, digest, m.justify), m.signature)) {
      this.reject('prepare: bad signature', from);
      return;
    }
    const problem = this.proposedRequestProblem(m.request, m.k) ?? this.justifyProblem(m, digest);
    if (problem) {
      this.reject(`prepare: ${problem}`, from);
      return;
    }
    this.maxProposedK = Math.max(this.maxProposedK, m.k);
    if (!this.safeNode(existing, digest, m.justify)) {
      this.reject(`prepare: safeNode fails at ${m.k} (locked in view ${existing!.lockedQC!.view})`, from);
    } else {
      const s = this.slotFor(m.k);
      s.view = m.view;
      s.request = m.request;
      s.digest = digest;
      s.voted = -1;
      this.vote(s, m.k, PHASE_PREPARE);
      this.replayEarly(s);
    }
    this.tryPropose();
  }

  /** In a view above 0 the leader must re-propose its highQC's batch, certified in a lower view. */
  private justifyProblem(m: HsPrepare, digest: Buffer): string | undefined {
    const j = m.justify;
    if (!j) return undefined;
    if (j.phase !== PHASE_PREPARE || j.k !== m.k || j.view >= m.view || !j.digest.equals(digest)) return 'justify does not certify this batch in a lower view';
    return qcProblem(j, this.q, this.verifiers);
  }

  /**
   * safeNode (Algorithm 1): the proposal extends the locked node (for one slot: it is the
   * locked batch), or its justify is newer than the lock (liveness rule).
   */
  private safeNode(s: Slot | undefined, digest: Buffer, justify: QuorumCert | undefined): boolean {
    const lock = s?.lockedQC;
    if (!lock) return true;
    return lock.digest.equals(digest) || (justify !== undefined && justify.view > lock.view);
  }

  private onPhase(from: Peer, m: HsPhaseMessage): void {
    if (!this.fromReplica(from, m.leader) || m.leader !== this.slotLeader(m.k, m.view)) {
      this.reject(`phase ${m.type}: ${from} does not lead slot ${m.k} in view ${m.view}`, from);
      return;
    }
    if (m.qc.phase !== QC_PHASE_OF[m.type] || m.qc.k !== m.k || m.qc.view !== m.view) {
      this.reject(`phase ${m.type}: qc for another phase, slot or view`, from);
      return;
    }
    if (!this.inWindow(m.k)) return;
    const s = this.slotFor(m.k);
    if (s.decided) return;
    const votePhase = m.type === MSG_HS_DECIDE ? undefined : ((QC_PHASE_OF[m.type] + 1) as Phase);
    const adopted = s.digest?.equals(m.qc.digest) && (votePhase === undefined || s.view === m.view);
    if (!adopted) {
      // Before its PREPARE (the network reorders): keep the newest one of each type.
      if (m.view >= s.view) s.early = [...(s.early ?? []).filter((e) => e.type !== m.type), m];
      return;
    }
    if (votePhase !== undefined && s.voted >= votePhase) return;
    if (!this.verifiers[m.leader]!.verify(phaseBytes(m.type, m.view, m.k, m.qc), m.signature)) {
      this.reject(`phase ${m.type}: bad signature`, from);
      return;
    }
    const problem = qcProblem(m.qc, this.q, this.verifiers);
    if (problem) {
      this.reject(`phase ${m.type}: ${problem}`, from);
      return;
    }
    this.applyPhase(s, m.k, m.type, m.qc);
  }

  /**
   * Algorithm 2: on PRE-COMMIT keep prepareQC and vote; on COMMIT lock on precommitQC and vote;
   * on DECIDE the batch is committed.
   */
  private applyPhase(s: Slot, k: number, type: HsPhaseMessage['type'], qc: QuorumCert): void {
    switch (type) {
      case MSG_HS_PRE_COMMIT:
        s.prepareQC = qc;
        if (s.votes) s.votes = newCollector(PHASE_PRE_COMMIT, qc.view, k, qc.digest);
        this.vote(s, k, PHASE_PRE_COMMIT);
        return;
      case MSG_HS_COMMIT:
        s.lockedQC = qc;
        if (s.votes) s.votes = newCollector(PHASE_COMMIT, qc.view, k, qc.digest);
        this.vote(s, k, PHASE_COMMIT);
        return;
      case MSG_HS_DECIDE:
        this.decide(s, k, qc.view);
        return;
    }
  }

  private vote(s: Slot, k: number, phase: Phase): void {
    s.voted = phase;
    const signature = this.signer.sign(voteBytes(phase, s.view, k, s.digest!));
    const leader = this.slotLeader(k, s.view);
    if (leader === this.id) this.addVote(s, k, this.id, signature);
    else this.send(leader, { type: MSG_HS_VOTE, replica: this.id, phase, view: s.view, k, digest: s.digest!, signature });
  }

  private replayEarly(s: Slot): void {
    const early = s.early;
    if (!early) return;
    s.early = undefined;
    early.sort((a, b) => a.type - b.type);
    for (const m of early) this.onPhase(m.leader, m);
  }

  /** Algorithm 2, decide phase: commit k; execution follows the global order (Executor). */
  private decide(s: Slot, k: number, view: number): void {
    const request = s.request!;
    const digest = s.digest!;
    s.decided = true;
    // Decided slots only need to be recognised until the next stable checkpoint.
    s.request = undefined;
    s.prepareQC = undefined;
    s.lockedQC = undefined;
    s.votes = undefined;
    s.early = undefined;
    this.commitBatch(k, view, request, digest);
  }

  protected collectGarbage(stableK: number): void {
    const upToK = Math.min(stableK, this.executor.executedK);
    for (const k of this.slots.keys()) if (k <= upToK) this.slots.delete(k);
  }

  /** A lagging replica drops a slot below the stable checkpoint once it executed it. */
  protected override onExecuted(e: Execution): void {
    if (e.k <= this.stableK) this.slots.delete(e.k);
  }

  /** For tests: a slot's lock, if any. */
  lockedQCAt(k: number): QuorumCert | undefined {
    return this.slots.get(k)?.lockedQC;
  }
}

// ---------------------------------------------------------------------------------------
// Chained mode: Algorithm 3

interface BlockNode {
  readonly hash: Buffer;
  readonly key: string;
  readonly view: number;
  readonly height: number;
  readonly parentKey: string;
  readonly request: ClientRequest;
  readonly digest: Buffer;
  readonly justify: QuorumCert;
  readonly noop: boolean;
}

export class ChainedHotStuff extends HotStuffReplica {
  private readonly genesisHash: Buffer;
  private view = 0;
  private inViewChange = false;
  /** The block tree above the last committed block (which it keeps as its root). */
  private readonly blocks = new Map<string, BlockNode>();
  private committedKey: string;
  private committedHeight = 0;
  /** Algorithm 3's genericQC (here highQC) and lockedQC. */
  private highQC: QuorumCert;
  private lockedQC: QuorumCert;
  /** The last round voted in (Algorithm 4's vheight, as (view, height)). */
  private lastVoted = { view: 0, k: 0 };
  /** Leader side: the block of this view awaiting its QC, and the votes per own block. */
  private proposedKey: string | undefined;
  private readonly collectors = new Map<string, VoteCollector>();
  /** Proposals whose parent has not arrived yet, by parent key. */
  private readonly orphans = new Map<string, HsProposal[]>();
  private orphanCount = 0;
  /** Leader side: NEW-VIEW messages per view, by sender. */
  private readonly newViews = new Map<number, Map<number, QuorumCert>>();
  /** Requests clients sent here after timing out, not yet executed: they drive the view change. */
  private readonly awaited = new Map<number, ClientRequest>();
  private backoff = 1;
  private readonly blocksMax: number;

  constructor(options: ReplicaOptions, deps: ReplicaDeps) {
    super(options, deps);
    this.genesisHash = hsGenesisHash(deps.crypto);
    const genesis = genesisQC(deps.crypto);
    this.highQC = genesis;
    this.lockedQC = genesis;
    this.committedKey = hex(this.genesisHash);
    this.blocks.set(this.committedKey, {
      hash: this.genesisHash,
      key: this.committedKey,
      view: 0,
      height: 0,
      parentKey: '',
      request: noopRequest(0),
      digest: Buffer.alloc(DIGEST_BYTES),
      justify: genesis,
      noop: true,
    });
    this.blocksMax = Math.max(64, 4 * options.windowK);
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: this.view,
      executedK: this.executor.executedK,
      stableK: this.stableK,
      inViewChange: this.inViewChange,
      logEntries: this.blocks.size,
    };
  }

  protected clientLeader(): number {
    return primaryOf(this.view, this.q.n);
  }

  protected onProtocolMessage(from: Peer, msg: HotStuffMessage): void {
    switch (msg.type) {
      case MSG_HS_PROPOSAL:
        this.onProposal(from, msg);
        return;
      case MSG_HS_VOTE:
        this.onVote(from, msg);
        return;
      case MSG_HS_NEW_VIEW:
        this.onNewView(from, msg);
        return;
      default:
        this.reject(`chained mode: unexpected message type ${msg.type}`, from);
    }
  }

  // --- leader

  /**
   * Algorithm 3 as the leader: once the previous proposal has its QC, propose the next block on
   * highQC's node with the next request, or with a no-op while a batch above the committed
   * block still needs the three-chain that commits it.
   */
  protected tryPropose(): void {
    if (this.inViewChange || primaryOf(this.view, this.q.n) !== this.id) return;
    const parentKey = hex(this.highQC.digest);
    if (this.proposedKey !== undefined && this.proposedKey !== parentKey) return;
    const parent = this.blocks.get(parentKey);
    const height = this.highQC.k + 1;
    if (!parent || height > this.highK + CHAIN_SLACK_K) return;
    let request = this.takePendingOffChain(parent);
    if (!request) {
      if (!this.needsNoop(parent)) return;
      request = noopRequest(height);
    }
    const block: HsBlock = { view: this.view, height, parentHash: this.highQC.digest, request, justify: this.highQC };
    const node = this.nodeOf(block);
    this.blocks.set(node.key, node);
    this.collectors.set(node.key, newCollector(PHASE_GENERIC, node.view, node.height, node.hash));
    this.proposedKey = node.key;
    this.broadcast({ type: MSG_HS_PROPOSAL, leader: this.id, block, signature: this.signer.sign(proposalBytes(node.hash)) });
    this.onBlock(node);
  }

  /**
   * The next queued request not already in a block between `parent` and the committed block:
   * after a view change, clients' retransmissions may name batches the old leader did propose.
   */
  private takePendingOffChain(parent: BlockNode): ClientRequest | undefined {
    for (;;) {
      const req = this.takePending();
      if (!req || !this.inUncommittedChain(parent, req)) return req;
    }
  }

  private inUncommittedChain(from: BlockNode, req: ClientRequest): boolean {
    for (let x: BlockNode | undefined = from; x && x.height > this.committedHeight; x = this.blocks.get(x.parentKey)) {
      if (x.request.clientId === req.clientId && x.request.reqNo === req.reqNo) return true;
    }
    return false;
  }

  private needsNoop(from: BlockNode): boolean {
    for (let x: BlockNode | undefined = from; x && x.height > this.committedHeight; x = this.blocks.get(x.parentKey)) {
      if (!x.noop) return true;
    }
    return false;
  }

  private nodeOf(b: HsBlock): BlockNode {
    const digest = requestDigest(this.crypto, b.request);
    const hash = hsBlockHash(this.crypto, b.view, b.height, b.parentHash, digest, b.justify.view);
    return {
      hash,
      key: hex(hash),
      view: b.view,
      height: b.height,
      parentKey: hex(b.parentHash),
      request: b.request,
      digest,
      justify: b.justify,
      noop: isNoop(b.request),
    };
  }

  private onVote(from: Peer, m: HsVote): void {
    if (!this.fromReplica(from, m.replica) || m.phase !== PHASE_GENERIC) {
      this.reject('vote: sender mismatch or wrong phase', from);
      return;
    }
    const c = this.collectors.get(hex(m.digest));
    if (!c || c.done || c.view !== m.view || c.k !== m.k || c.sigs.has(m.replica)) return;
    if (!this.verifiers[m.replica]!.verify(voteBytes(m.phase, m.view, m.k, m.digest), m.signature)) {
      this.reject('vote: bad signature', from);
      return;
    }
    this.addVote(c, m.replica, m.signature);
  }

  private addVote(c: VoteCollector, replica: number, signature: Buffer): void {
    c.sigs.set(replica, signature);
    if (c.sigs.size < this.q.nf) return;
    c.done = true;
    const qc = collectorQC(c);
    if (rankAbove(qc.view, qc.k, this.highQC)) this.highQC = qc;
    this.tryPropose();
  }

  // --- replica

  /** Algorithm 3 as a replica: validate the proposal, then vote (if safe) and update. */
  private onProposal(from: Peer, m: HsProposal): void {
    const b = m.block;
    if (!this.fromReplica(from, m.leader) || m.leader !== primaryOf(b.view, this.q.n)) {
      this.reject(`proposal: ${from} is not the leader of view ${b.view}`, from);
      return;
    }
    if (b.justify.phase !== PHASE_GENERIC || b.height !== b.justify.k + 1 || !b.parentHash.equals(b.justify.digest) || b.justify.view > b.view) {
      this.reject('proposal: justify does not certify the parent (Algorithm 3: createLeaf(genericQC.node))', from);
      return;
    }
    // Blocks of an older view are kept, not voted for: a replica that moved on alone can still
    // follow the chain the others certify, and a later block may build on them.
    if (b.height <= this.committedHeight) return;
    if (!Number.isSafeInteger(b.height) || b.height > this.highK + CHAIN_SLACK_K) {
      this.reject(`proposal: height ${b.height} outside the window`, from);
      return;
    }
    const parentKey = hex(b.parentHash);
    if (!this.blocks.has(parentKey)) {
      this.holdOrphan(parentKey, m, from);
      return;
    }
    const node = this.nodeOf(b);
    if (this.blocks.has(node.key)) return;
    if (this.blocks.size >= this.blocksMax) {
      this.reject('proposal: block tree full', from);
      return;
    }
    if (!this.verifiers[m.leader]!.verify(proposalBytes(node.hash), m.signature)) {
      this.reject('proposal: bad signature', from);
      return;
    }
    const problem = this.proposedRequestProblem(b.request, b.height) ?? qcProblem(b.justify, this.q, this.verifiers, this.genesisHash);
    if (problem) {
      this.reject(`proposal: ${problem}`, from);
      return;
    }
    if (b.view > this.view || (this.inViewChange && b.view === this.view)) {
      this.enterView(b.view);
      this.inViewChange = false;
      this.emit({ name: 'viewEntered', view: this.view });
    }
    this.blocks.set(node.key, node);
    this.onBlock(node);
    this.releaseOrphans(node.key);
  }

  /**
   * Algorithm 3: vote if the round is new and safeNode holds, to the leader of the next height
   * (while the view lasts, the same leader); then update highQC, lockedQC and commit from the
   * block's justify.
   */
  private onBlock(node: BlockNode): void {
    if (node.view === this.view && rankAbove(node.view, node.height, this.lastVoted) && this.safeNode(node)) {
      this.lastVoted = { view: node.view, k: node.height };
      const signature = this.signer.sign(voteBytes(PHASE_GENERIC, node.view, node.height, node.hash));
      const leader = primaryOf(node.view, this.q.n);
      if (leader === this.id) {
        const c = this.collectors.get(node.key);
        if (c && !c.done) this.addVote(c, this.id, signature);
      } else {
        this.send(leader, { type: MSG_HS_VOTE, replica: this.id, phase: PHASE_GENERIC, view: node.view, k: node.height, digest: node.hash, signature });
      }
    }
    this.update(node.justify);
    this.tryPropose();
  }

  /** safeNode: the block extends lockedQC's node, or its justify outranks the lock. */
  private safeNode(node: BlockNode): boolean {
    return this.extendsBlock(node, this.lockedQC) || rankAbove(node.justify.view, node.justify.k, this.lockedQC);
  }

  private extendsBlock(node: BlockNode, qc: QuorumCert): boolean {
    let x: BlockNode | undefined = node;
    while (x && x.height > qc.k) x = this.blocks.get(x.parentKey);
    return x !== undefined && x.hash.equals(qc.digest);
  }

  /**
   * Algorithm 3's three chain, read from the justify of a new block: b2 = qc.node (one-chain:
   * highQC), b1 = b2's parent (two-chain: lock on b2.justify), b0 = b1's parent (three-chain:
   * commit b0). Parents are justify nodes by construction; the three must share a view to be
   * consecutive rounds, as the paper's "direct parent" condition asks.
   */
  private update(qc: QuorumCert): void {
    const b2 = this.blocks.get(hex(qc.digest));
    if (!b2) return;
    if (rankAbove(qc.view, qc.k, this.highQC)) this.highQC = qc;
    const b1 = b2.height > 0 ? this.blocks.get(b2.parentKey) : undefined;
    if (!b1) return;
    if (rankAbove(b2.justify.view, b2.justify.k, this.lockedQC)) this.lockedQC = b2.justify;
    const b0 = b1.height > 0 ? this.blocks.get(b1.parentKey) : undefined;
    if (!b0 || b0.height === 0 || b0.height <= this.committedHeight) return;
    if (b0.view === b1.view && b1.view === b2.view) this.commitChain(b0);
  }

  /** Commits b and every uncommitted ancestor, oldest first (Algorithm 3, decide). */
  private commitChain(b: BlockNode): void {
    const path: BlockNode[] = [];
    let x: BlockNode | undefined = b;
    while (x && x.height > this.committedHeight) {
      path.push(x);
      x = this.blocks.get(x.parentKey);
    }
    if (!x || x.key !== this.committedKey) {
      throw new Error(`hotstuff: block ${b.key} at ${b.height} does not extend the committed block at ${this.committedHeight}`);
    }
    this.committedKey = b.key;
    this.committedHeight = b.height;
    for (let i = path.length - 1; i >= 0; i--) {
      const node = path[i]!;
      this.commitBatch(node.height, node.view, node.request, node.digest);
    }
    this.prune();
  }

  /** Keeps only the committed block and blocks above it. */
  private prune(): void {
    for (const [key, node] of this.blocks) {
      if (node.height < this.committedHeight || (node.height === this.committedHeight && key !== this.committedKey)) this.blocks.delete(key);
    }
    for (const [key, c] of this.collectors) if (c.k <= this.committedHeight) this.collectors.delete(key);
    for (const [key, list] of this.orphans) {
      if (list[0]!.block.height <= this.committedHeight) {
        this.orphans.delete(key);
        this.orphanCount -= list.length;
      }
    }
  }

  private holdOrphan(parentKey: string, m: HsProposal, from: Peer): void {
    if (this.orphanCount >= ORPHANS_MAX) {
      this.reject('proposal: unknown parent', from);
      return;
    }
    const list = this.orphans.get(parentKey) ?? [];
    list.push(m);
    this.orphans.set(parentKey, list);
    this.orphanCount++;
  }

  private releaseOrphans(parentKey: string): void {
    const list = this.orphans.get(parentKey);
    if (!list) return;
    this.orphans.delete(parentKey);
    this.orphanCount -= list.length;
    for (const m of list) this.onProposal(m.leader, m);
  }

  // --- view change (pacemaker)

  protected override onClientRetransmission(req: ClientRequest): void {
    if (this.awaited.size >= AWAITED_REQUESTS_MAX && !this.awaited.has(req.clientId)) return;
    const known = this.awaited.get(req.clientId);
    if (known && known.reqNo >= req.reqNo) return;
    if (this.clientRequestProblem(req)) return;
    const wasEmpty = this.awaited.size === 0;
    this.awaited.set(req.clientId, req);
    if (wasEmpty) this.armTimer();
  }

  protected override onExecuted(e: Execution): void {
    if (this.awaited.size === 0) return;
    const req = this.awaited.get(e.request.clientId);
    if (req && req.reqNo <= e.request.reqNo) this.awaited.delete(e.request.clientId);
    // Progress: the leader is doing its job; give the rest a fresh timeout.
    this.backoff = 1;
    if (this.awaited.size === 0) this.cancelTimer(VIEW_CHANGE_TIMER);
    else this.armTimer();
  }

  private armTimer(): void {
    this.setTimer(VIEW_CHANGE_TIMER, this.options.viewChangeTimeoutMs * this.backoff);
  }

  protected override onTimer(name: string): void {
    if (name !== VIEW_CHANGE_TIMER || this.awaited.size === 0) return;
    this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX);
    this.startViewChange(this.view + 1);
  }

  /** The client's retransmissions name the requests the old leader did not get through. */
  private startViewChange(view: number): void {
    this.enterView(view);
    this.inViewChange = true;
    this.emit({ name: 'viewChangeStarted', view });
    const leader = primaryOf(view, this.q.n);
    const highQC = this.highQC;
    if (leader === this.id) this.addNewView(this.id, view, highQC);
    else this.send(leader, makeNewView(this.signer, this.id, view, highQC));
    if (this.awaited.size > 0) this.armTimer();
  }

  private enterView(view: number): void {
    this.view = view;
    this.proposedKey = undefined;
    // Whatever the old view queued may be re-proposed; the executor skips duplicates.
    this.proposedReqNo.clear();
    for (const v of this.newViews.keys()) if (v < view) this.newViews.delete(v);
  }

  private onNewView(from: Peer, m: HsNewView): void {
    if (!this.fromReplica(from, m.replica) || primaryOf(m.view, this.q.n) !== this.id) {
      this.reject('new-view: sender mismatch or not the leader of that view', from);
      return;
    }
    if (m.view < this.view || (m.view === this.view && !this.inViewChange) || m.view > this.view + NEW_VIEW_AHEAD_MAX) return;
    if (this.newViews.get(m.view)?.has(m.replica)) return;
    if (!this.verifiers[m.replica]!.verify(newViewBytes(m.view, m.highQC), m.signature)) {
      this.reject('new-view: bad signature', from);
      return;
    }
    const problem = m.highQC.phase !== PHASE_GENERIC ? 'new-view: highQC of another phase' : qcProblem(m.highQC, this.q, this.verifiers, this.genesisHash);
    if (problem) {
      this.reject(problem, from);
      return;
    }
    this.addNewView(m.replica, m.view, m.highQC);
  }

  /**
   * f+1 NEW-VIEWs for a later view show a correct replica gave up on this one: join it. With
   * nf the leader takes the highest QC whose block it holds and starts proposing on it.
   */
  private addNewView(replica: number, view: number, qc: QuorumCert): void {
    let senders = this.newViews.get(view);
    if (!senders) {
      senders = new Map();
      this.newViews.set(view, senders);
    }
    senders.set(replica, qc);
    if (view > this.view && senders.size >= this.q.f + 1) {
      this.startViewChange(view);
      return;
    }
    if (view !== this.view || !this.inViewChange || senders.size < this.q.nf) return;
    for (const c of senders.values()) {
      if (rankAbove(c.view, c.k, this.highQC) && this.blocks.has(hex(c.digest))) this.highQC = c;
    }
    this.newViews.delete(view);
    this.inViewChange = false;
    this.emit({ name: 'viewEntered', view });
    // The requests clients retransmitted to this replica are the ones to propose first.
    for (const req of this.awaited.values()) this.acceptRequest(req, this.id);
    this.tryPropose();
  }

  protected collectGarbage(stableK: number): void {
    void stableK;
  }

  // --- for tests

  get highQCNow(): QuorumCert {
    return this.highQC;
  }

  get lockedQCNow(): QuorumCert {
    return this.lockedQC;
  }

  get currentView(): number {
    return this.view;
  }

  get collectorCount(): number {
    return this.collectors.size;
  }
}

// ---------------------------------------------------------------------------------------
// Client policy

/** Per pending request: the (k, digest, result) each replica replied with. */
type ReplyTally = Map<number, { readonly key: string; readonly view: number }>;

/**
 * The client's rule, as PBFT's (paper §4(8) and Algorithm 2: "responds to the client"): accept
 * on f+1 matching REPLYs (same k, digest and result) from distinct replicas, at least one of
 * them correct. Fresh requests go to the client's leader: leaders[clientId mod L] in parallel
 * mode, the primary of the newest view seen in chained mode. On a timeout the request goes to
 * every replica, and backups forward it to the leader. Reply signatures are checked when
 * `extra.keySeed` (and `extra.cryptoProvider`, default 'node') give the replicas' keys;
 * otherwise the transport's authentication of the sender is relied on.
 */
export class HotStuffClientPolicy implements ClientPolicy<HotStuffMessage> {
  private readonly n: number;
  private readonly f: number;
  private readonly mode: HotStuffMode;
  private readonly leaders: readonly number[];
  private readonly verifiers: readonly Verifier[] | undefined;
  private believedView = 0;

  constructor(options: ClientPolicyOptions) {
    const q = quorums(options.n);
    this.n = q.n;
    this.f = q.f;
    this.mode = hotstuffMode(options.extra);
    this.leaders = hotstuffLeaders(options.n, options.extra);
    const keySeed = options.extra?.['keySeed'];
    if (typeof keySeed === 'string' && keySeed.length > 0) {
      const provider = options.extra?.['cryptoProvider'] ?? 'node';
      if (provider !== 'node' && provider !== 'noble' && provider !== 'sim') {
        throw new RangeError(`hotstuff client policy: extra.cryptoProvider must be 'node', 'noble' or 'sim', got ${String(provider)}`);
      }
      this.verifiers = new KeyRing(options.crypto ?? createCrypto(provider as CryptoProviderName), keySeed, this.n, 0).replicaVerifiers;
    }
  }

  targets(request: ClientRequest): readonly Peer[] {
    if (this.mode === 'parallel') return [this.leaders[request.clientId % this.leaders.length]!];
    return [primaryOf(this.believedView, this.n)];
  }

  replyKey(msg: HotStuffMessage): { clientId: number; reqNo: number } | undefined {
    return msg.type === MSG_HS_REPLY ? { clientId: msg.clientId, reqNo: msg.reqNo } : undefined;
  }

  onReply(p: PendingRequest, from: Peer, msg: HotStuffMessage, nowMs: number): ReplyOutcome<HotStuffMessage> | undefined {
    void nowMs;
    if (msg.type !== MSG_HS_REPLY || isClientPeer(from) || from >= this.n || msg.replica !== from) return undefined;
    if (!msg.digest.equals(p.digest) || msg.clientId !== p.request.clientId || msg.reqNo !== p.request.reqNo) return undefined;
    let tally = p.policyState as ReplyTally | undefined;
    if (!tally) {
      tally = new Map();
      p.policyState = tally;
    }
    if (tally.has(from)) return undefined;
    if (this.verifiers && !replySignatureValid(this.verifiers[from]!, msg)) return undefined;
    const key = `${msg.k}:${hex(msg.result)}`;
    tally.set(from, { key, view: msg.view });
    let matching = 0;
    // The view is not part of what must match, so take the smallest the matching replies name:
    // at least one of them is correct, and a faulty replica cannot steer the client ahead.
    let view = Number.MAX_SAFE_INTEGER;
    for (const t of tally.values()) {
      if (t.key !== key) continue;
      matching++;
      view = Math.min(view, t.view);
    }
    if (matching < this.f + 1) return undefined;
    this.believedView = Math.max(this.believedView, view);
    return { accepted: { k: msg.k, view, digest: msg.digest, path: 'f+1' } };
  }

  onTimeout(p: PendingRequest, nowMs: number): readonly ClientOutput<HotStuffMessage>[] {
    void nowMs;
    return [{ kind: 'broadcast', msg: p.request }];
  }
}

/**
 * How the Byzantine wrappers (replica/byzantine.ts) see HotStuff's proposals: a PREPARE(v, k)
 * in parallel mode (Algorithm 2, prepare phase) and a PROPOSAL of the block at height k in
 * chained mode (Algorithm 3). Both are signed by their leader, and the wrappers hold no key:
 * `withBatchOf` keeps the original signature, so the forged proposal fails the signature check
 * (`prepare: bad signature`) at every replica it reaches. An equivocating leader therefore only
 * withholds its slot from the deceived replicas, like `inTheDark`.
 */
export const hotstuffFaultHooks: FaultHooks<HotStuffMessage> = {
  proposalSlot(msg) {
    if (msg.type === MSG_HS_PREPARE) return { view: msg.view, k: msg.k };
    if (msg.type === MSG_HS_PROPOSAL) return { view: msg.block.view, k: msg.block.height };
    return undefined;
  },
  withBatchOf(target, source) {
    if (target.type === MSG_HS_PREPARE && source.type === MSG_HS_PREPARE) return { ...target, request: source.request };
    if (target.type === MSG_HS_PROPOSAL && source.type === MSG_HS_PROPOSAL) return { ...target, block: { ...target.block, request: source.block.request } };
    throw new TypeError('hotstuff withBatchOf: both messages must be PREPAREs or both PROPOSALs');
  },
};

export const hotstuff: ProtocolModule<HotStuffMessage> = {
  name: 'hotstuff',
  codec: hotstuffCodec,
  createReplica(options: ReplicaOptions, deps: ReplicaDeps): ReplicaCore<HotStuffMessage> {
    return hotstuffMode(options.extra) === 'chained' ? new ChainedHotStuff(options, deps) : new ParallelHotStuff(options, deps);
  },
  createClientPolicy(options: ClientPolicyOptions): ClientPolicy<HotStuffMessage> {
    return new HotStuffClientPolicy(options);
  },
  faults: hotstuffFaultHooks,
};
