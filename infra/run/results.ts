/**
 * The results store (DESIGN.md "Results"): every run appends one line to `<out>/runs.jsonl`
 * and writes `<out>/manifest.json` with what is needed to trust and repeat it: the commit and
 * whether the tree was dirty, Node, OS, CPU model and cores, the backend, the full spec, seeds.
 *
 * A line is written with one appendFileSync call, so an interrupted run leaves at worst an
 * unterminated last line, which the reader (experiments/runs.ts) drops.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pointId, type RunRecord, type SweepPoint } from './records.js';
import type { RunSpec } from './spec.js';

export const RUNS_FILE = 'runs.jsonl';
export const MANIFEST_FILE = 'manifest.json';

export interface Environment {
  readonly commit: string;
  readonly dirty: boolean | null;
  readonly node: string;
  readonly os: string;
  readonly cpuModel: string;
  readonly cpuCores: number;
  readonly totalMemoryMB: number;
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
  return {
    commit: commit ?? 'unknown',
    dirty: status === undefined ? null : status !== '',
    node: process.version,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cpuCores: cpus.length,
    totalMemoryMB: Math.round(os.totalmem() / 2 ** 20),
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
    backend: spec.backend,
    hosts: [spec.host],
    spec,
    seeds: { seed: spec.seed, keySeed: spec.keySeed, keyGeneratorSeeds: Array.from({ length: spec.clientProcs }, (_, o) => spec.seed + o) },
    ...extra,
  };
  writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`);
  return file;
}
