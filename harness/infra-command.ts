/**
 * `poe-bench infra netns|docker|ssh ...`: the housekeeping commands of the local backends.
 *
 *   infra netns clean [--run ID]      remove namespaces (pbn-*) left by a crashed harness, and
 *                                     kill any process still inside them
 *   infra docker build [--base-image] build (or reuse) the image the docker backend runs
 *   infra docker clean [--run ID] [--keep-images]
 *                                     remove containers, networks and images labelled poe-bench=1
 *   infra ssh check --hosts FILE      log in to every host, check tar and sha256sum, check (or
 *                                     install) Node.js, ship the build; nothing is started
 *
 * Exit codes: 0 done, 1 failed (the message says why), 2 bad flags.
 * The `infra` parent is shared with `infra aws` (harness/infra-aws-command.ts): whichever
 * registers first creates it.
 */
import type { Command } from 'commander';
import { cleanDocker } from '../infra/docker/engine.js';
import { ensureImage } from '../infra/docker/image.js';
import { cleanNetns } from '../infra/netns/backend.js';
import { ensureNode, ship } from '../infra/ssh/backend.js';
import { buildBundle } from '../infra/ssh/bundle.js';
import { HostsFileError, loadHostsFile } from '../infra/ssh/hosts.js';
import { DEFAULT_SSH_TIMEOUTS, SshSession } from '../infra/ssh/session.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface InfraIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

const stdio: InfraIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

const RUN_ID = /^[a-z0-9]{1,8}$/;

export async function netnsClean(options: { run?: string }, io: InfraIo = stdio): Promise<number> {
  if (options.run !== undefined && !RUN_ID.test(options.run)) {
    io.err(`poe-bench infra netns clean: --run: '${options.run}' is not a run id (1-8 lowercase letters or digits)`);
    return 2;
  }
  const r = await cleanNetns(options.run);
  if (r.killed.length > 0) io.out(`killed ${r.killed.length} leftover process(es): ${r.killed.join(' ')}`);
  io.out(r.removed.length > 0 ? `removed ${r.removed.length} namespace(s): ${r.removed.join(' ')}` : 'no poe-bench namespaces: nothing to do');
  for (const f of r.failures) io.err(`could not remove ${f}`);
  return r.failures.length > 0 ? 1 : 0;
}

export async function dockerClean(options: { run?: string; keepImages?: boolean }, io: InfraIo = stdio): Promise<number> {
  if (options.run !== undefined && !RUN_ID.test(options.run)) {
    io.err(`poe-bench infra docker clean: --run: '${options.run}' is not a run id (1-8 lowercase letters or digits)`);
    return 2;
  }
  const r = await cleanDocker({ ...(options.run ? { runId: options.run } : {}), ...(options.keepImages ? { keepImages: true } : {}) });
  io.out(`removed ${r.containers.length} container(s), ${r.networks.length} network(s), ${r.images.length} image(s)`);
  return 0;
}

export async function sshCheck(options: { hosts?: string }, io: InfraIo = stdio): Promise<number> {
  if (!options.hosts) {
    io.err('poe-bench infra ssh check: --hosts <file> is required');
    return 2;
  }
  let hosts: ReturnType<typeof loadHostsFile>;
  try {
    hosts = loadHostsFile(options.hosts);
  } catch (err) {
    if (err instanceof HostsFileError) {
      io.err(`poe-bench infra ssh check: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const cacheDir = join(tmpdir(), 'poe-bench-bundles');
  const bundle = await buildBundle(cacheDir);
  const distinct = [...new Map([...hosts.replicas, ...hosts.clients].map((h) => [`${h.name} ${h.workDir}`, h])).values()];
  const results = await Promise.allSettled(
    distinct.map(async (h) => {
      const s = await SshSession.connect(h, DEFAULT_SSH_TIMEOUTS);
      try {
        const node = await ensureNode(s, cacheDir, DEFAULT_SSH_TIMEOUTS);
        const shipped = await ship(s, bundle, DEFAULT_SSH_TIMEOUTS);
        return `${h.name}: Node.js ${node.version}${node.installed ? ` (installed: ${node.node})` : ''}, build ${bundle.sha256.slice(0, 16)} ${shipped}`;
      } finally {
        s.close();
      }
    }),
  );
  let failed = 0;
  for (const r of results) {
    if (r.status === 'fulfilled') io.out(r.value);
    else {
      failed++;
      io.err((r.reason as Error).message);
    }
  }
  return failed > 0 ? 1 : 0;
}

/** The shared `infra` parent command. */
export function infraCommand(program: Command): Command {
  return (
    program.commands.find((c) => c.name() === 'infra') ??
    program.command('infra').description('machines beyond this process tree: namespaces, containers, SSH hosts, AWS EC2')
  );
}

async function exitWith(p: Promise<number>, io: InfraIo = stdio): Promise<void> {
  try {
    process.exitCode = await p;
  } catch (err) {
    io.err(`poe-bench infra: ${(err as Error).message}`);
    process.exitCode = 1;
  }
}

export function registerInfraCommand(program: Command): void {
  const infra = infraCommand(program);
  const netns = infra.command('netns').description('Linux network namespaces (needs root)');
  netns
    .command('clean')
    .description('remove poe-bench namespaces (pbn-*) and any process left inside them, e.g. after a crashed run')
    .option('--run <id>', 'only this run')
    .action((o: { run?: string }) => exitWith(netnsClean(o)));
  const docker = infra.command('docker').description('Docker containers on a bridge network');
  docker
    .command('build')
    .description('build (or reuse) the image of the docker backend from the current build')
    .option('--base-image <image>', "base image with Node.js >= 20 (default: imported from this machine's Node)")
    .action((o: { baseImage?: string }) =>
      exitWith(
        ensureImage(o.baseImage).then((tag) => {
          stdio.out(tag);
          return 0;
        }),
      ),
    );
  docker
    .command('clean')
    .description('remove every container, network and image labelled poe-bench=1')
    .option('--run <id>', "only this run's containers and network")
    .option('--keep-images', 'keep the images (they are reused by later runs)')
    .action((o: { run?: string; keepImages?: boolean }) => exitWith(dockerClean(o)));
  const ssh = infra.command('ssh').description('SSH hosts');
  ssh
    .command('check')
    .description('log in to every host, check tar and sha256sum, check (or install) Node.js, and ship the build')
    .option('--hosts <file>', 'hosts file (YAML or JSON)')
    .action((o: { hosts?: string }) => exitWith(sshCheck(o)));
}
