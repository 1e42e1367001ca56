/**
 * The results store (DESIGN.md "Results"): every run appends one line to `<out>/runs.jsonl`
 * and writes `<out>/manifest.json` with what is needed to trust and repeat it: the commit and
 * whether the tree was dirty, Node, OS, CPU model and cores, the backend, the full spec, seeds.
 *
 * A line is written with one appendFileSync call, so an interrupted run leaves at worst an
 * unterminated last line, which the reader (experiments/runs.ts) drops.
 */
import { execFileSync } from 'node:child_process';
import { accessSync, constants, appendFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pointId, type RunRecord, type SweepPoint } from './records.js';
import { runReplayCommand, type RunSpec } from './spec.js';

export const RUNS_FILE = 'runs.jsonl';

/**
 * Why `dir` cannot be an output directory, or undefined: it exists but is not a directory, it
 * is not writable, or it does not exist and cannot be created (its nearest existing ancestor
 * is a file or not writable). Creates nothing, so a command can check before it starts
 * anything (issue 13: `run --out /etc/hostname` used to measure first and die after).
 */
export function outDirProblem(dir: string): string | undefined {
  const stat = (p: string) => {
    try {
      return statSync(p);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      return err as Error;
    }
  };
  const writable = (p: string): boolean => {
    try {
      accessSync(p, constants.W_OK | constants.X_OK);
      return true;
    } catch {
      return false;
    }
  };
  const st = stat(dir);
  if (st instanceof Error) return `${dir} cannot be used: ${st.message}`;
  if (st !== undefined) {
    if (!st.isDirectory()) return `${dir} exists and is not a directory`;
    return writable(dir) ? undefined : `${dir} is not writable`;
  }
  let parent = resolve(dir);
  for (;;) {
    const up = dirname(parent);
    if (up === parent) return `${dir} cannot be created (no existing ancestor)`;
    parent = up;
    const pst = stat(parent);
    if (pst === undefined) continue;
    if (pst instanceof Error) return `${dir} cannot be created: ${pst.message}`;
    if (!pst.isDirectory()) return `${dir} cannot be created: ${parent} is not a directory`;
    return writable(parent) ? undefined : `${dir} cannot be created: ${parent} is not writable`;
  }
}
export const MANIFEST_FILE = 'manifest.json';

export interface Environment {
  readonly commit: string;
  readonly dirty: boolean | null;
  /** The tracked files with uncommitted changes (`git status --porcelain`), when dirty; at most 20. */
  readonly dirtyFiles?: readonly string[];
  readonly node: string;
  readonly os: string;
  readonly cpuModel: string;
  readonly cpuCores: number;
  readonly totalMemoryMB: number;
  /**
   * POE_BENCH_NODE_ARGS when set: node flags the local backend adds after the spec's
   * --node-flags (infra/local/backend.ts), which they override; the spec's nodeFlags alone
   * would then not say what the processes ran with.
   */
  readonly nodeArgsFromEnv?: string;
}

function git(args: readonly string[], cwd: string): string | undefined {
  try {
    return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

const here = dirname(fileURLToPath(import.meta.url));

/** The machine and the code this run measures. */
export function environment(): Environment {
  const cpus = os.cpus();
  const commit = git(['rev-parse', 'HEAD'], here);
  const status = commit === undefined ? undefined : git(['status', '--porcelain', '--untracked-files=no'], here);
  const dirtyFiles = status ? status.split('\n').map((l) => l.slice(3).trim()) : [];
  return {
    commit: commit ?? 'unknown',
    dirty: status === undefined ? null : status !== '',
    ...(dirtyFiles.length > 0 ? { dirtyFiles: dirtyFiles.slice(0, 20) } : {}),
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuCores: cpus.length,
    totalMemoryMB: Math.round(os.totalmem() / 2 ** 20),
    ...(process.env['POE_BENCH_NODE_ARGS'] ? { nodeArgsFromEnv: process.env['POE_BENCH_NODE_ARGS'] } : {}),
  };
}

/**
 * The sweep point a spec measures (experiments/types.ts). A view-0 primary that stops after k
 * batches is figure 11b's failure, so the point says so; other faults are in the line's spec.
 */
export function specPoint(spec: RunSpec): SweepPoint {
  const stop = spec.faults.find((a) => a.replica === 0 && a.fault.kind === 'stopAfter');
  return {
    protocol: spec.protocol,
    replicas: spec.replicas,
    crashed: spec.crashed,
    batch: spec.batch,
    ...(stop?.fault.kind === 'stopAfter' ? { primaryStopsAfter: stop.fault.batches } : {}),
  };
}

/** A runs.jsonl line: the shared RunRecord plus this run's full detail. */
export type RunLine = RunRecord & Record<string, unknown>;

export function makeRunLine(
  spec: RunSpec,
  fields: Omit<RunRecord, 'experiment' | 'pointId' | 'point' | 'rep'> & Record<string, unknown>,
  experiment = 'run',
  rep = 0,
): RunLine {
  const point = specPoint(spec);
  return { experiment, pointId: pointId(point), point, rep, ...fields, spec } as RunLine;
}

export function appendRun(outDir: string, line: RunLine): string {
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, RUNS_FILE);
  appendFileSync(file, `${JSON.stringify(line)}\n`);
  return file;
}

export function writeManifest(outDir: string, spec: RunSpec, env: Environment, startedAt: string, extra: Record<string, unknown> = {}): string {
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, MANIFEST_FILE);
  const manifest = {
    experiment: 'run',
    startedAt,
    commit: env.commit,
    dirty: env.dirty,
    node: env.node,
    os: env.os,
    cpuModel: env.cpuModel,
    cpuCores: env.cpuCores,
    totalMemoryMB: env.totalMemoryMB,
    ...(env.nodeArgsFromEnv === undefined ? {} : { nodeArgsFromEnv: env.nodeArgsFromEnv }),
    backend: spec.backend,
    hosts: [spec.host],
    spec,
    seeds: { seed: spec.seed, keySeed: spec.keySeed, keyGeneratorSeeds: Array.from({ length: spec.clientProcs }, (_, o) => spec.seed + o) },
    /** The command that repeats the run, from the table of run parameters (infra/params.ts). */
    replay: runReplayCommand(spec),
    ...extra,
  };
  writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
  return file;
}
