import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // the addon built from native/ as it is now; no peer left running before or after the run
    globalSetup: ['test/global-setup.ts'],
    // The end-to-end tests run real peers pinned to this machine's 2 CPUs: one file at a time.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // .ci/run counts passed, failed and skipped tests from vitest's own JSON report
    ...(process.env.VHS_TEST_RESULTS ? { reporters: ['default', 'json'], outputFile: { json: process.env.VHS_TEST_RESULTS } } : {}),
  },
});
