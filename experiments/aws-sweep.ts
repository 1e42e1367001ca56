/**
 * The AWS lifecycle of `poe-bench figure --backend aws` (issue 9, item 5): one set of EC2
 * machines for the whole sweep. Plans the machines (as many replica machines as the largest
 * point still to run has replicas, plus the client machines) and the hours the cost estimate
 * and the TTL use, answers --dry-run with EC2's DryRun verdicts, provisions the machines with
 * infra/aws's withAwsHosts, runs the sweep on them over the ssh backend (the n replicas of a
 * point on the first n replica machines), and leaves their teardown to withAwsHosts when the
 * sweep ends, fails or is interrupted.
 *
 * It lives in experiments/ because it needs the sweep's types and predicted run times; the
 * command (harness/figure-command.ts) hands it the sweep to run and the terminal to talk to.
 */
import { join } from 'node:path';
import {
  awsUp,
  AwsBackendError,
  defaultAwsDeps,
  HOSTS_FILE,
  InterruptedError,
  parseUpOptions,
  withAwsHosts,
  type AwsDeps,
  type AwsUpOptions,
  type ProvisionedHosts,
  type SignalSource,
} from '../infra/aws/index.js';
import { DEFAULT_TTL_HOURS, MAX_TTL_HOURS, type AwsEnv } from '../infra/aws/options.js';
import { sshLauncher, type Launcher } from '../infra/run/launch.js';
import { hostsFromProvisioned, type SshHosts } from '../infra/ssh/hosts.js';
import { formatDuration, predictedRunSec, SweepConfigError, type SweepConfig, type SweepOutcome, type SweepRun } from './sweep.js';

/** Launching the machines, waiting for sshd, and terminating them: added to the predicted run time. */
export const AWS_SETUP_SEC = 600;

/** The paper's client machines (§5, line 411: "10 4-core machines"): the aws default. */
export const AWS_CLIENT_MACHINES = 10;

/** The provisioning flags of `poe-bench infra aws up` that `figure --backend aws` passes on as they are. */
export interface AwsSweepFlags {
  readonly region?: string;
  readonly instanceType?: string;
  readonly clientType?: string;
  readonly os?: string;
  readonly ami?: string;
  readonly sshUser?: string;
  readonly vpc?: string;
  readonly myIp?: string;
  readonly ttlHours?: string;
  readonly yes?: boolean;
  readonly dryRun?: boolean;
  readonly stateDir?: string;
  /** The EC2 subnet id (on other backends --subnet is the nodes' private subnet). */
  readonly subnet?: string;
}

/** Where a point of an ssh or aws sweep runs: its hosts, recorded with every run; aws also launches on them. */
export interface RemoteHosts {
  readonly hosts: SshHosts;
  readonly launch?: Launcher;
  /** More fields for every record (aws: the EC2 run). */
  readonly extra?: Record<string, unknown>;
}

export interface AwsSweep {
  /** What withAwsHosts parses: the up flags plus replicas, clients, hours and TTL. */
  readonly input: Record<string, unknown>;
  readonly options: AwsUpOptions;
  /** Predicted seconds of the runs still to do. */
  readonly runSec: number;
}

const UP_FLAG_KEYS = [
  'region',
  'instanceType',
  'clientType',
  'os',
  'ami',
  'sshUser',
  'vpc',
  'myIp',
  'ttlHours',
  'yes',
  'dryRun',
  'stateDir',
  'subnet',
] as const;

/**
 * The machines an aws sweep needs: replica machines for its largest point still to run, the
 * client machines, and the hours the cost estimate uses (the predicted time of the runs left
 * plus AWS_SETUP_SEC). The TTL after which the instances power off defaults to leave room for
 * a slow sweep; one shorter than the predicted time is refused.
 */
export function planAwsSweep(config: SweepConfig, flags: AwsSweepFlags, toRun: readonly SweepRun[], all: readonly SweepRun[], env: AwsEnv): AwsSweep {
  const replicas = Math.max(...(toRun.length > 0 ? toRun : all).map((r) => r.point.replicas));
  const runSec = toRun.reduce((sum, r) => sum + predictedRunSec(r, config), 0);
  const hours = Math.ceil(((runSec + AWS_SETUP_SEC) / 3600) * 100) / 100;
  const needs = `the sweep needs about ${hours} h (${formatDuration(runSec)} of runs plus about ${AWS_SETUP_SEC / 60} min to start and remove the machines)`;
  if (hours > MAX_TTL_HOURS)
    throw new SweepConfigError(
      `${needs}, more than the ${MAX_TTL_HOURS} h instances may live: run it in parts (--replicas, --protocols) into one --out directory`,
    );
  let ttlHours: number | string = Math.min(MAX_TTL_HOURS, Math.max(DEFAULT_TTL_HOURS, Math.ceil(hours * 1.5 + 1)));
  if (flags.ttlHours !== undefined) {
    ttlHours = flags.ttlHours;
    const ttl = Number(flags.ttlHours);
    if (Number.isFinite(ttl) && ttl < hours) throw new SweepConfigError(`--ttl-hours: the instances would power off after ${ttl} h, but ${needs}`);
  }
  const upFlags = Object.fromEntries(UP_FLAG_KEYS.filter((k) => flags[k] !== undefined).map((k) => [k, flags[k]]));
  const input = { ...upFlags, replicas, clients: config.clientProcs ?? AWS_CLIENT_MACHINES, hours, ttlHours };
  return { input, options: parseUpOptions(input, env), runSec };
}

/** How the lifecycle talks to the command: its signal, its terminal, and test overrides. */
export interface AwsSweepIo {
  /** The command's abort signal (Ctrl-C). */
  readonly signal: AbortSignal;
  /** Dependencies for a region: the real EC2 client and a question on the terminal, or a test's. */
  readonly deps: (region: string) => Partial<AwsDeps>;
  readonly env: AwsEnv;
  /** The machines' SSH port instead of theirs (tests: the test sshd). */
  readonly sshPort?: number;
  /** Told when EC2 resources start and stop existing (their teardown must not be cut short). */
  readonly onAwsSection?: (active: boolean) => void;
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

/** The aws dependencies for a region, with progress on stderr and the section's signal listeners watched. */
function awsDeps(region: string, io: AwsSweepIo): Partial<AwsDeps> {
  const base = io.deps(region);
  const signals: SignalSource = base.signals ?? process;
  let installed = 0;
  const watched: SignalSource = {
    // provisionedSection listens from its first create call to the end of its teardown: while
    // it does, a second Ctrl-C must not end the process (the command's signal handler asks).
    on(sig, listener) {
      if (installed++ === 0) io.onAwsSection?.(true);
      // Interrupted while planning or asking: stop before creating more than the first resource.
      if (sig === 'SIGINT' && io.signal.aborted) setImmediate(listener);
      return signals.on(sig, listener);
    },
    off(sig, listener) {
      if (--installed === 0) io.onAwsSection?.(false);
      return signals.off(sig, listener);
    },
  };
  return { ...base, log: (line) => io.stderr.write(`${line}\n`), signals: watched };
}

/**
 * --dry-run: the plan and its cost (deps.log), then EC2's DryRun answer to each create call.
 * Nothing is created, not even the results directory. Returns the exit code.
 */
export async function awsDryRun(options: AwsUpOptions, io: AwsSweepIo): Promise<number> {
  try {
    const result = await awsUp(options, defaultAwsDeps(options.region, awsDeps(options.region, io)));
    if (result.kind !== 'dry-run') throw new Error('awsUp created machines on a dry run');
    const { report } = result;
    for (const c of report.checks) io.stdout.write(`${c.ok ? 'ok  ' : 'FAIL'}  ${c.step}: ${c.detail}\n`);
    io.stdout.write(
      report.ok ? 'dry run: EC2 would accept every call; nothing was created\n' : 'dry run: EC2 would refuse some calls (above); nothing was created\n',
    );
    return report.ok ? 0 : 1;
  } catch (err) {
    if (!(err instanceof AwsBackendError)) throw err;
    io.stderr.write(`poe-bench figure: ${err.message}\n`);
    return 1;
  }
}

/** The manifest's record of the machines an aws sweep ran on (the first invocation's, when resumed). */
export function awsManifest(hosts: ProvisionedHosts, config: SweepConfig, options: AwsUpOptions): Record<string, unknown> {
  return {
    hosts: [
      ...hosts.replicas.map((h) => `${h.publicIp} (replica, ${h.instanceId}, private ${h.privateIp})`),
      ...hosts.clients.map((h) => `${h.publicIp} (client, ${h.instanceId}, private ${h.privateIp})`),
    ],
    aws: {
      runId: hosts.runId,
      region: hosts.region,
      instanceType: options.instanceType,
      clientType: options.clientType,
      replicaMachines: hosts.replicas.length,
      clientMachines: hosts.clients.length,
      clientProcsPerRun: config.clientProcs,
      expiresAt: hosts.expiresAt,
      note: 'the machines were terminated when the sweep ended; a resumed sweep provisions new ones (each run records its hosts and aws.runId)',
    },
  };
}

/** What the sweep on the machines needs from the command. */
export interface AwsSweepRun {
  readonly aws: AwsSweep;
  readonly config: SweepConfig;
  /** Runs planned in all (an interrupted outcome reports them). */
  readonly planned: number;
  /** Writes the manifest once the machines are up, with these extra fields. */
  readonly writeManifest: (config: SweepConfig, extra: Record<string, unknown>) => void;
  /** Runs the sweep with this configuration on these hosts until the signal aborts. */
  readonly sweep: (config: SweepConfig, signal: AbortSignal, remote: RemoteHosts) => Promise<SweepOutcome>;
}

/**
 * Provisions the machines, runs the sweep on them, and lets withAwsHosts terminate them.
 * Returns the outcome and the EC2 run id (undefined when nothing was created); an
 * AwsBackendError (creating or removing the machines failed) is the caller's to report.
 */
export async function sweepOnAws(run: AwsSweepRun, io: AwsSweepIo): Promise<{ outcome: SweepOutcome; runId: string | undefined }> {
  const { options, input } = run.aws;
  let sweeping: Promise<SweepOutcome> | undefined;
  let runId: string | undefined;
  try {
    const outcome = await withAwsHosts(
      input,
      async (provisioned, sectionSignal) => {
        runId = provisioned.runId;
        const hosts = hostsFromProvisioned({ ...provisioned, sshPort: io.sshPort ?? provisioned.sshPort });
        // Each run's spec names the hosts file infra/aws wrote for these machines (ssh backend).
        const c: SweepConfig = { ...run.config, infra: { hosts: join(options.stateDir, provisioned.runId, HOSTS_FILE) } };
        run.writeManifest(c, awsManifest(provisioned, c, options));
        const extra = { aws: { runId: provisioned.runId, region: provisioned.region, instanceType: options.instanceType, clientType: options.clientType } };
        sweeping = run.sweep(c, AbortSignal.any([io.signal, sectionSignal]), { hosts, launch: sshLauncher(hosts), extra });
        return await sweeping;
      },
      awsDeps(options.region, io),
      io.env,
    );
    return { outcome, runId };
  } catch (err) {
    // withAwsHosts stops waiting for the sweep on a signal and tears down at once: let the
    // run in progress finish being stopped (it records nothing) before saying so.
    if (sweeping) await sweeping.catch(() => undefined);
    if (err instanceof InterruptedError) return { outcome: { planned: run.planned, skipped: 0, ran: 0, interrupted: true }, runId };
    throw err;
  }
}
