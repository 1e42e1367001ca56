/**
 * Tests that run the aws path listen on the fixed harness port range (infra/aws
 * HARNESS_PORT_RANGE, 7000 + replica id), as the security group requires. Two such test files
 * running at once in different vitest workers would collide ("port 7001 is in use"); this lock,
 * a file created exclusively, makes them take turns. A lock left by a dead process is taken over.
 */
import { closeSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOCK = join(tmpdir(), 'poe-bench-harness-ports.lock');

function holderAlive(): boolean {
  try {
    const pid = Number(readFileSync(LOCK, 'utf8'));
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but is not ours to signal; anything else: no holder.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits (up to `timeoutMs`) for the port range; returns the function that releases it. */
export async function lockHarnessPorts(timeoutMs = 600_000): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(LOCK, 'wx');
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(LOCK, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!holderAlive()) {
        rmSync(LOCK, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`the harness port range stayed locked by ${LOCK} for ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
