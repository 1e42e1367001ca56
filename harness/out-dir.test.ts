/**
 * Issue 13, item 5: a command that writes a results directory checks it before it starts
 * anything (`run --out /etc/hostname` used to measure for half a minute and then die with
 * EEXIST): one line naming the problem, exit code 2, and nothing run or created.
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { outDirProblem } from '../infra/run/results.js';
import { runFigureCommand } from './figure-command.js';
import { runCompareCommand, runReportCommand } from './report-command.js';
import { runRunCommand } from './run-command.js';

const root = mkdtempSync(join(tmpdir(), 'poe-out-dir-'));
const file = join(root, 'a-file');
writeFileSync(file, 'not a directory\n');
afterAll(() => rmSync(root, { recursive: true, force: true }));

function sink(): Writable & { text: () => string } {
  let text = '';
  const w = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  return Object.assign(w, { text: () => text });
}

describe('outDirProblem', () => {
  it('accepts an existing directory and one that can be created, without creating it', () => {
    expect(outDirProblem(root)).toBeUndefined();
    const fresh = join(root, 'x', 'y', 'z');
    expect(outDirProblem(fresh)).toBeUndefined();
    expect(existsSync(join(root, 'x'))).toBe(false);
  });
  it('names a file given as the directory, and a file on the way to it', () => {
    expect(outDirProblem(file)).toBe(`${file} exists and is not a directory`);
    expect(outDirProblem(join(file, 'sub'))).toBe(`${join(file, 'sub')} cannot be created: ${file} is not a directory`);
  });
  it.skipIf(process.getuid?.() === 0)('names a directory that is not writable (not as root, who may write anywhere)', () => {
    const ro = join(root, 'read-only');
    rmSync(ro, { recursive: true, force: true });
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    try {
      expect(outDirProblem(ro)).toBe(`${ro} is not writable`);
      expect(outDirProblem(join(ro, 'sub'))).toBe(`${join(ro, 'sub')} cannot be created: ${ro} is not writable`);
    } finally {
      chmodSync(ro, 0o700);
    }
  });
});

describe('commands refuse an unusable output directory before starting', () => {
  it('run --out FILE and --log-dir FILE: exit 2, one line, no process started', async () => {
    const writes: string[] = [];
    const spy = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      writes.push(String(chunk));
      return true;
    });
    try {
      // A measurement would take 30 s (10 s warm-up + 20 s); the check must answer at once.
      const t0 = Date.now();
      expect((await runRunCommand({ protocol: 'poe', out: file })).exitCode).toBe(2);
      expect((await runRunCommand({ protocol: 'poe', out: root, logDir: join(file, 'logs') })).exitCode).toBe(2);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      spy.mockRestore();
    }
    expect(writes).toEqual([
      `poe-bench run: --out: ${file} exists and is not a directory\n`,
      `poe-bench run: --log-dir: ${join(file, 'logs')} cannot be created: ${file} is not a directory\n`,
    ]);
  });

  it('figure --out FILE: exit 2 before planning any run', async () => {
    const stdout = sink();
    const stderr = sink();
    const code = await runFigureCommand('13', { backend: 'sim', quick: true, out: file }, { signal: new AbortController().signal, stdout, stderr });
    expect(code).toBe(2);
    expect(stderr.text()).toBe(`poe-bench figure: --out: ${file} exists and is not a directory\n`);
    expect(stdout.text()).toBe('');
  });

  it('report FILE and compare --out FILE: exit 2', async () => {
    const a = join(root, 'a');
    const b = join(root, 'b');
    for (const d of [a, b]) {
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'runs.jsonl'), '');
    }
    const stderr = sink();
    expect(await runReportCommand(file, {}, { stdout: sink(), stderr })).toBe(2);
    expect(await runCompareCommand(a, b, { out: file }, { stdout: sink(), stderr })).toBe(2);
    expect(stderr.text()).toBe(`poe-bench report: ${file}: not a directory\npoe-bench compare: --out: ${file} exists and is not a directory\n`);
  });
});
