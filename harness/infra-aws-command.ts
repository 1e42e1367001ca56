/**
 * `poe-bench infra aws up|status|down`: EC2 machines for a run (infra/aws). `up` prints the plan
 * and a cost estimate and asks before creating anything (`--yes` answers for you, `--dry-run`
 * asks EC2 whether it would work and creates nothing); `status` lists the runs in a region by
 * their tags; `down` removes one run, the expired ones, or all of them.
 *
 * Exit codes: 0 done, 1 failed (the message says why; nothing is left behind unless it says
 * so), 2 bad flags, 130/143 interrupted by SIGINT/SIGTERM (after teardown).
 *
 * The `infra` parent command is shared with the other backends (netns, docker): whichever
 * registers first creates it.
 */
import { createInterface } from 'node:readline/promises';
import type { Command } from 'commander';
import { defineParams } from '../infra/params.js';
import {
  awsDown,
  awsStatus,
  awsUp,
  CallerAddressMissingError,
  defaultAwsDeps,
  InterruptedError,
  InvalidAwsOptionsError,
  parseDownOptions,
  parseStatusOptions,
  parseUpOptions,
  type AwsDeps,
  type UpResult,
} from '../infra/aws/index.js';
import type { AwsEnv } from '../infra/aws/options.js';

export interface AwsCommandIo {
  /** Results (stdout); progress and questions go through AwsDeps.log/confirm (stderr). */
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
  readonly env: AwsEnv;
  /** The dependencies for one region: the real EC2 client and terminal in the CLI, fakes in tests. */
  readonly deps: (region: string) => AwsDeps;
  /** Sets the process's exit code; `interrupted` ends the process at once (a waiter may still hold a timer). */
  readonly exit: (code: number, interrupted: boolean) => void;
}

/** A yes/no on the terminal; Ctrl-C (which readline catches in raw mode) counts as no. */
async function askOnTerminal(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  const controller = new AbortController();
  rl.on('SIGINT', () => controller.abort());
  try {
    return /^\s*y(es)?\s*$/i.test(await rl.question(question, { signal: controller.signal }));
  } catch (err) {
    if (controller.signal.aborted) return false;
    throw err;
  } finally {
    rl.close();
  }
}

export function defaultAwsCommandIo(): AwsCommandIo {
  return {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    env: process.env,
    deps: (region) => defaultAwsDeps(region, { confirm: process.stdin.isTTY ? askOnTerminal : undefined }),
    exit: (code, interrupted) => {
      if (interrupted) process.exit(code);
      process.exitCode = code;
    },
  };
}

const SIGNAL_EXIT_CODES: Readonly<Record<string, number>> = { SIGINT: 130, SIGTERM: 143 };

/** Runs one subcommand: prints its lines, or its error in one sentence with the right exit code. */
async function run(io: AwsCommandIo, name: string, action: () => Promise<{ lines: readonly string[]; code: number }>): Promise<void> {
  try {
    const { lines, code } = await action();
    for (const line of lines) io.out(line);
    io.exit(code, false);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    io.err(`poe-bench infra aws ${name}: ${message}`);
    if (err instanceof InterruptedError) return io.exit(SIGNAL_EXIT_CODES[err.signal] ?? 1, true);
    io.exit(err instanceof InvalidAwsOptionsError || err instanceof CallerAddressMissingError ? 2 : 1, false);
  }
}

function upLines(result: UpResult): { lines: string[]; code: number } {
  if (result.kind === 'dry-run') {
    const { report } = result;
    const lines = report.checks.map((c) => `${c.ok ? 'ok  ' : 'FAIL'}  ${c.step}: ${c.detail}`);
    lines.push(report.ok ? 'dry run: EC2 would accept every call; nothing was created' : 'dry run: EC2 would refuse some calls (above); nothing was created');
    return { lines, code: report.ok ? 0 : 1 };
  }
  const { hosts, plan } = result;
  const lines = [`run ${hosts.runId} is up in ${hosts.region}: ${hosts.replicas.length} replicas, ${hosts.clients.length} client machines`];
  hosts.replicas.forEach((h, i) => lines.push(`  replica ${i}  ${h.instanceId}  public ${h.publicIp}  private ${h.privateIp}`));
  hosts.clients.forEach((h, i) => lines.push(`  client  ${i}  ${h.instanceId}  public ${h.publicIp}  private ${h.privateIp}`));
  const first = hosts.replicas[0];
  if (first !== undefined) lines.push(`log in: ssh -i ${hosts.privateKeyPath} ${hosts.sshUser}@${first.publicIp}`);
  lines.push(`hosts for the ssh backend: ${plan.runDir}/hosts.json`);
  lines.push(`the instances power off about ${hosts.expiresAt}; tear down now: poe-bench infra aws down --run ${hosts.runId} --region ${hosts.region}`);
  return { lines, code: 0 };
}

/** Commander's camelCase option object, minus what commander adds itself. */
type Flags = Record<string, unknown>;

export function registerAwsCommand(program: Command, io: AwsCommandIo = defaultAwsCommandIo()): void {
  const infra =
    program.commands.find((c) => c.name() === 'infra') ??
    program.command('infra').description('machines beyond this process tree: namespaces, containers, SSH hosts, AWS EC2');
  const aws = infra.command('aws').description('EC2 machines for a run: up, status, down (every resource tagged Project=poe-bench)');

  const up = aws.command('up').description('create a key pair, a security group and tagged replica and client instances; print a cost estimate and ask first');
  const upKeys = [
    'replicas',
    'clients',
    'region',
    'instanceType',
    'clientType',
    'os',
    'ami',
    'sshUser',
    'vpc',
    'subnet',
    'myIp',
    'ttlHours',
    'hours',
    'yes',
    'dryRun',
    'stateDir',
  ];
  defineParams(up, 'aws', upKeys).action(async (flags: Flags) =>
    run(io, 'up', async () => {
      const options = parseUpOptions(flags, io.env);
      return upLines(await awsUp(options, io.deps(options.region)));
    }),
  );

  defineParams(aws.command('status').description('list poe-bench runs in a region: instances, age, expiry (expired runs marked)'), 'aws', ['region']).action(
    async (flags: Flags) =>
      run(io, 'status', async () => {
        const options = parseStatusOptions(flags, io.env);
        return { lines: await awsStatus(options, io.deps(options.region)), code: 0 };
      }),
  );

  defineParams(
    aws.command('down').description('terminate and delete what a run left, found by its tags: one run (--run), the expired ones (--expired), or all'),
    'aws',
    ['run', 'expired', 'region', 'yes', 'stateDir'],
  ).action(async (flags: Flags) =>
    run(io, 'down', async () => {
      const options = parseDownOptions(flags, io.env);
      const result = await awsDown(options, io.deps(options.region));
      return { lines: result.lines, code: 0 };
    }),
  );
}
