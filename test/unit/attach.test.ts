/**
 * attach's moves on real listening sockets: the guards that keep a peer's socket from being lost
 * (an earlier attach's moved socket, a path still served) and the original's owner, group and
 * mode carried over to the proxy's socket.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { detachPath, moveAside, movedPath, originalSocket } from '../../src/proxy/attach';
import { listenOn } from '../../src/proxy/socket-path';
import { tmpDir } from '../helpers';

const fds: number[] = [];
afterEach(() => {
  for (const fd of fds.splice(0)) native.close(fd);
});

/** a listening socket at p, as a peer has it */
function listening(p: string, mode = 0o600): number {
  const fd = native.listenUnix(p, 4, mode);
  fds.push(fd);
  return fd;
}

const inode = (p: string): number => fs.lstatSync(p).ino;

describe('attach and detach', () => {
  it('refuses to attach over an earlier attach\'s moved socket, touching neither path', () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    listening(p);
    const stale = movedPath(p);
    listening(stale); // an earlier attach's peer socket, still aside
    const [ip, is] = [inode(p), inode(stale)];
    expect(() => moveAside(p)).toThrow(/exists: an earlier attach .* did not detach/);
    expect([inode(p), inode(stale)]).toEqual([ip, is]);
  });

  it('moves a listening socket aside and creates the proxy\'s socket with its owner, group and mode', () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    listening(p, 0o660);
    fs.chownSync(p, 65534, 65534);
    const before = inode(p);
    const a = moveAside(p);
    expect(a).toMatchObject({ path: p, moved: movedPath(p), uid: 65534, gid: 65534, mode: 0o660 });
    expect(inode(a.moved)).toBe(before);
    expect(fs.existsSync(p)).toBe(false);
    const s = originalSocket(a);
    fds.push(listenOn(p, s.mode, s.owner)); // the proxy's own socket, as daemon.start makes it
    const st = fs.lstatSync(p);
    expect([st.isSocket(), st.uid, st.gid, st.mode & 0o7777]).toEqual([true, 65534, 65534, 0o660]);
    expect(native.probeUnix(p)).toBe(true);
  });

  it('detach refuses while the path is served, and restores the peer\'s socket once it is not', () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    listening(p);
    const peer = inode(p);
    const a = moveAside(p);
    const proxy = listening(p); // a live attach serves the path
    expect(() => detachPath(p)).toThrow(/is being served/);
    expect(inode(a.moved)).toBe(peer); // still aside, nothing renamed
    native.close(proxy); // the attaching proxy died: its socket stays, nobody listens
    fds.splice(fds.indexOf(proxy), 1);
    expect(detachPath(p)).toMatch(/the peer's socket is back \(and listening\)/);
    expect(inode(p)).toBe(peer);
    expect(fs.existsSync(a.moved)).toBe(false);
    expect(native.probeUnix(p)).toBe(true);
  });

  it('refuses a path nobody listens on and a path that is not a socket', () => {
    const dir = tmpDir('attach');
    const dead = path.join(dir, 'dead.sock');
    native.close(native.listenUnix(dead, 4, 0o600));
    expect(() => moveAside(dead)).toThrow(/nobody listens on it/);
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, '');
    expect(() => moveAside(file)).toThrow(/is not a socket/);
    expect(() => moveAside(path.join(dir, 'none'))).toThrow(/no such socket/);
    expect(fs.existsSync(movedPath(dead))).toBe(false);
  });
});
