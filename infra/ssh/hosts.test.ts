/**
 * The ssh backend's hosts file: YAML and JSON, defaults, round-robin placement, every bad
 * field named with its place, and infra aws's hosts.json (ProvisionedHosts) accepted as is.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { hostFor, hostsFromProvisioned, HostsFileError, loadHostsFile, parseHostsText } from './hosts.js';

const dir = mkdtempSync(join(tmpdir(), 'poe-hosts-'));
const key = join(dir, 'id_test');
writeFileSync(key, 'not really a key, but it exists\n', { mode: 0o600 });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('hosts file', () => {
  it('reads YAML with defaults; replicas and clients go round-robin over their hosts', () => {
    const hosts = parseHostsText(
      `defaults: { user: admin, port: 2222, key: ${key} }\nhosts:\n  - { host: 10.0.0.1, role: replica }\n  - { host: 10.0.0.2, address: 172.31.0.2, role: replica, user: root }\n  - { host: h3.example, role: client, port: 22, node: /opt/node/bin/node }\n`,
      'hosts.yaml',
      dir,
    );
    expect(hosts.replicas.map((h) => h.name)).toEqual(['admin@10.0.0.1:2222', 'root@10.0.0.2:2222']);
    expect(hosts.replicas[1]).toMatchObject({ address: '172.31.0.2', keyPath: key, node: 'node', workDir: '~/.poe-bench' });
    expect(hosts.clients[0]).toMatchObject({ name: 'admin@h3.example:22', node: '/opt/node/bin/node', address: 'h3.example' });
    expect([0, 1, 2, 3].map((i) => hostFor(hosts, 'replica', i).host)).toEqual(['10.0.0.1', '10.0.0.2', '10.0.0.1', '10.0.0.2']);
    expect(hostFor(hosts, 'client', 5).host).toBe('h3.example');
  });

  it('reads JSON (and a key relative to the file)', () => {
    const path = join(dir, 'hosts.json');
    writeFileSync(
      path,
      JSON.stringify({
        hosts: [
          { host: '127.0.0.1', role: 'replica', key: 'id_test' },
          { host: '127.0.0.1', role: 'client', key: 'id_test' },
        ],
      }),
    );
    const hosts = loadHostsFile(path);
    expect(hosts.replicas[0]).toMatchObject({ user: 'root', port: 22, keyPath: key });
  });

  it('names every bad field, and a file that does not parse', () => {
    const bad = (text: string): string => {
      try {
        parseHostsText(text, 'h.yaml', dir);
      } catch (err) {
        expect(err).toBeInstanceOf(HostsFileError);
        return (err as Error).message;
      }
      throw new Error('accepted');
    };
    expect(bad('hosts: [ { host: a, role: replica ')).toMatch(/h.yaml does not parse as YAML or JSON/);
    expect(bad(`hosts:\n  - { host: 'a b', role: replica, key: ${key} }`)).toMatch(/hosts.0.host: must be a host name/);
    expect(bad(`hosts:\n  - { host: a, role: leader, key: ${key} }`)).toMatch(/hosts.0.role: must be 'replica' or 'client'/);
    expect(bad(`hosts:\n  - { host: a, role: replica, port: 70000, key: ${key} }`)).toMatch(/hosts.0.port/);
    expect(bad(`hosts:\n  - { host: a, role: replica, node: 'node; rm -rf /', key: ${key} }`)).toMatch(/hosts.0.node: must be a command name or a path/);
    expect(bad(`hosts:\n  - { host: a, role: replica, colour: blue, key: ${key} }`)).toMatch(/Unrecognized key.*colour/);
    expect(bad('hosts: []')).toMatch(/hosts: must list at least one host/);
    expect(bad(`hosts:\n  - { host: a, role: replica, key: ${key} }`)).toMatch(/no host has role client/);
    expect(bad(`hosts:\n  - { host: a, role: client, key: ${key} }`)).toMatch(/no host has role replica/);
    expect(bad('hosts:\n  - { host: a, role: replica, key: /nonexistent/key }')).toMatch(/hosts.0: the key \/nonexistent\/key does not exist/);
    expect(() => loadHostsFile(join(dir, 'missing.yaml'))).toThrow(/cannot read the hosts file .*ENOENT/);
  });

  it("accepts infra aws's hosts.json: log in on the public address, peers on the private one, ports in the open range", () => {
    const provisioned = {
      runId: 'pb-1',
      region: 'us-east-1',
      replicas: [{ publicIp: '127.0.0.1', privateIp: '10.0.0.1', instanceId: 'i-1' }],
      clients: [{ publicIp: '127.0.0.2', privateIp: '10.0.0.2', instanceId: 'i-2' }],
      sshUser: 'admin',
      sshPort: 22,
      privateKeyPath: key,
      portRange: { fromPort: 7000, toPort: 7999 },
      expiresAt: '2030-01-01T00:00:00.000Z',
    };
    const viaFile = parseHostsText(JSON.stringify(provisioned), 'hosts.json', dir);
    const direct = hostsFromProvisioned(provisioned);
    expect(viaFile.replicas).toEqual(direct.replicas);
    expect(direct.replicas[0]).toMatchObject({ host: '127.0.0.1', address: '10.0.0.1', user: 'admin', keyPath: key });
    expect(direct.portRange).toEqual({ fromPort: 7000, toPort: 7999 });
  });
});
