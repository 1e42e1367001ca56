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
  /** Share of busy time by what the work is for (see `categorize`). */
  readonly byCategory: readonly { readonly category: string; readonly busyPercent: number }[];
}

/**
 * What a sample's time is spent on: crypto and socket writes by the native function, anything
 * else by the nearest frame in this project's code (so a Buffer copy inside store.apply counts
 * as the store, a hash inside the transport's MAC as MACs).
 */
function categorize(stack: readonly { functionName: string; url: string }[]): string {
  const self = stack[0]!;
  if (self.functionName === '(garbage collector)') return 'garbage collection';
  if (self.functionName === '(program)') return 'V8/libuv (program)';
  if (/^(verifyOneShot|signOneShot)$/.test(self.functionName)) return 'Ed25519 sign/verify';
  if (self.functionName === 'writeBuffer' || self.functionName === 'writev' || self.functionName === 'writeUtf8String') return 'socket writes (syscalls)';
  const project = stack.find((f) => /\/dist\/(replica|client|harness|infra)\//.test(f.url));
  const hashing = /crypto\/hash|^(Hmac|Hash|update|digest|createHmac|createHash)$/.test(`${self.url} ${self.functionName}`) || /crypto\/hash/.test(self.url);
  const file = project ? project.url.replace(/^.*\/dist\//, '') : '';
  // The transport hashes through replica/crypto.js (sha256Into), so look for it anywhere below.
  if (hashing)
    return stack.some((f) => /\/process\/transport\.js/.test(f.url)) ? 'frame MACs and payload digests (transport)' : 'SHA-256 digests (requests, blocks)';
  if (!project) return 'node internals (streams, timers, buffers)';
  if (/replica\/protocols\.js|process\/(replica-main|client-main|control)\.js/.test(file)) return 'startup and control channel';
  if (/replica\/crypto\.js/.test(file)) return 'crypto provider wrappers';
  if (/replica\/store\.js/.test(file)) return 'store (YCSB table, undo log)';
  if (/replica\/(common|ledger)\.js/.test(file)) return 'execution and ledger';
  if (/replica\/(wire|messages)\.js/.test(file)) return 'codec (encode/decode)';
  if (/^infra\/process\//.test(file)) return 'transport and runtime';
  if (/^client\//.test(file)) return `client (${file.replace(/^client\//, '')})`;
  if (/^replica\//.test(file)) return `protocol core (${file.replace(/^replica\//, '')})`;
  return file;
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
  const parent = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const byCategory = new Map<string, number>();
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
    const stack: { functionName: string; url: string }[] = [];
    for (let id: number | undefined = n.id; id !== undefined; id = parent.get(id)) stack.push(byId.get(id)!.callFrame);
    const category = categorize(stack);
    byCategory.set(category, (byCategory.get(category) ?? 0) + t);
  }
  const pct = (t: number): number => (total > 0 ? Math.round((1000 * t) / total) / 10 : 0);
  return {
    durationMs: (p.endTime - p.startTime) / 1000,
    busyPercent: pct(total - idle),
    topFunctions: [...byFunction.values()]
      .sort((a, b) => b.t - a.t)
      .slice(0, limit)
      .map((e) => ({ name: e.name, where: e.where, selfPercent: pct(e.t) })),
    byCategory: [...byCategory.entries()]
      .sort((a, b) => b[1] - a[1])
      .map(([category, t]) => ({ category, busyPercent: total - idle > 0 ? Math.round((1000 * t) / (total - idle)) / 10 : 0 })),
    byFile: [...byFile.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, limit)
      .map(([file, t]) => ({ file, selfPercent: pct(t) })),
  };
}

export function formatProfileSummary(s: ProfileSummary, title: string): string {
  const lines = [`${title}: ${s.durationMs.toFixed(0)} ms profiled, busy ${s.busyPercent}% of samples`];
  lines.push('  share of busy time by what it is for:');
  for (const c of s.byCategory) lines.push(`    ${c.busyPercent.toFixed(1).padStart(5)}%  ${c.category}`);
  lines.push('  self time by function (share of all samples):');
  for (const f of s.topFunctions) lines.push(`    ${f.selfPercent.toFixed(1).padStart(5)}%  ${f.name}  (${f.where})`);
  lines.push('  self time by file:');
  for (const f of s.byFile) lines.push(`    ${f.selfPercent.toFixed(1).padStart(5)}%  ${f.file}`);
  return lines.join('\n');
}
