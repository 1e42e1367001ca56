import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    // Two cores: end-to-end tests start real processes and must not starve each other.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
  },
});
