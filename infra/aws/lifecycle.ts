/**
 * The provisioned section: from the first create call until the run is torn down (or handed
 * over, for `up`), SIGINT and SIGTERM tear the run down instead of killing the process, and any
 * failure tears down whatever was created so far. `withAwsHosts` is the whole life of a run for
 * a caller that needs machines for one job (`figure 10 --backend aws`): plan, ask, create, run
 * the job, always tear down.
 */
import { createRun, CreatedResources, dryRunPlan, type DryRunReport, type ProvisionedHosts } from './create.js';
import { defaultAwsDeps, type AwsDeps } from './deps.js';
import { ConfirmationRequiredError, InterruptedError, InvalidAwsOptionsError, NotConfirmedError, TeardownError } from './errors.js';
import { parseUpOptions, type AwsDownOptions, type AwsEnv, type AwsStatusOptions, type AwsUpOptions } from './options.js';
import { planRun, type RunPlan } from './plan.js';
import { formatCostEstimate } from './pricing.js';
import { inventory, teardown, type RunInventory, type TeardownReport } from './teardown.js';

export const TEARDOWN_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];

/** `always`: the run ends with the section (withAwsHosts). `on-failure`: it outlives success (`up`). */
export type TeardownPolicy = 'always' | 'on-failure';

/** Rejects with the signal's reason when it aborts; the promise itself is left to settle alone. */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => undefined); // a job that fails after the abort has nobody left to tell
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/**
 * Creates the run, runs `body` with its hosts, and tears the run down per `policy` and on any
 * failure or signal. Signal listeners are installed for exactly this section, teardown included
 * (a second Ctrl-C must not cut a teardown short), and removed afterwards.
 */
export async function provisionedSection<T>(
  plan: RunPlan,
  deps: AwsDeps,
  policy: TeardownPolicy,
  body: (hosts: ProvisionedHosts, signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  const listeners = TEARDOWN_SIGNALS.map((sig) => {
    const listener = (): void => {
      if (controller.signal.aborted) {
        deps.log(`${sig} again: still tearing down run ${plan.runId}; if you quit now, run \`poe-bench infra aws down --run ${plan.runId}\``);
        return;
      }
      deps.log(`${sig}: tearing down run ${plan.runId}`);
      controller.abort(new InterruptedError(sig));
    };
    deps.signals.on(sig, listener);
    return [sig, listener] as const;
  });

  const created = new CreatedResources();
  let outcome: Outcome<T>;
  try {
    // createRun checks the signal between steps and never abandons a create call in flight,
    // so every id it was given is in `created` when it stops.
    const hosts = await createRun(plan, deps, created, controller.signal);
    const value = await untilAborted(body(hosts, controller.signal), controller.signal);
    outcome = { ok: true, value };
  } catch (error) {
    outcome = { ok: false, error: controller.signal.aborted ? controller.signal.reason : error };
  }

  try {
    if (policy === 'always' || !outcome.ok) {
      deps.log(`tearing down run ${plan.runId}`);
      try {
        await teardown(deps, plan.region, { runIds: [plan.runId], known: created, stateDir: plan.stateDir });
      } catch (err) {
        const failures = err instanceof TeardownError ? err.failures : [(err as Error).message];
        throw new TeardownError([plan.runId], failures, outcome.ok ? err : outcome.error);
      }
    }
  } finally {
    for (const [sig, listener] of listeners) deps.signals.off(sig, listener);
  }
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

export function describePlan(plan: RunPlan): string[] {
  return [
    `run ${plan.runId} in ${plan.region} (${plan.availabilityZone}, ${plan.subnetId} of ${plan.vpcId})`,
    `  replicas: ${plan.replicas.count} x ${plan.replicas.instanceType} (${plan.replicas.imageId})`,
    `  clients:  ${plan.clients.count} x ${plan.clients.instanceType} (${plan.clients.imageId})`,
    `  SSH and harness ports open to the run's own instances and ${plan.callerCidr}`,
    `  every resource tagged Project=poe-bench, poe-bench:run-id=${plan.runId}, poe-bench:expires-at=${plan.expiresAt}`,
    `  instances power off (and terminate) ${plan.ttlHours} h after boot, about ${plan.expiresAt}`,
    'cost estimate:',
    ...formatCostEstimate(plan.estimate),
  ];
}

/** `--yes`, or a yes from the user; refuses without a terminal to ask on. */
export async function confirmPlan(plan: RunPlan, options: Pick<AwsUpOptions, 'yes'>, deps: AwsDeps): Promise<void> {
  if (options.yes) return;
  const total = plan.replicas.count + plan.clients.count;
  if (deps.confirm === undefined) throw new ConfirmationRequiredError(`creating ${total} EC2 instances`);
  if (!(await deps.confirm(`Create ${total} EC2 instances for run ${plan.runId}? [y/N] `))) throw new NotConfirmedError();
}

/**
 * Provisions machines, runs `fn` with them, and always tears them down: when `fn` returns or
 * throws, when a step of provisioning fails, and on SIGINT/SIGTERM (then InterruptedError).
 * `fn` receives a signal that aborts on SIGINT/SIGTERM so it can stop early.
 */
export async function withAwsHosts<T>(
  input: unknown,
  fn: (hosts: ProvisionedHosts, signal: AbortSignal) => Promise<T>,
  overrides: Partial<AwsDeps> = {},
  env: AwsEnv = process.env,
): Promise<T> {
  const options = parseUpOptions(input, env);
  if (options.dryRun) throw new InvalidAwsOptionsError('--dry-run: withAwsHosts needs real machines; use `poe-bench infra aws up --dry-run`');
  const deps = defaultAwsDeps(options.region, overrides);
  const plan = await planRun(options, deps);
  for (const line of describePlan(plan)) deps.log(line);
  await confirmPlan(plan, options, deps);
  return provisionedSection(plan, deps, 'always', fn);
}

export type UpResult =
  | { readonly kind: 'dry-run'; readonly report: DryRunReport }
  | { readonly kind: 'up'; readonly plan: RunPlan; readonly hosts: ProvisionedHosts };

/**
 * `infra aws up`: plan, print, ask, create, and leave the run up for the ssh backend (it
 * still powers off at its TTL); a failure or signal on the way tears down what was created.
 */
export async function awsUp(options: AwsUpOptions, deps: AwsDeps): Promise<UpResult> {
  const plan = await planRun(options, deps);
  for (const line of describePlan(plan)) deps.log(line);
  if (options.dryRun) return { kind: 'dry-run', report: await dryRunPlan(plan, deps) };
  await confirmPlan(plan, options, deps);
  const hosts = await provisionedSection(plan, deps, 'on-failure', async (h) => h);
  return { kind: 'up', plan, hosts };
}

function ageText(fromIso: string | undefined, nowMs: number): string {
  if (fromIso === undefined) return '?';
  const minutes = Math.max(0, Math.floor((nowMs - Date.parse(fromIso)) / 60_000));
  return minutes < 120 ? `${minutes} min` : `${(minutes / 60).toFixed(1)} h`;
}

/** `infra aws status`: one block per run with its instances, age and expiry. */
export function formatInventory(runs: readonly RunInventory[], region: string, nowMs: number): string[] {
  if (runs.length === 0) return [`no poe-bench resources in ${region}`];
  const out: string[] = [];
  for (const run of runs) {
    const expiry = run.expiresAt === undefined ? 'no expiry tag' : `expires ${run.expiresAt}`;
    out.push(`${run.runId}  age ${ageText(run.createdAt, nowMs)}  ${expiry}${run.expired ? '  EXPIRED' : ''}`);
    for (const i of run.instances) {
      out.push(`  ${i.instanceId}  ${i.role.padEnd(7)}  ${i.instanceType.padEnd(11)}  ${i.state.padEnd(13)}  ${i.publicIp ?? '-'}`);
    }
    if (run.groupIds.length > 0) out.push(`  security group ${run.groupIds.join(' ')}`);
    if (run.keyNames.length > 0) out.push(`  key pair ${run.keyNames.join(' ')}`);
  }
  const expired = runs.filter((r) => r.expired).length;
  if (expired > 0) out.push(`${expired} expired run(s): remove with \`poe-bench infra aws down --expired --region ${region}\``);
  return out;
}

export async function awsStatus(options: AwsStatusOptions, deps: AwsDeps): Promise<string[]> {
  return formatInventory(await inventory(deps, options.region), options.region, deps.nowMs());
}

export interface DownResult {
  readonly lines: readonly string[];
  readonly report: TeardownReport | undefined;
}

/**
 * `infra aws down`: one run (`--run`), the expired ones (`--expired`), or every poe-bench run
 * in the region. The last two list what they found (expired runs marked) and ask first.
 */
export async function awsDown(options: AwsDownOptions, deps: AwsDeps): Promise<DownResult> {
  const { region, stateDir } = options;
  if (options.runId !== undefined) {
    const report = await teardown(deps, region, { runIds: [options.runId], stateDir });
    return { lines: [summarizeTeardown(report, `run ${options.runId}`)], report };
  }
  const runs = await inventory(deps, region);
  const targets = options.expiredOnly ? runs.filter((r) => r.expired) : runs;
  const lines = formatInventory(runs, region, deps.nowMs());
  if (targets.length === 0) return { lines: [...lines, options.expiredOnly ? 'no expired runs: nothing to do' : 'nothing to do'], report: undefined };
  for (const line of lines) deps.log(line);
  const what = `removing ${targets.length} run(s) (${targets.map((r) => r.runId).join(', ')})`;
  if (!options.yes) {
    if (deps.confirm === undefined) throw new ConfirmationRequiredError(what);
    if (!(await deps.confirm(`${what[0]?.toUpperCase()}${what.slice(1)}? [y/N] `))) throw new NotConfirmedError('not confirmed: nothing was removed');
  }
  // Every run of the project (runIds undefined) also catches resources whose run-id tag is
  // missing; --expired names the runs, so a run started meanwhile is never touched.
  const report = await teardown(deps, region, { runIds: options.expiredOnly ? targets.map((r) => r.runId) : undefined, stateDir });
  return { lines: [summarizeTeardown(report, `${targets.length} run(s)`)], report };
}

export function summarizeTeardown(report: TeardownReport, what: string): string {
  const parts = [
    `${report.terminatedInstanceIds.length} instance(s) terminated`,
    `${report.deletedGroupIds.length} security group(s) deleted`,
    `${report.deletedKeyNames.length} key pair(s) deleted`,
  ];
  return `${what}: ${parts.join(', ')}`;
}
