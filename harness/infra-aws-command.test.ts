/**
 * `poe-bench infra aws` through commander, against a mocked EC2: what each subcommand prints,
 * its exit code, and that a refusal or a bad flag creates nothing.
 */
import { join } from 'node:path';
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { fakeDeps, type FakeEc2 } from '../test/fakes/fake-ec2.js';
import { registerAwsCommand, type AwsCommandIo } from './infra-aws-command.js';
import { useFakeEc2 } from '../test/aws-fixture.js';

let fake: FakeEc2;
let stateDir: string;
const ec2Mock = useFakeEc2('poe-aws-cli-', (f, d) => {
  fake = f;
  stateDir = d;
});

interface Captured {
  out: string[];
  err: string[];
  codes: { code: number; interrupted: boolean }[];
  regions: string[];
}

async function cli(args: string[], env: Record<string, string> = {}, confirm?: (q: string) => Promise<boolean>): Promise<Captured> {
  const captured: Captured = { out: [], err: [], codes: [], regions: [] };
  const io: AwsCommandIo = {
    out: (l) => captured.out.push(l),
    err: (l) => captured.err.push(l),
    env,
    deps: (region) => {
      captured.regions.push(region);
      return fakeDeps(fake, { confirm });
    },
    exit: (code, interrupted) => captured.codes.push({ code, interrupted }),
  };
  const program = new Command('poe-bench').exitOverride();
  registerAwsCommand(program, io);
  await program.parseAsync(args, { from: 'user' });
  return captured;
}

const UP = ['infra', 'aws', 'up', '--replicas', '4', '--clients', '1', '--my-ip', '203.0.113.7'];

describe('poe-bench infra aws', () => {
  it('up --yes creates the run and prints its hosts and how to tear it down', async () => {
    const r = await cli([...UP, '--yes', '--state-dir', stateDir]);
    expect(r.codes).toEqual([{ code: 0, interrupted: false }]);
    expect(r.out[0]).toBe('run pb-20250131-120000-ab12cd is up in us-east-1: 4 replicas, 1 client machines');
    expect(r.out.filter((l) => /^ {2}replica \d/.test(l))).toHaveLength(4);
    expect(r.out).toContain(`hosts for the ssh backend: ${join(stateDir, 'pb-20250131-120000-ab12cd')}/hosts.json`);
    expect(r.out.at(-1)).toMatch(/tear down now: poe-bench infra aws down --run pb-20250131-120000-ab12cd --region us-east-1$/);
    expect(fake.liveInstances()).toHaveLength(5);
  });

  it('up without --yes and without a terminal refuses with exit 1, creating nothing', async () => {
    const r = await cli([...UP, '--state-dir', stateDir]);
    expect(r.codes).toEqual([{ code: 1, interrupted: false }]);
    expect(r.err).toEqual([
      'poe-bench infra aws up: creating 5 EC2 instances needs confirmation, and stdin is not a terminal: pass --yes to confirm non-interactively',
    ]);
    expect(fake.instances.size + fake.groups.size + fake.keys.size).toBe(0);
  });

  it('up on a terminal asks, and goes ahead on yes', async () => {
    const asked: string[] = [];
    const r = await cli([...UP, '--state-dir', stateDir], {}, async (q) => (asked.push(q), true));
    expect(asked).toHaveLength(1);
    expect(r.codes).toEqual([{ code: 0, interrupted: false }]);
  });

  it('bad flags exit 2 and name the flag; a missing --my-ip says how to give it', async () => {
    const bad = await cli(['infra', 'aws', 'up', '--replicas', 'four', '--clients', '1', '--my-ip', '203.0.113.7']);
    expect(bad.codes).toEqual([{ code: 2, interrupted: false }]);
    expect(bad.err).toEqual(['poe-bench infra aws up: --replicas: must be a number']);
    const noIp = await cli(['infra', 'aws', 'up', '--replicas', '4', '--clients', '1', '--yes']);
    expect(noIp.codes).toEqual([{ code: 2, interrupted: false }]);
    expect(noIp.err[0]).toMatch(/--my-ip <address or CIDR> or set POE_BENCH_MY_IP/);
    expect(ec2Mock.calls()).toHaveLength(0);
  });

  it('up --dry-run prints what EC2 would do and creates nothing', async () => {
    const r = await cli([...UP, '--dry-run', '--state-dir', stateDir]);
    expect(r.codes).toEqual([{ code: 0, interrupted: false }]);
    expect(r.out.filter((l) => l.startsWith('ok  '))).toHaveLength(5);
    expect(r.out.at(-1)).toBe('dry run: EC2 would accept every call; nothing was created');
    expect(fake.instances.size + fake.groups.size + fake.keys.size).toBe(0);
  });

  it('status and down use the region from the flag or the environment', async () => {
    await cli([...UP, '--yes', '--state-dir', stateDir]);
    const status = await cli(['infra', 'aws', 'status'], { AWS_REGION: 'us-east-1' });
    expect(status.regions).toEqual(['us-east-1']);
    expect(status.out[0]).toMatch(/^pb-20250131-120000-ab12cd {2}age 0 min {2}expires 2025-01-31T16:00:00.000Z$/);
    const down = await cli(['infra', 'aws', 'down', '--run', 'pb-20250131-120000-ab12cd', '--region', 'us-east-1', '--state-dir', stateDir]);
    expect(down.codes).toEqual([{ code: 0, interrupted: false }]);
    expect(down.out).toEqual(['run pb-20250131-120000-ab12cd: 5 instance(s) terminated, 1 security group(s) deleted, 1 key pair(s) deleted']);
    const after = await cli(['infra', 'aws', 'status', '--region', 'us-east-1']);
    expect(after.out).toEqual(['no poe-bench resources in us-east-1']);
  });

  it('joins an `infra` command another backend registered first', () => {
    const program = new Command('poe-bench');
    program.command('infra').command('netns');
    registerAwsCommand(program, {} as AwsCommandIo);
    expect(program.commands.map((c) => c.name())).toEqual(['infra']);
    expect(program.commands[0]?.commands.map((c) => c.name())).toEqual(['netns', 'aws']);
  });
});
