/**
 * `npm run bench:sim`: how fast the simulator runs (issue 12 item 6: at least a million
 * simulated messages per wall-clock second for PoE and PBFT at n = 16). Each run is its own
 * Node process, so its start-up (node's own, loading the simulator's modules, and the exit after
 * the run: as `poe-bench sim` exits since 2026-12-05, without node's wind-down of the heap,
 * harness/exit-flushed.ts) is measured, and runs do not warm each other's JIT. The child loads no flag
 * parser: `poe-bench sim` pays about 40 ms more than this start-up for commander, zod and the
 * parameter table that parse its flags (and what the CLI loads for its other commands), so time
 * `node dist/harness/cli.js sim ...` as well to see what a user of the command waits. Builds
 * before 5ebd8d3 loaded commander in the child too, and builds before 786b81d let node wind down
 * its heap after the run (20-30 ms more wall time): their start-up is not like for like; the CPU
 * seconds of the run alone are.
 *
 *   node dist/harness/bench-sim.js [--protocols poe,pbft] [--replicas 16] [--batches 2000]
 *                                  [--seed 1] [--crypto auto|computed|charged|both]
 *                                  [--repeat 1] [--baseline DIR] [--json]
 *
 * Per run it prints the simulated messages (copies handed to the simulated network: client
 * requests and replica messages, one per recipient, as `poe-bench sim` reports them under
 * "network"), the wall seconds with start-up (process start to the end of the run, as the
 * parent saw it) and without (the simulation alone), messages per wall-second both ways, and
 * whether crypto was computed or charged (infra/sim/charged-crypto.ts). The target is in wall
 * seconds; the CPU seconds (user + system, start-up included and the run alone) are printed
 * beside them, with the load average when the bench began, because on a shared machine the
 * wall time says as much about the other load as about the simulator. With several runs of one
 * kind the order alternates (ABBA), since the machine's load drifts. `--baseline DIR` runs each
 * kind also with the build in DIR (a checkout with its own `npm run build`, e.g. main), the two
 * builds in ABBA order, and prints the ratio of their CPU seconds: the fair way to compare two
 * builds on a shared machine.
 *
 * A benchmark, not a test: it asserts nothing about time, and a run that is not valid (safety
 * or liveness violated) is reported as such and makes the exit code 1.
 */
import { spawnSync } from 'node:child_process';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import type { SimCryptoRequest } from '../infra/sim/options.js';
import { exitFlushed } from './exit-flushed.js';

interface ChildResult {
  readonly protocol: string;
  readonly replicas: number;
  readonly batches: number;
  readonly seed: number;
  readonly valid: boolean;
  readonly violations: readonly string[];
  readonly crypto: string;
  /** Copies handed to the simulated network (client and replica messages). */
  readonly messages: number;
  readonly replicaMessages: number;
  readonly events: number;
  /** Process start to the simulation's start (module loading), and the simulation alone. */
  readonly startupMs: number;
  readonly runMs: number;
  /** CPU time (user + system) of the simulation alone: less sensitive than wall time to other load on the machine. */
  readonly runCpuMs: number;
  /** CPU time of the process from its start to the end of the run (start-up included). */
  readonly cpuWithStartupMs: number;
}

export interface BenchSimRow extends ChildResult {
  /** 'this', or the --baseline directory whose build ran it. */
  readonly build: string;
  /** Spawn to exit, seen by the parent: start-up, run and exit. */
  readonly wallWithStartupS: number;
  readonly wallRunS: number;
  readonly messagesPerWallSecondWithStartup: number;
  readonly messagesPerWallSecondRun: number;
  readonly messagesPerCpuSecondWithStartup: number;
  readonly messagesPerCpuSecondRun: number;
}

/**
 * One run, in the child process. It loads the simulator and nothing else (no flag parser: the
 * parent passes exactly CHILD_FLAGS, read by `childArgs`), so the start-up it measures is the
 * simulator's; `poe-bench sim` loads commander and zod besides, to parse its flags.
 */
async function child(protocol: string, replicas: number, batches: number, seed: number, crypto: SimCryptoRequest): Promise<void> {
  const { Simulation } = await import('../infra/sim/simulator.js');
  const startupMs = performance.now();
  const cpu0 = process.cpuUsage();
  const sim = new Simulation({ protocol, replicas, batches, seed, crypto });
  const r = sim.run();
  const runMs = performance.now() - startupMs;
  const cpu = process.cpuUsage(cpu0);
  const total = process.cpuUsage();
  const out: ChildResult = {
    protocol,
    replicas,
    batches,
    seed,
    valid: r.valid,
    violations: r.violations.slice(0, 5),
    crypto: r.crypto,
    messages: r.network.sent,
    replicaMessages: r.replicaMessages,
    events: r.events,
    startupMs,
    runMs,
    runCpuMs: (cpu.user + cpu.system) / 1000,
    cpuWithStartupMs: (total.user + total.system) / 1000,
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

/** The flags the parent gives a child, in this order, each followed by its value. */
const CHILD_FLAGS = ['--protocols', '--replicas', '--batches', '--seed', '--crypto'] as const;

/** A child's flags (`--child` then CHILD_FLAGS with their values), as runChild writes them. */
function childArgs(argv: readonly string[]): { protocol: string; replicas: number; batches: number; seed: number; crypto: SimCryptoRequest } {
  const at = argv.indexOf('--child');
  const value = (i: number): string => {
    const flag = argv[at + 1 + 2 * i];
    const v = argv[at + 2 + 2 * i];
    if (flag !== CHILD_FLAGS[i] || v === undefined)
      throw new RangeError(`bench-sim --child: want ${CHILD_FLAGS.join(' X ')} X, got ${argv.slice(at + 1).join(' ')}`);
    return v;
  };
  return { protocol: value(0), replicas: Number(value(1)), batches: Number(value(2)), seed: Number(value(3)), crypto: value(4) as SimCryptoRequest };
}

function runChild(build: string, protocol: string, replicas: number, batches: number, seed: number, crypto: SimCryptoRequest): BenchSimRow {
  const script = build === 'this' ? fileURLToPath(import.meta.url) : join(build, 'dist', 'harness', 'bench-sim.js');
  const values = [protocol, String(replicas), String(batches), String(seed), crypto];
  const args = [script, '--child', ...CHILD_FLAGS.flatMap((flag, i) => [flag, values[i]!])];
  const t0 = performance.now();
  const p = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const wallMs = performance.now() - t0;
  if (p.status !== 0) throw new Error(`bench-sim child ${protocol} (${crypto}) exited with ${p.status}: ${p.stderr}`);
  const parsed = JSON.parse(p.stdout.trim().split('\n').at(-1)!) as ChildResult;
  // A baseline built before cpuWithStartupMs existed does not report it.
  const r: ChildResult = { ...parsed, cpuWithStartupMs: parsed.cpuWithStartupMs ?? Number.NaN };
  return {
    ...r,
    build,
    wallWithStartupS: wallMs / 1000,
    wallRunS: r.runMs / 1000,
    messagesPerWallSecondWithStartup: r.messages / (wallMs / 1000),
    messagesPerWallSecondRun: r.messages / (r.runMs / 1000),
    messagesPerCpuSecondWithStartup: r.messages / (r.cpuWithStartupMs / 1000),
    messagesPerCpuSecondRun: r.messages / (r.runCpuMs / 1000),
  };
}

function formatRows(rows: readonly BenchSimRow[]): string {
  const header = [
    'build',
    'protocol',
    'n',
    'batches',
    'crypto',
    'messages',
    'wall s (with start-up)',
    'wall s (run)',
    'cpu s (with start-up)',
    'cpu s (run)',
    'msgs/s (with start-up)',
    'msgs/s (run)',
    'msgs/cpu-s (with start-up)',
    'msgs/cpu-s (run)',
    'valid',
  ];
  const cells = rows.map((r) => [
    r.build,
    r.protocol,
    String(r.replicas),
    String(r.batches),
    r.crypto,
    String(r.messages),
    r.wallWithStartupS.toFixed(2),
    r.wallRunS.toFixed(2),
    Number.isNaN(r.cpuWithStartupMs) ? 'n/a' : (r.cpuWithStartupMs / 1000).toFixed(2),
    (r.runCpuMs / 1000).toFixed(2),
    Math.round(r.messagesPerWallSecondWithStartup).toLocaleString('en-US'),
    Math.round(r.messagesPerWallSecondRun).toLocaleString('en-US'),
    Number.isNaN(r.cpuWithStartupMs) ? 'n/a' : Math.round(r.messagesPerCpuSecondWithStartup).toLocaleString('en-US'),
    Math.round(r.messagesPerCpuSecondRun).toLocaleString('en-US'),
    r.valid ? 'yes' : `NO: ${r.violations[0] ?? ''}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string => c.map((x, i) => (i < 5 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [line(header), ...cells.map(line)].join('\n');
}

interface Flags {
  readonly protocols: string;
  readonly replicas: string;
  readonly batches: string;
  readonly seed: string;
  readonly crypto: string;
  readonly repeat: string;
  readonly baseline?: string;
  readonly json?: boolean;
}

async function main(argv: readonly string[]): Promise<number> {
  const { Command } = await import('commander');
  const program = new Command('bench-sim')
    .option('--protocols <list>', 'protocols, comma-separated', 'poe,pbft')
    .option('--replicas <n>', 'replicas', '16')
    .option('--batches <m>', 'batches', '2000')
    .option('--seed <s>', 'seed', '1')
    .option('--crypto <mode>', 'auto (charged unless a replica is Byzantine) | computed | charged | both (computed and charged)', 'auto')
    .option('--repeat <k>', 'runs of each protocol and crypto mode, in ABBA order', '1')
    .option('--baseline <dir>', 'also run the build in <dir> (its dist/harness/bench-sim.js), ABBA with this one, and compare CPU seconds')
    .option('--json', 'print the rows as JSON');
  program.parse(argv as string[]);
  const f = program.opts<Flags>();
  const protocols = f.protocols.split(',').filter((p) => p.length > 0);
  const replicas = Number(f.replicas);
  const batches = Number(f.batches);
  const seed = Number(f.seed);
  if (!['auto', 'computed', 'charged', 'both'].includes(f.crypto)) throw new RangeError(`--crypto ${f.crypto}: want auto, computed, charged or both`);
  const modes: SimCryptoRequest[] = f.crypto === 'both' ? ['charged', 'computed'] : [f.crypto as SimCryptoRequest];
  const builds = f.baseline ? ['this', f.baseline] : ['this'];
  const kinds = protocols.flatMap((p) => modes.flatMap((m) => builds.map((b) => ({ p, m, b }))));
  const rows: BenchSimRow[] = [];
  const load = loadavg();
  for (let i = 0; i < Number(f.repeat); i++) {
    for (const k of i % 2 === 0 ? kinds : [...kinds].reverse()) {
      const row = runChild(k.b, k.p, replicas, batches, seed, k.m);
      rows.push(row);
      if (!f.json) process.stderr.write(`  ${k.b} ${k.p} ${row.crypto}: ${row.messages} messages in ${row.wallWithStartupS.toFixed(2)} s\n`);
    }
  }
  const loadAverage = load.map((x) => Number(x.toFixed(2)));
  const comparison = f.baseline ? compareBuilds(rows, f.baseline) : [];
  if (f.json) process.stdout.write(`${JSON.stringify({ loadAverage, rows, comparison }, null, 2)}\n`);
  else {
    process.stdout.write(
      `poe-bench simulator speed (node ${process.version}; each run a fresh process; start-up = process start and module loading; ` +
        `load average at the start ${loadAverage.join(' ')})\n`,
    );
    process.stdout.write(`${formatRows(rows)}\n`);
    for (const c of comparison) {
      process.stdout.write(
        `${c.protocol} ${c.crypto}: CPU seconds this/baseline ${c.cpuRatioWithStartup.toFixed(3)} with start-up, ${c.cpuRatioRun.toFixed(3)} the run alone` +
          `${c.sameMessages ? '' : ' (the builds simulated different message counts!)'}\n`,
      );
    }
  }
  return rows.every((r) => r.valid) ? 0 : 1;
}

interface BuildComparison {
  readonly protocol: string;
  readonly crypto: string;
  /** Summed CPU seconds of this build's runs over the baseline's. */
  readonly cpuRatioWithStartup: number;
  readonly cpuRatioRun: number;
  /** Both builds simulated the same number of messages (they should: same seed, same protocol). */
  readonly sameMessages: boolean;
}

function compareBuilds(rows: readonly BenchSimRow[], baseline: string): BuildComparison[] {
  const out: BuildComparison[] = [];
  const keys = [...new Set(rows.map((r) => `${r.protocol} ${r.crypto}`))];
  for (const key of keys) {
    const of = (build: string) => rows.filter((r) => `${r.protocol} ${r.crypto}` === key && r.build === build);
    const mine = of('this');
    const base = of(baseline);
    const sum = (rs: readonly BenchSimRow[], pick: (r: BenchSimRow) => number) => rs.reduce((a, r) => a + pick(r), 0);
    out.push({
      protocol: mine[0]!.protocol,
      crypto: mine[0]!.crypto,
      cpuRatioWithStartup: sum(mine, (r) => r.cpuWithStartupMs) / sum(base, (r) => r.cpuWithStartupMs),
      cpuRatioRun: sum(mine, (r) => r.runCpuMs) / sum(base, (r) => r.runCpuMs),
      sameMessages: [...mine, ...base].every((r) => r.messages === mine[0]!.messages),
    });
  }
  return out;
}

if (process.argv.includes('--child')) {
  const a = childArgs(process.argv);
  // The child ends as `poe-bench sim` does, once its output is flushed, without node's
  // wind-down of the heap (exit-flushed.ts); the parent counts the exit in the wall time.
  await child(a.protocol, a.replicas, a.batches, a.seed, a.crypto);
  await exitFlushed(0);
} else process.exitCode = await main(process.argv);
