/**
 * Peers newer than this Debian 12 host's, run from the roots scripts/debian-root.sh builds:
 * Debian 13 (QEMU 10, vhost-user-gpu, DPDK 24.11, the Rust virtiofsd, passt, OVS-DPDK 3.5) and
 * sid (QEMU 11.1, DPDK 25.11, virtiofsd 1.14), through the scripts/in-root prefix (a private
 * mount namespace and chroot; the pid is the peer's).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const SCRIPTS = path.resolve(__dirname, '../../scripts');

/** A release whose peers run from a root of their own, and the suite that builds it. */
export type RootRelease = 'debian13' | 'sid';
const SUITES: Record<RootRelease, string> = { debian13: 'trixie', sid: 'sid' };

/** Where a release's root is (the same environment variables as scripts/debian-root.sh). */
export function rootOf(release: RootRelease): string {
  if (release === 'sid') return process.env.VHS_SID_ROOT ?? '/var/cache/vhostscope/sid-root';
  return process.env.VHS_DEBIAN13_ROOT ?? '/var/cache/vhostscope/trixie-root';
}

/** Whether the release's root is built and verified; the reason when not. */
export function rootMissing(release: RootRelease): string | undefined {
  const root = rootOf(release);
  return fs.existsSync(path.join(root, '.vhs-ready')) ? undefined : `${root} is not built: run scripts/debian-root.sh ${SUITES[release]}`;
}

/** "QEMU emulator version …" and the peers' package versions, as the root reported them when built. */
export function rootVersions(release: RootRelease): string {
  return fs.readFileSync(path.join(rootOf(release), '.vhs-versions'), 'utf8');
}

/**
 * The command line that runs `cmd args` inside the release's root, with `dirs` (socket and work
 * directories) visible at the same paths. Parents are bound before children.
 */
export function inRoot(release: RootRelease, dirs: string[], cmd: string, args: string[]): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  const binds = [...new Set(dirs.map((d) => path.resolve(d)))].sort((a, b) => a.length - b.length);
  return {
    cmd: path.join(SCRIPTS, 'in-root'),
    args: [cmd, ...args],
    env: { ...process.env, VHS_BINDS: binds.join(':'), VHS_ROOT: rootOf(release) },
  };
}
