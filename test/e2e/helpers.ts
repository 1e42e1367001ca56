/**
 * Helpers for the end-to-end tests, which start real replica and client processes from the
 * build (dist/). `npm test` builds first; when vitest runs alone, `ensureBuilt` rebuilds if any
 * source is newer than its compiled file, so a test never measures stale code.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
const SOURCE_DIRS = ['replica', 'client', 'harness', 'infra', 'experiments', 'plots'];

function newestSourceIsStale(): boolean {
  for (const dir of SOURCE_DIRS) {
    const stack = [join(ROOT, dir)];
    while (stack.length) {
      const d = stack.pop()!;
      if (!existsSync(d)) continue;
      for (const e of readdirSync(d, { withFileTypes: true })) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if (e.name !== 'node_modules') stack.push(p);
          continue;
        }
        if (!e.name.endsWith('.ts') || e.name.endsWith('.test.ts') || e.name.endsWith('.d.ts')) continue;
        const out = join(ROOT, 'dist', p.slice(ROOT.length + 1).replace(/\.ts$/, '.js'));
        if (!existsSync(out) || statSync(out).mtimeMs < statSync(p).mtimeMs) return true;
      }
    }
  }
  return false;
}

export function ensureBuilt(): void {
  if (!newestSourceIsStale()) return;
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', ROOT], { stdio: 'pipe' });
  } catch {
    // tsc still emits when a file elsewhere in the tree has a type error; the entry points are what matter.
  }
  for (const f of ['dist/infra/process/replica-main.js', 'dist/infra/process/client-main.js', 'dist/harness/cli.js']) {
    if (!existsSync(join(ROOT, f))) throw new Error(`build did not produce ${f}`);
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function alivePids(pids: readonly number[]): number[] {
  return pids.filter(isAlive);
}

/** The direct children of `pid` (Linux /proc). */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
