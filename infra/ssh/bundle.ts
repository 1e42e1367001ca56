/**
 * The build as one checksummed tarball: what a replica or client process needs on another
 * machine (ssh) or in an image (docker), and nothing else. The harness, charts and AWS SDK stay
 * behind: the bundle is the compiled entry points, every compiled file they import, the
 * packages those files import with their own dependencies, and package.json (for "type":
 * "module").
 *
 * The file list is found by following imports from dist/infra/process/replica-main.js and
 * dist/infra/process/client-main.js, so a new import is shipped without anyone updating a list.
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';

export const BUNDLE_ENTRIES = ['dist/infra/process/replica-main.js', 'dist/infra/process/client-main.js'] as const;

/** The repository root (this file is infra/ssh/bundle.ts, or dist/infra/ssh/bundle.js). */
export function repoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const up = resolve(here, '..', '..');
  return up.endsWith(`${sep}dist`) ? resolve(up, '..') : up;
}

const IMPORT_RE = /(?:^|[\s;}])(?:import|export)\s*(?:[^'"`;]*?\sfrom\s*)?['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/gm;

/** The specifiers a compiled ES module imports (static, re-exports and literal dynamic imports). */
export function importsOf(source: string): string[] {
  const out: string[] = [];
  for (const m of source.matchAll(IMPORT_RE)) out.push((m[1] ?? m[2])!);
  return out;
}

function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]!;
}

const BUILTINS = new Set(builtinModules);

/** The files of the bundle, relative to `root`, sorted. Throws if an entry is not built. */
export function bundleFiles(root: string = repoRoot()): string[] {
  const files = new Set<string>(['package.json']);
  const packages = new Set<string>();
  const stack: string[] = [];
  for (const e of BUNDLE_ENTRIES) {
    if (!existsSync(join(root, e))) throw new Error(`${join(root, e)} does not exist: run \`npm run build\` first`);
    stack.push(e);
  }
  while (stack.length > 0) {
    const file = stack.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const spec of importsOf(readFileSync(join(root, file), 'utf8'))) {
      if (spec.startsWith('node:') || BUILTINS.has(spec)) continue;
      if (spec.startsWith('.')) {
        const target = relative(root, resolve(root, dirname(file), spec));
        if (!existsSync(join(root, target))) throw new Error(`${file} imports ${spec}, which is not built`);
        stack.push(target);
      } else {
        packages.add(packageName(spec));
      }
    }
  }
  // Packages and their dependencies, wherever npm put them (hoisted or nested).
  const pkgStack = [...packages].map((name) => ({ name, from: root }));
  const pkgDirs = new Set<string>();
  while (pkgStack.length > 0) {
    const { name, from } = pkgStack.pop()!;
    const dir = resolvePackageDir(root, from, name);
    if (dir === undefined) throw new Error(`package ${name} (needed by the replica or client) is not installed: run \`npm ci\``);
    if (pkgDirs.has(dir)) continue;
    pkgDirs.add(dir);
    const pkg = JSON.parse(readFileSync(join(root, dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies ?? {})) pkgStack.push({ name: dep, from: join(root, dir) });
    for (const dep of Object.keys(pkg.optionalDependencies ?? {}))
      if (resolvePackageDir(root, join(root, dir), dep)) pkgStack.push({ name: dep, from: join(root, dir) });
  }
  for (const dir of pkgDirs) files.add(dir);
  return [...files].sort();
}

/** node_modules/<name> nearest to `from`, relative to root; undefined when not installed. */
function resolvePackageDir(root: string, from: string, name: string): string | undefined {
  let dir = from;
  for (;;) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return relative(root, candidate);
    if (resolve(dir) === resolve(root)) return undefined;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface Bundle {
  /** The gzipped tarball. */
  readonly path: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly files: readonly string[];
}

/** A key of the bundle's content (names, sizes, modification times) to reuse a tarball. */
function contentKey(root: string, files: readonly string[]): string {
  const h = createHash('sha256');
  const walk = (rel: string): void => {
    const st = statSync(join(root, rel));
    if (st.isDirectory()) {
      for (const e of readdirSync(join(root, rel)).sort()) walk(join(rel, e));
    } else {
      h.update(`${rel}\0${st.size}\0${st.mtimeMs}\n`);
    }
  };
  for (const f of files) walk(f);
  return h.digest('hex').slice(0, 16);
}

/**
 * Builds (or reuses) the tarball of the current build in `cacheDir`. The tarball is reused
 * while no bundled file changed, so repeated runs ship nothing new.
 */
export async function buildBundle(cacheDir: string, root: string = repoRoot()): Promise<Bundle> {
  const files = bundleFiles(root);
  await mkdir(cacheDir, { recursive: true });
  const key = contentKey(root, files);
  const path = join(cacheDir, `poe-bench-${key}.tar.gz`);
  if (!existsSync(path)) {
    const listFile = join(cacheDir, `poe-bench-${key}.files`);
    await writeFile(listFile, `${files.join('\n')}\n`);
    const partial = `${path}.${process.pid}.part`;
    // Fixed owner and order, no access times: the same files give the same tarball.
    await execa('tar', ['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '-czf', partial, '-C', root, '-T', listFile], { timeout: 120_000 });
    await rename(partial, path);
  }
  const bytes = (await stat(path)).size;
  return { path, sha256: await sha256File(path), bytes, files };
}

/** Lists a directory's tarballs (for tests and cleanup). */
export async function cachedBundles(cacheDir: string): Promise<string[]> {
  if (!existsSync(cacheDir)) return [];
  return (await readdir(cacheDir)).filter((f) => f.endsWith('.tar.gz'));
}
