/**
 * The local backend (DESIGN.md "Backends": the default): replica and client processes on this
 * machine, on loopback, started with execa and driven over their control channel.
 *
 * No orphans, ever. Every child is started with execa's `cleanup` (killed if the harness
 * exits), and the children exit by themselves when their stdin closes, which also covers a
 * harness killed with SIGKILL. `shutdown` asks politely, then SIGTERM, then SIGKILL, and
 * resolves only once every child has exited; tests check that no child PID is left.
 */
import { existsSync, mkdirSync, createWriteStream, type WriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa, type ResultPromise } from 'execa';
import { ControlClient } from '../process/control.js';

export type NodeRole = 'replica' | 'client';

export interface ExitInfo {
  readonly code: number | undefined;
  readonly signal: string | undefined;
}

/** One process of a cluster, whatever backend runs it. */
export interface ClusterNode {
  /** 'replica 2', 'client 0'. */
  readonly name: string;
  readonly role: NodeRole;
  readonly id: number;
  readonly pid: number | undefined;
  readonly control: ControlClient;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  readonly exitInfo: ExitInfo | undefined;
  /** Where the other nodes reach this process and where it listens (a namespace's or host's address); default: the spec's host. */
  readonly host?: string;
  /** The port a replica must listen on (e.g. inside a firewall's open range); default: the spec's. */
  readonly listenPort?: number;
  /** The last lines the process wrote to stderr (for error messages). */
  stderrTail(): string;
}

export interface Cluster {
  readonly nodes: readonly ClusterNode[];
  /** `cb` runs once for the first process that exits before shutdown began. */
  onUnexpectedExit(cb: (node: ClusterNode, info: ExitInfo) => void): void;
  /** Asks every process to shut down, then escalates; resolves when all have exited. */
  shutdown(graceMs?: number): Promise<void>;
  /** SIGKILL to every process; resolves when all have exited. */
  kill(): Promise<void>;
  pids(): number[];
}

export interface LaunchPlan {
  readonly replicas: readonly number[];
  readonly clients: readonly number[];
  /** Extra node flags per role, e.g. ['--cpu-prof', '--cpu-prof-dir=...']. */
  readonly nodeArgs?: Partial<Record<NodeRole, readonly string[]>>;
  /** When set, each process's stderr is also written to <logDir>/<role>-<id>.log. */
  readonly logDir?: string;
  /**
   * How to start one process (a wrapper such as taskset, extra environment); by default
   * `node <nodeArgs> <entry point>`. `nodeArgs` already holds the plan's and the environment's flags.
   */
  readonly command?: (role: NodeRole, id: number, nodeArgs: readonly string[]) => ProcessCommand;
}

export interface ProcessCommand {
  readonly file: string;
  readonly args: readonly string[];
  /** Added to the harness's environment. */
  readonly env?: Readonly<Record<string, string>>;
  /** Where the process listens and the other nodes reach it (ClusterNode.host). */
  readonly host?: string;
}

const STDERR_TAIL_LINES = 40;

/** The repository root (this file lives in infra/local, or in dist/infra/local once built). */
function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = resolve(here, '..', '..');
  return up.endsWith(`${'/'}dist`) ? resolve(up, '..') : up;
}

/** The compiled entry of a process; runs from the build, also when the harness runs from source. */
export function entryPoint(role: NodeRole): string {
  const file = join(repoRoot(), 'dist', 'infra', 'process', role === 'replica' ? 'replica-main.js' : 'client-main.js');
  if (!existsSync(file)) throw new Error(`${file} does not exist: run \`npm run build\` first`);
  return file;
}

class LocalNode implements ClusterNode {
  readonly name: string;
  readonly control: ControlClient;
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | undefined;
  private readonly tail: string[] = [];
  private partial = '';
  private log: WriteStream | undefined;

  constructor(
    readonly role: NodeRole,
    readonly id: number,
    private readonly child: ResultPromise<{ stdin: 'pipe'; stdout: 'pipe'; stderr: 'pipe'; reject: false; buffer: false }>,
    logDir: string | undefined,
    readonly host?: string,
  ) {
    this.name = `${role} ${id}`;
    if (logDir) {
      mkdirSync(logDir, { recursive: true });
      this.log = createWriteStream(join(logDir, `${role}-${id}.log`));
    }
    child.stderr.on('data', (chunk: Buffer) => this.onStderr(chunk));
    this.control = new ControlClient(this.name, child.stdin, child.stdout);
    this.exited = child.then(
      (r) => this.onExit(r.exitCode, r.signal),
      () => this.onExit(undefined, undefined),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  private onExit(code: number | undefined, signal: string | undefined): ExitInfo {
    const info: ExitInfo = { code, signal };
    this.exitInfo = info;
    this.log?.end();
    this.control.fail(new Error(`${this.name} (pid ${this.pid}) exited ${describeExit(info)}${this.fatalSuffix()}`));
    return info;
  }

  private fatalSuffix(): string {
    const t = this.stderrTail();
    return t ? `; its last words:\n${t}` : '';
  }

  private onStderr(chunk: Buffer): void {
    this.log?.write(chunk);
    const text = this.partial + chunk.toString();
    const lines = text.split('\n');
    this.partial = lines.pop() ?? '';
    for (const l of lines) {
      this.tail.push(l);
      if (this.tail.length > STDERR_TAIL_LINES) this.tail.shift();
    }
  }

  stderrTail(): string {
    return [...this.tail, this.partial].filter((l) => l.trim() !== '').join('\n');
  }

  /** Closes stdin: the process exits on its own. */
  closeStdin(): void {
    this.child.stdin.end();
  }

  signal(sig: NodeJS.Signals): void {
    if (!this.exitInfo) this.child.kill(sig);
  }
}

export function describeExit(info: ExitInfo): string {
  if (info.signal) return `on signal ${info.signal}`;
  if (info.code !== undefined) return `with code ${info.code}`;
  return 'abnormally';
}

/** Starts the processes of a plan on this machine; they wait for `configure`. */
export function launchLocal(plan: LaunchPlan): Cluster {
  const nodes: LocalNode[] = [];
  const start = (role: NodeRole, id: number): void => {
    // POE_BENCH_NODE_ARGS adds node flags to every process (e.g. --trace-gc; its output, on
    // stdout, is shown with POE_BENCH_TRACE=1). They come last: of two values of one V8 flag the
    // last wins, so they override the run spec's --node-flags.
    const envArgs = (process.env['POE_BENCH_NODE_ARGS'] ?? '').split(' ').filter(Boolean);
    const nodeArgs = [...(plan.nodeArgs?.[role] ?? []), ...envArgs];
    const cmd = plan.command?.(role, id, nodeArgs) ?? { file: process.execPath, args: [...nodeArgs, entryPoint(role)] };
    const child = execa(cmd.file, [...cmd.args], {
      stdin: 'pipe',
      stdout: 'pipe',
      stderr: 'pipe',
      reject: false,
      buffer: false,
      cleanup: true,
      forceKillAfterDelay: 2000,
      env: { ...process.env, NODE_OPTIONS: '', ...cmd.env },
    });
    nodes.push(new LocalNode(role, id, child, plan.logDir, cmd.host));
  };
  for (const id of plan.replicas) start('replica', id);
  for (const id of plan.clients) start('client', id);

  const allExited = (): Promise<void> => Promise.all(nodes.map((n) => n.exited)).then(() => undefined);
  const waitFor = (ms: number): Promise<boolean> =>
    Promise.race([allExited().then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);

  return assembleCluster(nodes, {
    async afterShutdownRequest(live, graceMs) {
      // Every process closes its sockets and exits once its stdin closes.
      for (const n of live) n.closeStdin();
      if (await waitFor(graceMs)) return;
      for (const n of nodes) n.signal('SIGTERM');
      if (await waitFor(graceMs)) return;
      for (const n of nodes) n.signal('SIGKILL');
      await allExited();
    },
    async kill() {
      for (const n of nodes) n.signal('SIGKILL');
      await allExited();
    },
  });
}

/** How a backend ends its processes once the polite `shutdown` request has been sent. */
export interface ClusterStopper<N extends ClusterNode> {
  /** After every live node was asked to shut down: make sure all have exited. */
  afterShutdownRequest(live: N[], graceMs: number): Promise<void>;
  /** End every process at once; resolves when all have exited. */
  kill(): Promise<void>;
}

/**
 * The part of a Cluster that every backend shares (local, ssh, and those built on them): the
 * first unexpected exit is reported once, never during a shutdown; shutdown asks every live
 * process first, then leaves the rest to the backend.
 */
export function assembleCluster<N extends ClusterNode>(nodes: N[], stopper: ClusterStopper<N>): Cluster {
  let shuttingDown = false;
  let reported = false;
  const callbacks: Array<(node: ClusterNode, info: ExitInfo) => void> = [];
  for (const node of nodes) {
    void node.exited.then((info) => {
      if (shuttingDown || reported) return;
      reported = true;
      for (const cb of callbacks) cb(node, info);
    });
  }
  return {
    nodes,
    onUnexpectedExit: (cb) => callbacks.push(cb),
    pids: () => nodes.map((n) => n.pid).filter((p): p is number => p !== undefined),
    async shutdown(graceMs = 3000) {
      shuttingDown = true;
      const live = nodes.filter((n) => !n.exitInfo);
      await Promise.allSettled(live.map((n) => n.control.request({ cmd: 'shutdown' }, graceMs)));
      await stopper.afterShutdownRequest(live, graceMs);
    },
    async kill() {
      shuttingDown = true;
      await stopper.kill();
    },
  };
}
