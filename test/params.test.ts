/**
 * The table of run parameters (infra/params.ts, issue 9 item 3): every flag unique within its
 * command, every default valid under its own schema, and the replay lines of run, sim and
 * figure parse back, through the real commander definitions, to what printed them.
 */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { defineFigureCommand, figureReplayCommand, parseFigureFlags, type FigureFlags } from '../harness/figure-command.js';
import { defineRunCommand } from '../harness/run-command.js';
import { canonicalFlags, PARAMS, paramDefault, paramHelp, paramSchemaOf, paramsFor, type ParamCommand } from '../infra/params.js';
import { makeRunSpec, parseRunFlags, runReplayArgs, type RunFlags } from '../infra/run/spec.js';
import { defineSimCommand, parseSimFlags, type SimFlags } from '../infra/sim/command.js';
import { parseFaultAssignment, resolveSimConfig, SIM_DEFAULTS, simArgs } from '../infra/sim/options.js';
import { formatReplicaFault } from '../replica/byzantine.js';

const COMMANDS: readonly ParamCommand[] = ['run', 'sim', 'figure', 'aws'];

/** argv -> the flags object commander hands over, for a command defined by `define`. */
function parse<T>(define: (c: Command) => Command, args: readonly string[], command: ParamCommand): T {
  const cmd = define(new Command('x')).exitOverride();
  cmd.parse([...args], { from: 'user' });
  return canonicalFlags(command, cmd.opts<T & object>());
}

/** `poe-bench run --a b ...` -> ['--a', 'b', ...] (the values here need no shell quoting). */
const argsOf = (line: string, words: number): string[] => line.split(' ').slice(1 + words);

describe('the table of run parameters', () => {
  it('has one entry per flag and per key within each command, aliases included', () => {
    for (const command of COMMANDS) {
      const ps = paramsFor(command);
      const flags = ps.flatMap((p) => [p.flag, ...(p.aliases ?? [])]);
      expect(new Set(flags).size, `${command}: ${flags.join(' ')}`).toBe(flags.length);
      const keys = ps.map((p) => p.key);
      expect(new Set(keys).size, `${command}: ${keys.join(' ')}`).toBe(keys.length);
    }
  });

  it('says for every entry what it is: help on each of its commands, a value placeholder unless a switch, why defaults differ', () => {
    for (const p of PARAMS) {
      expect(/^--[a-z][a-z0-9-]*$/.test(p.flag), p.flag).toBe(true);
      expect(p.value === undefined, `${p.flag}: a switch has no value, anything else has one`).toBe(p.type === 'boolean');
      for (const command of p.commands) expect(paramHelp(p, command).length, `${p.flag} on ${command}`).toBeGreaterThan(5);
      if (p.defaults !== undefined) {
        const values = Object.values(p.defaults).map((v) => JSON.stringify(v));
        if (new Set(values).size > 1) expect(p.defaultWhy, `${p.flag}: defaults differ between commands; say why`).toBeTruthy();
      }
    }
  });

  it('has every default valid under its own schema (as flag text)', () => {
    let checked = 0;
    for (const command of COMMANDS) {
      for (const p of paramsFor(command)) {
        const d = paramDefault(command, p.key);
        if (d === undefined) continue;
        const given = p.type === 'boolean' ? d : String(d);
        const parsed = paramSchemaOf(p, command).safeParse(given);
        expect(parsed.success, `${command} ${p.flag} default ${String(d)}: ${parsed.success ? '' : parsed.error.message}`).toBe(true);
        if (parsed.success) expect(parsed.data, `${command} ${p.flag}`).toEqual(d);
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(30);
  });

  it('gives the simulator the run names, with its own defaults where the table says so', () => {
    expect(SIM_DEFAULTS).toMatchObject({ batch: 10, clientTimeoutMs: 200, records: 1000, valueBytes: 16, checkpointInterval: 50, window: 200 });
    expect(paramDefault('run', 'batch')).toBe(100);
    expect(paramDefault('run', 'clientTimeoutMs')).toBe(2000);
  });

  it('hides old spellings from the help but still accepts them', () => {
    const help = defineSimCommand(new Command('sim')).helpInformation();
    expect(help).toContain('--generator <kind>');
    expect(help).not.toContain('--keys');
    expect(help).not.toContain('--client-machines');
    const flags = parse<SimFlags>(defineSimCommand, ['--protocol', 'poe', '--keys', 'resilientdb', '--client-machines', '2', '--fault', '1=silent'], 'sim');
    expect(flags).toMatchObject({ generator: 'resilientdb', clientProcs: '2', faults: ['1=silent'] });
  });
});

describe('replay lines round-trip through the parsers', () => {
  it('run: a spec with every parameter off its default', () => {
    const spec = makeRunSpec({
      protocol: 'pbft',
      replicas: 7,
      crashed: 1,
      faults: [{ replica: 0, fault: { kind: 'slow', delayMs: 20 } }],
      batch: 50,
      clients: 12,
      clientProcs: 2,
      warmupS: 1.5,
      durationS: 3,
      generator: 'resilientdb',
      records: 5000,
      valueBytes: 32,
      seed: 9,
      basePort: 20000,
      openLoopBatchesPerSec: 250,
      clientTimeoutMs: 900,
      viewChangeTimeoutMs: 1200,
      checkpointInterval: 20,
      window: 80,
      extra: { mode: 'chained', depth: 2 },
      link: 'lan',
      infra: { pinCpus: [0] },
    });
    const args = runReplayArgs(spec);
    expect(args).toContain('--faults');
    expect(args).toContain('--open-loop');
    const again = parseRunFlags(parse<RunFlags>(defineRunCommand, args, 'run'));
    expect(again).toEqual(spec);
    expect(formatReplicaFault(again.faults[0]!)).toBe('0=slow:20');
  });

  it('run: the defaults stay out of the line', () => {
    expect(runReplayArgs(makeRunSpec({ protocol: 'poe' }))).toEqual(['--protocol', 'poe', '--replicas', '4', '--seed', '1']);
  });

  it('sim: a configuration with faults, crashes, partitions and switches', () => {
    const config = resolveSimConfig({
      protocol: 'pbft',
      replicas: 7,
      seed: 4,
      batches: 60,
      crashed: 1,
      faults: [parseFaultAssignment('0=inTheDark:2'), parseFaultAssignment('0=stopAfter:21')],
      crashes: [{ replica: 3, atMs: 40 }],
      partitions: [{ nodes: [1, 2], fromMs: 5, toMs: 50 }],
      batch: 20,
      clientTimeoutMs: 300,
      extra: { mode: 'qc' },
      drain: false,
      settleMs: 0,
    });
    const args = simArgs(config);
    const [again] = parseSimFlags(parse<SimFlags>(defineSimCommand, args, 'sim'));
    expect(again).toEqual(config);
  });

  it('figure: the sweep its replay line gives is the sweep that printed it', () => {
    const flags: FigureFlags = {
      backend: 'sim',
      quick: true,
      reps: '2',
      replicas: '4',
      protocols: 'poe,pbft',
      warmup: '0',
      duration: '2',
      seed: '3',
      simBatches: '40',
    };
    const line = figureReplayCommand('13', flags, '/tmp/out');
    expect(line).toBe(
      'poe-bench figure 13 --seed 3 --warmup 0 --duration 2 --backend sim --quick --reps 2 --replicas 4 --protocols poe,pbft --sim-batches 40 --out /tmp/out',
    );
    const again = parse<FigureFlags & { out?: string }>(defineFigureCommand, ['13', ...argsOf(line, 2)], 'figure');
    expect(again.out).toBe('/tmp/out');
    expect(parseFigureFlags('13', again)).toEqual(parseFigureFlags('13', flags));
  });
});
