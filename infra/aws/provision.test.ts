/**
 * `infra aws up` against a mocked EC2 (aws-sdk-client-mock + FakeEc2): the exact calls, the tags
 * on everything created, the security group's rules, dry-run, the checks that fail before
 * anything is created, and teardown when a step fails midway. No network: the mock replaces
 * EC2Client#send, and the SSH probe is a fake.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { RunInstancesCommand, type RunInstancesCommandInput, type Tag, type TagSpecification } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { HOSTS_FILE, PRIVATE_KEY_FILE, type ProvisionedHosts } from './create.js';
import {
  AwsStepError,
  ConfirmationRequiredError,
  ImageNotFoundError,
  InstanceTypeNotOfferedError,
  MissingCredentialsError,
  NetworkSetupError,
  NotConfirmedError,
  PermissionDeniedError,
  RegionNotEnabledError,
  SshNotReadyError,
  UnknownRegionError,
} from './errors.js';
import { callNames, credentialsProviderError, ec2Error, endpointNotFoundError, fakeDeps, type FakeEc2 } from '../../test/fakes/fake-ec2.js';
import { awsUp } from './lifecycle.js';
import { HARNESS_PORT_RANGE, parseUpOptions, type AwsUpInput } from './options.js';
import { useFakeEc2 } from '../../test/aws-fixture.js';

let fake: FakeEc2;
let stateDir: string;
const ec2Mock = useFakeEc2('poe-aws-', (f, d) => {
  fake = f;
  stateDir = d;
});

const RUN_ID = 'pb-20250131-120000-ab12cd';
const EXPIRES_AT = '2025-01-31T16:00:00.000Z'; // the fake's clock + the default 4 h TTL

function options(extra: Partial<AwsUpInput> = {}) {
  return parseUpOptions({ replicas: 4, clients: 1, myIp: '203.0.113.7', yes: true, stateDir, ...extra }, {});
}

const PLAN_CALLS = ['DescribeRegions', 'DescribeInstanceTypeOfferings', 'DescribeInstanceTypes', 'DescribeImages', 'DescribeVpcs', 'DescribeSubnets'];

function expectRunTags(tags: readonly Tag[] | undefined, role: string): void {
  const byKey = Object.fromEntries((tags ?? []).map((t) => [t.Key, t.Value]));
  expect(byKey).toMatchObject({ Project: 'poe-bench', 'poe-bench:run-id': RUN_ID, 'poe-bench:expires-at': EXPIRES_AT, 'poe-bench:role': role });
}

function specsByType(specs: readonly TagSpecification[] | undefined): Map<string, Tag[]> {
  return new Map((specs ?? []).map((s) => [s.ResourceType ?? '', s.Tags ?? []]));
}

describe('up', () => {
  it('makes exactly these EC2 calls, in this order, and hands back the hosts EC2 returned', async () => {
    const deps = fakeDeps(fake);
    const result = await awsUp(options(), deps);
    expect(callNames(ec2Mock)).toEqual([
      ...PLAN_CALLS,
      'CreateKeyPair',
      'CreateSecurityGroup',
      'AuthorizeSecurityGroupIngress',
      'RunInstances', // replicas
      'RunInstances', // clients
      'DescribeInstances', // waitUntilInstanceRunning: pending
      'DescribeInstances', // waitUntilInstanceRunning: running
      'DescribeInstances', // addresses
    ]);
    if (result.kind !== 'up') throw new Error('expected a run');
    const { hosts } = result;
    expect(hosts.runId).toBe(RUN_ID);
    expect(hosts.replicas).toHaveLength(4);
    expect(hosts.clients).toHaveLength(1);
    for (const h of [...hosts.replicas, ...hosts.clients]) expect(h).toMatchObject({ publicIp: '127.0.0.1', privateIp: '127.0.0.1' });
    expect(new Set([...hosts.replicas, ...hosts.clients].map((h) => h.instanceId)).size).toBe(5);
    expect(hosts.sshUser).toBe('admin');
    // sshd was probed on every host before up returned.
    expect(deps.probes).toEqual(Array.from({ length: 5 }, () => ({ host: '127.0.0.1', port: 22 })));
    expect(fake.liveInstances().every((i) => i.State?.Name === 'running')).toBe(true);
  });

  it('sends the replica and client launches with the planned image, types, subnet, key and group', async () => {
    await awsUp(options(), fakeDeps(fake));
    const [replicas, clients] = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input as RunInstancesCommandInput);
    const group = [...fake.groups.values()][0];
    for (const [input, type, count] of [
      [replicas, 'c5.2xlarge', 4],
      [clients, 'c5.xlarge', 1],
    ] as const) {
      expect(input).toMatchObject({
        ImageId: 'ami-0de0000000000e3f', // the newest Debian 12 amd64 image
        InstanceType: type,
        MinCount: count,
        MaxCount: count,
        KeyName: `poe-bench-${RUN_ID}`,
        InstanceInitiatedShutdownBehavior: 'terminate',
        NetworkInterfaces: [{ DeviceIndex: 0, SubnetId: 'subnet-0000000a', AssociatePublicIpAddress: true, Groups: [group?.GroupId] }],
      });
      // The instance powers itself off at the TTL, which terminates it.
      expect(Buffer.from(input?.UserData ?? '', 'base64').toString()).toContain('shutdown -h +240');
    }
    expect(replicas?.ClientToken).toBe(`${RUN_ID}-replica`);
    expect(clients?.ClientToken).toBe(`${RUN_ID}-client`);
  });

  it('tags every created resource with the project, run id, expiry and role', async () => {
    await awsUp(options(), fakeDeps(fake));
    const names = callNames(ec2Mock);
    const calls = ec2Mock.calls().map((c, i) => ({ name: names[i], input: (c.args[0] as { input: { TagSpecifications?: TagSpecification[] } }).input }));
    const creates = calls.filter((c) => /^(Create|Run|Authorize)/.test(c.name ?? ''));
    expect(creates.map((c) => c.name)).toEqual(['CreateKeyPair', 'CreateSecurityGroup', 'AuthorizeSecurityGroupIngress', 'RunInstances', 'RunInstances']);
    const [key, group, rule, replicas, clients] = creates.map((c) => specsByType(c.input.TagSpecifications));
    expectRunTags(key?.get('key-pair'), 'shared');
    expectRunTags(group?.get('security-group'), 'shared');
    expectRunTags(rule?.get('security-group-rule'), 'shared');
    for (const type of ['instance', 'volume', 'network-interface']) {
      expectRunTags(replicas?.get(type), 'replica');
      expectRunTags(clients?.get(type), 'client');
    }
    // And the fake EC2 stored them: what `down` will search by.
    for (const i of fake.liveInstances()) expectRunTags(i.Tags, i.Tags?.find((t) => t.Key === 'poe-bench:role')?.Value ?? '?');
    for (const g of fake.groups.values()) expectRunTags(g.Tags, 'shared');
    for (const k of fake.keys.values()) expectRunTags(k.Tags, 'shared');
  });

  it("opens only SSH and the harness ports, only to the run's own group and the caller", async () => {
    await awsUp(options({ myIp: '198.51.100.0/24' }), fakeDeps(fake));
    const [group] = [...fake.groups.values()];
    const rules = group?.IpPermissions ?? [];
    expect(rules.map((r) => [r.IpProtocol, r.FromPort, r.ToPort])).toEqual([
      ['tcp', 22, 22],
      ['tcp', HARNESS_PORT_RANGE.fromPort, HARNESS_PORT_RANGE.toPort],
    ]);
    for (const r of rules) {
      expect(r.UserIdGroupPairs?.map((p) => p.GroupId)).toEqual([group?.GroupId]);
      expect(r.IpRanges?.map((x) => x.CidrIp)).toEqual(['198.51.100.0/24']);
      expect(r.Ipv6Ranges ?? []).toEqual([]);
      expect(r.PrefixListIds ?? []).toEqual([]);
    }
  });

  it('saves the private key 0600 and hosts.json in the run directory', async () => {
    const result = await awsUp(options(), fakeDeps(fake));
    if (result.kind !== 'up') throw new Error('expected a run');
    const keyPath = join(stateDir, RUN_ID, PRIVATE_KEY_FILE);
    expect(result.hosts.privateKeyPath).toBe(keyPath);
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    expect(await readFile(keyPath, 'utf8')).toContain('BEGIN OPENSSH PRIVATE KEY');
    const saved = JSON.parse(await readFile(join(stateDir, RUN_ID, HOSTS_FILE), 'utf8')) as ProvisionedHosts;
    expect(saved).toEqual(JSON.parse(JSON.stringify(result.hosts)));
  });

  it('uses --ami and --subnet as given, after checking them', async () => {
    await awsUp(options({ ami: 'ami-0de0000000000a1d', subnet: 'subnet-0000000b', sshUser: 'debian' }), fakeDeps(fake));
    expect(callNames(ec2Mock).slice(0, 5)).toEqual([
      'DescribeRegions',
      'DescribeInstanceTypeOfferings',
      'DescribeInstanceTypes',
      'DescribeImages',
      'DescribeSubnets',
    ]);
    const [replicas] = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input);
    expect(replicas).toMatchObject({ ImageId: 'ami-0de0000000000a1d', NetworkInterfaces: [{ SubnetId: 'subnet-0000000b' }] });
  });
});

describe('up: checks before anything is created', () => {
  const creates = () => callNames(ec2Mock).filter((n) => /^(Create|Run|Authorize)/.test(n));

  it("missing credentials: the SDK's CredentialsProviderError becomes a clear error, nothing created", async () => {
    fake.failNext('DescribeRegions', credentialsProviderError());
    const err = await awsUp(options(), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingCredentialsError);
    expect((err as Error).message).toMatch(/^AWS credentials not found: set AWS_PROFILE .*AWS_ACCESS_KEY_ID/);
    expect(callNames(ec2Mock)).toEqual(['DescribeRegions']);
  });

  it('an instance type the region does not offer fails at DescribeInstanceTypeOfferings', async () => {
    fake.offerings.delete('c5.2xlarge');
    const err = await awsUp(options(), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InstanceTypeNotOfferedError);
    expect((err as Error).message).toMatch(/c5\.2xlarge not offered in us-east-1/);
    expect(callNames(ec2Mock)).toEqual(['DescribeRegions', 'DescribeInstanceTypeOfferings']);
  });

  it('types offered only in different zones are refused: a run stays in one zone', async () => {
    fake.offerings.set('t3.micro', ['us-east-1c']); // c5.2xlarge: us-east-1a and b only
    const err = await awsUp(options({ clientType: 't3.micro' }), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InstanceTypeNotOfferedError);
    expect((err as Error).message).toMatch(/c5\.2xlarge, t3\.micro not offered in us-east-1: no single availability zone/);
    expect(creates()).toEqual([]);
  });

  it('a misspelt region (its endpoint does not resolve) is an unknown region', async () => {
    fake.failNext('DescribeRegions', endpointNotFoundError('us-eats-1'));
    const err = await awsUp(options({ region: 'us-eats-1' }), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnknownRegionError);
    expect((err as Error).message).toMatch(/unknown AWS region 'us-eats-1': cannot resolve the EC2 endpoint ec2\.us-eats-1\.amazonaws\.com/);
    expect(creates()).toEqual([]);
  });

  it('a region missing from DescribeRegions is unknown; an opt-in region not enabled says so', async () => {
    const unknown = await awsUp(options({ region: 'xx-nowhere-9' }), fakeDeps(fake)).catch((e: unknown) => e);
    expect(unknown).toBeInstanceOf(UnknownRegionError);
    expect((unknown as Error).message).toMatch(/not one of this account's regions \(af-south-1, eu-west-1, us-east-1\)/);
    const disabled = await awsUp(options({ region: 'af-south-1' }), fakeDeps(fake)).catch((e: unknown) => e);
    expect(disabled).toBeInstanceOf(RegionNotEnabledError);
    expect(creates()).toEqual([]);
  });

  it('an --ami that does not exist, or of the wrong architecture, is refused', async () => {
    const missing = await awsUp(options({ ami: 'ami-0123456789abcdef0' }), fakeDeps(fake)).catch((e: unknown) => e);
    expect(missing).toBeInstanceOf(ImageNotFoundError);
    expect((missing as Error).message).toMatch(/AMI ami-0123456789abcdef0 not found in us-east-1/);
    const arm = await awsUp(options({ ami: 'ami-0de00000000a4b64' }), fakeDeps(fake)).catch((e: unknown) => e);
    expect(arm).toBeInstanceOf(ImageNotFoundError);
    expect((arm as Error).message).toMatch(/is arm64, but the instance types need x86_64/);
    expect(creates()).toEqual([]);
  });

  it('no default VPC: asks for --vpc and --subnet', async () => {
    fake.vpcs = [];
    const err = await awsUp(options(), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NetworkSetupError);
    expect((err as Error).message).toMatch(/no default VPC: pass --vpc and --subnet/);
  });

  it('without --yes and without a terminal it refuses; a "no" creates nothing', async () => {
    const refused = await awsUp(options({ yes: false }), fakeDeps(fake)).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ConfirmationRequiredError);
    expect((refused as Error).message).toMatch(/creating 5 EC2 instances needs confirmation, and stdin is not a terminal: pass --yes/);
    const questions: string[] = [];
    const declined = await awsUp(options({ yes: false }), fakeDeps(fake, { confirm: async (q) => (questions.push(q), false) })).catch((e: unknown) => e);
    expect(declined).toBeInstanceOf(NotConfirmedError);
    expect(questions).toEqual([`Create 5 EC2 instances for run ${RUN_ID}? [y/N] `]);
    expect(callNames(ec2Mock)).toEqual([...PLAN_CALLS, ...PLAN_CALLS]);
  });

  it('prints the cost estimate before asking', async () => {
    const deps = fakeDeps(fake, { confirm: async () => false });
    await awsUp(options({ yes: false, hours: 2 }), deps).catch(() => undefined);
    const text = deps.lines.join('\n');
    expect(text).toContain('4 x c5.2xlarge   replica at $0.34/h');
    expect(text).toContain('1 x c5.xlarge    client  at $0.17/h');
    // (4 x 0.34 + 0.17) x 2 h = 3.06; x 4 h TTL = 6.12
    expect(text).toContain('estimated $3.06 for 2 h; at most $6.12 if left until the 4 h TTL');
  });
});

describe('up --dry-run', () => {
  it('sends the create calls with DryRun: true, creates nothing, and reports success', async () => {
    const result = await awsUp(options({ dryRun: true, yes: false }), fakeDeps(fake));
    expect(callNames(ec2Mock)).toEqual([...PLAN_CALLS, 'CreateKeyPair', 'CreateSecurityGroup', 'RunInstances', 'RunInstances']);
    for (const call of ec2Mock.calls().slice(PLAN_CALLS.length)) expect((call.args[0] as { input: { DryRun?: boolean } }).input.DryRun).toBe(true);
    if (result.kind !== 'dry-run') throw new Error('expected a dry run');
    expect(result.report.ok).toBe(true);
    expect(result.report.checks.filter((c) => c.step !== 'AuthorizeSecurityGroupIngress').every((c) => c.detail.endsWith('would succeed'))).toBe(true);
    expect(fake.instances.size + fake.groups.size + fake.keys.size).toBe(0);
  });

  it('reports a call EC2 would refuse', async () => {
    fake.failNext('RunInstances', ec2Error('UnauthorizedOperation', 'You are not authorized to perform this operation.'));
    const result = await awsUp(options({ dryRun: true }), fakeDeps(fake));
    if (result.kind !== 'dry-run') throw new Error('expected a dry run');
    expect(result.report.ok).toBe(false);
    const failed = result.report.checks.filter((c) => !c.ok);
    expect(failed.map((c) => c.step)).toEqual(['RunInstances']);
    expect(failed[0]?.detail).toMatch(/4 x c5\.2xlarge replica .* would fail: not permitted to call EC2 RunInstances/);
  });
});

describe('up: a step fails midway', () => {
  it('RunInstances for the clients fails after the replicas launched: replicas terminated, group and key deleted', async () => {
    fake.failNext(
      'RunInstances',
      ec2Error('InsufficientInstanceCapacity', 'We currently do not have sufficient c5.xlarge capacity'),
      (i) => (i as RunInstancesCommandInput).InstanceType === 'c5.xlarge',
    );
    const deps = fakeDeps(fake);
    const err = await awsUp(options(), deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AwsStepError);
    expect((err as Error).message).toBe('EC2 RunInstances failed: InsufficientInstanceCapacity: We currently do not have sufficient c5.xlarge capacity');
    expect(callNames(ec2Mock)).toEqual([
      ...PLAN_CALLS,
      'CreateKeyPair',
      'CreateSecurityGroup',
      'AuthorizeSecurityGroupIngress',
      'RunInstances', // replicas: launched
      'RunInstances', // clients: fails
      'DescribeInstances', // teardown: find by tag
      'TerminateInstances',
      'DescribeInstances', // waitUntilInstanceTerminated: shutting-down
      'DescribeInstances', // waitUntilInstanceTerminated: terminated
      'DescribeSecurityGroups',
      'DeleteSecurityGroup',
      'DescribeKeyPairs',
      'DeleteKeyPair',
    ]);
    expect(fake.liveInstances()).toEqual([]);
    expect(fake.instances.size).toBe(4); // the four replicas, now terminated
    expect(fake.groups.size).toBe(0);
    expect(fake.keys.size).toBe(0);
    await expect(stat(join(stateDir, RUN_ID))).rejects.toThrow(/ENOENT/); // the private key is gone too
  });

  it("removes what it created even while EC2's tag search does not show it yet", async () => {
    fake.hideFromTagSearch = true;
    fake.failNext('RunInstances', ec2Error('InstanceLimitExceeded', 'too many'), (i) => (i as RunInstancesCommandInput).InstanceType === 'c5.xlarge');
    await expect(awsUp(options(), fakeDeps(fake))).rejects.toThrow(AwsStepError);
    expect(fake.liveInstances()).toEqual([]);
    expect(fake.groups.size + fake.keys.size).toBe(0);
  });

  it('instances that never accept SSH are torn down', async () => {
    const deps = fakeDeps(fake, { probeSsh: async () => false });
    const err = await awsUp(options(), deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshNotReadyError);
    expect((err as Error).message).toMatch(/^no SSH banner from 127\.0\.0\.1/);
    expect(fake.liveInstances()).toEqual([]);
    expect(fake.groups.size + fake.keys.size).toBe(0);
  });

  it('CreateSecurityGroup fails: only the key pair existed, and it is deleted', async () => {
    fake.failNext('CreateSecurityGroup', ec2Error('SecurityGroupLimitExceeded', 'limit'));
    await expect(awsUp(options(), fakeDeps(fake))).rejects.toThrow(/CreateSecurityGroup failed: SecurityGroupLimitExceeded/);
    expect(callNames(ec2Mock).slice(PLAN_CALLS.length)).toEqual([
      'CreateKeyPair',
      'CreateSecurityGroup',
      'DescribeInstances',
      'DescribeSecurityGroups',
      'DescribeKeyPairs',
      'DeleteKeyPair',
    ]);
    expect(fake.keys.size).toBe(0);
  });

  it('a denied permission midway is named, and the partial run removed', async () => {
    fake.failNext('RunInstances', ec2Error('UnauthorizedOperation', 'You are not authorized to perform this operation.'));
    const err = await awsUp(options(), fakeDeps(fake)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PermissionDeniedError);
    expect(fake.groups.size + fake.keys.size).toBe(0);
  });
});
