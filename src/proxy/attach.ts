/**
 * `vhostscope attach PATH`: slide into a listening peer's socket path without touching either
 * peer. A bound unix socket keeps listening when its path is renamed, so the peer's socket is
 * moved aside to a sibling path (same directory: rename is atomic and never crosses a file
 * system), and the proxy listens at the original path with its owner, group and mode, forwarding
 * to the moved socket. Connections made before keep going directly; new ones come through the
 * proxy. Detaching renames the peer's socket back over the proxy's, in one step: a connecting
 * peer finds a listener at the path at every moment.
 *
 * After a SIGKILL of the proxy the path holds its dead socket and the peer's is still aside:
 * `vhostscope detach PATH` puts it back (the moved name is derived from the path, so nothing
 * else needs to survive the crash).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native';

export interface Attached {
  /** the peer's original path, where the proxy now listens */
  path: string;
  /** the connections the peer had accepted when it was moved aside (they stay direct) */
  direct: Set<number>;
  /** where the peer's listening socket is now */
  moved: string;
  uid: number;
  gid: number;
  mode: number;
}

/** Where attach moves the socket at `p`. */
export function movedPath(p: string): string {
  return path.join(path.dirname(p), `.${path.basename(p)}.vhostscope-attached`);
}

/**
 * Moves the listening socket at `p` aside. The caller then listens at `p` (with listenAt) and
 * forwards to `moved`; on any failure before that, restore() undoes the move.
 */
export function moveAside(p: string): Attached {
  const moved = movedPath(p);
  if (fs.existsSync(moved)) throw new Error(`${moved} exists: an earlier attach to ${p} did not detach (run "vhostscope detach ${p}" first)`);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    throw new Error(`${p}: no such socket (attach takes over a path a peer listens on)`);
  }
  if (!st.isSocket()) throw new Error(`${p} is not a socket`);
  if (!native.probeUnix(p)) throw new Error(`${p}: nobody listens on it (attach takes over a listening peer's socket; to start in front of a peer, use proxy --listen/--connect)`);
  fs.renameSync(p, moved);
  return { path: p, moved, direct: acceptedSocketInodes(p), uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

/**
 * The proxy's socket at `a.path` gets the original's owner, group and mode as it is created
 * (daemon.start with this: listenOn sets them in a private directory before the socket appears at
 * the path, which may be in a directory the peer's user can write).
 */
export function originalSocket(a: Attached): { mode: number; owner: { uid: number; gid: number } } {
  return { mode: a.mode, owner: { uid: a.uid, gid: a.gid } };
}

/** Puts the peer's socket back at its path, replacing the proxy's socket there (one rename). */
export function restore(a: Pick<Attached, 'path' | 'moved'>): void {
  fs.renameSync(a.moved, a.path);
}

/**
 * `vhostscope detach PATH` after the attaching proxy is gone (or as a check): restores the moved
 * socket if there is one. Returns what it did, for the user.
 */
export function detachPath(p: string): string {
  const moved = movedPath(p);
  if (!fs.existsSync(moved)) {
    return fs.existsSync(p) ? `${p}: not attached (no ${path.basename(moved)} beside it); nothing to do` : `${p}: neither it nor ${moved} exists; nothing to do`;
  }
  if (fs.existsSync(p) && native.probeUnix(p)) throw new Error(`${p} is being served (a running vhostscope attach?): stop that process (SIGTERM) and it detaches itself`);
  restore({ path: p, moved });
  return `${p}: the peer's socket is back (${native.probeUnix(p) ? 'and listening' : 'but nobody listens on it: the peer has gone'})`;
}

/**
 * The connections a listening peer accepted on `boundPath`: the sockets /proc/net/unix lists
 * as connected (state 03) under that address. An accepted socket keeps the address the listener
 * was bound to, whatever the path is called now, so this must run before the proxy's own
 * connections to the moved socket exist (they would carry the same address).
 */
export function acceptedSocketInodes(boundPath: string): Set<number> {
  const inodes = new Set<number>();
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path
    if (f.length >= 8 && f[5] === '03' && f.slice(7).join(' ') === boundPath) inodes.add(Number(f[6]));
  }
  return inodes;
}

/** Which process holds each socket inode, and as which fd (scans /proc/<pid>/fd: root sees all). */
export function socketHolders(inodes: ReadonlySet<number>): { pid: number; fd: number; inode: number }[] {
  const out: { pid: number; fd: number; inode: number }[] = [];
  if (!inodes.size) return out;
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (m && inodes.has(Number(m[1]))) out.push({ pid: Number(pid), fd: Number(fd), inode: Number(m[1]) });
    }
  }
  return out;
}

/**
 * `attach --reconnect`: ends the connections the listening peer accepted before the attach (by
 * shutting down its end of each), so that peers which reconnect (QEMU with reconnect=N, an OVS
 * dpdkvhostuserclient port, DPDK virtio-user server mode) come back through the proxy.
 * Returns what was cut, for the log.
 */
export function cutDirectConnections(inodes: ReadonlySet<number>): { pid: number; fd: number; error?: string }[] {
  return socketHolders(inodes).map(({ pid, fd }) => {
    try {
      native.shutdownPeerSocket(pid, fd);
      return { pid, fd };
    } catch (err) {
      return { pid, fd, error: (err as Error).message };
    }
  });
}
