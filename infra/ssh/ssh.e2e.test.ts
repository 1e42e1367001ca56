/**
 * The ssh backend against a real OpenSSH server on 127.0.0.1 (infra/ssh/test-sshd.sh): a
 * 4-replica PoE run through it is valid and leaves no process; a host that refuses, a login
 * that fails, a missing Node.js and a hosts file that does not parse are clear errors naming
 * the host or the file, and leave nothing running.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sshLauncher } from '../run/launch.js';
import { sshCheck } from '../../harness/infra-command.js';
import { executeRun } from '../run/execute.js';
import { parseRunFlags } from '../run/spec.js';
import { alivePids, ensureBuilt } from '../../test/e2e/helpers.js';
import { launchSsh, SshLaunchError } from './backend.js';
import { loadHostsFile, parseHostsText, type SshHosts } from './hosts.js';
import { useTestSshd, type TestSshd } from './test-sshd.js';

let sshd: TestSshd;
const dir = mkdtempSync(join(tmpdir(), 'poe-ssh-e2e-'));

beforeAll(async () => {
  ensureBuilt();
  sshd = await useTestSshd();
}, 180_000);
afterAll(async () => {
  await sshd?.release();
  rmSync(dir, { recursive: true, force: true });
});

function hostsWith(extra: string): SshHosts {
  return parseHostsText(
    `defaults: { user: root, port: ${sshd.port}, key: ${sshd.clientKey}${extra} }\nhosts:\n  - { host: 127.0.0.1, role: replica }\n  - { host: 127.0.0.1, role: client }\n`,
    'test hosts',
    dir,
  );
}

/** PIDs of processes whose command line runs the bundle's replica or client from `workDir`. */
function remoteProcesses(marker: string): number[] {
  const out = execFileSync('ps', ['-eo', 'pid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .filter((l) => l.includes(marker) || (l.includes('.poe-bench/builds/') && l.includes('dist/')))
    .map((l) => Number(l.trim().split(/\s+/)[0]))
    .filter((p) => p !== process.pid);
}

describe('ssh backend to localhost', () => {
  it('runs 4 PoE replicas and a client machine through ssh: valid, and no process left behind', async () => {
    const spec = parseRunFlags({ protocol: 'poe', backend: 'ssh', hosts: sshd.hostsFile, warmup: '2', duration: '3', clients: '16', records: '100000' });
    let remotePids: number[] = [];
    const r = await executeRun(spec, { launch: sshLauncher(), onStarted: (c) => (remotePids = c.pids()) });
    const detail = `${r.reason ?? ''}\n${r.violations.join('\n')}\n${r.implausible.join('\n')}`;
    expect(r.failed, detail).toBe(false);
    expect(r.valid, detail).toBe(true);
    expect(r.throughputTxnPerSec).toBeGreaterThan(0);
    expect(Object.keys(r.ledgerHeights!)).toEqual(['0', '1', '2', '3']);
    // The remote PIDs are this machine's here: all gone.
    expect(remotePids).toHaveLength(5);
    expect(alivePids(remotePids), 'remote processes left behind').toEqual([]);
    expect(r.metrics!.processes.map((p) => p.pid).sort()).toEqual([...remotePids].sort());
  });

  it('Ctrl-C mid-run kills the remote processes by PID', async () => {
    const spec = parseRunFlags({ protocol: 'poe', backend: 'ssh', hosts: sshd.hostsFile, warmup: '2', duration: '3', clients: '4' });
    const ac = new AbortController();
    let remotePids: number[] = [];
    const r = await executeRun(spec, {
      launch: sshLauncher(),
      signal: ac.signal,
      onStarted: (c) => (remotePids = c.pids()),
      onConnected: () => void setTimeout(() => ac.abort(), 1000),
    });
    expect(r.interrupted).toBe(true);
    expect(remotePids).toHaveLength(5);
    expect(alivePids(remotePids)).toEqual([]);
  });

  it('a host that refuses the connection is a clear error naming it; nothing is started', async () => {
    const hosts = parseHostsText(
      `defaults: { key: ${sshd.clientKey} }\nhosts:\n  - { host: 127.0.0.1, port: 1, role: replica }\n  - { host: 127.0.0.1, port: ${sshd.port}, role: client }\n`,
      'refusing',
      dir,
    );
    const before = remoteProcesses('nothing');
    const err = await launchSsh(hosts, { replicas: [0, 1, 2, 3], clients: [0] }).catch((e: unknown) => e as Error);
    expect(err).toBeInstanceOf(SshLaunchError);
    expect((err as Error).message).toMatch(/logging in failed on 1 of 2 host\(s\):\n\s+ssh root@127.0.0.1:1: connection refused on port 1/);
    expect(remoteProcesses('nothing')).toEqual(before);
  });

  it('a failed login is a clear error naming the user, host and key', async () => {
    const wrongKey = join(dir, 'wrong_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', wrongKey]);
    const hosts = parseHostsText(
      `defaults: { port: ${sshd.port}, key: ${wrongKey} }\nhosts:\n  - { host: 127.0.0.1, role: replica }\n  - { host: 127.0.0.1, role: client }\n`,
      'wrong key',
      dir,
    );
    await expect(launchSsh(hosts, { replicas: [0], clients: [0] })).rejects.toThrow(
      new RegExp(`ssh root@127.0.0.1:${sshd.port}: login failed as root with the key ${wrongKey}`),
    );
  });

  it('a host without Node.js is a clear error when installing it is off; nothing is started', async () => {
    await expect(launchSsh(hostsWith(', node: /nonexistent/node, installNode: false'), { replicas: [0], clients: [0] })).rejects.toThrow(
      /\/nonexistent\/node not found: install Node.js 20 or later there/,
    );
  });

  it("a host without Node.js gets this machine's, checksummed and checked to run (infra ssh check)", async () => {
    const workDir = join(dir, 'remote-work');
    const file = join(dir, 'no-node.yaml');
    writeFileSync(
      file,
      `defaults: { user: root, port: ${sshd.port}, key: ${sshd.clientKey}, node: poe-bench-no-such-node, workDir: ${workDir} }\nhosts:\n  - { host: 127.0.0.1, role: replica }\n  - { host: 127.0.0.1, role: client }\n`,
    );
    const out: string[] = [];
    const code = await sshCheck({ hosts: file }, { out: (l) => out.push(l), err: (l) => out.push(l) });
    expect(code, out.join('\n')).toBe(0);
    const installed = /\(installed: (\S+)\)/.exec(out.join('\n'))?.[1];
    expect(installed, out.join('\n')).toMatch(new RegExp(`^${workDir}/node/${process.version}-[0-9a-f]{12}/node$`));
    expect(execFileSync(installed!, ['--version'], { encoding: 'utf8' }).trim()).toBe(process.version);
    expect(out.join('\n')).toMatch(/build [0-9a-f]{16} (shipped|present)/);
  });

  it('hostKeySha256 pins the host key: the right one logs in, a wrong one is refused', async () => {
    const fingerprint = /SHA256:(\S+)/.exec(execFileSync('ssh-keygen', ['-lf', join(sshd.hostsFile, '..', 'host_ed25519.pub')], { encoding: 'utf8' }))![1]!;
    const check = async (fp: string): Promise<{ code: number; out: string }> => {
      const file = join(dir, `pinned-${fp.slice(0, 4)}.yaml`);
      writeFileSync(
        file,
        `defaults: { user: root, port: ${sshd.port}, key: ${sshd.clientKey}, hostKeySha256: '${fp}' }\nhosts:\n  - { host: 127.0.0.1, role: replica }\n  - { host: 127.0.0.1, role: client }\n`,
      );
      const out: string[] = [];
      const code = await sshCheck({ hosts: file }, { out: (l) => out.push(l), err: (l) => out.push(l) });
      return { code, out: out.join('\n') };
    };
    const right = await check(fingerprint);
    expect(right.code, right.out).toBe(0);
    const wrong = await check(`${'A'.repeat(42)}E`);
    expect(wrong.code).toBe(1);
    expect(wrong.out).toMatch(/the host key does not match hostKeySha256/);
  });

  it('a hosts file that does not parse stops the run before anything starts', () => {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'hosts: [ { host: 127.0.0.1, role: replica ');
    expect(() => parseRunFlags({ protocol: 'poe', backend: 'ssh', hosts: bad })).toThrow(/--hosts: .*bad.yaml does not parse as YAML or JSON/);
    expect(() => loadHostsFile(bad)).toThrow(/does not parse/);
  });
});
