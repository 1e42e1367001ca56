/**
 * PoE's client rule (paper Figure 3, lines 1-3; §3.2): send ⟨T⟩c to the primary, accept on nf
 * identical INFORM(D(⟨T⟩c), v, k, r) from distinct replicas, and broadcast the request to all
 * replicas after a timeout. The replica core is replica/poe.ts.
 */
import { sameBytes } from './common.js';
import type { ClientRequest } from './messages.js';
import { MSG_INFORM, type PoeMessage } from './poe-wire.js';
import type { ClientPolicy, ClientPolicyOptions, PendingRequest, ReplyOutcome } from './protocol.js';
import type { ClientOutput, Peer } from './types.js';
import { primaryOf, quorums } from './types.js';

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

  /** The INFORM itself carries the key (no object per reply). */
  replyKey(msg: PoeMessage): { readonly clientId: number; readonly reqNo: number } | undefined {
    return msg.type === MSG_INFORM ? msg : undefined;
  }

  /** Lines 2-3: accept on identical INFORM(D(⟨T⟩c), v, k, r) from nf distinct replicas. */
  onReply(p: PendingRequest, from: Peer, msg: PoeMessage, nowMs: number): ReplyOutcome<PoeMessage> | undefined {
    void nowMs;
    if (msg.type !== MSG_INFORM || !Number.isInteger(from) || from < 0 || from >= this.n) return undefined;
    if (!sameBytes(msg.digest, p.digest)) return undefined;
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
    // A loop, not find() with a closure: this runs for every INFORM (n per batch).
    let match: InformVotes | undefined;
    for (const x of votes) {
      if (x.view === msg.view && x.k === msg.k && sameBytes(x.result, msg.result)) {
        match = x;
        break;
      }
    }
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
