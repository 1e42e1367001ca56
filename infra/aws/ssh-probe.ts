/**
 * "Accepts SSH" means sshd answers with its banner, not merely that the port is open: on a
 * booting instance the port can accept while sshd is still generating host keys. The probe is
 * a parameter so tests use a fake and never reach anything but 127.0.0.1.
 */
import { connect } from 'node:net';
import { SshNotReadyError } from './errors.js';

/** True when `host:port` sends an SSH identification string ("SSH-2.0-...") within timeoutMs. */
export type SshProbe = (host: string, port: number, timeoutMs: number) => Promise<boolean>;

/** RFC 4253 §4.2: the server's first bytes are "SSH-protoversion-...". */
const BANNER_PREFIX = 'SSH-';

export const probeSshBanner: SshProbe = (host, port, timeoutMs) =>
  new Promise((resolve) => {
    const socket = connect({ host, port });
    let received = '';
    let settled = false;
    const finish = (ok: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.length >= BANNER_PREFIX.length) finish(received.startsWith(BANNER_PREFIX));
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
  });

export interface SshWaitTiming {
  /** Give up on a host after this long in total. */
  readonly deadlineMs: number;
  /** One probe's limit. */
  readonly probeTimeoutMs: number;
  /** Pause between failed probes of one host. */
  readonly retryIntervalMs: number;
}

export interface SshWaitDeps {
  readonly probeSsh: SshProbe;
  readonly nowMs: () => number;
  readonly sleepMs: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/**
 * Probes every host in parallel until each answers; throws SshNotReadyError naming the hosts
 * that did not answer by the deadline, and the signal's reason if it is aborted meanwhile.
 */
export async function waitForSsh(hosts: readonly string[], port: number, timing: SshWaitTiming, deps: SshWaitDeps, signal?: AbortSignal): Promise<void> {
  const startMs = deps.nowMs();
  const deadlineMs = startMs + timing.deadlineMs;
  const waitOne = async (host: string): Promise<boolean> => {
    for (;;) {
      signal?.throwIfAborted();
      if (await deps.probeSsh(host, port, timing.probeTimeoutMs)) return true;
      if (deps.nowMs() + timing.retryIntervalMs > deadlineMs) return false;
      await deps.sleepMs(timing.retryIntervalMs, signal);
    }
  };
  const ready = await Promise.all(hosts.map(waitOne));
  signal?.throwIfAborted();
  const silent = hosts.filter((_, i) => !ready[i]);
  if (silent.length > 0) throw new SshNotReadyError(silent, deps.nowMs() - startMs);
}
