/**
 * One launcher per backend (DESIGN.md "Backends"), each producing the same Cluster the local
 * backend produces, so `executeRun` drives every backend alike: `launchCluster(spec, plan)`
 * picks the launcher the spec's --backend names and hands it the spec's --link and infra flags.
 *
 * Link emulation per backend (infra/link.ts): local and ssh have no interfaces of their own,
 * so the transport applies delay, jitter, loss and rate; netns and docker apply the rate with
 * tc per destination, and the delay, jitter and loss with netem where the kernel has it (the
 * transport otherwise).
 */
import { execa } from 'execa';
import { linkEnv, nodeLinkConfig, parseLinkSpec, type LinkApply } from '../link.js';
import { clientPeer, type Peer } from '../../replica/types.js';
import { entryPoint, launchLocal, type Cluster, type LaunchPlan, type NodeRole } from '../local/backend.js';
import { launchDocker } from '../docker/backend.js';
import { launchNetns } from '../netns/backend.js';
import { launchSsh } from '../ssh/backend.js';
import { loadHostsFile, type SshHosts } from '../ssh/hosts.js';
import type { RunSpec } from './spec.js';

/** Starts a run's processes somewhere; resolves once they wait for `configure`. */
export type Launcher = (spec: RunSpec, plan: LaunchPlan) => Promise<Cluster>;

/** Every node of a plan as a peer number (for the link tables). */
export function planPeers(plan: LaunchPlan): Peer[] {
  return [...plan.replicas, ...plan.clients.map(clientPeer)];
}

const peerOf = (role: NodeRole, id: number): Peer => (role === 'replica' ? id : clientPeer(id));

/** Environment of one process: its links, all applied by the transport. */
export function transportLinkEnv(
  spec: RunSpec,
  plan: LaunchPlan,
  apply: LinkApply = { delay: true, loss: true, rate: true },
): (role: NodeRole, id: number) => Record<string, string> {
  const link = parseLinkSpec(spec.link);
  const peers = planPeers(plan);
  return (role, id) => linkEnv(nodeLinkConfig(link, peerOf(role, id), peers, apply, spec.seed));
}

async function requireTaskset(): Promise<void> {
  const r = await execa('taskset', ['--version'], { reject: false }).catch(() => ({ exitCode: 127 }));
  if (r.exitCode !== 0) throw new Error('--pin needs taskset (util-linux), which is not installed');
}

/** The local backend with --link and --pin: processes on this machine, on loopback. */
export async function launchLocalWithLinks(spec: RunSpec, plan: LaunchPlan): Promise<Cluster> {
  const envFor = transportLinkEnv(spec, plan);
  const cpus = spec.infra.pinCpus;
  if (cpus && cpus.length > 0) await requireTaskset();
  const order = [...plan.replicas.map((id) => `replica ${id}`), ...plan.clients.map((id) => `client ${id}`)];
  return launchLocal({
    ...plan,
    command: (role, id, nodeArgs) => {
      const pin = cpus && cpus.length > 0 ? ['-c', String(cpus[order.indexOf(`${role} ${id}`) % cpus.length])] : undefined;
      const argv = [...nodeArgs, entryPoint(role)];
      return pin
        ? { file: 'taskset', args: [...pin, process.execPath, ...argv], env: envFor(role, id) }
        : { file: process.execPath, args: argv, env: envFor(role, id) };
    },
  });
}

/** The ssh backend on the given hosts (a hosts file, or the aws backend's hand-off). */
export function sshLauncher(hosts?: SshHosts): Launcher {
  return (spec, plan) => launchSsh(hosts ?? loadHostsFile(spec.infra.hosts!), { ...plan, envFor: transportLinkEnv(spec, plan) });
}

export const launchCluster: Launcher = async (spec, plan) => {
  const link = parseLinkSpec(spec.link);
  const common = {
    link,
    seed: spec.seed,
    replicasTotal: spec.replicas,
    ...(spec.infra.pinCpus ? { pinCpus: spec.infra.pinCpus } : {}),
    ...(spec.infra.subnet ? { subnet: spec.infra.subnet } : {}),
  };
  switch (spec.backend) {
    case 'local':
      return launchLocalWithLinks(spec, plan);
    case 'netns':
      if (spec.infra.pinCpus) await requireTaskset();
      return launchNetns(plan, common);
    case 'docker':
      return launchDocker(plan, {
        ...common,
        ...(spec.infra.cpus !== undefined ? { cpus: spec.infra.cpus } : {}),
        ...(spec.infra.baseImage ? { baseImage: spec.infra.baseImage } : {}),
      });
    case 'ssh':
      return sshLauncher()(spec, plan);
  }
};
