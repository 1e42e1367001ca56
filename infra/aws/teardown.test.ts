/**
 * `infra aws down` and `status` against a mocked EC2: the exact calls, idempotence, leftovers
 * found by their tags (also runs this process never saw), expired runs, and EC2's
 * consistency delays (DependencyViolation while network interfaces detach).
 */
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Instance, Tag } from '@aws-sdk/client-ec2';
import { beforeEach, describe, expect, it } from 'vitest';
import { ConfirmationRequiredError, TeardownError } from './errors.js';
import { callNames, ec2Error, fakeDeps, type FakeEc2 } from '../../test/fakes/fake-ec2.js';
import { awsDown, awsStatus, awsUp } from './lifecycle.js';
import { parseDownOptions, parseUpOptions } from './options.js';
import { inventory, teardown } from './teardown.js';
import { useFakeEc2 } from '../../test/aws-fixture.js';

let fake: FakeEc2;
let stateDir: string;
const ec2Mock = useFakeEc2('poe-aws-', (f, d) => {
  fake = f;
  stateDir = d;
});

const RUN_ID = 'pb-20250131-120000-ab12cd';

async function upOneRun(): Promise<void> {
  await awsUp(parseUpOptions({ replicas: 4, clients: 2, myIp: '203.0.113.7', yes: true, stateDir }, {}), fakeDeps(fake));
  ec2Mock.resetHistory();
}

function tags(runId: string, expiresAt: string, role: string): Tag[] {
  return [
    { Key: 'Project', Value: 'poe-bench' },
    { Key: 'poe-bench:run-id', Value: runId },
    { Key: 'poe-bench:expires-at', Value: expiresAt },
    { Key: 'poe-bench:role', Value: role },
  ];
}

/** A run some earlier harness left behind: instances, a group they use, a key pair. */
function seedRun(runId: string, expiresAt: string, instanceIds: string[]): void {
  const groupId = `sg-${runId.slice(-6)}00000000000`;
  fake.groups.set(groupId, { GroupId: groupId, GroupName: `poe-bench-${runId}`, VpcId: 'vpc-0default0', Tags: tags(runId, expiresAt, 'shared') });
  fake.keys.set(`poe-bench-${runId}`, {
    KeyName: `poe-bench-${runId}`,
    KeyPairId: `key-${runId}`,
    Tags: tags(runId, expiresAt, 'shared'),
    CreateTime: new Date('2025-01-30T08:00:00Z'),
  });
  for (const id of instanceIds) {
    const instance: Instance = {
      InstanceId: id,
      InstanceType: 'c5.2xlarge',
      State: { Name: 'running' },
      PublicIpAddress: '127.0.0.1',
      LaunchTime: new Date('2025-01-30T08:00:00Z'),
      Tags: tags(runId, expiresAt, 'replica'),
    };
    fake.seedInstance(instance, [groupId]);
  }
}

describe('down --run', () => {
  it('makes exactly these calls: find by tag, terminate, wait, then group and key', async () => {
    await upOneRun();
    const deps = fakeDeps(fake);
    const result = await awsDown(parseDownOptions({ run: RUN_ID, stateDir }, {}), deps);
    expect(callNames(ec2Mock)).toEqual([
      'DescribeInstances', // by tag, live states
      'TerminateInstances',
      'DescribeInstances', // waitUntilInstanceTerminated: shutting-down
      'DescribeInstances', // waitUntilInstanceTerminated: terminated
      'DescribeSecurityGroups',
      'DeleteSecurityGroup',
      'DescribeKeyPairs',
      'DeleteKeyPair',
    ]);
    const [find] = ec2Mock.calls().map((c) => (c.args[0] as { input: unknown }).input);
    expect(find).toEqual({
      Filters: [
        { Name: 'tag:Project', Values: ['poe-bench'] },
        { Name: 'tag:poe-bench:run-id', Values: [RUN_ID] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'shutting-down', 'stopping', 'stopped'] },
      ],
    });
    expect(result.report?.terminatedInstanceIds).toHaveLength(6);
    expect(result.lines).toEqual([`run ${RUN_ID}: 6 instance(s) terminated, 1 security group(s) deleted, 1 key pair(s) deleted`]);
    expect(fake.liveInstances()).toEqual([]);
    expect(fake.groups.size + fake.keys.size).toBe(0);
    await expect(stat(join(stateDir, RUN_ID))).rejects.toThrow(/ENOENT/);
  });

  it('is idempotent: a second down finds nothing and changes nothing', async () => {
    await upOneRun();
    await awsDown(parseDownOptions({ run: RUN_ID, stateDir }, {}), fakeDeps(fake));
    ec2Mock.resetHistory();
    const again = await awsDown(parseDownOptions({ run: RUN_ID, stateDir }, {}), fakeDeps(fake));
    expect(callNames(ec2Mock)).toEqual(['DescribeInstances', 'DescribeSecurityGroups', 'DescribeKeyPairs']);
    expect(again.lines).toEqual([`run ${RUN_ID}: 0 instance(s) terminated, 0 security group(s) deleted, 0 key pair(s) deleted`]);
  });

  it('touches only the named run', async () => {
    seedRun('pb-20250130-080000-000001', '2025-01-30T12:00:00.000Z', ['i-0000000000000aaa1']);
    seedRun('pb-20250131-110000-000002', '2025-02-01T12:00:00.000Z', ['i-0000000000000bbb1']);
    await awsDown(parseDownOptions({ run: 'pb-20250130-080000-000001', stateDir }, {}), fakeDeps(fake));
    expect(fake.liveInstances().map((i) => i.InstanceId)).toEqual(['i-0000000000000bbb1']);
    expect([...fake.keys.keys()]).toEqual(['poe-bench-pb-20250131-110000-000002']);
  });

  it('retries deleting the group while EC2 answers DependencyViolation (interfaces still detaching)', async () => {
    await upOneRun();
    fake.dependencyViolations = 3;
    await awsDown(parseDownOptions({ run: RUN_ID, stateDir }, {}), fakeDeps(fake));
    expect(callNames(ec2Mock).filter((n) => n === 'DeleteSecurityGroup')).toHaveLength(4);
    expect(fake.groups.size).toBe(0);
  });

  it('says what is left and how to retry when a deletion keeps failing, and still deletes the rest', async () => {
    await upOneRun();
    fake.dependencyViolations = 100;
    const err = await awsDown(parseDownOptions({ run: RUN_ID, stateDir }, {}), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TeardownError);
    expect((err as Error).message).toMatch(
      /^teardown incomplete \(security group sg-\w+: EC2 DeleteSecurityGroup failed: DependencyViolation: .*\); run `poe-bench infra aws down --run pb-20250131-120000-ab12cd` to retry$/,
    );
    expect(fake.liveInstances()).toEqual([]);
    expect(fake.keys.size).toBe(0);
    // The run directory stays while something of the run is left.
    expect((await stat(join(stateDir, RUN_ID))).isDirectory()).toBe(true);
  });

  it('keeps the group when termination cannot be confirmed, and says so', async () => {
    await upOneRun();
    fake.failNext('TerminateInstances', ec2Error('UnauthorizedOperation', 'not allowed'));
    const err = await awsDown(parseDownOptions({ run: RUN_ID, stateDir }, {}), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TeardownError);
    expect((err as Error).message).toMatch(
      /not confirmed terminated: not permitted to call EC2 TerminateInstances: not allowed.*security group sg-\w+ kept: its instances may still use it/,
    );
    expect(callNames(ec2Mock)).not.toContain('DeleteSecurityGroup');
    expect(fake.groups.size).toBe(1);
  });
});

describe('leftovers found by tag', () => {
  beforeEach(() => {
    fake.nowMs = Date.parse('2025-01-31T12:00:00.000Z');
    seedRun('pb-20250130-080000-000001', '2025-01-30T12:00:00.000Z', ['i-0000000000000aaa1', 'i-0000000000000aaa2']); // expired
    seedRun('pb-20250131-110000-000002', '2025-01-31T15:00:00.000Z', ['i-0000000000000bbb1']); // live
    // Not ours: no Project=poe-bench tag.
    fake.seedInstance({ InstanceId: 'i-0000000000000ccc1', State: { Name: 'running' }, Tags: [{ Key: 'Project', Value: 'other' }] });
  });

  it('inventory groups resources by run and marks the expired ones', async () => {
    const runs = await inventory(fakeDeps(fake), 'us-east-1');
    expect(runs.map((r) => [r.runId, r.expired, r.instances.length, r.groupIds.length, r.keyNames.length])).toEqual([
      ['pb-20250130-080000-000001', true, 2, 1, 1],
      ['pb-20250131-110000-000002', false, 1, 1, 1],
    ]);
  });

  it('status lists runs with their instances, age and expiry', async () => {
    const lines = await awsStatus({ region: 'us-east-1' }, fakeDeps(fake));
    expect(lines[0]).toBe('pb-20250130-080000-000001  age 28.0 h  expires 2025-01-30T12:00:00.000Z  EXPIRED');
    expect(lines).toContain('  i-0000000000000aaa1  replica  c5.2xlarge   running        127.0.0.1');
    expect(lines).toContain('pb-20250131-110000-000002  age 28.0 h  expires 2025-01-31T15:00:00.000Z');
    expect(lines.at(-1)).toBe('1 expired run(s): remove with `poe-bench infra aws down --expired --region us-east-1`');
    expect(lines.join('\n')).not.toContain('ccc1');
  });

  it('down --expired removes only the expired run', async () => {
    const result = await awsDown(parseDownOptions({ expired: true, yes: true, stateDir }, {}), fakeDeps(fake));
    expect(result.lines).toEqual(['1 run(s): 2 instance(s) terminated, 1 security group(s) deleted, 1 key pair(s) deleted']);
    expect(
      fake
        .liveInstances()
        .map((i) => i.InstanceId)
        .sort(),
    ).toEqual(['i-0000000000000bbb1', 'i-0000000000000ccc1']);
  });

  it('down without --run removes every poe-bench run, and nothing else', async () => {
    await awsDown(parseDownOptions({ yes: true, stateDir }, {}), fakeDeps(fake));
    expect(fake.liveInstances().map((i) => i.InstanceId)).toEqual(['i-0000000000000ccc1']);
    expect(fake.groups.size + fake.keys.size).toBe(0);
  });

  it('down without --run asks first; without a terminal it refuses and removes nothing', async () => {
    const err = await awsDown(parseDownOptions({ stateDir }, {}), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfirmationRequiredError);
    expect(callNames(ec2Mock)).toEqual(['DescribeInstances', 'DescribeSecurityGroups', 'DescribeKeyPairs']);
    const asked: string[] = [];
    await awsDown(parseDownOptions({ stateDir }, {}), fakeDeps(fake, { confirm: async (q) => (asked.push(q), true) }));
    expect(asked).toEqual(['Removing 2 run(s) (pb-20250130-080000-000001, pb-20250131-110000-000002)? [y/N] ']);
    expect(fake.liveInstances()).toHaveLength(1);
  });

  it('removes only run directories named like run ids', async () => {
    await mkdir(join(stateDir, 'pb-20250130-080000-000001'));
    await writeFile(join(stateDir, 'keep-me'), 'x');
    await teardown(fakeDeps(fake), 'us-east-1', { stateDir });
    await expect(stat(join(stateDir, 'pb-20250130-080000-000001'))).rejects.toThrow(/ENOENT/);
    expect((await stat(join(stateDir, 'keep-me'))).isFile()).toBe(true);
  });
});
