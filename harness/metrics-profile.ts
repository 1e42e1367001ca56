/**
 * Where a process spends its CPU: a summary of a V8 `.cpuprofile` (written by `node
 * --cpu-prof`), by function (self time) and by source file, so a bench run can say which
 * function of which module limits throughput.
 */
import { readFileSync } from 'node:fs';

interface ProfileNode {
  readonly id: number;
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly hitCount?: number;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples?: readonly number[];
  readonly timeDeltas?: readonly number[];
}

export interface ProfileEntry {
  readonly name: string;
  readonly where: string;
  /** Share of all samples, in percent (idle included in the total). */
  readonly selfPercent: number;
}

export interface ProfileSummary {
  readonly durationMs: number;
  /** Share of samples not idle. */
  readonly busyPercent: number;
  readonly topFunctions: readonly ProfileEntry[];
  readonly byFile: readonly { readonly file: string; readonly selfPercent: number }[];
}

function shortUrl(url: string): string {
  if (!url) return '(native)';
  const m = /\/(dist|node_modules)\/(.*)$/.exec(url);
  if (m) return m[1] === 'dist' ? m[2]! : `node_modules/${m[2]!}`;
  return url.replace(/^file:\/\//, '');
}

/** Self-time summary of a .cpuprofile file; the top `limit` functions and files. */
export function summarizeCpuProfile(path: string, limit = 20): ProfileSummary {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const hits = new Map<number, number>();
  if (p.samples && p.timeDeltas) {
    // Weight each sample by its time delta: sampling intervals are not uniform under load.
    for (let i = 0; i < p.samples.length; i++) hits.set(p.samples[i]!, (hits.get(p.samples[i]!) ?? 0) + Math.max(0, p.timeDeltas[i] ?? 0));
  } else {
    for (const n of p.nodes) hits.set(n.id, n.hitCount ?? 0);
  }
  let total = 0;
  let idle = 0;
  const byFunction = new Map<string, { name: string; where: string; t: number }>();
  const byFile = new Map<string, number>();
  for (const n of p.nodes) {
    const t = hits.get(n.id) ?? 0;
    if (t === 0) continue;
    total += t;
    const { functionName, url, lineNumber } = n.callFrame;
    if (functionName === '(idle)') {
      idle += t;
      continue;
    }
    const file = shortUrl(url);
    const where = url ? `${file}:${lineNumber + 1}` : file;
    const name = functionName || '(anonymous)';
    const key = `${name}@${where}`;
    const e = byFunction.get(key) ?? { name, where, t: 0 };
    e.t += t;
    byFunction.set(key, e);
    const fileKey = url ? file : name;
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + t);
  }
  const pct = (t: number): number => (total > 0 ? Math.round((1000 * t) / total) / 10 : 0);
  return {
    durationMs: (p.endTime - p.startTime) / 1000,
    busyPercent: pct(total - idle),
    topFunctions: [...byFunction.values()]
      .sort((a, b) => b.t - a.t)
      .slice(0, limit)
      .map((e) => ({ name: e.name, where: e.where, selfPercent: pct(e.t) })),
    byFile: [...byFile.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([file, t]) => ({ file, selfPercent: pct(t) })),
  };
}

export function formatProfileSummary(s: ProfileSummary, title: string): string {
  const lines = [`${title}: ${s.durationMs.toFixed(0)} ms profiled, busy ${s.busyPercent}% of samples`];
  lines.push('  self time by function:');
  for (const f of s.topFunctions) lines.push(`    ${f.selfPercent.toFixed(1).padStart(5)}%  ${f.name}  (${f.where})`);
  lines.push('  self time by file:');
  for (const f of s.byFile) lines.push(`    ${f.selfPercent.toFixed(1).padStart(5)}%  ${f.file}`);
  return lines.join('\n');
}
