import * as path from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * The tests StrykerJS runs against each mutant (npm run mutate): those of the mutated folders
 * that exercise src/ in this process. The end-to-end tests run the built CLI in processes of their
 * own, where no mutant is active; the fuzz pass is too slow to repeat per mutant; the daemon's
 * fd-counting tests do not hold with Stryker's runner sharing their process. The addon is the one built here
 * (Stryker's sandbox copies no build/).
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/recording/**/*.test.ts', 'test/analysis/**/*.test.ts', 'test/proxy/faults.test.ts'],
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    env: { VHOSTSCOPE_ADDON: path.resolve(__dirname, 'build', 'Release', 'vhostscope_native.node') },
  },
});
