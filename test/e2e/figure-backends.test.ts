/**
 * `poe-bench figure` beyond this process tree (issue 6): figure 13 through the ssh backend to
 * the test sshd on 127.0.0.1 (infra/ssh/test-sshd.sh), and figure 10 with --backend aws against
 * a mocked EC2 (aws-sdk-client-mock with infra/aws's FakeEc2) whose machines are 127.0.0.1,
 * reached through the same sshd (the mock hands out its authorised client key as the key
 * pair): a valid record, then every instance terminated and the security group and key pair
 * deleted; a run that fails and a Ctrl-C midway still tear everything down; --dry-run prints
 * the plan and creates nothing.
 *
 * Runs are short (2 s warm-up, 3 s measured) to spare the shared machine; the run lengths of
 * the profiles are not what is checked here.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { CreateKeyPairCommand, EC2Client, RunInstancesCommand, type CreateKeyPairCommandInput, type RunInstancesCommandInput } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { lockHarnessPorts } from '../harness-port-lock.js';
import { runFigureCommand, type FigureFlags } from '../../harness/figure-command.js';
import { callNames, fakeDeps, FakeEc2, type FakeDeps } from '../fakes/fake-ec2.js';
import { TEST_SSHD_DIR, TEST_SSHD_PORT } from '../../infra/ssh/test-sshd.js';
import { ensureBuilt } from './helpers.js';

/** The test sshd runs when its PID file names a live process (CI's .ci/run starts it). */
function sshdRunning(): boolean {
  try {
    process.kill(Number(readFileSync(join(TEST_SSHD_DIR, 'sshd.pid'), 'utf8').trim()), 0);
    return true;
  } catch {
    return false;
  }
}
const SSHD = sshdRunning();
const NO_SSHD = `SKIPPED: no test sshd runs on 127.0.0.1:${TEST_SSHD_PORT} (start it with infra/ssh/test-sshd.sh start; CI's .ci/run does)`;
if (!SSHD) console.warn(`test/e2e/figure-backends.test.ts: ${NO_SSHD}`);
const HOSTS_FILE = join(TEST_SSHD_DIR, 'hosts.yaml');
const CLIENT_KEY = join(TEST_SSHD_DIR, 'client_ed25519');

const ec2Mock = mockClient(EC2Client);
const base = mkdtempSync(join(tmpdir(), 'poe-figure-backends-'));

beforeAll(() => ensureBuilt(), 180_000);
beforeEach(() => ec2Mock.reset());
afterAll(() => {
  ec2Mock.restore();
  rmSync(base, { recursive: true, force: true });
});

/** A stream that keeps what is written, and calls `onText` with everything so far. */
function sink(onText?: (text: string) => void): Writable & { text: () => string } {
  let text = '';
  const w = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString();
      onText?.(text);
      done();
    },
  });
  return Object.assign(w, { text: () => text });
}

interface Line {
  readonly pointId: string;
  readonly valid: boolean;
  readonly reason?: string;
  readonly backend?: string;
  readonly metrics?: { readonly throughputTxnPerSec: number };
  readonly hosts?: { readonly replicas: string[]; readonly clients: string[] };
  readonly aws?: { readonly runId: string; readonly region: string; readonly instanceType: string };
  readonly spec?: { readonly backend: string; readonly replicas: number; readonly clientProcs: number; readonly infra: { readonly hosts?: string } };
}

function records(dir: string): Line[] {
  const path = join(dir, 'runs.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Line);
}

function manifest(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
}

/** Short runs of one point: PoE at 4 replicas. */
const SHORT: FigureFlags = { replicas: '4', protocols: 'poe', quick: true, warmup: '2', duration: '3', clients: '16' };

/** Everything a fresh mocked EC2 needs; `sshdKey` makes the key pair the test sshd's client key. */
function mockedEc2(sshdKey: boolean): { fake: FakeEc2; deps: FakeDeps; stateDir: string } {
  const fake = new FakeEc2().install(ec2Mock);
  if (sshdKey) {
    const key = readFileSync(CLIENT_KEY, 'utf8');
    ec2Mock.on(CreateKeyPairCommand).callsFake(async (i: CreateKeyPairCommandInput) => ({ ...fake.createKeyPair(i), KeyMaterial: key }));
  }
  return { fake, deps: fakeDeps(fake), stateDir: mkdtempSync(join(base, 'aws-state-')) };
}

const AWS_FLAGS: FigureFlags = { ...SHORT, backend: 'aws', clientMachines: '1', yes: true, myIp: '203.0.113.7', sshUser: 'root' };

function expectAllGone(fake: FakeEc2, stateDir: string): void {
  expect(fake.instances.size, 'instances were launched').toBeGreaterThan(0);
  expect(fake.liveInstances(), 'instances left running').toEqual([]);
  expect(fake.groups.size, 'security groups left').toBe(0);
  expect(fake.keys.size, 'key pairs left').toBe(0);
  expect(readdirSync(stateDir), 'run directory (private key, hosts.json) left').toEqual([]);
}

describe('poe-bench figure --backend ssh', () => {
  it.skipIf(!SSHD)(`figure 13 at 4 replicas through the test sshd: a valid record naming its hosts${SSHD ? '' : ` (${NO_SSHD})`}`, async () => {
    const out = join(base, 'ssh-13');
    const stderr = sink();
    const code = await runFigureCommand(
      '13',
      { ...SHORT, backend: 'ssh', hosts: HOSTS_FILE, out },
      { signal: new AbortController().signal, stdout: sink(), stderr },
    );
    expect(code, stderr.text()).toBe(0);
    const [line, ...more] = records(out);
    expect(more).toEqual([]);
    expect(line!.valid, line!.reason).toBe(true);
    expect(line!.pointId).toBe('poe/n=4/crashed=0/batch=100');
    expect(line!.backend).toBe('ssh');
    expect(line!.metrics!.throughputTxnPerSec).toBeGreaterThan(0);
    expect(line!.spec!.backend).toBe('ssh');
    expect(line!.spec!.infra.hosts).toBe(HOSTS_FILE);
    // The hosts file has one replica host and one client host: every replica runs on it.
    expect(line!.hosts!.replicas).toEqual(Array(4).fill(`root@127.0.0.1:${TEST_SSHD_PORT}`));
    expect(line!.hosts!.clients).toEqual([`root@127.0.0.1:${TEST_SSHD_PORT}`]);
    const m = manifest(out);
    expect(m['backend']).toBe('ssh');
    expect(m['hosts']).toEqual([`root@127.0.0.1:${TEST_SSHD_PORT} (replica)`, `root@127.0.0.1:${TEST_SSHD_PORT} (client)`]);
    expect(existsSync(join(out, 'report.md'))).toBe(true);
  });

  it('flags of another backend are refused, naming them', async () => {
    const stderr = sink();
    const sig = new AbortController().signal;
    expect(await runFigureCommand('13', { ...SHORT, region: 'us-east-1', out: join(base, 'no') }, { signal: sig, stderr })).toBe(2);
    expect(stderr.text()).toContain('--region: only for --backend aws (this sweep uses local)');
    expect(
      await runFigureCommand('13', { ...SHORT, backend: 'aws', hosts: HOSTS_FILE, myIp: '203.0.113.7', out: join(base, 'no') }, { signal: sig, stderr }),
    ).toBe(2);
    expect(stderr.text()).toContain('--hosts: not for --backend aws');
    expect(await runFigureCommand('13', { ...SHORT, backend: 'ssh', out: join(base, 'no') }, { signal: sig, stderr })).toBe(2);
    expect(stderr.text()).toContain('--hosts: the ssh backend needs a hosts file');
    expect(existsSync(join(base, 'no'))).toBe(false);
  });
});

describe('poe-bench figure --backend aws (mocked EC2, hosts on 127.0.0.1 through the test sshd)', () => {
  // These runs listen on the fixed harness port range; infra/ssh/aws.e2e.test.ts does too.
  let releasePorts: (() => void) | undefined;
  beforeAll(async () => {
    releasePorts = await lockHarnessPorts();
  }, 600_000);
  afterAll(() => releasePorts?.());

  it.skipIf(!SSHD)(
    `figure 10 --replicas 4 --protocols poe: provisions once, a valid record, then everything is terminated and deleted${SSHD ? '' : ` (${NO_SSHD})`}`,
    async () => {
      const { fake, deps, stateDir } = mockedEc2(true);
      const out = join(base, 'aws-10');
      const stderr = sink();
      const sections: boolean[] = [];
      const code = await runFigureCommand(
        '10',
        { ...AWS_FLAGS, stateDir, out },
        {
          signal: new AbortController().signal,
          stdout: sink(),
          stderr,
          aws: { deps: () => deps, env: {}, sshPort: TEST_SSHD_PORT },
          onAwsSection: (a) => sections.push(a),
        },
      );
      expect(code, stderr.text()).toBe(0);
      // The cost of the whole figure was shown before anything was created.
      expect(stderr.text()).toMatch(/4 x c5\.2xlarge\s+replica/);
      expect(stderr.text()).toMatch(/1 x c5\.xlarge\s+client/);
      expect(stderr.text()).toMatch(/estimated \$\d+\.\d\d for 0\.\d+ h/);
      // One set of machines: the largest point's replicas (4) and one client machine.
      const launches = ec2Mock.commandCalls(RunInstancesCommand).map((c) => c.args[0].input as RunInstancesCommandInput);
      expect(launches.map((l) => [l.InstanceType, l.MaxCount])).toEqual([
        ['c5.2xlarge', 4],
        ['c5.xlarge', 1],
      ]);
      const [line, ...more] = records(out);
      expect(more).toEqual([]);
      expect(line!.valid, line!.reason).toBe(true);
      expect(line!.pointId).toBe('poe/n=4/crashed=1/batch=100');
      expect(line!.backend).toBe('aws');
      expect(line!.metrics!.throughputTxnPerSec).toBeGreaterThan(0);
      expect(line!.spec!.backend).toBe('ssh');
      expect(line!.aws).toMatchObject({ region: 'us-east-1', instanceType: 'c5.2xlarge' });
      // Figure 10 crashes one backup at 4 replicas: replicas 0-2 ran, on the first three machines.
      expect(line!.hosts!.replicas).toEqual(Array(3).fill(`root@127.0.0.1:${TEST_SSHD_PORT}`));
      const m = manifest(out);
      expect(m['backend']).toBe('aws');
      expect(m['hosts']).toHaveLength(5);
      expect(m['aws']).toMatchObject({
        runId: line!.aws!.runId,
        region: 'us-east-1',
        instanceType: 'c5.2xlarge',
        clientType: 'c5.xlarge',
        replicaMachines: 4,
        clientMachines: 1,
      });
      expect((m['sweep'] as Record<string, unknown>)['instanceType']).toBe('c5.2xlarge');
      expect(stderr.text()).toContain(`the EC2 machines of run ${line!.aws!.runId} were terminated`);
      expectAllGone(fake, stateDir);
      expect(callNames(ec2Mock)).toContain('TerminateInstances');
      expect(sections).toEqual([true, false]);
    },
  );

  it('a run that fails (the machines refuse the key) is recorded as failed, and everything is still torn down', async () => {
    const { fake, deps, stateDir } = mockedEc2(false); // EC2's key is not one the sshd knows
    const out = join(base, 'aws-fail');
    const stderr = sink();
    const code = await runFigureCommand(
      '10',
      { ...AWS_FLAGS, stateDir, out },
      { signal: new AbortController().signal, stdout: sink(), stderr, aws: { deps: () => deps, env: {}, sshPort: TEST_SSHD_PORT } },
    );
    expect(code, stderr.text()).toBe(1);
    const [line] = records(out);
    expect(line!.valid).toBe(false);
    expect(line!.reason).toMatch(/the run failed/);
    expectAllGone(fake, stateDir);
  });

  it.skipIf(!SSHD)(`Ctrl-C midway stops the run, records nothing for it, tears down, exits 130${SSHD ? '' : ` (${NO_SSHD})`}`, async () => {
    const { fake, deps, stateDir } = mockedEc2(true);
    const out = join(base, 'aws-interrupted');
    const ac = new AbortController();
    let pressed = false;
    // What a Ctrl-C does in the CLI: the figure's controller aborts and infra/aws's listener fires.
    const stderr = sink((text) => {
      if (pressed || !/: started/.test(text)) return;
      pressed = true;
      setTimeout(() => {
        ac.abort();
        deps.signals.emit('SIGINT');
      }, 3000);
    });
    const code = await runFigureCommand(
      '10',
      { ...AWS_FLAGS, stateDir, out },
      { signal: ac.signal, stdout: sink(), stderr, aws: { deps: () => deps, env: {}, sshPort: TEST_SSHD_PORT } },
    );
    expect(pressed, stderr.text()).toBe(true);
    expect(code, stderr.text()).toBe(130);
    expect(records(out)).toEqual([]);
    expect(stderr.text()).toMatch(/SIGINT: tearing down run pb-/);
    expect(stderr.text()).toContain('the run in progress was stopped and not recorded');
    expectAllGone(fake, stateDir);
  });

  it('Ctrl-C before the machines are created (while planning) stops at the first create call; nothing is launched or left', async () => {
    const { fake, deps, stateDir } = mockedEc2(false);
    const out = join(base, 'aws-early');
    const ac = new AbortController();
    ac.abort();
    const stderr = sink();
    const code = await runFigureCommand(
      '10',
      { ...AWS_FLAGS, stateDir, out },
      { signal: ac.signal, stdout: sink(), stderr, aws: { deps: () => deps, env: {} } },
    );
    expect(code, stderr.text()).toBe(130);
    expect(fake.instances.size).toBe(0);
    expect(fake.groups.size + fake.keys.size).toBe(0);
    expect(readdirSync(stateDir)).toEqual([]);
    expect(records(out)).toEqual([]);
  });

  it('--dry-run prints the plan and the cost, asks EC2 with DryRun, and creates nothing', async () => {
    const { fake, deps, stateDir } = mockedEc2(false);
    const out = join(base, 'aws-dry');
    const stdout = sink();
    const stderr = sink();
    const code = await runFigureCommand(
      '10',
      { backend: 'aws', dryRun: true, myIp: '203.0.113.7', stateDir, out },
      { signal: new AbortController().signal, stdout, stderr, aws: { deps: () => deps, env: {} } },
    );
    expect(code, stderr.text()).toBe(0);
    // The whole figure (default profile): 32 replica machines, the paper's 10 client machines.
    expect(stderr.text()).toMatch(/32 x c5\.2xlarge\s+replica/);
    expect(stderr.text()).toMatch(/10 x c5\.xlarge\s+client/);
    expect(stderr.text()).toMatch(/estimated \$\d+\.\d\d for \d+(\.\d+)? h/);
    expect(stdout.text()).toContain('nothing was created');
    expect(ec2Mock.commandCalls(RunInstancesCommand).every((c) => c.args[0].input.DryRun === true)).toBe(true);
    expect(fake.instances.size + fake.groups.size + fake.keys.size).toBe(0);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(stateDir)).toEqual([]);
  });
});
