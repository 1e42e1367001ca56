/**
 * withAwsHosts and the provisioned section: the hosts handed to the job are the ones EC2
 * returned, and the run is always torn down: after the job, when it throws, and on SIGINT or
 * SIGTERM (from an injected signal source, and once from the real process object), with the
 * signal listeners removed afterwards.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ProvisionedHosts } from './create.js';
import { ConfirmationRequiredError, InterruptedError, InvalidAwsOptionsError, TeardownError } from './errors.js';
import { callNames, fakeDeps, type FakeEc2 } from '../../test/fakes/fake-ec2.js';
import { awsUp, withAwsHosts } from './lifecycle.js';
import { parseUpOptions } from './options.js';
import { useFakeEc2 } from '../../test/aws-fixture.js';

let fake: FakeEc2;
let stateDir: string;
const ec2Mock = useFakeEc2('poe-aws-', (f, d) => {
  fake = f;
  stateDir = d;
});

const input = () => ({ replicas: 4, clients: 1, myIp: '203.0.113.7', yes: true, stateDir });
const TEARDOWN_CALLS = [
  'DescribeInstances',
  'TerminateInstances',
  'DescribeInstances',
  'DescribeInstances',
  'DescribeSecurityGroups',
  'DeleteSecurityGroup',
  'DescribeKeyPairs',
  'DeleteKeyPair',
];

function expectAllGone(): void {
  expect(fake.liveInstances()).toEqual([]);
  expect(fake.groups.size).toBe(0);
  expect(fake.keys.size).toBe(0);
}

/** A promise that never settles: a job that runs until something stops it. */
const forever = (): Promise<never> => new Promise(() => undefined);

describe('withAwsHosts', () => {
  it('hands the job the hosts EC2 returned, then tears everything down', async () => {
    const seen: ProvisionedHosts[] = [];
    const result = await withAwsHosts(
      input(),
      async (hosts) => {
        seen.push(hosts);
        expect(fake.liveInstances()).toHaveLength(5); // up while the job runs
        return 'job done';
      },
      fakeDeps(fake),
      {},
    );
    expect(result).toBe('job done');
    const [hosts] = seen;
    const fromEc2 = [...fake.instances.values()].map((f) => f.instance.InstanceId);
    expect(hosts?.replicas.map((h) => h.instanceId)).toEqual(fromEc2.slice(0, 4));
    expect(hosts?.clients.map((h) => h.instanceId)).toEqual(fromEc2.slice(4));
    for (const h of [...(hosts?.replicas ?? []), ...(hosts?.clients ?? [])]) {
      expect(h.publicIp).toBe('127.0.0.1');
      expect(h.privateIp).toBe('127.0.0.1');
    }
    expect(hosts).toMatchObject({ region: 'us-east-1', sshUser: 'admin', sshPort: 22, privateKeyPath: join(stateDir, hosts?.runId ?? '?', 'id_ed25519') });
    expect(callNames(ec2Mock).slice(-TEARDOWN_CALLS.length)).toEqual(TEARDOWN_CALLS);
    expectAllGone();
  });

  it("tears down when the job throws, and rethrows the job's error", async () => {
    const boom = new Error('the benchmark failed');
    await expect(
      withAwsHosts(
        input(),
        async () => {
          throw boom;
        },
        fakeDeps(fake),
        {},
      ),
    ).rejects.toBe(boom);
    expectAllGone();
  });

  it("SIGINT during the job: the job's signal aborts, the run is torn down, InterruptedError, listeners removed", async () => {
    const deps = fakeDeps(fake);
    let jobSignal: AbortSignal | undefined;
    const running = withAwsHosts(
      input(),
      (_hosts, signal) => {
        jobSignal = signal;
        expect(deps.signals.listenerCount('SIGINT')).toBe(1);
        expect(deps.signals.listenerCount('SIGTERM')).toBe(1);
        setImmediate(() => deps.signals.emit('SIGINT'));
        return forever();
      },
      deps,
      {},
    );
    const err = await running.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect((err as InterruptedError).signal).toBe('SIGINT');
    expect(jobSignal?.aborted).toBe(true);
    expectAllGone();
    expect(deps.signals.listenerCount('SIGINT')).toBe(0);
    expect(deps.signals.listenerCount('SIGTERM')).toBe(0);
    expect(deps.lines).toContain('SIGINT: tearing down run pb-20250131-120000-ab12cd');
  });

  it('SIGTERM while provisioning (waiting for SSH): what exists is torn down and the job never runs', async () => {
    let ran = false;
    const deps = fakeDeps(fake, {
      probeSsh: async () => {
        deps.signals.emit('SIGTERM');
        return true;
      },
    });
    const err = await withAwsHosts(
      input(),
      async () => {
        ran = true;
      },
      deps,
      {},
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expect((err as InterruptedError).signal).toBe('SIGTERM');
    expect(ran).toBe(false);
    expectAllGone();
    expect(deps.signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('a second signal during teardown does not cut it short', async () => {
    const deps = fakeDeps(fake);
    // The teardown's first call brings the second Ctrl-C.
    fake.failNext('TerminateInstances', new Error('unused'), () => {
      deps.signals.emit('SIGINT');
      return false;
    });
    const err = await withAwsHosts(
      input(),
      () => {
        setImmediate(() => deps.signals.emit('SIGINT'));
        return forever();
      },
      deps,
      {},
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expectAllGone();
    expect(deps.lines.some((l) => l.startsWith('SIGINT again: still tearing down run pb-20250131-120000-ab12cd'))).toBe(true);
  });

  it("SIGINT on the real process object: handled inside the section, vitest's process unharmed", async () => {
    const before = { int: process.listenerCount('SIGINT'), term: process.listenerCount('SIGTERM') };
    const { signals: _injected, ...deps } = fakeDeps(fake);
    const err = await withAwsHosts(
      input(),
      () => {
        expect(process.listenerCount('SIGINT')).toBe(before.int + 1);
        // emit() runs the listeners synchronously, exactly as a delivered signal would; no
        // signal is sent to the process, so nothing else (vitest included) is affected.
        setImmediate(() => process.emit('SIGINT'));
        return forever();
      },
      deps,
      {},
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expectAllGone();
    expect(process.listenerCount('SIGINT')).toBe(before.int);
    expect(process.listenerCount('SIGTERM')).toBe(before.term);
  });

  it("a teardown that fails after the job failed names both: the job's error is the cause", async () => {
    fake.dependencyViolations = 100;
    const boom = new Error('the benchmark failed');
    const err = await withAwsHosts(
      input(),
      async () => {
        throw boom;
      },
      fakeDeps(fake),
      {},
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TeardownError);
    expect((err as TeardownError).cause).toBe(boom);
    expect((err as Error).message).toMatch(/run `poe-bench infra aws down --run pb-20250131-120000-ab12cd` to retry/);
  });

  it('asks before creating: without --yes and without a terminal nothing is created', async () => {
    const err = await withAwsHosts({ ...input(), yes: false }, async () => 'never', fakeDeps(fake), {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfirmationRequiredError);
    expect(fake.instances.size + fake.groups.size + fake.keys.size).toBe(0);
  });

  it('refuses --dry-run (it needs real machines)', async () => {
    await expect(withAwsHosts({ ...input(), dryRun: true }, async () => 1, fakeDeps(fake), {})).rejects.toThrow(InvalidAwsOptionsError);
    expect(ec2Mock.calls()).toHaveLength(0);
  });
});

describe('up (keeps the run)', () => {
  it('leaves the instances running on success and removes its signal listeners', async () => {
    const deps = fakeDeps(fake);
    await awsUp(parseUpOptions(input(), {}), deps);
    expect(fake.liveInstances().map((i) => i.State?.Name)).toEqual(Array(5).fill('running'));
    expect(deps.signals.listenerCount('SIGINT') + deps.signals.listenerCount('SIGTERM')).toBe(0);
  });

  it('a signal while up waits for the instances tears down what it created', async () => {
    const deps = fakeDeps(fake);
    fake.pendingPolls = 3;
    let polls = 0;
    fake.failNext('DescribeInstances', new Error('unused'), () => {
      if (++polls === 1) deps.signals.emit('SIGINT');
      return false;
    });
    const err = await awsUp(parseUpOptions(input(), {}), deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InterruptedError);
    expectAllGone();
  });
});
