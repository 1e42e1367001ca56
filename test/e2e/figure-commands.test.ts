/**
 * `poe-bench figure`, `report` and `compare` through the built CLI, on inputs that need no
 * real cluster (so they stay fast on a shared machine): the simulator backend and bad
 * arguments. Figure 11b on real processes is in test/e2e/faults-figure.test.ts.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFigureCommand, type FigureFlags } from '../../harness/figure-command.js';
import { ensureBuilt, ROOT } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const CLI = join(ROOT, 'dist', 'harness', 'cli.js');
const base = mkdtempSync(join(tmpdir(), 'poe-figure-cli-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: base, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Line {
  readonly pointId: string;
  readonly valid: boolean;
  readonly reason?: string;
  readonly backend?: string;
  readonly virtualTime?: boolean;
  readonly metrics?: { readonly throughputTxnPerSec: number; readonly viewChanges?: number; readonly throughputSeries?: unknown[] };
}

function records(dir: string): Line[] {
  return readFileSync(join(dir, 'runs.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);
}

describe('poe-bench figure on the simulator', () => {
  const sim = join(base, 'sim-13');

  it('runs the points, labels them simulated, and writes charts and the report', () => {
    const r = cli('figure', '13', '--backend', 'sim', '--quick', '--replicas', '4', '--protocols', 'poe,pbft', '--sim-batches', '60', '--out', sim);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('2 runs in');
    expect(r.stdout).toContain('SIMULATED');
    const lines = records(sim);
    expect(lines.map((l) => l.pointId)).toEqual(['poe/n=4/crashed=0/batch=100', 'pbft/n=4/crashed=0/batch=100']);
    for (const l of lines) {
      expect(l.valid).toBe(true);
      expect(l.backend).toBe('sim');
      expect(l.virtualTime).toBe(true);
      expect(l.metrics!.throughputTxnPerSec).toBeGreaterThan(0);
    }
    const manifest = JSON.parse(readFileSync(join(sim, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest['backend']).toBe('sim');
    expect(manifest['profile']).toBe('quick');
    expect(manifest['figure']).toBe('13');
    for (const f of ['fig13a.svg', 'fig13a.png', 'fig13b.svg', 'fig13b.png', 'report.md', 'report.html']) expect(existsSync(join(sim, f)), f).toBe(true);
    const md = readFileSync(join(sim, 'report.md'), 'utf8');
    expect(md).toContain('SIMULATED');
    expect(md).toContain('VIRTUAL time');
    expect(md).toContain("The paper's claims");
  });

  it('refuses to resume that directory with another backend', () => {
    const r = cli('figure', '13', '--quick', '--replicas', '4', '--protocols', 'poe,pbft', '--out', sim);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('backend: the directory has sim, this sweep asks for local');
  });

  it('simulates figure 11b with a primary that stops after 900 requests and a view change', () => {
    const dir = join(base, 'sim-11b');
    const r = cli('figure', '11b', '--backend', 'sim', '--quick', '--replicas', '4', '--protocols', 'poe', '--sim-batches', '100', '--out', dir);
    expect(r.code, r.stderr).toBe(0);
    const [line] = records(dir);
    expect(line!.pointId).toBe('poe/n=4/crashed=0/batch=100/stop=900');
    expect(line!.valid).toBe(true);
    expect(line!.metrics!.viewChanges).toBe(1);
    expect(line!.metrics!.throughputSeries!.length).toBeGreaterThan(10);
    expect(existsSync(join(dir, 'fig11b-time.svg'))).toBe(true);
  });

  it('report rewrites the report against another baseline; compare sets two directories side by side', () => {
    const rep = cli('report', sim, '--baseline', 'poe');
    expect(rep.code, rep.stderr).toBe(0);
    expect(rep.stdout).toContain('figure 13 (baseline poe)');
    expect(readFileSync(join(sim, 'report.md'), 'utf8')).toContain('Compared with PoE');

    const out = join(base, 'compare');
    const cmp = cli('compare', sim, sim, '--out', out);
    expect(cmp.code, cmp.stderr).toBe(0);
    expect(existsSync(join(out, 'compare.md'))).toBe(true);
    expect(existsSync(join(out, 'compare.html'))).toBe(true);

    const none = cli('compare', sim, join(base, 'sim-11b'), '--out', join(base, 'compare-none'));
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('no figure in common');
  });
});

// Figure 11b on the local backend runs for real since `run --faults`: test/e2e/faults-figure.test.ts.

describe('bad arguments', () => {
  /** Captures what a command writes. */
  function sink(): NodeJS.WritableStream & { text: string } {
    const w = new Writable({
      write(chunk: Buffer, _enc, done) {
        w.text += chunk.toString();
        done();
      },
    }) as Writable & { text: string };
    w.text = '';
    return w;
  }

  it('names the bad flag and exits 2, writing nothing', async () => {
    const cases: [string, FigureFlags, RegExp][] = [
      ['14', {}, /unknown figure '14': choose one of 10, 11a, 11b, 12, 13 or all/],
      ['13', { quick: true, paper: true }, /--quick and --paper: choose one profile/],
      ['13', { backend: 'gcp' }, /--backend: unknown backend 'gcp'/],
      ['13', { replicas: '5' }, /no point of figure 13 matches the filters \(--replicas 5\)/],
      ['13', { protocols: 'raft' }, /--protocols: unknown protocol "raft"/],
      ['13', { reps: '0' }, /--reps: must be >= 1/],
      ['13', { warmup: '-1' }, /--warmup: must be a number >= 0/],
      ['13', { baseline: 'raft' }, /unknown protocol "raft"/],
    ];
    for (const [figure, flags, message] of cases) {
      const stdout = sink();
      const stderr = sink();
      const out = join(base, 'never');
      const code = await runFigureCommand(figure, { ...flags, out }, { signal: new AbortController().signal, stdout, stderr });
      expect(code, figure + JSON.stringify(flags)).toBe(2);
      expect(stderr.text).toMatch(message);
      expect(existsSync(out)).toBe(false);
    }
  });

  it('report and compare name a missing directory and exit 2 (through the CLI)', () => {
    const r = cli('report', join(base, 'nowhere'));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('no such directory');
    const c = cli('compare', base, join(base, 'nowhere'));
    expect(c.code).toBe(2);
    expect(c.stderr).toContain('no runs.jsonl here');
  });
});
