/**
 * The safety checker catches hand-made violating ledgers and acceptances, and passes agreeing
 * ones (DESIGN.md "Safety checks on every run").
 */
import { describe, expect, it } from 'vitest';
import { createCrypto } from '../../replica/crypto.js';
import { Ledger } from '../../replica/ledger.js';
import { checkSafety, CommitChecker, ledgerFromArrays, ledgerFromBlocks, replicaLedgers, type AcceptedRecord } from './safety.js';

const crypto = createCrypto('sim');
const d = (label: string): Buffer => crypto.digest(Buffer.from(label));

/** A real ledger holding batches named by `labels` at heights 1.., all in `view`. */
function ledger(labels: readonly string[], view = 0): Ledger {
  const l = new Ledger(crypto);
  labels.forEach((x, i) => l.append(i + 1, d(x), view));
  return l;
}

const accepted = (k: number, label: string, clientId = 0): AcceptedRecord => ({ k, digest: d(label), clientId, reqNo: k, view: 0 });

describe('checkSafety', () => {
  it('passes agreeing ledgers of different heights and accepted batches inside all of them', () => {
    const ledgers = replicaLedgers([
      [0, ledger(['a', 'b', 'c', 'd'])],
      [1, ledger(['a', 'b', 'c'])],
      [2, ledger(['a', 'b', 'c', 'd'])],
    ]);
    expect(checkSafety({ ledgers, accepted: [accepted(1, 'a'), accepted(3, 'c')] })).toEqual([]);
  });

  it('reports two ledgers that differ at a shared height, naming replicas, height and digests', () => {
    const ledgers = replicaLedgers([
      [0, ledger(['a', 'b', 'c', 'd'])],
      [1, ledger(['a', 'x', 'c'])],
    ]);
    const v = checkSafety({ ledgers, accepted: [] });
    expect(v).toHaveLength(1);
    expect(v[0]).toMatch(/ledgers diverge: replica 0 and replica 1 differ at height 2/);
    expect(v[0]).toContain(d('x').toString('hex').slice(0, 12));
  });

  it('catches a divergence between two short ledgers that both agree with nobody longer', () => {
    // Replicas 1 and 2 differ from each other at height 1; the longest (0) differs from one of them.
    const ledgers = replicaLedgers([
      [0, ledger(['a', 'b', 'c'])],
      [1, ledger(['a'])],
      [2, ledger(['z'])],
    ]);
    const v = checkSafety({ ledgers, accepted: [] });
    expect(v.some((x) => /replica 2 differ at height 1/.test(x))).toBe(true);
  });

  it('reports equal digests chained under different views as a hash-chain divergence', () => {
    const ledgers = replicaLedgers([
      [0, ledger(['a', 'b'], 0)],
      [1, ledger(['a', 'b'], 1)],
    ]);
    const v = checkSafety({ ledgers, accepted: [] });
    expect(v).toHaveLength(1);
    expect(v[0]).toMatch(/same digests but different block hashes from height 1 \(views 0 vs 1\)/);
  });

  it('reports an accepted batch missing from a non-faulty final ledger', () => {
    const ledgers = replicaLedgers([
      [0, ledger(['a', 'b', 'c'])],
      [3, ledger(['a'])],
    ]);
    const v = checkSafety({ ledgers, accepted: [accepted(3, 'c', 7)] });
    expect(v).toEqual([expect.stringMatching(/accepted batch k=3 \(client 7 req 3\) .* missing from the final ledger of replica 3$/)]);
    // A run that stopped early may leave replicas behind: then only contradictions count.
    expect(checkSafety({ ledgers, accepted: [accepted(3, 'c', 7)], requireAcceptedInLedgers: false })).toEqual([]);
  });

  it('reports an accepted batch that another batch replaced at its position', () => {
    const ledgers = replicaLedgers([
      [0, ledger(['a', 'b', 'c'])],
      [1, ledger(['a', 'b', 'c'])],
    ]);
    const v = checkSafety({ ledgers, accepted: [accepted(2, 'q')] });
    expect(v).toHaveLength(2);
    expect(v[0]).toMatch(/accepted batch k=2 .* is replaced at replica 0 by digest/);
    expect(v[1]).toMatch(/replaced at replica 1/);
  });

  it('reports two clients told different batches at the same position', () => {
    const ledgers = replicaLedgers([[0, ledger(['a', 'b'])]]);
    const v = checkSafety({ ledgers, accepted: [accepted(2, 'b', 1), accepted(2, 'z', 2)] });
    expect(v).toEqual([expect.stringMatching(/conflicting acceptances at k=2: .*client 1.* and .*client 2/)]);
  });

  it('reports a ledger whose hash chain does not verify', () => {
    const l = ledger(['a', 'b', 'c']);
    const blocks = [1, 2, 3].map((k) => l.block(k));
    expect(checkSafety({ ledgers: [{ replica: 5, ledger: ledgerFromBlocks(blocks, crypto) }], accepted: [] })).toEqual([]);
    // Block 2 claims another batch but keeps its hash: the chain no longer verifies.
    const forged = blocks.map((b) => (b.k === 2 ? { ...b, digest: d('forged') } : b));
    const v = checkSafety({ ledgers: [{ replica: 5, ledger: ledgerFromBlocks(forged, crypto) }], accepted: [] });
    expect(v).toEqual(['replica 5: ledger hash chain does not verify']);
    // A real Ledger is verified through its own verifyChain.
    const spy = { height: 0, hashAt: l.hashAt.bind(l), digestAt: l.digestAt.bind(l), verifyChain: () => false };
    expect(checkSafety({ ledgers: [{ replica: 6, ledger: spy }], accepted: [] })).toEqual(['replica 6: ledger hash chain does not verify']);
  });

  it('verifies one chain per distinct set of blocks, and still catches a corrupted copy among identical ledgers', () => {
    // Ledgers with exactly the blocks of one that verified are not hashed again (Ledger.sameBlocksAs).
    let hashed = 0;
    const counted = (l: Ledger): Ledger => {
      const own = l.verifyChain.bind(l);
      l.verifyChain = () => {
        hashed++;
        return own();
      };
      return l;
    };
    const same = [0, 1, 2].map((r) => ({ replica: r, ledger: counted(ledger(['a', 'b', 'c'])) }));
    expect(checkSafety({ ledgers: same, accepted: [] })).toEqual([]);
    expect(hashed).toBe(1);
    // Replica 2's stored hash of block 2 is corrupted: its blocks differ, so its chain is hashed and fails.
    (same[2]!.ledger as unknown as { hashes: { set(i: number, b: Buffer): void } }).hashes.set(2, d('corrupt'));
    hashed = 0;
    const v = checkSafety({ ledgers: same, accepted: [] });
    expect(v).toContain('replica 2: ledger hash chain does not verify');
    expect(hashed).toBe(2);
  });

  it('reports a replaced batch at every replica of a class of identical ledgers, in replica order', () => {
    // Replicas 1 and 3 hold the same blocks (one class, checked once); both are named.
    const ledgers = replicaLedgers([
      [0, ledger(['a', 'b'])],
      [1, ledger(['a', 'x'])],
      [2, ledger(['a', 'b'])],
      [3, ledger(['a', 'x'])],
    ]);
    const v = checkSafety({ ledgers, accepted: [accepted(2, 'b', 1)] }).filter((x) => /is replaced/.test(x));
    expect(v).toEqual([expect.stringMatching(/is replaced at replica 1 by digest/), expect.stringMatching(/is replaced at replica 3 by digest/)]);
  });

  it('accepts hand-made arrays (hex strings or buffers) as ledgers', () => {
    const hexOf = (x: string): string => d(x).toString('hex');
    const ledgers = [
      { replica: 0, ledger: ledgerFromArrays([hexOf('a'), hexOf('b')]) },
      { replica: 1, ledger: ledgerFromArrays([d('a'), d('c')]) },
    ];
    const v = checkSafety({ ledgers, accepted: [{ k: 1, digest: hexOf('a') }] });
    expect(v).toEqual([expect.stringMatching(/replica 0 and replica 1 differ at height 2/)]);
  });

  it('limits the list and says how many more there were', () => {
    const ledgers = Array.from({ length: 10 }, (_, i) => ({ replica: i, ledger: ledger([`r${i}`]) }));
    const v = checkSafety({ ledgers, accepted: [], maxViolations: 3 });
    expect(v).toHaveLength(4);
    expect(v[3]).toBe('... and 6 more violations');
  });
});

/** Replica `replica` executed `digest` at k: the checker reads it as from a ledger holding it. */
const executed = (c: CommitChecker, replica: number, k: number, digest: Buffer, view: number, final: boolean): string | undefined =>
  c.onExecutedAt(replica, k, { digestAt: () => digest, digestEquals: (_, x) => digest.equals(x) }, view, final);

describe('CommitChecker (online)', () => {
  it('fixes the canonical batch at k by the first final commit and flags any other', () => {
    const c = new CommitChecker();
    expect(executed(c, 0, 1, d('a'), 0, true)).toBeUndefined();
    expect(executed(c, 1, 1, d('a'), 0, true)).toBeUndefined();
    expect(executed(c, 2, 1, d('b'), 0, true)).toMatch(
      /replica 2 executed digest .* at k=1 in view 0, but the canonical commit there is .* \(executed by replica 0 in view 0\)/,
    );
    expect(c.onAccepted({ ...accepted(1, 'b'), view: 0 })).toMatch(/contradicts the canonical commit at k=1/);
    expect(c.onAccepted({ ...accepted(1, 'a'), view: 0 })).toBeUndefined();
  });

  it('lets speculative executions differ until a client accepted, and from the accepted view on flags them', () => {
    const c = new CommitChecker();
    // PoE/Zyzzyva: a speculative execution fixes nothing, so a later different one is fine.
    expect(executed(c, 0, 1, d('a'), 0, false)).toBeUndefined();
    expect(executed(c, 1, 1, d('b'), 0, false)).toBeUndefined();
    expect(c.onAccepted({ ...accepted(1, 'b'), view: 1 })).toBeUndefined();
    // A replica still in view 0 may execute what it will roll back; in view 1 it may not.
    expect(executed(c, 2, 1, d('a'), 0, false)).toBeUndefined();
    expect(executed(c, 2, 1, d('a'), 1, false)).toMatch(/replica 2 executed .* at k=1 in view 1/);
    expect(executed(c, 3, 1, d('b'), 1, false)).toBeUndefined();
  });

  it('flags a rollback of the block a client accepted, and only that block', () => {
    // Reference: PoE paper Definition 3.1 (speculative non-divergence), Proposition 3.5
    const c = new CommitChecker();
    expect(c.onRolledBack(2, 1, d('a'), 0)).toBeUndefined(); // nothing accepted at k=1 yet
    expect(c.onAccepted({ ...accepted(1, 'a'), view: 1 })).toBeUndefined();
    expect(c.onRolledBack(2, 1, d('b'), 1)).toBeUndefined(); // another batch: it had to go
    // The same batch speculated on in an abandoned view is another block: undone, then executed again in view 1.
    expect(c.onRolledBack(2, 1, d('a'), 0)).toBeUndefined();
    expect(c.onRolledBack(2, 1, d('a'), 1)).toMatch(/^replica 2 rolled back k=1 \(digest \w+, view 1\), which a client had accepted \(accepted batch k=1/);
    expect(c.onRolledBack(2, 2, d('a'), 1)).toBeUndefined();
  });
});
