/**
 * `poe-bench run` when things go wrong (issue 3, "Bad input"): a replica killed mid-run, a
 * port in use, bad flags, Ctrl-C. Each gets a clear message, a non-zero exit, is never
 * recorded as valid, and leaves no process behind. Plus one `--json` run through the CLI
 * that checks what is printed and recorded.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { executeRun } from '../../infra/run/execute.js';
import { makeRunSpec } from '../../infra/run/spec.js';
import { alivePids, childPids, ensureBuilt, ROOT } from './helpers.js';

beforeAll(() => ensureBuilt(), 180_000);

const CLI = join(ROOT, 'dist', 'harness', 'cli.js');
const SHORT = { warmupS: 2, durationS: 3, clients: 16, records: 100_000 } as const;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('poe-bench run when things go wrong', () => {
  it('fails the run cleanly when a replica is killed mid-run, and leaves no process', async () => {
    let victim: number | undefined;
    const r = await executeRun(makeRunSpec({ protocol: 'poe', ...SHORT }), {
      onConnected: () => {
        // Kill replica 2 a moment into the warm-up.
        setTimeout(() => {
          victim = pidOf(2);
          if (victim) process.kill(victim, 'SIGKILL');
        }, 1000);
      },
      onStarted: (cluster) => {
        pidOf = (id) => cluster.nodes.find((n) => n.role === 'replica' && n.id === id)?.pid;
      },
    });
    expect(victim).toBeDefined();
    expect(r.valid).toBe(false);
    expect(r.failed).toBe(true);
    expect(r.reason).toMatch(/replica 2 \(pid \d+\) exited on signal SIGKILL during the run/);
    expect(alivePids(r.pids)).toEqual([]);
  });

  it('refuses a port in use with a clear message', async () => {
    const blocker = net.createServer();
    await new Promise<void>((res) => blocker.listen(0, '127.0.0.1', () => res()));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      // Replica 1 gets basePort + 1: put the blocked port there.
      const r = await executeRun(makeRunSpec({ protocol: 'pbft', ...SHORT, basePort: port - 1 }));
      expect(r.valid).toBe(false);
      expect(r.failed).toBe(true);
      expect(r.reason).toContain(`port ${port} on 127.0.0.1 is in use`);
      expect(alivePids(r.pids)).toEqual([]);
    } finally {
      blocker.close();
    }
  });

  it('rejects bad flags with exit code 2 and names the flag', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--protocol', 'raft'], /--protocol: unknown protocol 'raft'/],
      [['--protocol', 'poe', '--replicas', '3', '--crashed', '2'], /--replicas: must be >= 4/],
      [['--protocol', 'poe', '--crashed', '2'], /--crashed: 2 exceeds .* \(f = 1\); pass --force/],
    ];
    // Every other flag's message is checked without a process in infra/run/spec.test.ts.
    for (const [args, message] of cases) {
      const p = await execa(process.execPath, [CLI, 'run', ...args], { reject: false });
      expect(p.exitCode, args.join(' ')).toBe(2);
      expect(p.stderr, args.join(' ')).toMatch(message);
    }
  });

  it('stops every process on Ctrl-C, exits 130 and records nothing', async () => {
    const out = mkdtempSync(join(tmpdir(), 'poe-bench-sigint-'));
    const p = execa(process.execPath, [CLI, 'run', '--protocol', 'poe', '--warmup', '5', '--duration', '5', '--out', out], { reject: false });
    let children: number[] = [];
    for (let i = 0; i < 100 && children.length < 5; i++) {
      await sleep(100);
      children = childPids(p.pid!);
    }
    expect(children.length).toBe(5);
    await sleep(1500);
    p.kill('SIGINT');
    const r = await p;
    expect(r.exitCode).toBe(130);
    expect(r.stderr).toMatch(/interrupted; every process was stopped/);
    expect(alivePids(children)).toEqual([]);
    expect(() => readFileSync(join(out, 'runs.jsonl'))).toThrow();
  });

  it('leaves no process behind even when the harness itself is killed with SIGKILL', async () => {
    const p = execa(
      process.execPath,
      [CLI, 'run', '--protocol', 'poe', '--warmup', '5', '--duration', '5', '--out', mkdtempSync(join(tmpdir(), 'poe-bench-kill-'))],
      {
        reject: false,
      },
    );
    let children: number[] = [];
    for (let i = 0; i < 100 && children.length < 5; i++) {
      await sleep(100);
      children = childPids(p.pid!);
    }
    expect(children.length).toBe(5);
    p.kill('SIGKILL');
    await p;
    // The children see their stdin close and exit by themselves.
    for (let i = 0; i < 50 && alivePids(children).length > 0; i++) await sleep(100);
    expect(alivePids(children)).toEqual([]);
  });

  it('--json prints the headline numbers and the spec, and records the run with its manifest', async () => {
    const out = mkdtempSync(join(tmpdir(), 'poe-bench-json-'));
    const p = await execa(
      process.execPath,
      [CLI, 'run', '--protocol', 'pbft', '--warmup', '2', '--duration', '3', '--clients', '16', '--records', '100000', '--seed', '7', '--out', out, '--json'],
      { reject: false },
    );
    const json = JSON.parse(p.stdout) as Record<string, unknown>;
    expect(p.exitCode, p.stderr).toBe(0);
    expect(json['valid']).toBe(true);
    expect(json['violations']).toEqual([]);
    expect(json['throughputTxnPerSec']).toBeGreaterThan(0);
    expect(Object.keys(json['latencyMs'] as object).sort()).toEqual(['max', 'mean', 'p50', 'p99']);
    expect(json['messagesPerSec']).toBeGreaterThan(0);
    expect((json['spec'] as Record<string, unknown>)['seed']).toBe(7);
    const lines = readFileSync(join(out, 'runs.jsonl'), 'utf8').trim().split('\n');
    expect(lines.length).toBe(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    expect(line['valid']).toBe(true);
    expect(line['pointId']).toBe('pbft/n=4/crashed=0/batch=100');
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    for (const key of ['commit', 'dirty', 'node', 'os', 'cpuModel', 'cpuCores', 'backend', 'spec', 'seeds']) expect(manifest).toHaveProperty(key);
  });
});

let pidOf: (id: number) => number | undefined = () => undefined;
