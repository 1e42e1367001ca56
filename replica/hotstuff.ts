/**
 * HotStuff (Yin, Malkhi, Reiter, Golan Gueta, Abraham: "HotStuff: BFT Consensus with Linearity
 * and Responsiveness", PODC 2019) as the PoE paper ran it for comparison (paper §4(8), lines
 * ~405-410): "four phases"; each phase is a leader broadcast followed by every replica answering
 * the leader; "each of its replicas [signs] every message using digital signatures" (Ed25519);
 * no threshold signatures, so a quorum certificate (QC) is a list of nf (replica, signature)
 * pairs; and "we permit all of its replicas to act as primaries and work in parallel". Two
 * certificate rules (`options.extra.hotstuffRule`, recorded with every run in its `extra`) and
 * two modes (`options.extra.mode`), in any combination.
 *
 * Certificate rules.
 * 'paper' (default; as the PoE paper ran it, §4(8): "we neither require HotStuff to use
 * threshold signatures, nor require its primaries to forward each replica's message to every
 * other replica"). Every message is Ed25519-signed; votes go to the leader, which verifies each
 * and moves to the next phase on nf votes (its own counted without a signature); its phase
 * messages name the certificate (phase, view, k, digest) but carry no signatures, and backups
 * trust the leader's signed phase message. HOTSTUFF_PAPER_RULE_SAFETY says what this gives up.
 * 'qc' (Yin et al.'s form): the leader forwards the nf signed votes as a quorum certificate and
 * every backup verifies it, except its own signature when it cast that very vote; a
 * certificate verified (or formed) once is not verified again.
 *
 * Ed25519 operations per slot, over all n replicas, fault-free parallel mode (each includes the
 * client batch's signature, verified once by the leader and once by each backup, and the n
 * signed REPLYs); infra/sim/compliance.test.ts asserts these exactly:
 *   paper, n = 4:  17 signatures, 22 verifications, 25 messages
 *   paper, n = 16: 65 signatures, 106 verifications, 121 messages
 *   qc,    n = 4:  20 signatures, 43 verifications, 25 messages (before issue 10: 49 verifications)
 *   qc,    n = 16: 68 signatures, 571 verifications, 121 messages (before: 601)
 * Chained mode, per block in the steady state:
 *   paper, n = 4:  8 signatures, 9 verifications, 10 messages
 *   paper, n = 16: 32 signatures, 41 verifications, 46 messages
 *   qc,    n = 4:  9 signatures, 16 verifications, 10 messages
 *   qc,    n = 16: 33 signatures, 196 verifications, 46 messages
 *
 * Modes.
 * 'parallel' (default; what the paper's figures measured). Basic HotStuff (Algorithm 2) once per
 * sequence number k, many k in flight. Slot k belongs to owners[(k-1+v) mod |owners|] in view v,
 * the owners of k's epoch being the leaders with work (below), drawn from `options.extra.leaders`
 * (comma-separated ids; default every replica 0..n-1). The
 * leader runs PREPARE(v, k, request, justify) -> PREPARE votes -> PRE-COMMIT(v, k, prepareQC)
 * -> votes -> COMMIT(v, k, precommitQC) -> votes -> DECIDE(v, k, commitQC); a replica locks on
 * COMMIT (lockedQC) and votes for a PREPARE only if safeNode holds; on DECIDE it commits k and
 * executes strictly in global k order. Slots are dealt per epoch (the checkpoint interval, at most 64) to
 * the leaders whose clients have work (hotstuff-owners.ts), so an idle leader costs nothing; a
 * leader that owns a slot but has no batch for it fills it with a no-op only once the slot
 * blocks execution and a later slot was proposed, so the global order never waits for it.
 * `extra.hotstuffSlots=roundRobin` keeps the form before issue 10 (every leader owns every
 * L-th slot, idle ones fill eagerly) as an ablation.
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
 * (Algorithm 3's pacemaker, in its simplest form) on the highest QC among them; the timeout
 * doubles per view that makes no progress (up to 64 times). A replica that lacks a block (a
 * proposal's parent, the node of a NEW-VIEW's highQC: it missed proposals in a partition) asks
 * the sender for it by hash (BLOCK-REQUEST, as libhotstuff fetches blocks) and gets the block's
 * original PROPOSAL, checked against its leader's key; committed blocks are kept for this down
 * to the stable checkpoint. Without it, Twins (issue 13) stalled chained HotStuff for good: a
 * replica that missed one block could vote on nothing above it.
 *
 * Checkpoints (CHECKPOINT, common type 2) use the shared CheckpointTracker and are, like every
 * protocol's, authenticated by the transport rather than signed.
 *
 * Messages (type ids 40-49), signed by their sender (σ) but for BLOCK-REQUEST (the transport authenticates it; the answer is signed):
 *   PREPARE(v, k, request, justify?)σ        leader  -> replicas   (parallel)
 *   PRE-COMMIT / COMMIT / DECIDE(v, k, qc)σ  leader  -> replicas   (parallel)
 *   VOTE(phase, v, k, d)σ                    replica -> leader     (both; σ goes into the QC)
 *   REPLY(v, k, d, clientId, reqNo, result)σ replica -> client     (both)
 *   PROPOSAL(block{v, h, parent, request, justify})σ leader -> replicas (chained)
 *   NEW-VIEW(v, highQC)σ                     replica -> leader     (chained)
 *   BLOCK-REQUEST(hash)                      replica -> replica    (chained; answered with the PROPOSAL)
 * `result` is the ledger block hash after executing k, so matching results mean matching
 * executions up to k.
 *
 * Not implemented: slot state transfer in parallel mode, and in chained mode fetching blocks
 * below the stable checkpoint (a replica that misses a message for good, which needs message
 * loss, stays behind); the per-slot view change of parallel mode, so a slot leader that
 * equivocates (a twinned one) stalls the slots it owns for good.
 */
import { sameBytes } from './common.js';
import type { CryptoProviderName, Verifier } from './crypto.js';
import { createCrypto } from './crypto.js';
import { ChainedHotStuff } from './hotstuff-chained.js';
import { type HotStuffMode, hotstuffLeaders, hotstuffMode, hotstuffRule, hotstuffSlots } from './hotstuff-core.js';
import { ParallelHotStuff } from './hotstuff-parallel.js';
import { type HotStuffMessage, hotstuffCodec, MSG_HS_PREPARE, MSG_HS_PROPOSAL, MSG_HS_REPLY, replySignatureValid } from './hotstuff-wire.js';
import { KeyRing } from './keys.js';
import type { ClientRequest } from './messages.js';
import type { ClientPolicy, ClientPolicyOptions, FaultHooks, PendingRequest, ProtocolModule, ReplyOutcome } from './protocol.js';
import type { ClientOutput, Peer, ReplicaCore, ReplicaDeps, ReplicaOptions } from './types.js';
import { isClientPeer, primaryOf, quorums } from './types.js';

export * from './hotstuff-wire.js';
export { ChainedHotStuff } from './hotstuff-chained.js';
export { type HotStuffMode, type HotStuffSlots, hotstuffLeaders, hotstuffMode, hotstuffRule, hotstuffSlots, VIEW_CHANGE_TIMER } from './hotstuff-core.js';
export { SlotOwners } from './hotstuff-owners.js';
export { ParallelHotStuff } from './hotstuff-parallel.js';

/**
 * `extra` as a run records it: the certificate rule named even when it is the default, so every
 * result says which HotStuff it measured (infra/run/spec.ts puts this into RunSpec.extra).
 */
export function hotstuffRecordedExtra<V>(extra: Readonly<Record<string, V | string>>): Record<string, V | string> {
  return { hotstuffRule: hotstuffRule(extra as ReplicaOptions['extra']), ...extra };
}

/**
 * What the 'paper' certificate rule gives up, in one sentence for reports and the README.
 */
export const HOTSTUFF_PAPER_RULE_SAFETY =
  "Under the 'paper' rule (PoE paper §4(8): no threshold signatures, no forwarded votes) backups take the leader's signed word that nf replicas voted, " +
  'so a Byzantine leader can commit different batches for one slot at different correct replicas (it sends PREPARE(A) and then DECIDE(A) to some, ' +
  "PREPARE(B) and DECIDE(B) to others) or lock replicas on a batch nobody certified; HotStuff's safety then holds only while leaders are correct, " +
  "and the 'qc' rule (forwarded certificates of nf signatures, as Yin et al. specify) is needed to keep it against a Byzantine leader.";

// ---------------------------------------------------------------------------------------
// Client policy

/** Per pending request: the k, result and view each replica replied with (the digest matched already). */
type ReplyTally = Map<number, { readonly k: number; readonly result: Buffer; readonly view: number }>;

/**
 * The client's rule, as PBFT's (paper §4(8) and Algorithm 2: "responds to the client"): accept
 * on f+1 matching REPLYs (same k, digest and result) from distinct replicas, at least one of
 * them correct. Fresh requests go to the client's leader: leaders[clientId mod L] in parallel
 * mode, the primary of the newest view seen in chained mode. On a timeout the request goes to
 * every replica, and backups forward it to the leader. Replies reach the client over the
 * transport's MACs, which authenticate the sender, and the client shows them to nobody, so by
 * default it checks no reply signature (as Zyzzyva's fast path, issue 10). With
 * `extra.verifyReplies=true` it checks each one, given `extra.keySeed` (and
 * `extra.cryptoProvider`, default 'node') for the replicas' keys.
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
    if (options.extra?.['verifyReplies'] === true && typeof keySeed === 'string' && keySeed.length > 0) {
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
    if (!sameBytes(msg.digest, p.digest) || msg.clientId !== p.request.clientId || msg.reqNo !== p.request.reqNo) return undefined;
    let tally = p.policyState as ReplyTally | undefined;
    if (!tally) {
      tally = new Map();
      p.policyState = tally;
    }
    if (tally.has(from)) return undefined;
    if (this.verifiers && !replySignatureValid(this.verifiers[from]!, msg)) return undefined;
    tally.set(from, { k: msg.k, result: msg.result, view: msg.view });
    let matching = 0;
    // The view is not part of what must match, so take the smallest the matching replies name:
    // at least one of them is correct, and a faulty replica cannot steer the client ahead.
    // Replies are compared field by field, not through a hex string key per reply.
    let view = Number.MAX_SAFE_INTEGER;
    for (const t of tally.values()) {
      if (t.k !== msg.k || !sameBytes(t.result, msg.result)) continue;
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
    hotstuffRule(options.extra);
    hotstuffSlots(options.extra);
    return hotstuffMode(options.extra) === 'chained' ? new ChainedHotStuff(options, deps) : new ParallelHotStuff(options, deps);
  },
  createClientPolicy(options: ClientPolicyOptions): ClientPolicy<HotStuffMessage> {
    return new HotStuffClientPolicy(options);
  },
  faults: hotstuffFaultHooks,
};
