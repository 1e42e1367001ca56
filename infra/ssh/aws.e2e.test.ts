/**
 * The aws path end to end (issue 6, item 5's last check): `withAwsHosts` provisions against a
 * mocked EC2 (aws-sdk-client-mock with infra/aws's FakeEc2) that hands back 127.0.0.1 hosts,
 * and the ssh backend really drives them: it logs in with the key pair EC2 "created" (the
 * mock returns the test sshd's authorised client key as the key material), ships the build,
 * runs 4 PoE replicas and a client machine with the replicas listening inside the security
 * group's port range, and the run is valid; then everything is torn down in EC2 and no
 * process is left here. The one redirection: the hosts' SSH port 22 is the test sshd's port.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateKeyPairCommand, EC2Client, type CreateKeyPairCommandInput } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lockHarnessPorts } from '../../test/harness-port-lock.js';
import { sshLauncher } from '../run/launch.js';
import { executeRun, type RunResult } from '../run/execute.js';
import { makeRunSpec } from '../run/spec.js';
import { alivePids, ensureBuilt } from '../../test/e2e/helpers.js';
import { fakeDeps, FakeEc2 } from '../../test/fakes/fake-ec2.js';
import { HARNESS_PORT_RANGE, HOSTS_FILE, withAwsHosts, type ProvisionedHosts } from '../aws/index.js';
import { hostsFromProvisioned } from './hosts.js';
import { useTestSshd, type TestSshd } from './test-sshd.js';

const ec2Mock = mockClient(EC2Client);
let sshd: TestSshd;
let stateDir: string;

beforeAll(async () => {
  ensureBuilt();
  sshd = await useTestSshd();
  stateDir = await mkdtemp(join(tmpdir(), 'poe-aws-ssh-'));
}, 180_000);
afterAll(async () => {
  ec2Mock.restore();
  await sshd?.release();
  await rm(stateDir, { recursive: true, force: true });
});

describe('aws backend handing its machines to the ssh backend', () => {
  // The run listens on the fixed harness port range; test/e2e/figure-backends.test.ts does too.
  let releasePorts: (() => void) | undefined;
  beforeAll(async () => {
    releasePorts = await lockHarnessPorts();
  }, 600_000);
  afterAll(() => releasePorts?.());

  it('mocked EC2 returns 127.0.0.1 hosts; the ssh backend runs a valid 4-replica PoE run on them; all torn down', async () => {
    const fake = new FakeEc2().install(ec2Mock);
    const clientKey = readFileSync(sshd.clientKey, 'utf8');
    ec2Mock.on(CreateKeyPairCommand).callsFake(async (i: CreateKeyPairCommandInput) => ({ ...fake.createKeyPair(i), KeyMaterial: clientKey }));
    let handed: ProvisionedHosts | undefined;
    let pids: number[] = [];
    let listened: { peer: number; port: number }[] = [];
    const r: RunResult = await withAwsHosts(
      { replicas: 4, clients: 1, myIp: '203.0.113.7', yes: true, stateDir, sshUser: 'root' },
      async (hosts) => {
        handed = hosts;
        expect(fake.liveInstances()).toHaveLength(5);
        // The run records the hosts file infra aws wrote for these machines (it parses as is).
        const spec = makeRunSpec({
          protocol: 'poe',
          backend: 'ssh',
          warmupS: 2,
          durationS: 3,
          clients: 16,
          records: 100_000,
          infra: { hosts: join(stateDir, hosts.runId, HOSTS_FILE) },
        });
        const ssh = hostsFromProvisioned({ ...hosts, sshPort: sshd.port });
        return executeRun(spec, {
          launch: sshLauncher(ssh),
          onStarted: (c) => (pids = c.pids()),
          onConnected: (a) => void (listened = a.map(({ peer, port }) => ({ peer, port }))),
        });
      },
      fakeDeps(fake),
      {},
    );
    const detail = `${r.reason ?? ''} ${r.violations.join('; ')} ${r.implausible.join('; ')}`;
    expect(r.valid, detail).toBe(true);
    expect(r.throughputTxnPerSec).toBeGreaterThan(0);
    expect(handed!.replicas.map((h) => h.publicIp)).toEqual(['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1']);
    // Replicas listened inside the range the security group opens: replica i on fromPort + i.
    expect(handed!.portRange).toEqual(HARNESS_PORT_RANGE);
    expect(listened).toEqual([0, 1, 2, 3].map((peer) => ({ peer, port: HARNESS_PORT_RANGE.fromPort + peer })));
    // Torn down in EC2, and no process left on the "hosts".
    expect(fake.liveInstances()).toEqual([]);
    expect(fake.groups.size).toBe(0);
    expect(fake.keys.size).toBe(0);
    expect(pids).toHaveLength(5);
    expect(alivePids(pids)).toEqual([]);
  });
});
