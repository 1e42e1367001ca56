/**
 * Zyzzyva's client half (zyzzyva.ts's header; Kotla et al., SOSP 2007, §3.2; PoE paper §4(8)):
 * the fast path on n matching SPEC-RESPONSEs, the commit certificate of nf after a timeout.
 * Replies reach the client over the transport's MACs; it checks reply signatures only when it
 * builds a commit certificate (issue 10, item 3).
 */
import { sameBytes } from './common.js';
import type { CryptoProvider, CryptoProviderName, Verifier } from './crypto.js';
import { createCrypto } from './crypto.js';
import { KeyRing } from './keys.js';
import type { ClientPolicy, ClientPolicyOptions, PendingRequest, ReplyOutcome } from './protocol.js';
import type { ClientOutput, Peer } from './types.js';
import { isClientPeer, primaryOf, quorums } from './types.js';
import {
  type Commit,
  type LocalCommit,
  localCommitKey,
  MSG_COMMIT,
  MSG_LOCAL_COMMIT,
  MSG_SPEC_RESPONSE,
  type SpecResponse,
  specKey,
  specSignedBytes,
  type ZyzzyvaMessage,
} from './zyzzyva-wire.js';

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

  /** `crypto`: the provider to verify with (tests pass a CountingCrypto); default `extra.cryptoProvider`. */
  constructor(options: ClientPolicyOptions, crypto?: CryptoProvider) {
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
    this.verifiers = new KeyRing(crypto ?? options.crypto ?? createCrypto(provider as CryptoProviderName), keySeed, this.n, 0).replicaVerifiers;
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
   * Zyzzyva §3.2 case 1 (fast path): n matching SPEC-RESPONSEs from distinct replicas (the
   * transport authenticated each sender) complete the request. If the timer already fired
   * (case 2), nf matching ones with valid signatures make a commit certificate.
   */
  private onSpecResponse(p: PendingRequest, from: Peer, s: SpecResponse): ReplyOutcome<ZyzzyvaMessage> | undefined {
    const st = this.state(p);
    if (s.replica !== from || st.responded.has(from) || !sameBytes(s.digest, p.digest)) return undefined;
    if (s.clientId !== p.request.clientId || s.reqNo !== p.request.reqNo) return undefined;
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
      const commit = this.commitFor(p, group);
      if (!commit) return undefined;
      st.commitSent = true;
      return { send: [commit] };
    }
    return undefined;
  }

  /** Zyzzyva §3.2 case 2: nf matching LOCAL-COMMITs from distinct replicas complete it. */
  private onLocalCommit(p: PendingRequest, from: Peer, c: LocalCommit): ReplyOutcome<ZyzzyvaMessage> | undefined {
    if (c.replica !== from || !sameBytes(c.digest, p.digest)) return undefined;
    if (c.clientId !== p.request.clientId || c.reqNo !== p.request.reqNo) return undefined;
    // The transport authenticated the sender; the signature is for third parties, and the
    // client shows LOCAL-COMMITs to nobody.
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

  /**
   * The commit certificate of a group of matching SPEC-RESPONSEs: the first nf signatures that
   * verify (a bad one is dropped from the group), or undefined while fewer than nf do. These
   * are the only reply signatures the client checks: the replicas will check them too.
   */
  private commitFor(
    p: PendingRequest,
    group: { readonly first: SpecResponse; readonly signatures: Map<number, Buffer> },
  ): ClientOutput<ZyzzyvaMessage> | undefined {
    const { view, k, history, digest, result } = group.first;
    const signed = specSignedBytes({ ...group.first, clientId: p.request.clientId, reqNo: p.request.reqNo });
    const signers: { replica: number; signature: Buffer }[] = [];
    for (const [replica, signature] of [...group.signatures]) {
      if (signers.length >= this.nf) break;
      if (this.verifiers[replica]!.verify(signed, signature)) signers.push({ replica, signature });
      else group.signatures.delete(replica);
    }
    if (signers.length < this.nf) return undefined;
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
    const commit = best && best.signatures.size >= this.nf ? this.commitFor(p, best) : undefined;
    if (commit) {
      st.commitSent = true;
      return [commit];
    }
    return [{ kind: 'broadcast', msg: p.request }];
  }
}
