/**
 * `vhostscope attach PATH`: slide into a listening peer's socket path without touching either
 * peer. A bound unix socket keeps listening when its path changes, so the peer's socket is
 * moved aside to a sibling path (a hard link, then an unlink: same directory, never across a file
 * system), and the proxy listens at the original path with its owner, group and mode, forwarding
 * to the moved socket. Connections made before keep going directly; new ones come through the
 * proxy. Detaching renames the peer's socket back over the proxy's, in one step (a connecting
 * peer finds a listener at the path at every moment), once it has checked that both are still
 * what attach left there.
 *
 * After a SIGKILL of the proxy the path holds its dead socket and the peer's is still aside:
 * `vhostscope detach PATH` puts it back (the moved name is derived from the path, so nothing
 * else needs to survive the crash).
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native';

/** A file's identity: what a path held at one moment, to tell whether it still does. */
export interface FileId {
  dev: number;
  ino: number;
}

const idOf = (st: fs.Stats): FileId => ({ dev: st.dev, ino: st.ino });
const sameFile = (a: FileId, b: FileId): boolean => a.dev === b.dev && a.ino === b.ino;
function lstatOrNone(p: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(p);
  } catch {
    return undefined;
  }
}

export interface Attached {
  /** the peer's original path, where the proxy now listens */
  path: string;
  /** the connections the peer had accepted when it was moved aside (they stay direct) */
  direct: Set<number>;
  /** the listening sockets bound at the path then (the peer's: --reconnect cuts only what their holder accepted) */
  listening: Set<number>;
  /** where the peer's listening socket is now */
  moved: string;
  /** the peer's socket file, as it was moved */
  peer: FileId;
  /** the proxy's own socket at `path`, once it listens there (set by the caller: socketAt) */
  ours?: FileId;
  uid: number;
  gid: number;
  mode: number;
}

/** the most a unix socket address holds (sun_path less its terminating NUL) */
const MAX_SOCKET_PATH = 107;

/**
 * Where attach moves the socket at `p`: `.NAME.vhostscope-attached` beside it or, when that would
 * not fit in a socket address (the proxy connects to it), a short name derived from the
 * original's. Either way `detach` finds it from the path alone, after a crash too.
 */
export function movedPath(p: string): string {
  const plain = path.join(path.dirname(p), `.${path.basename(p)}.vhostscope-attached`);
  if (Buffer.byteLength(plain) <= MAX_SOCKET_PATH) return plain;
  return path.join(path.dirname(p), `.vhs-attached-${createHash('sha256').update(path.basename(p)).digest('hex').slice(0, 12)}`);
}

/**
 * Moves the listening socket at `p` aside. The caller then listens at `p` (daemon.start with
 * originalSocket) and forwards to `moved`; on any failure before that, restore() undoes the move.
 * The move is a hard link, then an unlink: the link fails if the moved name exists, so of two
 * attaches racing for one path exactly one moves it (with a rename the second would replace the
 * first's moved socket, and the peer's listener would lose its name).
 */
export function moveAside(p: string): Attached {
  const moved = movedPath(p);
  if (Buffer.byteLength(moved) > MAX_SOCKET_PATH)
    throw new Error(
      `${p}: its socket would be moved to ${moved}, longer than a unix socket address holds (${MAX_SOCKET_PATH} bytes); attach to a shorter path`,
    );
  const st = lstatOrNone(p);
  if (!st) throw new Error(`${p}: no such socket (attach takes over a path a peer listens on)`);
  if (!st.isSocket()) throw new Error(`${p} is not a socket`);
  if (!native.probeUnix(p))
    throw new Error(`${p}: nobody listens on it (attach takes over a listening peer's socket; to start in front of a peer, use proxy --listen/--connect)`);
  try {
    fs.linkSync(p, moved);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST')
      throw new Error(`${moved} exists: an earlier attach to ${p} did not detach, or another is attaching now (run "vhostscope detach ${p}" once none runs)`);
    throw err;
  }
  const linked = lstatOrNone(moved);
  if (!linked || !sameFile(idOf(linked), idOf(st))) {
    // the peer replaced its socket between the look and the link: our new link goes, the rest stays
    if (linked) fs.unlinkSync(moved);
    throw new Error(`${p} changed while vhostscope was moving it aside (the peer restarting?); try again`);
  }
  fs.unlinkSync(p);
  const sockets = socketsBoundAt(p);
  return { path: p, moved, peer: idOf(st), direct: sockets.accepted, listening: sockets.listening, uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 };
}

/** The socket file at `p` now, for Attached.ours once the proxy listens there. */
export function socketAt(p: string): FileId | undefined {
  const st = lstatOrNone(p);
  return st?.isSocket() ? idOf(st) : undefined;
}

/**
 * The proxy's socket at `a.path` gets the original's owner, group and mode as it is created
 * (daemon.start with this: listenOn sets them in a private directory before the socket appears at
 * the path, which may be in a directory the peer's user can write).
 */
export function originalSocket(a: Attached): { mode: number; owner: { uid: number; gid: number } } {
  return { mode: a.mode, owner: { uid: a.uid, gid: a.gid } };
}

/**
 * Puts the peer's socket back at its path, replacing the proxy's there (one rename), if both are
 * still what attach left: the moved socket the peer's, the path the proxy's (or empty). A peer
 * that restarted while attached has bound its path anew: its new socket stays, and the old one
 * aside goes if nobody listens on it. Returns what it did; throws (touching nothing) otherwise.
 */
export function restore(a: Pick<Attached, 'path' | 'moved' | 'peer' | 'ours'>): string {
  const moved = lstatOrNone(a.moved);
  if (!moved || !sameFile(idOf(moved), a.peer))
    throw new Error(`${a.moved} is ${moved ? 'no longer the socket attach moved there' : 'gone'}; ${a.path} is left as it is`);
  const now = lstatOrNone(a.path);
  if (now && !(a.ours && sameFile(idOf(now), a.ours))) {
    if (native.probeUnix(a.moved))
      throw new Error(`${a.path} holds a socket that is not vhostscope's while the peer still listens on ${a.moved}; both are left as they are`);
    fs.unlinkSync(a.moved);
    return `${a.path} holds a new socket (the peer restarted while attached): left as it is; its old socket ${a.moved} removed`;
  }
  fs.renameSync(a.moved, a.path);
  return `${a.path} is the peer's own socket again; new connections go to it directly`;
}

/**
 * `vhostscope detach PATH` after the attaching proxy is gone (or as a check): restores the moved
 * socket if there is one, and only a socket. Returns what it did, for the user.
 */
export function detachPath(p: string): string {
  const moved = movedPath(p);
  const st = lstatOrNone(moved);
  if (!st)
    return lstatOrNone(p) ? `${p}: not attached (no ${path.basename(moved)} beside it); nothing to do` : `${p}: neither it nor ${moved} exists; nothing to do`;
  if (!st.isSocket()) throw new Error(`${moved} is not a socket: not attach's; nothing done`);
  if (lstatOrNone(p) && native.probeUnix(p))
    throw new Error(`${p} is being served (a running vhostscope attach?): stop that process (SIGTERM) and it detaches itself`);
  fs.renameSync(moved, p);
  return `${p}: the peer's socket is back (${native.probeUnix(p) ? 'and listening' : 'but nobody listens on it: the peer has gone'}; owner uid ${st.uid})`;
}

/**
 * The sockets /proc/net/unix lists under the address `boundPath`: listening (state 01) and
 * connected (state 03: the connections a listener accepted). An accepted socket keeps the
 * address the listener was bound to, whatever the path is called now, so this must run before
 * the proxy's own connections to the moved socket exist (they would carry the same address).
 * The address is a string: a process in another mount namespace may have bound the same one.
 */
export function socketsBoundAt(boundPath: string): { listening: Set<number>; accepted: Set<number> } {
  const listening = new Set<number>();
  const accepted = new Set<number>();
  for (const line of fs.readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path
    if (f.length < 8 || f.slice(7).join(' ') !== boundPath) continue;
    if (f[5] === '03') accepted.add(Number(f[6]));
    else if (f[5] === '01') listening.add(Number(f[6]));
  }
  return { listening, accepted };
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

/** The mount namespace of a process ("mnt:[4026531841]"), or undefined if it cannot be read. */
function mountNamespace(pid: number | 'self'): string | undefined {
  try {
    return fs.readlinkSync(`/proc/${pid}/ns/mnt`);
  } catch {
    return undefined;
  }
}

export interface CutConnection {
  pid: number;
  fd: number;
  /** why it was not cut (the native call failed, or it is not the peer's) */
  error?: string;
}

/**
 * `attach --reconnect`: ends the connections the listening peer accepted before the attach (by
 * shutting down its end of each), so that peers which reconnect (QEMU with reconnect=N, an OVS
 * dpdkvhostuserclient port, DPDK virtio-user server mode) come back through the proxy. Only a
 * connection held by a process that also holds the listening socket, in this mount namespace,
 * is the peer's: the same address bound in another namespace is someone else's socket. Each
 * fd is checked to still be that socket when it is taken. Returns what was cut, for the log.
 */
export function cutDirectConnections(a: Pick<Attached, 'direct' | 'listening'>, holders = socketHolders): CutConnection[] {
  const ours = mountNamespace('self');
  const found = holders(new Set([...a.direct, ...a.listening]));
  const peers = new Set(found.filter((h) => a.listening.has(h.inode) && mountNamespace(h.pid) === ours).map((h) => h.pid));
  return found
    .filter((h) => a.direct.has(h.inode))
    .map(({ pid, fd, inode }) => {
      if (!peers.has(pid)) return { pid, fd, error: 'it is not held by the process listening at the path in this mount namespace; left alone' };
      try {
        native.shutdownPeerSocket(pid, fd, inode);
        return { pid, fd };
      } catch (err) {
        return { pid, fd, error: (err as Error).message };
      }
    });
}
