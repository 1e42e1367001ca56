/**
 * The aws backend's public face: provision EC2 machines for a run, hand them to the ssh backend
 * as `ProvisionedHosts`, and always remove them. Everything a run creates carries the tags in
 * tags.ts, so `down` finds leftovers from any crashed or interrupted harness.
 */
export { CreatedResources, HOSTS_FILE, PRIVATE_KEY_FILE, type Host, type ProvisionedHosts, type DryRunReport } from './create.js';
export { defaultAwsDeps, DEFAULT_TIMING, type AwsDeps, type AwsTiming, type SignalSource } from './deps.js';
export * from './errors.js';
export { awsDown, awsStatus, awsUp, provisionedSection, withAwsHosts, type DownResult, type UpResult } from './lifecycle.js';
export {
  HARNESS_PORT_RANGE,
  SSH_PORT,
  parseDownOptions,
  parseStatusOptions,
  parseUpOptions,
  type AwsDownOptions,
  type AwsStatusOptions,
  type AwsUpInput,
  type AwsUpOptions,
} from './options.js';
export { planRun, type RunPlan } from './plan.js';
export { estimateCost, formatCostEstimate, ON_DEMAND_USD_PER_HOUR, PRICES_AS_OF } from './pricing.js';
export { probeSshBanner, type SshProbe } from './ssh-probe.js';
export { inventory, teardown, type RunInventory, type TeardownReport } from './teardown.js';
