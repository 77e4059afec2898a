import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    // End-to-end tests start real processes (etcd, MetaStore); give them room on 2 cores.
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Spawned servers compete for 2 cores: keep file-level parallelism modest.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
