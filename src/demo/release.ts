/**
 * Which Debian release a peer binary comes from: Debian 12's are on this host; Debian 13's and
 * sid's run from the roots scripts/debian-root.sh builds (src/demo/roots.ts). One place turns a
 * command line into what to spawn for any of them.
 */
import { inRoot } from './roots';

export type Release = 'debian12' | 'debian13' | 'sid';

export interface Spawnable {
  cmd: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

/**
 * `cmd args` from `release`; `dirs`: the directories (sockets, work files) the peer must see
 * at their paths on the host. Binaries of a root are named by absolute path.
 */
export function fromRelease(release: Release, dirs: string[], cmd: string, args: string[]): Spawnable {
  if (release === 'debian12') return { cmd, args };
  return inRoot(release, dirs, cmd.startsWith('/') ? cmd : `/usr/bin/${cmd}`, args);
}

/** Peer versions per release, as the e2e tests and the README's compatibility table name them. */
export const RELEASE_NAMES: Record<Release, string> = { debian12: 'Debian 12', debian13: 'Debian 13', sid: 'Debian sid' };
