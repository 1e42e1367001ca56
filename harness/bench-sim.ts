/**
 * `npm run bench:sim`: how fast the simulator runs (issue 12 item 6: at least a million
 * simulated messages per wall-clock second for PoE and PBFT at n = 16). Each run is its own
 * Node process, so its start-up (loading the modules) is measured as a user of `poe-bench sim`
 * would pay it, and runs do not warm each other's JIT.
 *
 *   node dist/harness/bench-sim.js [--protocols poe,pbft] [--replicas 16] [--batches 2000]
 *                                  [--seed 1] [--crypto auto|computed|charged|both]
 *                                  [--repeat 1] [--json]
 *
 * Per run it prints the simulated messages (copies handed to the simulated network: client
 * requests and replica messages, one per recipient, as `poe-bench sim` reports them under
 * "network"), the wall seconds with start-up (process start to the end of the run, as the
 * parent saw it) and without (the simulation alone), messages per wall-second both ways, and
 * whether crypto was computed or charged (infra/sim/charged-crypto.ts). The target is in wall
 * seconds; the CPU seconds of the run are printed beside them because on a shared machine the
 * wall time says as much about the other load as about the simulator. With several runs of one
 * kind the order alternates (ABBA), since the machine's load drifts.
 *
 * A benchmark, not a test: it asserts nothing about time, and a run that is not valid (safety
 * or liveness violated) is reported as such and makes the exit code 1.
 */
import { spawnSync } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { Simulation } from '../infra/sim/simulator.js';
import type { SimCryptoRequest } from '../infra/sim/options.js';

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
}

export interface BenchSimRow extends ChildResult {
  /** Spawn to exit, seen by the parent: start-up, run and exit. */
  readonly wallWithStartupS: number;
  readonly wallRunS: number;
  readonly messagesPerWallSecondWithStartup: number;
  readonly messagesPerWallSecondRun: number;
}

function child(protocol: string, replicas: number, batches: number, seed: number, crypto: SimCryptoRequest): void {
  const startupMs = performance.now();
  const cpu0 = process.cpuUsage();
  const sim = new Simulation({ protocol, replicas, batches, seed, crypto });
  const r = sim.run();
  const runMs = performance.now() - startupMs;
  const cpu = process.cpuUsage(cpu0);
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
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
}

function runChild(protocol: string, replicas: number, batches: number, seed: number, crypto: SimCryptoRequest): BenchSimRow {
  const script = fileURLToPath(import.meta.url);
  const args = [
    script,
    '--child',
    '--protocols',
    protocol,
    '--replicas',
    String(replicas),
    '--batches',
    String(batches),
    '--seed',
    String(seed),
    '--crypto',
    crypto,
  ];
  const t0 = performance.now();
  const p = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
  const wallMs = performance.now() - t0;
  if (p.status !== 0) throw new Error(`bench-sim child ${protocol} (${crypto}) exited with ${p.status}: ${p.stderr}`);
  const r = JSON.parse(p.stdout.trim().split('\n').at(-1)!) as ChildResult;
  return {
    ...r,
    wallWithStartupS: wallMs / 1000,
    wallRunS: r.runMs / 1000,
    messagesPerWallSecondWithStartup: r.messages / (wallMs / 1000),
    messagesPerWallSecondRun: r.messages / (r.runMs / 1000),
  };
}

function formatRows(rows: readonly BenchSimRow[]): string {
  const header = [
    'protocol',
    'n',
    'batches',
    'crypto',
    'messages',
    'wall s (with start-up)',
    'wall s (run)',
    'cpu s (run)',
    'msgs/s (with start-up)',
    'msgs/s (run)',
    'msgs/cpu-s (run)',
    'valid',
  ];
  const cells = rows.map((r) => [
    r.protocol,
    String(r.replicas),
    String(r.batches),
    r.crypto,
    String(r.messages),
    r.wallWithStartupS.toFixed(2),
    r.wallRunS.toFixed(2),
    (r.runCpuMs / 1000).toFixed(2),
    Math.round(r.messagesPerWallSecondWithStartup).toLocaleString('en-US'),
    Math.round(r.messagesPerWallSecondRun).toLocaleString('en-US'),
    Math.round(r.messages / (r.runCpuMs / 1000)).toLocaleString('en-US'),
    r.valid ? 'yes' : `NO: ${r.violations[0] ?? ''}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  const line = (c: readonly string[]): string => c.map((x, i) => (i < 4 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  return [line(header), ...cells.map(line)].join('\n');
}

interface Flags {
  readonly child?: boolean;
  readonly protocols: string;
  readonly replicas: string;
  readonly batches: string;
  readonly seed: string;
  readonly crypto: string;
  readonly repeat: string;
  readonly json?: boolean;
}

function main(argv: readonly string[]): number {
  const program = new Command('bench-sim')
    .option('--child', 'internal: run one simulation and print its JSON')
    .option('--protocols <list>', 'protocols, comma-separated', 'poe,pbft')
    .option('--replicas <n>', 'replicas', '16')
    .option('--batches <m>', 'batches', '2000')
    .option('--seed <s>', 'seed', '1')
    .option('--crypto <mode>', 'auto (charged unless a replica is Byzantine) | computed | charged | both (computed and charged)', 'auto')
    .option('--repeat <k>', 'runs of each protocol and crypto mode, in ABBA order', '1')
    .option('--json', 'print the rows as JSON');
  program.parse(argv as string[]);
  const f = program.opts<Flags>();
  const protocols = f.protocols.split(',').filter((p) => p.length > 0);
  const replicas = Number(f.replicas);
  const batches = Number(f.batches);
  const seed = Number(f.seed);
  if (!['auto', 'computed', 'charged', 'both'].includes(f.crypto)) throw new RangeError(`--crypto ${f.crypto}: want auto, computed, charged or both`);
  if (f.child) {
    child(protocols[0]!, replicas, batches, seed, f.crypto as SimCryptoRequest);
    return 0;
  }
  const modes: SimCryptoRequest[] = f.crypto === 'both' ? ['charged', 'computed'] : [f.crypto as SimCryptoRequest];
  const kinds = protocols.flatMap((p) => modes.map((m) => ({ p, m })));
  const rows: BenchSimRow[] = [];
  for (let i = 0; i < Number(f.repeat); i++) {
    for (const k of i % 2 === 0 ? kinds : [...kinds].reverse()) {
      const row = runChild(k.p, replicas, batches, seed, k.m);
      rows.push(row);
      if (!f.json) process.stderr.write(`  ${k.p} ${row.crypto}: ${row.messages} messages in ${row.wallWithStartupS.toFixed(2)} s\n`);
    }
  }
  if (f.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else {
    process.stdout.write(`poe-bench simulator speed (node ${process.version}; each run a fresh process; start-up = module loading)\n`);
    process.stdout.write(`${formatRows(rows)}\n`);
  }
  return rows.every((r) => r.valid) ? 0 : 1;
}

process.exitCode = main(process.argv);
