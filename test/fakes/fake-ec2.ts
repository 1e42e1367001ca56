/**
 * A small stateful EC2 for the aws backend's tests, behind aws-sdk-client-mock: it keeps the
 * instances, security groups and key pairs a run creates, moves instances through pending ->
 * running and shutting-down -> terminated as they are described (as EC2's waiters see it),
 * refuses to delete a group still in use (DependencyViolation), answers DryRun calls with
 * DryRunOperation, and filters by tag. Failures are injected per call with `failNext`.
 *
 * Test support only: nothing here makes a network call, and every address it hands out is
 * 127.0.0.1 so the hosts can be driven for real on this machine.
 */
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateKeyPairCommand,
  CreateSecurityGroupCommand,
  DeleteKeyPairCommand,
  DeleteSecurityGroupCommand,
  DescribeImagesCommand,
  DescribeInstancesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeKeyPairsCommand,
  DescribeRegionsCommand,
  DescribeSecurityGroupsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  EC2Client,
  EC2ServiceException,
  RunInstancesCommand,
  TerminateInstancesCommand,
  type AuthorizeSecurityGroupIngressCommandInput,
  type CreateKeyPairCommandInput,
  type CreateSecurityGroupCommandInput,
  type DeleteKeyPairCommandInput,
  type DeleteSecurityGroupCommandInput,
  type DescribeImagesCommandInput,
  type DescribeInstancesCommandInput,
  type DescribeInstanceTypeOfferingsCommandInput,
  type DescribeInstanceTypesCommandInput,
  type DescribeKeyPairsCommandInput,
  type DescribeSecurityGroupsCommandInput,
  type DescribeSubnetsCommandInput,
  type DescribeVpcsCommandInput,
  type Filter,
  type Image,
  type Instance,
  type IpPermission,
  type KeyPairInfo,
  type Region,
  type RunInstancesCommandInput,
  type SecurityGroup,
  type Subnet,
  type Tag,
  type TerminateInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { EventEmitter } from 'node:events';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import type { AwsDeps, AwsTiming } from '../../infra/aws/deps.js';

export function ec2Error(name: string, message = name): EC2ServiceException {
  return new EC2ServiceException({ name, $fault: 'client', $metadata: { httpStatusCode: 400 }, message });
}

/** What the SDK throws when its credential chain finds nothing. */
export function credentialsProviderError(): Error {
  const err = new Error('Could not load credentials from any providers');
  err.name = 'CredentialsProviderError';
  return err;
}

/** What a DNS failure for an unknown region's endpoint looks like to the SDK's caller. */
export function endpointNotFoundError(region: string): Error {
  const host = `ec2.${region}.amazonaws.com`;
  return Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
}

interface FakeInstance {
  instance: Instance;
  /** Describe calls left before the next state transition. */
  pollsLeft: number;
  groupIds: string[];
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replaceAll('*', '.*')
      .replaceAll('?', '.')}$`,
  );
}

function matchesFilters(filters: readonly Filter[] | undefined, field: (name: string) => readonly string[]): boolean {
  return (filters ?? []).every((f) => {
    const values = field(f.Name ?? '');
    return (f.Values ?? []).some((pattern) => values.some((v) => globToRegExp(pattern).test(v)));
  });
}

function tagField(tags: readonly Tag[] | undefined, name: string): readonly string[] | undefined {
  if (!name.startsWith('tag:')) return undefined;
  const key = name.slice(4);
  return (tags ?? []).filter((t) => t.Key === key).map((t) => t.Value ?? '');
}

function tagsFor(specs: RunInstancesCommandInput['TagSpecifications'], resourceType: string): Tag[] {
  return (specs ?? []).filter((s) => s.ResourceType === resourceType).flatMap((s) => s.Tags ?? []);
}

export class FakeEc2 {
  regions: Region[] = [
    { RegionName: 'us-east-1', OptInStatus: 'opt-in-not-required' },
    { RegionName: 'eu-west-1', OptInStatus: 'opt-in-not-required' },
    { RegionName: 'af-south-1', OptInStatus: 'not-opted-in' },
  ];
  /** instance type -> zones of the region that offer it. */
  offerings = new Map<string, string[]>([
    ['c5.2xlarge', ['us-east-1a', 'us-east-1b']],
    ['c5.xlarge', ['us-east-1a', 'us-east-1b', 'us-east-1c']],
    ['t3.micro', ['us-east-1a']],
  ]);
  architectures = new Map<string, string[]>([
    ['c5.2xlarge', ['x86_64']],
    ['c5.xlarge', ['x86_64']],
    ['t3.micro', ['x86_64']],
  ]);
  images: (Image & { owner: string })[] = [
    {
      ImageId: 'ami-0de0000000000a1d',
      Name: 'debian-12-amd64-20240101-1000',
      Architecture: 'x86_64',
      CreationDate: '2024-01-01T00:00:00.000Z',
      State: 'available',
      RootDeviceType: 'ebs',
      VirtualizationType: 'hvm',
      owner: '136693071363',
    },
    {
      ImageId: 'ami-0de0000000000e3f',
      Name: 'debian-12-amd64-20240601-1700',
      Architecture: 'x86_64',
      CreationDate: '2024-06-01T00:00:00.000Z',
      State: 'available',
      RootDeviceType: 'ebs',
      VirtualizationType: 'hvm',
      owner: '136693071363',
    },
    {
      ImageId: 'ami-0de00000000a4b64',
      Name: 'debian-12-arm64-20240601-1700',
      Architecture: 'arm64',
      CreationDate: '2024-06-01T00:00:00.000Z',
      State: 'available',
      RootDeviceType: 'ebs',
      VirtualizationType: 'hvm',
      owner: '136693071363',
    },
  ];
  vpcs = [{ VpcId: 'vpc-0default0', IsDefault: true }];
  subnets: Subnet[] = [
    { SubnetId: 'subnet-0000000c', VpcId: 'vpc-0default0', AvailabilityZone: 'us-east-1c', DefaultForAz: true, MapPublicIpOnLaunch: true },
    { SubnetId: 'subnet-0000000b', VpcId: 'vpc-0default0', AvailabilityZone: 'us-east-1b', DefaultForAz: true, MapPublicIpOnLaunch: true },
    { SubnetId: 'subnet-0000000a', VpcId: 'vpc-0default0', AvailabilityZone: 'us-east-1a', DefaultForAz: true, MapPublicIpOnLaunch: true },
  ];
  readonly instances = new Map<string, FakeInstance>();
  readonly groups = new Map<string, SecurityGroup>();
  readonly keys = new Map<string, KeyPairInfo>();
  /** Describe calls an instance stays pending (then running), or shutting-down (then terminated). */
  pendingPolls = 1;
  shuttingDownPolls = 1;
  /** DeleteSecurityGroup fails this many more times with DependencyViolation (ENIs detaching). */
  dependencyViolations = 0;
  /** Newly created resources are invisible to tag searches (EC2's eventual consistency). */
  hideFromTagSearch = false;
  /** Public and private address of the i-th launched instance. */
  address: (index: number) => { publicIp: string; privateIp: string } = () => ({ publicIp: '127.0.0.1', privateIp: '127.0.0.1' });
  nowMs = Date.parse('2025-01-31T12:00:00.000Z');

  private readonly failures: { command: string; error: Error; when: (input: unknown) => boolean }[] = [];
  private readonly clientTokens = new Map<string, string[]>();
  private readonly hidden = new Set<string>();
  private counter = 0;

  /** The next call of `command` (matching `when`) throws `error` instead of doing anything. */
  failNext(command: string, error: Error, when: (input: unknown) => boolean = () => true): this {
    this.failures.push({ command, error, when });
    return this;
  }

  private injected(command: string, input: unknown): void {
    const i = this.failures.findIndex((f) => f.command === command && f.when(input));
    if (i < 0) return;
    const [failure] = this.failures.splice(i, 1);
    if (failure) throw failure.error;
  }

  private dryRun(input: { DryRun?: boolean | undefined }): void {
    if (input.DryRun === true) throw ec2Error('DryRunOperation', 'Request would have succeeded, but DryRun flag is set.');
  }

  private id(prefix: string): string {
    this.counter++;
    return `${prefix}-${this.counter.toString(16).padStart(17, '0')}`;
  }

  private visible(id: string, filters: readonly Filter[] | undefined): boolean {
    const byTag = (filters ?? []).some((f) => (f.Name ?? '').startsWith('tag:'));
    return !(byTag && this.hidden.has(id));
  }

  /** Puts a resource in the account as if an earlier (maybe crashed) run had made it. */
  seedInstance(instance: Instance, groupIds: string[] = []): void {
    this.instances.set(instance.InstanceId ?? this.id('i'), { instance, pollsLeft: 0, groupIds });
  }

  // --- the calls ---

  describeRegions(): { Regions: Region[] } {
    this.injected('DescribeRegions', {});
    return { Regions: this.regions };
  }

  describeInstanceTypeOfferings(input: DescribeInstanceTypeOfferingsCommandInput) {
    this.injected('DescribeInstanceTypeOfferings', input);
    const offerings = [...this.offerings.entries()].flatMap(([type, zones]) =>
      zones.map((zone) => ({ InstanceType: type, Location: zone, LocationType: 'availability-zone' as const })),
    );
    return {
      InstanceTypeOfferings: offerings.filter((o) =>
        matchesFilters(input.Filters, (name) => (name === 'instance-type' ? [o.InstanceType] : name === 'location' ? [o.Location] : [])),
      ),
    };
  }

  describeInstanceTypes(input: DescribeInstanceTypesCommandInput) {
    this.injected('DescribeInstanceTypes', input);
    const unknown = (input.InstanceTypes ?? []).filter((t) => !this.architectures.has(t));
    if (unknown.length > 0) throw ec2Error('InvalidInstanceType', `The following supplied instance types do not exist: [${unknown.join(', ')}]`);
    return {
      InstanceTypes: (input.InstanceTypes ?? []).map((t) => ({
        InstanceType: t,
        ProcessorInfo: { SupportedArchitectures: this.architectures.get(t) as ('x86_64' | 'arm64')[] },
      })),
    };
  }

  describeImages(input: DescribeImagesCommandInput) {
    this.injected('DescribeImages', input);
    if (input.ImageIds !== undefined) {
      const found = this.images.filter((i) => input.ImageIds?.includes(i.ImageId ?? ''));
      if (found.length < input.ImageIds.length) throw ec2Error('InvalidAMIID.NotFound', `The image id '[${input.ImageIds.join(', ')}]' does not exist`);
      return { Images: found };
    }
    const fieldOf =
      (i: Image) =>
      (name: string): string[] => {
        const value = (
          {
            name: i.Name,
            architecture: i.Architecture,
            state: i.State,
            'root-device-type': i.RootDeviceType,
            'virtualization-type': i.VirtualizationType,
          } as Record<string, string | undefined>
        )[name];
        return value === undefined ? [] : [value];
      };
    return { Images: this.images.filter((i) => (input.Owners ?? [i.owner]).includes(i.owner) && matchesFilters(input.Filters, fieldOf(i))) };
  }

  describeVpcs(input: DescribeVpcsCommandInput) {
    this.injected('DescribeVpcs', input);
    return {
      Vpcs: this.vpcs.filter((v) =>
        matchesFilters(input.Filters, (name) => (name === 'is-default' ? [String(v.IsDefault)] : name === 'vpc-id' ? [v.VpcId] : [])),
      ),
    };
  }

  describeSubnets(input: DescribeSubnetsCommandInput) {
    this.injected('DescribeSubnets', input);
    if (input.SubnetIds !== undefined) {
      const found = this.subnets.filter((s) => input.SubnetIds?.includes(s.SubnetId ?? ''));
      if (found.length < input.SubnetIds.length) throw ec2Error('InvalidSubnetID.NotFound', 'The subnet ID does not exist');
      return { Subnets: found };
    }
    const fieldOf =
      (s: Subnet) =>
      (name: string): string[] =>
        name === 'vpc-id'
          ? [s.VpcId ?? '']
          : name === 'default-for-az'
            ? [String(s.DefaultForAz)]
            : name === 'availability-zone'
              ? [s.AvailabilityZone ?? '']
              : [];
    return { Subnets: this.subnets.filter((s) => matchesFilters(input.Filters, fieldOf(s))) };
  }

  createKeyPair(input: CreateKeyPairCommandInput) {
    this.injected('CreateKeyPair', input);
    this.dryRun(input);
    const name = input.KeyName ?? '';
    if (this.keys.has(name)) throw ec2Error('InvalidKeyPair.Duplicate', `The keypair already exists`);
    const keyPairId = this.id('key');
    this.keys.set(name, {
      KeyName: name,
      KeyPairId: keyPairId,
      KeyType: input.KeyType,
      Tags: tagsFor(input.TagSpecifications, 'key-pair'),
      CreateTime: new Date(this.nowMs),
    });
    if (this.hideFromTagSearch) this.hidden.add(keyPairId);
    return {
      KeyName: name,
      KeyPairId: keyPairId,
      KeyFingerprint: 'fake',
      KeyMaterial: `-----BEGIN OPENSSH PRIVATE KEY-----\nfake key for ${name}\n-----END OPENSSH PRIVATE KEY-----`,
    };
  }

  describeKeyPairs(input: DescribeKeyPairsCommandInput) {
    this.injected('DescribeKeyPairs', input);
    return {
      KeyPairs: [...this.keys.values()].filter(
        (k) =>
          this.visible(k.KeyPairId ?? '', input.Filters) &&
          matchesFilters(input.Filters, (name) => tagField(k.Tags, name) ?? (name === 'key-name' ? [k.KeyName ?? ''] : [])),
      ),
    };
  }

  deleteKeyPair(input: DeleteKeyPairCommandInput) {
    this.injected('DeleteKeyPair', input);
    this.keys.delete(input.KeyName ?? '');
    return { Return: true };
  }

  createSecurityGroup(input: CreateSecurityGroupCommandInput) {
    this.injected('CreateSecurityGroup', input);
    this.dryRun(input);
    if ([...this.groups.values()].some((g) => g.GroupName === input.GroupName && g.VpcId === input.VpcId))
      throw ec2Error('InvalidGroup.Duplicate', `The security group '${input.GroupName}' already exists`);
    const groupId = this.id('sg');
    this.groups.set(groupId, {
      GroupId: groupId,
      GroupName: input.GroupName,
      VpcId: input.VpcId,
      Description: input.Description,
      Tags: tagsFor(input.TagSpecifications, 'security-group'),
      IpPermissions: [],
    });
    if (this.hideFromTagSearch) this.hidden.add(groupId);
    return { GroupId: groupId };
  }

  authorizeSecurityGroupIngress(input: AuthorizeSecurityGroupIngressCommandInput) {
    this.injected('AuthorizeSecurityGroupIngress', input);
    this.dryRun(input);
    const group = this.groups.get(input.GroupId ?? '');
    if (group === undefined) throw ec2Error('InvalidGroup.NotFound', `The security group '${input.GroupId}' does not exist`);
    const rules: IpPermission[] = input.IpPermissions ?? [];
    group.IpPermissions = [...(group.IpPermissions ?? []), ...rules];
    return { Return: true };
  }

  describeSecurityGroups(input: DescribeSecurityGroupsCommandInput) {
    this.injected('DescribeSecurityGroups', input);
    return {
      SecurityGroups: [...this.groups.values()].filter(
        (g) =>
          this.visible(g.GroupId ?? '', input.Filters) &&
          matchesFilters(input.Filters, (name) => tagField(g.Tags, name) ?? (name === 'group-name' ? [g.GroupName ?? ''] : [])),
      ),
    };
  }

  deleteSecurityGroup(input: DeleteSecurityGroupCommandInput) {
    this.injected('DeleteSecurityGroup', input);
    const groupId = input.GroupId ?? '';
    if (!this.groups.has(groupId)) throw ec2Error('InvalidGroup.NotFound', `The security group '${groupId}' does not exist`);
    const inUse = [...this.instances.values()].some((i) => i.groupIds.includes(groupId) && i.instance.State?.Name !== 'terminated');
    if (inUse || this.dependencyViolations > 0) {
      if (!inUse) this.dependencyViolations--;
      throw ec2Error('DependencyViolation', `resource ${groupId} has a dependent object`);
    }
    this.groups.delete(groupId);
    return { Return: true };
  }

  runInstances(input: RunInstancesCommandInput) {
    this.injected('RunInstances', input);
    this.dryRun(input);
    if (input.ClientToken !== undefined) {
      const earlier = this.clientTokens.get(input.ClientToken);
      if (earlier !== undefined) return { Instances: earlier.map((id) => this.instances.get(id)?.instance).filter((i): i is Instance => i !== undefined) };
    }
    if (input.KeyName !== undefined && !this.keys.has(input.KeyName))
      throw ec2Error('InvalidKeyPair.NotFound', `The key pair '${input.KeyName}' does not exist`);
    const nic = input.NetworkInterfaces?.[0];
    const groupIds = nic?.Groups ?? input.SecurityGroupIds ?? [];
    for (const g of groupIds) if (!this.groups.has(g)) throw ec2Error('InvalidGroup.NotFound', `The security group '${g}' does not exist`);
    const count = input.MaxCount ?? 1;
    const created: Instance[] = [];
    for (let index = 0; index < count; index++) {
      const instanceId = this.id('i');
      const { privateIp } = this.address(this.instances.size);
      const instance: Instance = {
        InstanceId: instanceId,
        ImageId: input.ImageId,
        InstanceType: input.InstanceType,
        KeyName: input.KeyName,
        AmiLaunchIndex: index,
        SubnetId: nic?.SubnetId,
        State: { Name: 'pending', Code: 0 },
        PrivateIpAddress: privateIp,
        LaunchTime: new Date(this.nowMs),
        Tags: tagsFor(input.TagSpecifications, 'instance'),
      };
      this.instances.set(instanceId, { instance, pollsLeft: this.pendingPolls, groupIds: [...groupIds] });
      if (this.hideFromTagSearch) this.hidden.add(instanceId);
      created.push(instance);
    }
    if (input.ClientToken !== undefined)
      this.clientTokens.set(
        input.ClientToken,
        created.map((i) => i.InstanceId ?? ''),
      );
    return { Instances: created.map((i) => ({ ...i })) };
  }

  /**
   * A describe moves each instance it returns one step along its lifecycle: it shows the
   * transitional state (pending, shutting-down) `pendingPolls`/`shuttingDownPolls` times, then
   * the final one.
   */
  private advance(fake: FakeInstance, index: number): void {
    const state = fake.instance.State?.Name;
    if (state !== 'pending' && state !== 'shutting-down') return;
    if (fake.pollsLeft > 0) {
      fake.pollsLeft--;
      return;
    }
    if (state === 'pending') {
      fake.instance.State = { Name: 'running', Code: 16 };
      fake.instance.PublicIpAddress = this.address(index).publicIp;
    } else {
      fake.instance.State = { Name: 'terminated', Code: 48 };
      fake.instance.PublicIpAddress = undefined;
    }
  }

  describeInstances(input: DescribeInstancesCommandInput) {
    this.injected('DescribeInstances', input);
    const all = [...this.instances.values()];
    let selected: FakeInstance[];
    if (input.InstanceIds !== undefined) {
      const missing = input.InstanceIds.filter((id) => !this.instances.has(id));
      if (missing.length > 0) throw ec2Error('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`);
      selected = all.filter((f) => input.InstanceIds?.includes(f.instance.InstanceId ?? ''));
    } else {
      selected = all.filter(
        (f) =>
          this.visible(f.instance.InstanceId ?? '', input.Filters) &&
          matchesFilters(input.Filters, (name) => tagField(f.instance.Tags, name) ?? (name === 'instance-state-name' ? [f.instance.State?.Name ?? ''] : [])),
      );
    }
    for (const f of selected) this.advance(f, all.indexOf(f));
    const reported = selected.map((f) => ({ ...f.instance, State: { ...f.instance.State } }));
    return { Reservations: reported.length === 0 ? [] : [{ Instances: reported }] };
  }

  terminateInstances(input: TerminateInstancesCommandInput) {
    this.injected('TerminateInstances', input);
    this.dryRun(input);
    const ids = input.InstanceIds ?? [];
    const missing = ids.filter((id) => !this.instances.has(id));
    if (missing.length > 0) throw ec2Error('InvalidInstanceID.NotFound', `The instance IDs '${missing.join(', ')}' do not exist`);
    return {
      TerminatingInstances: ids.map((id) => {
        const f = this.instances.get(id) as FakeInstance;
        const previous = f.instance.State?.Name;
        if (previous !== 'terminated') {
          f.instance.State = { Name: 'shutting-down', Code: 32 };
          f.pollsLeft = this.shuttingDownPolls;
        }
        return { InstanceId: id, PreviousState: { Name: previous }, CurrentState: { ...f.instance.State } };
      }),
    };
  }

  // --- inspection ---

  liveInstances(): Instance[] {
    return [...this.instances.values()].map((f) => f.instance).filter((i) => i.State?.Name !== 'terminated');
  }

  /** Wires every call above into a mocked EC2Client. */
  install(mock: AwsClientStub<EC2Client>): this {
    mock.on(DescribeRegionsCommand).callsFake(async () => this.describeRegions());
    mock.on(DescribeInstanceTypeOfferingsCommand).callsFake(async (i: DescribeInstanceTypeOfferingsCommandInput) => this.describeInstanceTypeOfferings(i));
    mock.on(DescribeInstanceTypesCommand).callsFake(async (i: DescribeInstanceTypesCommandInput) => this.describeInstanceTypes(i));
    mock.on(DescribeImagesCommand).callsFake(async (i: DescribeImagesCommandInput) => this.describeImages(i));
    mock.on(DescribeVpcsCommand).callsFake(async (i: DescribeVpcsCommandInput) => this.describeVpcs(i));
    mock.on(DescribeSubnetsCommand).callsFake(async (i: DescribeSubnetsCommandInput) => this.describeSubnets(i));
    mock.on(CreateKeyPairCommand).callsFake(async (i: CreateKeyPairCommandInput) => this.createKeyPair(i));
    mock.on(DescribeKeyPairsCommand).callsFake(async (i: DescribeKeyPairsCommandInput) => this.describeKeyPairs(i));
    mock.on(DeleteKeyPairCommand).callsFake(async (i: DeleteKeyPairCommandInput) => this.deleteKeyPair(i));
    mock.on(CreateSecurityGroupCommand).callsFake(async (i: CreateSecurityGroupCommandInput) => this.createSecurityGroup(i));
    mock.on(AuthorizeSecurityGroupIngressCommand).callsFake(async (i: AuthorizeSecurityGroupIngressCommandInput) => this.authorizeSecurityGroupIngress(i));
    mock.on(DescribeSecurityGroupsCommand).callsFake(async (i: DescribeSecurityGroupsCommandInput) => this.describeSecurityGroups(i));
    mock.on(DeleteSecurityGroupCommand).callsFake(async (i: DeleteSecurityGroupCommandInput) => this.deleteSecurityGroup(i));
    mock.on(RunInstancesCommand).callsFake(async (i: RunInstancesCommandInput) => this.runInstances(i));
    mock.on(DescribeInstancesCommand).callsFake(async (i: DescribeInstancesCommandInput) => this.describeInstances(i));
    mock.on(TerminateInstancesCommand).callsFake(async (i: TerminateInstancesCommandInput) => this.terminateInstances(i));
    return this;
  }
}

/** The command names of the calls a mocked client received, in order (`DescribeRegions`, ...). */
export function callNames(mock: AwsClientStub<EC2Client>): string[] {
  return mock.calls().map((c) => (c.args[0] as { constructor: { name: string } }).constructor.name.replace(/Command$/, ''));
}

/** Timing for tests: waiters poll every millisecond or two, retries do not wait. */
export const FAST_TIMING: AwsTiming = {
  waiterMinDelaySeconds: 0.001,
  waiterMaxDelaySeconds: 0.002,
  runningMaxWaitSeconds: 5,
  terminatedMaxWaitSeconds: 5,
  ssh: { deadlineMs: 1_000, probeTimeoutMs: 100, retryIntervalMs: 10 },
  retryDelayMs: 0,
  retryAttempts: 5,
};

export interface FakeDeps extends AwsDeps {
  readonly lines: string[];
  readonly probes: { host: string; port: number }[];
  readonly signals: EventEmitter;
}

/**
 * Dependencies for tests: the (mocked) EC2 client, the fake's clock, sleeps that only move it, a fixed
 * run-id suffix, an SSH probe that records its calls and answers yes, signals from an
 * EventEmitter, and log lines collected in `lines`.
 */
export function fakeDeps(fake: FakeEc2, overrides: Partial<AwsDeps> = {}): FakeDeps {
  const lines: string[] = [];
  const probes: { host: string; port: number }[] = [];
  return {
    ec2: new EC2Client({ region: 'us-east-1' }),
    nowMs: () => fake.nowMs,
    // Virtual time: sleeping moves the fake's clock, so deadlines pass without waiting.
    sleepMs: async (ms, signal) => {
      signal?.throwIfAborted();
      fake.nowMs += ms;
    },
    randomHex: () => 'ab12cd',
    probeSsh: async (host, port) => {
      probes.push({ host, port });
      return true;
    },
    log: (line) => lines.push(line),
    confirm: undefined,
    signals: new EventEmitter(),
    timing: FAST_TIMING,
    lines,
    probes,
    ...overrides,
  } as FakeDeps;
}
