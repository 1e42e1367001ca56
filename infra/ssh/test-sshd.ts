/**
 * Test support: the real OpenSSH server of infra/ssh/test-sshd.sh on 127.0.0.1. CI starts it
 * (.ci/run); a test that finds it not running starts it and stops it again afterwards, so the
 * tests run the same on a developer's machine. Only 127.0.0.1 is ever contacted.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { repoRoot } from './bundle.js';

export const TEST_SSHD_DIR = process.env['POE_BENCH_SSHD_DIR'] ?? '/tmp/poe-bench-sshd';
export const TEST_SSHD_PORT = Number(process.env['POE_BENCH_SSHD_PORT'] ?? 2222);

export interface TestSshd {
  readonly hostsFile: string;
  readonly clientKey: string;
  readonly port: number;
  /** Stops the server if this call started it. */
  release(): Promise<void>;
}

export async function useTestSshd(): Promise<TestSshd> {
  const script = join(repoRoot(), 'infra', 'ssh', 'test-sshd.sh');
  const pidFile = join(TEST_SSHD_DIR, 'sshd.pid');
  const wasRunning = existsSync(pidFile) && (await execa('sh', ['-c', `kill -0 "$(cat ${pidFile})"`], { reject: false })).exitCode === 0;
  if (!wasRunning) await execa(script, ['start', TEST_SSHD_DIR, String(TEST_SSHD_PORT)], { timeout: 30_000 });
  return {
    hostsFile: join(TEST_SSHD_DIR, 'hosts.yaml'),
    clientKey: join(TEST_SSHD_DIR, 'client_ed25519'),
    port: TEST_SSHD_PORT,
    async release() {
      if (!wasRunning) await execa(script, ['stop', TEST_SSHD_DIR], { reject: false, timeout: 30_000 });
    },
  };
}
