/**
 * Input validation (zod, errors named by flag), the cost estimate, the SDK error translation,
 * and the SSH probe against real sockets on 127.0.0.1.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { EC2Client } from '@aws-sdk/client-ec2';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AwsStepError,
  CallerAddressMissingError,
  CredentialsRejectedError,
  InvalidAwsOptionsError,
  MissingCredentialsError,
  PermissionDeniedError,
  SshNotReadyError,
  translateAwsError,
  UnknownRegionError,
} from './errors.js';
import { credentialsProviderError, ec2Error, endpointNotFoundError } from '../../test/fakes/fake-ec2.js';
import { makeRunId, parseCallerCidr, parseDownOptions, parseUpOptions, RUN_ID_PATTERN } from './options.js';
import { estimateCost, formatCostEstimate } from './pricing.js';
import { probeSshBanner, waitForSsh } from './ssh-probe.js';
import { checkRegion } from './plan.js';
import { DEFAULT_TIMING, type AwsDeps } from './deps.js';

const base = { replicas: '4', clients: '1', myIp: '203.0.113.7' };

describe('up options', () => {
  it("takes the strings commander hands over, with the paper's defaults", () => {
    const o = parseUpOptions(base, {});
    expect(o).toMatchObject({
      replicas: 4,
      clients: 1,
      region: 'us-east-1',
      instanceType: 'c5.2xlarge',
      clientType: 'c5.xlarge',
      os: 'debian12',
      sshUser: 'admin',
      callerCidr: '203.0.113.7/32',
      ttlHours: 4,
      expectedHours: 1,
      yes: false,
      dryRun: false,
    });
    expect(parseUpOptions({ ...base, os: 'al2023' }, {}).sshUser).toBe('ec2-user');
    // The expected duration defaults to 1 h, but never beyond a shorter TTL.
    expect(parseUpOptions({ ...base, ttlHours: '0.5' }, {}).expectedHours).toBe(0.5);
  });

  it('names every bad flag', () => {
    const bad = () => parseUpOptions({ replicas: '0', clients: 'x', region: 'Mars', instanceType: 'big', ttlHours: '100', myIp: '203.0.113.7' }, {});
    expect(bad).toThrow(InvalidAwsOptionsError);
    expect(bad).toThrow(/--replicas: must be at least 1/);
    expect(bad).toThrow(/--clients: must be a number/);
    expect(bad).toThrow(/--region: must be a region name like 'us-east-1'/);
    expect(bad).toThrow(/--instance-type: must be an instance type like 'c5.2xlarge'/);
    expect(bad).toThrow(/--ttl-hours: must be at most 72/);
    expect(() => parseUpOptions({ ...base, replicas: '65' }, {})).toThrow(/--replicas: must be at most 64/);
    expect(() => parseUpOptions({ ...base, hours: '5' }, {})).toThrow(/--hours: 5 h is longer than the instances live \(--ttl-hours 4\)/);
    expect(() => parseUpOptions({ ...base, vpc: 'vpc-01234567' }, {})).toThrow(/--vpc: needs --subnet/);
    expect(() => parseUpOptions({ ...base, flavour: 'x' }, {})).toThrow(/unknown option\(s\): flavour/);
  });

  it("requires the caller's address: --my-ip or POE_BENCH_MY_IP, never discovered over the network", () => {
    const { myIp: _none, ...noIp } = base;
    expect(() => parseUpOptions(noIp, {})).toThrow(CallerAddressMissingError);
    expect(() => parseUpOptions(noIp, {})).toThrow(/pass --my-ip <address or CIDR> or set POE_BENCH_MY_IP/);
    expect(parseUpOptions(noIp, { POE_BENCH_MY_IP: '198.51.100.9' }).callerCidr).toBe('198.51.100.9/32');
    expect(() => parseUpOptions(noIp, { POE_BENCH_MY_IP: 'home' })).toThrow(/--my-ip: 'home' is not an IP address or CIDR/);
  });

  it('refuses caller ranges that would open the harness to the internet', () => {
    expect(parseCallerCidr('2001:db8::1')).toBe('2001:db8::1/128');
    expect(parseCallerCidr('198.51.100.0/24')).toBe('198.51.100.0/24');
    expect(() => parseCallerCidr('0.0.0.0/0')).toThrow(/too wide/);
    expect(() => parseCallerCidr('10.0.0.0/8')).toThrow(/too wide/);
    expect(() => parseCallerCidr('::/0')).toThrow(/too wide/);
    expect(() => parseCallerCidr('1.2.3.4/33')).toThrow(/invalid prefix/);
  });

  it('takes the region from AWS_REGION, then AWS_DEFAULT_REGION', () => {
    expect(parseUpOptions(base, { AWS_DEFAULT_REGION: 'eu-west-1' }).region).toBe('eu-west-1');
    expect(parseUpOptions(base, { AWS_REGION: 'eu-central-1', AWS_DEFAULT_REGION: 'eu-west-1' }).region).toBe('eu-central-1');
    expect(parseUpOptions({ ...base, region: 'ap-south-1' }, { AWS_REGION: 'eu-central-1' }).region).toBe('ap-south-1');
    expect(() => parseUpOptions(base, { AWS_REGION: 'moon' })).toThrow(/--region: must be a region name/);
  });

  it('down: --run must be a run id, and --expired does not combine with it', () => {
    expect(parseDownOptions({ run: 'pb-20250131-120000-ab12cd' }, {}).runId).toBe('pb-20250131-120000-ab12cd');
    expect(() => parseDownOptions({ run: '../../etc' }, {})).toThrow(/--run: must be a run id/);
    expect(() => parseDownOptions({ run: 'pb-20250131-120000-ab12cd', expired: true }, {})).toThrow(/cannot be combined/);
  });

  it('run ids sort by creation time and match their own pattern', () => {
    const id = makeRunId(Date.parse('2025-01-31T12:34:56.789Z'), '0a1b2c');
    expect(id).toBe('pb-20250131-123456-0a1b2c');
    expect(RUN_ID_PATTERN.test(id)).toBe(true);
  });
});

describe('cost estimate', () => {
  it('is instances x hourly price x hours, with a ceiling at the TTL', () => {
    const e = estimateCost({ replicas: 32, clients: 10 }, { replica: 'c5.2xlarge', client: 'c5.xlarge' }, { expected: 1, ttl: 4 });
    // The paper's largest setup: 32 x 0.34 + 10 x 0.17 = 12.58 per hour.
    expect(e.expectedUsd).toBeCloseTo(12.58, 10);
    expect(e.ceilingUsd).toBeCloseTo(50.32, 10);
  });

  it('says "unknown" for a type without a price instead of guessing', () => {
    const e = estimateCost({ replicas: 4, clients: 1 }, { replica: 'x9.mega', client: 'c5.xlarge' }, { expected: 1, ttl: 4 });
    expect(e.expectedUsd).toBeUndefined();
    const text = formatCostEstimate(e).join('\n');
    expect(text).toContain('4 x x9.mega      replica at unknown price');
    expect(text).toContain('estimated unknown for 1 h');
    expect(text).toContain('no price on record for x9.mega');
  });
});

describe('SDK errors become named errors', () => {
  it('maps each condition', () => {
    expect(translateAwsError(credentialsProviderError(), 'DescribeRegions', 'us-east-1')).toBeInstanceOf(MissingCredentialsError);
    expect(
      translateAwsError(ec2Error('AuthFailure', 'AWS was not able to validate the provided access credentials'), 'DescribeRegions', 'us-east-1'),
    ).toBeInstanceOf(CredentialsRejectedError);
    expect(translateAwsError(ec2Error('UnauthorizedOperation', 'no'), 'RunInstances', 'us-east-1')).toBeInstanceOf(PermissionDeniedError);
    expect(translateAwsError(endpointNotFoundError('us-eats-1'), 'DescribeRegions', 'us-eats-1')).toBeInstanceOf(UnknownRegionError);
    const other = translateAwsError(ec2Error('InsufficientInstanceCapacity', 'none left'), 'RunInstances', 'us-east-1');
    expect(other).toBeInstanceOf(AwsStepError);
    expect(other.message).toBe('EC2 RunInstances failed: InsufficientInstanceCapacity: none left');
  });

  it('a real EC2Client without credentials fails with MissingCredentialsError before sending anything', async () => {
    // No mock here: the real client, a credential provider that finds nothing (as the default
    // chain does on a machine without credentials), and a request handler that fails the test
    // if a request were ever sent.
    let sent = 0;
    const ec2 = new EC2Client({
      region: 'us-east-1',
      credentials: async () => {
        throw credentialsProviderError();
      },
      requestHandler: {
        handle: async () => {
          sent++;
          throw new Error('no request may leave this test');
        },
      },
      maxAttempts: 1,
    });
    const deps = { ec2 } as unknown as AwsDeps;
    const err = await checkRegion('us-east-1', deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MissingCredentialsError);
    expect((err as Error).message).toMatch(/^AWS credentials not found: set AWS_PROFILE/);
    expect(sent).toBe(0);
  });
});

describe('SSH probe (real sockets on 127.0.0.1)', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
  });

  async function listen(onConnection: (socket: Socket) => void): Promise<number> {
    const server = createServer(onConnection);
    servers.push(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  }

  it('true when the server sends an SSH banner', async () => {
    const port = await listen((s) => s.end('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'));
    expect(await probeSshBanner('127.0.0.1', port, 2_000)).toBe(true);
  });

  it('false when the port accepts but says nothing (sshd not ready), or something else answers', async () => {
    const sockets: Socket[] = [];
    const silent = await listen((s) => sockets.push(s));
    expect(await probeSshBanner('127.0.0.1', silent, 100)).toBe(false);
    sockets.forEach((s) => s.destroy());
    const http = await listen((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
    expect(await probeSshBanner('127.0.0.1', http, 2_000)).toBe(false);
  });

  it('false when nothing listens', async () => {
    const port = await listen(() => undefined);
    await new Promise((resolve) => servers.pop()?.close(resolve));
    expect(await probeSshBanner('127.0.0.1', port, 2_000)).toBe(false);
  });

  it('waitForSsh retries each host until it answers, and names the hosts that never do', async () => {
    let nowMs = 0;
    const answers = new Map([
      ['host-a', [false, false, true]],
      ['host-b', [true]],
    ]);
    const deps = {
      nowMs: () => nowMs,
      sleepMs: async (ms: number) => {
        nowMs += ms;
      },
      probeSsh: async (host: string) => answers.get(host)?.shift() ?? false,
    };
    await waitForSsh(['host-a', 'host-b'], 22, DEFAULT_TIMING.ssh, deps);
    expect(answers.get('host-a')).toEqual([]);
    const err = await waitForSsh(['host-c'], 22, DEFAULT_TIMING.ssh, deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SshNotReadyError);
    expect((err as Error).message).toBe('no SSH banner from host-c within 300 s');
  });
});
