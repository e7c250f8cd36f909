import * as path from 'node:path';
import type { NativeAddon } from './contract';

export type * from './contract';

function load(): NativeAddon {
  const file = path.resolve(__dirname, '..', '..', 'build', 'Release', 'vhostscope_native.node');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as NativeAddon;
  } catch (err) {
    throw new Error(
      `vhostscope: the native addon is not built (${file}): run "npm run build:native". ${(err as Error).message}`,
    );
  }
}

export const native: NativeAddon = load();
