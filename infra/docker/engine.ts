/**
 * The Docker CLI as the docker backend uses it: every call under a timeout, and the errors a
 * user can act on said in words (no engine running, no docker installed) instead of a stack.
 *
 * Everything the backend creates carries the label poe-bench=1 (and poe-bench.run=<id> for a
 * run's containers and network), which is how `poe-bench infra docker clean` finds it.
 */
import { execa } from 'execa';

export const LABEL = 'poe-bench';
export const RUN_LABEL = 'poe-bench.run';
export const KIND_LABEL = 'poe-bench.kind';

export class DockerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DockerError';
  }
}

export interface DockerResult {
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** Runs `docker <args>`; throws DockerError with the step and docker's own words. */
export async function docker(
  args: readonly string[],
  step: string,
  options: { timeoutMs?: number; input?: string; reject?: boolean; env?: Record<string, string> } = {},
): Promise<DockerResult> {
  let r: Awaited<ReturnType<typeof execa>>;
  try {
    r = await execa('docker', args, {
      reject: false,
      timeout: options.timeoutMs ?? 30_000,
      ...(options.input !== undefined ? { input: options.input } : {}),
      env: { ...options.env },
    });
  } catch (err) {
    throw new DockerError(`${step}: cannot run docker: ${(err as Error).message}`);
  }
  if ((r as { code?: string }).code === 'ENOENT' || /ENOENT/.test(String((r as { message?: string }).message ?? ''))) {
    throw new DockerError(`${step}: the docker command is not installed (apt-get install docker.io)`);
  }
  if (r.timedOut) throw new DockerError(`${step}: docker ${args[0]} did not finish within ${options.timeoutMs ?? 30_000} ms`);
  const result = { stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), exitCode: r.exitCode ?? -1 };
  if (result.exitCode !== 0 && options.reject !== false) {
    throw new DockerError(`${step}: docker ${args.slice(0, 2).join(' ')} failed: ${(result.stderr || result.stdout).trim().split('\n').slice(-3).join(' ')}`);
  }
  return result;
}

/** Throws a clear DockerError unless a Docker engine answers; returns its version. */
export async function requireEngine(): Promise<string> {
  const r = await docker(['version', '--format', '{{.Server.Version}}'], 'checking the Docker engine', { reject: false, timeoutMs: 15_000 });
  if (r.exitCode !== 0 || r.stdout.trim() === '') {
    const why = (r.stderr || r.stdout).trim().split('\n').pop() ?? '';
    throw new DockerError(
      `no Docker engine is running (${why || 'docker version gave no server version'}): start it (e.g. \`dockerd &\` as root, or \`systemctl start docker\`), or choose another --backend`,
    );
  }
  return r.stdout.trim();
}

/** Lines of a docker listing, empty lines dropped. */
export function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
}

export interface DockerCleanReport {
  readonly containers: string[];
  readonly networks: string[];
  readonly images: string[];
}

/**
 * Removes containers, networks and (unless keepImages) images labelled poe-bench=1, or only
 * one run's containers and network when `runId` is given.
 */
export async function cleanDocker(options: { runId?: string; keepImages?: boolean } = {}): Promise<DockerCleanReport> {
  await requireEngine();
  const filter = options.runId ? `label=${RUN_LABEL}=${options.runId}` : `label=${LABEL}=1`;
  // Containers started with --rm may be removing themselves meanwhile ("removal already in
  // progress"), and a network cannot go while an endpoint remains: retry until both are gone.
  const deadline = Date.now() + 60_000;
  const containers = new Set<string>();
  const networks = new Set<string>();
  for (;;) {
    const c = lines((await docker(['ps', '-aq', '--filter', filter], 'listing containers')).stdout);
    c.forEach((x) => containers.add(x));
    if (c.length > 0) await docker(['rm', '-f', ...c], 'removing containers', { timeoutMs: 60_000, reject: false });
    const n = c.length > 0 ? [] : lines((await docker(['network', 'ls', '-q', '--filter', filter], 'listing networks')).stdout);
    n.forEach((x) => networks.add(x));
    if (n.length > 0) await docker(['network', 'rm', ...n], 'removing networks', { timeoutMs: 60_000, reject: false });
    if (c.length === 0 && n.length === 0) break;
    if (Date.now() > deadline)
      throw new DockerError(`could not remove every container and network of ${filter} within 60 s; run \`poe-bench infra docker clean\``);
    await new Promise((r) => setTimeout(r, 200));
  }
  let images: string[] = [];
  if (!options.runId && !options.keepImages) {
    images = lines((await docker(['images', '-q', '--filter', `label=${LABEL}=1`], 'listing images')).stdout);
    images = [...new Set(images)];
    if (images.length > 0) await docker(['rmi', '-f', ...images], 'removing images', { timeoutMs: 120_000 });
  }
  return { containers: [...containers], networks: [...networks], images };
}
