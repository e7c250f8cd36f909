/**
 * Finding 6 of the security review, for real: a front-end hands the daemon an fd of a file on a
 * FUSE mount whose server never answers (native/tests/fuse_hang.c: FLUSH, GETATTR and STATFS go
 * unanswered), as a kick fd and as guest memory (--rings). An fstat of it, a close (every close
 * of a FUSE file waits for FLUSH) on the daemon's loop, or a read of it on the relay thread would
 * freeze the daemon for good. The fd is described from /proc alone and
 * closed on the closer thread: the daemon keeps forwarding and answering while that thread
 * waits, and at SIGTERM it does all its stopping work at once. (The kernel holds a process whose
 * thread waits for FLUSH until the server answers or dies: fuse_flush's wait cannot be
 * interrupted. The test kills the server, and only then does the daemon's process end.)
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client';
import { startProxy } from '../../lab/proxy-process';
import { u64 } from '../../lab/synthetic-peers';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { tmpDir, until } from '../helpers';
import { reply, scriptedBackend, scriptedFrontend } from '../peers';

const NATIVE = path.resolve(__dirname, '../../native');

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

async function hangingFuse(dir: string): Promise<{ mnt: string; server: ChildProcess }> {
  const bin = path.join(dir, 'fuse_hang');
  execFileSync('gcc', ['-O1', '-o', bin, path.join(NATIVE, 'tests', 'fuse_hang.c')]);
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  const server = spawn(bin, [mnt], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  server.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  cleanups.push(() => {
    server.kill('SIGKILL'); // every request it left unanswered fails now: the waiting threads go on
    try {
      execFileSync('umount', ['-l', mnt]);
    } catch {
      /* not mounted */
    }
  });
  await until(() => out.includes('ready'), 10_000, 'the FUSE server to mount');
  return { mnt, server };
}

describe('a file on a FUSE mount whose server never answers, handed to the daemon', () => {
  it('neither its fstat nor its close ever runs on the loop: forwarding, status and the stop go on', async () => {
    const dir = tmpDir('fuse-fd');
    const { mnt, server } = await hangingFuse(dir);
    const be = path.join(dir, 'be.sock');
    const fe = path.join(dir, 'fe.sock');
    const received: number[][] = [];
    // (cleanups run in reverse: this one after the server is killed, when a close no longer waits)
    cleanups.unshift(() => {
      for (const fds of received) for (const fd of fds) native.close(fd);
    });
    const backend = scriptedBackend(be, (g, conn) => {
      received.push(g.fds);
      if (g.code === Request.GET_FEATURES) conn.send(reply(g.code, u64(1n << 32n)));
    });
    const proxy = await startProxy({ listen: fe, connect: be, args: ['--rings'], logFile: path.join(dir, 'proxy.log') });
    // A front-end in another process opens the file (LOOKUP and OPEN are answered) and sends it
    // where an eventfd goes; it then waits, its own copy open (this process never holds one: its
    // close would wait too, whatever the addon does)
    const sender = spawn(
      'python3',
      [
        '-c',
        `
import os, socket, struct, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(${JSON.stringify(fe)})
f = os.open(${JSON.stringify(path.join(mnt, 'f'))}, os.O_RDONLY)
socket.send_fds(s, [struct.pack('<III', ${Request.SET_VRING_KICK}, 1, 8) + struct.pack('<Q', 0)], [f])
# the same file as guest memory (--rings would read it on the relay thread)
socket.send_fds(s, [struct.pack('<III', ${Request.ADD_MEM_REG}, 1, 40) + struct.pack('<QQQQQ', 0, 0, 4096, 0x7f0000000000, 0)], [f])
print('sent', flush=True)
time.sleep(3600)
`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let sent = '';
    sender.stdout!.on('data', (b: Buffer) => (sent += b.toString()));
    cleanups.push(() => sender.kill('SIGKILL'));
    const { ch: feCh, got: replies } = scriptedFrontend(fe);
    cleanups.push(() => {
      proxy.kill('SIGKILL');
      feCh.close();
      backend.close();
    });
    await until(() => sent.includes('sent'), 10_000, 'the front-end to send the FUSE file');
    await until(() => received.filter((fds) => fds.length === 1).length === 2, 10_000, 'the FUSE file at the back-end, twice');
    // the daemon forwarded it, and its copy's close now waits for a FLUSH that never comes: on its closer thread
    feCh.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => replies.length === 1, 10_000, 'GET_FEATURES answered through the daemon');
    expect(replies[0].payload.readBigUInt64LE(0)).toBe(1n << 32n);
    const t0 = Date.now();
    const status = await controlRequest(`${fe}.ctl`, { cmd: 'status' }, undefined, 2000);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(JSON.stringify(status)).toContain('"sessions":[{');
    // the daemon described it from /proc (an fstat would have waited for GETATTR)
    const log = fs.readFileSync(path.join(dir, 'proxy.log'), 'utf8');
    expect(log).toContain('carries a file, not an eventfd: forwarded as it came');
    expect(log).toContain('--rings: the region at gpa 0x0 is a file on a fuse file system, whose reads may wait for its server: not read');
    // SIGTERM: the stop's work is done at once (the socket removed, the last line logged)
    proxy.kill('SIGTERM');
    await until(() => !fs.existsSync(fe), 2000, 'the daemon to remove its socket at SIGTERM');
    // the process itself ends once the server answers or dies
    server.kill('SIGKILL');
    expect(await proxy.waitExit(10_000)).toBe(0);
  }, 60_000);
});
