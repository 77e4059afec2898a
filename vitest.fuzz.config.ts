import { defineConfig } from 'vitest/config';

// `npm run fuzz`: the RPC fuzzer alone (test/robustness/fuzz.test.ts; its header lists the
// METASTORE_FUZZ_* settings).
export default defineConfig({
  test: {
    include: ['test/robustness/fuzz.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 60_000,
  },
});
