/**
 * A deliberately tiny ordering protocol used only to test the simulator itself, independently
 * of the real protocol cores: the primary (replica 0, no view change) numbers each client
 * batch and broadcasts ORDER(k, batch); every replica executes in order and replies to the
 * client, which accepts on f + 1 matching replies. It tolerates crashed backups, not a
 * crashed primary, and does not retransmit, so it is not a BFT protocol; it exists so the
 * simulator's tests do not depend on the code they are meant to test.
 *
 * extra.corruptReplica / extra.corruptK make that replica record a wrong digest at k, so the
 * safety checks have something to catch.
 */
import { CheckpointTracker, Executor, type Execution } from '../../replica/common.js';
import { DIGEST_BYTES } from '../../replica/crypto.js';
import { Ledger } from '../../replica/ledger.js';
import {
  commonCodecs,
  makeCodec,
  MSG_CHECKPOINT,
  MSG_REQUEST,
  readRequest,
  requestDigest,
  writeRequest,
  type Checkpoint,
  type ClientRequest,
  type FieldCodec,
} from '../../replica/messages.js';
import type { ClientPolicy, ClientPolicyOptions, PendingRequest, ProtocolModule } from '../../replica/protocol.js';
import { YcsbStore } from '../../replica/store.js';
import {
  clientPeer,
  quorums,
  type Peer,
  type ProtocolName,
  type ReplicaCore,
  type ReplicaDeps,
  type ReplicaInput,
  type ReplicaOptions,
  type ReplicaOutput,
  type ReplicaStatus,
  type WireMessage,
} from '../../replica/types.js';

export const MSG_TOY_ORDER = 250;
export const MSG_TOY_REPLY = 251;

export interface ToyOrder extends WireMessage {
  readonly type: typeof MSG_TOY_ORDER;
  readonly k: number;
  readonly request: ClientRequest;
}

export interface ToyReply extends WireMessage {
  readonly type: typeof MSG_TOY_REPLY;
  readonly replica: number;
  readonly k: number;
  readonly clientId: number;
  readonly reqNo: number;
  readonly digest: Buffer;
}

export type ToyMessage = ClientRequest | Checkpoint | ToyOrder | ToyReply;

const toyCodecs: Record<number, FieldCodec<ToyMessage>> = {
  ...(commonCodecs as Record<number, FieldCodec<ToyMessage>>),
  [MSG_TOY_ORDER]: {
    write: (w, m) => {
      const o = m as ToyOrder;
      w.u53(o.k);
      writeRequest(w, o.request);
    },
    read: (r) => ({ type: MSG_TOY_ORDER, k: r.u53('order.k'), request: readRequest(r) }),
  },
  [MSG_TOY_REPLY]: {
    write: (w, m) => {
      const p = m as ToyReply;
      w.u16(p.replica).u53(p.k).u32(p.clientId).u32(p.reqNo).fixed(p.digest, DIGEST_BYTES);
    },
    read: (r) => ({
      type: MSG_TOY_REPLY,
      replica: r.u16('reply.replica'),
      k: r.u53('reply.k'),
      clientId: r.u32('reply.clientId'),
      reqNo: r.u32('reply.reqNo'),
      digest: r.fixed(DIGEST_BYTES, 'reply.digest'),
    }),
  },
};

class ToyReplica implements ReplicaCore<ToyMessage> {
  readonly id: number;
  readonly ledger: Ledger;
  readonly store: YcsbStore;
  private readonly executor: Executor;
  private readonly checkpoints: CheckpointTracker;
  private readonly ordered = new Map<number, number>();
  private nextK = 1;

  constructor(
    private readonly options: ReplicaOptions,
    private readonly deps: ReplicaDeps,
  ) {
    this.id = options.id;
    this.ledger = new Ledger(deps.crypto);
    this.store = new YcsbStore(options.records, options.valueBytes);
    this.executor = new Executor(this.store, this.ledger, false);
    this.checkpoints = new CheckpointTracker(quorums(options.n).nf, options.checkpointIntervalK);
  }

  status(): ReplicaStatus {
    return {
      id: this.id,
      view: 0,
      executedK: this.ledger.height,
      stableK: this.checkpoints.stableK,
      inViewChange: false,
      logEntries: this.executor.pendingCount,
    };
  }

  step(input: ReplicaInput<ToyMessage>, nowMs: number): ReplicaOutput<ToyMessage>[] {
    void nowMs;
    const out: ReplicaOutput<ToyMessage>[] = [];
    if (input.kind !== 'message') return out;
    const { msg, from } = input;
    if (msg.type === MSG_REQUEST && this.id === 0) this.onRequest(msg, out);
    else if (msg.type === MSG_TOY_ORDER && from === 0) this.onOrder(msg, out);
    else if (msg.type === MSG_CHECKPOINT) this.onCheckpoint(from, msg, out);
    return out;
  }

  private onRequest(req: ClientRequest, out: ReplicaOutput<ToyMessage>[]): void {
    const verifier = this.deps.clientVerifier(req.origin);
    if (!verifier || !verifier.verify(req.body, req.signature)) return;
    if ((this.ordered.get(req.clientId) ?? -1) >= req.reqNo) return;
    this.ordered.set(req.clientId, req.reqNo);
    const order: ToyOrder = { type: MSG_TOY_ORDER, k: this.nextK++, request: req };
    out.push({ kind: 'broadcast', msg: order });
    this.onOrder(order, out);
  }

  private onOrder(order: ToyOrder, out: ReplicaOutput<ToyMessage>[]): void {
    const extra = this.options.extra ?? {};
    let digest = requestDigest(this.deps.crypto, order.request);
    if (extra['corruptReplica'] === this.id && extra['corruptK'] === order.k) digest = this.deps.crypto.digest(Buffer.from('corrupt'));
    this.executor.commit(order.k, 0, order.request, digest);
    for (const e of this.executor.drain()) this.afterExecute(e, out);
  }

  private afterExecute(e: Execution, out: ReplicaOutput<ToyMessage>[]): void {
    out.push({ kind: 'event', event: { name: 'executed', k: e.k, view: 0, txns: e.request.writes.length } });
    const reply: ToyReply = { type: MSG_TOY_REPLY, replica: this.id, k: e.k, clientId: e.request.clientId, reqNo: e.request.reqNo, digest: e.digest };
    out.push({ kind: 'send', to: clientPeer(e.request.origin), msg: reply });
    if (this.checkpoints.isCheckpoint(e.k)) {
      const cp = this.checkpoints.makeCheckpoint(this.id, e.k, e.blockHash);
      out.push({ kind: 'broadcast', msg: cp });
      this.onCheckpoint(this.id, cp, out);
    }
  }

  private onCheckpoint(from: Peer, cp: Checkpoint, out?: ReplicaOutput<ToyMessage>[]): void {
    const stable = this.checkpoints.add(from, cp.k, cp.stateDigest, this.ledger.height + this.options.windowK);
    if (stable !== undefined) out?.push({ kind: 'event', event: { name: 'checkpointStable', k: stable } });
  }
}

interface ToyVotes {
  readonly byKey: Map<string, Set<number>>;
}

function toyClientPolicy(options: ClientPolicyOptions): ClientPolicy<ToyMessage> {
  const { f } = quorums(options.n);
  return {
    targets: () => [0],
    replyKey: (msg) => (msg.type === MSG_TOY_REPLY ? { clientId: msg.clientId, reqNo: msg.reqNo } : undefined),
    onReply(p: PendingRequest, from: Peer, msg: ToyMessage) {
      if (msg.type !== MSG_TOY_REPLY || msg.replica !== from) return undefined;
      const votes = (p.policyState ??= { byKey: new Map() } satisfies ToyVotes) as ToyVotes;
      const key = `${msg.k}/${msg.digest.toString('hex')}`;
      const senders = votes.byKey.get(key) ?? new Set<number>();
      votes.byKey.set(key, senders);
      senders.add(from);
      if (senders.size < f + 1) return undefined;
      return { accepted: { k: msg.k, view: 0, digest: msg.digest, path: 'toy' } };
    },
    onTimeout: (p) => [{ kind: 'broadcast', msg: p.request }],
  };
}

export const toy: ProtocolModule<ToyMessage> = {
  // The toy is not one of the four protocols; the name only labels results in tests.
  name: 'toy' as ProtocolName,
  codec: makeCodec(toyCodecs, 'toy'),
  createReplica: (options, deps) => new ToyReplica(options, deps),
  createClientPolicy: toyClientPolicy,
};
