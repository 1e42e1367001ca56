/**
 * The docker backend (DESIGN.md "Backends"): one container per replica and per client machine,
 * on a bridge network the harness creates for the run (internal: no route out), from an image
 * built from the repo (image.ts). Optional CPU limits (--cpus) and pinning (--pin) per container.
 *
 * Each container is started with `docker run -i --rm --init`, attached: the docker CLI is a
 * local process whose stdin and stdout are the container's, so the local backend drives it over
 * the same control channel and its shutdown applies unchanged. Closing stdin ends the process
 * and, with --rm, the container; if the CLI itself dies, the engine closes the container's
 * stdin (it was started with -i and attached), with the same effect. Teardown then removes
 * whatever is left of the run by its label, network included.
 *
 * Links: tc from the host inside each container's network namespace (nsenter), so the image
 * needs no tc and the containers no NET_ADMIN capability: HTB for the rate, and netem for
 * delay, jitter and loss where the kernel has it (probed in a throwaway namespace); the
 * transport applies delay, jitter and loss otherwise.
 */
import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { linkBetween, linkEnv, nodeLinkConfig, type LinkSpec } from '../link.js';
import { clientPeer, type Peer } from '../../replica/types.js';
import { launchLocal, type Cluster, type LaunchPlan, type NodeRole } from '../local/backend.js';
import { withTeardown } from '../netns/backend.js';
import { addressAt, checkSubnetFree, DOCKER_SUBNET, parseSubnet } from '../netns/subnet.js';
import { applyTc, detectNetem, tcCommands, transportApply } from '../netns/tc.js';
import { cleanDocker, docker, DockerError, LABEL, requireEngine, RUN_LABEL } from './engine.js';
import { APP_DIR, ensureImage } from './image.js';

export const DOCKER_PREFIX = 'pbd-';

export interface DockerOptions {
  readonly subnet?: string;
  readonly link: LinkSpec;
  readonly pinCpus?: readonly number[];
  /** CPU limit per container (docker run --cpus). */
  readonly cpus?: number;
  readonly baseImage?: string;
  readonly seed: number;
  readonly replicasTotal: number;
  readonly runId?: string;
}

interface DockerNode {
  readonly role: NodeRole;
  readonly id: number;
  readonly peer: Peer;
  readonly name: string;
  readonly ip: string;
}

/** The container's init PID on the host, once it runs. */
async function containerPid(name: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await docker(['inspect', '-f', '{{.State.Pid}} {{.State.Running}}', name], `inspecting ${name}`, { reject: false });
    const [pid, running] = r.stdout.trim().split(' ');
    if (r.exitCode === 0 && running === 'true' && Number(pid) > 0) return Number(pid);
    if (Date.now() > deadline) throw new DockerError(`${name} is not running after ${timeoutMs} ms: ${(r.stderr || r.stdout).trim()}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

export async function launchDocker(plan: LaunchPlan, options: DockerOptions): Promise<Cluster> {
  await requireEngine();
  const subnet = parseSubnet(options.subnet ?? DOCKER_SUBNET);
  await checkSubnetFree(subnet);
  const image = await ensureImage(options.baseImage);
  const runId = options.runId ?? randomBytes(3).toString('hex');
  const network = `${DOCKER_PREFIX}${runId}`;
  const nodes: DockerNode[] = [
    // .1 is the bridge's gateway address.
    ...plan.replicas.map((id) => ({ role: 'replica' as const, id, peer: id, name: `${network}-r${id}`, ip: addressAt(subnet, 2 + id) })),
    ...plan.clients.map((o) => ({
      role: 'client' as const,
      id: o,
      peer: clientPeer(o),
      name: `${network}-c${o}`,
      ip: addressAt(subnet, 2 + options.replicasTotal + o),
    })),
  ];
  const teardown = async (): Promise<void> => {
    await cleanDocker({ runId });
  };
  try {
    await docker(
      [
        'network',
        'create',
        '--driver',
        'bridge',
        '--internal',
        '--subnet',
        subnet.text,
        '--gateway',
        addressAt(subnet, 1),
        '--label',
        `${LABEL}=1`,
        '--label',
        `${RUN_LABEL}=${runId}`,
        network,
      ],
      'creating the network',
    );
    // sch_netem, probed in a throwaway network namespace (it vanishes with the command).
    const netem = await detectNetem(async (argv) => ({
      ok: (await execa('unshare', ['--net', ...argv], { reject: false, timeout: 10_000 }).catch(() => ({ exitCode: 1 }))).exitCode === 0,
    }));
    const allPeers = nodes.map((n) => n.peer);
    const byKey = new Map(nodes.map((n) => [`${n.role} ${n.id}`, n]));
    const cpus = options.pinCpus;
    const apply = transportApply(netem, true);
    const inner = launchLocal({
      ...plan,
      command: (role, id, nodeArgs) => {
        const n = byKey.get(`${role} ${id}`)!;
        const index = nodes.indexOf(n);
        const env = linkEnv(nodeLinkConfig(options.link, n.peer, allPeers, apply, options.seed));
        const args = ['run', '-i', '--rm', '--init', '--name', n.name, '--hostname', n.name, '--network', network, '--ip', n.ip];
        args.push('--label', `${LABEL}=1`, '--label', `${RUN_LABEL}=${runId}`);
        if (options.cpus !== undefined) args.push('--cpus', String(options.cpus));
        if (cpus && cpus.length > 0) args.push('--cpuset-cpus', String(cpus[index % cpus.length]));
        for (const [k, v] of Object.entries({ NODE_OPTIONS: '', ...env })) args.push('-e', `${k}=${v}`);
        args.push('-w', APP_DIR, image, 'node', ...nodeArgs, role === 'replica' ? 'dist/infra/process/replica-main.js' : 'dist/infra/process/client-main.js');
        return { file: 'docker', args, host: n.ip };
      },
    });
    const cluster = withTeardown(inner, teardown);
    try {
      // Rates: tc inside each container's namespace, once it runs.
      for (const n of nodes) {
        const peers = nodes.filter((m) => m !== n).map((m) => ({ ip: m.ip, link: linkBetween(options.link, n.peer, m.peer) }));
        const cmds = tcCommands('eth0', peers, netem);
        if (cmds.length === 0) continue;
        if (!(await hasNsenter())) throw new DockerError('--link with a rate (or netem) on the docker backend needs nsenter (util-linux) on this machine');
        const pid = await containerPid(n.name, 30_000);
        await applyTc(['nsenter', '-t', String(pid), '-n'], cmds);
      }
    } catch (err) {
      await cluster.kill();
      throw err;
    }
    return cluster;
  } catch (err) {
    await teardown().catch(() => undefined);
    throw err;
  }
}

/** Whether nsenter exists (needed only when tc shapes the links). */
export async function hasNsenter(): Promise<boolean> {
  return (await execa('nsenter', ['--version'], { reject: false }).catch(() => ({ exitCode: 127 }))).exitCode === 0;
}
