/**
 * Before anything is created: read-only EC2 calls that turn the options into a concrete plan
 * (the region exists and is enabled, one zone offers both instance types, an image for their
 * architecture, a subnet in that zone) and the cost estimate. A run that cannot work fails
 * here, with nothing to clean up.
 *
 * Calls, in order: DescribeRegions, DescribeInstanceTypeOfferings, DescribeInstanceTypes,
 * DescribeImages (once per architecture), then DescribeSubnets (with --subnet) or
 * DescribeVpcs and DescribeSubnets (the default VPC).
 */
import {
  DescribeImagesCommand,
  DescribeInstanceTypeOfferingsCommand,
  DescribeInstanceTypesCommand,
  DescribeRegionsCommand,
  DescribeSubnetsCommand,
  DescribeVpcsCommand,
  type DescribeImagesCommandInput,
  type Image,
  type _InstanceType,
  type Subnet,
} from '@aws-sdk/client-ec2';
import { join } from 'node:path';
import { ec2Call, type AwsDeps } from './deps.js';
import { AwsStepError, ImageNotFoundError, InstanceTypeNotOfferedError, NetworkSetupError, RegionNotEnabledError, UnknownRegionError } from './errors.js';
import { makeRunId, type AwsUpOptions, type OsChoice } from './options.js';
import { estimateCost, type CostEstimate } from './pricing.js';

export type Architecture = 'x86_64' | 'arm64';

export interface RolePlan {
  readonly count: number;
  readonly instanceType: string;
  readonly imageId: string;
}

export interface RunPlan {
  readonly runId: string;
  readonly region: string;
  readonly createdAt: string;
  /** ISO time: tagged on every resource; the instances power themselves off about then. */
  readonly expiresAt: string;
  readonly ttlHours: number;
  readonly replicas: RolePlan;
  readonly clients: RolePlan;
  readonly sshUser: string;
  readonly callerCidr: string;
  readonly vpcId: string;
  readonly subnetId: string;
  readonly availabilityZone: string;
  /** Holds one directory per run (`--state-dir`). */
  readonly stateDir: string;
  /** stateDir/runId: the private key and hosts.json of this run (0700). */
  readonly runDir: string;
  readonly estimate: CostEstimate;
}

/**
 * Official images, newest first by CreationDate. Debian's cloud team publishes from account
 * 136693071363 (https://wiki.debian.org/Cloud/AmazonEC2Image); Amazon Linux 2023 from `amazon`.
 */
const IMAGE_SOURCES: Readonly<Record<OsChoice, { owner: string; namePattern: (arch: Architecture) => string }>> = {
  debian12: { owner: '136693071363', namePattern: (arch) => `debian-12-${arch === 'x86_64' ? 'amd64' : 'arm64'}-*` },
  al2023: { owner: 'amazon', namePattern: (arch) => `al2023-ami-2023.*-${arch}` },
};

/**
 * The SDK types instance types as a closed union of the names it knew when it was built; the
 * user's string is checked by EC2 itself (DescribeInstanceTypeOfferings) before any use.
 */
export function asInstanceType(name: string): _InstanceType {
  return name as _InstanceType;
}

export async function planRun(options: AwsUpOptions, deps: AwsDeps): Promise<RunPlan> {
  const { region } = options;
  await checkRegion(region, deps);
  const types = [...new Set([options.instanceType, options.clientType])];
  const zones = await zonesOfferingAll(types, region, deps);
  const archByType = await architectures(types, region, deps);
  const imageByArch = await images(options, [...new Set(archByType.values())], region, deps);
  const network = await chooseSubnet(options, zones, region, deps);
  const nowMs = deps.nowMs();
  const runId = makeRunId(nowMs, deps.randomHex());
  const role = (count: number, instanceType: string): RolePlan => ({
    count,
    instanceType,
    imageId: imageByArch.get(archByType.get(instanceType) ?? 'x86_64') ?? '',
  });
  return {
    runId,
    region,
    createdAt: new Date(nowMs).toISOString(),
    expiresAt: new Date(nowMs + options.ttlHours * 3_600_000).toISOString(),
    ttlHours: options.ttlHours,
    replicas: role(options.replicas, options.instanceType),
    clients: role(options.clients, options.clientType),
    sshUser: options.sshUser,
    callerCidr: options.callerCidr,
    vpcId: network.vpcId,
    subnetId: network.subnetId,
    availabilityZone: network.availabilityZone,
    stateDir: options.stateDir,
    runDir: join(options.stateDir, runId),
    estimate: estimateCost(
      { replicas: options.replicas, clients: options.clients },
      { replica: options.instanceType, client: options.clientType },
      { expected: options.expectedHours, ttl: options.ttlHours },
    ),
  };
}

/** First call of every command: also where missing credentials show up. */
export async function checkRegion(region: string, deps: AwsDeps): Promise<void> {
  const out = await ec2Call('DescribeRegions', region, () => deps.ec2.send(new DescribeRegionsCommand({ AllRegions: true })));
  const regions = out.Regions ?? [];
  const found = regions.find((r) => r.RegionName === region);
  if (found === undefined) {
    const names = regions
      .map((r) => r.RegionName ?? '')
      .filter((n) => n !== '')
      .sort();
    throw new UnknownRegionError(region, `not one of this account's regions (${names.join(', ')})`);
  }
  if (found.OptInStatus === 'not-opted-in') throw new RegionNotEnabledError(region);
}

/** The availability zones that offer every type; InstanceTypeNotOfferedError when none does. */
async function zonesOfferingAll(types: readonly string[], region: string, deps: AwsDeps): Promise<Set<string>> {
  const zonesByType = new Map<string, Set<string>>(types.map((t) => [t, new Set<string>()]));
  let nextToken: string | undefined;
  do {
    const out = await ec2Call('DescribeInstanceTypeOfferings', region, () =>
      deps.ec2.send(
        new DescribeInstanceTypeOfferingsCommand({
          LocationType: 'availability-zone',
          Filters: [{ Name: 'instance-type', Values: [...types] }],
          NextToken: nextToken,
        }),
      ),
    );
    for (const o of out.InstanceTypeOfferings ?? []) {
      if (o.InstanceType !== undefined && o.Location !== undefined) zonesByType.get(o.InstanceType)?.add(o.Location);
    }
    nextToken = out.NextToken;
  } while (nextToken);
  const missing = types.filter((t) => (zonesByType.get(t)?.size ?? 0) === 0);
  if (missing.length > 0) throw new InstanceTypeNotOfferedError(missing, region, 'no availability zone of the region offers it; pick another --region or type');
  const [first, ...rest] = types.map((t) => zonesByType.get(t) ?? new Set<string>());
  const common = new Set([...(first ?? [])].filter((z) => rest.every((s) => s.has(z))));
  if (common.size === 0)
    throw new InstanceTypeNotOfferedError(types, region, 'no single availability zone offers all of them, and a run must stay in one zone');
  return common;
}

async function architectures(types: readonly string[], region: string, deps: AwsDeps): Promise<Map<string, Architecture>> {
  const out = await ec2Call('DescribeInstanceTypes', region, () =>
    deps.ec2.send(new DescribeInstanceTypesCommand({ InstanceTypes: types.map(asInstanceType) })),
  );
  const arch = new Map<string, Architecture>();
  for (const info of out.InstanceTypes ?? []) {
    const supported = info.ProcessorInfo?.SupportedArchitectures ?? [];
    if (info.InstanceType === undefined) continue;
    if (supported.includes('x86_64')) arch.set(info.InstanceType, 'x86_64');
    else if (supported.includes('arm64')) arch.set(info.InstanceType, 'arm64');
  }
  const unsupported = types.filter((t) => !arch.has(t));
  if (unsupported.length > 0) throw new InstanceTypeNotOfferedError(unsupported, region, 'neither x86_64 nor arm64 (no image to run)');
  return arch;
}

function newest(images: readonly Image[]): Image | undefined {
  return [...images].sort((a, b) => (b.CreationDate ?? '').localeCompare(a.CreationDate ?? ''))[0];
}

async function images(options: AwsUpOptions, archs: readonly Architecture[], region: string, deps: AwsDeps): Promise<Map<Architecture, string>> {
  const byArch = new Map<Architecture, string>();
  if (options.ami !== undefined) {
    const ami = options.ami;
    let found: Image | undefined;
    try {
      const out = await ec2Call('DescribeImages', region, () => deps.ec2.send(new DescribeImagesCommand({ ImageIds: [ami] })));
      found = out.Images?.[0];
    } catch (err) {
      if (!(err instanceof AwsStepError && err.code.startsWith('InvalidAMIID'))) throw err;
    }
    if (found === undefined) throw new ImageNotFoundError(`AMI ${ami} not found in ${region} (AMIs are per region)`);
    for (const arch of archs) {
      if (found.Architecture !== arch)
        throw new ImageNotFoundError(`AMI ${ami} is ${found.Architecture ?? 'of unknown architecture'}, but the instance types need ${arch}`);
      byArch.set(arch, ami);
    }
    return byArch;
  }
  const source = IMAGE_SOURCES[options.os];
  for (const arch of archs) {
    const input: DescribeImagesCommandInput = {
      Owners: [source.owner],
      Filters: [
        { Name: 'name', Values: [source.namePattern(arch)] },
        { Name: 'architecture', Values: [arch] },
        { Name: 'state', Values: ['available'] },
        { Name: 'root-device-type', Values: ['ebs'] },
        { Name: 'virtualization-type', Values: ['hvm'] },
      ],
    };
    const out = await ec2Call('DescribeImages', region, () => deps.ec2.send(new DescribeImagesCommand(input)));
    const image = newest(out.Images ?? []);
    if (image?.ImageId === undefined) throw new ImageNotFoundError(`no ${options.os} image for ${arch} in ${region}: pass --ami`);
    byArch.set(arch, image.ImageId);
  }
  return byArch;
}

interface Network {
  readonly vpcId: string;
  readonly subnetId: string;
  readonly availabilityZone: string;
}

async function chooseSubnet(options: AwsUpOptions, zones: ReadonlySet<string>, region: string, deps: AwsDeps): Promise<Network> {
  const offered = [...zones].sort().join(', ');
  if (options.subnet !== undefined) {
    const subnetId = options.subnet;
    let subnet: Subnet | undefined;
    try {
      const out = await ec2Call('DescribeSubnets', region, () => deps.ec2.send(new DescribeSubnetsCommand({ SubnetIds: [subnetId] })));
      subnet = out.Subnets?.[0];
    } catch (err) {
      if (!(err instanceof AwsStepError && err.code === 'InvalidSubnetID.NotFound')) throw err;
    }
    if (subnet?.VpcId === undefined || subnet.AvailabilityZone === undefined) throw new NetworkSetupError(`subnet ${subnetId} not found in ${region}`);
    if (options.vpc !== undefined && subnet.VpcId !== options.vpc)
      throw new NetworkSetupError(`subnet ${subnetId} belongs to ${subnet.VpcId}, not --vpc ${options.vpc}`);
    if (!zones.has(subnet.AvailabilityZone)) {
      throw new InstanceTypeNotOfferedError(
        [options.instanceType, options.clientType],
        region,
        `not in ${subnet.AvailabilityZone}, the zone of ${subnetId} (offered in ${offered})`,
      );
    }
    return { vpcId: subnet.VpcId, subnetId, availabilityZone: subnet.AvailabilityZone };
  }
  const vpcs = await ec2Call('DescribeVpcs', region, () => deps.ec2.send(new DescribeVpcsCommand({ Filters: [{ Name: 'is-default', Values: ['true'] }] })));
  const vpcId = vpcs.Vpcs?.[0]?.VpcId;
  if (vpcId === undefined) throw new NetworkSetupError(`${region} has no default VPC: pass --vpc and --subnet (a subnet whose instances get public addresses)`);
  const out = await ec2Call('DescribeSubnets', region, () =>
    deps.ec2.send(
      new DescribeSubnetsCommand({
        Filters: [
          { Name: 'vpc-id', Values: [vpcId] },
          { Name: 'default-for-az', Values: ['true'] },
        ],
      }),
    ),
  );
  // One zone for the whole run, as in the paper's single-region deployment; sorted so the
  // choice is the same on every call.
  const usable = (out.Subnets ?? [])
    .filter((s) => s.SubnetId !== undefined && s.AvailabilityZone !== undefined && zones.has(s.AvailabilityZone))
    .sort((a, b) => (a.AvailabilityZone ?? '').localeCompare(b.AvailabilityZone ?? ''));
  const chosen = usable[0];
  if (chosen?.SubnetId === undefined || chosen.AvailabilityZone === undefined) {
    throw new NetworkSetupError(`the default VPC ${vpcId} has no default subnet in a zone that offers the instance types (${offered}): pass --subnet`);
  }
  return { vpcId, subnetId: chosen.SubnetId, availabilityZone: chosen.AvailabilityZone };
}
