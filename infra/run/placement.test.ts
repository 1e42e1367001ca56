/**
 * The run flags of the backends: --link for every backend, the others only where they belong,
 * each bad value named by its flag; and through parseRunFlags, the spec records them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseInfraFlags, parsePin } from './placement.js';
import { makeRunSpec, parseRunFlags, RunSpecError } from './spec.js';

const dir = mkdtempSync(join(tmpdir(), 'poe-infra-spec-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('infra flags', () => {
  it('--link on every backend, canonical in the spec', () => {
    for (const backend of ['local', 'netns', 'docker']) {
      expect(parseInfraFlags(backend, { link: 'delay=1ms' })).toEqual({ link: 'delay=1ms', infra: {}, issues: [] });
    }
    expect(parseRunFlags({ protocol: 'poe' }).link).toBe('none');
    expect(parseRunFlags({ protocol: 'poe', link: 'lan' })).toMatchObject({ link: 'lan', infra: {} });
    expect(makeRunSpec({ protocol: 'poe', link: 'delay=2ms', backend: 'netns', infra: { pinCpus: [0], subnet: '10.99.0.0/16' } })).toMatchObject({
      backend: 'netns',
      link: 'delay=2ms',
      infra: { pinCpus: [0], subnet: '10.99.0.0/16' },
    });
  });

  it('names each bad flag, and flags given to a backend they do not belong to', () => {
    const issues = (backend: string, flags: Parameters<typeof parseInfraFlags>[1]): string => parseInfraFlags(backend, flags).issues.join('\n');
    expect(issues('local', { link: 'fast' })).toMatch(/--link: unknown link profile 'fast'/);
    expect(issues('local', { hosts: 'h.yaml' })).toMatch(/--hosts: only for --backend ssh \(this run uses local\)/);
    expect(issues('netns', { cpus: '2' })).toMatch(/--cpus: only for --backend docker/);
    expect(issues('ssh', {})).toMatch(/--hosts: the ssh backend needs a hosts file/);
    expect(issues('ssh', { hosts: join(dir, 'nope.yaml') })).toMatch(/--hosts: cannot read the hosts file/);
    expect(issues('docker', { cpus: '-1' })).toMatch(/--cpus: must be a number > 0/);
    expect(issues('netns', { subnet: '8.8.0.0/16' })).toMatch(/--subnet: .*not a private/);
    expect(issues('docker', { baseImage: 'node 20' })).toMatch(/--base-image: 'node 20' is not an image reference/);
    expect(issues('local', { pin: '0,x' })).toMatch(/--pin: 'x' is not a CPU number/);
    expect(() => parseRunFlags({ protocol: 'poe', backend: 'netns', link: 'delay=1ms,jitter=5ms' })).toThrow(RunSpecError);
    expect(() => parseRunFlags({ protocol: 'poe', backend: 'netns', link: 'delay=1ms,jitter=5ms' })).toThrow(/--link: jitter/);
  });

  it('ssh: the hosts file is checked when the flags are', () => {
    const key = join(dir, 'k');
    writeFileSync(key, 'k');
    const file = join(dir, 'hosts.yaml');
    writeFileSync(file, `defaults: { key: ${key} }\nhosts:\n  - { host: 127.0.0.1, role: replica }\n  - { host: 127.0.0.1, role: client }\n`);
    expect(parseRunFlags({ protocol: 'poe', backend: 'ssh', hosts: file }).infra).toEqual({ hosts: file });
  });

  it('--pin: auto, lists and ranges, within the CPUs there are', () => {
    expect(parsePin('auto', 4)).toEqual([0, 1, 2, 3]);
    expect(parsePin('0,2-3', 4)).toEqual([0, 2, 3]);
    expect(() => parsePin('4', 4)).toThrow(/CPU 4 does not exist here/);
    expect(() => parsePin('3-1', 4)).toThrow(/backwards/);
  });
});
