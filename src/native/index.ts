import * as fs from 'node:fs';
import * as path from 'node:path';
import { untrustedDir } from '../util/trusted-path';
import type { NativeAddon } from './contract';

export type * from './contract';

const ROOT = path.resolve(__dirname, '..', '..');

/**
 * Where the addon is, first found wins: VHOSTSCOPE_ADDON (another build, e.g. bench/asan.sh's
 * AddressSanitizer one); build/Release (built from source here: a developer's checkout, or an
 * install without a matching prebuild); prebuilds/<platform>-<arch> (shipped in the package: a
 * Node-API build runs on every Node version with that API).
 */
export function addonCandidates(): string[] {
  return [
    ...(process.env.VHOSTSCOPE_ADDON ? [process.env.VHOSTSCOPE_ADDON] : []),
    path.join(ROOT, 'build', 'Release', 'vhostscope_native.node'),
    path.join(ROOT, 'prebuilds', `${process.platform}-${process.arch}`, 'vhostscope_native.node'),
  ];
}

/**
 * As root, VHOSTSCOPE_ADDON (kept by `sudo -E`) must name a file root owns that no one else may
 * change, in a directory no one else controls: else any user who set it runs code as root.
 */
export function checkAddonOverride(file: string): void {
  if ((process.geteuid?.() ?? 0) !== 0) return;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    throw new Error(`VHOSTSCOPE_ADDON=${file}: ${(err as Error).message}`);
  }
  const why =
    st.uid !== 0
      ? `it is owned by uid ${st.uid}`
      : (st.mode & 0o022) !== 0
        ? `others may write it (mode ${(st.mode & 0o777).toString(8)})`
        : untrustedDir(path.dirname(file));
  if (why) throw new Error(`VHOSTSCOPE_ADDON=${file}: refusing to load it as root: ${why}`);
}

function load(): NativeAddon {
  const candidates = addonCandidates();
  if (process.env.VHOSTSCOPE_ADDON) checkAddonOverride(process.env.VHOSTSCOPE_ADDON);
  const file = process.env.VHOSTSCOPE_ADDON ?? candidates.find((f) => fs.existsSync(f));
  if (!file)
    throw new Error(`vhostscope: no native addon for ${process.platform}-${process.arch} (looked for ${candidates.join(', ')}): run "npm run build:native"`);
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(file) as NativeAddon;
  } catch (err) {
    throw new Error(`vhostscope: the native addon ${file} does not load: ${(err as Error).message}; rebuild it with "npm run build:native"`);
  }
}

export const native: NativeAddon = load();
