/**
 * The netns backend as root (CI runs as root): 4 replicas and a client machine, each in its
 * own namespace, complete a valid run, and nothing is left behind afterwards (no namespace, no
 * interface and no qdisc on the host). With 1 ms of delay on every link, PoE's latency grows
 * by about its four message delays (Reference: paper Figure 3), as on the local backend.
 * A subnet that collides with a route is refused before anything is created, and
 * `infra netns clean` removes what a crashed harness left.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { netnsClean } from '../../harness/infra-command.js';
import { executeRun, type RunResult } from '../run/execute.js';
import { makeRunSpec } from '../run/spec.js';
import { alivePids, ensureBuilt } from '../../test/e2e/helpers.js';
import { launchNetns, listNamespaces, NETNS_PREFIX } from './backend.js';
import { parseLinkSpec } from '../link.js';

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' });

/** What the host's network namespace has: interfaces and qdiscs (ours must never appear). */
function hostNetwork(): { links: string; qdiscs: string } {
  return {
    links: sh('ip', ['-br', 'link'])
      .replace(/\s+\S+\s*$/gm, '')
      .split('\n')
      .sort()
      .join('\n'),
    qdiscs: sh('tc', ['qdisc', 'show']),
  };
}

/** Alive and not a zombie (an orphan's zombie waits for init to reap it). */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

let before: { links: string; qdiscs: string };
const pids: number[] = [];
beforeAll(() => {
  ensureBuilt();
  if (isRoot) before = hostNetwork();
}, 180_000);
afterAll(async () => {
  if (!isRoot) return;
  // Whatever happened, leave nothing: then check that there was nothing to remove.
  const left = await listNamespaces();
  await netnsClean({}, { out: () => undefined, err: () => undefined });
  expect(left, 'namespaces left behind').toEqual([]);
  expect(alivePids(pids), 'processes left behind').toEqual([]);
  expect(hostNetwork()).toEqual(before);
});

const LIGHT = { protocol: 'poe', warmupS: 2, durationS: 3, clients: 1, batch: 10, records: 100_000, backend: 'netns' } as const;

function valid(r: RunResult): RunResult {
  pids.push(...r.pids);
  expect(r.valid, `${r.reason ?? ''} ${r.violations.join('; ')} ${r.implausible.join('; ')}`).toBe(true);
  expect(r.throughputTxnPerSec).toBeGreaterThan(0);
  return r;
}

describe.runIf(isRoot)('netns backend', () => {
  let base: RunResult;

  it('4 replicas and a client machine in namespaces: a valid run, nothing left behind', async () => {
    let seen: string[] = [];
    base = valid(await executeRun(makeRunSpec({ ...LIGHT }), { onConnected: async () => void (seen = await listNamespaces()) }));
    expect(
      seen
        .filter((n) => !n.endsWith('-hub'))
        .map((n) => n.replace(/^pbn-[a-z0-9]+-/, ''))
        .sort(),
    ).toEqual(['c0', 'r0', 'r1', 'r2', 'r3']);
    expect(await listNamespaces()).toEqual([]);
    expect(hostNetwork()).toEqual(before);
  });

  it('1 ms on every link adds about 4 message delays to PoE latency', async () => {
    const slow = valid(await executeRun(makeRunSpec({ ...LIGHT, link: 'delay=1ms' })));
    const growthMs = slow.latencyMs.p50 - base.latencyMs.p50;
    const detail = `p50 ${base.latencyMs.p50.toFixed(2)} ms -> ${slow.latencyMs.p50.toFixed(2)} ms (growth ${growthMs.toFixed(2)} ms)`;
    console.log(`netns backend, delay=1ms: ${detail}`);
    expect(growthMs, detail).toBeGreaterThanOrEqual(3);
    expect(growthMs, detail).toBeLessThanOrEqual(25);
  });

  it('Ctrl-C mid-run stops every process and removes every namespace', async () => {
    const ac = new AbortController();
    const r = await executeRun(makeRunSpec({ ...LIGHT, link: 'rate=1gbit' }), {
      signal: ac.signal,
      onConnected: () => void setTimeout(() => ac.abort(), 1000),
    });
    pids.push(...r.pids);
    expect(r.interrupted).toBe(true);
    expect(r.valid).toBe(false);
    expect(alivePids(r.pids)).toEqual([]);
    expect(await listNamespaces()).toEqual([]);
    expect(hostNetwork()).toEqual(before);
  });

  it('a subnet that collides with a route is refused before anything is created', async () => {
    // A blackhole route: it collides with the subnet but carries no traffic; removed at once.
    const subnet = '10.198.0.0/16';
    sh('ip', ['route', 'add', 'blackhole', '10.198.7.0/24']);
    try {
      await expect(launchNetns({ replicas: [0, 1, 2, 3], clients: [0] }, { subnet, link: parseLinkSpec('none'), seed: 1, replicasTotal: 4 })).rejects.toThrow(
        /the subnet 10\.198\.0\.0\/16 collides with existing routes on this machine: 10\.198\.7\.0\/24/,
      );
    } finally {
      sh('ip', ['route', 'del', 'blackhole', '10.198.7.0/24']);
    }
    expect(await listNamespaces()).toEqual([]);
  });

  it('infra netns clean removes what a crashed harness left, processes included', async () => {
    const ns = `${NETNS_PREFIX}crash1-r0`;
    sh('ip', ['netns', 'add', ns]);
    const sleeper = execFileSync('sh', ['-c', `ip netns exec ${ns} sleep 300 >/dev/null 2>&1 & echo $!`], { encoding: 'utf8' }).trim();
    const out: string[] = [];
    expect(await netnsClean({}, { out: (l) => out.push(l), err: (l) => out.push(l) })).toBe(0);
    expect(out.join('\n')).toMatch(new RegExp(`removed 1 namespace\\(s\\): ${ns}`));
    expect(out.join('\n')).toMatch(/killed 1 leftover process/);
    expect(await listNamespaces()).toEqual([]);
    expect(running(Number(sleeper))).toBe(false);
  });
});
