/**
 * Issue 4's scenario suite in the simulator: for PoE and PBFT, primary crashes at random points
 * (also of the next primary during the view change), an equivocating primary, a primary keeping
 * up to f backups in the dark, message loss, duplication and reordering, and partitions that
 * heal; for Zyzzyva and HotStuff, which have no view change, only duplication, reordering,
 * delays and crashed backups (scenarios.ts says why for each family).
 *
 * Every run must be safe (the simulator's online checker: canonical commits, no accepted batch
 * rolled back at a non-faulty replica; and the final ledgers), and live once a non-faulty
 * primary is in place and the network heals (every batch accepted; after the settle phase the
 * non-faulty replicas hold the same ledger). A failing seed prints the `poe-bench sim` line
 * that replays it, fault flags included.
 *
 * Seeds: SIM_SEEDS=N runs N seeds per family and protocol (default 25: 600 runs in all),
 * SIM_SEED_BASE=S starts at S (default 1), e.g.
 *   SIM_SEEDS=200 SIM_SEED_BASE=1000 npx vitest run infra/sim/scenarios.test.ts
 * or, for one family from the command line, `poe-bench sim ... --seeds N` with its flags.
 */
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { hasProtocol } from '../../replica/protocols.js';
import type { ProtocolName } from '../../replica/types.js';
import { defineSimCommand, parseSimFlags, runSimCommand, type SimFlags } from './command.js';
import { simArgs } from './options.js';
import { explainScenario, isSafetyProblem, SCENARIOS, scenario, scenarioProblems, type Scenario } from './scenarios.js';
import { runSimulation, Simulation, type SimResult } from './simulator.js';

const SEEDS = envInt('SIM_SEEDS', 25);
const SEED_BASE = envInt('SIM_SEED_BASE', 1);

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new RangeError(`${name} must be an integer >= 0, got '${raw}'`);
  return v;
}

interface Tally {
  runs: number;
  failed: number;
  viewChanges: number;
  rollbacks: number;
  wallMs: number;
}
const tallies = new Map<string, Tally>();
const totals = { runs: 0, wallMs: 0 };

/**
 * The stores of the non-faulty replicas hold the same value for every key: a replica that
 * rolled back speculative executions (paper §3.3.5) holds the state the others hold.
 */
function storeProblem(sim: Simulation, r: SimResult): string | undefined {
  const cores = sim.replicaCores().filter((c) => !r.crashed.includes(c.id));
  const ref = cores[0];
  if (!ref) return undefined;
  for (const c of cores.slice(1)) {
    for (let key = 0; key < sim.config.records; key++) {
      if (!c.store.read(key).equals(ref.store.read(key))) {
        return `stores differ: replica ${c.id} and replica ${ref.id} at key ${key} although their ledgers agree (rollbacks in the run: ${r.rollbacks})`;
      }
    }
  }
  return undefined;
}

/** Runs seeds [SEED_BASE, SEED_BASE + count) of one family on one protocol; returns the failures explained. */
function runFamily(s: Scenario, protocol: ProtocolName, count: number): string[] {
  const failures: string[] = [];
  const t: Tally = tallies.get(`${s.name} ${protocol}`) ?? { runs: 0, failed: 0, viewChanges: 0, rollbacks: 0, wallMs: 0 };
  tallies.set(`${s.name} ${protocol}`, t);
  for (let seed = SEED_BASE; seed < SEED_BASE + count; seed++) {
    const input = s.build(protocol, seed);
    const started = performance.now();
    const sim = new Simulation(input);
    const r = sim.run();
    const problems = scenarioProblems(s, input, r);
    if (problems.length === 0 && r.converged) {
      const p = storeProblem(sim, r);
      if (p) problems.push(p);
    }
    const wallMs = performance.now() - started;
    t.runs++;
    t.wallMs += wallMs;
    t.viewChanges += r.viewChanges;
    t.rollbacks += r.rollbacks;
    totals.runs++;
    totals.wallMs += wallMs;
    if (problems.length > 0) {
      t.failed++;
      failures.push(explainScenario(s, r, problems));
    }
  }
  return failures;
}

/**
 * Issue 13: PBFT's view change trusts prepared certificates that are lists of replica ids under
 * non-transferable MACs, so a backup's forged certificate makes the new view re-propose another
 * batch at a committed sequence number (the forged-view-change family finds it in most seeds).
 * The fix (VIEW-CHANGE-ACKs as in Castro and Liskov, TOCS 2002, or signed view changes) is the
 * "pbft" helper's; once it is merged, set this to true: the family must then pass like the others.
 */
const PBFT_FORGED_CERTIFICATE_FIXED = true;
/**
 * Issue 13, found by the twins family: PBFT with a twinned backup (n = 4, seed 2:
 * `poe-bench sim --protocol pbft --replicas 4 --batches 100 --seed 2 --jitter-ms 3 --fault
 * 3=twins:1076313351:54:9 --max-time-ms 120000`) ends with the non-faulty ledgers at heights 100
 * and 108: after the view change one replica executed eight no-op slots of the new view that the
 * others never commit, and with the clients done nothing drives them. No safety violation; the
 * "pbft" helper's. Set to true once fixed. Fixed by the idle status (replica/pbft-fetch.ts
 * onStatusTimer): a replica that executed nothing for a while tells the others how far it got.
 */
const PBFT_TWINS_CONVERGENCE_FIXED = true;
const knownUnsafe = (s: Scenario, protocol: ProtocolName): boolean =>
  protocol === 'pbft' && ((!PBFT_FORGED_CERTIFICATE_FIXED && s.name === 'forged-view-change') || (!PBFT_TWINS_CONVERGENCE_FIXED && s.name === 'twins'));

describe('fault scenarios (issue 4)', () => {
  for (const s of SCENARIOS) {
    describe(`${s.name}: ${s.what}`, () => {
      for (const protocol of s.protocols) {
        if (knownUnsafe(s, protocol)) {
          // Skipped, not `.fails`: whether a given seed range hits the failure depends on
          // SIM_SEEDS/SIM_SEED_BASE. The fixed-seed `.fails` tests below show it deterministically.
          it.skip(`${protocol}: KNOWN TO FAIL until the PBFT fixes of issue 13 (see PBFT_*_FIXED)`, () => {});
          continue;
        }
        it.skipIf(!hasProtocol(protocol))(`${protocol}: ${SEEDS} seeds from ${SEED_BASE}: safe, and live once the network heals`, () => {
          // Reference: paper Definition 3.1 (speculative non-divergence), Proposition 3.5, Theorem 3.7, Example 3.4
          const failures = runFamily(s, protocol, SEEDS);
          expect(failures.length, `${failures.length} of ${SEEDS} seeds failed:\n\n${failures.slice(0, 5).join('\n\n')}`).toBe(0);
        });
      }
    });
  }

  it('the families do what they say: view changes after primary crashes', () => {
    if (SEEDS === 0) return;
    for (const name of ['primary-crash', 'primary-crash-in-view-change', 'crash-and-loss', 'lossy-primary-partition'] as const) {
      for (const p of scenario(name).protocols) {
        const t = tallies.get(`${name} ${p}`);
        if (t) expect(t.viewChanges, `${name} ${p}: no view change in ${t.runs} runs`).toBeGreaterThan(0);
      }
    }
  });

  it('a primary that crashes after ordering every batch needs no view change (issue 13 item 4: the n = 7 crash-and-loss false alarms)', () => {
    // PoE seed 30228 and PBFT seed 40610: the primary proposed all 60 batches, crashed a few ms
    // before the clients finished, and the backups committed everything in view 0.
    const s = scenario('crash-and-loss');
    for (const [protocol, seed] of [
      ['poe', 30228],
      ['pbft', 40610],
    ] as const) {
      const input = s.build(protocol, seed);
      const r = new Simulation(input).run();
      expect(
        input.crashes?.some((c) => c.replica === 0 && c.atMs < r.virtualTimeMs),
        `${protocol} seed ${seed}: the primary crashes during the run`,
      ).toBe(true);
      expect(r.viewChanges, `${protocol} seed ${seed}: ${r.replay}`).toBe(0);
      expect(scenarioProblems(s, input, r), r.replay).toEqual([]);
    }
  });

  it("rollback: a PoE replica that speculated on batches the new view dropped holds the others' ledger and store afterwards", () => {
    // Reference: paper §3.3.5 ("If R executed transactions not in E' ... R needs to rollback"). The
    // core-level test is in replica/poe.test.ts; here a whole run, searched for in a bounded number of seeds.
    const s = scenario('lossy-primary-partition');
    for (let seed = 1; seed <= 100; seed++) {
      const sim = new Simulation(s.build('poe', seed));
      const r = sim.run();
      if (r.rollbacks === 0) continue;
      expect(r.valid, explainScenario(s, r, r.violations)).toBe(true);
      expect(r.converged).toBe(true);
      expect(storeProblem(sim, r), r.replay).toBeUndefined();
      return;
    }
    expect.fail('no run of lossy-primary-partition rolled anything back in seeds 1..100');
  });
});

/**
 * Runs the suite once found invalid, kept as they were printed (replay lines), each with the fix
 * it led to. They must stay valid.
 */
const REGRESSIONS: readonly { readonly replay: string; readonly fixed: string }[] = [
  {
    // Replicas 1-3 ended in views 10, 11, 10, all in a view change, no NEW-VIEW for ten minutes of virtual time.
    replay: '--protocol pbft --replicas 4 --batches 100 --seed 5 --drop 0.035 --jitter-ms 4 --heal-at-ms 3000 --crash 0@16 --max-time-ms 600000',
    fixed:
      'PBFT starts its NEW-VIEW wait only with nf VIEW-CHANGEs in (PBFT §4.5.2), re-sends its VIEW-CHANGE meanwhile, and the new primary re-sends NEW-VIEW to replicas that ask again',
  },
  {
    // The old primary, cut off, executed k=6..8 in view 0 alone; back, it fetched blocks chained onto
    // that branch forever ("BLOCKS do not reproduce the certified checkpoint"), and ended holding
    // another batch than the clients accepted at k=6.
    replay: '--protocol poe --replicas 4 --batches 400 --seed 35 --drop 0.04 --partition 0@15-970 --heal-at-ms 970 --window 400 --max-time-ms 120000',
    fixed:
      'a PoE replica whose fetched blocks do not chain onto its ledger fetches from its certified base, rolls back where it leaves the certified chain, and executes it (rebaseOnCertified)',
  },
  {
    // Replica 2 (n=7) lost the SUPPORTs of the last batches; the clients accepted on the others' INFORMs and no checkpoint came.
    replay: '--protocol poe --replicas 7 --batches 60 --seed 5 --drop 0.011 --jitter-ms 3 --heal-at-ms 1136 --crash 0@65 --max-time-ms 120000',
    fixed: 'a PoE replica that seems behind asks for the blocks of its view and executes those f+1 replicas send alike (voteTail)',
  },
  {
    // Issue 13 item 4: replica 6 (n=7) lost the NV-PROPOSE of view 1 and gave up on it alone; the others ran view 1
    // to k=60, and 6 stayed in its view change at 50 for good (50 certified by CHECKPOINTs, 51-60 by nothing).
    replay: '--protocol poe --replicas 7 --batches 60 --seed 21588 --drop 0.039 --jitter-ms 3 --crash 0@50 --max-time-ms 120000',
    fixed:
      'a PoE replica in a view change also fetches the blocks of the view it is leaving and executes those f+1 replicas send alike, below the next checkpoint and without INFORMs (voteTail)',
  },
  {
    // Replica 2 waited for a VC-REQUEST to validate view 1's NV-PROPOSE, gave up on view 1, caught up on its blocks,
    // then validated the kept proposal and entered view 1 after all, rolling back k=19 that a client had accepted.
    replay: '--protocol poe --replicas 7 --batches 60 --seed 51489 --drop 0.022 --jitter-ms 3 --tail-ms 2 --heal-at-ms 2591 --crash 0@37 --max-time-ms 120000',
    fixed: 'a PoE replica never enters a view it asked to leave, also not through a proposal it kept while waiting for its requests (tryValidate)',
  },
  {
    // With the first fix above, a replica executed the last batches muted in a view change and never sent their INFORMs:
    // two of 120 batches never accepted, 121 view changes in two minutes of virtual time.
    replay:
      '--protocol poe --replicas 4 --batches 120 --seed 20053 --drop 0.016 --jitter-ms 2 --fault 0=inTheDark:2 --fault 0=stopAfter:58 --max-time-ms 120000',
    fixed: 'a PoE replica sends the INFORMs of blocks it executed muted during a view change once it entered a view (resendInform)',
  },
  {
    // Replica 3 executed 96, replicas 1 and 2 stayed at 87, one COMMIT short for good (lost while the primary was down).
    replay: '--protocol pbft --replicas 4 --batches 120 --seed 12 --drop 0.027 --jitter-ms 3 --fault 0=inTheDark:2 --fault 0=stopAfter:21 --max-time-ms 120000',
    fixed:
      'a PBFT backup that executed a request a client keeps re-sending suspects the primary (noteUnfinished); replicas also re-send their votes for it (retransmitFor)',
  },
  {
    // Replica 2 ran ahead to 17, 1 and 3 stayed at 8 with 3 alone in a view change: 2 awaited nothing, so it never joined.
    replay: '--protocol pbft --replicas 4 --batches 100 --seed 44 --drop 0.06 --jitter-ms 3 --tail-ms 1 --crash 0@93 --max-time-ms 120000',
    fixed: 'a PBFT backup suspects the primary when a client keeps re-sending a request it executed and nothing executes for a timeout (noteUnfinished)',
  },
  {
    // Chained HotStuff, twinned leader: replica 2 missed block 2 in the partitions; as leader of view 2 it proposed on genesis
    // (refused by replicas locked on block 1), and as a backup it held every later block as an orphan. 0 of 40 accepted in 120 s.
    replay:
      '--protocol hotstuff --replicas 4 --batches 40 --seed 36 --jitter-ms 2 --tail-ms 3 --fault 0=twins:15569765:36:38 --max-time-ms 120000 --extra mode=chained --settle-ms 0',
    fixed:
      "a chained HotStuff replica fetches the blocks it lacks (BLOCK-REQUEST); a new leader proposes on the NEW-VIEWs' highest QC, fetching its block first",
  },
  {
    // Chained HotStuff, twinned leader, long Twins rounds: replica 3 missed blocks 1-8, of which 1-4 were committed (and pruned)
    // at the others; 4 of 40 accepted in 120 s, before the fix and with block fetching alone.
    replay:
      '--protocol hotstuff --replicas 4 --batches 40 --seed 21 --faults 0=twins:2611452186:41:46 --extra mode=chained --extra hotstuffRule=qc --jitter-ms 3 --tail-ms 3 --max-time-ms 120000 --settle-ms 0',
    fixed: 'a chained HotStuff replica keeps its committed blocks down to the stable checkpoint to answer BLOCK-REQUESTs',
  },
  {
    // Found by the twins family: replica 1, cut off by the twins' round partitions while 0 and 2 reached 100 (stable
    // checkpoint 100), stayed at height 0: once the clients were done nothing was in flight and no timer armed.
    replay: '--protocol poe --replicas 4 --batches 100 --seed 437 --fault 3=twins:1088901073:48:4',
    fixed:
      'a PoE replica that executed nothing for two view-change timeouts broadcasts its status (a FETCH above its execution, backing off): a replica ahead answers, one behind learns it is behind (PoeBlockFetcher.onStatusTimer)',
  },
  {
    // Same class for PBFT (twins family, fresh seeds from 50000): replica 1 stayed at 89 while 0 and 3 reached 100,
    // nothing in flight and no timer armed once the clients were done.
    replay: '--protocol pbft --replicas 4 --batches 100 --seed 50108 --faults 2=twins:526252909:17:9 --max-time-ms 120000',
    fixed:
      'a PBFT replica that executed nothing for two view-change timeouts broadcasts its status (a FETCH above its execution, backing off): replicas ahead send the batches, one behind fetches (BatchFetcher.onStatusTimer)',
  },
  {
    // Found by the nightly search (crash-and-loss, seed 1000366): with VIEW-CHANGE re-sends backing off to 8 timeouts,
    // a lost VIEW-CHANGE or ACK left the new view unformed: 54 of 100 accepted in 120 s. Re-sends every half timeout keep it live.
    replay: '--protocol pbft --replicas 4 --batches 100 --seed 1000366 --drop 0.032 --crash 0@9 --max-time-ms 120000',
    fixed: 'a PBFT replica in a view change re-sends its VIEW-CHANGE every half timeout (the back-off tried for n = 32 was reverted)',
  },
];

/**
 * Issue 13's acceptance run before the fix: `poe-bench sim --scenario twins --protocol pbft
 * --seeds 2000 --json` reports this run (its first failure) with a safety violation. Replica 4
 * forges prepared certificates in its VIEW-CHANGEs; the new primary (replica 1) re-proposes
 * other clients' batches at k = 15, 17, 19, which replicas 2, 3, 5, 6 had executed with the
 * original batches: the ledgers diverge at height 15, and the batch a client accepted at k = 17
 * is replaced at replica 1.
 * `.fails` until the fix: flip PBFT_FORGED_CERTIFICATE_FIXED above once it is merged.
 */
const PBFT_FORGED_CERTIFICATE_REPLAY =
  '--protocol pbft --replicas 7 --batches 60 --seed 1 --drop 0.02 --jitter-ms 2 --tail-ms 2 --heal-at-ms 2027 --crash 0@12 --fault 4=forgeViewChange --max-time-ms 120000';

describe('issue 13: lying backups', () => {
  (PBFT_FORGED_CERTIFICATE_FIXED ? it : it.fails)(
    `pbft stays safe against a forged prepared certificate: poe-bench sim ${PBFT_FORGED_CERTIFICATE_REPLAY}`,
    () => {
      const [config] = parseSimFlags(flagsFromArgs(PBFT_FORGED_CERTIFICATE_REPLAY.split(' ')));
      const r = runSimulation(config!);
      expect(r.violations.filter(isSafetyProblem), `${r.violations.slice(0, 3).join('\n')}\nreplay: ${r.replay}`).toEqual([]);
    },
  );

  it('the forger does lie: without it the same network and crash are safe', () => {
    const [config] = parseSimFlags(flagsFromArgs(PBFT_FORGED_CERTIFICATE_REPLAY.replace(/ --fault \d+=forgeViewChange/, '').split(' ')));
    expect(config!.faults).toEqual([]);
    const r = runSimulation(config!);
    expect(r.violations, r.replay).toEqual([]);
  });

  const PBFT_TWINS_REPLAY = '--protocol pbft --replicas 4 --batches 100 --seed 2 --jitter-ms 3 --fault 3=twins:1076313351:54:9 --max-time-ms 120000';
  (PBFT_TWINS_CONVERGENCE_FIXED ? it : it.fails)(`pbft's non-faulty replicas converge with a twinned backup: poe-bench sim ${PBFT_TWINS_REPLAY}`, () => {
    const [config] = parseSimFlags(flagsFromArgs(PBFT_TWINS_REPLAY.split(' ')));
    const r = runSimulation(config!);
    expect(r.violations.filter(isSafetyProblem), r.replay).toEqual([]);
    expect(r.converged, `heights ${r.ledgerHeight.min}..${r.ledgerHeight.max}\nreplay: ${r.replay}`).toBe(true);
  });

  // Found by the twins family (before its rounds were shortened): chained HotStuff with a twinned
  // leader (replica 0) accepted nothing in 120 s. The view timers did fire (doubling up to 32 s),
  // but no view made progress: the partitions left replica 2 without block 2, so it could not
  // vote on any block above it (orphans), and as leader of view 2 it dropped the NEW-VIEWs' QC
  // for block 2 (a block it lacked) and proposed on genesis, which the others, locked on block 1,
  // refused; the twins, out of step, never made up the third vote. Fixed: chained HotStuff
  // fetches missing blocks by hash (BLOCK-REQUEST), and a new leader proposes on the highest QC.
  const HOTSTUFF_TWINS_LIVENESS_FIXED = true;
  const HOTSTUFF_TWINS_REPLAY =
    '--protocol hotstuff --replicas 4 --batches 40 --seed 36 --jitter-ms 2 --tail-ms 3 --fault 0=twins:15569765:36:38 --max-time-ms 120000 --extra mode=chained --settle-ms 0';
  (HOTSTUFF_TWINS_LIVENESS_FIXED ? it : it.fails)(`chained hotstuff stays live with a twinned leader: poe-bench sim ${HOTSTUFF_TWINS_REPLAY}`, () => {
    const [config] = parseSimFlags(flagsFromArgs(HOTSTUFF_TWINS_REPLAY.split(' ')));
    const r = runSimulation(config!);
    expect(r.violations.filter(isSafetyProblem), r.replay).toEqual([]);
    expect(r.acceptedBatches, `${r.violations.slice(0, 3).join('\n')}\nreplay: ${r.replay}`).toBe(40);
  });

  it('sim --scenario prints runs, failures and replay lines (--json: one object)', () => {
    const out = runSimCommand({ protocol: 'pbft', scenario: 'forged-view-change', seeds: '3', seed: '1', json: true });
    const o = JSON.parse(out.stdout) as { runs: number; failures: { replay: string; safety: boolean }[]; replays: string[]; safetyViolations: number };
    expect(o.runs).toBe(3);
    expect(o.replays).toEqual(o.failures.map((f) => f.replay));
    expect(out.exitCode).toBe(o.failures.length > 0 ? 1 : 0);
    const text = runSimCommand({ protocol: 'zyzzyva', scenario: 'twins', seeds: '2', seed: '7' });
    expect(text.stdout).toMatch(/scenario twins \(conflicting-votes, twins\), zyzzyva, seeds 7\.\.8: 4 runs, \d+ failures/);
    expect(runSimCommand({ protocol: 'zyzzyva', scenario: 'forged-view-change', seeds: '1' }).exitCode).toBe(2);
    expect(runSimCommand({ protocol: 'poe', scenario: 'nonsense', seeds: '1' }).stderr).toMatch(/unknown scenario 'nonsense'/);
  });
});

describe('regressions', () => {
  for (const { replay, fixed } of REGRESSIONS) {
    it(`poe-bench sim ${replay}`, () => {
      const [config] = parseSimFlags(flagsFromArgs(replay.split(' ')));
      const r = runSimulation(config!);
      expect(r.valid, `${r.violations.slice(0, 5).join('\n')}\n(fixed by: ${fixed})\nreplay: ${r.replay}`).toBe(true);
    });
  }
});

describe('replay lines', () => {
  it('a scenario run replays exactly from its printed command, fault flags included', () => {
    // An equivocating primary that stops later, on a jittery network: --fault twice, --jitter-ms, --tail-ms.
    const s = scenario('equivocating-primary');
    let input = s.build('poe', 1);
    for (let seed = 1; !(input.faults && input.faults.length === 2); seed++) input = s.build('poe', seed);
    const first = runSimulation(input);
    const m = /^poe-bench sim (.*)$/.exec(first.replay);
    expect(m, first.replay).not.toBeNull();
    expect(first.replay).toMatch(/--faults 0=equivocate --faults 0=stopAfter:\d+/);
    const flags = flagsFromArgs(m![1]!.split(' '));
    const [config] = parseSimFlags(flags);
    expect(simArgs(config!).join(' ')).toBe(m![1]);
    expect(JSON.stringify(runSimulation(config!))).toBe(JSON.stringify(first));
  });

  it('a partition of a client machine and a loss that heals replay too', () => {
    const input = { ...scenario('crash-and-loss').build('pbft', 3), partitions: [{ nodes: [65536], fromMs: 5, toMs: 60 }] };
    const first = runSimulation(input);
    expect(first.replay).toMatch(/--partition c0@5-60 .*--heal-at-ms \d+ .*--crash 0@\d+/);
    const [config] = parseSimFlags(flagsFromArgs(first.replay.replace(/^poe-bench sim /, '').split(' ')));
    expect(JSON.stringify(runSimulation(config!))).toBe(JSON.stringify(first));
  });
});

/** Parses argv the way the CLI does (commander), without running anything. */
function flagsFromArgs(args: readonly string[]): SimFlags {
  const cmd = defineSimCommand(new Command('sim')).exitOverride();
  cmd.parse([...args], { from: 'user' });
  return cmd.opts<SimFlags>();
}

afterAll(() => {
  const lines = [`scenario suite (SIM_SEEDS=${SEEDS}, SIM_SEED_BASE=${SEED_BASE}): ${totals.runs} runs, ${(totals.wallMs / 1000).toFixed(1)} s`];
  for (const [key, t] of tallies) {
    lines.push(
      `  ${key.padEnd(42)} ${t.runs} runs, ${t.failed} failed, ${t.viewChanges} view changes, ${t.rollbacks} rollbacks, ${(t.wallMs / 1000).toFixed(1)} s`,
    );
  }
  console.log(lines.join('\n'));
});
