/**
 * Everything the aws backend does to the outside world, passed in (lodestar: constructors take
 * options, then dependencies): the EC2 client, the clock, sleeping, randomness, the SSH probe,
 * the question to the user, the process signals. Tests hand in a mocked EC2 client, a fake
 * probe, an instant sleep and an EventEmitter for signals.
 */
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { EC2Client } from '@aws-sdk/client-ec2';
import { translateAwsError } from './errors.js';
import { probeSshBanner, type SshProbe, type SshWaitTiming } from './ssh-probe.js';

/** The part of `process` the provisioned section needs: install and remove signal listeners. */
export interface SignalSource {
  on(signal: NodeJS.Signals, listener: () => void): unknown;
  off(signal: NodeJS.Signals, listener: () => void): unknown;
}

export interface AwsTiming {
  /** EC2 waiters (instance running, terminated) poll between these delays, in seconds. */
  readonly waiterMinDelaySeconds: number;
  readonly waiterMaxDelaySeconds: number;
  readonly runningMaxWaitSeconds: number;
  readonly terminatedMaxWaitSeconds: number;
  readonly ssh: SshWaitTiming;
  /**
   * Pause between retries of calls EC2 refuses for a while for consistency reasons: deleting a
   * security group whose instances' network interfaces are still detaching (DependencyViolation),
   * terminating an instance id RunInstances just returned (InvalidInstanceID.NotFound).
   */
  readonly retryDelayMs: number;
  readonly retryAttempts: number;
}

export const DEFAULT_TIMING: AwsTiming = {
  waiterMinDelaySeconds: 5,
  waiterMaxDelaySeconds: 30,
  runningMaxWaitSeconds: 600,
  terminatedMaxWaitSeconds: 900,
  ssh: { deadlineMs: 300_000, probeTimeoutMs: 5_000, retryIntervalMs: 5_000 },
  retryDelayMs: 5_000,
  retryAttempts: 24,
};

export interface AwsDeps {
  readonly ec2: EC2Client;
  readonly nowMs: () => number;
  /** Resolves after ms; rejects with the signal's reason if the signal is aborted first. */
  readonly sleepMs: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** The random part of a run id (hex). */
  readonly randomHex: () => string;
  readonly probeSsh: SshProbe;
  /** Progress lines (stderr in the CLI). */
  readonly log: (line: string) => void;
  /** Asks a yes/no question; undefined when nobody can answer (stdin is not a terminal). */
  readonly confirm: ((question: string) => Promise<boolean>) | undefined;
  readonly signals: SignalSource;
  readonly timing: AwsTiming;
}

export async function sleepMs(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await sleep(ms, undefined, signal === undefined ? undefined : { signal });
  } catch (err) {
    signal?.throwIfAborted();
    throw err;
  }
}

/** The real world: an EC2 client for `region` with the SDK's default credential chain. */
export function defaultAwsDeps(region: string, overrides: Partial<AwsDeps> = {}): AwsDeps {
  return {
    ec2: overrides.ec2 ?? new EC2Client({ region }),
    nowMs: Date.now,
    sleepMs,
    randomHex: () => randomBytes(3).toString('hex'),
    probeSsh: probeSshBanner,
    log: (line) => process.stderr.write(`${line}\n`),
    confirm: undefined,
    signals: process,
    timing: DEFAULT_TIMING,
    ...overrides,
  };
}

/** Runs one EC2 call, named by its action, and turns what the SDK throws into a named error. */
export async function ec2Call<T>(step: string, region: string, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (err) {
    throw translateAwsError(err, step, region);
  }
}
