/**
 * The mocked EC2 that the aws tests share: a stateful FakeEc2 installed on aws-sdk-client-mock,
 * reset before each test, and a fresh state directory removed after it.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EC2Client } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeEach } from 'vitest';
import { FakeEc2 } from './fakes/fake-ec2.js';

/** Registers the hooks; `each` receives every test's fake and state directory. Returns the mock. */
export function useFakeEc2(dirPrefix: string, each: (fake: FakeEc2, stateDir: string) => void): ReturnType<typeof mockClient> {
  const ec2Mock = mockClient(EC2Client);
  let stateDir: string | undefined;
  beforeEach(async () => {
    ec2Mock.reset();
    stateDir = await mkdtemp(join(tmpdir(), dirPrefix));
    each(new FakeEc2().install(ec2Mock), stateDir);
  });
  afterEach(async () => {
    if (stateDir) await rm(stateDir, { recursive: true, force: true });
  });
  afterAll(() => ec2Mock.restore());
  return ec2Mock;
}
