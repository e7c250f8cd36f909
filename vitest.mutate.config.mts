import * as path from 'node:path';
import { defineConfig } from 'vitest/config';

/**
 * The tests StrykerJS runs against each mutant (npm run mutate): those of the mutated folders
 * that exercise src/ in this process. The end-to-end tests run the built CLI in processes of their
 * own, where no mutant is active; the fuzz pass is too slow to repeat per mutant; the daemon's
 * fd-counting tests do not hold with Stryker's runner sharing their process. The addon is the one built here
 * (Stryker's sandbox copies no build/).
 */
/**
 * MUTATE_UNIT_ONLY=1: the unit tests alone; MUTATE_TESTS=GLOB,GLOB: those tests. For a folder
 * that few tests reach, minutes instead of hours.
 */
const unitOnly = process.env.MUTATE_UNIT_ONLY === '1';
const chosen = process.env.MUTATE_TESTS?.split(',').filter(Boolean);

export default defineConfig({
  test: {
    include: chosen?.length
      ? chosen
      : unitOnly
        ? ['test/unit/**/*.test.ts']
        : [
            'test/unit/**/*.test.ts',
            // the integration tests of the mutated folders that run src/ in this process
            'test/integration/addon-override.test.ts',
            'test/integration/attach.test.ts',
            'test/integration/control-client.test.ts',
            'test/integration/daemon-heap.test.ts',
            'test/integration/interposer-emfile.test.ts',
            'test/integration/metrics-server.test.ts',
            'test/integration/relay-placement.test.ts',
            'test/integration/crafted-recording.test.ts',
            'test/integration/export.test.ts',
            'test/integration/report.test.ts',
            'test/integration/recording.test.ts',
            'test/integration/replay-backend-channel.test.ts',
            'test/integration/replay-backend.test.ts',
            'test/integration/replay-divergences.test.ts',
            'test/integration/replay-errors.test.ts',
            'test/integration/replay-peer.test.ts',
            'test/integration/trusted-dir.test.ts',
            'test/integration/faults.test.ts',
          ],
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    env: { VHOSTSCOPE_ADDON: path.resolve(__dirname, 'build', 'Release', 'vhostscope_native.node') },
  },
});
