/**
 * The fault scenarios of issue 4's simulator suite (infra/sim/scenarios.test.ts): each is a
 * family of runs, and a seed picks one member (crash times, victims, loss rates, partition
 * windows) as well as the run's own randomness. Everything a seed picks ends up in the
 * `SimInput`, so a run's replay line (`poe-bench sim ... --seed S --fault ... --crash ...`)
 * reproduces it without knowing which scenario made it.
 *
 * What each family must show (checkScenario): safety always (the simulator's online and final
 * checks, including "no batch a client accepted is rolled back at a non-faulty replica"), and
 * liveness once a non-faulty primary is in place and the network heals: every batch accepted,
 * and, after the settle phase, every non-faulty replica at the same ledger height and head.
 *
 * PoE and PBFT have a view change and run every family. Zyzzyva (no view change, no state
 * transfer) and HotStuff (parallel leaders, no per-slot view change, no state transfer) run
 * only what needs neither: duplication, reordering and delays, and crashed backups.
 */
import { Rng } from '../../client/random.js';
import type { FaultSpec } from '../../replica/byzantine.js';
import { CLIENT_PEER_BASE, quorums, type ProtocolName } from '../../replica/types.js';
import type { DelaySpec, Partition } from './network.js';
import type { FaultAssignment, SimInput } from './options.js';
import type { SimResult } from './simulator.js';

export type ScenarioName =
  | 'primary-crash'
  | 'primary-crash-in-view-change'
  | 'equivocating-primary'
  | 'primary-in-the-dark'
  | 'message-loss'
  | 'duplication-reordering'
  | 'healing-partition'
  | 'crashed-backups'
  | 'crash-and-loss'
  | 'lossy-primary-partition'
  | 'forged-view-change'
  | 'conflicting-votes'
  | 'twins';

/**
 * The families of lying replicas (issue 13): what `poe-bench sim --scenario twins` runs. The
 * Twins family proper runs honest code twice under one identity; the other two forge view-change
 * content and votes outright.
 */
export const BYZANTINE_FAMILIES: readonly ScenarioName[] = ['forged-view-change', 'conflicting-votes', 'twins'];

export interface Scenario {
  readonly name: ScenarioName;
  /** What the family does, in a sentence, for test names. */
  readonly what: string;
  readonly protocols: readonly ProtocolName[];
  /** The run for one seed. */
  build(protocol: ProtocolName, seed: number): SimInput;
  /** A view change must happen (the primary of view 0 stopped taking part before the clients were done). */
  readonly needsViewChange?: (input: SimInput, r: SimResult) => boolean;
}

const VIEW_CHANGE_PROTOCOLS: readonly ProtocolName[] = ['poe', 'pbft'];
const ALL_PROTOCOLS: readonly ProtocolName[] = ['poe', 'pbft', 'zyzzyva', 'hotstuff'];

/** An integer in [lo, hi]. */
const between = (rng: Rng, lo: number, hi: number): number => lo + rng.nextInt(hi - lo + 1);
/** A probability in [lo, hi), rounded to 3 decimals so replay lines stay short. */
const rate = (rng: Rng, lo: number, hi: number): number => Math.round((lo + rng.nextDouble() * (hi - lo)) * 1000) / 1000;
const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.nextInt(xs.length)]!;

/** Jitter (and sometimes a tail) so that messages on one link overtake each other. */
function jitteryDelay(rng: Rng): DelaySpec {
  return { baseMs: 1, jitterMs: between(rng, 1, 4), tailMeanMs: rng.chance(0.5) ? between(rng, 1, 3) : 0 };
}

/** `count` distinct backups of view 0 (replicas 1..n-1), ascending. */
function someBackups(rng: Rng, n: number, count: number): number[] {
  const pool = Array.from({ length: n - 1 }, (_, i) => i + 1);
  const out: number[] = [];
  while (out.length < count) out.push(pool.splice(rng.nextInt(pool.length), 1)[0]!);
  return out.sort((a, b) => a - b);
}

const fault = (replica: number, f: FaultSpec): FaultAssignment => ({ replica, fault: f });

/** Small runs: a few hundred seeds must fit in a test file of about a minute on two busy cores. */
function base(protocol: ProtocolName, seed: number, n: number, batches: number): SimInput {
  // A live run of these sizes takes a few seconds of virtual time at most: fail fast otherwise.
  return { protocol, n, seed, batches, clients: Math.max(8, n), delay: { baseMs: 1, jitterMs: 1, tailMeanMs: 0 }, maxTimeMs: 120_000 };
}

/**
 * The primary of view 0 stopped (crash time or batch count) while it still had batches to order,
 * so a view change had to happen. A crash shortly before the clients finish may come after the
 * primary proposed the clients' last batches: then the backups commit everything in view 0, every
 * batch is accepted without a view change, and nothing is wrong (issue 13 item 4: seeds 30228 for
 * PoE and 40610 for PBFT at n = 7 were false alarms of this kind). Only the view-0 primary orders
 * batches in view 0, so "all accepted, no view change" is proof it had ordered them all.
 */
function primaryStoppedEarly(input: SimInput, r: SimResult): boolean {
  const crash = input.crashes?.find((c) => c.replica === 0);
  if (crash) return crash.atMs < r.virtualTimeMs && !(r.viewChanges === 0 && r.acceptedBatches === input.batches);
  const stop = input.faults?.find((a) => a.replica === 0 && a.fault.kind === 'stopAfter');
  return stop !== undefined && stop.fault.kind === 'stopAfter' && stop.fault.batches < input.batches;
}

/**
 * A family's run with up to f backups drawn to misbehave: n = 4 with probability `pFour`, else 7
 * (HotStuff always 4), on a jittery network that duplicates up to `maxDup` of the messages.
 * The draws come in a fixed order, so a seed picks the same run whichever family asks.
 */
function upToFBackups(protocol: ProtocolName, seed: number, rng: Rng, pFour: number, maxDup: number): { n: number; backups: number[]; input: SimInput } {
  const n = protocol === 'hotstuff' ? 4 : rng.chance(pFour) ? 4 : 7;
  const backups = someBackups(rng, n, between(rng, 1, quorums(n).f));
  const input: SimInput = {
    ...base(protocol, seed, n, protocol === 'hotstuff' ? 40 : n === 4 ? 100 : 50),
    delay: jitteryDelay(rng),
    duplicateProbability: rate(rng, 0, maxDup),
  };
  return { n, backups, input };
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'primary-crash',
    what: 'the primary crashes at a random time or after a random number of batches',
    protocols: VIEW_CHANGE_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const input = { ...base(protocol, seed, 4, 120), delay: jitteryDelay(rng) };
      return rng.chance(0.5)
        ? { ...input, crashes: [{ replica: 0, atMs: between(rng, 2, 80) }] }
        : { ...input, faults: [fault(0, { kind: 'stopAfter', batches: between(rng, 1, 100) })] };
    },
    needsViewChange: primaryStoppedEarly,
  },
  {
    name: 'primary-crash-in-view-change',
    what: 'n=7: the primary crashes, then the next primary crashes while the view change to it runs',
    protocols: VIEW_CHANGE_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const first = between(rng, 2, 40);
      // Clients time out after 200 ms, backups after a further 500 ms: the view change to view 1
      // runs from about 700 ms after the crash; the next primary dies somewhere around it.
      const second = first + between(rng, 300, 1400);
      return {
        ...base(protocol, seed, 7, 60),
        delay: jitteryDelay(rng),
        crashes: [
          { replica: 0, atMs: first },
          { replica: 1, atMs: second },
        ],
      };
    },
    needsViewChange: primaryStoppedEarly,
  },
  {
    name: 'equivocating-primary',
    what: 'the primary sends half the backups the batches of consecutive proposals swapped (paper Example 3.4 (1)), and sometimes stops later',
    protocols: VIEW_CHANGE_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const n = rng.chance(0.7) ? 4 : 7;
      const faults = [fault(0, { kind: 'equivocate' })];
      if (rng.chance(0.3)) faults.push(fault(0, { kind: 'stopAfter', batches: between(rng, 10, 60) }));
      return { ...base(protocol, seed, n, n === 4 ? 100 : 50), delay: jitteryDelay(rng), faults };
    },
  },
  {
    name: 'primary-in-the-dark',
    what: 'the primary never sends its proposals to up to f backups (paper Example 3.4 (2)), and mostly stops later',
    protocols: VIEW_CHANGE_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const n = rng.chance(0.7) ? 4 : 7;
      const batches = n === 4 ? 120 : 50;
      const victims = someBackups(rng, n, between(rng, 1, quorums(n).f));
      const faults = [fault(0, { kind: 'inTheDark', victims })];
      const stays = rng.chance(0.4);
      if (!stays) faults.push(fault(0, { kind: 'stopAfter', batches: between(rng, 10, batches - 20) }));
      let input: SimInput = { ...base(protocol, seed, n, batches), delay: jitteryDelay(rng), faults };
      if (rng.chance(0.3)) input = { ...input, dropProbability: rate(rng, 0.005, 0.03) };
      // While the primary that keeps them in the dark stays, the victims learn of batches only
      // through certified checkpoints (paper §4(6)): they may end up to an interval behind, and
      // nothing is required of their final ledgers but agreement (settleMs 0).
      return stays ? { ...input, settleMs: 0 } : input;
    },
  },
  {
    name: 'message-loss',
    what: 'every message copy is lost with a probability of 1 to 8 %, on a jittery network, throughout or until the network heals',
    protocols: VIEW_CHANGE_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const input: SimInput = {
        ...base(protocol, seed, 4, 100),
        delay: jitteryDelay(rng),
        dropProbability: rate(rng, 0.01, 0.08),
        duplicateProbability: rng.chance(0.5) ? rate(rng, 0, 0.05) : 0,
      };
      // Half the runs lose messages until the clients are done, half until the network heals mid-run.
      return rng.chance(0.5) ? input : { ...input, healAtMs: between(rng, 50, 2000) };
    },
  },
  {
    name: 'duplication-reordering',
    what: 'messages are duplicated (5 to 30 %) and reordered by jitter and a delay tail',
    protocols: ALL_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const delay: DelaySpec = { baseMs: between(rng, 0, 2), jitterMs: between(rng, 1, 6), tailMeanMs: between(rng, 0, 4) };
      return { ...base(protocol, seed, 4, protocol === 'hotstuff' ? 40 : 100), delay, duplicateProbability: rate(rng, 0.05, 0.3) };
    },
  },
  {
    name: 'healing-partition',
    what: 'the primary, a backup, a minority or a client machine is cut off for a while, then the network heals',
    protocols: VIEW_CHANGE_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const n = rng.chance(0.7) ? 4 : 7;
      const fromMs = between(rng, 2, 30);
      const kind = pick(rng, ['primary', 'backup', 'minority', 'client'] as const);
      let nodes: number[];
      let lengthMs: number;
      let batches = n === 4 ? 150 : 70;
      let windowK: number | undefined;
      if (kind === 'primary') {
        nodes = [0];
        // Clients time out after 200 ms and backups 500 ms after that: shorter partitions end
        // before the view change, longer ones after it, with enough batches left that the new
        // view still has work when the old primary returns and must catch up.
        const viewChange = rng.chance(0.5);
        lengthMs = viewChange ? between(rng, 750, 1000) : between(rng, 50, 600);
        if (viewChange) {
          batches = n === 4 ? 500 : 250;
          // The old primary catches up by fetching blocks the others still keep: PoE's archive and
          // PBFT's retained batches reach two windows below the stable checkpoint, and there is no
          // state transfer of the store beyond (replica/poe.ts, pbft.ts). The window covers the run.
          windowK = 400;
        }
      } else if (kind === 'client') {
        nodes = [CLIENT_PEER_BASE];
        lengthMs = between(rng, 50, 800);
      } else {
        // The others keep ordering: the cut-off replicas learn what they missed from the traffic
        // after the partition, so it must heal well before the clients finish.
        nodes = someBackups(rng, n, kind === 'backup' ? 1 : quorums(n).f);
        lengthMs = between(rng, 5, 30);
      }
      const partitions: Partition[] = [{ nodes, fromMs, toMs: fromMs + lengthMs }];
      return { ...base(protocol, seed, n, batches), delay: jitteryDelay(rng), partitions, ...(windowK === undefined ? {} : { windowK }) };
    },
  },
  {
    name: 'crashed-backups',
    what: 'up to f backups crash at random times (or never start), on a jittery, duplicating network',
    protocols: ALL_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const { backups: crashedBackups, input } = upToFBackups(protocol, seed, rng, 0.7, 0.1);
      // HotStuff's parallel leaders cannot lose one mid-run (no per-slot view change): silent from the start.
      if (protocol === 'hotstuff') return { ...input, crashed: crashedBackups.length };
      return { ...input, crashes: crashedBackups.map((replica) => ({ replica, atMs: between(rng, 0, 60) })) };
    },
  },
  {
    name: 'crash-and-loss',
    what: 'the primary crashes on a lossy network (n=4 or 7), so the view change itself loses messages, mostly until the network heals',
    protocols: VIEW_CHANGE_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const n = rng.chance(0.7) ? 4 : 7;
      return {
        ...base(protocol, seed, n, n === 4 ? 100 : 60),
        delay: jitteryDelay(rng),
        dropProbability: rate(rng, 0.005, 0.04),
        // Mostly the network heals at some point; otherwise the clients must finish on a lossy network.
        ...(rng.chance(0.7) ? { healAtMs: between(rng, 100, 3000) } : {}),
        crashes: [{ replica: 0, atMs: between(rng, 2, 80) }],
      };
    },
    needsViewChange: primaryStoppedEarly,
  },
  {
    // Message loss around a cut-off primary lets it view-commit batches nobody else does; the
    // others change view without them, and once back it must roll back what it speculated alone
    // (paper §3.3.5) and catch up: where PoE's rollbacks happen in this suite.
    name: 'lossy-primary-partition',
    what: 'the primary is cut off for long enough for a view change, on a network that loses 3 to 8 % until the partition heals',
    protocols: VIEW_CHANGE_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const n = rng.chance(0.7) ? 4 : 7;
      const fromMs = between(rng, 5, 40);
      const toMs = fromMs + between(rng, 750, 1000);
      return {
        ...base(protocol, seed, n, n === 4 ? 400 : 200),
        delay: jitteryDelay(rng),
        dropProbability: rate(rng, 0.03, 0.08),
        healAtMs: toMs,
        partitions: [{ nodes: [0], fromMs, toMs }],
        // The old primary fetches what it missed from blocks the others still keep (see healing-partition).
        windowK: 400,
      };
    },
  },
  {
    // Issue 13: a backup forges its view-change messages (PBFT: prepared certificates it does not
    // have; PoE: executions in its VC-REQUEST; HotStuff chained: a higher QC in NEW-VIEW), or
    // claims a stale checkpoint, and replays those of earlier views. n = 7 so that the crashed
    // primary and the forger are f = 2 faulty; loss leaves some replicas behind, so a forged
    // certificate can reach one that has not executed the slot yet.
    name: 'forged-view-change',
    what: 'n=7: the primary crashes on a lossy network and a backup forges or replays view-change content (certificates, executions, stale checkpoints)',
    protocols: ['poe', 'pbft', 'hotstuff'],
    build(protocol, seed) {
      const rng = new Rng(seed);
      const forger = between(rng, protocol === 'hotstuff' ? 0 : 1, 6);
      const forge: FaultSpec = rng.chance(0.3) ? { kind: 'forgeViewChange', stale: true } : { kind: 'forgeViewChange' };
      if (protocol === 'hotstuff') {
        // Chained HotStuff's pacemaker is its view change (NEW-VIEW with highQC); a crashed
        // backup leaves its leader turns empty, which is what makes views change.
        const crashed = (forger + between(rng, 1, 6)) % 7;
        return {
          ...base(protocol, seed, 7, 40),
          delay: jitteryDelay(rng),
          extra: { mode: 'chained', hotstuffRule: 'qc' },
          faults: [fault(forger, forge)],
          crashes: [{ replica: crashed, atMs: between(rng, 0, 60) }],
        };
      }
      return {
        ...base(protocol, seed, 7, 60),
        delay: jitteryDelay(rng),
        dropProbability: rate(rng, 0, 0.04),
        healAtMs: between(rng, 500, 3000),
        // Early enough that the clients still need the new view (a later crash can leave nothing
        // to order, and then no view change is needed: not a failure).
        crashes: [{ replica: 0, atMs: between(rng, 2, 40) }],
        faults: [fault(forger, forge)],
      };
    },
  },
  {
    name: 'conflicting-votes',
    what: 'up to f backups vote genuinely to half of their peers and for another batch to the others (PREPARE/COMMIT, SUPPORT, HotStuff votes, SPEC-RESPONSE/LOCAL-COMMIT)',
    protocols: ALL_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const drawn = upToFBackups(protocol, seed, rng, 0.6, 0.05);
      const { n, backups: liars } = drawn;
      let input: SimInput = { ...drawn.input, faults: liars.map((id) => fault(id, { kind: 'conflictingVotes' })) };
      // With f = 2, one liar and a crashing primary: the view change runs on lying votes.
      if (n === 7 && liars.length === 1 && VIEW_CHANGE_PROTOCOLS.includes(protocol) && rng.chance(0.5)) {
        input = { ...input, crashes: [{ replica: 0, atMs: between(rng, 2, 80) }] };
      }
      return input;
    },
    // No needsViewChange: the primary may crash after proposing the clients' last batches, and
    // what the family tests is votes, not whether a view change was needed.
  },
  {
    // Twins (Bano, Sonnino et al., OPODIS 2021): one replica runs as two honest instances under
    // one identity; each round (roundMs) the seed splits the replicas into two sides, each twin
    // reaching one, and non-twinned replicas on different sides are cut; after the last round
    // the network is whole (replica/byzantine-twins.ts). Protocols without a view change
    // (Zyzzyva, HotStuff's parallel slots) twin a backup only, and only the twins' reach is
    // split: a twinned primary, or honest replicas cut off from proposals, are failures those
    // implementations do not claim to recover from.
    name: 'twins',
    what: 'Twins: a replica (primary or backup) runs twice under one identity, each instance reaching the side of a per-round partition drawn from the seed',
    protocols: ALL_PROTOCOLS,
    build(protocol, seed) {
      const rng = new Rng(seed);
      const n = protocol === 'hotstuff' ? 4 : rng.chance(0.7) ? 4 : 7;
      const leaderChange = protocol !== 'zyzzyva';
      const twinned = leaderChange && rng.chance(0.5) ? 0 : someBackups(rng, n, 1)[0]!;
      const roundMs = between(rng, 5, 50);
      // The rounds end within 200 ms, before the clients finish (some 250 ms at the quickest, n = 4
      // without jitter): once the clients are done nobody sends a replica cut off at the end
      // anything (see the partition check in scenarioProblems).
      const rounds = between(rng, 4, Math.max(4, Math.floor(200 / roundMs)));
      // Without a view change or state transfer, a replica cut off from a proposal never catches
      // up: there only the twins' reach is split (TwinsSchedule.partitionOthers).
      const partitionOthers = leaderChange;
      return {
        ...base(protocol, seed, n, protocol === 'hotstuff' ? 100 : n === 4 ? 100 : 50),
        delay: jitteryDelay(rng),
        faults: [fault(twinned, { kind: 'twins', seed: rng.nextU32(), roundMs, rounds, partitionOthers })],
        // Chained HotStuff under the qc rule (its safety claim against a Byzantine leader; the paper rule
        // gives that up by design, replica/hotstuff.ts): its pacemaker replaces a leader whose twins equivocate; parallel slots
        // have no such rule. It has no state transfer either: a replica the partitions left
        // behind stays behind, so only agreement is required of its ledger (settleMs 0).
        ...(protocol === 'hotstuff' ? { extra: { mode: 'chained', hotstuffRule: 'qc' }, settleMs: 0 } : {}),
      };
    },
  },
];

export function scenario(name: ScenarioName): Scenario {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new RangeError(`unknown scenario '${name}'`);
  return s;
}

/**
 * What is wrong with a scenario run, or an empty list: the simulator's violations (safety,
 * liveness, convergence), a run that did not finish, and a missing view change.
 */
export function scenarioProblems(s: Scenario, input: SimInput, r: SimResult): string[] {
  const problems = [...r.violations];
  if (r.stopReason !== 'done') problems.push(`the run stopped with '${r.stopReason}' instead of finishing`);
  if (r.acceptedBatches !== input.batches) problems.push(`liveness: ${r.acceptedBatches} of ${input.batches} batches accepted`);
  if (input.settleMs !== 0 && !r.converged) problems.push('the non-faulty replicas did not converge after the network healed');
  if (s.needsViewChange?.(input, r) && r.viewChanges === 0) problems.push('the primary stopped before the clients were done, yet no view change happened');
  // A scenario whose partition outlasts the clients tests nothing about catching up: nobody
  // sends the cut-off replicas anything once they are back. A sanity check on the scenario itself.
  const twinsEnds = (input.faults ?? []).flatMap((a) => (a.fault.kind === 'twins' && a.fault.partitionOthers ? [a.fault.roundMs * a.fault.rounds] : []));
  const lastHealMs = Math.max(0, ...(input.partitions ?? []).map((p) => p.toMs), ...twinsEnds);
  if (r.stopReason === 'done' && lastHealMs >= r.virtualTimeMs && !r.converged)
    problems.push(`scenario: the partition healed at ${lastHealMs} ms, after the clients finished at ${r.virtualTimeMs.toFixed(0)} ms`);
  return [...new Set(problems)];
}

/** One line per problem, then the command that replays the run. */
export function explainScenario(s: Scenario, r: SimResult, problems: readonly string[]): string {
  const shown = problems.slice(0, 8).map((p) => `  - ${p}`);
  if (problems.length > 8) shown.push(`  ... ${problems.length - 8} more`);
  return [
    `scenario ${s.name}, ${r.protocol} n=${r.n} seed ${r.seed}: ${r.acceptedBatches}/${r.issuedBatches} accepted, stopped: ${r.stopReason}, ` +
      `view changes ${r.viewChanges}, rollbacks ${r.rollbacks}, faulty [${r.crashed.join(',')}]`,
    ...shown,
    `replay: ${r.replay}`,
  ].join('\n');
}

/** `--scenario` names: one family, every family of the protocol, or the lying-replica families. */
export function scenarioFamilies(selector: string, protocol: ProtocolName): Scenario[] {
  const forProtocol = (names: readonly ScenarioName[]): Scenario[] => names.map(scenario).filter((s) => s.protocols.includes(protocol));
  if (selector === 'all') return SCENARIOS.filter((s) => s.protocols.includes(protocol));
  if (selector === 'twins') return forProtocol(BYZANTINE_FAMILIES);
  const s = SCENARIOS.find((x) => x.name === selector);
  if (!s) throw new RangeError(`unknown scenario '${selector}' (known: all, twins, ${SCENARIOS.map((x) => x.name).join(', ')})`);
  if (!s.protocols.includes(protocol)) throw new RangeError(`scenario '${selector}' does not run ${protocol} (it runs ${s.protocols.join(', ')})`);
  return [s];
}

export interface ScenarioFailure {
  readonly family: ScenarioName;
  readonly seed: number;
  /** True when a problem is a safety violation (not liveness or convergence). */
  readonly safety: boolean;
  readonly problems: readonly string[];
  readonly replay: string;
}

export interface ScenarioSearchResult {
  readonly scenario: string;
  readonly protocol: ProtocolName;
  readonly families: readonly ScenarioName[];
  readonly firstSeed: number;
  readonly seedsPerFamily: number;
  readonly runs: number;
  readonly failures: readonly ScenarioFailure[];
  readonly safetyViolations: number;
  readonly replays: readonly string[];
}

/** A problem that is not about liveness, convergence or the scenario itself. */
export function isSafetyProblem(p: string): boolean {
  return (
    // "... and N more violations" is the simulator's truncation note, not a violation.
    !/^(liveness|convergence|the run stopped|the non-faulty replicas did not converge|the primary stopped|scenario:|\.\.\. and \d+ more)/.test(p) &&
    !/is missing from the final ledger/.test(p)
  );
}

/**
 * Runs `seeds` seeds (first, first+1, ...) of every selected family for `protocol` and collects
 * the failures with their replay lines. `run` is the simulator (passed in, so this file stays
 * free of it and tests can count calls).
 */
export function searchScenarios(
  selector: string,
  protocol: ProtocolName,
  firstSeed: number,
  seeds: number,
  run: (input: SimInput) => SimResult,
  onFailure?: (text: string) => void,
): ScenarioSearchResult {
  const families = scenarioFamilies(selector, protocol);
  const failures: ScenarioFailure[] = [];
  let runs = 0;
  for (const s of families) {
    for (let i = 0; i < seeds; i++) {
      const seed = (firstSeed + i) >>> 0;
      const input = s.build(protocol, seed);
      const r = run(input);
      runs++;
      const problems = scenarioProblems(s, input, r);
      if (problems.length === 0) continue;
      failures.push({ family: s.name, seed, safety: problems.some(isSafetyProblem), problems, replay: r.replay });
      onFailure?.(explainScenario(s, r, problems));
    }
  }
  return {
    scenario: selector,
    protocol,
    families: families.map((s) => s.name),
    firstSeed,
    seedsPerFamily: seeds,
    runs,
    failures,
    safetyViolations: failures.filter((f) => f.safety).length,
    replays: failures.map((f) => f.replay),
  };
}
