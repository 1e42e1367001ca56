import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/*.test.ts'],
    exclude: ['node_modules/**', 'dist/**'],
    testTimeout: 120_000,
    // Tests never reach AWS: without credentials the SDK's default chain would otherwise probe
    // the EC2 instance metadata address, which is not on this machine. Children inherit this.
    env: { AWS_EC2_METADATA_DISABLED: 'true' },
    hookTimeout: 60_000,
    // Two cores: end-to-end tests start real processes and must not starve each other.
    fileParallelism: true,
    maxWorkers: 2,
    minWorkers: 1,
  },
});
