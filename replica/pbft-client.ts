/**
 * PBFT's client rule (Castro and Liskov, OSDI'99 §4.1; the PoE paper's §4(8)): send a request
 * to the primary the client believes in, accept on f+1 matching replies, broadcast the request
 * to every replica on timeout. The replica core is replica/pbft.ts.
 */
import { sameBytes } from './common.js';
import { MSG_REPLY, type PbftMessage, type Reply } from './pbft-wire.js';
import type { ClientPolicy, ClientPolicyOptions, PendingRequest, ReplyOutcome } from './protocol.js';
import { primaryOf, quorums, type ClientOutput, type Peer } from './types.js';

export class PbftClientPolicy implements ClientPolicy<PbftMessage> {
  private readonly f: number;
  /** The view of the latest accepted reply quorum: its primary gets fresh requests. */
  private view = 0;

  constructor(private readonly options: ClientPolicyOptions) {
    this.f = quorums(options.n).f;
  }

  targets(): readonly Peer[] {
    return [primaryOf(this.view, this.options.n)];
  }

  replyKey(msg: PbftMessage): { clientId: number; reqNo: number } | undefined {
    return msg.type === MSG_REPLY ? { clientId: msg.clientId, reqNo: msg.reqNo } : undefined;
  }

  /**
   * f+1 replies from distinct replicas that agree on k, digest and result: at least one is from
   * a non-faulty replica, so the batch committed there. The views may differ when the batch
   * committed on both sides of a view change.
   */
  onReply(p: PendingRequest, from: Peer, msg: PbftMessage): ReplyOutcome<PbftMessage> | undefined {
    if (msg.type !== MSG_REPLY || from >= this.options.n || msg.replica !== from) return undefined;
    if (!sameBytes(msg.digest, p.digest)) return undefined;
    let replies = p.policyState as Reply[] | undefined;
    if (!replies) {
      replies = [];
      p.policyState = replies;
    }
    if (replies.some((r) => r.replica === from)) return undefined;
    replies.push(msg);
    const agreeing = replies.filter((r) => r.k === msg.k && sameBytes(r.result, msg.result));
    if (agreeing.length < this.f + 1) return undefined;
    // The lowest view of the quorum: at least one non-faulty replica is in it or beyond.
    const view = Math.min(...agreeing.map((r) => r.view));
    if (view > this.view) this.view = view;
    return { accepted: { k: msg.k, view, digest: msg.digest, path: 'normal' } };
  }

  /** No f+1 replies in time: the request goes to every replica (PBFT §4.1), which relay it to the primary. */
  onTimeout(p: PendingRequest): readonly ClientOutput<PbftMessage>[] {
    return [{ kind: 'broadcast', msg: p.request }];
  }
}
