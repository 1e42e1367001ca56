/**
 * Zyzzyva (Kotla, Alvisi, Dahlin, Clement, Wong: "Zyzzyva: Speculative Byzantine Fault
 * Tolerance", SOSP 2007) as the PoE paper ran it for comparison (paper §4(8), lines ~399-403):
 * backups execute an ORDER-REQ at once and reply; the client accepts on n matching replies
 * (fast path) or, after its timeout, sends a commit certificate of nf matching replies to all
 * replicas and accepts on nf LOCAL-COMMITs (two-phase commit path). "All messages sent to
 * clients are signed using expensive digital signatures" (paper §4(8)): SPEC-RESPONSE and
 * LOCAL-COMMIT carry Ed25519 signatures; replica-to-replica messages are authenticated by the
 * transport's MACs, like every protocol here (DESIGN.md "Protocols").
 *
 * Messages (type ids 30-39):
 *   ORDER-REQ(v, k, h_k, d, request)                          primary -> backups
 *   SPEC-RESPONSE(v, k, h_k, d, clientId, reqNo, result, i)σi  replica -> client
 *   COMMIT(clientId, reqNo, CC)                               client  -> replicas
 *   LOCAL-COMMIT(v, k, d, h_k, clientId, reqNo, i)σi           replica -> client
 * with the history hash h_k = SHA-256(h_{k-1} || d), h_0 = 32 zero bytes (Zyzzyva §3.2).
 *
 * Citations "Zyzzyva §3.x" refer to the SOSP'07 paper's protocol section: §3.1 checkpoints,
 * §3.2 agreement, whose cases are named here as case 1 (all 3f+1 = n responses match: fast
 * path, Figure 1a), case 2 (2f+1 = nf to 3f match: commit certificate, two-phase commit path,
 * Figure 1b) and case 3 (fewer than 2f+1 match: the client resends the request to all).
 * The SPEC-RESPONSE `result` is the replica's ledger block hash after executing k: a value
 * that depends on every batch executed so far, so matching results mean matching executions.
 *
 * Not implemented (outside this benchmark's fault scenarios: crashed backups only): the view
 * change, the fill-hole sub-protocol beyond re-sending one ORDER-REQ to a backup that forwards
 * an already ordered request, proofs of misbehaviour, and the client's check of the ORDER-REQ
 * inside each SPEC-RESPONSE (omitted: it would add a full batch to every reply).
 *
 * Client policy extras (ClientPolicyOptions.extra), needed to verify replica signatures:
 *   keySeed         string, required: the run's key seed (replica/keys.ts KeyRing)
 *   cryptoProvider  'node' | 'noble' | 'sim', default 'node': must match the replicas'
 */
import type { FaultHooks } from './byzantine.js';
import type { Checkpoint, ClientRequest, CommonMessage, FieldCodec } from './messages.js';
import { commonCodecs, isNoop, makeCodec, MSG_CHECKPOINT, MSG_REQUEST, NOOP_CLIENT_ID, readRequest, requestDigest, writeRequest } from './messages.js';
import { CheckpointTracker, Executor, hex, type Execution } from './common.js';
import type { CryptoProvider, CryptoProviderName, Verifier } from './crypto.js';
import { createCrypto, DIGEST_BYTES, SIGNATURE_BYTES } from './crypto.js';
import { KeyRing } from './keys.js';
import { Ledger } from './ledger.js';
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
import { Writer, type Reader } from './wire.js';

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

interface SpecFields {
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

type LocalCommitFields = Omit<LocalCommit, 'type' | 'replica' | 'signature'>;

export function localCommitSignedBytes(c: LocalCommitFields): Buffer {
  const w = new Writer(1 + 16 + 2 * DIGEST_BYTES + 8);
  w.u8(LOCAL_COMMIT_TAG).u53(c.view).u53(c.k).fixed(c.digest, DIGEST_BYTES).fixed(c.history, DIGEST_BYTES);
  w.u32(c.clientId).u32(c.reqNo);
  return w.finish();
}

/** Responses "match" when they agree on everything but the sender (Zyzzyva §3.2). */
function specKey(s: SpecFields): string {
  return `${s.view}/${s.k}/${hex(s.history)}/${hex(s.digest)}/${hex(s.result)}`;
}

function localCommitKey(c: LocalCommitFields): string {
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

// ---------------------------------------------------------------------------------------
// Replica

type Out = ReplicaOutput<ZyzzyvaMessage>[];

/** The last reply sent to a logical client, re-sent when the client retransmits (Zyzzyva §3.2). */
interface CachedReply {
  readonly reqNo: number;
  readonly digest: Buffer;
  readonly k: number;
  readonly origin: number;
  readonly spec: SpecResponse;
  localCommit?: LocalCommit;
}

export class ZyzzyvaReplica implements ReplicaCore<ZyzzyvaMessage> {
  readonly id: number;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  private readonly n: number;
  private readonly nf: number;
  private readonly windowK: number;
  private readonly crypto: CryptoProvider;
  private readonly executor: Executor;
  private readonly checkpoints: CheckpointTracker;
  private view = 0;
  private committed = 0;
  /** h_k for k in [stableK, executedK] (older ones are covered by the stable checkpoint). */
  private readonly history = new Map<number, Buffer>([[0, GENESIS_HISTORY]]);
  /** ORDER-REQs executed above the stable checkpoint: the primary re-sends them to lagging backups. */
  private readonly log = new Map<number, OrderReq>();
  /** ORDER-REQs that arrived ahead of the next k to execute (inside the window, one per k). */
  private readonly buffered = new Map<number, OrderReq>();
  /** Verified COMMITs for k not yet executed here, answered once k executes. */
  private readonly pendingCommits = new Map<number, { readonly from: Peer; readonly commit: Commit }>();
  /** Primary only: requests waiting for room in the window, one per logical client. */
  private readonly queued = new Map<number, ClientRequest>();
  private readonly replies = new Map<number, CachedReply>();

  constructor(
    options: ReplicaOptions,
    private readonly deps: ReplicaDeps,
  ) {
    const { n, nf } = quorums(options.n);
    if (!Number.isInteger(options.id) || options.id < 0 || options.id >= n) throw new RangeError(`replica id ${options.id} outside 0..${n - 1}`);
    if (!Number.isInteger(options.windowK) || options.windowK < options.checkpointIntervalK) {
      throw new RangeError(`windowK (${options.windowK}) must be an integer >= checkpointIntervalK (${options.checkpointIntervalK})`);
    }
    this.id = options.id;
    this.n = n;
    this.nf = nf;
    this.windowK = options.windowK;
    this.crypto = deps.crypto;
    this.ledger = new Ledger(deps.crypto, primaryOf(0, n));
    this.store = new YcsbStore(options.records, options.valueBytes);
    // Zyzzyva executes before agreement is known: executions stay undoable until a stable checkpoint.
    this.executor = new Executor(this.store, this.ledger, true);
    this.checkpoints = new CheckpointTracker(nf, options.checkpointIntervalK);
  }

  /** Highest k this replica holds as committed (covered by a commit certificate it checked). */
  get committedK(): number {
    return this.committed;
  }

  /** h_k, while still held. */
  historyAt(k: number): Buffer | undefined {
    return this.history.get(k);
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: this.view,
      executedK: this.executor.executedK,
      stableK: this.checkpoints.stableK,
      inViewChange: false,
      logEntries: this.log.size + this.buffered.size + this.pendingCommits.size + this.queued.size,
    };
  }

  step(input: ReplicaInput<ZyzzyvaMessage>, nowMs: number): Out {
    void nowMs;
    const out: Out = [];
    if (input.kind !== 'message') return out;
    const { from, msg } = input;
    switch (msg.type) {
      case MSG_REQUEST:
        this.onRequest(from, msg as ClientRequest, out);
        break;
      case MSG_ORDER_REQ:
        this.onOrderReq(from, msg as OrderReq, out);
        break;
      case MSG_COMMIT:
        this.onCommit(from, msg as Commit, out);
        break;
      case MSG_CHECKPOINT:
        this.onCheckpoint(from, msg as Checkpoint, out);
        break;
      default:
        this.reject(out, `unexpected message type ${msg.type}`, from);
    }
    return out;
  }

  private get isPrimary(): boolean {
    return primaryOf(this.view, this.n) === this.id;
  }

  private get windowTopK(): number {
    return this.checkpoints.stableK + this.windowK;
  }

  private reject(out: Out, reason: string, from: Peer): void {
    out.push({ kind: 'event', event: { name: 'rejected', reason, from } });
  }

  private event(out: Out, event: ReplicaEvent): void {
    out.push({ kind: 'event', event });
  }

  /** A client's signature and the batch's keys; the no-op id is reserved for replicas. */
  private validRequest(req: ClientRequest): boolean {
    if (req.clientId === NOOP_CLIENT_ID || isNoop(req)) return false;
    if (!this.store.validWrites(req.writes)) return false;
    const verifier = this.deps.clientVerifier(req.origin);
    return verifier !== undefined && verifier.verify(req.body, req.signature);
  }

  // -------------------------------------------------------------------------------------
  // REQUEST: ordering at the primary, forwarding at a backup

  /**
   * Zyzzyva §3.2 step 1-2 at the primary; at a backup (the client broadcast after its timeout,
   * Zyzzyva §3.2 case 3) a request already executed gets the cached reply, any other is
   * forwarded to the primary.
   */
  private onRequest(from: Peer, req: ClientRequest, out: Out): void {
    const digest = requestDigest(this.crypto, req);
    const cached = this.replies.get(req.clientId);
    if (cached && cached.reqNo === req.reqNo && cached.digest.equals(digest)) {
      this.resendReply(cached, out);
      // A backup forwarding an ordered request missed its ORDER-REQ: send it again (fill-hole).
      const order = this.log.get(cached.k);
      if (this.isPrimary && !isClientPeer(from) && order) out.push({ kind: 'send', to: from, msg: order });
      return;
    }
    if (req.reqNo <= this.executor.lastExecuted(req.clientId)) {
      this.reject(out, 'request already executed', from);
      return;
    }
    if (!this.validRequest(req)) {
      this.reject(out, 'invalid client request', from);
      return;
    }
    if (!this.isPrimary) {
      if (isClientPeer(from)) out.push({ kind: 'send', to: primaryOf(this.view, this.n), msg: req });
      return;
    }
    if (this.executor.executedK >= this.windowTopK) {
      this.enqueue(from, req, out);
      return;
    }
    this.order(req, digest, out);
  }

  /** The window is full: hold the request (bounded) until a checkpoint becomes stable. */
  private enqueue(from: Peer, req: ClientRequest, out: Out): void {
    const held = this.queued.get(req.clientId);
    if (!held && this.queued.size >= this.windowK) {
      this.reject(out, 'request queue full', from);
      return;
    }
    if (!held || held.reqNo < req.reqNo) this.queued.set(req.clientId, req);
  }

  /** The primary assigns the next k, broadcasts ORDER-REQ and executes it itself. */
  private order(req: ClientRequest, digest: Buffer, out: Out): void {
    const k = this.executor.executedK + 1;
    const history = nextHistory(this.crypto, this.history.get(k - 1)!, digest);
    const order: OrderReq = { type: MSG_ORDER_REQ, view: this.view, k, history, digest, request: req };
    out.push({ kind: 'broadcast', msg: order });
    this.execute(order, out);
  }

  private drainQueue(out: Out): void {
    for (const [clientId, req] of this.queued) {
      if (this.executor.executedK >= this.windowTopK) return;
      this.queued.delete(clientId);
      if (req.reqNo > this.executor.lastExecuted(clientId)) this.order(req, requestDigest(this.crypto, req), out);
    }
  }

  private resendReply(cached: CachedReply, out: Out): void {
    const to = clientPeer(cached.origin);
    out.push({ kind: 'send', to, msg: cached.spec });
    if (cached.localCommit) out.push({ kind: 'send', to, msg: cached.localCommit });
  }

  // -------------------------------------------------------------------------------------
  // ORDER-REQ: speculative execution at a backup

  /**
   * Zyzzyva §3.2 step 3: a backup accepts ORDER-REQ from the primary of its view, in order,
   * if h_k = H(h_{k-1}, d), and executes at once. Orders ahead of the next k wait inside the
   * window, one per k, so a faulty primary cannot make the buffer grow without bound.
   */
  private onOrderReq(from: Peer, o: OrderReq, out: Out): void {
    if (from !== primaryOf(this.view, this.n) || from === this.id || o.view !== this.view) {
      this.reject(out, 'ORDER-REQ not from the primary of this view', from);
      return;
    }
    if (o.k <= this.executor.executedK || this.buffered.has(o.k)) return;
    if (o.k > this.windowTopK || this.buffered.size >= this.windowK) {
      this.reject(out, `ORDER-REQ k=${o.k} outside the window`, from);
      return;
    }
    if (!requestDigest(this.crypto, o.request).equals(o.digest) || !this.validRequest(o.request)) {
      this.reject(out, 'ORDER-REQ with an invalid request', from);
      return;
    }
    this.buffered.set(o.k, o);
    this.drainBuffered(out);
  }

  private drainBuffered(out: Out): void {
    for (;;) {
      const k = this.executor.executedK + 1;
      const o = this.buffered.get(k);
      if (!o) return;
      this.buffered.delete(k);
      const expected = nextHistory(this.crypto, this.history.get(k - 1)!, o.digest);
      if (!expected.equals(o.history)) {
        // Zyzzyva would start a view change here; this benchmark has none (module comment).
        this.reject(out, `ORDER-REQ k=${k}: history hash does not extend h_${k - 1}`, primaryOf(this.view, this.n));
        return;
      }
      this.execute(o, out);
    }
  }

  /** Executes the ordered request (in order, undoable) and sends the signed SPEC-RESPONSE. */
  private execute(o: OrderReq, out: Out): void {
    this.history.set(o.k, o.history);
    this.log.set(o.k, o);
    this.executor.commit(o.k, o.view, o.request, o.digest);
    for (const ex of this.executor.drain()) this.afterExecution(ex, o, out);
  }

  private afterExecution(ex: Execution, o: OrderReq, out: Out): void {
    const { k, request } = ex;
    this.event(out, { name: 'executed', k, view: ex.view, txns: ex.duplicate ? 0 : request.writes.length });
    // A correct primary never orders a request twice; a repeat gets no second reply.
    if (!ex.duplicate) {
      const fields: SpecFields = {
        view: ex.view,
        k,
        history: o.history,
        digest: ex.digest,
        clientId: request.clientId,
        reqNo: request.reqNo,
        result: ex.blockHash,
      };
      const spec: SpecResponse = {
        type: MSG_SPEC_RESPONSE,
        ...fields,
        replica: this.id,
        signature: this.deps.signer.sign(specSignedBytes(fields)),
      };
      this.replies.set(request.clientId, { reqNo: request.reqNo, digest: ex.digest, k, origin: request.origin, spec });
      out.push({ kind: 'send', to: clientPeer(request.origin), msg: spec });
    }
    if (this.checkpoints.isCheckpoint(k)) this.sendCheckpoint(k, out);
    const waiting = this.pendingCommits.get(k);
    if (waiting) {
      this.pendingCommits.delete(k);
      this.answerCommit(waiting.from, waiting.commit, out);
    }
  }

  // -------------------------------------------------------------------------------------
  // COMMIT: the client's two-phase commit path

  /**
   * Zyzzyva §3.2 case 2: a replica receiving COMMIT(c, CC) checks that CC holds nf valid
   * signatures from distinct replicas and that its own history at k is h_k; then it holds the
   * history up to k as committed and answers LOCAL-COMMIT.
   */
  private onCommit(from: Peer, c: Commit, out: Out): void {
    if (!isClientPeer(from)) {
      this.reject(out, 'COMMIT not from a client', from);
      return;
    }
    const { k } = c.cert;
    if (k > this.windowTopK) {
      this.reject(out, `COMMIT k=${k} outside the window`, from);
      return;
    }
    // Committed already and our history agrees: the certificate adds nothing to check.
    const mine = this.ownHistory(k, c.clientId, c.reqNo);
    if (k <= this.committed && mine?.equals(c.cert.history)) {
      this.sendLocalCommit(from, c, out);
      return;
    }
    if (countCertificateSigners(c.cert, c.clientId, c.reqNo, this.deps.replicaVerifiers, this.nf) < this.nf) {
      this.reject(out, 'COMMIT certificate without nf valid signatures', from);
      return;
    }
    if (k > this.executor.executedK) {
      if (!this.pendingCommits.has(k) && this.pendingCommits.size < this.windowK) this.pendingCommits.set(k, { from, commit: c });
      return;
    }
    this.answerCommit(from, c, out);
  }

  /** For a certificate already verified: commit up to k if our history matches. */
  private answerCommit(from: Peer, c: Commit, out: Out): void {
    const mine = this.ownHistory(c.cert.k, c.clientId, c.reqNo);
    if (!mine || !mine.equals(c.cert.history)) {
      this.reject(out, `COMMIT k=${c.cert.k}: certified history differs from ours`, from);
      return;
    }
    this.committed = Math.max(this.committed, c.cert.k);
    this.sendLocalCommit(from, c, out);
  }

  /** h_k from the history, or, below the stable checkpoint, from the client's cached reply. */
  private ownHistory(k: number, clientId: number, reqNo: number): Buffer | undefined {
    if (k > this.executor.executedK) return undefined;
    const h = this.history.get(k);
    if (h) return h;
    const cached = this.replies.get(clientId);
    return cached && cached.reqNo === reqNo && cached.k === k ? cached.spec.history : undefined;
  }

  private sendLocalCommit(to: Peer, c: Commit, out: Out): void {
    const cached = this.replies.get(c.clientId);
    const reuse = cached?.localCommit;
    if (reuse && reuse.reqNo === c.reqNo && reuse.k === c.cert.k && reuse.history.equals(c.cert.history)) {
      out.push({ kind: 'send', to, msg: reuse });
      return;
    }
    const fields: LocalCommitFields = {
      view: this.view,
      k: c.cert.k,
      digest: c.cert.digest,
      history: c.cert.history,
      clientId: c.clientId,
      reqNo: c.reqNo,
    };
    const lc: LocalCommit = {
      type: MSG_LOCAL_COMMIT,
      ...fields,
      replica: this.id,
      signature: this.deps.signer.sign(localCommitSignedBytes(fields)),
    };
    if (cached && cached.reqNo === c.reqNo && cached.k === c.cert.k) cached.localCommit = lc;
    out.push({ kind: 'send', to, msg: lc });
  }

  // -------------------------------------------------------------------------------------
  // Checkpoints and garbage collection (DESIGN.md "Protocols"; Zyzzyva §3.1)

  private sendCheckpoint(k: number, out: Out): void {
    const cp = this.checkpoints.makeCheckpoint(this.id, k, this.ledger.hashAt(k));
    out.push({ kind: 'broadcast', msg: cp });
    const stable = this.checkpoints.add(this.id, k, cp.stateDigest, this.windowTopK);
    if (stable !== undefined) this.onStable(stable, out);
  }

  private onCheckpoint(from: Peer, c: Checkpoint, out: Out): void {
    if (isClientPeer(from) || from >= this.n || c.replica !== from) {
      this.reject(out, 'CHECKPOINT not from its replica', from);
      return;
    }
    const stable = this.checkpoints.add(from, c.k, c.stateDigest, this.windowTopK);
    if (stable !== undefined) this.onStable(stable, out);
  }

  /**
   * A stable checkpoint at s: executions up to s can never roll back, so their undo records,
   * ORDER-REQs and history hashes (but h_s, which h_{s+1} extends) are dropped.
   */
  private onStable(s: number, out: Out): void {
    this.event(out, { name: 'checkpointStable', k: s });
    // The checkpoint may be ahead of our own execution; only what we executed can be forgotten.
    const upTo = Math.min(s, this.executor.executedK);
    this.executor.forget(upTo);
    for (const k of this.history.keys()) {
      if (k >= upTo) break;
      this.history.delete(k);
    }
    for (const k of this.log.keys()) {
      if (k > upTo) break;
      this.log.delete(k);
    }
    // Buffered orders and waiting COMMITs above our execution stay: a backup that lags behind
    // the stable checkpoint still needs them to catch up (their number is capped on arrival).
    if (this.isPrimary) this.drainQueue(out);
  }
}

// ---------------------------------------------------------------------------------------
// Client policy

/** What the client has collected for one pending request. */
interface ZyzzyvaPending {
  /** Replicas whose SPEC-RESPONSE was counted (one each). */
  readonly responded: Set<number>;
  /** Matching SPEC-RESPONSEs, by specKey. */
  readonly groups: Map<string, { readonly first: SpecResponse; readonly signatures: Map<number, Buffer> }>;
  readonly localCommits: Map<string, Set<number>>;
  commitSent: boolean;
}

export class ZyzzyvaClientPolicy implements ClientPolicy<ZyzzyvaMessage> {
  private readonly n: number;
  private readonly nf: number;
  private readonly verifiers: readonly Verifier[];
  /** The view of the newest reply accepted: its primary gets fresh requests. */
  private believedView = 0;

  constructor(options: ClientPolicyOptions) {
    const q = quorums(options.n);
    this.n = q.n;
    this.nf = q.nf;
    const keySeed = options.extra?.['keySeed'];
    if (typeof keySeed !== 'string' || keySeed.length === 0) {
      throw new Error("zyzzyva client policy: options.extra.keySeed (string) is required to verify the replicas' signed replies");
    }
    const provider = options.extra?.['cryptoProvider'] ?? 'node';
    if (provider !== 'node' && provider !== 'noble' && provider !== 'sim') {
      throw new Error(`zyzzyva client policy: options.extra.cryptoProvider must be 'node', 'noble' or 'sim', got ${String(provider)}`);
    }
    this.verifiers = new KeyRing(options.crypto ?? createCrypto(provider as CryptoProviderName), keySeed, this.n, 0).replicaVerifiers;
  }

  targets(): readonly Peer[] {
    return [primaryOf(this.believedView, this.n)];
  }

  replyKey(msg: ZyzzyvaMessage): { clientId: number; reqNo: number } | undefined {
    if (msg.type === MSG_SPEC_RESPONSE || msg.type === MSG_LOCAL_COMMIT) {
      const m = msg as SpecResponse | LocalCommit;
      return { clientId: m.clientId, reqNo: m.reqNo };
    }
    return undefined;
  }

  private state(p: PendingRequest): ZyzzyvaPending {
    if (!p.policyState) {
      const s: ZyzzyvaPending = { responded: new Set(), groups: new Map(), localCommits: new Map(), commitSent: false };
      p.policyState = s;
    }
    return p.policyState as ZyzzyvaPending;
  }

  onReply(p: PendingRequest, from: Peer, msg: ZyzzyvaMessage, nowMs: number): ReplyOutcome<ZyzzyvaMessage> | undefined {
    void nowMs;
    if (isClientPeer(from) || from >= this.n) return undefined;
    if (msg.type === MSG_SPEC_RESPONSE) return this.onSpecResponse(p, from, msg as SpecResponse);
    if (msg.type === MSG_LOCAL_COMMIT) return this.onLocalCommit(p, from, msg as LocalCommit);
    return undefined;
  }

  /**
   * Zyzzyva §3.2 case 1 (fast path): n matching, correctly signed SPEC-RESPONSEs complete the
   * request. If the timer already fired (case 2), nf matching ones are a commit certificate.
   */
  private onSpecResponse(p: PendingRequest, from: Peer, s: SpecResponse): ReplyOutcome<ZyzzyvaMessage> | undefined {
    const st = this.state(p);
    if (s.replica !== from || st.responded.has(from) || !s.digest.equals(p.digest)) return undefined;
    if (s.clientId !== p.request.clientId || s.reqNo !== p.request.reqNo) return undefined;
    if (!this.verifiers[from]!.verify(specSignedBytes(s), s.signature)) return undefined;
    st.responded.add(from);
    const key = specKey(s);
    let group = st.groups.get(key);
    if (!group) {
      group = { first: s, signatures: new Map() };
      st.groups.set(key, group);
    }
    group.signatures.set(from, s.signature);
    if (group.signatures.size >= this.n) return this.accepted(s.view, s.k, s.digest, 'fast');
    if (p.timeouts > 0 && !st.commitSent && group.signatures.size >= this.nf) {
      st.commitSent = true;
      return { send: [this.commitFor(p, group)] };
    }
    return undefined;
  }

  /** Zyzzyva §3.2 case 2: nf matching LOCAL-COMMITs from distinct replicas complete it. */
  private onLocalCommit(p: PendingRequest, from: Peer, c: LocalCommit): ReplyOutcome<ZyzzyvaMessage> | undefined {
    if (c.replica !== from || !c.digest.equals(p.digest)) return undefined;
    if (c.clientId !== p.request.clientId || c.reqNo !== p.request.reqNo) return undefined;
    if (!this.verifiers[from]!.verify(localCommitSignedBytes(c), c.signature)) return undefined;
    const st = this.state(p);
    const key = localCommitKey(c);
    let senders = st.localCommits.get(key);
    if (!senders) {
      senders = new Set();
      st.localCommits.set(key, senders);
    }
    senders.add(from);
    if (senders.size >= this.nf) return this.accepted(c.view, c.k, c.digest, 'slow');
    return undefined;
  }

  private accepted(view: number, k: number, digest: Buffer, path: string): ReplyOutcome<ZyzzyvaMessage> {
    this.believedView = Math.max(this.believedView, view);
    return { accepted: { k, view, digest, path } };
  }

  private commitFor(p: PendingRequest, group: { readonly first: SpecResponse; readonly signatures: Map<number, Buffer> }): ClientOutput<ZyzzyvaMessage> {
    const { view, k, history, digest, result } = group.first;
    const signers = [...group.signatures].map(([replica, signature]) => ({ replica, signature }));
    const commit: Commit = {
      type: MSG_COMMIT,
      clientId: p.request.clientId,
      reqNo: p.request.reqNo,
      cert: { view, k, history, digest, result, signers },
    };
    return { kind: 'broadcast', msg: commit };
  }

  /**
   * The timer fired. With nf matching SPEC-RESPONSEs: send the commit certificate to every
   * replica and keep waiting (Zyzzyva §3.2 case 2); with fewer: send the request to every
   * replica, which replies from its cache or forwards it to the primary (case 3).
   */
  onTimeout(p: PendingRequest, nowMs: number): readonly ClientOutput<ZyzzyvaMessage>[] {
    void nowMs;
    const st = this.state(p);
    let best: { readonly first: SpecResponse; readonly signatures: Map<number, Buffer> } | undefined;
    for (const g of st.groups.values()) if (!best || g.signatures.size > best.signatures.size) best = g;
    if (best && best.signatures.size >= this.nf) {
      st.commitSent = true;
      return [this.commitFor(p, best)];
    }
    return [{ kind: 'broadcast', msg: p.request }];
  }
}

/**
 * How the Byzantine wrappers (replica/byzantine.ts) see Zyzzyva's proposals: the primary's
 * ORDER-REQ(v, k, h_k, d, request) (Zyzzyva §3.2 step 2). `withBatchOf` swaps the request and
 * its digest d but keeps the target's history hash h_k: the wrappers do not know h_{k-1}, so
 * they cannot forge a consistent H(h_{k-1}, d'). A backup therefore rejects the forged
 * ORDER-REQ ("history hash does not extend h_{k-1}") when it reaches k, and waits until a
 * forwarded request makes the primary re-send it the genuine one.
 */
export const zyzzyvaFaultHooks: FaultHooks<ZyzzyvaMessage> = {
  proposalSlot: (msg) => (msg.type === MSG_ORDER_REQ ? { view: msg.view, k: msg.k } : undefined),
  withBatchOf: (target, source) => {
    if (target.type !== MSG_ORDER_REQ || source.type !== MSG_ORDER_REQ) throw new TypeError('zyzzyva withBatchOf: both messages must be ORDER-REQ');
    return { ...target, digest: source.digest, request: source.request };
  },
};

export const zyzzyva: ProtocolModule<ZyzzyvaMessage> = {
  name: 'zyzzyva',
  codec: zyzzyvaCodec,
  createReplica: (options, deps) => new ZyzzyvaReplica(options, deps),
  createClientPolicy: (options) => new ZyzzyvaClientPolicy(options),
  faults: zyzzyvaFaultHooks,
};
