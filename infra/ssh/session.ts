/**
 * One SSH login (ssh2) with a timeout on every step: connecting and logging in, each remote
 * command, each upload. Errors name the host and the step, and say what went wrong in words
 * (refused, unreachable, login failed) rather than an errno.
 *
 * Commands run through the remote user's shell. Everything this module interpolates into a
 * command is quoted with `shq` (or is a validated path), so a value never becomes shell code.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { SshHost } from './hosts.js';

export class SshError extends Error {
  constructor(
    readonly host: string,
    message: string,
  ) {
    super(`ssh ${host}: ${message}`);
    this.name = 'SshError';
  }
}

export interface SshTimeouts {
  /** TCP connect, key exchange and login. */
  readonly connectMs: number;
  /** One short remote command (checks, kill, mkdir). */
  readonly commandMs: number;
  /** Uploading and unpacking the build. */
  readonly uploadMs: number;
}

export const DEFAULT_SSH_TIMEOUTS: SshTimeouts = { connectMs: 15_000, commandMs: 20_000, uploadMs: 300_000 };

/** Single-quotes `s` for a POSIX shell. */
export function shq(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`;
}

/** A remote path as shell text: `~/x` becomes "$HOME"/'x' (expanded remotely), others quoted. */
export function remotePath(path: string): string {
  if (path === '~') return '"$HOME"';
  if (path.startsWith('~/')) return `"$HOME"/${shq(path.slice(2))}`;
  return shq(path);
}

function describeConnectError(err: Error & { level?: string; code?: string }, host: SshHost, timeoutMs: number): string {
  if (err.level === 'client-authentication') return `login failed as ${host.user} with the key ${host.keyPath} (the server refused it)`;
  if (err.level === 'client-timeout' || /timed out/i.test(err.message)) return `no SSH answer within ${timeoutMs} ms (is the host up and the port open?)`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `connection refused on port ${host.port} (no SSH server listening?)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve ${host.host}`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${host.host} is unreachable`;
    case 'ECONNRESET':
      return 'the connection was reset during login';
  }
  return err.message;
}

export interface ExecResult {
  readonly code: number | null;
  readonly signal: string | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

export class SshSession {
  private closed = false;
  private lostReason: string | undefined;

  private constructor(
    readonly host: SshHost,
    private readonly client: Client,
    private readonly timeouts: SshTimeouts,
  ) {
    client.on('error', (err: Error) => (this.lostReason = err.message));
    client.on('close', () => {
      this.closed = true;
      this.lostReason ??= 'connection closed';
    });
  }

  /** Connects and logs in; throws SshError naming the host on any failure. */
  static connect(host: SshHost, timeouts: SshTimeouts = DEFAULT_SSH_TIMEOUTS): Promise<SshSession> {
    let privateKey: Buffer;
    try {
      privateKey = readFileSync(host.keyPath);
    } catch (err) {
      return Promise.reject(new SshError(host.name, `cannot read the key ${host.keyPath}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`));
    }
    return new Promise((resolve, reject) => {
      const client = new Client();
      let settled = false;
      const fail = (message: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        client.end();
        client.destroy();
        reject(new SshError(host.name, message));
      };
      // ssh2's readyTimeout covers the handshake only; this covers everything up to ready.
      const timer = setTimeout(() => fail(`no SSH answer within ${timeouts.connectMs} ms (is the host up and the port open?)`), timeouts.connectMs);
      client.once('ready', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(new SshSession(host, client, timeouts));
      });
      let keyMismatch = false;
      client.once('error', (err: Error & { level?: string; code?: string }) =>
        fail(keyMismatch ? `the host key does not match hostKeySha256 ${host.hostKeySha256} (refused)` : describeConnectError(err, host, timeouts.connectMs)),
      );
      client.once('close', () => fail('the connection closed during login'));
      const config: ConnectConfig = {
        host: host.host,
        port: host.port,
        username: host.user,
        privateKey,
        readyTimeout: timeouts.connectMs,
        keepaliveInterval: 5_000,
        keepaliveCountMax: 4,
        ...(host.hostKeySha256
          ? {
              hostVerifier: (key: Buffer) => {
                const ok = createHash('sha256').update(key).digest('base64').replace(/=+$/, '') === host.hostKeySha256!.replace(/=+$/, '');
                keyMismatch = !ok;
                return ok;
              },
            }
          : {}),
      };
      try {
        client.connect(config);
      } catch (err) {
        fail((err as Error).message);
      }
    });
  }

  get alive(): boolean {
    return !this.closed;
  }

  /** Opens an exec channel for a long-lived process (its stdin/stdout are the channel). */
  spawn(command: string, timeoutMs = this.timeouts.commandMs): Promise<ClientChannel> {
    if (this.closed) return Promise.reject(new SshError(this.host.name, `cannot start a command: ${this.lostReason ?? 'connection closed'}`));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new SshError(this.host.name, `the server did not open a channel within ${timeoutMs} ms`)), timeoutMs);
      this.client.exec(command, (err, channel) => {
        clearTimeout(timer);
        if (err) reject(new SshError(this.host.name, `cannot start a command: ${err.message}`));
        else resolve(channel);
      });
    });
  }

  /**
   * Runs `command` to completion with `stdin` (a string, or a local file streamed in) and
   * collects its output; on timeout the channel is closed and SshError names the step.
   */
  async exec(step: string, command: string, options: { timeoutMs?: number; stdin?: string | { file: string } } = {}): Promise<ExecResult> {
    const timeoutMs = options.timeoutMs ?? this.timeouts.commandMs;
    const channel = await this.spawn(command, timeoutMs);
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let code: number | null = null;
      let signal: string | undefined;
      let done = false;
      const timer = setTimeout(() => {
        if (done) return;
        done = true;
        channel.close();
        reject(new SshError(this.host.name, `${step}: no result within ${timeoutMs} ms`));
      }, timeoutMs);
      channel.on('data', (d: Buffer) => out.push(d));
      channel.stderr.on('data', (d: Buffer) => err.push(d));
      channel.on('exit', (c: number | null, s?: string) => {
        code = c;
        signal = s ?? undefined;
      });
      channel.on('error', () => undefined);
      channel.on('close', () => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
      });
      if (options.stdin === undefined) channel.end();
      else if (typeof options.stdin === 'string') channel.end(options.stdin);
      else {
        const file = createReadStream(options.stdin.file);
        file.on('error', (e) => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          channel.close();
          reject(
            new SshError(this.host.name, `${step}: cannot read ${options.stdin && typeof options.stdin === 'object' ? options.stdin.file : ''}: ${e.message}`),
          );
        });
        file.pipe(channel);
      }
    });
  }

  /** Like exec, but a non-zero exit is an SshError with the command's stderr. */
  async run(step: string, command: string, options: { timeoutMs?: number; stdin?: string | { file: string } } = {}): Promise<string> {
    const r = await this.exec(step, command, options);
    if (r.code !== 0) {
      const why = r.stderr.trim() || r.stdout.trim() || (r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`);
      throw new SshError(this.host.name, `${step} failed: ${why}`);
    }
    return r.stdout;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.client.end();
  }

  /** Resolves when the connection has closed (after close(), or when it is lost). */
  whenClosed(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.client.once('close', () => resolve()));
  }
}
