/**
 * The layout as checked rules (DESIGN.md "Layout", issue 9): the real tree passes
 * dependency-cruiser and the purity scan, and a planted wrong import, cycle or clock read is
 * reported, so the rules cannot pass by checking nothing.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { purityViolations } from './architecture.js';

const ROOT = join(import.meta.dirname, '..');
const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

/** Runs dependency-cruiser with the project's rules in `cwd`; returns its exit code and report. */
function depcruise(cwd: string, paths: readonly string[]): { code: number; output: string } {
  try {
    const output = execFileSync(process.execPath, [DEPCRUISE, '--config', join(ROOT, '.dependency-cruiser.cjs'), '--output-type', 'err', ...paths], {
      cwd,
      encoding: 'utf8',
      stdio: 'pipe',
    });
    return { code: 0, output };
  } catch (err) {
    const e = err as { status: number; stdout: string; stderr: string };
    return { code: e.status, output: `${e.stdout}${e.stderr}` };
  }
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/** A tree of the project's shape in a temp folder, with the given files. */
function plantedTree(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'poe-arch-'));
  scratch.push(dir);
  cpSync(join(ROOT, 'tsconfig.json'), join(dir, 'tsconfig.json'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(join(dir, path, '..'), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

describe('dependency rules', () => {
  it('the source tree has no upward import, no cycle and no I/O in a core', () => {
    const r = depcruise(ROOT, ['harness', 'plots', 'experiments', 'infra', 'client', 'replica', 'test']);
    expect(r.output).toContain('no dependency violations found');
    expect(r.code).toBe(0);
  });

  it('reports an upward import, a cycle, a socket in a core and test code in a source', () => {
    const dir = plantedTree({
      'replica/core.ts': "import { runIt } from '../infra/runner.js';\nexport const core = runIt;\n",
      'infra/runner.ts': 'export const runIt = 1;\n',
      'client/a.ts': "import { b } from './b.js';\nexport const a = b;\n",
      'client/b.ts': "import type { a } from './a.js';\nexport const b = 2; export type A = typeof a;\n",
      'replica/net.ts': "import { createServer } from 'node:net';\nexport const s = createServer;\n",
      'experiments/uses-fixture.ts': "import { f } from '../test/fixture.js';\nexport const g = f;\n",
      'test/fixture.ts': 'export const f = 3;\n',
    });
    const r = depcruise(dir, ['replica', 'infra', 'client', 'experiments', 'test']);
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/layer-replica: replica\/core\.ts → infra\/runner\.ts/);
    expect(r.output).toMatch(/no-cycles: client\/a\.ts/);
    expect(r.output).toMatch(/pure-cores: replica\/net\.ts → (node:)?net/);
    expect(r.output).toMatch(/no-test-code-in-sources: experiments\/uses-fixture\.ts → test\/fixture\.ts/);
  });
});

describe('pure cores read no clock, set no timer, draw no randomness', () => {
  it('replica/ and client/ pass the scan', () => {
    const found = [...sources(join(ROOT, 'replica')), ...sources(join(ROOT, 'client'))].flatMap((f) =>
      purityViolations(f).map((v) => `${relative(ROOT, v.file)}:${v.line} ${v.what}`),
    );
    expect(found).toEqual([]);
  });

  it('the scan finds each planted use, and ignores comments, strings and names of our own', () => {
    const planted = [
      'const t = Date.now();',
      'const r = Math.random();',
      'setTimeout(() => 1, 5);',
      'const d = new Date();',
      'const p = process.env.X;',
      '// Date.now() in a comment',
      "const s = 'setTimeout';",
      'const o = { process: 1, setTimeout: 2 }; o.process;',
    ].join('\n');
    const found = purityViolations('planted.ts', planted).map((v) => `${v.line} ${v.what}`);
    expect(found).toEqual(['1 Date.now', '2 Math.random', '3 setTimeout', '4 new Date', '5 process']);
  });
});
