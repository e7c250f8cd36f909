import * as path from 'node:path';
import type { NativeAddon } from './contract';

export type * from './contract';

function load(): NativeAddon {
  // VHOSTSCOPE_ADDON: another build of the addon (bench/asan.sh loads an AddressSanitizer build)
  const file = process.env.VHOSTSCOPE_ADDON ?? path.resolve(__dirname, '..', '..', 'build', 'Release', 'vhostscope_native.node');
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
