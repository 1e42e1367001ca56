/**
 * The docker backend against the engine CI starts (.ci/run): 4 replica containers and a client
 * container, built from the repo on a base imported from this machine's Node, complete a valid
 * run; afterwards no container, network or host interface of the run is left, and
 * `infra docker clean` removes the images too. An engine that is not running is a clear error
 * that leaves nothing behind.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerClean } from '../../harness/infra-command.js';
import { executeRun } from '../run/execute.js';
import { makeRunSpec } from '../run/spec.js';
import { alivePids, ensureBuilt } from '../../test/e2e/helpers.js';
import { docker, lines, requireEngine } from './engine.js';

let engine = false;
const hostLinks = (): string[] =>
  execFileSync('ip', ['-br', 'link'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(/\s+/)[0]!)
    .filter(Boolean)
    .sort();
let linksBefore: string[] = [];

beforeAll(async () => {
  ensureBuilt();
  engine = await requireEngine().then(
    () => true,
    () => false,
  );
  if (!engine && process.env['CI']) throw new Error('CI must run a Docker engine (.ci/run starts dockerd)');
  linksBefore = hostLinks();
}, 180_000);

const labelled = async (what: 'ps' | 'network' | 'images'): Promise<string[]> => {
  const args = what === 'ps' ? ['ps', '-aq'] : what === 'network' ? ['network', 'ls', '-q'] : ['images', '-q'];
  return lines((await docker([...args, '--filter', 'label=poe-bench=1'], 'listing')).stdout);
};

afterAll(async () => {
  if (!engine) return;
  const out: string[] = [];
  expect(await dockerClean({}, { out: (l) => out.push(l), err: (l) => out.push(l) })).toBe(0);
  expect(await labelled('ps')).toEqual([]);
  expect(await labelled('network')).toEqual([]);
  expect(await labelled('images'), 'infra docker clean removes the images it made').toEqual([]);
}, 120_000);

describe('docker backend', () => {
  it('4 replica containers and a client container: a valid run, nothing left behind', async (ctx) => {
    if (!engine) return ctx.skip();
    const r = await executeRun(makeRunSpec({ protocol: 'poe', backend: 'docker', warmupS: 2, durationS: 3, clients: 16, records: 100_000 }));
    const detail = `${r.reason ?? ''} ${r.violations.join('; ')} ${r.implausible.join('; ')}`;
    expect(r.valid, detail).toBe(true);
    expect(r.throughputTxnPerSec).toBeGreaterThan(0);
    expect(Object.keys(r.ledgerHeights!)).toEqual(['0', '1', '2', '3']);
    // The docker CLIs (the cluster's local processes), the containers, the network and its
    // bridge interface on the host: all gone.
    expect(alivePids(r.pids)).toEqual([]);
    expect(await labelled('ps')).toEqual([]);
    expect(await labelled('network')).toEqual([]);
    expect(hostLinks()).toEqual(linksBefore);
  });

  it('Ctrl-C mid-run stops every container and removes the network', async (ctx) => {
    if (!engine) return ctx.skip();
    const ac = new AbortController();
    const r = await executeRun(makeRunSpec({ protocol: 'poe', backend: 'docker', warmupS: 2, durationS: 3, clients: 4 }), {
      signal: ac.signal,
      onConnected: () => void setTimeout(() => ac.abort(), 1000),
    });
    expect(r.interrupted).toBe(true);
    expect(alivePids(r.pids)).toEqual([]);
    expect(await labelled('ps')).toEqual([]);
    expect(await labelled('network')).toEqual([]);
  });

  it('an engine that is not running is a clear error, and nothing is created', async () => {
    const saved = process.env['DOCKER_HOST'];
    process.env['DOCKER_HOST'] = 'unix:///nonexistent/poe-bench-docker.sock';
    try {
      const r = await executeRun(makeRunSpec({ protocol: 'poe', backend: 'docker', warmupS: 1, durationS: 1, clients: 4 }));
      expect(r.valid).toBe(false);
      expect(r.failed).toBe(true);
      expect(r.reason).toMatch(/no Docker engine is running .*start it/);
      expect(r.pids).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env['DOCKER_HOST'];
      else process.env['DOCKER_HOST'] = saved;
    }
  });
});
