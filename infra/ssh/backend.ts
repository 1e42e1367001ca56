/**
 * The ssh backend (DESIGN.md "Backends": any list of hosts, over ssh2: ship the build, start,
 * collect, stop). It produces the same Cluster as the local backend, so `poe-bench run` drives
 * remote processes exactly as it drives local ones:
 *
 * 1. Log in to every host, in parallel, each step under a timeout; a host that is unreachable or
 *    refuses the login fails the launch with an error naming it (and every other failed host).
 * 2. Check each host: Node.js >= 20, tar, sha256sum; a missing one is a clear error.
 * 3. Ship the build (infra/ssh/bundle.ts) as one tarball, only to hosts that lack this exact
 *    build, checking its SHA-256 on the host before unpacking it.
 * 4. Start each replica and client machine on its own SSH connection: the exec channel's stdin
 *    and stdout carry the control protocol's JSON lines, stderr the process's log (also written
 *    to --log-dir), and the first stderr line the remote PID.
 * 5. Stop: ask over the control channel, close stdin (the process exits when it closes), then
 *    `kill -TERM <pid>` and `kill -KILL <pid>` over SSH. Signals go by PID through a shell, not
 *    through the channel: OpenSSH does not deliver channel signals to root's processes.
 *
 * A harness that dies leaves nothing running either: its connections drop, sshd closes the
 * processes' stdin, and they exit.
 */
import { createWriteStream, existsSync, mkdirSync, type WriteStream } from 'node:fs';
import { mkdir, rename, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { ClientChannel } from 'ssh2';
import { assembleCluster, type Cluster, type ClusterNode, type ExitInfo, type LaunchPlan, type NodeRole } from '../local/backend.js';
import { ControlClient } from '../process/control.js';
import { buildBundle, sha256File, type Bundle } from './bundle.js';
import { hostFor, type SshHost, type SshHosts } from './hosts.js';
import { DEFAULT_SSH_TIMEOUTS, remotePath, shq, SshError, SshSession, type SshTimeouts } from './session.js';

export const NODE_MAJOR_MIN = 20;
const STDERR_TAIL_LINES = 40;
const PID_MARKER = 'poe-bench-pid ';

export interface SshLaunchPlan extends LaunchPlan {
  /** Environment for one process (the emulated links). */
  readonly envFor?: (role: NodeRole, id: number) => Readonly<Record<string, string>>;
  readonly timeouts?: SshTimeouts;
  /** Where the local tarball is cached. */
  readonly bundleCacheDir?: string;
}

export class SshLaunchError extends Error {
  constructor(
    message: string,
    readonly failures: readonly Error[] = [],
  ) {
    super(message);
    this.name = 'SshLaunchError';
  }
}

/** The remote directory of one build. */
export function buildDir(host: SshHost, bundle: Bundle): string {
  return `${host.workDir.replace(/\/+$/, '')}/builds/${bundle.sha256.slice(0, 16)}`;
}

/** Runs `f` on every item in parallel; if any fails, throws one error listing every failure. */
async function allOrReport<T, R>(items: readonly T[], what: string, f: (item: T) => Promise<R>): Promise<R[]> {
  const settled = await Promise.allSettled(items.map(f));
  const failures = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected').map((s) => s.reason as Error);
  if (failures.length > 0) {
    throw new SshLaunchError(`${what} failed on ${failures.length} of ${items.length} host(s):\n${failures.map((e) => `  ${e.message}`).join('\n')}`, failures);
  }
  return settled.map((s) => (s as PromiseFulfilledResult<R>).value);
}

/** The node command as shell text: a path may start with ~/ (expanded remotely). */
export function nodeCommand(host: SshHost): string {
  return host.node.includes('/') ? remotePath(host.node) : shq(host.node);
}

export type Preflight = { readonly version: string } | { readonly missingNode: true; readonly platform: string };

/** Checks the tools a node needs: Node.js (its version, or that it is missing), tar, sha256sum. */
export async function preflight(session: SshSession): Promise<Preflight> {
  const host = session.host;
  const node = nodeCommand(host);
  const probe = [
    'echo "platform $(uname -s) $(uname -m)"',
    'for t in tar sha256sum gzip; do command -v "$t" >/dev/null 2>&1 || echo "missing-tool $t"; done',
    `command -v ${node} >/dev/null 2>&1 || { echo "missing-node"; exit 0; }`,
    `${node} -e 'process.stdout.write("node-version " + process.versions.node + "\\n")'`,
  ].join('; ');
  const out = await session.run('checking the host', probe);
  const tools = [...out.matchAll(/missing-tool (\S+)/g)].map((m) => m[1]!);
  if (tools.length > 0)
    throw new SshError(
      host.name,
      `missing ${tools.join(', ')}: install ${[...new Set(tools.map((t) => (t === 'sha256sum' ? 'coreutils' : t)))].join(' and ')}`,
    );
  const platform = /platform (.+)/.exec(out)?.[1]?.trim() ?? 'unknown';
  if (out.includes('missing-node')) return { missingNode: true, platform };
  const version = /node-version (\S+)/.exec(out)?.[1];
  if (!version) throw new SshError(host.name, `${host.node} did not report its version: ${out.trim().slice(0, 200)}`);
  if (Number(version.split('.')[0]) < NODE_MAJOR_MIN)
    throw new SshError(host.name, `Node.js ${version} is too old: the replicas need ${NODE_MAJOR_MIN} or later`);
  return { version };
}

/** `uname -s -m` of this machine, as the host would print it. */
export function localPlatform(): string {
  const arch: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64' };
  return `${process.platform === 'linux' ? 'Linux' : process.platform} ${arch[process.arch] ?? process.arch}`;
}

/** This machine's node binary, gzipped once per version into the cache. */
async function localNodeArchive(cacheDir: string): Promise<{ path: string; sha256: string; bytes: number }> {
  await mkdir(cacheDir, { recursive: true });
  const path = join(cacheDir, `node-${process.version}-${process.platform}-${process.arch}.gz`);
  if (!existsSync(path)) {
    const part = `${path}.${process.pid}.part`;
    await execa('gzip', ['-1', '-c', process.execPath], { stdout: { file: part }, timeout: 120_000 });
    await rename(part, path);
  }
  return { path, sha256: await sha256File(path), bytes: (await stat(path)).size };
}

/**
 * Installs this machine's Node.js on a host that has none (same OS and CPU architecture
 * only): the binary is shipped gzipped, its SHA-256 checked there, and it must run
 * (`node --version`) before it is used. Returns the node path on the host.
 */
export async function installNode(session: SshSession, platform: string, cacheDir: string, timeouts: SshTimeouts): Promise<string> {
  const host = session.host;
  const here = localPlatform();
  if (platform !== here) {
    throw new SshError(
      host.name,
      `${host.node} not found, and this machine's Node.js (${here}) does not fit the host (${platform}): install Node.js ${NODE_MAJOR_MIN} or later there, or set \`node:\` in the hosts file to its path`,
    );
  }
  const archive = await localNodeArchive(cacheDir);
  const target = `${host.workDir.replace(/\/+$/, '')}/node/${process.version}-${archive.sha256.slice(0, 12)}`;
  const dir = remotePath(target);
  const script = [
    'set -e',
    `if [ -x ${dir}/node ]; then exit 0; fi`,
    `mkdir -p ${remotePath(`${host.workDir.replace(/\/+$/, '')}/node`)}`,
    `t=$(mktemp -d ${remotePath(`${host.workDir.replace(/\/+$/, '')}/node`)}/.upload.XXXXXX)`,
    'trap \'rm -rf "$t"\' EXIT',
    'cat > "$t/node.gz"',
    `echo ${shq(`${archive.sha256}  node.gz`)} > "$t/node.sha256"`,
    `(cd "$t" && sha256sum -c --quiet node.sha256) || { echo "Node.js arrived corrupted (SHA-256 mismatch)" >&2; exit 3; }`,
    'gunzip "$t/node.gz"',
    'chmod 755 "$t/node"',
    '"$t/node" --version >/dev/null || { echo "this machine\'s Node.js does not run there (missing libraries?)" >&2; exit 4; }',
    'rm -f "$t/node.sha256"',
    `mv -T "$t" ${dir} || test -x ${dir}/node`,
    'trap - EXIT',
  ].join('\n');
  try {
    await session.run(`installing Node.js ${process.version} (${(archive.bytes / 1e6).toFixed(0)} MB)`, `sh -c ${shq(script)}`, {
      stdin: { file: archive.path },
      timeoutMs: timeouts.uploadMs,
    });
  } catch (err) {
    throw new SshError(
      host.name,
      `${host.node} not found, and installing this machine's Node.js failed (${(err as Error).message.replace(/^ssh \S+: /, '')}): install Node.js ${NODE_MAJOR_MIN} or later there`,
    );
  }
  return `${target}/node`;
}

/** Node.js on the host: its own, or (installNode) this machine's, shipped. Returns the node to run. */
export async function ensureNode(session: SshSession, cacheDir: string, timeouts: SshTimeouts): Promise<{ node: string; version: string; installed: boolean }> {
  const pre = await preflight(session);
  if ('version' in pre) return { node: session.host.node, version: pre.version, installed: false };
  if (!session.host.installNode) {
    throw new SshError(
      session.host.name,
      `${session.host.node} not found: install Node.js ${NODE_MAJOR_MIN} or later there, or set \`node:\` in the hosts file to its path`,
    );
  }
  const node = await installNode(session, pre.platform, cacheDir, timeouts);
  return { node, version: process.versions.node, installed: true };
}

/** Ships `bundle` unless the host has it; checks the checksum there before unpacking. */
export async function ship(session: SshSession, bundle: Bundle, timeouts: SshTimeouts): Promise<'present' | 'shipped'> {
  const dir = remotePath(buildDir(session.host, bundle));
  const builds = remotePath(`${session.host.workDir.replace(/\/+$/, '')}/builds`);
  const has = await session.exec('looking for the build', `test -f ${dir}/.complete`);
  if (has.code === 0) return 'present';
  // Unpack into a fresh directory and move it into place: a concurrent or interrupted upload
  // never leaves a half-unpacked build where a run would use it.
  const script = [
    'set -e',
    `mkdir -p ${builds}`,
    `t=$(mktemp -d ${builds}/.upload.XXXXXX)`,
    'trap \'rm -rf "$t"\' EXIT',
    'cat > "$t/bundle.tar.gz"',
    `echo ${shq(`${bundle.sha256}  bundle.tar.gz`)} > "$t/bundle.sha256"`,
    `(cd "$t" && sha256sum -c --quiet bundle.sha256) || { echo "the build arrived corrupted (SHA-256 mismatch)" >&2; exit 3; }`,
    'tar -xzf "$t/bundle.tar.gz" -C "$t"',
    'rm "$t/bundle.tar.gz" "$t/bundle.sha256"',
    'touch "$t/.complete"',
    `if [ -e ${dir} ]; then exit 0; fi`,
    `mv -T "$t" ${dir} || test -f ${dir}/.complete`,
    'trap - EXIT',
  ].join('\n');
  await session.run(`shipping the build (${(bundle.bytes / 1e6).toFixed(1)} MB)`, `sh -c ${shq(script)}`, {
    stdin: { file: bundle.path },
    timeoutMs: timeouts.uploadMs,
  });
  return 'shipped';
}

class SshNode implements ClusterNode {
  readonly name: string;
  readonly control: ControlClient;
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  pid: number | undefined;
  private readonly tail: string[] = [];
  private partial = '';
  private log: WriteStream | undefined;
  private pidWaiters: Array<(pid: number | undefined) => void> = [];

  constructor(
    readonly role: NodeRole,
    readonly id: number,
    readonly sshHost: SshHost,
    /** Where the other nodes reach this one. */
    readonly host: string,
    readonly listenPort: number | undefined,
    private readonly session: SshSession,
    private readonly channel: ClientChannel,
    logDir: string | undefined,
  ) {
    this.name = `${role} ${id}`;
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      this.log = createWriteStream(join(logDir, `${role}-${id}.log`));
    }
    channel.stderr.on('data', (chunk: Buffer) => this.onStderr(chunk));
    this.control = new ControlClient(`${this.name} on ${sshHost.name}`, channel, channel);
    let code: number | undefined;
    let signal: string | undefined;
    channel.on('exit', (c: number | null, s?: string) => {
      code = c ?? undefined;
      signal = s ?? undefined;
    });
    channel.on('error', () => undefined);
    this.exited = new Promise<ExitInfo>((resolve) => channel.once('close', () => resolve(this.onExit(code, signal))));
  }

  private onExit(code: number | undefined, signal: string | undefined): ExitInfo {
    const info: ExitInfo = { code, signal: signal === undefined ? undefined : `SIG${signal.replace(/^SIG/, '')}` };
    this.exitInfo = info;
    this.log?.end();
    for (const w of this.pidWaiters.splice(0)) w(this.pid);
    const how = info.signal ? `on signal ${info.signal}` : info.code !== undefined ? `with code ${info.code}` : '(the SSH channel closed)';
    const tail = this.stderrTail();
    this.control.fail(new Error(`${this.name} (pid ${this.pid} on ${this.sshHost.name}) exited ${how}${tail ? `; its last words:\n${tail}` : ''}`));
    this.session.close();
    return info;
  }

  private onStderr(chunk: Buffer): void {
    const text = this.partial + chunk.toString();
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) {
      if (this.pid === undefined && l.startsWith(PID_MARKER)) {
        this.pid = Number(l.slice(PID_MARKER.length));
        for (const w of this.pidWaiters.splice(0)) w(this.pid);
        continue;
      }
      this.log?.write(`${l}\n`);
      this.tail.push(l);
      if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift();
    }
  }

  /** The remote PID, once the process has announced it (undefined if it exited first). */
  whenPid(timeoutMs: number): Promise<number | undefined> {
    if (this.pid !== undefined || this.exitInfo) return Promise.resolve(this.pid);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(this.pid), timeoutMs);
      this.pidWaiters.push((pid) => {
        clearTimeout(timer);
        resolve(pid);
      });
    });
  }

  stderrTail(): string {
    return [...this.tail, this.partial].filter((l) => l.trim() !== '').join('\n');
  }

  closeStdin(): void {
    this.channel.end();
  }

  /** Closes the channel (and with it the connection) whatever the process does. */
  abandon(): void {
    this.channel.close();
    this.session.close();
  }
}

/** The shell command that starts one process in the build directory and announces its PID. */
export function startCommand(host: SshHost, bundle: Bundle, role: NodeRole, nodeArgs: readonly string[], env: Readonly<Record<string, string>>): string {
  const entry = role === 'replica' ? 'dist/infra/process/replica-main.js' : 'dist/infra/process/client-main.js';
  const vars = Object.entries({ NODE_OPTIONS: '', ...env }).map(([k, v]) => {
    if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`bad environment variable name ${k}`);
    return `${k}=${shq(v)}`;
  });
  return [
    `cd ${remotePath(buildDir(host, bundle))}`,
    `echo "${PID_MARKER}$$" >&2`,
    ['exec env', ...vars, nodeCommand(host), ...nodeArgs.map(shq), entry].join(' '),
  ].join(' && ');
}

/** Sends `signal` to the given PIDs on one host; best effort (the process may be gone). */
async function killRemote(session: SshSession, pids: readonly number[], signal: 'TERM' | 'KILL'): Promise<void> {
  if (pids.length === 0 || !session.alive) return;
  await session.exec(`kill -${signal}`, `kill -${signal} ${pids.join(' ')} 2>/dev/null; true`).catch(() => undefined);
}

/**
 * Starts the plan's processes on the hosts; resolves once every process is started (waiting
 * for `configure`). On any failure, everything started so far is stopped before it throws.
 */
export async function launchSsh(hosts: SshHosts, plan: SshLaunchPlan): Promise<Cluster> {
  const timeouts = plan.timeouts ?? DEFAULT_SSH_TIMEOUTS;
  const assignments: { role: NodeRole; id: number; host: SshHost }[] = [
    ...plan.replicas.map((id) => ({ role: 'replica' as const, id, host: hostFor(hosts, 'replica', id) })),
    ...plan.clients.map((id) => ({ role: 'client' as const, id, host: hostFor(hosts, 'client', id) })),
  ];
  if (hosts.portRange) {
    const top = Math.max(...plan.replicas) + hosts.portRange.fromPort;
    if (top > hosts.portRange.toPort)
      throw new SshLaunchError(
        `replica ports ${hosts.portRange.fromPort}-${top} do not fit the open range ${hosts.portRange.fromPort}-${hosts.portRange.toPort}`,
      );
  }
  // One admin session per distinct login and work directory: checks, shipping, kill.
  const distinct = new Map<string, SshHost>();
  for (const a of assignments) distinct.set(`${a.host.name} ${a.host.workDir}`, a.host);
  const admins = new Map<string, SshSession>();
  const nodes: SshNode[] = [];
  const adminFor = (h: SshHost): SshSession => admins.get(`${h.name} ${h.workDir}`)!;
  const closeAll = (): void => {
    for (const n of nodes) n.abandon();
    for (const s of admins.values()) s.close();
  };
  try {
    const cacheDir = plan.bundleCacheDir ?? join(tmpdir(), 'poe-bench-bundles');
    const bundlePromise = buildBundle(cacheDir);
    bundlePromise.catch(() => undefined);
    const sessions = await allOrReport([...distinct.entries()], 'logging in', async ([key, h]) => {
      const s = await SshSession.connect(h, timeouts);
      admins.set(key, s);
      return s;
    });
    const found = await allOrReport(sessions, 'checking the hosts', (s) => ensureNode(s, cacheDir, timeouts));
    const nodeFor = new Map(sessions.map((s, i) => [`${s.host.name} ${s.host.workDir}`, found[i]!.node]));
    const bundle = await bundlePromise;
    await allOrReport(sessions, 'shipping the build', (s) => ship(s, bundle, timeouts));
    await allOrReport(assignments, 'starting the processes', async (assigned) => {
      const a = { ...assigned, host: { ...assigned.host, node: nodeFor.get(`${assigned.host.name} ${assigned.host.workDir}`) ?? assigned.host.node } };
      const session = await SshSession.connect(a.host, timeouts);
      let channel: ClientChannel;
      try {
        const env = plan.envFor?.(a.role, a.id) ?? {};
        channel = await session.spawn(startCommand(a.host, bundle, a.role, plan.nodeArgs?.[a.role] ?? [], env), timeouts.commandMs);
      } catch (err) {
        session.close();
        throw err;
      }
      const listenPort = a.role === 'replica' && hosts.portRange ? hosts.portRange.fromPort + a.id : undefined;
      const node = new SshNode(a.role, a.id, a.host, a.host.address, listenPort, session, channel, plan.logDir);
      nodes.push(node);
      if ((await node.whenPid(timeouts.commandMs)) === undefined) {
        throw new SshError(a.host.name, `${node.name} did not start: ${node.stderrTail() || 'no output'}`);
      }
    });
  } catch (err) {
    await stopAll(nodes, adminFor, 0).catch(() => undefined);
    closeAll();
    throw err;
  }
  // Keep the order of the plan: replicas by id, then clients.
  nodes.sort((a, b) => (a.role === b.role ? a.id - b.id : a.role === 'replica' ? -1 : 1));
  return makeCluster(nodes, adminFor, closeAll);
}

function waitAll(nodes: readonly SshNode[], ms: number): Promise<boolean> {
  return Promise.race([Promise.all(nodes.map((n) => n.exited)).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
}

/** Closes stdin, then TERM, then KILL by PID; resolves when all exited or gave up. */
async function stopAll(nodes: readonly SshNode[], adminFor: (h: SshHost) => SshSession, graceMs: number): Promise<void> {
  const live = nodes.filter((n) => !n.exitInfo);
  for (const n of live) n.closeStdin();
  if (await waitAll(live, graceMs)) return;
  for (const sig of ['TERM', 'KILL'] as const) {
    const left = live.filter((n) => !n.exitInfo);
    await Promise.all(
      groupByHost(left).map(([h, ns]) =>
        killRemote(
          adminFor(h),
          ns.map((n) => n.pid).filter((p): p is number => p !== undefined),
          sig,
        ),
      ),
    );
    if (await waitAll(left, Math.max(graceMs, 1000))) return;
  }
  // The connection to a host is gone: nothing more can be done from here.
  for (const n of live.filter((x) => !x.exitInfo)) n.abandon();
}

function groupByHost(nodes: readonly SshNode[]): [SshHost, SshNode[]][] {
  const groups = new Map<string, [SshHost, SshNode[]]>();
  for (const n of nodes) {
    const key = `${n.sshHost.name} ${n.sshHost.workDir}`;
    const g = groups.get(key) ?? [n.sshHost, []];
    g[1].push(n);
    groups.set(key, g);
  }
  return [...groups.values()];
}

function makeCluster(nodes: SshNode[], adminFor: (h: SshHost) => SshSession, closeAll: () => void): Cluster {
  return assembleCluster(nodes, {
    async afterShutdownRequest(_live, graceMs) {
      await stopAll(nodes, adminFor, graceMs);
      closeAll();
    },
    async kill() {
      const live = nodes.filter((n) => !n.exitInfo);
      await Promise.all(
        groupByHost(live).map(([h, ns]) =>
          killRemote(
            adminFor(h),
            ns.map((n) => n.pid).filter((p): p is number => p !== undefined),
            'KILL',
          ),
        ),
      );
      await stopAll(nodes, adminFor, 1000);
      closeAll();
    },
  });
}
