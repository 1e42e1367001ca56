/**
 * Creating a run: key pair, security group, its ingress rules, the replica instances, the client
 * instances; then waiting until they run and sshd answers. Every created id is recorded in
 * `CreatedResources` the moment EC2 returns it, so a failure or a signal at any later point can
 * remove exactly what exists, even before EC2's tag search sees it.
 *
 * Calls, in order: CreateKeyPair, CreateSecurityGroup, AuthorizeSecurityGroupIngress,
 * RunInstances (replicas), RunInstances (clients), DescribeInstances (polled by
 * waitUntilInstanceRunning), DescribeInstances (addresses). `dryRunPlan` sends the three create
 * calls with DryRun: true instead.
 */
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  AuthorizeSecurityGroupIngressCommand,
  CreateKeyPairCommand,
  CreateSecurityGroupCommand,
  DescribeInstancesCommand,
  RunInstancesCommand,
  waitUntilInstanceRunning,
  type Instance,
  type IpPermission,
  type RunInstancesCommandInput,
} from '@aws-sdk/client-ec2';
import { ec2Call, type AwsDeps } from './deps.js';
import { AwsStepError, DRY_RUN_OK, InstancesNotRunningError, PermissionDeniedError, translateAwsError } from './errors.js';
import { HARNESS_PORT_RANGE, SSH_PORT } from './options.js';
import { asInstanceType, type RolePlan, type RunPlan } from './plan.js';
import { waitForSsh } from './ssh-probe.js';
import { PROJECT, tagSpecification, type RunIdentity } from './tags.js';

/** One machine of a run, as the ssh backend sees it. */
export interface Host {
  /** What the harness connects to from outside the VPC. */
  readonly publicIp: string;
  /** What replicas and clients use to reach each other (traffic stays inside the zone). */
  readonly privateIp: string;
  readonly instanceId: string;
}

/**
 * The hand-off to the ssh backend: everything it needs to log in to every machine of the run.
 * `replicas[i]` is replica i. Written as `hosts.json` in the run directory too.
 */
export interface ProvisionedHosts {
  readonly runId: string;
  readonly region: string;
  readonly replicas: readonly Host[];
  readonly clients: readonly Host[];
  readonly sshUser: string;
  readonly sshPort: number;
  /** The private key of the run's key pair (mode 0600). */
  readonly privateKeyPath: string;
  /** The only other ports the security group opens; the ssh backend must listen inside it. */
  readonly portRange: { readonly fromPort: number; readonly toPort: number };
  /** The run's expiry (ISO); the instances power off (and so terminate) about then. */
  readonly expiresAt: string;
}

/** Ids of what this process created, recorded as soon as EC2 returns them. */
export class CreatedResources {
  keyName: string | undefined;
  groupId: string | undefined;
  readonly instanceIds: string[] = [];

  get empty(): boolean {
    return this.keyName === undefined && this.groupId === undefined && this.instanceIds.length === 0;
  }
}

export const PRIVATE_KEY_FILE = 'id_ed25519';
export const HOSTS_FILE = 'hosts.json';

export function resourceName(runId: string): string {
  return `${PROJECT}-${runId}`;
}

function identity(plan: RunPlan): RunIdentity {
  return { runId: plan.runId, expiresAt: plan.expiresAt };
}

/**
 * A last line of defence against leaks that needs no harness at all: each instance powers
 * itself off ttlHours after it boots (a minute or two after the expires-at tag, which counts
 * from the plan), and InstanceInitiatedShutdownBehavior=terminate makes that final.
 */
export function ttlUserData(plan: RunPlan): string {
  const minutes = Math.max(1, Math.ceil(plan.ttlHours * 60));
  const script = [
    '#!/bin/sh',
    `# poe-bench run ${plan.runId}: power off (which terminates this instance) ${plan.ttlHours} h after boot, about ${plan.expiresAt}`,
    `shutdown -h +${minutes}`,
    '',
  ].join('\n');
  return Buffer.from(script, 'utf8').toString('base64');
}

/** Harness ports (SSH and the replica/client range) from the run's own group and the caller only. */
export function ingressRules(groupId: string, callerCidr: string): IpPermission[] {
  const ipv6 = callerCidr.includes(':');
  const sources = {
    UserIdGroupPairs: [{ GroupId: groupId, Description: "the run's own instances" }],
    ...(ipv6
      ? { Ipv6Ranges: [{ CidrIpv6: callerCidr, Description: 'the harness (--my-ip)' }] }
      : { IpRanges: [{ CidrIp: callerCidr, Description: 'the harness (--my-ip)' }] }),
  };
  return [
    { IpProtocol: 'tcp', FromPort: SSH_PORT, ToPort: SSH_PORT, ...sources },
    { IpProtocol: 'tcp', FromPort: HARNESS_PORT_RANGE.fromPort, ToPort: HARNESS_PORT_RANGE.toPort, ...sources },
  ];
}

type Role = 'replica' | 'client';

export function runInstancesInput(plan: RunPlan, role: Role, refs: { keyName?: string; groupId?: string; dryRun?: boolean }): RunInstancesCommandInput {
  const rolePlan: RolePlan = role === 'replica' ? plan.replicas : plan.clients;
  const run = identity(plan);
  return {
    ImageId: rolePlan.imageId,
    InstanceType: asInstanceType(rolePlan.instanceType),
    MinCount: rolePlan.count,
    MaxCount: rolePlan.count,
    KeyName: refs.keyName,
    NetworkInterfaces: [
      {
        DeviceIndex: 0,
        SubnetId: plan.subnetId,
        AssociatePublicIpAddress: true,
        DeleteOnTermination: true,
        Groups: refs.groupId === undefined ? undefined : [refs.groupId],
      },
    ],
    InstanceInitiatedShutdownBehavior: 'terminate',
    UserData: ttlUserData(plan),
    MetadataOptions: { HttpTokens: 'required', HttpEndpoint: 'enabled' },
    TagSpecifications: [tagSpecification('instance', run, role), tagSpecification('volume', run, role), tagSpecification('network-interface', run, role)],
    // Idempotency: a retried RunInstances (the SDK retries on throttling and timeouts) never
    // launches a second set.
    ClientToken: refs.dryRun === true ? undefined : `${plan.runId}-${role}`,
    DryRun: refs.dryRun === true ? true : undefined,
  };
}

export async function createRun(plan: RunPlan, deps: AwsDeps, created: CreatedResources, signal: AbortSignal): Promise<ProvisionedHosts> {
  const { region } = plan;
  const run = identity(plan);
  const name = resourceName(plan.runId);
  const { ec2 } = deps;

  await mkdir(plan.runDir, { recursive: true, mode: 0o700 });
  signal.throwIfAborted();

  deps.log(`creating key pair ${name}`);
  const key = await ec2Call('CreateKeyPair', region, () =>
    ec2.send(new CreateKeyPairCommand({ KeyName: name, KeyType: 'ed25519', TagSpecifications: [tagSpecification('key-pair', run, 'shared')] })),
  );
  created.keyName = key.KeyName ?? name;
  if (key.KeyMaterial === undefined) throw new AwsStepError('CreateKeyPair', 'NoKeyMaterial', 'EC2 returned no private key');
  const privateKeyPath = join(plan.runDir, PRIVATE_KEY_FILE);
  await writeFile(privateKeyPath, key.KeyMaterial.endsWith('\n') ? key.KeyMaterial : `${key.KeyMaterial}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(privateKeyPath, 0o600); // the mode above is masked by the umask
  signal.throwIfAborted();

  deps.log(`creating security group ${name} in ${plan.vpcId}`);
  const group = await ec2Call('CreateSecurityGroup', region, () =>
    ec2.send(
      new CreateSecurityGroupCommand({
        GroupName: name,
        Description: `poe-bench run ${plan.runId}: SSH and harness ports, only within the run and from the harness`,
        VpcId: plan.vpcId,
        TagSpecifications: [tagSpecification('security-group', run, 'shared')],
      }),
    ),
  );
  if (group.GroupId === undefined) throw new AwsStepError('CreateSecurityGroup', 'NoGroupId', 'EC2 returned no group id');
  const groupId = group.GroupId;
  created.groupId = groupId;
  signal.throwIfAborted();

  await ec2Call('AuthorizeSecurityGroupIngress', region, () =>
    ec2.send(
      new AuthorizeSecurityGroupIngressCommand({
        GroupId: groupId,
        IpPermissions: ingressRules(groupId, plan.callerCidr),
        TagSpecifications: [tagSpecification('security-group-rule', run, 'shared')],
      }),
    ),
  );
  signal.throwIfAborted();

  const launched: Record<Role, string[]> = { replica: [], client: [] };
  for (const role of ['replica', 'client'] as const) {
    const rolePlan = role === 'replica' ? plan.replicas : plan.clients;
    deps.log(`launching ${rolePlan.count} x ${rolePlan.instanceType} (${role}) in ${plan.availabilityZone}`);
    const out = await ec2Call('RunInstances', region, () =>
      ec2.send(new RunInstancesCommand(runInstancesInput(plan, role, { keyName: created.keyName, groupId }))),
    );
    const ids = (out.Instances ?? []).map((i) => i.InstanceId).filter((id): id is string => id !== undefined);
    created.instanceIds.push(...ids);
    launched[role] = ids;
    if (ids.length !== rolePlan.count) throw new InstancesNotRunningError(`RunInstances launched ${ids.length} of ${rolePlan.count} ${role} instances`);
    signal.throwIfAborted();
  }

  const all = [...launched.replica, ...launched.client];
  await waitRunning(all, plan, deps, signal);
  const byId = await describeAddresses(all, plan, deps);
  const hosts = (ids: readonly string[]): Host[] => ids.map((id) => byId.get(id)).filter((h): h is Host => h !== undefined);
  const provisioned: ProvisionedHosts = {
    runId: plan.runId,
    region,
    replicas: hosts(launched.replica),
    clients: hosts(launched.client),
    sshUser: plan.sshUser,
    sshPort: SSH_PORT,
    privateKeyPath,
    portRange: { fromPort: HARNESS_PORT_RANGE.fromPort, toPort: HARNESS_PORT_RANGE.toPort },
    expiresAt: plan.expiresAt,
  };

  deps.log(`waiting until sshd answers on ${all.length} hosts`);
  await waitForSsh(
    [...provisioned.replicas, ...provisioned.clients].map((h) => h.publicIp),
    SSH_PORT,
    deps.timing.ssh,
    deps,
    signal,
  );
  await writeFile(join(plan.runDir, HOSTS_FILE), `${JSON.stringify(provisioned, null, 2)}\n`, { mode: 0o600 });
  return provisioned;
}

async function waitRunning(ids: readonly string[], plan: RunPlan, deps: AwsDeps, signal: AbortSignal): Promise<void> {
  deps.log(`waiting until ${ids.length} instances run`);
  const { timing } = deps;
  try {
    await waitUntilInstanceRunning(
      {
        client: deps.ec2,
        minDelay: timing.waiterMinDelaySeconds,
        maxDelay: timing.waiterMaxDelaySeconds,
        maxWaitTime: timing.runningMaxWaitSeconds,
        abortSignal: signal,
      },
      { InstanceIds: [...ids] },
    );
  } catch (err) {
    signal.throwIfAborted();
    const name = err instanceof Error ? err.name : 'Error';
    const why =
      name === 'TimeoutError'
        ? `not all running after ${timing.runningMaxWaitSeconds} s`
        : 'an instance stopped or terminated while starting (capacity, quota or image problem?)';
    throw new InstancesNotRunningError(`instances of run ${plan.runId} did not start: ${why}`, { cause: err });
  }
  signal.throwIfAborted();
}

async function describeAddresses(ids: readonly string[], plan: RunPlan, deps: AwsDeps): Promise<Map<string, Host>> {
  const out = await ec2Call('DescribeInstances', plan.region, () => deps.ec2.send(new DescribeInstancesCommand({ InstanceIds: [...ids] })));
  const instances: Instance[] = (out.Reservations ?? []).flatMap((r) => r.Instances ?? []);
  const byId = new Map<string, Host>();
  for (const i of instances) {
    if (i.InstanceId === undefined) continue;
    if (i.PublicIpAddress === undefined || i.PrivateIpAddress === undefined) {
      throw new InstancesNotRunningError(`instance ${i.InstanceId} has no public address: its subnet (${plan.subnetId}) does not assign one`);
    }
    byId.set(i.InstanceId, { publicIp: i.PublicIpAddress, privateIp: i.PrivateIpAddress, instanceId: i.InstanceId });
  }
  const missing = ids.filter((id) => !byId.has(id));
  if (missing.length > 0) throw new InstancesNotRunningError(`DescribeInstances did not return ${missing.join(', ')}`);
  return byId;
}

/** What one DryRun call said: `ok` when EC2 answered DryRunOperation (it would have worked). */
export interface DryRunCheck {
  readonly step: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface DryRunReport {
  readonly plan: RunPlan;
  readonly checks: readonly DryRunCheck[];
  readonly ok: boolean;
}

/**
 * Sends each create call with DryRun: true: EC2 checks permissions and parameters and answers
 * DryRunOperation instead of creating. The ingress rule is not checked (it needs a real group),
 * and RunInstances goes without key and group (they do not exist) in the VPC's default group.
 */
export async function dryRunPlan(plan: RunPlan, deps: AwsDeps): Promise<DryRunReport> {
  const run = identity(plan);
  const name = resourceName(plan.runId);
  const probes: { step: string; label: string; send: () => Promise<unknown> }[] = [
    {
      step: 'CreateKeyPair',
      label: `key pair ${name}`,
      send: () =>
        deps.ec2.send(
          new CreateKeyPairCommand({ KeyName: name, KeyType: 'ed25519', TagSpecifications: [tagSpecification('key-pair', run, 'shared')], DryRun: true }),
        ),
    },
    {
      step: 'CreateSecurityGroup',
      label: `security group ${name} in ${plan.vpcId}`,
      send: () =>
        deps.ec2.send(
          new CreateSecurityGroupCommand({
            GroupName: name,
            Description: `poe-bench run ${plan.runId}`,
            VpcId: plan.vpcId,
            TagSpecifications: [tagSpecification('security-group', run, 'shared')],
            DryRun: true,
          }),
        ),
    },
    ...(['replica', 'client'] as const).map((role) => {
      const rolePlan = role === 'replica' ? plan.replicas : plan.clients;
      return {
        step: 'RunInstances',
        label: `${rolePlan.count} x ${rolePlan.instanceType} ${role} (${rolePlan.imageId}) in ${plan.subnetId}`,
        send: () => deps.ec2.send(new RunInstancesCommand(runInstancesInput(plan, role, { dryRun: true }))),
      };
    }),
  ];
  const checks: DryRunCheck[] = [];
  for (const probe of probes) {
    try {
      await probe.send();
      checks.push({ step: probe.step, ok: false, detail: `${probe.label}: EC2 ignored DryRun (unexpected; check the resources with \`status\`)` });
    } catch (err) {
      if (err instanceof Error && err.name === DRY_RUN_OK) {
        checks.push({ step: probe.step, ok: true, detail: `${probe.label}: would succeed` });
        continue;
      }
      const translated = translateAwsError(err, probe.step, plan.region);
      // Missing credentials or an unreachable region fail every call alike: stop at the first.
      if (!(translated instanceof AwsStepError || translated instanceof PermissionDeniedError)) throw translated;
      checks.push({ step: probe.step, ok: false, detail: `${probe.label}: would fail: ${translated.message}` });
    }
  }
  checks.push({
    step: 'AuthorizeSecurityGroupIngress',
    ok: true,
    detail: `ingress tcp ${SSH_PORT} and ${HARNESS_PORT_RANGE.fromPort}-${HARNESS_PORT_RANGE.toPort} from the group and ${plan.callerCidr}: not checked (needs the real group)`,
  });
  return { plan, checks, ok: checks.every((c) => c.ok) };
}
