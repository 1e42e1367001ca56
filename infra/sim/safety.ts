/**
 * Safety checks (DESIGN.md "Safety checks on every run"), pure so the simulator and the
 * real-run harness share them:
 *
 * - `checkSafety`, at the end of a run: the non-faulty replicas' ledgers agree at every height
 *   they share, each ledger's hash chain verifies, and every batch a client accepted sits in
 *   every non-faulty final ledger at the sequence number the client was told, with its digest.
 * - `CommitChecker`, online (TigerBeetle's state checker): one canonical commit list; the
 *   moment a final execution or an acceptance disagrees with it, the run is unsafe.
 *
 * Violations are sentences (strings), each naming the replicas, the height and the digests,
 * so a failing run explains itself.
 */
import type { CryptoProvider } from '../../replica/crypto.js';
import { sameBytes } from '../../replica/common.js';
import { blockHash, genesisHash, type Block, type Ledger } from '../../replica/ledger.js';

/** What the checks read from a ledger; `Ledger` (replica/ledger.ts) satisfies it. */
export interface LedgerLike {
  /** Height of the newest block; blocks 1..height exist. */
  readonly height: number;
  hashAt(k: number): Buffer;
  digestAt(k: number): Buffer;
  /** Whether block k's digest is `digest` (digestAt(k).equals(digest) without the copy), where the ledger can tell. */
  digestEquals?(k: number, digest: Uint8Array): boolean;
  viewAt?(k: number): number;
  /** Recomputes the chain; absent when the blocks carry no hashes to check. */
  verifyChain?(): boolean;
  /** Holds exactly the blocks of `other` (so its chain verifies iff `other`'s does); see Ledger.sameBlocksAs. */
  sameBlocksAs?(other: LedgerLike): boolean;
}

export interface ReplicaLedger {
  readonly replica: number;
  readonly ledger: LedgerLike;
}

/** The part of an AcceptedBatch (replica/types.ts) the checks need. */
export interface AcceptedRecord {
  readonly k: number;
  readonly digest: Buffer | string;
  readonly view?: number;
  readonly clientId?: number;
  readonly reqNo?: number;
}

export interface SafetyInput {
  /** Ledgers of the non-faulty replicas only: faulty ones may hold anything. */
  readonly ledgers: readonly ReplicaLedger[];
  readonly accepted: readonly AcceptedRecord[];
  /**
   * If true (default), an accepted batch missing from a non-faulty ledger (height below k) is a
   * violation: with faults stopped, non-faulty replicas must converge (DESIGN.md).
   */
  readonly requireAcceptedInLedgers?: boolean;
  /** Stop listing after this many violations (default 50); a final line counts the rest. */
  readonly maxViolations?: number;
}

const short = (b: Buffer | string): string => (typeof b === 'string' ? b : b.toString('hex')).slice(0, 12);
const toBuffer = (b: Buffer | string): Buffer => (typeof b === 'string' ? Buffer.from(b, 'hex') : b);

/** A canonical entry's `source`, in words. */
function sourceText(source: CanonicalEntry['source']): string {
  return 'replica' in source ? `executed by replica ${source.replica} in view ${source.view}` : describeAccepted(source);
}

function describeAccepted(a: AcceptedRecord): string {
  const who = a.clientId !== undefined ? ` (client ${a.clientId} req ${a.reqNo ?? '?'})` : '';
  return `accepted batch k=${a.k}${who} digest ${short(a.digest)}`;
}

/** Collects violations up to a limit and counts the rest. */
class ViolationList {
  readonly items: string[] = [];
  private omitted = 0;
  constructor(private readonly max: number) {}
  add(v: string): void {
    if (this.items.length < this.max) this.items.push(v);
    else this.omitted++;
  }
  finish(): string[] {
    return this.omitted > 0 ? [...this.items, `... and ${this.omitted} more violations`] : this.items;
  }
}

/** End-of-run safety check; returns the violations (empty: safe). */
export function checkSafety(input: SafetyInput): string[] {
  const out = new ViolationList(input.maxViolations ?? 50);
  const ledgers = input.ledgers;
  // Ledgers with exactly the same blocks (Ledger.sameBlocksAs; the non-faulty replicas' ledgers
  // normally are) give the same answer to every check below, so each is asked of one of them.
  const reps = sameBlockClasses(ledgers);
  const chainOk: boolean[] = [];
  ledgers.forEach(({ replica, ledger }, i) => {
    if (!ledger.verifyChain) return;
    const ok = reps[i] === i ? ledger.verifyChain() : chainOk[reps[i]!]!;
    chainOk[i] = ok;
    if (!ok) out.add(`replica ${replica}: ledger hash chain does not verify`);
  });
  checkAgreement(ledgers, out);
  checkAccepted(input, out, reps);
  return out.finish();
}

/**
 * For each ledger, the index of the first ledger with exactly its blocks (its own index if none
 * before it has them). A ledger that holds the same blocks as another verifies iff that one does
 * and holds every batch that one holds, at the same heights: one chain is hashed and one ledger
 * searched per class, not one per replica (16 identical ledgers at the end of a simulation).
 */
function sameBlockClasses(ledgers: readonly ReplicaLedger[]): number[] {
  const reps: number[] = [];
  for (let i = 0; i < ledgers.length; i++) {
    let rep = i;
    const same = ledgers[i]!.ledger.sameBlocksAs;
    if (same) {
      for (let j = 0; j < i; j++) {
        if (reps[j] === j && same.call(ledgers[i]!.ledger, ledgers[j]!.ledger)) {
          rep = j;
          break;
        }
      }
    }
    reps.push(rep);
  }
  return reps;
}

/**
 * Every pair of non-faulty ledgers agrees at every shared height. Comparing each ledger with
 * the longest one suffices: if two ledgers differ at height h, at least one of them differs
 * from the longest at h.
 */
function checkAgreement(ledgers: readonly ReplicaLedger[], out: ViolationList): void {
  if (ledgers.length < 2) return;
  let ref = ledgers[0]!;
  for (const l of ledgers) if (l.ledger.height > ref.ledger.height) ref = l;
  for (const other of ledgers) {
    if (other === ref) continue;
    const shared = Math.min(other.ledger.height, ref.ledger.height);
    if (shared === 0) continue;
    // Equal hashes at the shared height mean equal chains below it (the cheap common case).
    if (other.ledger.hashAt(shared).equals(ref.ledger.hashAt(shared))) continue;
    const a = ref.ledger;
    const b = other.ledger;
    let diverged = false;
    for (let k = 1; k <= shared; k++) {
      if (!a.digestAt(k).equals(b.digestAt(k))) {
        out.add(
          `ledgers diverge: replica ${ref.replica} and replica ${other.replica} differ at height ${k} ` +
            `(digest ${short(a.digestAt(k))} vs ${short(b.digestAt(k))})`,
        );
        diverged = true;
        break;
      }
    }
    if (diverged) continue;
    // Same batches everywhere, yet different hashes: the blocks' views or the chain differ.
    for (let k = 1; k <= shared; k++) {
      if (!a.hashAt(k).equals(b.hashAt(k))) {
        const views = a.viewAt && b.viewAt ? ` (views ${a.viewAt(k)} vs ${b.viewAt(k)})` : '';
        out.add(
          `ledger hash chains diverge: replica ${ref.replica} and replica ${other.replica} hold the same digests ` +
            `but different block hashes from height ${k}${views}`,
        );
        break;
      }
    }
  }
}

/** No accepted batch is missing from, or replaced in, a non-faulty final ledger. */
function checkAccepted(input: SafetyInput, out: ViolationList, reps: readonly number[]): void {
  const requireAll = input.requireAcceptedInLedgers ?? true;
  const byK = new Map<number, AcceptedRecord>();
  for (const a of input.accepted) {
    if (!Number.isInteger(a.k) || a.k < 1) {
      out.add(`${describeAccepted(a)}: sequence number must be an integer >= 1`);
      continue;
    }
    const prev = byK.get(a.k);
    if (prev && !toBuffer(prev.digest).equals(toBuffer(a.digest))) {
      out.add(`conflicting acceptances at k=${a.k}: ${describeAccepted(prev)} and ${describeAccepted(a)}`);
      continue;
    }
    if (!prev) byK.set(a.k, a);
  }
  /** Per ledger, whether it holds the accepted batch being checked (read by the ledgers of its class). */
  const held: boolean[] = [];
  for (const a of input.accepted) {
    if (byK.get(a.k) !== a) continue;
    const want = toBuffer(a.digest);
    const missing: number[] = [];
    input.ledgers.forEach(({ replica, ledger }, i) => {
      if (ledger.height < a.k) {
        missing.push(replica);
        return;
      }
      // A ledger with the blocks of an earlier one holds what that one holds (sameBlockClasses).
      const rep = reps[i]!;
      const holds = rep !== i ? held[rep]! : ledger.digestEquals ? ledger.digestEquals(a.k, want) : ledger.digestAt(a.k).equals(want);
      held[i] = holds;
      if (!holds) out.add(`${describeAccepted(a)} is replaced at replica ${replica} by digest ${short(ledger.digestAt(a.k))}`);
    });
    if (requireAll && missing.length > 0) {
      out.add(`${describeAccepted(a)} is missing from the final ledger of replica${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
    }
  }
}

/**
 * A ledger from hand-made arrays: `digests[i]` (and `hashes[i]`) is the block at height i + 1.
 * Without `hashes`, a block's hash is its digest, so agreement is compared batch by batch.
 */
export function ledgerFromArrays(digests: readonly (Buffer | string)[], hashes?: readonly (Buffer | string)[]): LedgerLike {
  if (hashes && hashes.length !== digests.length) throw new RangeError('ledgerFromArrays: hashes and digests differ in length');
  const d = digests.map(toBuffer);
  const h = hashes ? hashes.map(toBuffer) : d;
  const at = (arr: Buffer[], k: number): Buffer => {
    const b = arr[k - 1];
    if (!b) throw new RangeError(`no block at height ${k} (height ${arr.length})`);
    return b;
  };
  return {
    height: d.length,
    hashAt: (k) => at(h, k),
    digestAt: (k) => at(d, k),
  };
}

/**
 * A ledger from its blocks (heights 1..n in order, e.g. read back from a replica process).
 * `verifyChain` recomputes every block hash from the genesis block of `initialPrimary`, so a
 * block whose batch, view or link was altered is caught.
 */
export function ledgerFromBlocks(blocks: readonly Block[], crypto: CryptoProvider, initialPrimary = 0): LedgerLike {
  blocks.forEach((b, i) => {
    if (b.k !== i + 1) throw new RangeError(`ledgerFromBlocks: block ${i} has k=${b.k}, want ${i + 1}`);
  });
  const at = (k: number): Block => {
    const b = blocks[k - 1];
    if (!b) throw new RangeError(`no block at height ${k} (height ${blocks.length})`);
    return b;
  };
  return {
    height: blocks.length,
    hashAt: (k) => at(k).hash,
    digestAt: (k) => at(k).digest,
    viewAt: (k) => at(k).view,
    verifyChain: () => {
      let prev = genesisHash(crypto, initialPrimary);
      for (const b of blocks) {
        if (!b.prevHash.equals(prev)) return false;
        prev = blockHash(crypto, b.k, b.digest, b.view, prev);
        if (!prev.equals(b.hash)) return false;
      }
      return true;
    },
  };
}

/** The non-faulty replicas' ledgers, ready for `checkSafety`. */
export function replicaLedgers(ledgers: ReadonlyMap<number, Ledger> | readonly (readonly [number, Ledger])[]): ReplicaLedger[] {
  return [...ledgers].map(([replica, ledger]) => ({ replica, ledger }));
}

// ---------------------------------------------------------------------------------------
// Online checking

/** Where CommitChecker.onExecutedAt reads an executed batch's digest (a Ledger is one): digestAt's copy the checker may keep. */
export type ExecutedDigest = Required<Pick<LedgerLike, 'digestAt' | 'digestEquals'>>;

interface CanonicalEntry {
  readonly digest: Buffer;
  readonly view: number;
  /**
   * Who fixed this entry, for the violation message: the acceptance, or the replica and view of
   * the execution. Described only when a violation is reported (sourceText), not for every
   * batch: the hex of a digest per acceptance was 1.5% of a PoE run.
   */
  readonly source: AcceptedRecord | { readonly replica: number; readonly view: number };
  /** True when a client accepted it (not only a replica executing it). */
  readonly accepted: boolean;
}

/**
 * One canonical commit list, checked the moment anything commits (TigerBeetle's StateChecker).
 *
 * An acceptance, and an execution of a protocol that executes only what is committed (PBFT,
 * HotStuff), are final: they fix the canonical batch at k, and anything final that disagrees
 * is a violation at once. PoE and Zyzzyva execute speculatively and may roll back (paper
 * §3.3.5), so their executions are only checked against batches clients accepted, and only
 * from the accepted view on: a replica lagging in an older view may still execute something it
 * will roll back. Their final ledgers are checked by `checkSafety` at the end.
 */
export class CommitChecker {
  private readonly canonical = new Map<number, CanonicalEntry>();

  get size(): number {
    return this.canonical.size;
  }

  digestAt(k: number): Buffer | undefined {
    return this.canonical.get(k)?.digest;
  }

  /** A client accepted batch `a`; returns a violation or undefined. */
  onAccepted(a: AcceptedRecord & { readonly view: number }): string | undefined {
    const digest = toBuffer(a.digest);
    const entry = this.canonical.get(a.k);
    if (entry) {
      if (!sameBytes(entry.digest, digest)) {
        return `${describeAccepted(a)} in view ${a.view} contradicts the canonical commit at k=${a.k}: digest ${short(entry.digest)} (${sourceText(entry.source)})`;
      }
      if (!entry.accepted) this.canonical.set(a.k, { ...entry, accepted: true, view: Math.min(entry.view, a.view) });
      return undefined;
    }
    this.canonical.set(a.k, { digest, view: a.view, source: a, accepted: true });
    return undefined;
  }

  /**
   * Replica `replica` (non-faulty) rolled back the batch `digest` it had executed at k in `view`:
   * a violation if a client accepted that block (speculative non-divergence, PoE paper
   * Definition 3.1: what a client accepted is never undone).
   */
  onRolledBack(replica: number, k: number, digest: Buffer, view: number): string | undefined {
    const entry = this.canonical.get(k);
    // The same batch from another view is another block (its view is in the block hash, so in
    // the result the client accepted): a replica that speculated on it in an abandoned view
    // rolls that back legitimately and executes it again in the view that kept it.
    if (!entry?.accepted || !sameBytes(entry.digest, digest) || entry.view !== view) return undefined;
    return `replica ${replica} rolled back k=${k} (digest ${short(digest)}, view ${view}), which a client had accepted (${sourceText(entry.source)})`;
  }

  /**
   * Replica `replica` executed the batch at k in `ledger`, in `view`; `final`: the protocol never
   * rolls it back (PBFT, HotStuff). Its digest is compared where it lies, and copied only when it
   * becomes canonical (the simulator calls this at every replica for every batch).
   */
  onExecutedAt(replica: number, k: number, ledger: ExecutedDigest, view: number, final: boolean): string | undefined {
    const entry = this.canonical.get(k);
    if (!entry) {
      if (final) this.canonical.set(k, { digest: ledger.digestAt(k), view, source: { replica, view }, accepted: false });
      return undefined;
    }
    if (ledger.digestEquals(k, entry.digest)) return undefined;
    if (!final && (!entry.accepted || view < entry.view)) return undefined;
    return (
      `replica ${replica} executed digest ${short(ledger.digestAt(k))} at k=${k} in view ${view}, ` +
      `but the canonical commit there is ${short(entry.digest)} (${sourceText(entry.source)})`
    );
  }
}
