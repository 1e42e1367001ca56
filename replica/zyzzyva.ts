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
 * What the client verifies (issue 10, item 3). Replies reach the client machine over the
 * transport's MACs, which authenticate their sender, so the fast path (n matching
 * SPEC-RESPONSEs) and the LOCAL-COMMITs that end the slow path need no signature check. The
 * signatures matter only where they are shown to someone else: the commit certificate the
 * client sends to the replicas. The client verifies them when it builds one, exactly nf (more
 * only if one is bad), and sends only signatures it checked. Fast path: 0 Ed25519
 * verifications on the client per batch; slow path: nf.
 *
 * Client policy extras (ClientPolicyOptions.extra), needed to verify replica signatures:
 *   keySeed         string, required: the run's key seed (replica/keys.ts KeyRing)
 *   cryptoProvider  'node' | 'noble' | 'sim', default 'node': must match the replicas'
 */
import { CheckpointTracker, type Execution, Executor, sameBytes } from './common.js';
import type { CryptoProvider } from './crypto.js';
import { Ledger } from './ledger.js';
import type { Checkpoint, ClientRequest } from './messages.js';
import { isNoop, MSG_CHECKPOINT, MSG_REQUEST, NOOP_CLIENT_ID, requestDigest } from './messages.js';
import { Outbox } from './outbox.js';
import type { FaultHooks, ProtocolModule } from './protocol.js';
import { YcsbStore } from './store.js';
import type { Peer, ReplicaCore, ReplicaDeps, ReplicaInput, ReplicaOptions, ReplicaOutput, ReplicaStatus } from './types.js';
import { clientPeer, isClientPeer, primaryOf, quorums } from './types.js';
import { ZyzzyvaClientPolicy } from './zyzzyva-client.js';
import {
  type Commit,
  countCertificateSigners,
  GENESIS_HISTORY,
  type LocalCommit,
  type LocalCommitFields,
  type SpecFields,
  localCommitSignedBytes,
  MSG_COMMIT,
  MSG_ORDER_REQ,
  MSG_SPEC_RESPONSE,
  MSG_LOCAL_COMMIT,
  nextHistory,
  type OrderReq,
  type SpecResponse,
  specSignedBytes,
  zyzzyvaCodec,
  type ZyzzyvaMessage,
} from './zyzzyva-wire.js';

export * from './zyzzyva-wire.js';
export { ZyzzyvaClientPolicy } from './zyzzyva-client.js';

// ---------------------------------------------------------------------------------------
// Replica

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
  /** Every handler's outputs (replica/outbox.ts); `step` drains it. */
  private readonly out = new Outbox<ZyzzyvaMessage>();

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

  step(input: ReplicaInput<ZyzzyvaMessage>, nowMs: number): ReplicaOutput<ZyzzyvaMessage>[] {
    void nowMs;
    if (input.kind !== 'message') return this.out.drain();
    const { from, msg } = input;
    switch (msg.type) {
      case MSG_REQUEST:
        this.onRequest(from, msg as ClientRequest);
        break;
      case MSG_ORDER_REQ:
        this.onOrderReq(from, msg as OrderReq);
        break;
      case MSG_COMMIT:
        this.onCommit(from, msg as Commit);
        break;
      case MSG_CHECKPOINT:
        this.onCheckpoint(from, msg as Checkpoint);
        break;
      default:
        this.out.reject(`unexpected message type ${msg.type}`, from);
    }
    return this.out.drain();
  }

  private get isPrimary(): boolean {
    return primaryOf(this.view, this.n) === this.id;
  }

  private get windowTopK(): number {
    return this.checkpoints.stableK + this.windowK;
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
  private onRequest(from: Peer, req: ClientRequest): void {
    const digest = requestDigest(this.crypto, req);
    const cached = this.replies.get(req.clientId);
    if (cached && cached.reqNo === req.reqNo && cached.digest.equals(digest)) {
      this.resendReply(cached);
      // A backup forwarding an ordered request missed its ORDER-REQ: send it again (fill-hole).
      const order = this.log.get(cached.k);
      if (this.isPrimary && !isClientPeer(from) && order) this.out.send(from, order);
      return;
    }
    if (req.reqNo <= this.executor.lastExecuted(req.clientId)) {
      this.out.reject('request already executed', from);
      return;
    }
    if (!this.validRequest(req)) {
      this.out.reject('invalid client request', from);
      return;
    }
    if (!this.isPrimary) {
      if (isClientPeer(from)) this.out.send(primaryOf(this.view, this.n), req);
      return;
    }
    if (this.executor.executedK >= this.windowTopK) {
      this.enqueue(from, req);
      return;
    }
    this.order(req, digest);
  }

  /** The window is full: hold the request (bounded) until a checkpoint becomes stable. */
  private enqueue(from: Peer, req: ClientRequest): void {
    const held = this.queued.get(req.clientId);
    if (!held && this.queued.size >= this.windowK) {
      this.out.reject('request queue full', from);
      return;
    }
    if (!held || held.reqNo < req.reqNo) this.queued.set(req.clientId, req);
  }

  /** The primary assigns the next k, broadcasts ORDER-REQ and executes it itself. */
  private order(req: ClientRequest, digest: Buffer): void {
    const k = this.executor.executedK + 1;
    const history = nextHistory(this.crypto, this.history.get(k - 1)!, digest);
    const order: OrderReq = { type: MSG_ORDER_REQ, view: this.view, k, history, digest, request: req };
    this.out.broadcast(order);
    this.execute(order);
  }

  private drainQueue(): void {
    for (const [clientId, req] of this.queued) {
      if (this.executor.executedK >= this.windowTopK) return;
      this.queued.delete(clientId);
      if (req.reqNo > this.executor.lastExecuted(clientId)) this.order(req, requestDigest(this.crypto, req));
    }
  }

  private resendReply(cached: CachedReply): void {
    const to = clientPeer(cached.origin);
    this.out.send(to, cached.spec);
    if (cached.localCommit) this.out.send(to, cached.localCommit);
  }

  // -------------------------------------------------------------------------------------
  // ORDER-REQ: speculative execution at a backup

  /**
   * Zyzzyva §3.2 step 3: a backup accepts ORDER-REQ from the primary of its view, in order,
   * if h_k = H(h_{k-1}, d), and executes at once. Orders ahead of the next k wait inside the
   * window, one per k, so a faulty primary cannot make the buffer grow without bound.
   */
  private onOrderReq(from: Peer, o: OrderReq): void {
    if (from !== primaryOf(this.view, this.n) || from === this.id || o.view !== this.view) {
      this.out.reject('ORDER-REQ not from the primary of this view', from);
      return;
    }
    if (o.k <= this.executor.executedK || this.buffered.has(o.k)) return;
    if (o.k > this.windowTopK || this.buffered.size >= this.windowK) {
      this.out.reject(`ORDER-REQ k=${o.k} outside the window`, from);
      return;
    }
    if (!requestDigest(this.crypto, o.request).equals(o.digest) || !this.validRequest(o.request)) {
      this.out.reject('ORDER-REQ with an invalid request', from);
      return;
    }
    this.buffered.set(o.k, o);
    this.drainBuffered();
  }

  private drainBuffered(): void {
    for (;;) {
      const k = this.executor.executedK + 1;
      const o = this.buffered.get(k);
      if (!o) return;
      this.buffered.delete(k);
      const expected = nextHistory(this.crypto, this.history.get(k - 1)!, o.digest);
      if (!sameBytes(expected, o.history)) {
        // Zyzzyva would start a view change here; this benchmark has none (module comment).
        this.out.reject(`ORDER-REQ k=${k}: history hash does not extend h_${k - 1}`, primaryOf(this.view, this.n));
        return;
      }
      this.execute(o);
    }
  }

  /** Executes the ordered request (in order, undoable) and sends the signed SPEC-RESPONSE. */
  private execute(o: OrderReq): void {
    this.history.set(o.k, o.history);
    this.log.set(o.k, o);
    this.executor.commit(o.k, o.view, o.request, o.digest);
    for (const ex of this.executor.drain()) this.afterExecution(ex, o);
  }

  private afterExecution(ex: Execution, o: OrderReq): void {
    const { k, request } = ex;
    this.out.event({ name: 'executed', k, view: ex.view, txns: ex.duplicate ? 0 : request.writes.length });
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
      this.out.send(clientPeer(request.origin), spec);
    }
    if (this.checkpoints.isCheckpoint(k)) this.sendCheckpoint(k);
    const waiting = this.pendingCommits.get(k);
    if (waiting) {
      this.pendingCommits.delete(k);
      this.answerCommit(waiting.from, waiting.commit);
    }
  }

  // -------------------------------------------------------------------------------------
  // COMMIT: the client's two-phase commit path

  /**
   * Zyzzyva §3.2 case 2: a replica receiving COMMIT(c, CC) checks that CC holds nf valid
   * signatures from distinct replicas and that its own history at k is h_k; then it holds the
   * history up to k as committed and answers LOCAL-COMMIT.
   */
  private onCommit(from: Peer, c: Commit): void {
    if (!isClientPeer(from)) {
      this.out.reject('COMMIT not from a client', from);
      return;
    }
    const { k } = c.cert;
    if (k > this.windowTopK) {
      this.out.reject(`COMMIT k=${k} outside the window`, from);
      return;
    }
    // Committed already and our history agrees: the certificate adds nothing to check.
    const mine = this.ownHistory(k, c.clientId, c.reqNo);
    if (k <= this.committed && mine?.equals(c.cert.history)) {
      this.sendLocalCommit(from, c);
      return;
    }
    if (countCertificateSigners(c.cert, c.clientId, c.reqNo, this.deps.replicaVerifiers, this.nf) < this.nf) {
      this.out.reject('COMMIT certificate without nf valid signatures', from);
      return;
    }
    if (k > this.executor.executedK) {
      if (!this.pendingCommits.has(k) && this.pendingCommits.size < this.windowK) this.pendingCommits.set(k, { from, commit: c });
      return;
    }
    this.answerCommit(from, c);
  }

  /** For a certificate already verified: commit up to k if our history matches. */
  private answerCommit(from: Peer, c: Commit): void {
    const mine = this.ownHistory(c.cert.k, c.clientId, c.reqNo);
    if (!mine || !mine.equals(c.cert.history)) {
      this.out.reject(`COMMIT k=${c.cert.k}: certified history differs from ours`, from);
      return;
    }
    this.committed = Math.max(this.committed, c.cert.k);
    this.sendLocalCommit(from, c);
  }

  /** h_k from the history, or, below the stable checkpoint, from the client's cached reply. */
  private ownHistory(k: number, clientId: number, reqNo: number): Buffer | undefined {
    if (k > this.executor.executedK) return undefined;
    const h = this.history.get(k);
    if (h) return h;
    const cached = this.replies.get(clientId);
    return cached && cached.reqNo === reqNo && cached.k === k ? cached.spec.history : undefined;
  }

  private sendLocalCommit(to: Peer, c: Commit): void {
    const cached = this.replies.get(c.clientId);
    const reuse = cached?.localCommit;
    if (reuse && reuse.reqNo === c.reqNo && reuse.k === c.cert.k && reuse.history.equals(c.cert.history)) {
      this.out.send(to, reuse);
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
    this.out.send(to, lc);
  }

  // -------------------------------------------------------------------------------------
  // Checkpoints and garbage collection (DESIGN.md "Protocols"; Zyzzyva §3.1)

  private sendCheckpoint(k: number): void {
    const cp = this.checkpoints.makeCheckpoint(this.id, k, this.ledger.hashAt(k));
    this.out.broadcast(cp);
    const stable = this.checkpoints.add(this.id, k, cp.stateDigest, this.windowTopK);
    if (stable !== undefined) this.onStable(stable);
  }

  private onCheckpoint(from: Peer, c: Checkpoint): void {
    if (isClientPeer(from) || from >= this.n || c.replica !== from) {
      this.out.reject('CHECKPOINT not from its replica', from);
      return;
    }
    const stable = this.checkpoints.add(from, c.k, c.stateDigest, this.windowTopK);
    if (stable !== undefined) this.onStable(stable);
  }

  /**
   * A stable checkpoint at s: executions up to s can never roll back, so their undo records,
   * ORDER-REQs and history hashes (but h_s, which h_{s+1} extends) are dropped.
   */
  private onStable(s: number): void {
    this.out.event({ name: 'checkpointStable', k: s });
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
    if (this.isPrimary) this.drainQueue();
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
