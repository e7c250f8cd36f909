/**
 * attach's moves on real listening sockets: the guards that keep a peer's socket from being lost
 * (an earlier attach's moved socket, a path still served) and the original's owner, group and
 * mode carried over to the proxy's socket.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import {
  cutDirectConnections,
  detachPath,
  moveAside,
  movedPath,
  originalSocket,
  restore,
  socketAt,
  socketHolders,
  socketsBoundAt,
} from '../../src/proxy/attach';
import { listenOn } from '../../src/native/socket-path';
import { tmpDir, until } from '../helpers';

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
  it("refuses to attach over an earlier attach's moved socket, touching neither path", () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    listening(p);
    const stale = movedPath(p);
    listening(stale); // an earlier attach's peer socket, still aside
    const [ip, is] = [inode(p), inode(stale)];
    expect(() => moveAside(p)).toThrow(/exists: an earlier attach .* did not detach/);
    expect([inode(p), inode(stale)]).toEqual([ip, is]);
  });

  it("moves a listening socket aside and creates the proxy's socket with its owner, group and mode", () => {
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

  it("detach refuses while the path is served, and restores the peer's socket once it is not", () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    listening(p);
    const peer = inode(p);
    const a = moveAside(p);
    const proxy = listening(p); // a live attach serves the path
    expect(() => detachPath(p)).toThrow(/is being served/);
    expect(inode(a.moved)).toBe(peer); // still aside, nothing renamed
    native.close(proxy); // the attaching proxy died: its socket stays, nobody listens
    fds.splice(fds.indexOf(proxy), 1);
    expect(detachPath(p)).toMatch(/the peer's socket is back \(and listening; owner uid \d+\)/);
    expect(inode(p)).toBe(peer);
    expect(fs.existsSync(a.moved)).toBe(false);
    expect(native.probeUnix(p)).toBe(true);
  });

  it("puts the peer's socket back over the proxy's when both are what attach left", () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    listening(p);
    const peer = inode(p);
    const a = moveAside(p);
    const s = originalSocket(a);
    fds.push(listenOn(p, s.mode, s.owner));
    a.ours = socketAt(p);
    expect(restore(a)).toMatch(/is the peer's own socket again/);
    expect(inode(p)).toBe(peer);
    expect(fs.existsSync(a.moved)).toBe(false);
  });

  it('a peer that restarted while attached keeps its new socket: the stale one aside goes, nothing is renamed over it', () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    const oldPeer = listening(p);
    const a = moveAside(p);
    const s = originalSocket(a);
    fds.push(listenOn(p, s.mode, s.owner));
    a.ours = socketAt(p);
    // the peer restarts: it unlinks its path (the proxy's socket now) and binds it anew
    native.close(oldPeer);
    fds.splice(fds.indexOf(oldPeer), 1);
    fs.unlinkSync(p);
    listening(p);
    const fresh = inode(p);
    expect(restore(a)).toMatch(/holds a new socket \(the peer restarted while attached\): left as it is/);
    expect(inode(p)).toBe(fresh);
    expect(native.probeUnix(p)).toBe(true);
    expect(fs.existsSync(a.moved)).toBe(false);
  });

  it("restore touches nothing when the path is not the proxy's and the peer still listens aside", () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    listening(p);
    const a = moveAside(p);
    listening(p); // someone else's socket, not the proxy's (a.ours unset: the proxy never listened)
    const [atPath, aside] = [inode(p), inode(a.moved)];
    expect(() => restore(a)).toThrow(/both are left as they are/);
    expect([inode(p), inode(a.moved)]).toEqual([atPath, aside]);
  });

  it('a path too long for the usual moved name gets a short one the proxy can connect to', () => {
    const dir = tmpDir('attach');
    const p = path.join(dir, `${'v'.repeat(100 - dir.length)}.sock`);
    expect(Buffer.byteLength(p)).toBeGreaterThan(86);
    expect(Buffer.byteLength(p)).toBeLessThanOrEqual(107);
    listening(p);
    const a = moveAside(p);
    expect(a.moved).toBe(movedPath(p));
    expect(Buffer.byteLength(a.moved)).toBeLessThanOrEqual(107);
    expect(native.probeUnix(a.moved)).toBe(true); // connect works: the proxy can forward there
    expect(detachPath(p)).toMatch(/the peer's socket is back/);
  });

  it("a failure after the move (the control socket's path taken) puts the peer's socket back", () => {
    const p = path.join(tmpDir('attach'), 'vhost.sock');
    listening(p);
    const peer = inode(p);
    fs.writeFileSync(`${p}.ctl`, 'not a socket');
    const cli = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');
    const r = spawnSync(process.execPath, [cli, 'attach', p, '--json'], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).not.toBe(0);
    expect(r.stdout + r.stderr).toMatch(/\.ctl exists and is not a socket/);
    expect(inode(p)).toBe(peer);
    expect(native.probeUnix(p)).toBe(true);
    expect(fs.existsSync(movedPath(p))).toBe(false);
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

  it('--reconnect cuts only what the listening peer accepted in this mount namespace, each fd checked to be that socket', async () => {
    const dir = tmpDir('reconnect-cut');
    const p = path.join(dir, 'vhost.sock');
    const lines = (c: ChildProcess): string[] => {
      const out: string[] = [];
      c.stdout!.on('data', (b: Buffer) => out.push(...b.toString().split('\n').filter(Boolean)));
      return out;
    };
    // a peer listening at p that reports when a connection it accepted ends; `self` also connects to itself
    const peer = (self: boolean): string => `const net = require('net');
      const s = net.createServer((c) => { process.stdout.write('accepted\\n'); c.on('close', () => process.stdout.write('cut\\n')); c.resume(); });
      s.listen(${JSON.stringify(p)}, () => { process.stdout.write('up\\n'); ${self ? `net.connect(${JSON.stringify(p)}).resume();` : ''} });`;
    const real = spawn(process.execPath, ['-e', peer(false)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const realOut = lines(real);
    await until(() => realOut.includes('up'), 10_000, 'the peer listening');
    // another mount namespace binds the same address string (its own tmpfs over the directory) and connects to itself
    const other = spawn(
      'unshare',
      ['-m', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs none ${dir} && exec ${process.execPath} -e "$0"`, peer(true)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const otherOut = lines(other);
    try {
      await until(() => otherOut.includes('accepted'), 10_000, "the other namespace's connection");
      const client = native.connectUnix(p);
      fds.push(client);
      await until(() => realOut.includes('accepted'), 10_000, 'the peer accepting');
      const sockets = socketsBoundAt(p);
      expect(sockets.listening.size).toBe(2);
      expect(sockets.accepted.size).toBe(2);
      // a pid or fd reused since /proc was read: the native side checks the inode and leaves it alone
      const [mine] = socketHolders(sockets.accepted).filter((h) => h.pid === real.pid);
      expect(() => native.shutdownPeerSocket(mine.pid, mine.fd, mine.inode + 1)).toThrow(/not that socket any more/);
      expect(realOut).not.toContain('cut');

      const cut = cutDirectConnections({ direct: sockets.accepted, listening: sockets.listening });
      expect(cut.find((c) => c.pid === real.pid)).toEqual({ pid: real.pid, fd: mine.fd });
      expect(cut.find((c) => c.pid === other.pid)?.error).toMatch(/not held by the process listening at the path in this mount namespace; left alone/);
      await until(() => realOut.includes('cut'), 5000, "the peer's connection to end");
      await new Promise((r) => setTimeout(r, 300));
      expect(otherOut).not.toContain('cut');
    } finally {
      real.kill();
      other.kill();
    }
  });
});
