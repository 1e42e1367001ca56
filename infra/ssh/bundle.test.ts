/**
 * The build tarball: found by following imports from the replica and client entry points, so
 * it holds their compiled files and the packages they use with their dependencies, and
 * nothing of the harness, the charts or the AWS SDK. Reused while nothing changed.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../../test/e2e/helpers.js';
import { buildBundle, bundleFiles, importsOf } from './bundle.js';

const cache = mkdtempSync(join(tmpdir(), 'poe-bundle-'));
beforeAll(() => ensureBuilt(), 180_000);
afterAll(() => rmSync(cache, { recursive: true, force: true }));

describe('build bundle', () => {
  it('reads static, re-export and dynamic imports of compiled modules', () => {
    const src = `import { a } from './a.js';\nimport * as b from "node:net";\nexport { c } from '../c.js';\nimport './side.js';\nconst d = await import('@noble/ed25519');\nexport * from 'pako/lib';`;
    expect(importsOf(src)).toEqual(['./a.js', 'node:net', '../c.js', './side.js', '@noble/ed25519', 'pako/lib']);
  });

  it('holds the entry points, what they import, and their packages only', () => {
    const files = bundleFiles();
    expect(files).toContain('dist/infra/process/replica-main.js');
    expect(files).toContain('dist/infra/process/client-main.js');
    expect(files).toContain('dist/infra/process/link-shaper.js');
    expect(files).toContain('package.json');
    expect(files).toContain('node_modules/hdr-histogram-js');
    expect(files).toContain('node_modules/pako'); // a dependency of hdr-histogram-js
    expect(files.filter((f) => f.startsWith('dist/harness') || f.startsWith('dist/plots') || f.includes('aws-sdk') || f.includes('vega'))).toEqual([]);
  });

  it('is one checksummed tarball, reused while nothing changed, rebuilt when a file did', async () => {
    // A tree of its own: the shared dist/ may be rebuilt by someone else meanwhile.
    const root = join(cache, 'root');
    const put = (rel: string, text: string): void => {
      mkdirSync(join(root, rel, '..'), { recursive: true });
      writeFileSync(join(root, rel), text);
    };
    put('package.json', '{"type":"module"}');
    put('dist/infra/process/replica-main.js', "import '../../replica/shared.js';\nimport x from 'dep';\n");
    put('dist/replica/shared.js', 'export const y = 1;\n');
    put('dist/infra/process/client-main.js', "import '../../replica/shared.js';\n");
    put('dist/harness/cli.js', 'not shipped\n');
    put('node_modules/dep/package.json', '{"name":"dep","dependencies":{"sub":"1"}}');
    put('node_modules/sub/package.json', '{"name":"sub"}');
    put('node_modules/unused/package.json', '{"name":"unused"}');
    const a = await buildBundle(join(cache, 'out'), root);
    expect(a.files).toEqual([
      'dist/infra/process/client-main.js',
      'dist/infra/process/replica-main.js',
      'dist/replica/shared.js',
      'node_modules/dep',
      'node_modules/sub',
      'package.json',
    ]);
    expect(a.sha256).toMatch(/^[0-9a-f]{64}$/);
    const listed = execFileSync('tar', ['-tzf', a.path], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();
    expect(listed).toEqual([
      'dist/infra/process/client-main.js',
      'dist/infra/process/replica-main.js',
      'dist/replica/shared.js',
      'node_modules/dep/',
      'node_modules/dep/package.json',
      'node_modules/sub/',
      'node_modules/sub/package.json',
      'package.json',
    ]);
    expect(await buildBundle(join(cache, 'out'), root)).toEqual(a);
    put('dist/replica/shared.js', 'export const y = 2;\n');
    const c = await buildBundle(join(cache, 'out'), root);
    expect(c.path).not.toBe(a.path);
    expect(c.sha256).not.toBe(a.sha256);
  });

  it('names what is missing: an unbuilt entry, an uninstalled package', async () => {
    const root = join(cache, 'broken');
    mkdirSync(join(root, 'dist', 'infra', 'process'), { recursive: true });
    writeFileSync(join(root, 'package.json'), '{}');
    expect(() => bundleFiles(root)).toThrow(/dist\/infra\/process\/replica-main.js does not exist: run `npm run build` first/);
    writeFileSync(join(root, 'dist', 'infra', 'process', 'replica-main.js'), "import 'ghost';\n");
    writeFileSync(join(root, 'dist', 'infra', 'process', 'client-main.js'), '');
    expect(() => bundleFiles(root)).toThrow(/package ghost .* is not installed/);
  });
});
