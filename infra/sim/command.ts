/**
 * `poe-bench sim`: one simulation (or one per seed) from the command line, validated with zod
 * so a bad flag is named in the error. Exit codes: 0 every run valid, 1 a run was invalid
 * (safety or liveness), 2 bad flags. Every invalid run prints its replay line.
 *
 * `runSimCommand` does the work and returns what to print, so tests call it directly;
 * `registerSimCommand` attaches it to the CLI (harness/cli.ts).
 */
import type { Command } from 'commander';
import { z } from 'zod';
import { integerFlag as integer, nonNegativeFlag as nonNegative } from '../flags.js';
import { KEY_GENERATOR_KINDS } from '../../client/generators.js';
import { hasProtocol, registeredProtocols, UnknownProtocolError } from '../../replica/protocols.js';
import { isClientPeer, clientOrigin, quorums } from '../../replica/types.js';
import type { Partition } from './network.js';
import {
  faultAssignmentProblem,
  faultyReplicas,
  parseCrash,
  parseExtra,
  parseFaultAssignment,
  parsePartition,
  SIM_DEFAULTS,
  type CrashSpec,
  type ExtraValue,
  type FaultAssignment,
  type SimConfig,
} from './options.js';
import { runSimulation, type SimResult } from './simulator.js';
// --- scenario search (issue 13, helper "byzantine") ---
import { searchScenarios } from './scenarios.js';
import type { ProtocolName } from '../../replica/types.js';
// --- end scenario search ---

/** The flags as commander hands them over: strings, repeatable ones as arrays. */
export interface SimFlags {
  readonly protocol?: string;
  readonly replicas?: string;
  readonly batches?: string;
  readonly seed?: string;
  readonly seeds?: string;
  readonly crashed?: string;
  readonly clients?: string;
  readonly clientMachines?: string;
  readonly batch?: string;
  readonly keys?: string;
  readonly drop?: string;
  readonly dup?: string;
  readonly delayMs?: string;
  readonly jitterMs?: string;
  readonly tailMs?: string;
  readonly partition?: readonly string[];
  readonly healAtMs?: string;
  readonly crash?: readonly string[];
  readonly fault?: readonly string[];
  readonly clientTimeoutMs?: string;
  readonly viewChangeTimeoutMs?: string;
  readonly checkpointInterval?: string;
  readonly window?: string;
  readonly records?: string;
  readonly valueBytes?: string;
  readonly maxTimeMs?: string;
  readonly maxEvents?: string;
  readonly extra?: readonly string[];
  // --- scenario search (issue 13, helper "byzantine") ---
  /** A scenario family of infra/sim/scenarios.ts, 'all' or 'twins': run --seeds seeds of each. */
  readonly scenario?: string;
  // --- end scenario search ---
  readonly json?: boolean;
  readonly force?: boolean;
  readonly drain?: boolean;
  readonly settleMs?: string;
}

/** Flag names by SimFlags key, for error messages. */
const FLAG_NAMES: Record<string, string> = {
  protocol: '--protocol',
  replicas: '--replicas',
  batches: '--batches',
  seed: '--seed',
  seeds: '--seeds',
  crashed: '--crashed',
  clients: '--clients',
  clientMachines: '--client-machines',
  batch: '--batch',
  keys: '--keys',
  drop: '--drop',
  dup: '--dup',
  delayMs: '--delay-ms',
  jitterMs: '--jitter-ms',
  tailMs: '--tail-ms',
  partition: '--partition',
  healAtMs: '--heal-at-ms',
  crash: '--crash',
  fault: '--fault',
  settleMs: '--settle-ms',
  clientTimeoutMs: '--client-timeout-ms',
  viewChangeTimeoutMs: '--view-change-timeout-ms',
  checkpointInterval: '--checkpoint-interval',
  window: '--window',
  records: '--records',
  valueBytes: '--value-bytes',
  maxTimeMs: '--max-time-ms',
  maxEvents: '--max-events',
  extra: '--extra',
};

export class SimFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimFlagError';
  }
}

const probability = () =>
  z.coerce
    .number({ invalid_type_error: 'must be a number' })
    .refine((x) => x >= 0 && x <= 1, 'must be a probability in [0, 1]')
    .optional();
const parsedList = <T>(parse: (s: string) => T) =>
  z
    .array(z.string())
    .optional()
    .transform((xs, ctx) => {
      const out: T[] = [];
      for (const x of xs ?? []) {
        try {
          out.push(parse(x));
        } catch (err) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
          return z.NEVER;
        }
      }
      return out;
    });

const flagSchema = z.object({
  protocol: z
    .string({ required_error: `is required (one of: ${registeredProtocols().join(', ') || 'none registered'})` })
    .refine(hasProtocol, (p) => ({ message: new UnknownProtocolError(p).message })),
  replicas: integer(4, 1024).default(4),
  batches: integer(1).default(1000),
  seed: integer(0, 0xffff_ffff).default(1),
  seeds: integer(1, 100_000).default(1),
  crashed: integer(0).default(SIM_DEFAULTS.crashed),
  clients: integer(1, 1_000_000),
  clientMachines: integer(1, 1000),
  batch: integer(1, 100_000),
  keys: z.enum(KEY_GENERATOR_KINDS as [string, ...string[]]).optional(),
  drop: probability(),
  dup: probability(),
  delayMs: nonNegative(),
  jitterMs: nonNegative(),
  tailMs: nonNegative(),
  partition: parsedList<Partition>(parsePartition),
  healAtMs: nonNegative(),
  crash: parsedList<CrashSpec>(parseCrash),
  fault: parsedList<FaultAssignment>(parseFaultAssignment),
  clientTimeoutMs: nonNegative().refine((x) => x === undefined || x > 0, 'must be > 0'),
  viewChangeTimeoutMs: nonNegative().refine((x) => x === undefined || x > 0, 'must be > 0'),
  checkpointInterval: integer(1),
  window: integer(1),
  records: integer(1, 100_000_000),
  valueBytes: integer(8, 65_536),
  maxTimeMs: nonNegative(),
  maxEvents: integer(1),
  extra: parsedList<[string, ExtraValue]>(parseExtra),
  force: z.boolean().optional(),
  drain: z.boolean().optional(),
  settleMs: nonNegative(),
});

type ParsedFlags = z.infer<typeof flagSchema>;

/**
 * Checks across flags, run once every flag parsed on its own (zod runs refinements of an
 * object even when a field failed, so these would otherwise see half-parsed values).
 */
function crossCheck(o: ParsedFlags): string[] {
  const issues: string[] = [];
  const issue = (key: string, message: string): void => {
    issues.push(`${FLAG_NAMES[key] ?? key}: ${message}`);
  };
  const n = o.replicas!;
  const { f } = quorums(n);
  const crashed = o.crashed!;
  if (crashed > n - 1) issue('crashed', `${crashed} silent backups leave no primary in a cluster of ${n}`);
  else if (crashed > f && !o.force) {
    issue('crashed', `${crashed} exceeds f = ${f} for n = ${n}: BFT protocols promise nothing beyond f faults (pass --force to run it anyway)`);
  }
  for (const c of o.crash) if (c.replica >= n) issue('crash', `replica ${c.replica} does not exist (replicas are 0..${n - 1})`);
  for (const a of o.fault) {
    const problem = faultAssignmentProblem(a, n);
    if (problem) issue('fault', problem);
  }
  if (crashed <= f && issues.length === 0) {
    const faulty = faultyReplicas({ n, crashed, crashes: o.crash, faults: o.fault });
    if (faulty.length > f && !o.force) {
      issue(
        'fault',
        `${faulty.length} faulty replicas (${faulty.join(', ')}: silent, crashing or with a fault) exceed f = ${f} for n = ${n} (pass --force to run it anyway)`,
      );
    }
  }
  const machines = o.clientMachines ?? SIM_DEFAULTS.clientMachines;
  for (const p of o.partition) {
    for (const node of p.nodes) {
      if (isClientPeer(node) ? clientOrigin(node) >= machines : node >= n)
        issue('partition', `node ${isClientPeer(node) ? `c${clientOrigin(node)}` : node} does not exist`);
    }
  }
  const interval = o.checkpointInterval ?? SIM_DEFAULTS.checkpointIntervalK;
  const window = o.window ?? SIM_DEFAULTS.windowK;
  if (window < interval) issue('window', `the window (${window}) must hold at least one checkpoint interval (${interval})`);
  return issues;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const key = String(i.path[0] ?? '');
      return `${FLAG_NAMES[key] ?? key}: ${i.message}`;
    })
    .join('\n');
}

/** Validates the flags; returns one configuration per seed (`--seeds N`: S, S+1, ..., S+N-1). */
export function parseSimFlags(flags: SimFlags): SimConfig[] {
  const parsed = flagSchema.safeParse(flags);
  if (!parsed.success) throw new SimFlagError(describeIssues(parsed.error));
  const o = parsed.data;
  const issues = crossCheck(o);
  if (issues.length > 0) throw new SimFlagError(issues.join('\n'));
  const d = SIM_DEFAULTS;
  const base: Omit<SimConfig, 'seed'> = {
    protocol: o.protocol,
    n: o.replicas!,
    batches: o.batches!,
    clientMachines: o.clientMachines ?? d.clientMachines,
    clients: o.clients ?? d.clients,
    batchSize: o.batch ?? d.batchSize,
    keyGenerator: (o.keys ?? d.keyGenerator) as SimConfig['keyGenerator'],
    crashed: o.crashed!,
    crashes: o.crash,
    faults: o.fault,
    delay: { baseMs: o.delayMs ?? d.delay.baseMs, jitterMs: o.jitterMs ?? d.delay.jitterMs, tailMeanMs: o.tailMs ?? d.delay.tailMeanMs },
    links: [],
    dropProbability: o.drop ?? d.dropProbability,
    duplicateProbability: o.dup ?? d.duplicateProbability,
    partitions: o.partition,
    healAtMs: o.healAtMs,
    requestTimeoutMs: o.clientTimeoutMs ?? d.requestTimeoutMs,
    viewChangeTimeoutMs: o.viewChangeTimeoutMs ?? d.viewChangeTimeoutMs,
    checkpointIntervalK: o.checkpointInterval ?? d.checkpointIntervalK,
    windowK: o.window ?? d.windowK,
    records: o.records ?? d.records,
    valueBytes: o.valueBytes ?? d.valueBytes,
    maxTimeMs: o.maxTimeMs ?? d.maxTimeMs,
    maxEvents: o.maxEvents ?? d.maxEvents,
    extra: Object.fromEntries(o.extra),
    drain: o.drain ?? d.drain,
    settleMs: o.settleMs ?? d.settleMs,
    stopOnViolation: d.stopOnViolation,
  };
  const configs: SimConfig[] = [];
  for (let i = 0; i < o.seeds!; i++) configs.push({ ...base, seed: (o.seed! + i) >>> 0 });
  return configs;
}

const fmt = (x: number, digits = 2): string => (Number.isInteger(x) ? String(x) : x.toFixed(digits));

/** A readable summary of one run; invalid runs end with their violations and replay line. */
export function formatSimResult(r: SimResult): string {
  const lines: string[] = [];
  lines.push(
    `poe-bench sim: ${r.protocol} n=${r.n} f=${r.f} crashed=[${r.crashed.join(',')}]${r.faults.length ? ` faults=[${r.faults.join(' ')}]` : ''} seed=${r.seed}`,
  );
  lines.push(`  result        ${r.valid ? 'VALID' : 'INVALID'} (stopped: ${r.stopReason} at ${fmt(r.virtualTimeMs, 1)} ms virtual, ${r.events} events)`);
  const paths = Object.entries(r.acceptedByPath)
    .map(([p, c]) => `${p} ${c}`)
    .join(', ');
  lines.push(`  batches       ${r.acceptedBatches} accepted of ${r.issuedBatches} issued${paths ? ` (paths: ${paths})` : ''}`);
  lines.push(
    `  messages      ${fmt(r.messagesPerBatch)} per batch, ${fmt(r.protocolMessagesPerBatch)} without checkpoints; ` +
      `${r.replicaMessages} sent by replicas, ${r.bytesSent} bytes`,
  );
  lines.push(
    `  by type       ${
      Object.entries(r.messagesByType)
        .map(([t, c]) => `${t} ${c}`)
        .join(', ') || 'none'
    }`,
  );
  lines.push(
    `  faults        view changes ${r.viewChanges} (highest view ${r.highestView}), rollbacks ${r.rollbacks} (${r.rolledBackBatches} batches), client timeouts ${r.clientTimeouts}`,
  );
  lines.push(`  latency       mean ${fmt(r.latencyMs.mean)} ms, max ${fmt(r.latencyMs.max)} ms (virtual)`);
  lines.push(
    `  ledgers       heights ${r.ledgerHeight.min}..${r.ledgerHeight.max} (non-faulty replicas)${r.converged ? '' : ', NOT converged'}; highest stable checkpoint ${r.highestStableCheckpoint}` +
      (r.settledMs > 0 ? `; settled for ${fmt(r.settledMs, 1)} ms with timers` : ''),
  );
  const net = r.network;
  lines.push(
    `  network       ${net.sent} copies sent, ${net.delivered} delivered, ${net.dropped} dropped, ${net.duplicated} duplicated, ${net.partitioned} cut by partitions, ${net.toCrashed} to crashed replicas`,
  );
  if (!r.valid) {
    lines.push(`  violations    ${r.violations.length}`);
    for (const v of r.violations.slice(0, 20)) lines.push(`    - ${v}`);
    if (r.violations.length > 20) lines.push(`    ... ${r.violations.length - 20} more (see --json)`);
    lines.push(`replay: ${r.replay}`);
  }
  return lines.join('\n');
}

export interface SimCommandOutput {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly results: readonly SimResult[];
}

// --- scenario search (issue 13, helper "byzantine") ---
/**
 * `poe-bench sim --scenario <family|all|twins> --protocol P --seeds N [--seed S] [--json]`: N
 * seeds of each selected family (infra/sim/scenarios.ts); every other flag comes from the
 * scenario. Prints each failure with its replay line and a summary; --json prints one object
 * with runs, failures, replays and safetyViolations. Exit 1 on any failure.
 */
function runScenarioSearch(flags: SimFlags): SimCommandOutput {
  const bad = (message: string): SimCommandOutput => ({ exitCode: 2, stdout: '', stderr: `poe-bench sim: invalid flags\n${message}\n`, results: [] });
  const protocol = flags.protocol;
  if (!protocol || !hasProtocol(protocol)) return bad(`--protocol: is required with --scenario (one of: ${registeredProtocols().join(', ')})`);
  const seeds = Number(flags.seeds ?? '1');
  const seed = Number(flags.seed ?? '1');
  if (!Number.isInteger(seeds) || seeds < 1 || seeds > 10_000_000) return bad('--seeds: must be an integer >= 1');
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffff_ffff) return bad('--seed: must be an integer in [0, 2^32)');
  const startMs = performance.now();
  const texts: string[] = [];
  let result: ReturnType<typeof searchScenarios>;
  try {
    result = searchScenarios(flags.scenario!, protocol as ProtocolName, seed, seeds, runSimulation, (t) => texts.push(t));
  } catch (err) {
    if (err instanceof RangeError) return bad(`--scenario: ${err.message}`);
    throw err;
  }
  const seconds = Math.round((performance.now() - startMs) / 100) / 10;
  const failed = result.failures.length;
  const summary =
    `scenario ${result.scenario} (${result.families.join(', ')}), ${protocol}, seeds ${seed}..${seed + seeds - 1}: ` +
    `${result.runs} runs, ${failed} failures (${result.safetyViolations} with a safety violation), ${seconds} s`;
  const stdout = flags.json
    ? JSON.stringify({ ...result, seconds, valid: failed === 0 })
    : [...texts, summary, ...result.replays.map((r) => `replay: ${r}`)].join('\n');
  return {
    exitCode: failed > 0 ? 1 : 0,
    stdout: `${stdout}\n`,
    stderr: flags.json && failed > 0 ? `${result.replays.map((r) => `replay: ${r}`).join('\n')}\n` : '',
    results: [],
  };
}

/** `--scenario`, declared apart from the other flags so the two blocks merge independently. */
function defineScenarioOption(cmd: Command): void {
  cmd.option(
    '--scenario <family|all|twins>',
    'run --seeds seeds (from --seed) of a scenario family of infra/sim/scenarios.ts, of all of them, or of the lying-replica families (twins); prints failures with replay lines',
  );
}
// --- end scenario search ---

/** Runs `poe-bench sim` with already-parsed flags; prints nothing itself. */
export function runSimCommand(flags: SimFlags): SimCommandOutput {
  // --- scenario search (issue 13, helper "byzantine") ---
  if (flags.scenario !== undefined) return runScenarioSearch(flags);
  // --- end scenario search ---
  let configs: SimConfig[];
  try {
    configs = parseSimFlags(flags);
  } catch (err) {
    if (err instanceof SimFlagError) return { exitCode: 2, stdout: '', stderr: `poe-bench sim: invalid flags\n${err.message}\n`, results: [] };
    throw err;
  }
  const results = configs.map((c) => runSimulation(c));
  const failed = results.filter((r) => !r.valid);
  const replays = failed.map((r) => `replay: ${r.replay}`).join('\n');
  let stdout: string;
  let stderr = '';
  if (flags.json) {
    stdout =
      results.length === 1
        ? JSON.stringify(results[0])
        : JSON.stringify({ valid: failed.length === 0, runs: results.length, failedSeeds: failed.map((r) => r.seed), results });
    // stdout stays one JSON object; the replay lines go to stderr.
    if (failed.length > 0) stderr = `${replays}\n`;
  } else {
    stdout = results.map(formatSimResult).join('\n\n');
    if (results.length > 1)
      stdout += `\n\n${results.length - failed.length} of ${results.length} seeds valid${failed.length ? `; failing seeds: ${failed.map((r) => r.seed).join(', ')}` : ''}`;
  }
  if (configs.some((c) => c.crashed > quorums(c.n).f)) stderr += `warning: --crashed ${configs[0]!.crashed} exceeds f; forced\n`;
  else if (configs.some((c) => faultyReplicas(c).length > quorums(c.n).f))
    stderr += `warning: ${faultyReplicas(configs[0]!).length} faulty replicas exceed f; forced\n`;
  return { exitCode: failed.length > 0 ? 1 : 0, stdout: `${stdout}\n`, stderr, results };
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

/** Declares the `sim` flags on `cmd` (without an action, so tests can parse flags alone). */
export function defineSimCommand(cmd: Command): Command {
  defineScenarioOption(cmd); // scenario search (issue 13, helper "byzantine")
  return cmd
    .description('run protocol cores in the deterministic simulator (virtual time, seeded network) and check safety and liveness')
    .option('--protocol <name>', `protocol: ${registeredProtocols().join(' | ') || 'none registered'}`)
    .option('--replicas <n>', 'replicas (>= 4)', '4')
    .option('--batches <m>', 'batches the clients issue in total', '1000')
    .option('--seed <s>', 'the seed every random choice derives from', '1')
    .option('--seeds <count>', 'run this many seeds: s, s+1, ...', '1')
    .option('--crashed <k>', 'silent backups from the start (highest-numbered replicas; at most f unless --force)', String(SIM_DEFAULTS.crashed))
    .option('--force', 'allow --crashed above f')
    .option('--clients <c>', `logical clients per client machine (default ${SIM_DEFAULTS.clients})`)
    .option('--client-machines <count>', `client machines (default ${SIM_DEFAULTS.clientMachines})`)
    .option('--batch <b>', `writes per batch (default ${SIM_DEFAULTS.batchSize})`)
    .option('--keys <generator>', `key generator: ${KEY_GENERATOR_KINDS.join(' | ')} (default ${SIM_DEFAULTS.keyGenerator})`)
    .option('--drop <p>', 'probability that a message copy is lost (default 0)')
    .option('--dup <p>', 'probability that a message copy is delivered twice (default 0)')
    .option('--delay-ms <ms>', `one-way base delay (default ${SIM_DEFAULTS.delay.baseMs})`)
    .option('--jitter-ms <ms>', `uniform jitter added to the delay; reorders messages (default ${SIM_DEFAULTS.delay.jitterMs})`)
    .option('--tail-ms <ms>', 'mean of an exponential delay tail (default 0: none)')
    .option('--partition <nodes@from-to>', 'cut nodes (replica numbers, c<origin> for client machines) off during [from, to) ms; repeatable', collect)
    .option('--heal-at-ms <ms>', 'from this virtual time on, no message is lost or duplicated (default: only once the clients are done)')
    .option('--crash <replica@ms>', 'crash a replica at a virtual time; repeatable', collect)
    .option(
      '--fault <replica=fault>',
      'a crash or Byzantine behaviour: silent, stopAfter:K, crashAt:MS, slow:MS, inTheDark:IDS, equivocate, forgeViewChange[:stale], conflictingVotes, twins:SEED:ROUNDMS:ROUNDS[:0] (e.g. 0=equivocate, 0=inTheDark:3); repeatable, several on one replica compose in order',
      collect,
    )
    .option('--client-timeout-ms <ms>', `client request timeout (default ${SIM_DEFAULTS.requestTimeoutMs})`)
    .option('--view-change-timeout-ms <ms>', `replica view-change timeout (default ${SIM_DEFAULTS.viewChangeTimeoutMs})`)
    .option('--checkpoint-interval <k>', `checkpoint every k sequence numbers (default ${SIM_DEFAULTS.checkpointIntervalK})`)
    .option('--window <k>', `watermark window (default ${SIM_DEFAULTS.windowK})`)
    .option('--records <count>', `YCSB table size (default ${SIM_DEFAULTS.records})`)
    .option('--value-bytes <bytes>', `bytes per record value (default ${SIM_DEFAULTS.valueBytes})`)
    .option('--max-time-ms <ms>', `stop at this virtual time (default ${SIM_DEFAULTS.maxTimeMs})`)
    .option('--max-events <count>', `stop after this many events (default ${SIM_DEFAULTS.maxEvents})`)
    .option('--extra <key=value>', 'protocol switch passed to replicas and clients (e.g. mode=chained); repeatable', collect)
    .option('--no-drain', 'do not deliver in-flight messages after the clients are done')
    .option(
      '--settle-ms <ms>',
      `after the clients are done and the network healed, run on until the non-faulty replicas agree, for at most this much virtual time; 0: off (default ${SIM_DEFAULTS.settleMs})`,
    )
    .option('--json', 'print one JSON object')
    .addHelpText('after', '\nExit codes: 0 all runs valid, 1 a run violated safety or liveness (its replay line is printed), 2 invalid flags.');
}

/** Adds `poe-bench sim` to the program. */
export function registerSimCommand(program: Command): void {
  defineSimCommand(program.command('sim')).action((flags: SimFlags) => {
    const out = runSimCommand(flags);
    if (out.stdout) process.stdout.write(out.stdout);
    if (out.stderr) process.stderr.write(out.stderr);
    process.exitCode = out.exitCode;
  });
}
