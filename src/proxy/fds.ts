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

export function closeFds(fds: number[]): void {
  for (const fd of fds) native.close(fd);
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
