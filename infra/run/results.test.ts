import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRunSpec } from './spec.js';
import { environment, writeManifest } from './results.js';

describe('the environment a run records', () => {
  const saved = process.env['POE_BENCH_NODE_ARGS'];
  afterEach(() => {
    if (saved === undefined) delete process.env['POE_BENCH_NODE_ARGS'];
    else process.env['POE_BENCH_NODE_ARGS'] = saved;
  });

  it('names node flags POE_BENCH_NODE_ARGS adds after the spec, which override its --node-flags', () => {
    delete process.env['POE_BENCH_NODE_ARGS'];
    expect(environment()).not.toHaveProperty('nodeArgsFromEnv');
    process.env['POE_BENCH_NODE_ARGS'] = '--max-semi-space-size=0 --trace-gc';
    expect(environment().nodeArgsFromEnv).toBe('--max-semi-space-size=0 --trace-gc');
    const dir = mkdtempSync(join(tmpdir(), 'poe-env-'));
    try {
      const file = writeManifest(dir, makeRunSpec({ protocol: 'poe', replicas: 4 }), environment(), new Date(0).toISOString());
      expect(JSON.parse(readFileSync(file, 'utf8')).nodeArgsFromEnv).toBe('--max-semi-space-size=0 --trace-gc');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
