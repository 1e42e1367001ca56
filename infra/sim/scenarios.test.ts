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
 * Seeds: SIM_SEEDS=N runs N seeds per family and protocol (default 15, 330 runs in all),
 * SIM_SEED_BASE=S starts at S (default 1), e.g.
 *   SIM_SEEDS=200 SIM_SEED_BASE=1000 npx vitest run infra/sim/scenarios.test.ts
 * or, for one family from the command line, `poe-bench sim ... --seeds N` with its flags.
 */
import { Command } from 'commander';
import { afterAll, describe, expect, it } from 'vitest';
import { hasProtocol } from '../../replica/protocols.js';
import type { ProtocolName } from '../../replica/types.js';
import { defineSimCommand, parseSimFlags, type SimFlags } from './command.js';
import { simArgs } from './options.js';
import { explainScenario, SCENARIOS, scenario, scenarioProblems, type Scenario } from './scenarios.js';
import { runSimulation, Simulation, type SimResult } from './simulator.js';

const SEEDS = envInt('SIM_SEEDS', 15);
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

describe('fault scenarios (issue 4)', () => {
  for (const s of SCENARIOS) {
    describe(`${s.name}: ${s.what}`, () => {
      for (const protocol of s.protocols) {
        it.skipIf(!hasProtocol(protocol))(`${protocol}: ${SEEDS} seeds from ${SEED_BASE}: safe, and live once the network heals`, () => {
          // Reference: paper Definition 3.1 (speculative non-divergence), Proposition 3.5, Theorem 3.7, Example 3.4
          const failures = runFamily(s, protocol, SEEDS);
          expect(failures.length, `${failures.length} of ${SEEDS} seeds failed:\n\n${failures.slice(0, 5).join('\n\n')}`).toBe(0);
        });
      }
    });
  }

  it('the families do what they say: view changes after primary crashes, rollbacks somewhere in PoE runs', () => {
    if (SEEDS === 0) return;
    for (const name of ['primary-crash', 'primary-crash-in-view-change', 'crash-and-loss'] as const) {
      for (const p of scenario(name).protocols) {
        const t = tallies.get(`${name} ${p}`);
        if (t) expect(t.viewChanges, `${name} ${p}: no view change in ${t.runs} runs`).toBeGreaterThan(0);
      }
    }
    // Speculative execution is undone somewhere (paper §3.3.5), and those runs passed the store check above.
    const poeRollbacks = [...tallies].filter(([k]) => k.endsWith(' poe')).reduce((sum, [, t]) => sum + t.rollbacks, 0);
    if (SEEDS >= 10) expect(poeRollbacks, 'no PoE run of the suite rolled anything back').toBeGreaterThan(0);
  });
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
    expect(first.replay).toMatch(/--fault 0=equivocate --fault 0=stopAfter:\d+/);
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
    lines.push(`  ${key.padEnd(42)} ${t.runs} runs, ${t.failed} failed, ${t.viewChanges} view changes, ${t.rollbacks} rollbacks, ${(t.wallMs / 1000).toFixed(1)} s`);
  }
  console.log(lines.join('\n'));
});
