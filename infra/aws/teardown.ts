/**
 * Finding runs by their tags, and removing them. Teardown is idempotent: it describes what still
 * exists (by tag, plus any ids this process just created and the tag search may not show yet),
 * terminates the instances, waits until they are gone, then deletes the security group (which
 * EC2 refuses while an instance still uses it) and the key pair.
 *
 * Calls, in order: DescribeInstances (tags, live states), TerminateInstances and
 * DescribeInstances polled by waitUntilInstanceTerminated (when there are instances),
 * DescribeSecurityGroups, DeleteSecurityGroup (each), DescribeKeyPairs, DeleteKeyPair (each).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  DeleteKeyPairCommand,
  DeleteSecurityGroupCommand,
  DescribeInstancesCommand,
  DescribeKeyPairsCommand,
  DescribeSecurityGroupsCommand,
  TerminateInstancesCommand,
  waitUntilInstanceTerminated,
  type Instance,
  type KeyPairInfo,
  type SecurityGroup,
} from '@aws-sdk/client-ec2';
import type { CreatedResources } from './create.js';
import { ec2Call, type AwsDeps } from './deps.js';
import { AwsStepError, TeardownError } from './errors.js';
import { RUN_ID_PATTERN } from './options.js';
import { LIVE_INSTANCE_STATES, projectFilters, TAG_EXPIRES_AT, TAG_ROLE, TAG_RUN_ID, tagValue } from './tags.js';

export interface InstanceSummary {
  readonly instanceId: string;
  readonly role: string;
  readonly state: string;
  readonly instanceType: string;
  readonly publicIp: string | undefined;
  readonly launchedAt: string | undefined;
}

/** One run as its tags describe it. */
export interface RunInventory {
  readonly runId: string;
  readonly expiresAt: string | undefined;
  readonly expired: boolean;
  /** Earliest launch or key creation time seen, ISO. */
  readonly createdAt: string | undefined;
  readonly instances: readonly InstanceSummary[];
  readonly groupIds: readonly string[];
  readonly keyNames: readonly string[];
}

interface Found {
  readonly instances: Instance[];
  readonly groups: SecurityGroup[];
  readonly keys: KeyPairInfo[];
}

async function liveInstances(deps: AwsDeps, region: string, runIds?: readonly string[]): Promise<Instance[]> {
  const instances: Instance[] = [];
  let nextToken: string | undefined;
  do {
    const out = await ec2Call('DescribeInstances', region, () =>
      deps.ec2.send(
        new DescribeInstancesCommand({
          Filters: [...projectFilters(runIds), { Name: 'instance-state-name', Values: LIVE_INSTANCE_STATES }],
          NextToken: nextToken,
        }),
      ),
    );
    instances.push(...(out.Reservations ?? []).flatMap((r) => r.Instances ?? []));
    nextToken = out.NextToken;
  } while (nextToken);
  return instances;
}

async function taggedGroups(deps: AwsDeps, region: string, runIds?: readonly string[]): Promise<SecurityGroup[]> {
  const groups: SecurityGroup[] = [];
  let nextToken: string | undefined;
  do {
    const out = await ec2Call('DescribeSecurityGroups', region, () =>
      deps.ec2.send(new DescribeSecurityGroupsCommand({ Filters: projectFilters(runIds), NextToken: nextToken })),
    );
    groups.push(...(out.SecurityGroups ?? []));
    nextToken = out.NextToken;
  } while (nextToken);
  return groups;
}

async function taggedKeys(deps: AwsDeps, region: string, runIds?: readonly string[]): Promise<KeyPairInfo[]> {
  const out = await ec2Call('DescribeKeyPairs', region, () => deps.ec2.send(new DescribeKeyPairsCommand({ Filters: projectFilters(runIds) })));
  return out.KeyPairs ?? [];
}

async function findAll(deps: AwsDeps, region: string, runIds?: readonly string[]): Promise<Found> {
  return {
    instances: await liveInstances(deps, region, runIds),
    groups: await taggedGroups(deps, region, runIds),
    keys: await taggedKeys(deps, region, runIds),
  };
}

function isoOf(d: Date | undefined): string | undefined {
  return d === undefined ? undefined : d.toISOString();
}

/** Every poe-bench run in the region (or the given ones), grouped by run id, oldest first. */
export async function inventory(deps: AwsDeps, region: string, runIds?: readonly string[]): Promise<RunInventory[]> {
  const found = await findAll(deps, region, runIds);
  const nowMs = deps.nowMs();
  interface Acc {
    expiresAt: string | undefined;
    created: string[];
    instances: InstanceSummary[];
    groupIds: string[];
    keyNames: string[];
  }
  const runs = new Map<string, Acc>();
  const acc = (runId: string, expiresAt: string | undefined): Acc => {
    let a = runs.get(runId);
    if (a === undefined) {
      a = { expiresAt: undefined, created: [], instances: [], groupIds: [], keyNames: [] };
      runs.set(runId, a);
    }
    a.expiresAt ??= expiresAt;
    return a;
  };
  for (const i of found.instances) {
    const a = acc(tagValue(i.Tags, TAG_RUN_ID) ?? '(untagged run)', tagValue(i.Tags, TAG_EXPIRES_AT));
    const launchedAt = isoOf(i.LaunchTime);
    if (launchedAt !== undefined) a.created.push(launchedAt);
    a.instances.push({
      instanceId: i.InstanceId ?? '?',
      role: tagValue(i.Tags, TAG_ROLE) ?? '?',
      state: i.State?.Name ?? '?',
      instanceType: i.InstanceType ?? '?',
      publicIp: i.PublicIpAddress,
      launchedAt,
    });
  }
  for (const g of found.groups) {
    if (g.GroupId !== undefined) acc(tagValue(g.Tags, TAG_RUN_ID) ?? '(untagged run)', tagValue(g.Tags, TAG_EXPIRES_AT)).groupIds.push(g.GroupId);
  }
  for (const k of found.keys) {
    const a = acc(tagValue(k.Tags, TAG_RUN_ID) ?? '(untagged run)', tagValue(k.Tags, TAG_EXPIRES_AT));
    if (k.KeyName !== undefined) a.keyNames.push(k.KeyName);
    const createdAt = isoOf(k.CreateTime);
    if (createdAt !== undefined) a.created.push(createdAt);
  }
  return [...runs.entries()]
    .map(([runId, a]) => {
      const expiresMs = a.expiresAt === undefined ? Number.NaN : Date.parse(a.expiresAt);
      return {
        runId,
        expiresAt: a.expiresAt,
        // A run whose expiry cannot be read counts as expired: nothing vouches for it.
        expired: Number.isNaN(expiresMs) || expiresMs <= nowMs,
        createdAt: [...a.created].sort()[0],
        instances: a.instances,
        groupIds: a.groupIds,
        keyNames: a.keyNames,
      };
    })
    .sort((x, y) => x.runId.localeCompare(y.runId));
}

/** Which runs to remove: all of the project's (`runIds` undefined) or the given ones. */
export interface TeardownSelector {
  readonly runIds?: readonly string[];
  /** Ids this process created, which EC2's tag search may not show yet (eventual consistency). */
  readonly known?: CreatedResources;
  /** Run directories under this are removed once their run is gone. */
  readonly stateDir?: string;
}

export interface TeardownReport {
  readonly terminatedInstanceIds: readonly string[];
  readonly deletedGroupIds: readonly string[];
  readonly deletedKeyNames: readonly string[];
  readonly runIds: readonly string[];
}

function union(a: readonly string[], b: readonly (string | undefined)[]): string[] {
  return [...new Set([...a, ...b.filter((x): x is string => x !== undefined)])];
}

/** Retries `attempt` while EC2 answers with one of `transient` codes, for consistency delays. */
async function retrying<T>(deps: AwsDeps, transient: readonly string[], attempt: () => Promise<T>): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof AwsStepError && transient.includes(err.code)) || tries >= deps.timing.retryAttempts) throw err;
      await deps.sleepMs(deps.timing.retryDelayMs);
    }
  }
}

/**
 * Removes the selected runs. Tries every resource even when one fails, then throws
 * TeardownError naming what is left (and how to retry) if anything failed.
 */
export async function teardown(deps: AwsDeps, region: string, selector: TeardownSelector): Promise<TeardownReport> {
  const { ec2 } = deps;
  const failures: string[] = [];
  const runIds = new Set<string>(selector.runIds ?? []);
  const note = (tags: readonly { Key?: string; Value?: string }[] | undefined): void => {
    const id = tagValue(tags, TAG_RUN_ID);
    if (id !== undefined) runIds.add(id);
  };

  const found = await liveInstances(deps, region, selector.runIds);
  found.forEach((i) => note(i.Tags));
  const instanceIds = union(
    found.map((i) => i.InstanceId ?? ''),
    selector.known?.instanceIds ?? [],
  ).filter((id) => id !== '');
  let instancesGone = true;
  if (instanceIds.length > 0) {
    try {
      deps.log(`terminating ${instanceIds.length} instances: ${instanceIds.join(' ')}`);
      await retrying(deps, ['InvalidInstanceID.NotFound'], () =>
        ec2Call('TerminateInstances', region, () => ec2.send(new TerminateInstancesCommand({ InstanceIds: instanceIds }))),
      );
      await waitUntilInstanceTerminated(
        {
          client: ec2,
          minDelay: deps.timing.waiterMinDelaySeconds,
          maxDelay: deps.timing.waiterMaxDelaySeconds,
          maxWaitTime: deps.timing.terminatedMaxWaitSeconds,
        },
        { InstanceIds: instanceIds },
      );
    } catch (err) {
      instancesGone = false;
      // The waiter's own errors carry a JSON dump of every response; say it in a sentence.
      const why =
        err instanceof Error && err.name === 'TimeoutError'
          ? `still not terminated after ${deps.timing.terminatedMaxWaitSeconds} s`
          : err instanceof Error && err.name !== 'Error'
            ? err.message
            : 'an instance reported pending or stopping instead of shutting down';
      failures.push(`instances ${instanceIds.join(' ')} not confirmed terminated: ${why}`);
    }
  }

  const groups = await taggedGroups(deps, region, selector.runIds);
  groups.forEach((g) => note(g.Tags));
  const groupIds = union(
    groups.map((g) => g.GroupId ?? ''),
    [selector.known?.groupId],
  ).filter((id) => id !== '');
  const deletedGroupIds: string[] = [];
  for (const groupId of groupIds) {
    if (!instancesGone) {
      failures.push(`security group ${groupId} kept: its instances may still use it`);
      continue;
    }
    try {
      // Network interfaces of just-terminated instances detach a little after the instance is
      // reported terminated; until then EC2 answers DependencyViolation.
      await retrying(deps, ['DependencyViolation'], () =>
        ec2Call('DeleteSecurityGroup', region, () => ec2.send(new DeleteSecurityGroupCommand({ GroupId: groupId }))),
      );
      deletedGroupIds.push(groupId);
    } catch (err) {
      if (err instanceof AwsStepError && err.code === 'InvalidGroup.NotFound') continue;
      failures.push(`security group ${groupId}: ${(err as Error).message}`);
    }
  }

  const keys = await taggedKeys(deps, region, selector.runIds);
  keys.forEach((k) => note(k.Tags));
  const keyNames = union(
    keys.map((k) => k.KeyName ?? ''),
    [selector.known?.keyName],
  ).filter((n) => n !== '');
  const deletedKeyNames: string[] = [];
  for (const keyName of keyNames) {
    try {
      await ec2Call('DeleteKeyPair', region, () => ec2.send(new DeleteKeyPairCommand({ KeyName: keyName })));
      deletedKeyNames.push(keyName);
    } catch (err) {
      failures.push(`key pair ${keyName}: ${(err as Error).message}`);
    }
  }

  const ids = [...runIds].sort();
  if (failures.length > 0) throw new TeardownError(ids, failures);
  if (selector.stateDir !== undefined) {
    const stateDir = selector.stateDir;
    // Only names that are run ids: a tag is data from the account, never a path to trust.
    await Promise.all(ids.filter((id) => RUN_ID_PATTERN.test(id)).map((id) => rm(join(stateDir, id), { recursive: true, force: true })));
  }
  return { terminatedInstanceIds: instanceIds, deletedGroupIds, deletedKeyNames, runIds: ids };
}
