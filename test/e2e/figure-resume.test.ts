/**
 * `poe-bench figure` killed midway (issue 5, "How it is checked"): a sweep of real runs gets
 * Ctrl-C (SIGINT) after its first run is recorded; it stops the run in progress, leaves no
 * process behind and keeps the finished run. Started again on the same directory it skips
 * that run, and ends with the same set of runs as a sweep that was never interrupted.
 *
 * Kept short for a shared 2-core machine: figure 13 cut down to PoE and PBFT at 4 replicas,
 * half a second of warm-up and one measured second per run.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alivePids, childPids, ensureBuilt, ROOT } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const CLI = join(ROOT, 'dist', 'harness', 'cli.js');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const base = mkdtempSync(join(tmpdir(), 'poe-figure-resume-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const SWEEP = ['figure', '13', '--quick', '--replicas', '4', '--protocols', 'poe,pbft', '--warmup', '0.5', '--duration', '1', '--clients', '8'];

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Starts the built CLI; `watch` is called every 100 ms while it runs. */
function startCli(args: readonly string[], watch?: (pid: number) => void): Promise<Exit> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: base, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = watch ? setInterval(() => watch(child.pid!), 100) : undefined;
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (timer) clearInterval(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function lines(dir: string): { pointId: string; rep: number; experiment: string }[] {
  const path = join(dir, 'runs.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.endsWith('}'))
    .map((l) => JSON.parse(l) as { pointId: string; rep: number; experiment: string });
}

const keys = (dir: string): string[] => lines(dir).map((r) => `${r.experiment} ${r.pointId} rep ${r.rep}`);

describe('poe-bench figure: a sweep killed midway', () => {
  it('keeps finished runs on Ctrl-C, skips them on resume, and ends like an uninterrupted sweep', async () => {
    const dir = join(base, 'interrupted');
    // 1. Interrupt once the first run is on disk, while the second one is running.
    const seenChildren = new Set<number>();
    let interruptedAt: number | undefined;
    const first = await startCli([...SWEEP, '--out', dir], (pid) => {
      for (const c of childPids(pid)) seenChildren.add(c);
      if (interruptedAt === undefined && lines(dir).length >= 1) {
        interruptedAt = lines(dir).length;
        process.kill(pid, 'SIGINT');
      }
    });
    expect(interruptedAt, `the sweep ended before its first run was recorded:\n${first.stderr}`).toBe(1);
    expect(first.code, first.stderr).toBe(130);
    expect(first.stderr).toMatch(/interrupted after .*; the run in progress was stopped and not recorded\. 1 of 2 runs are in/);
    expect(keys(dir)).toEqual(['figure-13 poe/n=4/crashed=0/batch=100 rep 0']);
    // No report on an interrupted sweep, and no process left behind.
    expect(existsSync(join(dir, 'report.md'))).toBe(false);
    await sleep(300);
    expect(alivePids([...seenChildren])).toEqual([]);
    const manifest = readFileSync(join(dir, 'manifest.json'), 'utf8');

    // 2. Resume: the recorded run is skipped, the other one is run, the report is written.
    const resumed = await startCli([...SWEEP, '--out', dir]);
    // A run may be invalid on a loaded machine (exit 1); it is recorded either way.
    expect([0, 1], resumed.stderr).toContain(resumed.code);
    expect(resumed.stderr).toContain('2 runs planned, 1 already recorded (skipped), 1 to run');
    expect(resumed.stdout).toContain('1 run in');
    expect(keys(dir)).toEqual(['figure-13 poe/n=4/crashed=0/batch=100 rep 0', 'figure-13 pbft/n=4/crashed=0/batch=100 rep 0']);
    expect(readFileSync(join(dir, 'manifest.json'), 'utf8')).toBe(manifest); // written once per directory
    expect(existsSync(join(dir, 'report.md'))).toBe(true);

    // 3. Once more: nothing left to run.
    const again = await startCli([...SWEEP, '--out', dir]);
    expect(again.stderr).toContain('2 runs planned, 2 already recorded (skipped), 0 to run');
    expect(keys(dir).length).toBe(2);

    // 4. An uninterrupted sweep ends with the same set of runs.
    const clean = join(base, 'uninterrupted');
    const straight = await startCli([...SWEEP, '--out', clean]);
    expect([0, 1], straight.stderr).toContain(straight.code);
    expect([...keys(dir)].sort()).toEqual([...keys(clean)].sort());
  }, 240_000);
});
