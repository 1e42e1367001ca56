/**
 * Reading a results directory (DESIGN.md "Results"): runs.jsonl, one RunRecord per line, and
 * manifest.json, the environment and spec of the sweep.
 *
 * runs.jsonl is appended to while a sweep runs, so a sweep killed in the middle of a write can
 * leave an unterminated last line: that line is dropped (the sweep reruns the point). Any
 * other line that does not parse, or does not have the shape of a RunRecord, is an error with
 * its line number, never silently skipped, except the metrics of a run recorded as invalid,
 * which are dropped when they do not have the expected shape (they are never averaged).
 */
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { PROTOCOLS, type ProtocolName } from '../replica/types.js';
import type { RunRecord } from '../infra/run/records.js';

export const RUNS_FILE = 'runs.jsonl';
export const MANIFEST_FILE = 'manifest.json';

const protocolSchema = z.enum(PROTOCOLS as unknown as [ProtocolName, ...ProtocolName[]]);

const summarySchema = z.object({ mean: z.number(), p50: z.number(), p99: z.number(), max: z.number() });

/** Mirrors RunRecord in types.ts; passthrough keeps additive fields that newer writers add. */
const runRecordSchema = z
  .object({
    experiment: z.string(),
    pointId: z.string(),
    point: z
      .object({
        protocol: protocolSchema,
        replicas: z.number().int().positive(),
        crashed: z.number().int().nonnegative(),
        batch: z.number().int().positive(),
        primaryStopsAfter: z.number().int().nonnegative().optional(),
      })
      .passthrough(),
    rep: z.number().int().nonnegative(),
    valid: z.boolean(),
    reason: z.string().optional(),
    startedAt: z.string(),
    durationSec: z.number().optional(),
    metrics: z
      .object({
        throughputTxnPerSec: z.number(),
        latencyMs: summarySchema,
        messagesPerSec: z.number(),
        bytesPerSec: z.number(),
        viewChanges: z.number().optional(),
        rollbacks: z.number().optional(),
        clientTimeouts: z.number().optional(),
        throughputSeries: z.array(z.object({ tSec: z.number(), txnPerSec: z.number() })).optional(),
        viewChangeMs: z.number().optional(),
      })
      .passthrough()
      .optional(),
  })
  .passthrough();

export class RunsFileError extends Error {
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`runs.jsonl line ${line}: ${message}`);
    this.name = 'RunsFileError';
  }
}

export interface ParsedRuns {
  readonly records: RunRecord[];
  /** True when an unterminated last line (an interrupted append) was dropped. */
  readonly droppedTruncatedTail: boolean;
}

/** Parses the text of a runs.jsonl file; see the module comment for what is tolerated. */
export function parseRuns(text: string): ParsedRuns {
  const lines = text.split('\n');
  const records: RunRecord[] = [];
  let droppedTruncatedTail = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    const isUnterminatedTail = i === lines.length - 1;
    let json: unknown;
    try {
      json = JSON.parse(line);
    } catch (err) {
      if (isUnterminatedTail) {
        droppedTruncatedTail = true;
        continue;
      }
      throw new RunsFileError(i + 1, `not JSON (${(err as Error).message})`);
    }
    let parsed = runRecordSchema.safeParse(json);
    if (!parsed.success && isObject(json) && json.valid === false && 'metrics' in json) {
      // A failed run's partial metrics are never averaged; a malformed remnant must not cost the report.
      const { metrics: _partial, ...rest } = json;
      parsed = runRecordSchema.safeParse(rest);
    }
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new RunsFileError(i + 1, `not a run record: ${issue?.path.join('.') ?? ''} ${issue?.message ?? ''}`.trim());
    }
    records.push(parsed.data as RunRecord);
  }
  return { records, droppedTruncatedTail };
}

/** The records of `dir/runs.jsonl`; an empty list when the sweep has not written one yet. */
export function loadRuns(dir: string): RunRecord[] {
  const path = join(dir, RUNS_FILE);
  if (!existsSync(path)) return [];
  return parseRuns(readFileSync(path, 'utf8')).records;
}

/**
 * What the reports read from manifest.json. Every field is optional: a manifest written by an
 * older or newer harness, or none at all, still gives a report, with "unknown" where a field
 * is missing. Accepted spellings are listed per field in readManifestInfo.
 */
export interface ManifestInfo {
  readonly figure?: string;
  readonly profile?: string;
  readonly commit?: string;
  readonly dirty?: boolean;
  readonly dirtyFiles?: readonly string[];
  readonly nodeVersion?: string;
  readonly os?: string;
  readonly cpuModel?: string;
  readonly cpuCores?: number;
  readonly backend?: string;
  readonly hosts?: readonly string[];
  readonly startedAt?: string;
  readonly seeds?: unknown;
  /** The full spec as written, shown verbatim in the report. */
  readonly spec?: unknown;
  /** The manifest as written, for fields this reader does not know. */
  readonly raw?: Record<string, unknown>;
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The first of `paths` (dotted) that holds a value of the wanted type. */
function pick<T>(obj: Json, paths: readonly string[], guard: (v: unknown) => v is T): T | undefined {
  for (const path of paths) {
    let v: unknown = obj;
    for (const key of path.split('.')) v = isObject(v) ? v[key] : undefined;
    if (guard(v)) return v;
  }
  return undefined;
}

const isString = (v: unknown): v is string => typeof v === 'string' && v !== '';
const isBoolean = (v: unknown): v is boolean => typeof v === 'boolean';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStringList = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isPresent = (v: unknown): v is unknown => v !== undefined;

/**
 * Reads the fields a report shows from a parsed manifest. Spellings accepted (first match):
 * figure | experiment; profile; commit | git.commit; dirty | git.dirty; node | nodeVersion |
 * env.node; os | env.os; cpuModel | cpu.model | env.cpuModel; cpuCores | cores | cpu.cores |
 * env.cpuCores; backend | spec.backend; hosts (string list); startedAt | createdAt; seeds; spec.
 */
export function readManifestInfo(manifest: unknown): ManifestInfo {
  if (!isObject(manifest)) return {};
  const m = manifest;
  return {
    figure: pick(m, ['figure', 'experiment'], isString),
    profile: pick(m, ['profile', 'spec.profile'], isString),
    commit: pick(m, ['commit', 'git.commit'], isString),
    dirty: pick(m, ['dirty', 'git.dirty'], isBoolean),
    dirtyFiles: pick(m, ['dirtyFiles', 'git.dirtyFiles'], isStringList),
    nodeVersion: pick(m, ['node', 'nodeVersion', 'env.node', 'env.nodeVersion'], isString),
    os: pick(m, ['os', 'env.os'], isString),
    cpuModel: pick(m, ['cpuModel', 'cpu.model', 'env.cpuModel', 'env.cpu.model'], isString),
    cpuCores: pick(m, ['cpuCores', 'cores', 'cpu.cores', 'env.cpuCores', 'env.cpu.cores'], isNumber),
    backend: pick(m, ['backend', 'spec.backend'], isString),
    hosts: pick(m, ['hosts', 'spec.hosts'], isStringList),
    startedAt: pick(m, ['startedAt', 'createdAt'], isString),
    seeds: pick(m, ['seeds', 'spec.seeds'], isPresent),
    spec: pick(m, ['spec'], isPresent),
    raw: m,
  };
}

/** manifest.json of a results directory; an empty info when it is missing or unreadable. */
export function loadManifest(dir: string): ManifestInfo {
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) return {};
  try {
    return readManifestInfo(JSON.parse(readFileSync(path, 'utf8')));
  } catch {
    // A manifest cut short by a crash must not cost the user the report of the runs.
    return {};
  }
}
