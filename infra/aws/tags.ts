/**
 * The tags every resource of a run carries, and the filters that find them again. Tags are the
 * only record `down` needs: a crashed harness, another machine or another user of the account
 * can find and remove a run's instances, security group and key pair from them alone.
 */
import type { Filter, ResourceType, Tag, TagSpecification } from '@aws-sdk/client-ec2';

export const TAG_PROJECT = 'Project';
export const PROJECT = 'poe-bench';
export const TAG_RUN_ID = 'poe-bench:run-id';
/** ISO 8601 time after which the run is stale: `status` reports it, `down --expired` removes it. */
export const TAG_EXPIRES_AT = 'poe-bench:expires-at';
/** `replica`, `client`, or `shared` for the key pair and security group the whole run uses. */
export const TAG_ROLE = 'poe-bench:role';
export const TAG_NAME = 'Name';

export type ResourceRole = 'replica' | 'client' | 'shared';

export interface RunIdentity {
  readonly runId: string;
  readonly expiresAt: string;
}

export function runTags(run: RunIdentity, role: ResourceRole): Tag[] {
  return [
    { Key: TAG_PROJECT, Value: PROJECT },
    { Key: TAG_RUN_ID, Value: run.runId },
    { Key: TAG_EXPIRES_AT, Value: run.expiresAt },
    { Key: TAG_ROLE, Value: role },
    { Key: TAG_NAME, Value: `${PROJECT}-${run.runId}-${role}` },
  ];
}

export function tagSpecification(resourceType: ResourceType, run: RunIdentity, role: ResourceRole): TagSpecification {
  return { ResourceType: resourceType, Tags: runTags(run, role) };
}

/** Filters for every resource of the project, or of the given runs only. */
export function projectFilters(runIds?: readonly string[]): Filter[] {
  const filters: Filter[] = [{ Name: `tag:${TAG_PROJECT}`, Values: [PROJECT] }];
  if (runIds !== undefined) filters.push({ Name: `tag:${TAG_RUN_ID}`, Values: [...runIds] });
  return filters;
}

/** Every state but `terminated`: terminated instances are gone and need nothing more. */
export const LIVE_INSTANCE_STATES = ['pending', 'running', 'shutting-down', 'stopping', 'stopped'];

export function tagValue(tags: readonly Tag[] | undefined, key: string): string | undefined {
  return tags?.find((t) => t.Key === key)?.Value;
}
