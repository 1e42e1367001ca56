/**
 * The netns backend (DESIGN.md "Backends"): each replica and each client machine in its own
 * Linux network namespace, all on one bridge, with addresses from one private subnet
 * (10.222.0.0/16 unless --subnet says otherwise) that exists only inside those namespaces.
 *
 * Layout, for run id <id>:
 *
 *   pbn-<id>-hub            a namespace holding only the bridge br0
 *   pbn-<id>-r<i>           replica i: eth0 = <subnet>.(1 + i), a veth whose peer r<i> is on br0
 *   pbn-<id>-c<o>           client machine o: eth0 = <subnet>.(1 + n + o), peer c<o> on br0
 *
 * The bridge lives in its own namespace rather than in the host's, so nothing is added to the
 * host's network namespace at all: no interface, no address, no route, no firewall rule, and
 * the host's firewall (Docker sets FORWARD to DROP) cannot interfere. Traffic stays between the
 * namespaces. Deleting the namespaces deletes everything, veths, bridge and qdiscs included.
 *
 * Processes are started like the local backend's, through `ip netns exec <ns>` (and `taskset`
 * when pinned), so the cluster, its control channels and its shutdown are the local ones.
 * Teardown runs when the cluster is shut down or killed; after a crash of the harness,
 * `poe-bench infra netns clean` finds the namespaces by their prefix and removes them.
 */
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { nodeLinkConfig, linkEnv, linkBetween, type LinkSpec } from '../link.js';
import { clientPeer, type Peer } from '../../replica/types.js';
import { entryPoint, launchLocal, type Cluster, type LaunchPlan, type NodeRole } from '../local/backend.js';
import { addressAt, checkSubnetFree, parseSubnet, NETNS_SUBNET, type Subnet } from './subnet.js';
import { applyTc, detectNetem, tcCommands, transportApply } from './tc.js';

export const NETNS_PREFIX = 'pbn-';
const STEP_TIMEOUT_MS = 10_000;

export class NetnsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NetnsError';
  }
}

export interface NetnsOptions {
  readonly subnet?: string;
  readonly link: LinkSpec;
  /** CPUs to pin nodes to, round-robin in plan order; undefined: no pinning. */
  readonly pinCpus?: readonly number[];
  readonly seed: number;
  /** Total replicas of the run (crashed ones included): fixes the client addresses. */
  readonly replicasTotal: number;
  /** Run id (default random); names every namespace. */
  readonly runId?: string;
}

interface NetnsNode {
  readonly role: NodeRole;
  readonly id: number;
  readonly peer: Peer;
  readonly ns: string;
  readonly hubDev: string;
  readonly ip: string;
}

async function ip(args: readonly string[], what: string): Promise<void> {
  const r = await execa('ip', args, { reject: false, timeout: STEP_TIMEOUT_MS });
  if (r.exitCode !== 0) throw new NetnsError(`${what}: ip ${args.join(' ')} failed: ${(r.stderr || r.stdout || `exit ${r.exitCode}`).trim()}`);
}

/** Namespaces whose name starts with `prefix`. */
export async function listNamespaces(prefix = NETNS_PREFIX): Promise<string[]> {
  const r = await execa('ip', ['-j', 'netns', 'list'], { reject: false, timeout: STEP_TIMEOUT_MS });
  if (r.exitCode !== 0) throw new NetnsError(`ip netns list failed: ${r.stderr.trim()}`);
  const list = JSON.parse(r.stdout || '[]') as { name: string }[];
  return list.map((n) => n.name).filter((n) => n.startsWith(prefix));
}

/**
 * Removes namespaces: first SIGKILL to any process still inside (they are ours: nothing else
 * runs in a pbn- namespace), then the namespace itself. Returns what it removed.
 */
export async function removeNamespaces(names: readonly string[]): Promise<{ removed: string[]; killed: number[]; failures: string[] }> {
  const removed: string[] = [];
  const killed: number[] = [];
  const failures: string[] = [];
  for (const ns of names) {
    const pids = await execa('ip', ['netns', 'pids', ns], { reject: false, timeout: STEP_TIMEOUT_MS });
    for (const p of pids.stdout.split(/\s+/).filter(Boolean).map(Number)) {
      try {
        process.kill(p, 'SIGKILL');
        killed.push(p);
      } catch {
        // already gone
      }
    }
    const r = await execa('ip', ['netns', 'del', ns], { reject: false, timeout: STEP_TIMEOUT_MS });
    if (r.exitCode === 0) removed.push(ns);
    else failures.push(`${ns}: ${r.stderr.trim()}`);
  }
  return { removed, killed, failures };
}

/** Cleans every namespace of the project (or of one run): `poe-bench infra netns clean`. */
export async function cleanNetns(runId?: string): Promise<{ removed: string[]; killed: number[]; failures: string[] }> {
  return removeNamespaces(await listNamespaces(runId ? `${NETNS_PREFIX}${runId}-` : NETNS_PREFIX));
}

function requireRoot(): void {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new NetnsError('the netns backend needs root (it creates network namespaces): run as root, or use --backend local');
  }
}

/** Starts the plan's processes in namespaces; everything is removed again if a step fails. */
export async function launchNetns(plan: LaunchPlan, options: NetnsOptions): Promise<Cluster> {
  requireRoot();
  const subnet: Subnet = parseSubnet(options.subnet ?? NETNS_SUBNET);
  await checkSubnetFree(subnet);
  const runId = options.runId ?? randomBytes(3).toString('hex');
  if (!/^[a-z0-9]{1,8}$/.test(runId)) throw new NetnsError(`run id '${runId}' must be 1-8 lowercase letters or digits`);
  const hub = `${NETNS_PREFIX}${runId}-hub`;
  const nodes: NetnsNode[] = [
    ...plan.replicas.map((id) => ({
      role: 'replica' as const,
      id,
      peer: id,
      ns: `${NETNS_PREFIX}${runId}-r${id}`,
      hubDev: `r${id}`,
      ip: addressAt(subnet, 1 + id),
    })),
    ...plan.clients.map((o) => ({
      role: 'client' as const,
      id: o,
      peer: clientPeer(o),
      ns: `${NETNS_PREFIX}${runId}-c${o}`,
      hubDev: `c${o}`,
      ip: addressAt(subnet, 1 + options.replicasTotal + o),
    })),
  ];
  const created: string[] = [];
  const teardown = async (): Promise<void> => {
    const r = await removeNamespaces(created.splice(0).reverse());
    if (r.failures.length > 0) throw new NetnsError(`could not remove every namespace (run \`poe-bench infra netns clean\`): ${r.failures.join('; ')}`);
  };
  let netem = false;
  try {
    await ip(['netns', 'add', hub], 'creating the hub namespace');
    created.push(hub);
    await ip(['-n', hub, 'link', 'add', 'br0', 'type', 'bridge'], 'creating the bridge');
    await ip(['-n', hub, 'link', 'set', 'br0', 'up'], 'bringing the bridge up');
    netem = await detectNetem(async (argv) => ({
      ok: (await execa('ip', ['netns', 'exec', hub, ...argv], { reject: false, timeout: STEP_TIMEOUT_MS })).exitCode === 0,
    }));
    for (const n of nodes) {
      await ip(['netns', 'add', n.ns], `creating the namespace of ${n.role} ${n.id}`);
      created.push(n.ns);
      // Both ends are created directly inside their namespaces: the host never sees them.
      await ip(['link', 'add', 'eth0', 'netns', n.ns, 'type', 'veth', 'peer', 'name', n.hubDev, 'netns', hub], `linking ${n.role} ${n.id}`);
      await ip(['-n', hub, 'link', 'set', n.hubDev, 'master', 'br0', 'up'], `attaching ${n.role} ${n.id} to the bridge`);
      await ip(['-n', n.ns, 'addr', 'add', `${n.ip}/${subnet.prefix}`, 'dev', 'eth0'], `addressing ${n.role} ${n.id}`);
      await ip(['-n', n.ns, 'link', 'set', 'eth0', 'up'], `bringing up ${n.role} ${n.id}`);
      await ip(['-n', n.ns, 'link', 'set', 'lo', 'up'], `bringing up lo of ${n.role} ${n.id}`);
    }
    const allPeers = nodes.map((n) => n.peer);
    for (const n of nodes) {
      const peers = nodes.filter((m) => m !== n).map((m) => ({ ip: m.ip, link: linkBetween(options.link, n.peer, m.peer) }));
      await applyTc(['ip', 'netns', 'exec', n.ns], tcCommands('eth0', peers, netem));
    }
    const apply = transportApply(netem, true);
    const byKey = new Map(nodes.map((n) => [`${n.role} ${n.id}`, n]));
    const cpus = options.pinCpus;
    const inner = launchLocal({
      ...plan,
      command: (role, id, nodeArgs) => {
        const n = byKey.get(`${role} ${id}`)!;
        const index = nodes.indexOf(n);
        const pin = cpus && cpus.length > 0 ? ['taskset', '-c', String(cpus[index % cpus.length])] : [];
        return {
          file: 'ip',
          args: ['netns', 'exec', n.ns, ...pin, process.execPath, ...nodeArgs, entryPoint(role)],
          env: linkEnv(nodeLinkConfig(options.link, n.peer, allPeers, apply, options.seed)),
          host: n.ip,
        };
      },
    });
    return withTeardown(inner, teardown);
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }
}

/** A cluster that removes its infrastructure once its processes are gone. */
export function withTeardown(inner: Cluster, teardown: () => Promise<void>): Cluster {
  let done: Promise<void> | undefined;
  const once = (): Promise<void> => (done ??= teardown());
  return {
    nodes: inner.nodes,
    onUnexpectedExit: (cb) => inner.onUnexpectedExit(cb),
    pids: () => inner.pids(),
    async shutdown(graceMs) {
      try {
        await inner.shutdown(graceMs);
      } finally {
        await once();
      }
    },
    async kill() {
      try {
        await inner.kill();
      } finally {
        await once();
      }
    },
  };
}
