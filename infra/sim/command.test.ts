/**
 * `poe-bench sim`: flag validation names the bad flag, results print as JSON or a summary,
 * failing runs print a replay line that reproduces them, and the replay flags parse back to
 * the same configuration.
 */
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { registeredProtocols } from '../../replica/protocols.js';
import { defineSimCommand, parseSimFlags, runSimCommand, type SimFlags } from './command.js';
import { parseFaultAssignment, resolveSimConfig, simArgs, type SimConfig } from './options.js';

/** Parses argv the way the CLI does, without running anything. */
function flagsOf(args: readonly string[]): SimFlags {
  const cmd = defineSimCommand(new Command('sim')).exitOverride();
  cmd.parse([...args], { from: 'user' });
  return cmd.opts<SimFlags>();
}

const someProtocol = registeredProtocols()[0];

describe('poe-bench sim flags', () => {
  const bad = (args: string[]): string => {
    const out = runSimCommand(flagsOf(args));
    expect(out.exitCode).toBe(2);
    return out.stderr;
  };

  it('names the bad flag', () => {
    expect(bad(['--protocol', 'raft'])).toMatch(/--protocol: unknown protocol 'raft' \(known: poe, pbft, zyzzyva, hotstuff/);
    expect(bad([])).toMatch(/--protocol: is required/);
    expect(bad(['--protocol', 'zyzzyva', '--replicas', '3'])).toMatch(/--replicas: must be in \[4, 1024\]/);
    expect(bad(['--protocol', 'zyzzyva', '--replicas', 'four'])).toMatch(/--replicas: must be a number/);
    expect(bad(['--protocol', 'zyzzyva', '--batches', '0'])).toMatch(/--batches: must be >= 1/);
    expect(bad(['--protocol', 'zyzzyva', '--drop', '1.5'])).toMatch(/--drop: must be a probability in \[0, 1\]/);
    expect(bad(['--protocol', 'zyzzyva', '--partition', '2,3'])).toMatch(/--partition: '2,3' is not NODES@FROM-TO/);
    expect(bad(['--protocol', 'zyzzyva', '--partition', '9@0-10'])).toMatch(/--partition: node 9 does not exist/);
    expect(bad(['--protocol', 'zyzzyva', '--crash', '4@10'])).toMatch(/--crash: replica 4 does not exist/);
    // --keys is the old spelling of --generator (infra/params.ts): still accepted, named by the new one.
    expect(bad(['--protocol', 'zyzzyva', '--keys', 'uniform'])).toMatch(/--generator: unknown generator 'uniform'/);
    expect(bad(['--protocol', 'zyzzyva', '--generator', 'uniform'])).toMatch(/--generator: unknown generator 'uniform'/);
  });

  it('allows up to f silent backups, refuses more unless --force, and never all backups', () => {
    expect(parseSimFlags(flagsOf(['--protocol', 'zyzzyva', '--replicas', '7', '--crashed', '2']))[0]!.crashed).toBe(2);
    expect(bad(['--protocol', 'zyzzyva', '--replicas', '7', '--crashed', '3'])).toMatch(/--crashed: 3 exceeds f = 2 for n = 7.*--force/);
    expect(parseSimFlags(flagsOf(['--protocol', 'zyzzyva', '--replicas', '7', '--crashed', '3', '--force']))[0]!.crashed).toBe(3);
    expect(bad(['--protocol', 'zyzzyva', '--replicas', '4', '--crashed', '4', '--force'])).toMatch(/--crashed: 4 silent backups leave no primary/);
  });

  it('expands --seeds into consecutive seeds', () => {
    const configs = parseSimFlags(flagsOf(['--protocol', 'zyzzyva', '--seed', '10', '--seeds', '3']));
    expect(configs.map((c) => c.seed)).toEqual([10, 11, 12]);
  });

  it('replay flags parse back to the same configuration', () => {
    const config: SimConfig = resolveSimConfig({
      protocol: 'zyzzyva',
      replicas: 7,
      seed: 99,
      batches: 123,
      crashed: 3,
      clients: 3,
      clientProcs: 2,
      batch: 7,
      generator: 'resilientdb',
      dropProbability: 0.01,
      duplicateProbability: 0.02,
      delay: { baseMs: 2, jitterMs: 0.5, tailMeanMs: 3 },
      partitions: [{ nodes: [1, 2, 65536], fromMs: 10, toMs: 20.5 }],
      crashes: [{ replica: 0, atMs: 300 }],
      faults: [parseFaultAssignment('1=slow:20'), parseFaultAssignment('1=silent')],
      clientTimeoutMs: 150,
      viewChangeTimeoutMs: 900,
      checkpointInterval: 20,
      window: 80,
      records: 500,
      valueBytes: 32,
      maxTimeMs: 10_000,
      maxEvents: 1_000_000,
      extra: { mode: 'chained', depth: 3, fast: true },
      drain: false,
    });
    const [parsed] = parseSimFlags(flagsOf(simArgs(config)));
    expect(parsed).toEqual(config);
    // The names SimConfig had before it took the run's (issue 9) still resolve to the same configuration.
    expect(
      resolveSimConfig({
        ...config,
        replicas: undefined,
        n: 7,
        clientProcs: undefined,
        clientMachines: 2,
        batch: undefined,
        batchSize: 7,
        generator: undefined,
        keyGenerator: 'resilientdb',
        clientTimeoutMs: undefined,
        requestTimeoutMs: 150,
        checkpointInterval: undefined,
        checkpointIntervalK: 20,
        window: undefined,
        windowK: 80,
      }),
    ).toEqual(config);
    // Old spellings of flags (as printed by replay lines before issue 9) replay the same configuration.
    const old = simArgs(config).join(' ').replace('--client-procs', '--client-machines').replace('--generator', '--keys').replaceAll('--faults', '--fault');
    expect(old).toContain('--keys resilientdb');
    expect(parseSimFlags(flagsOf(old.split(' ')))[0]).toEqual(config);
    // Defaults stay out of the replay line.
    expect(simArgs(resolveSimConfig({ protocol: 'poe', n: 4, seed: 1, batches: 10 }))).toEqual([
      '--protocol',
      'poe',
      '--replicas',
      '4',
      '--batches',
      '10',
      '--seed',
      '1',
    ]);
  });
});

describe.skipIf(!someProtocol)(`poe-bench sim runs (with ${someProtocol ?? 'no registered protocol'})`, () => {
  it('prints one JSON object with --json and exits 0 for a valid run', () => {
    const out = runSimCommand(flagsOf(['--protocol', someProtocol!, '--batches', '50', '--seed', '3', '--json']));
    expect(out.exitCode).toBe(0);
    const r = JSON.parse(out.stdout) as Record<string, unknown>;
    expect(r).toMatchObject({ protocol: someProtocol, valid: true, violations: [], acceptedBatches: 50, n: 4, seed: 3 });
    expect(typeof r['messagesPerBatch']).toBe('number');
    expect(out.stderr).toBe('');
  });

  it('prints a readable summary without --json', () => {
    const out = runSimCommand(flagsOf(['--protocol', someProtocol!, '--batches', '20', '--crashed', '1']));
    expect(out.exitCode).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`^poe-bench sim: ${someProtocol} n=4 f=1 crashed=\\[3\\] seed=1\\n  result        VALID`));
    expect(out.stdout).toMatch(/messages +\d/);
    expect(out.stdout).not.toMatch(/replay:/);
  });

  it('a run beyond f faults fails with exit 1 and prints the replay line that reproduces it', () => {
    const args = ['--protocol', someProtocol!, '--batches', '20', '--seed', '5', '--crashed', '2', '--force', '--max-time-ms', '3000'];
    const out = runSimCommand(flagsOf(args));
    expect(out.exitCode).toBe(1);
    expect(out.stdout).toMatch(/INVALID/);
    expect(out.stdout).toMatch(/liveness: \d+ of 20 batches accepted/);
    const replay = /^replay: poe-bench sim (.*)$/m.exec(out.stdout);
    expect(replay, out.stdout).not.toBeNull();
    expect(replay![1]).toBe(`--protocol ${someProtocol} --replicas 4 --batches 20 --seed 5 --crashed 2 --force --max-time-ms 3000`);
    // The replay reproduces the run exactly.
    const again = runSimCommand({ ...flagsOf(replay![1]!.split(' ')), json: true });
    const first = runSimCommand({ ...flagsOf(args), json: true });
    expect(again.stdout).toBe(first.stdout);
    expect(first.stderr).toContain(`replay: poe-bench sim ${replay![1]}`);
  });
});

const builtCli = new URL('../../dist/harness/cli.js', import.meta.url);
describe.skipIf(!existsSync(builtCli) || !someProtocol)('the built CLI (dist/harness/cli.js, after npm run build)', () => {
  it('runs `poe-bench sim` and prints JSON', () => {
    const stdout = execFileSync(process.execPath, [builtCli.pathname, 'sim', '--protocol', someProtocol!, '--batches', '10', '--json'], { encoding: 'utf8' });
    expect(JSON.parse(stdout)).toMatchObject({ valid: true, acceptedBatches: 10 });
  });

  it('exits 2 naming the bad flag', () => {
    let status = 0;
    let stderr = '';
    try {
      execFileSync(process.execPath, [builtCli.pathname, 'sim', '--protocol', someProtocol!, '--replicas', '2'], { encoding: 'utf8', stdio: 'pipe' });
    } catch (err) {
      status = (err as { status: number }).status;
      stderr = (err as { stderr: string }).stderr;
    }
    expect(status).toBe(2);
    expect(stderr).toMatch(/--replicas: must be in \[4, 1024\]/);
  });
});
