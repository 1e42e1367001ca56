/**
 * `poe-bench sim`: one simulation (or one per seed) from the command line, validated with zod
 * so a bad flag is named in the error. Exit codes: 0 every run valid, 1 a run was invalid
 * (safety or liveness), 2 bad flags. Every invalid run prints its replay line.
 *
 * `runSimCommand` does the work and returns what to print, so tests call it directly;
 * `registerSimCommand` attaches it to the CLI (harness/cli.ts).
 */
import type { Command } from 'commander';
import type { z } from 'zod';
import { canonicalFlags, defineParams, describeParamIssues, flagName, paramDefault, paramSchema, parsedList } from '../params.js';
import type { KeyGeneratorKind } from '../../client/generators.js';
import { isClientPeer, clientOrigin, quorums } from '../../replica/types.js';
import type { Partition } from './network.js';
import {
  faultAssignmentProblem,
  faultyReplicas,
  parseCrash,
  parseFaultAssignment,
  parsePartition,
  SIM_DEFAULTS,
  type CrashSpec,
  type ExtraValue,
  type FaultAssignment,
  type SimConfig,
} from './options.js';
import { runSimulation, type SimResult } from './simulator.js';
// Scenario search (issue 13).
import { searchScenarios } from './scenarios.js';
import { hasProtocol, registeredProtocols } from '../../replica/protocols.js';
import type { ProtocolName } from '../../replica/types.js';

/**
 * The flags as commander hands them over: strings, repeatable ones as arrays, under the keys of
 * the table of run parameters (infra/params.ts). The old spellings (--keys, --client-machines,
 * --fault) are still accepted; `canonicalFlags` folds them in.
 */
export interface SimFlags {
  readonly protocol?: string;
  readonly replicas?: string;
  readonly batches?: string;
  readonly seed?: string;
  readonly seeds?: string;
  readonly crashed?: string;
  readonly clients?: string;
  readonly clientProcs?: string;
  readonly batch?: string;
  readonly generator?: string;
  readonly drop?: string;
  readonly dup?: string;
  readonly delayMs?: string;
  readonly jitterMs?: string;
  readonly tailMs?: string;
  readonly partition?: readonly string[];
  readonly healAtMs?: string;
  readonly crash?: readonly string[];
  readonly faults?: readonly string[];
  readonly clientTimeoutMs?: string;
  readonly viewChangeTimeoutMs?: string;
  readonly checkpointInterval?: string;
  readonly window?: string;
  readonly records?: string;
  readonly valueBytes?: string;
  readonly maxTimeMs?: string;
  readonly maxEvents?: string;
  readonly extra?: readonly string[];
  // Scenario search (issue 13).
  /** A scenario family of infra/sim/scenarios.ts, 'all' or 'twins': run --seeds seeds of each. */
  readonly scenario?: string;
  readonly json?: boolean;
  readonly force?: boolean;
  readonly drain?: boolean;
  readonly settleMs?: string;
  /** Old spellings of --generator, --client-procs and --faults. */
  readonly keys?: string;
  readonly clientMachines?: string;
  readonly fault?: readonly string[];
}

export class SimFlagError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SimFlagError';
  }
}

/** The table's sim flags, with the structured values (partitions, crashes, faults) parsed here, where their types live. */
const flagSchema = paramSchema('sim').extend({
  partition: parsedList<Partition>(parsePartition),
  crash: parsedList<CrashSpec>(parseCrash),
  faults: parsedList<FaultAssignment>(parseFaultAssignment),
});

/** What the schema makes of the flags, with the defaults of the table filled in. */
interface ParsedFlags {
  readonly protocol: string;
  readonly replicas: number;
  readonly batches: number;
  readonly seed: number;
  readonly seeds: number;
  readonly crashed: number;
  readonly clients?: number;
  readonly clientProcs?: number;
  readonly batch?: number;
  readonly generator?: KeyGeneratorKind;
  readonly drop?: number;
  readonly dup?: number;
  readonly delayMs?: number;
  readonly jitterMs?: number;
  readonly tailMs?: number;
  readonly partition: Partition[];
  readonly healAtMs?: number;
  readonly crash: CrashSpec[];
  readonly faults: FaultAssignment[];
  readonly clientTimeoutMs?: number;
  readonly viewChangeTimeoutMs?: number;
  readonly checkpointInterval?: number;
  readonly window?: number;
  readonly records?: number;
  readonly valueBytes?: number;
  readonly maxTimeMs?: number;
  readonly maxEvents?: number;
  readonly extra: [string, ExtraValue][];
  readonly force?: boolean;
  readonly drain?: boolean;
  readonly settleMs?: number;
}

/**
 * Checks across flags, run once every flag parsed on its own (zod runs refinements of an
 * object even when a field failed, so these would otherwise see half-parsed values).
 */
function crossCheck(o: ParsedFlags): string[] {
  const issues: string[] = [];
  const issue = (key: string, message: string): void => {
    issues.push(`${flagName('sim', key)}: ${message}`);
  };
  const n = o.replicas;
  const { f } = quorums(n);
  const crashed = o.crashed;
  if (crashed > n - 1) issue('crashed', `${crashed} silent backups leave no primary in a cluster of ${n}`);
  else if (crashed > f && !o.force) {
    issue('crashed', `${crashed} exceeds f = ${f} for n = ${n}: BFT protocols promise nothing beyond f faults (pass --force to run it anyway)`);
  }
  for (const c of o.crash) if (c.replica >= n) issue('crash', `replica ${c.replica} does not exist (replicas are 0..${n - 1})`);
  for (const a of o.faults) {
    const problem = faultAssignmentProblem(a, n);
    if (problem) issue('faults', problem);
  }
  if (crashed <= f && issues.length === 0) {
    const faulty = faultyReplicas({ replicas: n, crashed, crashes: o.crash, faults: o.faults });
    if (faulty.length > f && !o.force) {
      issue(
        'faults',
        `${faulty.length} faulty replicas (${faulty.join(', ')}: silent, crashing or with a fault) exceed f = ${f} for n = ${n} (pass --force to run it anyway)`,
      );
    }
  }
  const machines = o.clientProcs ?? SIM_DEFAULTS.clientProcs;
  for (const p of o.partition) {
    for (const node of p.nodes) {
      if (isClientPeer(node) ? clientOrigin(node) >= machines : node >= n)
        issue('partition', `node ${isClientPeer(node) ? `c${clientOrigin(node)}` : node} does not exist`);
    }
  }
  const interval = o.checkpointInterval ?? SIM_DEFAULTS.checkpointInterval;
  const window = o.window ?? SIM_DEFAULTS.window;
  if (window < interval) issue('window', `the window (${window}) must hold at least one checkpoint interval (${interval})`);
  return issues;
}

function describeIssues(error: z.ZodError): string {
  return describeParamIssues('sim', error);
}

/** Validates the flags; returns one configuration per seed (`--seeds N`: S, S+1, ..., S+N-1). */
export function parseSimFlags(flags: SimFlags): SimConfig[] {
  const parsed = flagSchema.safeParse(canonicalFlags('sim', flags));
  if (!parsed.success) throw new SimFlagError(describeIssues(parsed.error));
  const given = parsed.data as Partial<ParsedFlags>;
  const o: ParsedFlags = {
    ...(given as ParsedFlags),
    replicas: given.replicas ?? (paramDefault('sim', 'replicas') as number),
    batches: given.batches ?? (paramDefault('sim', 'batches') as number),
    seed: given.seed ?? (paramDefault('sim', 'seed') as number),
    seeds: given.seeds ?? (paramDefault('sim', 'seeds') as number),
    crashed: given.crashed ?? SIM_DEFAULTS.crashed,
  };
  const issues = crossCheck(o);
  if (issues.length > 0) throw new SimFlagError(issues.join('\n'));
  const d = SIM_DEFAULTS;
  const base: Omit<SimConfig, 'seed'> = {
    protocol: o.protocol,
    replicas: o.replicas,
    batches: o.batches,
    clientProcs: o.clientProcs ?? d.clientProcs,
    clients: o.clients ?? d.clients,
    batch: o.batch ?? d.batch,
    generator: o.generator ?? d.generator,
    crashed: o.crashed,
    crashes: o.crash,
    faults: o.faults,
    delay: { baseMs: o.delayMs ?? d.delay.baseMs, jitterMs: o.jitterMs ?? d.delay.jitterMs, tailMeanMs: o.tailMs ?? d.delay.tailMeanMs },
    links: [],
    dropProbability: o.drop ?? d.dropProbability,
    duplicateProbability: o.dup ?? d.duplicateProbability,
    partitions: o.partition,
    healAtMs: o.healAtMs,
    clientTimeoutMs: o.clientTimeoutMs ?? d.clientTimeoutMs,
    viewChangeTimeoutMs: o.viewChangeTimeoutMs ?? d.viewChangeTimeoutMs,
    checkpointInterval: o.checkpointInterval ?? d.checkpointInterval,
    window: o.window ?? d.window,
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
  for (let i = 0; i < o.seeds; i++) configs.push({ ...base, seed: (o.seed + i) >>> 0 });
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
  lines.push(
    `  crypto        ${r.crypto === 'charged' ? 'charged, not computed (no replica is Byzantine: infra/sim/charged-crypto.ts)' : 'computed (SHA-256, HMAC-SHA256 signatures)'}`,
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

// Scenario search (issue 13).
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

/** Runs `poe-bench sim` with already-parsed flags; prints nothing itself. */
export function runSimCommand(flags: SimFlags): SimCommandOutput {
  // Scenario search (issue 13).
  if (flags.scenario !== undefined) return runScenarioSearch(flags);
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
  if (configs.some((c) => c.crashed > quorums(c.replicas).f)) stderr += `warning: --crashed ${configs[0]!.crashed} exceeds f; forced\n`;
  else if (configs.some((c) => faultyReplicas(c).length > quorums(c.replicas).f))
    stderr += `warning: ${faultyReplicas(configs[0]!).length} faulty replicas exceed f; forced\n`;
  return { exitCode: failed.length > 0 ? 1 : 0, stdout: `${stdout}\n`, stderr, results };
}

/** Declares the `sim` flags on `cmd` (without an action, so tests can parse flags alone). */
export function defineSimCommand(cmd: Command): Command {
  cmd.description('run protocol cores in the deterministic simulator (virtual time, seeded network) and check safety and liveness');
  return defineParams(cmd, 'sim').addHelpText(
    'after',
    '\nExit codes: 0 all runs valid, 1 a run violated safety or liveness (its replay line is printed), 2 invalid flags.',
  );
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
