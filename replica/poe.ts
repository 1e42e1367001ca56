/**
 * Proof-of-Execution (Gupta, Hellings, Rahnama, Sadoghi: "Proof-of-Execution: Reaching
 * Consensus through Fault-Tolerant Speculation", EDBT 2021), the MAC variant the paper
 * evaluated. Citations "Figure 3, line 15" and "§3.3.4" refer to that paper
 * (../shared/seeds/poe-paper.txt).
 *
 * Normal case (Figure 3 with the §3.5 optimisations):
 *   client  -> primary   REQUEST ⟨T⟩c                         (line 1)
 *   primary -> backups   PROPOSE(v, k, ⟨T⟩c)                  (line 7; counts as its SUPPORT, §3.5(2))
 *   backup  -> replicas  SUPPORT(v, k, D(⟨T⟩c))               (lines 10-13, first PROPOSE for (v, k) only)
 *   nf matching SUPPORTs from distinct replicas view-commit  (lines 15-17)
 *   execute speculatively, strictly in order                  (line 19)
 *   replica -> client    INFORM(v, k, D(⟨T⟩c), result)        (line 22)
 *   the client accepts on nf identical INFORMs               (lines 2-3)
 * Per batch, with no faults, the replicas send (n-1) PROPOSE + (n-1)^2 SUPPORT + n INFORM = n^2
 * messages ("each replica only sends a single message to all the other replicas", §3.5).
 *
 * View change (Figure 5, §3.3): VC-REQUEST(v, E) with the executions E since the last stable
 * checkpoint, VC-ACK(v, id(Q), D(m)) for requests consistent with the acknowledger's state,
 * NV-PROPOSE(v+1, E', V) from the next primary once nf requests are each acknowledged by all of
 * the nf senders, NV-ACK(v+1, D(m)) after full or partial validation, and entry into v+1 on nf
 * NV-ACKs, rolling back speculative executions that E' does not keep (§3.3.5).
 *
 * The INFORM `result` is the replica's ledger block hash after executing k (paper §4(6)): it
 * depends on every batch executed so far, so nf identical results mean nf identical histories.
 *
 * Choices the paper leaves open, each explained where it is implemented:
 * - Checkpoints (§3.5 last paragraph): every VC-REQUEST carries its sender's stable checkpoint
 *   sequence number; E' holds the union of the entries above the highest stable checkpoint of
 *   the nf requests used (the "base"). A replica acknowledges a request only if the claimed
 *   checkpoint agrees with its own state (its ledger hash there, its own certified stable
 *   checkpoint, or blocks chained onto its ledger), so the base holds every batch a client
 *   accepted (the argument of Proposition 3.5). f+1 matching claims certify a checkpoint.
 * - Gaps in E': each E is consecutive from its sender's stable checkpoint up (Figure 5, line 9
 *   condition 1), and every sender's checkpoint is at most the base, so the union above the
 *   base is consecutive. A gap therefore cannot arise from valid requests; should one appear
 *   anyway, E' is cut at the first missing sequence number (buildNewView) and the cut is what
 *   validating replicas rebuild and compare, so the replicas still agree.
 * - Failure detection (§3.3.1 (1)): a backup expects progress on every client request it
 *   forwarded to the primary. This also covers a primary that leaves a hole (Example 3.4,
 *   case 3): the clients behind the hole time out and broadcast. A backup also detects failure
 *   when a client keeps re-sending a request it executed while nothing executes for a whole
 *   timeout (fewer than nf replicas executed it). A replica that merely missed messages does not
 *   start a view change on its own (it would halt alone, for good): it fetches first.
 * - Liveness (Theorem 3.7): the new-view timer ticks every half timeout during a view change;
 *   once nf VC-REQUESTs for the view are in (as in PBFT, so one isolated replica does not run
 *   through views alone), a full timeout without the new view, or an invalid NV-PROPOSE, makes
 *   the replica request the next view with a doubled timeout. A replica also joins the highest
 *   view that f+1 distinct replicas request (line 6, generalised as in PBFT). It never enters a
 *   view it asked to leave: its VC-REQUEST for that view would be stale (Proposition 3.5).
 * - Lost messages (the paper assumes reliable links for liveness; the simulator and a crashing
 *   primary do not provide them): a client's re-sent request makes the primary re-broadcast its
 *   PROPOSE and backups their SUPPORT; each new-view timer tick re-sends the replica's own
 *   VC-REQUESTs, which others answer with their VC-ACK, NV-PROPOSE or NV-ACK and own VC-REQUEST.
 *   None of this adds a message to a fault-free run.
 * - Recovery (paper §4(6)): FETCH / BLOCKS. A replica behind a certified checkpoint fetches the
 *   blocks from a peer and accepts them if they chain onto its ledger to the certified hash;
 *   blocks of a later view make it ask to leave its own view. A replica that merely seems behind
 *   asks everybody for the blocks of its view above that, and executes a block f+1 replicas sent
 *   alike (voteTail): the last batches of a run, which no checkpoint certifies and no client
 *   retransmits once nf others executed them. It does so during a view change too: a replica
 *   whose NV-PROPOSE and NV-ACKs were lost gives up alone on a view the others entered, and
 *   never enters a view it asked to leave; it stays in its view change, executing those
 *   blocks below the next checkpoint and sending no INFORM for them until it enters a view
 *   (its VC-REQUEST does not list them), until certified checkpoints or the next view change
 *   take it further.

 * Not implemented: state transfer of the store. A replica further behind than the archive of
 * garbage-collected requests (ReplicaOptions.extra.archiveK sequence numbers, default two
 * windows) cannot catch up: after a long partition it stays behind, and counts as faulty.
 */
import type { FaultHooks } from './byzantine.js';
import { CheckpointTracker, Executor, type Execution } from './common.js';
import type { CryptoProvider } from './crypto.js';
import { DIGEST_BYTES } from './crypto.js';
import { blockHash, Ledger } from './ledger.js';
import type { Checkpoint, ClientRequest, CommonMessage, FieldCodec } from './messages.js';
import { commonCodecs, isNoop, makeCodec, MSG_CHECKPOINT, MSG_REQUEST, readRequest, requestDigest, writeRequest } from './messages.js';
import type { ClientPolicy, ClientPolicyOptions, PendingRequest, ProtocolModule, ReplyOutcome } from './protocol.js';
import { YcsbStore } from './store.js';
import type {
  ClientOutput,
  Peer,
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
import type { Reader, Writer } from './wire.js';

// ---------------------------------------------------------------------------------------
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

const poeCodecs: Record<number, FieldCodec<PoeMessage>> = {
  ...(commonCodecs as Record<number, FieldCodec<PoeMessage>>),
  [MSG_PROPOSE]: {
    write: (w, m) => {
      const p = m as Propose;
      w.u53(p.view).u53(p.k);
      writeRequest(w, p.request);
    },
    read: (r) => ({ type: MSG_PROPOSE, view: r.u53('propose.view'), k: r.u53('propose.k'), request: readRequest(r) }),
  },
  [MSG_SUPPORT]: {
    write: (w, m) => {
      const s = m as Support;
      w.u53(s.view).u53(s.k).fixed(s.digest, DIGEST_BYTES);
    },
    read: (r) => ({
      type: MSG_SUPPORT,
      view: r.u53('support.view'),
      k: r.u53('support.k'),
      digest: r.fixed(DIGEST_BYTES, 'support.digest'),
    }),
  },
  [MSG_INFORM]: {
    write: (w, m) => {
      const i = m as Inform;
      w.u53(i.view).u53(i.k).fixed(i.digest, DIGEST_BYTES).u32(i.clientId).u32(i.reqNo).fixed(i.result, DIGEST_BYTES);
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
  },
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
  [MSG_VC_ACK]: {
    write: (w, m) => {
      const a = m as VcAck;
      w.u53(a.view).u16(a.replica).fixed(a.digest, DIGEST_BYTES);
    },
    read: (r) => ({
      type: MSG_VC_ACK,
      view: r.u53('vcAck.view'),
      replica: r.u16('vcAck.replica'),
      digest: r.fixed(DIGEST_BYTES, 'vcAck.digest'),
    }),
  },
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
  [MSG_NV_ACK]: {
    write: (w, m) => {
      const a = m as NvAck;
      w.u53(a.view).fixed(a.digest, DIGEST_BYTES);
    },
    read: (r) => ({ type: MSG_NV_ACK, view: r.u53('nvAck.view'), digest: r.fixed(DIGEST_BYTES, 'nvAck.digest') }),
  },
  [MSG_FETCH]: {
    write: (w, m) => {
      const f = m as Fetch;
      w.u53(f.fromK).u53(f.toK);
    },
    read: (r) => ({ type: MSG_FETCH, fromK: r.u53('fetch.fromK'), toK: r.u53('fetch.toK') }),
  },
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

// ---------------------------------------------------------------------------------------
// Replica

/** Named timers (STYLE.md: TigerBeetle's timeout table). */
export const POE_TIMERS = {
  /** Failure detection in the normal case (§3.3.1 (1)). */
  viewChange: 'vc',
  /** A view change that does not complete in time (Theorem 3.7: exponential backoff). */
  newView: 'nv',
  /** A replica behind a stable checkpoint asks for the blocks it lacks, one peer per expiry. */
  fetch: 'fetch',
} as const;

/** Requests the primary holds while the window is full (fixed bound: TigerBeetle style). */
const QUEUE_MAX = 1 << 16;
/** Client requests a backup forwarded and awaits progress on; one per logical client. */
const FORWARDED_MAX = 1 << 20;
/** View-change messages are kept only for views this close above the current one. */
const VIEW_LOOKAHEAD = 64;
/** VC-REQUESTs kept per sender (its latest views); bounds memory against a replica that spams views. */
const VC_REQUESTS_PER_SENDER = 2;
/** The backoff stops doubling here (2^16 times the base timeout). */
const BACKOFF_EXP_MAX = 16;
/** Fetches, probes and retransmissions repeat at most once per this fraction of the view-change timeout. */
const RETRY_DIVISOR = 4;

/**
 * What a replica knows about sequence number k in the current view: the proposal it supports
 * (Support_r, Figure 3 line 12), the SUPPORTs counted for it, and whether it view-committed.
 * Entries of a new view's E' are slots too (view = the view they were proposed in, committed).
 */
interface Slot {
  readonly view: number;
  request: ClientRequest | undefined;
  digest: Buffer | undefined;
  /** Replicas whose SUPPORT (the primary: PROPOSE) for (view, k) was counted; only the first counts. */
  readonly voted: Uint8Array;
  /** SUPPORTs that arrived before the PROPOSE (at most one per replica, so at most n). */
  early: { from: number; digest: Buffer }[] | undefined;
  /** Distinct replicas whose SUPPORT matches `digest`, the primary's PROPOSE and our own included. */
  matching: number;
  committed: boolean;
  /** Primary: when it last re-broadcast this PROPOSE (retransmission is rate-limited). */
  resentAtMs: number;
}

export interface VcRecord {
  readonly msg: VcRequest;
  readonly digest: Buffer;
  readonly hex: string;
}

interface NvRecord {
  readonly msg: NvPropose;
  readonly digest: Buffer;
  readonly hex: string;
}

type Validation = 'valid' | 'wait' | { readonly invalid: string };

export class PoeReplica implements ReplicaCore<PoeMessage> {
  readonly id: number;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  private readonly n: number;
  private readonly f: number;
  private readonly nf: number;
  private readonly crypto: CryptoProvider;
  private readonly executor: Executor;
  private readonly checkpoints: CheckpointTracker;
  private readonly windowK: number;
  private readonly baseTimeoutMs: number;

  private out: ReplicaOutput<PoeMessage>[] = [];
  private nowMs = 0;

  // --- views
  /** The current view; during a view change, the view whose primary failed. */
  private view = 0;
  /** The highest view this replica entered (normal case ran in it). */
  private enteredView = 0;
  private inViewChange = false;
  /** Failed view changes since the last view entered: the timeout is base * 2^backoffExp. */
  private backoffExp = 0;

  // --- normal case
  private readonly slots = new Map<number, Slot>();
  /** Sequence numbers up to here are fixed by the current view's NV-PROPOSE (§3.3.5). */
  private viewStartK = 0;
  /** Primary: the next sequence number to assign (Figure 3, line 8). */
  private nextK = 1;
  /** Primary: highest reqNo per client proposed or queued in this view and not yet executed (dedup). */
  private readonly proposedReqNo = new Map<number, number>();
  /** Primary: the sequence number each client's in-flight request was proposed at (for retransmission). */
  private readonly proposedK = new Map<number, number>();
  /** Primary: requests waiting for the window to move (bounded by QUEUE_MAX). */
  private queue: ClientRequest[] = [];
  private queueHead = 0;
  /** Per client, the k at which its latest executed request ran (to re-send the INFORM). */
  private readonly informK = new Map<number, number>();
  /** PROPOSE and SUPPORT messages of the next view, replayed on entry (bounded). */
  private future: { from: number; msg: Propose | Support }[] = [];
  private readonly futureMax: number;

  // --- checkpoints and block recovery
  /**
   * The stable checkpoint and the state digest it was certified with: nf matching CHECKPOINTs
   * (the tracker), or f+1 replicas claiming it stable in their VC-REQUESTs (adoptClaimedCheckpoint).
   */
  private stable: { k: number; digest: Buffer };
  /** Slots, undo records and executor state up to here were garbage-collected. */
  private gcK = 0;
  /** Requests of garbage-collected batches, kept for archiveK sequence numbers to serve FETCH (paper §4(6)). */
  private readonly archive = new Map<number, ClientRequest>();
  private readonly archiveK: number;
  private archiveLowK = 1;
  /** The checkpoint the current view started from (NV-PROPOSE stableK and digest). */
  private viewBase: { k: number; digest: Buffer };
  private fetchTimerArmed = false;
  private fetchPeer: number;
  /**
   * BLOCKS that did not reproduce the certified digest we fetch to. After one, we fetch from our
   * own certified base instead (rebaseOnCertified): our speculative executions above it may be
   * a branch the others abandoned, which no block from a peer chains onto.
   */
  private fetchMisses = 0;
  /**
   * Highest k seen in any PROPOSE, SUPPORT or CHECKPOINT, of any view (evidence that others
   * progressed: a hint to probe, never trusted for anything else), and when we last executed.
   */
  private maxSeenK = 0;
  private lastProgressMs = 0;

  // --- failure detection (§3.3.1)
  /** Client requests received directly (the client broadcast them) and awaiting execution, oldest first. */
  private readonly forwarded = new Map<number, { request: ClientRequest; deadlineMs: number }>();
  /** Executed requests clients keep re-sending: since when (noteUnfinished). */
  private readonly unfinished = new Map<number, { reqNo: number; sinceMs: number }>();
  /** Failure detection waits until here while we fetch (onViewChangeTimer), and which request we probed for. */
  private deferFailureUntilMs = -Infinity;
  private probedFor = '';
  /** Deadline the `vc` timer is armed for, if armed. */
  private vcTimerDeadlineMs: number | undefined = undefined;

  // --- view change
  /** VC-REQUESTs by view and sender (ours included). */
  private readonly vcRequests = new Map<number, Map<number, VcRecord>>();
  /** VC-ACKs we received (only the next primary keeps them): view -> `${q}:${hex}` -> acknowledgers. */
  private readonly vcAcks = new Map<number, Map<string, Set<number>>>();
  /** view -> `${acker}:${q}`: one acknowledgement per acknowledger per request sender. */
  private readonly vcAckSeen = new Map<number, Set<string>>();
  /** VC-ACKs we sent: view -> `${q}:${hex}`. */
  private readonly vcAcked = new Map<number, Set<string>>();
  /** NV-PROPOSEs waiting for VC-REQUESTs we need to validate them. */
  private readonly nvPending = new Map<number, NvPropose>();
  /** The NV-PROPOSE we validated (or built) and now collect NV-ACKs for. */
  private nvAccepted: (NvRecord & { view: number }) | undefined = undefined;
  /** view -> acknowledger -> digest hex of the NV-PROPOSE it acknowledged. */
  private readonly nvAcks = new Map<number, Map<number, string>>();
  /** Half-periods of the `nv` timer that passed with nf VC-REQUESTs for our view in. */
  private nvReadyHalves = 0;
  /** The last view we proposed as new primary. */
  private nvProposedView = -1;
  /**
   * The NV-PROPOSE of the view we entered last, with our own VC-REQUEST that asked for it (if
   * any); and when we last re-sent our part of one to each replica.
   */
  private enteredProposal: { msg: NvPropose; digest: Buffer; ownRequest: VcRequest | undefined } | undefined = undefined;
  private readonly helpedAtMs = new Map<number, number>();
  /** Claimed checkpoints above our execution that blocks chained onto our ledger confirmed: k -> digest hex. */
  private readonly extendedClaims = new Map<number, Set<string>>();
  /** `${view}:${replica}`: VC-REQUESTs whose claimed checkpoint we asked blocks for. */
  private readonly claimFetches = new Set<string>();
  /**
   * Uncertified blocks of the current view others sent us (voteTail): k -> `${digest hex}` ->
   * the entry and who sent it. Bounded: k within two windows above our execution, n variants per k.
   */
  private readonly tailVotes = new Map<number, Map<string, { entry: ExecutionEntry; digest: Buffer; senders: Set<number> }>>();
  /**
   * Blocks up to here were executed through voteTail during a view change, after our VC-REQUEST
   * for the view went out: that request does not list them, so we send no INFORM for them (a
   * client must not count us among the nf replicas that hold them: Proposition 3.5 needs every
   * INFORM sender's VC-REQUEST to list what it informed of), and stop below the next checkpoint
   * (our CHECKPOINT vote would vouch for them too). Once we entered a view, its E' kept them (or
   * we rolled them back) and any later VC-REQUEST lists them: a client that re-sends its request
   * gets the INFORM then. (Muted for good, the clients of those batches could lack nf INFORMs and
   * force view change after view change: seed 20053 of primary-in-the-dark.)
   */
  private muteTailK = 0;

  constructor(
    options: ReplicaOptions,
    private readonly deps: ReplicaDeps,
  ) {
    const q = quorums(options.n);
    if (!Number.isInteger(options.id) || options.id < 0 || options.id >= options.n)
      throw new RangeError(`replica id ${options.id} outside 0..${options.n - 1}`);
    if (!Number.isInteger(options.windowK) || options.windowK < options.checkpointIntervalK) {
      throw new RangeError(`windowK (${options.windowK}) must be an integer >= checkpointIntervalK (${options.checkpointIntervalK})`);
    }
    this.id = options.id;
    this.n = q.n;
    this.f = q.f;
    this.nf = q.nf;
    this.crypto = deps.crypto;
    this.windowK = options.windowK;
    const archiveK = options.extra?.['archiveK'];
    this.archiveK = typeof archiveK === 'number' && Number.isInteger(archiveK) && archiveK >= 0 ? archiveK : 2 * options.windowK;
    this.baseTimeoutMs = options.viewChangeTimeoutMs;
    this.store = new YcsbStore(options.records, options.valueBytes);
    this.ledger = new Ledger(deps.crypto, 0);
    // Speculative: PoE executes before it knows the order is final and may roll back (§3.3.5).
    this.executor = new Executor(this.store, this.ledger, true);
    this.checkpoints = new CheckpointTracker(this.nf, options.checkpointIntervalK);
    this.futureMax = this.windowK * this.n;
    this.stable = { k: 0, digest: Buffer.from(this.ledger.hashAt(0)) };
    this.viewBase = this.stable;
    this.fetchPeer = this.id;
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: this.view,
      executedK: this.executor.executedK,
      stableK: this.stableK,
      inViewChange: this.inViewChange,
      logEntries: this.slots.size,
    };
  }

  step(input: ReplicaInput<PoeMessage>, nowMs: number): ReplicaOutput<PoeMessage>[] {
    this.nowMs = nowMs;
    this.out = [];
    switch (input.kind) {
      case 'start':
        break;
      case 'message':
        this.onMessage(input.from, input.msg);
        break;
      case 'timer':
        this.onTimer(input.name);
        break;
    }
    this.armViewChangeTimer();
    this.armFetchTimer();
    return this.out;
  }

  // -------------------------------------------------------------------------------------
  // Plumbing

  private get stableK(): number {
    return this.stable.k;
  }

  private get stableDigest(): Buffer {
    return this.stable.digest;
  }

  private get timeoutMs(): number {
    return this.baseTimeoutMs * 2 ** this.backoffExp;
  }

  private isPrimary(): boolean {
    return primaryOf(this.view, this.n) === this.id;
  }

  private broadcast(msg: PoeMessage): void {
    this.out.push({ kind: 'broadcast', msg });
  }

  private send(to: Peer, msg: PoeMessage): void {
    this.out.push({ kind: 'send', to, msg });
  }

  private event(event: ReplicaEvent): void {
    this.out.push({ kind: 'event', event });
  }

  private reject(reason: string, from: Peer): void {
    this.event({ name: 'rejected', reason, from });
  }

  /** A client request is acceptable: known client, valid Ed25519 signature, keys inside the table. */
  private validRequest(req: ClientRequest): boolean {
    if (isNoop(req)) return false;
    const verifier = this.deps.clientVerifier(req.origin);
    return verifier !== undefined && this.store.validWrites(req.writes) && verifier.verify(req.body, req.signature);
  }

  private onMessage(from: Peer, msg: PoeMessage): void {
    if (isClientPeer(from)) {
      if (msg.type === MSG_REQUEST) this.onRequest(from, msg);
      else this.reject(`message type ${msg.type} from a client`, from);
      return;
    }
    if (!Number.isInteger(from) || from < 0 || from >= this.n || from === this.id) {
      this.reject('unknown sender', from);
      return;
    }
    switch (msg.type) {
      case MSG_REQUEST:
        this.onRequest(from, msg);
        break;
      case MSG_PROPOSE:
        this.onPropose(from, msg);
        break;
      case MSG_SUPPORT:
        this.onSupport(from, msg);
        break;
      case MSG_CHECKPOINT:
        this.onCheckpoint(from, msg);
        break;
      case MSG_VC_REQUEST:
        this.onViewChangeRequest(from, msg);
        break;
      case MSG_VC_ACK:
        this.onViewChangeAck(from, msg);
        break;
      case MSG_NV_PROPOSE:
        this.onNewViewPropose(from, msg);
        break;
      case MSG_NV_ACK:
        this.onNewViewAck(from, msg);
        break;
      case MSG_FETCH:
        this.onFetch(from, msg);
        break;
      case MSG_BLOCKS:
        this.onBlocks(from, msg);
        break;
      default:
        this.reject(`unexpected message type ${msg.type}`, from);
    }
  }

  private onTimer(name: string): void {
    if (name === POE_TIMERS.viewChange) this.onViewChangeTimer();
    else if (name === POE_TIMERS.newView) this.onNewViewTimer();
    else if (name === POE_TIMERS.fetch) this.onFetchTimer();
  }

  // -------------------------------------------------------------------------------------
  // Client requests (Figure 3, lines 1, 6; §3.2 last paragraphs)

  /**
   * A REQUEST from a client, or one a backup forwarded. Executed already: re-send the INFORM.
   * At the primary: propose it unless it is in flight. At a backup (the client broadcast it
   * after a timeout): forward it to the primary and expect progress on it (§3.3.1 (1)).
   */
  private onRequest(from: Peer, req: ClientRequest): void {
    if (!this.validRequest(req)) {
      this.reject('invalid client request', from);
      return;
    }
    if (this.executor.isExecuted(req)) {
      this.resendInform(req);
      // The client (or a backup forwarding for it) did not see nf INFORMs: help the others execute it.
      if (this.isPrimary() && !this.inViewChange) {
        const k = this.informK.get(req.clientId);
        if (k !== undefined && this.executor.lastExecuted(req.clientId) === req.reqNo) this.retransmit(k);
      } else if (isClientPeer(from)) {
        this.noteUnfinished(req);
      }
      return;
    }
    if (this.isPrimary() && !this.inViewChange) {
      this.proposeOrQueue(req);
      return;
    }
    // Only clients' own broadcasts start a timer here; a forward that reached a non-primary is stale.
    if (!isClientPeer(from)) return;
    const known = this.forwarded.get(req.clientId);
    if (known && known.request.reqNo >= req.reqNo) {
      if (!this.inViewChange) this.send(primaryOf(this.view, this.n), known.request);
      return;
    }
    if (!known && this.forwarded.size >= FORWARDED_MAX) {
      this.reject('forwarded-request table full', from);
      return;
    }
    // Delete first so the map stays ordered by deadline (oldest first).
    this.forwarded.delete(req.clientId);
    this.forwarded.set(req.clientId, { request: req, deadlineMs: this.nowMs + this.timeoutMs });
    if (!this.inViewChange) this.send(primaryOf(this.view, this.n), req);
  }

  /**
   * A client keeps re-sending a request we executed: fewer than nf replicas did, so "normal-case
   * operations toward executing a client request" (§3.3.1 (1)) are not succeeding. If nothing
   * at all executed here for a whole timeout since its first re-send, we detect failure of the
   * primary. (Without this, replicas that executed a request never suspect anything while the
   * rest cannot catch up, e.g. one of them halted in a view change nobody joined.) The progress
   * condition keeps a client replaying an old request from forcing view changes on a busy system.
   */
  private noteUnfinished(req: ClientRequest): void {
    if (this.inViewChange || this.executor.lastExecuted(req.clientId) !== req.reqNo) return;
    const seen = this.unfinished.get(req.clientId);
    if (!seen || seen.reqNo !== req.reqNo) {
      if (!seen && this.unfinished.size >= FORWARDED_MAX) return;
      this.unfinished.set(req.clientId, { reqNo: req.reqNo, sinceMs: this.nowMs });
      return;
    }
    if (this.nowMs - seen.sinceMs >= this.timeoutMs && this.nowMs - this.lastProgressMs >= this.timeoutMs) {
      this.unfinished.clear();
      this.startViewChange(this.view);
    }
  }

  /** During a view change, no INFORM for k (see muteTailK). */
  private muted(k: number): boolean {
    return this.inViewChange && k <= this.muteTailK;
  }

  /** Re-sends the INFORM of a client's latest executed request (the client timed out and broadcast it). */
  private resendInform(req: ClientRequest): void {
    const k = this.informK.get(req.clientId);
    if (k === undefined || k > this.ledger.height || this.executor.lastExecuted(req.clientId) !== req.reqNo || this.muted(k)) return;
    this.send(clientPeer(req.origin), {
      type: MSG_INFORM,
      view: this.ledger.viewAt(k),
      k,
      // Copies: ledger columns are reused after a rollback.
      digest: Buffer.from(this.ledger.digestAt(k)),
      clientId: req.clientId,
      reqNo: req.reqNo,
      result: Buffer.from(this.ledger.hashAt(k)),
    });
  }

  private windowFull(): boolean {
    return this.nextK > this.stableK + this.windowK;
  }

  /**
   * Retransmission, driven by client timeouts (the paper assumes reliable links; the simulator
   * and a crashing primary do not provide them): the primary re-broadcasts the PROPOSE for k,
   * and backups answer a repeated PROPOSE by re-broadcasting their SUPPORT (onPropose), so
   * replicas that lost a PROPOSE or SUPPORT can view-commit. At most once per quarter timeout.
   */
  private retransmit(k: number): void {
    const slot = this.slots.get(k);
    if (!slot?.request || slot.view !== this.view) return;
    if (this.nowMs - slot.resentAtMs < this.retryIntervalMs) return;
    slot.resentAtMs = this.nowMs;
    this.broadcast({ type: MSG_PROPOSE, view: this.view, k, request: slot.request });
  }

  private proposeOrQueue(req: ClientRequest): void {
    if (req.reqNo <= (this.proposedReqNo.get(req.clientId) ?? -1)) {
      // In flight: the client timed out, so some replicas may have lost its messages.
      const k = this.proposedK.get(req.clientId);
      if (k !== undefined && req.reqNo === this.proposedReqNo.get(req.clientId)) this.retransmit(k);
      return;
    }
    if (this.queue.length - this.queueHead === 0 && !this.windowFull()) {
      this.proposedReqNo.set(req.clientId, req.reqNo);
      this.propose(req);
      return;
    }
    if (this.queue.length - this.queueHead >= QUEUE_MAX) {
      this.reject('primary queue full', clientPeer(req.origin));
      return;
    }
    this.proposedReqNo.set(req.clientId, req.reqNo);
    this.queue.push(req);
  }

  /** Proposes queued requests while the window has room. */
  private drainQueue(): void {
    if (!this.isPrimary() || this.inViewChange) return;
    while (this.queueHead < this.queue.length && !this.windowFull()) {
      const req = this.queue[this.queueHead++]!;
      if (!this.executor.isExecuted(req)) this.propose(req);
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  /** Figure 3, lines 7-8. The PROPOSE is also the primary's SUPPORT (§3.5 (2)). */
  private propose(req: ClientRequest): void {
    const k = this.nextK++;
    const slot = this.newSlot(this.view);
    slot.request = req;
    slot.digest = requestDigest(this.crypto, req);
    slot.voted[this.id] = 1;
    slot.matching = 1;
    slot.resentAtMs = this.nowMs;
    this.slots.set(k, slot);
    if (k > this.maxSeenK) this.maxSeenK = k;
    this.proposedK.set(req.clientId, k);
    this.broadcast({ type: MSG_PROPOSE, view: this.view, k, request: req });
  }

  /**
   * SUPPORTs that view-commit a proposal (Figure 3, line 15: nf). A seam for the simulator's
   * deliberately broken variants (infra/sim/broken.test.ts), which must be caught; never
   * overridden in production.
   */
  protected supportQuorum(): number {
    return this.nf;
  }

  /**
   * The NV-PROPOSE built from `records` (Figure 5, lines 13-14), for proposing and for full
   * validation alike. A seam for the simulator's deliberately broken variants, like supportQuorum.
   */
  protected newViewProposal(view: number, records: readonly VcRecord[]): NvPropose {
    return buildNewView(this.crypto, view, records);
  }

  private newSlot(view: number): Slot {
    return {
      view,
      request: undefined,
      digest: undefined,
      voted: new Uint8Array(this.n),
      early: undefined,
      matching: 0,
      committed: false,
      resentAtMs: -Infinity,
    };
  }

  // -------------------------------------------------------------------------------------
  // Normal case (Figure 3, lines 10-23)

  /**
   * Whether a PROPOSE or SUPPORT of view w is processed now. Messages of a view we are about
   * to enter are kept and replayed on entry (a faster replica may support before we entered).
   */
  private admitNormal(from: number, msg: Propose | Support): boolean {
    if (msg.k > this.maxSeenK && msg.k <= this.lowWatermarkK + 4 * this.windowK + this.archiveK) this.maxSeenK = msg.k;
    const w = msg.view;
    if (w === this.view && !this.inViewChange) return true;
    if (w === this.view + 1 && this.future.length < this.futureMax) {
      this.future.push({ from, msg });
    } else if (w > this.view + 1) {
      this.reject('message for a future view', from);
    }
    // Older views, or the view whose failure we are handling (normal case halted, Figure 5 line 2): dropped.
    return false;
  }

  /**
   * The window for accepting PROPOSE and SUPPORT. Its low end is what we have both executed and
   * seen stable: a replica whose checkpoint became stable through others' votes before it
   * executed that far still needs the late messages. Its high end leaves a second window of
   * slack over the primary's (which proposes up to stableK + windowK), because our checkpoint
   * may lag the primary's. Memory stays bounded by 2 * windowK slots.
   */
  private inWindow(k: number): boolean {
    return k > this.viewStartK && k > this.lowWatermarkK && k <= this.lowWatermarkK + 2 * this.windowK && k <= this.gcK + 3 * this.windowK;
  }

  private get lowWatermarkK(): number {
    return Math.min(this.stableK, this.executor.executedK);
  }

  /** Figure 3, line 10: support the first valid PROPOSE for (v, k) from the primary of the current view. */
  private onPropose(from: number, m: Propose): void {
    if (!this.admitNormal(from, m)) return;
    if (from !== primaryOf(m.view, this.n)) {
      this.reject('PROPOSE from a non-primary', from); // condition (2)
      return;
    }
    if (!this.inWindow(m.k)) {
      if (m.k > this.lowWatermarkK + 2 * this.windowK) this.reject('PROPOSE outside the window', from);
      return;
    }
    let slot = this.slots.get(m.k);
    if (slot?.request) {
      // Condition (3): one proposal per (v, k). A different one is the primary equivocating.
      if (!requestDigest(this.crypto, m.request).equals(slot.digest!)) this.reject('equivocating PROPOSE', from);
      // The same one again is a retransmission: others may lack our SUPPORT.
      else this.broadcast({ type: MSG_SUPPORT, view: m.view, k: m.k, digest: slot.digest! });
      return;
    }
    if (!this.validRequest(m.request)) {
      this.reject('PROPOSE with an invalid client request', from);
      return;
    }
    if (!slot) {
      slot = this.newSlot(m.view);
      this.slots.set(m.k, slot);
      if (m.k > this.maxSeenK) this.maxSeenK = m.k;
    }
    const digest = requestDigest(this.crypto, m.request);
    slot.request = m.request;
    slot.digest = digest;
    slot.voted[from] = 1;
    slot.voted[this.id] = 1;
    // The primary's PROPOSE counts as its SUPPORT (§3.5 (2)), ours is the one we send now.
    slot.matching = 2;
    if (slot.early) {
      for (const e of slot.early) if (e.from !== from && e.digest.equals(digest)) slot.matching++;
      slot.early = undefined;
    }
    this.broadcast({ type: MSG_SUPPORT, view: m.view, k: m.k, digest }); // lines 12-13
    this.checkViewCommit(m.k, slot);
  }

  /** Figure 3, line 15: count SUPPORTs, one per replica per (v, k); early ones wait for the PROPOSE. */
  private onSupport(from: number, m: Support): void {
    if (!this.admitNormal(from, m)) return;
    if (!this.inWindow(m.k)) {
      if (m.k > this.lowWatermarkK + 2 * this.windowK) this.reject('SUPPORT outside the window', from);
      return;
    }
    let slot = this.slots.get(m.k);
    if (!slot) {
      slot = this.newSlot(m.view);
      this.slots.set(m.k, slot);
      if (m.k > this.maxSeenK) this.maxSeenK = m.k;
    }
    if (slot.voted[from]) {
      if (slot.digest && !slot.digest.equals(m.digest)) this.reject('second SUPPORT for the same (v, k)', from);
      return;
    }
    slot.voted[from] = 1;
    if (!slot.digest) {
      (slot.early ??= []).push({ from, digest: m.digest });
      return;
    }
    if (!slot.digest.equals(m.digest)) return; // supports another proposal: does not count (line 15)
    slot.matching++;
    this.checkViewCommit(m.k, slot);
  }

  /** Figure 3, lines 15-17: nf matching SUPPORTs from distinct replicas, and we supported it too. */
  private checkViewCommit(k: number, slot: Slot): void {
    if (slot.committed || slot.matching < this.supportQuorum() || !slot.request) return;
    slot.committed = true;
    this.executor.commit(k, slot.view, slot.request, slot.digest!);
    this.executeReady();
  }

  /** Figure 3, lines 19-22: execute view-committed batches in order, INFORM each client. */
  private executeReady(): void {
    const done = this.executor.drain();
    if (done.length === 0) return;
    this.lastProgressMs = this.nowMs;
    for (const ex of done) this.afterExecute(ex);
    this.collectGarbage();
  }

  private afterExecute(ex: Execution): void {
    const req = ex.request;
    this.event({ name: 'executed', k: ex.k, view: ex.view, txns: ex.duplicate ? 0 : req.writes.length });
    if (!isNoop(req)) {
      const fwd = this.forwarded.get(req.clientId);
      if (fwd && fwd.request.reqNo <= req.reqNo) this.forwarded.delete(req.clientId);
      const proposed = this.proposedReqNo.get(req.clientId);
      if (proposed !== undefined && proposed <= req.reqNo) {
        this.proposedReqNo.delete(req.clientId);
        this.proposedK.delete(req.clientId);
      }
      if (!ex.duplicate) this.informK.set(req.clientId, ex.k);
      // Muted: no INFORM while our VC-REQUEST does not list k; a re-sent request gets it once we entered a view.
      if (!ex.duplicate && !this.muted(ex.k)) {
        this.send(clientPeer(req.origin), {
          type: MSG_INFORM,
          view: ex.view,
          k: ex.k,
          digest: ex.digest,
          clientId: req.clientId,
          reqNo: req.reqNo,
          result: ex.blockHash,
        });
      }
    }
    if (this.checkpoints.isCheckpoint(ex.k)) {
      this.broadcast(this.checkpoints.makeCheckpoint(this.id, ex.k, ex.blockHash));
      this.addCheckpointVote(this.id, ex.k, ex.blockHash);
    }
  }

  // -------------------------------------------------------------------------------------
  // Checkpoints and garbage collection (§3.5 last paragraph)

  private onCheckpoint(from: number, m: Checkpoint): void {
    if (m.replica !== from) {
      this.reject('CHECKPOINT naming another replica', from);
      return;
    }
    if (m.k > this.maxSeenK && m.k <= this.lowWatermarkK + 4 * this.windowK + this.archiveK) this.maxSeenK = m.k;
    this.addCheckpointVote(from, m.k, m.stateDigest);
  }

  private addCheckpointVote(from: number, k: number, digest: Buffer): void {
    // Votes as far ahead as a replica can still catch up from (the archive): a replica behind
    // must learn where the others are. Bounded, so a faulty sender cannot fill memory.
    const stable = this.checkpoints.add(from, k, digest, this.stableK + 2 * this.windowK + this.archiveK);
    // The vote that completed the quorum carries the certified digest.
    if (stable !== undefined && stable > this.stableK) this.makeStable(stable, digest);
  }

  private makeStable(k: number, digest: Buffer): void {
    this.stable = { k, digest: Buffer.from(digest) };
    this.event({ name: 'checkpointStable', k });
    this.collectGarbage();
    this.drainQueue();
    // A request claiming this checkpoint may now be acknowledged (see canAcknowledge).
    if (this.inViewChange) this.acknowledgeAll();
  }

  /**
   * A non-faulty replica claims a checkpoint stable only after nf matching CHECKPOINTs, so f+1
   * distinct replicas claiming the same (k, digest) in their VC-REQUESTs certify it. This lets a
   * replica whose CHECKPOINTs from a crashed primary were lost catch up (fetch) and acknowledge
   * the others' requests during a view change.
   */
  private adoptClaimedCheckpoint(): void {
    const claims = new Map<string, { k: number; digest: Buffer; senders: Set<number> }>();
    for (const byView of this.vcRequests.values()) {
      for (const rec of byView.values()) {
        const { stableK, stableDigest, replica } = rec.msg;
        if (stableK <= this.stableK || replica === this.id) continue;
        const key = `${stableK}:${stableDigest.toString('hex')}`;
        let c = claims.get(key);
        if (!c) {
          c = { k: stableK, digest: stableDigest, senders: new Set() };
          claims.set(key, c);
        }
        c.senders.add(replica);
      }
    }
    let best: { k: number; digest: Buffer } | undefined;
    for (const c of claims.values()) if (c.senders.size >= this.f + 1 && (!best || c.k > best.k)) best = c;
    if (best) this.makeStable(best.k, best.digest);
  }

  /**
   * Drops per-k state up to the stable checkpoint once we executed that far and our ledger
   * agrees with the certified digest. A replica behind the checkpoint still needs its slots; one
   * that executed a branch the others abandoned (it was left out of a view change) must keep its
   * undo records to roll that branch back. The requests move to a bounded archive for FETCH.
   */
  private collectGarbage(): void {
    const c = this.stableK;
    if (c <= this.gcK || this.executor.executedK < c || !this.ledger.hashAt(c).equals(this.stableDigest)) return;
    for (let k = this.gcK + 1; k <= c; k++) {
      const slot = this.slots.get(k);
      if (slot?.request) this.archive.set(k, slot.request);
      this.slots.delete(k);
    }
    for (; this.archiveLowK <= c - this.archiveK; this.archiveLowK++) this.archive.delete(this.archiveLowK);
    this.executor.forget(c);
    this.gcK = c;
  }

  // -------------------------------------------------------------------------------------
  // Block recovery (paper §4(6))

  /** A certified point we have not executed to: the stable checkpoint, or the base of the view we entered. */
  private fetchTarget(): { k: number; digest: Buffer } | undefined {
    const executed = this.executor.executedK;
    let target: { k: number; digest: Buffer } | undefined;
    if (this.stableK > executed) target = { k: this.stableK, digest: this.stableDigest };
    if (this.viewBase.k > executed && (!target || this.viewBase.k > target.k)) target = this.viewBase;
    return target;
  }

  private get retryIntervalMs(): number {
    return Math.max(1, this.baseTimeoutMs / RETRY_DIVISOR);
  }

  /** Others proposed or supported beyond what we executed, and we have not executed anything for a while. */
  private seemsBehind(): boolean {
    return this.maxSeenK > this.executor.executedK && this.nowMs - this.lastProgressMs >= this.retryIntervalMs;
  }

  /**
   * End of every step: a replica behind a certified point starts fetching after a short delay
   * (it may just be slow); one that merely seems behind checks again after the same delay.
   */
  private armFetchTimer(): void {
    if (this.fetchTimerArmed || (!this.fetchTarget() && this.maxSeenK <= this.executor.executedK)) return;
    this.fetchTimerArmed = true;
    this.out.push({ kind: 'setTimer', name: POE_TIMERS.fetch, afterMs: this.retryIntervalMs });
  }

  private onFetchTimer(): void {
    this.fetchTimerArmed = false;
    const fromK = this.executor.executedK + 1;
    const target = this.fetchTarget();
    if (target) {
      // One peer at a time, rotating: blocks are large, and any single correct peer suffices.
      do this.fetchPeer = (this.fetchPeer + 1) % this.n;
      while (this.fetchPeer === this.id);
      const from = this.fetchMisses > 0 && this.gcK < this.executor.executedK ? this.gcK + 1 : fromK;
      this.send(this.fetchPeer, { type: MSG_FETCH, fromK: from, toK: target.k });
    } else if (this.seemsBehind()) {
      // We may have lost the CHECKPOINTs that would tell us where to fetch to: ask everybody for
      // their stable checkpoint, and for the blocks of this view we lack above it (voteTail):
      // after the clients' last batches nobody retransmits, and no checkpoint may ever certify them.
      // Also during a view change: a replica that gave up alone on a view the others entered
      // (its NV-PROPOSE and NV-ACKs lost) catches up on that view's blocks (voteTail).
      const toK = Math.min(this.maxSeenK, fromK + this.windowK - 1);
      this.broadcast({ type: MSG_FETCH, fromK, toK });
    }
  }

  /**
   * Serves executed blocks from fromK on, consecutively, as far as we still hold them; and
   * repeats our CHECKPOINT for the highest checkpoint we executed if the asker is behind it (its
   * copy may have been lost), so that it can learn where to fetch to.
   */
  private onFetch(from: number, m: Fetch): void {
    if (m.toK < m.fromK - 1 || m.fromK < 1 || m.toK - m.fromK >= 4 * this.windowK + this.archiveK) {
      this.reject('FETCH with an invalid range', from);
      return;
    }
    // Our vote for the highest checkpoint we executed (a re-send of our CHECKPOINT).
    const c = this.executor.executedK - (this.executor.executedK % this.checkpoints.intervalK);
    if (c >= m.fromK && c > 0) this.send(from, this.checkpoints.makeCheckpoint(this.id, c, Buffer.from(this.ledger.hashAt(c))));
    const entries: ExecutionEntry[] = [];
    const last = Math.min(m.toK, this.executor.executedK);
    for (let k = m.fromK; k <= last; k++) {
      const request = this.slots.get(k)?.request ?? this.archive.get(k);
      if (!request || !requestDigest(this.crypto, request).equals(this.ledger.digestAt(k))) break;
      entries.push({ view: this.ledger.viewAt(k), k, request });
    }
    if (entries.length > 0) this.send(from, { type: MSG_BLOCKS, entries });
  }

  /**
   * Fetched blocks, used two ways. Chained onto our ledger, if they reproduce the certified
   * digest at our fetch target, they are the batches nf replicas executed (the chain is
   * collision resistant), whoever sent them: we execute them. Otherwise they may let us check a
   * checkpoint another replica claims in its VC-REQUEST (extendClaims); those we do not execute.
   */
  private onBlocks(from: number, m: Blocks): void {
    const executed = this.executor.executedK;
    const entries = m.entries;
    if (entries.length === 0) return;
    const first = entries[0]!.k;
    for (let i = 0; i < entries.length; i++) if (entries[i]!.k !== first + i) return;
    const target = this.fetchTarget();
    if (target && first === this.gcK + 1 && first <= executed) {
      this.rebaseOnCertified(from, entries, target);
      return;
    }
    if (first !== executed + 1) return;
    if (target && target.k <= executed + entries.length && this.executeCertified(entries.slice(0, target.k - executed), target.digest)) {
      // Our state grew: requests we could not check before may be acknowledged now.
      if (this.inViewChange) this.acknowledgeAll();
      return;
    }
    if (this.extendClaims(entries)) this.acknowledgeAll();
    else if (target) {
      this.fetchMisses++;
      this.reject('BLOCKS do not reproduce the certified checkpoint', from);
    } else this.voteTail(from, entries);
  }

  /**
   * Blocks from our certified base (gcK: our ledger there is the stable digest) up to the fetch
   * target. If they reproduce the target's certified digest, they are the chain nf replicas hold,
   * and where our ledger leaves it we executed a branch the others abandoned (a primary cut off
   * while the others changed view goes on speculating alone, paper §3.3.5): we roll back to where
   * they part and execute the certified blocks. What we roll back is not in the certified chain,
   * so no client accepted it (Proposition 3.5). Found by the simulator: the cut-off primary
   * otherwise fetched blocks chained onto its own branch forever.
   */
  private rebaseOnCertified(from: number, entries: readonly ExecutionEntry[], target: { k: number; digest: Buffer }): void {
    const base = entries[0]!.k - 1;
    const upto = target.k - base;
    if (entries.length < upto) return;
    const digests = entries.slice(0, upto).map((e) => requestDigest(this.crypto, e.request));
    let prev = this.ledger.hashAt(base);
    for (let i = 0; i < upto; i++) prev = blockHash(this.crypto, entries[i]!.k, digests[i]!, entries[i]!.view, prev);
    if (!prev.equals(target.digest)) {
      this.reject('BLOCKS do not reproduce the certified checkpoint', from);
      return;
    }
    const executed = this.executor.executedK;
    let keep = executed;
    for (let k = base + 1; k <= executed; k++) {
      const i = k - base - 1;
      if (this.ledger.viewAt(k) !== entries[i]!.view || !this.ledger.digestAt(k).equals(digests[i]!)) {
        keep = k - 1;
        break;
      }
    }
    if (keep < executed) {
      this.executor.rollbackTo(keep);
      this.event({ name: 'rollback', fromK: executed, toK: keep });
      for (const [clientId, k] of this.informK) if (k > keep) this.informK.delete(clientId);
      for (const k of [...this.slots.keys()]) if (k > keep) this.slots.delete(k);
    }
    this.fetchMisses = 0;
    if (this.executeCertified(entries.slice(keep - base, upto), target.digest) && this.inViewChange) this.acknowledgeAll();
  }

  /**
   * Blocks of the current view above anything certified, from replicas that executed them: once
   * f+1 distinct replicas sent the same block for k, a non-faulty one view-committed it (nf
   * SUPPORTs in this view; Proposition 3.2: no other proposal for (v, k) can be), which is what
   * our own view-commit would have needed, so we execute it, speculatively like any other. This
   * lets a replica that lost the last SUPPORTs of a run catch up, when no client retransmits and
   * no later checkpoint certifies them (the PBFT core's catch-up does the same).
   */
  private voteTail(from: number, entries: readonly ExecutionEntry[]): void {
    const executed = this.executor.executedK;
    // During a view change, up to (not including) the next checkpoint: see muteTailK.
    const limitK = this.inViewChange ? executed - (executed % this.checkpoints.intervalK) + this.checkpoints.intervalK - 1 : executed + 2 * this.windowK;
    for (const e of entries) {
      if (e.view !== this.view || e.k <= this.viewStartK || e.k > limitK) break;
      if (isNoop(e.request) || !this.validRequest(e.request)) break;
      const digest = requestDigest(this.crypto, e.request);
      let byDigest = this.tailVotes.get(e.k);
      if (!byDigest) {
        byDigest = new Map();
        this.tailVotes.set(e.k, byDigest);
      }
      const key = digest.toString('hex');
      let vote = byDigest.get(key);
      if (!vote) {
        if (byDigest.size >= this.n) break;
        vote = { entry: e, digest, senders: new Set() };
        byDigest.set(key, vote);
      }
      vote.senders.add(from);
    }
    let committed = false;
    for (let k = executed + 1; ; k++) {
      const agreed = [...(this.tailVotes.get(k)?.values() ?? [])].find((v) => v.senders.size >= this.f + 1);
      if (!agreed) break;
      const own = this.slots.get(k);
      if (own?.committed) {
        // View-committed here already (waiting for an earlier k): it can only be the same batch.
        if (!own.digest?.equals(agreed.digest)) break;
        continue;
      }
      const slot = this.newSlot(this.view);
      slot.request = agreed.entry.request;
      slot.digest = agreed.digest;
      slot.committed = true;
      this.slots.set(k, slot);
      this.executor.commit(k, this.view, agreed.entry.request, agreed.digest);
      committed = true;
      if (this.inViewChange) this.muteTailK = k;
    }
    if (!committed) return;
    this.executeReady();
    for (const k of [...this.tailVotes.keys()]) if (k <= this.executor.executedK) this.tailVotes.delete(k);
  }

  /** Executes `entries` (from executedK + 1 on) if they chain onto our ledger to `digest`. */
  private executeCertified(entries: readonly ExecutionEntry[], digest: Buffer): boolean {
    let prev = this.ledger.headHash;
    const digests: Buffer[] = [];
    for (const e of entries) {
      const d = requestDigest(this.crypto, e.request);
      digests.push(d);
      prev = blockHash(this.crypto, e.k, d, e.view, prev);
    }
    if (!prev.equals(digest)) return false;
    for (const e of entries) if (!isNoop(e.request) && !this.store.validWrites(e.request.writes)) return false;
    // Blocks of a later view than ours: the others moved on without us. What we view-committed
    // above them belongs to an abandoned view: do not execute it; and ask to leave our view, so
    // that replicas in the new one send us what let them in (helpIntoView).
    const laterView = entries.some((e) => e.view > this.view);
    if (laterView) this.executor.dropPendingAbove(entries[entries.length - 1]!.k);
    entries.forEach((e, i) => {
      const slot = this.newSlot(e.view);
      slot.request = e.request;
      slot.digest = digests[i]!;
      slot.committed = true;
      this.slots.set(e.k, slot);
      this.executor.commit(e.k, e.view, e.request, digests[i]!);
    });
    this.executeReady();
    if (laterView && !this.inViewChange) this.startViewChange(this.view);
    return true;
  }

  // -------------------------------------------------------------------------------------
  // Failure detection (§3.3.1)

  /** The earliest time at which missing progress means the primary failed, if we expect progress. */
  private failureDeadlineMs(): number | undefined {
    if (this.inViewChange || this.isPrimary()) return undefined;
    let deadline: number | undefined;
    const oldest = this.forwarded.values().next();
    if (!oldest.done) deadline = Math.max(oldest.value.deadlineMs, this.deferFailureUntilMs);
    return deadline;
  }

  /** Runs at the end of every step: arms `vc` for the earliest deadline (lazily: never cancelled early). */
  private armViewChangeTimer(): void {
    if (this.inViewChange || this.isPrimary()) return;
    const deadline = this.failureDeadlineMs();
    if (deadline === undefined) return;
    if (this.vcTimerDeadlineMs !== undefined && this.vcTimerDeadlineMs <= deadline) return;
    this.vcTimerDeadlineMs = deadline;
    this.out.push({ kind: 'setTimer', name: POE_TIMERS.viewChange, afterMs: Math.max(0, deadline - this.nowMs) });
  }

  private onViewChangeTimer(): void {
    this.vcTimerDeadlineMs = undefined;
    const deadline = this.failureDeadlineMs();
    if (deadline === undefined || deadline > this.nowMs) return;
    // Others are past a stable checkpoint we have not reached: the missing progress is ours
    // (we lost messages), not the primary's. Catch up by fetching before blaming it.
    if (this.fetchTarget()) {
      this.deferFailureUntilMs = this.nowMs + this.retryIntervalMs;
      return;
    }
    // Others' messages run ahead of what we executed: ask for their checkpoints first, once per
    // awaited request (a primary that leaves a hole for everybody is still detected).
    const oldest = this.forwarded.values().next();
    const key = oldest.done ? '' : `${oldest.value.request.clientId}:${oldest.value.request.reqNo}`;
    if (this.seemsBehind() && this.probedFor !== key) {
      this.probedFor = key;
      this.broadcast({ type: MSG_FETCH, fromK: this.executor.executedK + 1, toK: this.executor.executedK });
      this.deferFailureUntilMs = this.nowMs + 2 * this.retryIntervalMs;
      return;
    }
    this.startViewChange(this.view);
  }

  /**
   * The new-view timer ticks every half timeout while we change views. Once nf VC-REQUESTs for
   * our view are in (as in PBFT: before that, the change cannot complete and an isolated replica
   * should not run through views alone), a full timeout without entering view+1 means its
   * primary failed too (§3.3, Theorem 3.7): request the next view, with a doubled timeout.
   * Every tick re-sends our own requests: messages lost once are otherwise never sent again,
   * and replicas that hold what we miss answer a repeated request (onViewChangeRequest).
   */
  private onNewViewTimer(): void {
    if (!this.inViewChange) return;
    const ready = (this.vcRequests.get(this.view)?.size ?? 0) >= this.nf;
    if (ready && this.nvReadyHalves >= 1) {
      this.startViewChange(this.view + 1);
      return;
    }
    if (ready) this.nvReadyHalves++;
    for (const [w, byView] of this.vcRequests) {
      const own = w >= this.enteredView ? byView.get(this.id) : undefined;
      if (own) this.broadcast(own.msg);
    }
    this.out.push({ kind: 'setTimer', name: POE_TIMERS.newView, afterMs: this.timeoutMs / 2 });
  }

  // -------------------------------------------------------------------------------------
  // View change: requests and acknowledgements (Figure 5, lines 1-11)

  /** Figure 5, lines 1-4: R detected failure of the primary of view v. */
  private startViewChange(v: number): void {
    if (this.inViewChange && this.view >= v) return;
    // Moving from one view change to the next (our timer, an invalid proposal, or f+1 others
    // giving up): that view change failed, so the next waits twice as long (Theorem 3.7).
    if (this.inViewChange) this.backoffExp = Math.min(this.backoffExp + 1, BACKOFF_EXP_MAX);
    this.view = v;
    this.inViewChange = true;
    this.vcTimerDeadlineMs = undefined;
    this.nvReadyHalves = 0;
    this.out.push({ kind: 'cancelTimer', name: POE_TIMERS.viewChange });
    this.out.push({ kind: 'setTimer', name: POE_TIMERS.newView, afterMs: this.timeoutMs / 2 });
    this.event({ name: 'viewChangeStarted', view: v + 1 });
    // Halted (Figure 5, line 2): view-committed batches waiting for an earlier one no longer
    // execute (the new view decides on them); only certified blocks we fetch still do.
    this.executor.dropPendingAbove(this.executor.executedK);
    const msg: VcRequest = {
      type: MSG_VC_REQUEST,
      view: v,
      replica: this.id,
      stableK: this.stableK,
      stableDigest: this.stableDigest,
      entries: this.executionsSinceCheckpoint(),
    };
    const digest = messageDigest(this.crypto, msg);
    this.storeVcRequest({ msg, digest, hex: digest.toString('hex') });
    this.broadcast(msg);
    this.future = this.future.filter((e) => e.msg.view > v);
    this.acknowledgeAll();
    this.afterViewChangeProgress(v);
  }

  /** E (Figure 5, line 3), limited to the executions above the stable checkpoint (§3.5). */
  private executionsSinceCheckpoint(): ExecutionEntry[] {
    const entries: ExecutionEntry[] = [];
    for (let k = this.stableK + 1; k <= this.executor.executedK; k++) {
      const slot = this.slots.get(k);
      if (!slot || !slot.request) throw new Error(`poe replica ${this.id}: executed k=${k} has no slot`);
      entries.push({ view: this.ledger.viewAt(k), k, request: slot.request });
    }
    return entries;
  }

  private storeVcRequest(rec: VcRecord): void {
    const { view, replica } = rec.msg;
    let byView = this.vcRequests.get(view);
    if (!byView) {
      byView = new Map();
      this.vcRequests.set(view, byView);
    }
    byView.set(replica, rec);
    if (replica === this.id) return;
    // Keep only a sender's latest VC_REQUESTS_PER_SENDER views.
    const views: number[] = [];
    for (const [w, m] of this.vcRequests) if (m.has(replica)) views.push(w);
    if (views.length <= VC_REQUESTS_PER_SENDER) return;
    views.sort((a, b) => a - b);
    for (let i = 0; i < views.length - VC_REQUESTS_PER_SENDER; i++) this.vcRequests.get(views[i]!)!.delete(replica);
  }

  private onViewChangeRequest(from: number, m: VcRequest): void {
    if (m.replica !== from) {
      this.reject('VC-REQUEST naming another replica', from);
      return;
    }
    this.helpIntoView(from, m.view);
    if (m.view < this.enteredView) return; // stale
    if (m.view > this.view + VIEW_LOOKAHEAD) {
      this.reject('VC-REQUEST for a view too far ahead', from);
      return;
    }
    const digest = messageDigest(this.crypto, m);
    const hex = digest.toString('hex');
    const existing = this.vcRequests.get(m.view)?.get(from);
    if (existing) {
      if (existing.hex !== hex) this.reject('second, different VC-REQUEST for the same view', from);
      // Re-sent: our acknowledgement may have been lost on its way to the next primary.
      else if (primaryOf(m.view + 1, this.n) !== this.id && this.vcAcked.get(m.view)?.has(`${from}:${hex}`)) {
        this.send(primaryOf(m.view + 1, this.n), { type: MSG_VC_ACK, view: m.view, replica: from, digest });
      }
      return;
    }
    const problem = this.checkSummary(m.stableK, m.entries, m.view);
    if (problem) {
      this.reject(`VC-REQUEST: ${problem}`, from);
      return;
    }
    const rec = { msg: m, digest, hex };
    this.storeVcRequest(rec);
    this.adoptClaimedCheckpoint();
    // Its entries may let us check claims we could not check before, and its claim may be checked by others' entries.
    if (this.extendClaims(m.entries)) this.acknowledgeAll();
    this.acknowledge(rec);
    this.checkJoin();
    this.afterViewChangeProgress(m.view);
  }

  /**
   * A replica (re-)sends its request to leave view w while we hold a proposal for a later view
   * (we entered it, or validated the one for w+1 and wait for acknowledgements): it may have
   * missed what we have. Re-send our part, at most once per retransmission period and replica:
   * the primary its NV-PROPOSE (only the primary can: messages are authenticated per link), the
   * others their NV-ACK; and our own VC-REQUEST it was built from, which the replica needs to
   * validate it (§3.3.4). A replica may enter any view above the one it asked to leave.
   */
  private helpIntoView(from: number, w: number): void {
    let nv: { msg: NvPropose; digest: Buffer } | undefined;
    let ownRequest: VcRequest | undefined;
    if (this.nvAccepted?.view === w + 1) {
      nv = this.nvAccepted;
      ownRequest = this.vcRequests.get(w)?.get(this.id)?.msg;
    } else if (this.enteredProposal && this.enteredProposal.msg.view > w) {
      nv = this.enteredProposal;
      ownRequest = this.enteredProposal.ownRequest;
    }
    if (!nv) return;
    const last = this.helpedAtMs.get(from);
    if (last !== undefined && this.nowMs - last < this.retryIntervalMs) return;
    this.helpedAtMs.set(from, this.nowMs);
    if (ownRequest && nv.msg.certificate.some((c) => c.replica === this.id)) this.send(from, ownRequest);
    if (primaryOf(nv.msg.view, this.n) === this.id) this.send(from, nv.msg);
    else this.send(from, { type: MSG_NV_ACK, view: nv.msg.view, digest: nv.digest });
  }

  /**
   * Structural checks of a summary, whoever sent it: a stable checkpoint at a checkpoint
   * boundary, consecutive entries from there (Figure 5, line 9 condition 1), no more than a
   * window of them, views before `maxView`, and genuine client requests (signatures are checked
   * unless the batch is the one we hold at that k).
   */
  private checkSummary(stableK: number, entries: readonly ExecutionEntry[], maxView: number, strictlyBefore = false): string | undefined {
    if (stableK % this.checkpoints.intervalK !== 0) return 'stable checkpoint not at a checkpoint boundary';
    // A window above the sender's checkpoint, doubled: a replica whose checkpoint lags may have
    // executed a new view's E' beyond its own window.
    if (entries.length > 2 * this.windowK) return 'more entries than two windows';
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.k !== stableK + 1 + i) return 'entries not consecutive from the stable checkpoint';
      if (e.view > maxView || (strictlyBefore && e.view === maxView)) return 'entry from a later view';
      if (!this.holds(e) && !this.validRequest(e.request)) return 'entry with an invalid client request';
    }
    return undefined;
  }

  /** True if we executed or view-committed exactly this entry (so its request was verified). */
  private holds(e: ExecutionEntry): boolean {
    const digest = requestDigest(this.crypto, e.request);
    if (e.k <= this.executor.executedK) return this.ledger.viewAt(e.k) === e.view && this.ledger.digestAt(e.k).equals(digest);
    const slot = this.slots.get(e.k);
    return slot !== undefined && slot.committed && slot.view === e.view && slot.digest!.equals(digest);
  }

  /** True if we executed or view-committed something else at e.k (Figure 5, line 9 condition 3). */
  private contradicts(e: ExecutionEntry): boolean {
    if (e.k <= this.executor.executedK) return !this.holds(e);
    const slot = this.slots.get(e.k);
    return slot !== undefined && slot.committed && !this.holds(e);
  }

  /**
   * Figure 5, line 9. (1) was checked on receipt. (2) we detected failure of the primary of v
   * ourselves. (3) the entries agree with everything we executed or view-committed. Also: the
   * sender's checkpoint agrees with our own state (the checkpoint is where E' starts, so it
   * stands for every batch below it, and must hold what clients accepted).
   */
  private canAcknowledge(m: VcRequest): 'yes' | 'no' | 'needBlocks' {
    const detected = m.view < this.view || (m.view === this.view && this.inViewChange);
    if (!detected || m.view < this.enteredView) return 'no';
    for (const e of m.entries) if (this.contradicts(e)) return 'no';
    if (this.checkpointAgrees(m.stableK, m.stableDigest)) return 'yes';
    return m.stableK > this.executor.executedK ? 'needBlocks' : 'no';
  }

  /**
   * The claimed checkpoint (k, digest) is consistent with our own state: our ledger has that
   * hash at k; or k is our stable checkpoint with that certified digest; or, when we have not
   * executed that far, blocks chained onto our ledger reach that hash at k (extendClaims). We
   * never acknowledge a claim we cannot check: the replica that could refute it (one that
   * executed a batch a client accepted) might be behind it too.
   */
  private checkpointAgrees(k: number, digest: Buffer): boolean {
    if (k <= this.executor.executedK) return this.ledger.hashAt(k).equals(digest);
    if (k === this.stableK && digest.equals(this.stableDigest)) return true;
    return this.extendedClaims.get(k)?.has(digest.toString('hex')) ?? false;
  }

  /**
   * Checks the claimed checkpoints above our execution against `entries` (consecutive, from at
   * most executedK + 1): chained onto our ledger, without contradicting what we view-committed,
   * do they reach the claimed hash? Returns true if a claim became verified.
   */
  private extendClaims(entries: readonly ExecutionEntry[]): boolean {
    const executed = this.executor.executedK;
    let maxClaimK = 0;
    for (const byView of this.vcRequests.values()) {
      for (const rec of byView.values())
        if (rec.msg.stableK > executed && !this.checkpointAgrees(rec.msg.stableK, rec.msg.stableDigest)) maxClaimK = Math.max(maxClaimK, rec.msg.stableK);
    }
    if (maxClaimK === 0 || entries.length === 0) return false;
    const first = entries[0]!.k;
    if (first > executed + 1 || first + entries.length - 1 < executed + 1) return false;
    const hashes: Buffer[] = [];
    let prev = this.ledger.headHash;
    for (let i = executed + 1 - first; i < entries.length && entries[i]!.k <= maxClaimK; i++) {
      const e = entries[i]!;
      if (e.k !== first + i || this.contradicts(e)) break;
      prev = blockHash(this.crypto, e.k, requestDigest(this.crypto, e.request), e.view, prev);
      hashes.push(prev);
    }
    let verified = false;
    for (const byView of this.vcRequests.values()) {
      for (const rec of byView.values()) {
        const { stableK: c, stableDigest: h } = rec.msg;
        const hash = hashes[c - executed - 1];
        if (c <= executed || !hash || !hash.equals(h) || this.checkpointAgrees(c, h)) continue;
        let set = this.extendedClaims.get(c);
        if (!set) {
          set = new Set();
          this.extendedClaims.set(c, set);
        }
        set.add(h.toString('hex'));
        verified = true;
      }
    }
    return verified;
  }

  /** Figure 5, line 10; no acknowledgement of our own request (§3.5 (3)). */
  private acknowledge(rec: VcRecord): void {
    const { view, replica } = rec.msg;
    if (replica === this.id) return;
    let sent = this.vcAcked.get(view);
    const key = `${replica}:${rec.hex}`;
    if (sent?.has(key)) return;
    let verdict = this.canAcknowledge(rec.msg);
    if (verdict === 'needBlocks' && this.requestClaimBlocks(rec.msg)) verdict = this.canAcknowledge(rec.msg);
    if (verdict !== 'yes') return;
    if (!sent) {
      sent = new Set();
      this.vcAcked.set(view, sent);
    }
    sent.add(key);
    this.recordVcAck(view, this.id, replica, rec.hex);
    this.broadcast({ type: MSG_VC_ACK, view, replica, digest: rec.digest });
  }

  /**
   * Checks a claimed checkpoint above our execution with the entries of the requests we hold;
   * failing that, asks the claimant for the blocks (once per request). True if it is verified now.
   */
  private requestClaimBlocks(m: VcRequest): boolean {
    for (const byView of this.vcRequests.values()) for (const rec of byView.values()) this.extendClaims(rec.msg.entries);
    if (this.checkpointAgrees(m.stableK, m.stableDigest)) return true;
    const key = `${m.view}:${m.replica}`;
    if (!this.claimFetches.has(key)) {
      this.claimFetches.add(key);
      this.send(m.replica, { type: MSG_FETCH, fromK: this.executor.executedK + 1, toK: m.stableK });
    }
    return false;
  }

  private acknowledgeAll(): void {
    for (const byView of this.vcRequests.values()) for (const rec of byView.values()) this.acknowledge(rec);
  }

  private recordVcAck(view: number, acker: number, replica: number, hex: string): void {
    let seen = this.vcAckSeen.get(view);
    if (!seen) {
      seen = new Set();
      this.vcAckSeen.set(view, seen);
    }
    const guard = `${acker}:${replica}`;
    if (seen.has(guard)) return;
    seen.add(guard);
    let byKey = this.vcAcks.get(view);
    if (!byKey) {
      byKey = new Map();
      this.vcAcks.set(view, byKey);
    }
    const key = `${replica}:${hex}`;
    let ackers = byKey.get(key);
    if (!ackers) {
      ackers = new Set();
      byKey.set(key, ackers);
    }
    ackers.add(acker);
  }

  private onViewChangeAck(from: number, m: VcAck): void {
    if (m.view < this.enteredView || m.view > this.view + VIEW_LOOKAHEAD || m.replica >= this.n) return;
    // Only the next primary uses acknowledgements (Figure 5, line 12); others validate NV-PROPOSE from the requests.
    if (primaryOf(m.view + 1, this.n) !== this.id) return;
    this.recordVcAck(m.view, from, m.replica, m.digest.toString('hex'));
    this.tryProposeNewView(m.view);
  }

  /**
   * Figure 5, line 6, generalised as in PBFT: when f+1 distinct replicas request view changes
   * for views we have not given up yet, one of them is non-faulty; join the highest such view
   * that f+1 of them reached.
   */
  private checkJoin(): void {
    const floor = this.inViewChange ? this.view + 1 : this.view;
    const latest = new Map<number, number>();
    for (const [w, byView] of this.vcRequests) {
      if (w < floor) continue;
      for (const q of byView.keys()) if (q !== this.id && w > (latest.get(q) ?? -1)) latest.set(q, w);
    }
    if (latest.size < this.f + 1) return;
    const views = [...latest.values()].sort((a, b) => b - a);
    this.startViewChange(views[this.f]!);
  }

  /** After any view-change message for view v: start the new-view timer, propose, or validate. */
  private afterViewChangeProgress(v: number): void {
    this.tryProposeNewView(v);
    const pending = this.nvPending.get(v + 1);
    if (pending) this.tryValidate(pending);
  }

  // -------------------------------------------------------------------------------------
  // New view (Figure 5, lines 12-22; §3.3.3 - §3.3.5)

  /**
   * Figure 5, line 12: as next primary, find nf requests for view v whose senders all
   * acknowledged each other's requests. A greedy search: drop the sender with the most missing
   * acknowledgements until the rest is complete. It retries on every new acknowledgement.
   */
  private tryProposeNewView(v: number): void {
    if (primaryOf(v + 1, this.n) !== this.id || !this.inViewChange || this.view !== v || this.nvProposedView === v + 1) return;
    const byView = this.vcRequests.get(v);
    if (!byView || byView.size < this.nf || !byView.has(this.id)) return;
    const acks = this.vcAcks.get(v);
    const members = [...byView.keys()].sort((a, b) => a - b);
    const ackersOf = new Map<number, Set<number> | undefined>();
    for (const q of members) ackersOf.set(q, acks?.get(`${q}:${byView.get(q)!.hex}`));
    const acked = (a: number, q: number): boolean => a === q || (ackersOf.get(q)?.has(a) ?? false);
    let set = members;
    for (;;) {
      if (set.length < this.nf) return;
      let worst = -1;
      let worstMissing = 0;
      for (const c of set) {
        let missing = 0;
        for (const d of set) if (!acked(c, d) || !acked(d, c)) missing++;
        if (missing === 0 || missing < worstMissing) continue;
        // Ties: keep ourselves, otherwise drop the highest id (deterministic).
        if (missing > worstMissing || worst === this.id || (c !== this.id && c > worst)) {
          worst = c;
          worstMissing = missing;
        }
      }
      if (worstMissing === 0) break;
      set = set.filter((c) => c !== worst);
    }
    // Any nf of a complete set qualify; take ourselves and the lowest ids.
    const chosen = [this.id, ...set.filter((c) => c !== this.id)].slice(0, this.nf).sort((a, b) => a - b);
    const msg = this.newViewProposal(
      v + 1,
      chosen.map((q) => byView.get(q)!),
    );
    const digest = messageDigest(this.crypto, msg);
    this.nvProposedView = v + 1;
    this.broadcast(msg);
    this.nvAccepted = { view: v + 1, msg, digest, hex: digest.toString('hex') };
    this.checkNewViewAcks(v + 1);
  }

  /** Figure 5, line 16. */
  private onNewViewPropose(from: number, m: NvPropose): void {
    if (from !== primaryOf(m.view, this.n)) {
      this.reject('NV-PROPOSE from a replica that is not the primary of that view', from);
      return;
    }
    // Never a view we asked to leave: our VC-REQUEST for it is on record and would be stale
    // once we executed more in it (Proposition 3.5 needs every request to hold all executions).
    if (m.view <= this.view || m.view > this.view + VIEW_LOOKAHEAD) return;
    if (this.nvAccepted?.view === m.view || this.nvPending.has(m.view)) return;
    this.tryValidate(m);
  }

  /** Validates a new-view proposal (§3.3.4); waits if we lack requests it is built from. */
  private tryValidate(m: NvPropose): void {
    // A proposal kept while we waited for its requests, for a view we have since asked to leave
    // (our new-view timer ran out first): never entered, as in onNewViewPropose. Found by the
    // simulator: entering it rolled back that view's own blocks, which clients had accepted.
    if (m.view <= this.view) {
      this.nvPending.delete(m.view);
      return;
    }
    const result = this.validateNewView(m);
    if (result === 'wait') {
      this.nvPending.set(m.view, m);
      return;
    }
    this.nvPending.delete(m.view);
    if (result !== 'valid') {
      this.reject(`invalid NV-PROPOSE: ${result.invalid}`, primaryOf(m.view, this.n));
      // "Otherwise, if m != m', then R detects failure of P'" (§3.3.4): ask for the view after.
      // Only while changing to that view: a replica running a healthy view does not leave it
      // because some other replica sent it a bad proposal.
      if (this.inViewChange && m.view === this.view + 1) this.startViewChange(m.view);
      return;
    }
    const digest = messageDigest(this.crypto, m);
    this.nvAccepted = { view: m.view, msg: m, digest, hex: digest.toString('hex') };
    this.broadcast({ type: MSG_NV_ACK, view: m.view, digest }); // line 18
    this.checkNewViewAcks(m.view);
  }

  /**
   * §3.3.4. Full validation if our request is in V: rebuild m' from the same requests and
   * compare. Otherwise partial validation: every request of V we hold (at least nf - f of them)
   * must be contained in E'. Either way E' must be well formed and must not roll back anything
   * at or below our garbage-collected stable state.
   */
  private validateNewView(m: NvPropose): Validation {
    const v = m.view - 1;
    const cert = m.certificate;
    if (cert.length !== this.nf) return { invalid: 'V does not have nf entries' };
    for (let i = 0; i < cert.length; i++) {
      if (cert[i]!.replica >= this.n || (i > 0 && cert[i]!.replica <= cert[i - 1]!.replica)) return { invalid: 'V not sorted by distinct replica ids' };
    }
    const problem = this.checkSummary(m.stableK, m.entries, m.view, true);
    if (problem) return { invalid: problem };
    if (this.rollbackPoint(m) < this.gcK) return { invalid: "E' contradicts our stable state" };
    const byView = this.vcRequests.get(v);
    const records: VcRecord[] = [];
    for (const c of cert) {
      const rec = byView?.get(c.replica);
      if (rec?.digest.equals(c.digest)) records.push(rec);
    }
    const mine = cert.find((c) => c.replica === this.id);
    if (mine) {
      if (records.length < cert.length) return 'wait';
      const rebuilt = this.newViewProposal(m.view, records);
      return messageDigest(this.crypto, rebuilt).equals(messageDigest(this.crypto, m)) ? 'valid' : { invalid: "m differs from the m' rebuilt from V" };
    }
    if (records.length < this.nf - this.f) return 'wait';
    for (const rec of records) {
      if (rec.msg.stableK > m.stableK) return { invalid: "a request in V has a later checkpoint than E'" };
      if (rec.msg.stableK === m.stableK && !rec.msg.stableDigest.equals(m.stableDigest)) return { invalid: "E' starts from another checkpoint state" };
      for (const e of rec.msg.entries) {
        if (e.k <= m.stableK) continue;
        const x = m.entries[e.k - m.stableK - 1];
        if (!x || x.view !== e.view || !requestDigest(this.crypto, x.request).equals(requestDigest(this.crypto, e.request))) {
          return { invalid: "E of a request in V is not contained in E'" };
        }
      }
    }
    return 'valid';
  }

  /**
   * The highest k whose execution here E' keeps (§3.3.5): everything above it is rolled back.
   * Executions above the top of E' are not in E'; the first entry that differs from our ledger
   * (batch or view) and everything after it neither.
   */
  private rollbackPoint(m: NvPropose): number {
    const executed = this.executor.executedK;
    // Our state at the base differs from the one the new view starts from: we executed a branch
    // the others abandoned. Undo as far as we can (our stable state) and fetch the rest.
    if (executed >= m.stableK && !this.ledger.hashAt(m.stableK).equals(m.stableDigest)) return this.gcK;
    const top = m.stableK + m.entries.length;
    for (const e of m.entries) {
      if (e.k > executed) break;
      if (this.ledger.viewAt(e.k) !== e.view || !this.ledger.digestAt(e.k).equals(requestDigest(this.crypto, e.request))) return e.k - 1;
    }
    // Executions above E' are not in it, except those at or below our own certified stable
    // checkpoint: a checkpoint certified before m was built is at most its top (Proposition 3.5's
    // argument), so one above it was certified later, in this new view, and we fetched its blocks
    // before entering. Those are final.
    return Math.min(executed, Math.max(top, this.gcK));
  }

  private onNewViewAck(from: number, m: NvAck): void {
    if (m.view <= this.view || m.view > this.view + VIEW_LOOKAHEAD) return;
    let byAcker = this.nvAcks.get(m.view);
    if (!byAcker) {
      byAcker = new Map();
      this.nvAcks.set(m.view, byAcker);
    }
    if (byAcker.has(from)) return;
    byAcker.set(from, m.digest.toString('hex'));
    this.checkNewViewAcks(m.view);
  }

  /** Figure 5, line 19: nf NV-ACKs, the new primary's NV-PROPOSE counting as its own (§3.5 (4)). */
  private checkNewViewAcks(view: number): void {
    const acc = this.nvAccepted;
    if (!acc || acc.view !== view || view <= this.view) return;
    const primary = primaryOf(view, this.n);
    let count = primary === this.id ? 1 : 2; // the primary's proposal, and our own acknowledgement
    for (const [acker, hex] of this.nvAcks.get(view) ?? []) if (acker !== primary && acker !== this.id && hex === acc.hex) count++;
    if (count >= this.nf) this.enterView(acc.msg);
  }

  /** §3.3.5: roll back what E' does not keep, execute E', resume the normal case in the new view. */
  private enterView(m: NvPropose): void {
    const w = m.view;
    const executed = this.executor.executedK;
    const rb = this.rollbackPoint(m);
    if (rb < this.gcK) {
      // Checked at validation; a checkpoint that became stable since cannot contradict a valid E'.
      this.reject('NV-PROPOSE contradicts a stable checkpoint', primaryOf(w, this.n));
      return;
    }
    if (rb < executed) {
      this.executor.rollbackTo(rb);
      this.event({ name: 'rollback', fromK: executed, toK: rb });
      for (const [clientId, k] of this.informK) if (k > rb) this.informK.delete(clientId);
    } else {
      this.executor.dropPendingAbove(executed);
    }
    const now = this.executor.executedK;
    for (const k of [...this.slots.keys()]) if (k > now) this.slots.delete(k);
    this.maxSeenK = Math.max(now, m.stableK + m.entries.length);
    for (const e of m.entries) {
      if (e.k <= now) continue;
      const digest = requestDigest(this.crypto, e.request);
      const slot = this.newSlot(e.view);
      slot.request = e.request;
      slot.digest = digest;
      slot.committed = true;
      this.slots.set(e.k, slot);
      this.executor.commit(e.k, e.view, e.request, digest);
    }
    this.view = w;
    this.enteredView = w;
    this.inViewChange = false;
    this.backoffExp = 0;
    this.viewStartK = m.stableK + m.entries.length;
    this.viewBase = { k: m.stableK, digest: m.stableDigest };
    this.enteredProposal = { msg: m, digest: messageDigest(this.crypto, m), ownRequest: this.vcRequests.get(w - 1)?.get(this.id)?.msg };
    this.helpedAtMs.clear();
    this.nextK = this.viewStartK + 1;
    this.proposedReqNo.clear();
    this.proposedK.clear();
    this.unfinished.clear();
    this.queue = [];
    this.queueHead = 0;
    this.vcTimerDeadlineMs = undefined;
    this.out.push({ kind: 'cancelTimer', name: POE_TIMERS.newView });
    this.pruneViewChangeState(w);
    this.event({ name: 'viewEntered', view: w });
    this.executeReady();
    if (this.isPrimary()) {
      // Requests clients broadcast while the old primary failed: propose them now rather than
      // after the clients' next timeout.
      const waiting = [...this.forwarded.values()].map((x) => x.request);
      this.forwarded.clear();
      for (const req of waiting) if (!this.executor.isExecuted(req)) this.proposeOrQueue(req);
    } else {
      // Give the new primary a full timeout for the requests we still await.
      const waiting = [...this.forwarded.entries()];
      this.forwarded.clear();
      for (const [clientId, x] of waiting) this.forwarded.set(clientId, { request: x.request, deadlineMs: this.nowMs + this.timeoutMs });
    }
    const replay = this.future.filter((e) => e.msg.view === w);
    this.future = this.future.filter((e) => e.msg.view > w);
    for (const e of replay) this.onMessage(e.from, e.msg);
  }

  private pruneViewChangeState(w: number): void {
    for (const map of [this.vcRequests, this.vcAcks, this.vcAckSeen, this.vcAcked] as Map<number, unknown>[]) {
      for (const view of [...map.keys()]) if (view < w) map.delete(view);
    }
    for (const view of [...this.nvAcks.keys()]) if (view <= w) this.nvAcks.delete(view);
    for (const view of [...this.nvPending.keys()]) if (view <= w) this.nvPending.delete(view);
    this.nvAccepted = undefined;
    this.extendedClaims.clear();
    this.claimFetches.clear();
    this.tailVotes.clear();
  }
}

/**
 * Figure 5, lines 13-14: NV-PROPOSE(v+1, E_1 ∪ ... ∪ E_nf, V), deterministic so that a
 * replica can rebuild it for full validation (§3.3.4). The base is the highest stable
 * checkpoint among the requests; E' holds the entries above it. Two requests in V never
 * disagree at a k that a non-faulty replica in V executed (each sender acknowledged the
 * other's request, Figure 5 line 9 condition 3); where only faulty replicas disagree, the
 * entry of the highest view wins, then the lower digest. E' ends at the first k no request
 * reports (see the module comment: this cannot happen for consecutive summaries).
 */
export function buildNewView(crypto: CryptoProvider, newView: number, records: readonly VcRecord[]): NvPropose {
  const sorted = [...records].sort((a, b) => a.msg.replica - b.msg.replica);
  let base = 0;
  let baseDigest: Buffer | undefined;
  for (const r of sorted) {
    if (baseDigest === undefined || r.msg.stableK > base) {
      base = r.msg.stableK;
      baseDigest = r.msg.stableDigest;
    }
  }
  const byK = new Map<number, { entry: ExecutionEntry; digest: Buffer }>();
  for (const r of sorted) {
    for (const e of r.msg.entries) {
      if (e.k <= base) continue;
      const digest = requestDigest(crypto, e.request);
      const cur = byK.get(e.k);
      if (!cur || e.view > cur.entry.view || (e.view === cur.entry.view && Buffer.compare(digest, cur.digest) < 0)) byK.set(e.k, { entry: e, digest });
    }
  }
  const entries: ExecutionEntry[] = [];
  for (let k = base + 1; byK.has(k); k++) entries.push(byK.get(k)!.entry);
  return {
    type: MSG_NV_PROPOSE,
    view: newView,
    stableK: base,
    stableDigest: baseDigest ?? Buffer.alloc(DIGEST_BYTES),
    entries,
    certificate: sorted.map((r) => ({ replica: r.msg.replica, digest: r.digest })),
  };
}

// ---------------------------------------------------------------------------------------
// Client policy (Figure 3, lines 1-3)

interface InformVotes {
  readonly view: number;
  readonly k: number;
  readonly result: Buffer;
  readonly from: Set<number>;
}

export class PoeClientPolicy implements ClientPolicy<PoeMessage> {
  private readonly n: number;
  private readonly nf: number;
  /** The view of the last batch this client machine accepted: its primary gets new requests. */
  private view = 0;

  constructor(options: ClientPolicyOptions) {
    const q = quorums(options.n);
    this.n = q.n;
    this.nf = q.nf;
  }

  /**
   * Identical INFORMs that make a client accept (lines 2-3: nf). A seam for the simulator's
   * deliberately broken variants (infra/sim/broken.test.ts); never overridden in production.
   */
  protected informQuorum(): number {
    return this.nf;
  }

  /** Line 1: send ⟨T⟩c to the primary. */
  targets(request: ClientRequest): readonly Peer[] {
    void request;
    return [primaryOf(this.view, this.n)];
  }

  replyKey(msg: PoeMessage): { readonly clientId: number; readonly reqNo: number } | undefined {
    return msg.type === MSG_INFORM ? { clientId: msg.clientId, reqNo: msg.reqNo } : undefined;
  }

  /** Lines 2-3: accept on identical INFORM(D(⟨T⟩c), v, k, r) from nf distinct replicas. */
  onReply(p: PendingRequest, from: Peer, msg: PoeMessage, nowMs: number): ReplyOutcome<PoeMessage> | undefined {
    void nowMs;
    if (msg.type !== MSG_INFORM || !Number.isInteger(from) || from < 0 || from >= this.n) return undefined;
    if (!msg.digest.equals(p.digest)) return undefined;
    let votes = p.policyState as InformVotes[] | undefined;
    if (!votes) {
      votes = [];
      p.policyState = votes;
    }
    // One vote per replica: a replica's newer INFORM replaces its older one, so there are at
    // most n variants and a faulty replica cannot crowd out the correct ones.
    for (let i = votes.length - 1; i >= 0; i--) {
      const v = votes[i]!;
      if (v.from.delete(from) && v.from.size === 0) votes.splice(i, 1);
    }
    let match = votes.find((x) => x.view === msg.view && x.k === msg.k && x.result.equals(msg.result));
    if (!match) {
      match = { view: msg.view, k: msg.k, result: Buffer.from(msg.result), from: new Set() };
      votes.push(match);
    }
    match.from.add(from);
    if (match.from.size < this.informQuorum()) return undefined;
    if (msg.view > this.view) this.view = msg.view;
    return { accepted: { k: msg.k, view: msg.view, digest: p.digest, path: 'inform' } };
  }

  /** §3.2: "it can broadcast its request to all replicas". */
  onTimeout(p: PendingRequest, nowMs: number): readonly ClientOutput<PoeMessage>[] {
    void nowMs;
    return [{ kind: 'broadcast', msg: p.request }];
  }
}

// ---------------------------------------------------------------------------------------
// Module

/**
 * How the Byzantine wrappers (replica/byzantine.ts) see PoE's proposals: a PROPOSE(v, k, T)
 * (Figure 3, line 7). A PROPOSE carries the client's signed batch and no signature of the
 * primary (the transport's MACs authenticate it), so one with another batch is as valid as the
 * original: exactly the equivocation of Example 3.4, case 1.
 */
export const poeFaultHooks: FaultHooks<PoeMessage> = {
  proposalSlot: (msg) => (msg.type === MSG_PROPOSE ? { view: msg.view, k: msg.k } : undefined),
  withBatchOf: (target, source) => {
    if (target.type !== MSG_PROPOSE || source.type !== MSG_PROPOSE) throw new TypeError('poe withBatchOf: both messages must be PROPOSE');
    return { ...target, request: source.request };
  },
};

export const poe: ProtocolModule<PoeMessage> = {
  name: 'poe',
  codec: poeCodec,
  createReplica: (options: ReplicaOptions, deps: ReplicaDeps) => new PoeReplica(options, deps),
  createClientPolicy: (options: ClientPolicyOptions) => new PoeClientPolicy(options),
  faults: poeFaultHooks,
};
