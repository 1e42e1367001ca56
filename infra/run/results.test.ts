import { afterEach, describe, expect, it } from 'vitest';
import { environment } from './results.js';

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
  });
});
