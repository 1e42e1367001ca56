/**
 * The docker backend's image: infra/docker/Dockerfile over a base image with Node.js, with the
 * build (infra/ssh/bundle.ts) as its only content. Images are tagged by content (the bundle's
 * SHA-256 and the base), so an unchanged build reuses its image.
 *
 * The default base is imported from this machine's own Node installation: the running node
 * binary, the shared libraries `ldd` lists for it and the dynamic loader, in an otherwise empty
 * root file system (`docker import`). That needs no registry, takes about a second, and gives
 * the containers exactly the Node.js version the harness runs. `--base-image node:20-slim`
 * uses a registry's image instead.
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { buildBundle, repoRoot } from '../ssh/bundle.js';
import { docker, DockerError, KIND_LABEL, LABEL } from './engine.js';

export const NODE_IN_IMAGE = '/usr/local/bin/node';
export const APP_DIR = '/app';

async function imageExists(ref: string): Promise<boolean> {
  return (await docker(['image', 'inspect', ref], 'looking for an image', { reject: false })).exitCode === 0;
}

/** The shared libraries (and loader) a binary needs, from ldd. */
export function parseLdd(output: string): string[] {
  const out: string[] = [];
  for (const line of output.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** The local-Node base image, imported once per Node version and binary. */
export async function ensureLocalNodeBase(nodePath: string = process.execPath): Promise<string> {
  const binary = realpathSync(nodePath);
  const id = createHash('sha256').update(`${binary}\0${process.version}`).digest('hex').slice(0, 12);
  const tag = `poe-bench-node:${process.version.replace(/^v/, '')}-${id}`;
  if (await imageExists(tag)) return tag;
  let ldd: Awaited<ReturnType<typeof execa>>;
  try {
    ldd = await execa('ldd', [binary], { timeout: 10_000, reject: false });
  } catch (err) {
    throw new DockerError(
      `cannot list the libraries of ${binary} (ldd): ${(err as Error).message}; pass --base-image node:20-slim where a registry is reachable`,
    );
  }
  const libs = ldd.exitCode === 0 ? parseLdd(String(ldd.stdout)) : [];
  const root = mkdtempSync(join(tmpdir(), 'poe-bench-base-'));
  try {
    const put = (from: string, to: string): void => {
      mkdirSync(join(root, dirname(to)), { recursive: true });
      copyFileSync(realpathSync(from), join(root, to));
    };
    put(binary, NODE_IN_IMAGE);
    for (const lib of libs) put(lib, lib);
    mkdirSync(join(root, 'tmp'), { recursive: true });
    const tar = join(root, '..', `${root.split('/').pop()}.tar`);
    await execa('tar', ['-C', root, '-cf', tar, '.'], { timeout: 120_000 });
    try {
      await docker(
        ['import', '--change', `LABEL ${LABEL}=1`, '--change', `LABEL ${KIND_LABEL}=base`, '--change', 'ENV PATH=/usr/local/bin:/usr/bin:/bin', tar, tag],
        'importing the Node base image',
        { timeoutMs: 300_000 },
      );
    } finally {
      rmSync(tar, { force: true });
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
  return tag;
}

/** Builds (or reuses) the run image over `baseImage` (default: the local-Node base). */
export async function ensureImage(baseImage?: string): Promise<string> {
  const base = baseImage ?? (await ensureLocalNodeBase());
  const bundle = await buildBundle(join(tmpdir(), 'poe-bench-bundles'));
  const key = createHash('sha256').update(`${bundle.sha256}\0${base}`).digest('hex').slice(0, 16);
  const tag = `poe-bench:${key}`;
  if (await imageExists(tag)) return tag;
  const ctx = mkdtempSync(join(tmpdir(), 'poe-bench-image-'));
  try {
    copyFileSync(join(repoRoot(), 'infra', 'docker', 'Dockerfile'), join(ctx, 'Dockerfile'));
    mkdirSync(join(ctx, 'app'));
    await execa('tar', ['-xzf', bundle.path, '-C', join(ctx, 'app')], { timeout: 120_000 });
    // The classic builder: it needs no buildx plugin and works with every engine version.
    await docker(
      ['build', '-q', '--build-arg', `BASE_IMAGE=${base}`, '--label', `${LABEL}=1`, '--label', `${KIND_LABEL}=app`, '-t', tag, ctx],
      'building the image',
      {
        timeoutMs: 600_000,
        env: { DOCKER_BUILDKIT: '0' },
      },
    );
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
  return tag;
}
