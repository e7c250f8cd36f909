/**
 * Peers from Debian 13 (QEMU 10, vhost-user-gpu, DPDK 24.11, the Rust virtiofsd, passt), run on
 * this Debian 12 host from the root scripts/debian13-root.sh builds, through the
 * scripts/in-debian13 prefix (a private mount namespace and chroot; the pid is the peer's).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

const SCRIPTS = path.resolve(__dirname, '../../scripts');
export const DEBIAN13_ROOT = process.env.VHS_DEBIAN13_ROOT ?? '/var/cache/vhostscope/trixie-root';

/** Whether the root is built and verified; the reason when not. */
export function debian13Missing(): string | undefined {
  return fs.existsSync(path.join(DEBIAN13_ROOT, '.vhs-ready')) ? undefined : `${DEBIAN13_ROOT} is not built: run scripts/debian13-root.sh`;
}

/** "QEMU emulator version 10.0.x ..." as the root's QEMU reports it. */
export function debian13Versions(): string {
  return fs.readFileSync(path.join(DEBIAN13_ROOT, '.vhs-versions'), 'utf8');
}

/**
 * The command line that runs `cmd args` inside the root, with `dirs` (socket and work
 * directories) visible at the same paths. Parents are bound before children.
 */
export function inDebian13(dirs: string[], cmd: string, args: string[]): { cmd: string; args: string[]; env: NodeJS.ProcessEnv } {
  const binds = [...new Set(dirs.map((d) => path.resolve(d)))].sort((a, b) => a.length - b.length);
  return {
    cmd: path.join(SCRIPTS, 'in-debian13'),
    args: [cmd, ...args],
    env: { ...process.env, VHS_BINDS: binds.join(':'), VHS_DEBIAN13_ROOT: DEBIAN13_ROOT },
  };
}
