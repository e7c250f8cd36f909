/** Identifies received fds for the log and the recording, before they are forwarded. */
import { native } from '../native';
import type { FdDescription, PeerIdentity } from './events';
import * as fs from 'node:fs';

export function describeFds(fds: number[]): FdDescription[] {
  return fds.map((fd, slot) => {
    try {
      const i = native.fdInfo(fd);
      const d: FdDescription = { slot, kind: i.kind, size: i.size };
      if (i.memfdName !== undefined) d.memfdName = i.memfdName;
      if (i.seals !== undefined) d.seals = i.seals;
      if (i.eventfdId !== undefined) d.eventfdId = i.eventfdId;
      if (i.kind === 'other' || i.kind === 'file') d.target = i.target;
      return d;
    } catch {
      return { slot, kind: 'unknown' as const };
    }
  });
}

/**
 * What an fd is, from /proc's link for it alone ("anon_inode:[eventfd]", "pipe:[7]",
 * "socket:[9]", "/memfd:qemu (deleted)", a path): no call reaches the object itself, so a
 * file on a FUSE mount whose server never answers cannot block the daemon here.
 */
export type FdLink = { link: string } | { error: string };
export function fdLink(fd: number): FdLink {
  try {
    return { link: fs.readlinkSync(`/proc/self/fd/${fd}`) };
  } catch (err) {
    return { error: `an fd that cannot be looked at (${(err as NodeJS.ErrnoException).code})` };
  }
}

/** The kind of thing a link names, as a log line says it ("a pipe", "an eventfd fd", "a file"). */
export function linkKind(link: string): string {
  if (link.startsWith('pipe:')) return 'a pipe';
  if (link.startsWith('socket:')) return 'a socket';
  if (link.startsWith('anon_inode:')) return `an ${link.slice('anon_inode:'.length).replace(/[[\]]/g, '')} fd`;
  if (link.startsWith('/memfd:')) return 'a memfd';
  return 'a file';
}

/** What the fd is when it is not of the kind a slot takes (e.g. 'socket:'), else undefined. */
export function notOfKind(fd: number, prefix: string): string | undefined {
  const l = fdLink(fd);
  if ('error' in l) return l.error;
  return l.link.startsWith(prefix) ? undefined : linkKind(l.link);
}

/**
 * What the fd is, if it is not memory (a memfd or a file on /dev/shm): a pipe, a device such as
 * /dev/urandom, a socket or a file on another file system may block a read or never end, and
 * reads of shared regions (dirty log, inflight) run on the daemon's loop.
 */
export function notMemory(fd: number): string | undefined {
  const l = fdLink(fd);
  if ('error' in l) return l.error;
  return l.link.startsWith('/memfd:') || l.link.startsWith('/dev/shm/') ? undefined : l.link;
}

/** Closes fds a peer sent (never waiting for a file system: see closeForeign). */
export function closeFds(fds: number[]): void {
  for (const fd of fds) native.closeForeign(fd);
}

/** SO_PEERCRED plus what /proc says about that process, where readable. */
export function peerIdentity(fd: number): PeerIdentity | undefined {
  try {
    const c = native.peerCred(fd);
    const id: PeerIdentity = { pid: c.pid, uid: c.uid };
    try {
      id.exe = fs.readlinkSync(`/proc/${c.pid}/exe`);
      id.cmdline = fs.readFileSync(`/proc/${c.pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    } catch {
      /* the process may be gone or not ours to read */
    }
    return id;
  } catch {
    return undefined;
  }
}
