/**
 * Security review finding 3, attempted for real: a front-end hands a blocking pipe nobody reads
 * (or a socket nobody services, or a regular file) where an eventfd goes, and the back-end then
 * signals what it received 30 000 times. Relayed, the counts would be written into the pipe by the
 * relay thread until it blocks there holding its lock, the daemon's loop blocking behind it, SIGTERM
 * never completing. Only eventfds are relayed: anything else goes through untouched with a notice,
 * the session keeps forwarding, and SIGTERM ends the daemon within 2 s.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy } from '../../lab/proxy-process';
import type { Peer } from '../../src/demo/process';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { tmpDir, until } from '../helpers';
import { answering, scriptedBackend, scriptedFrontend } from '../peers';

const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

interface Case {
  name: string;
  request: number;
  /** [the fd sent, fds the test keeps open (the far end nobody services)] */
  make: (dir: string) => [number, number[]];
  kind: string;
  /** what the daemon's notice says (default: an eventfd slot's) */
  notice?: string;
}

const CASES: Case[] = [
  {
    name: 'a blocking pipe nobody reads, as a call fd',
    request: Request.SET_VRING_CALL,
    kind: 'a pipe',
    make: () => {
      const [r, w] = native.pipe();
      return [w, [r]];
    },
  },
  {
    name: 'a socket nobody services, as a call fd',
    request: Request.SET_VRING_CALL,
    kind: 'a socket',
    make: () => {
      const [a, b] = native.socketpair();
      return [a, [b]];
    },
  },
  {
    name: 'a regular file, as a kick fd',
    request: Request.SET_VRING_KICK,
    kind: 'a file',
    make: (dir) => [fs.openSync(path.join(dir, 'not-an-eventfd'), 'w+'), []],
  },
  // the back-end request channel is polled as a socket: anything else (uv_poll refuses a file) goes through
  {
    name: 'a pipe, as the back-end request channel',
    request: Request.SET_BACKEND_REQ_FD,
    kind: 'a pipe',
    notice: 'SET_BACKEND_REQ_FD carries a pipe, not a socket: forwarded as it came, not interposed',
    make: () => {
      const [r, w] = native.pipe();
      return [w, [r]];
    },
  },
  {
    name: 'a regular file, as the back-end request channel',
    request: Request.SET_BACKEND_REQ_FD,
    kind: 'a file',
    notice: 'SET_BACKEND_REQ_FD carries a file, not a socket: forwarded as it came, not interposed',
    make: (dir) => [fs.openSync(path.join(dir, 'not-a-socket'), 'w+'), []],
  },
];

describe('an fd of the wrong kind where an eventfd or a socket goes', () => {
  it.each(CASES)(
    '$name: passed through untouched, the daemon never blocks on it, SIGTERM ends it',
    async (c) => {
      const dir = tmpDir('wrongfd');
      const be = path.join(dir, 'be.sock');
      const fe = path.join(dir, 'fe.sock');
      const backend = scriptedBackend(be, answering({ [Request.GET_FEATURES]: u64(1n << 32n) }));
      const { got } = backend;
      const proxy: Peer = await startProxy({ listen: fe, connect: be, args: ['--no-control'], logFile: path.join(dir, 'proxy.log') });
      const { ch: feCh, got: replies } = scriptedFrontend(fe);
      const [sent, kept] = c.make(dir);
      const sentIno = fs.fstatSync(sent).ino;
      cleanups.push(() => {
        proxy.kill('SIGKILL');
        feCh.close();
        backend.close();
        for (const fd of kept) native.close(fd);
        for (const g of got) for (const fd of g.fds) native.close(fd);
      });
      feCh.send(encodeMessage(c.request, 1, u64(0n)), [sent]);
      await until(() => got.length === 1, 10_000, 'the notification fd at the back-end');
      const received = got[0].fds[0];
      // the back-end signals what it got as hard as it likes: an eventfd of the proxy's would be
      // relayed into the peer's fd (never blocks the test: an eventfd write does not block)
      if (native.fdInfo(received).kind === 'eventfd') for (let i = 0; i < 30_000; i++) native.eventfdWrite(received, 1);
      // the daemon still forwards, both ways
      feCh.send(encodeMessage(Request.GET_FEATURES, 1));
      await until(() => replies.length === 1, 10_000, 'GET_FEATURES answered through the daemon');
      expect(replies[0].payload.readBigUInt64LE(0)).toBe(1n << 32n);
      // what the back-end got is the front-end's own object, not one of the proxy's
      expect(fs.fstatSync(received).ino).toBe(sentIno);
      const t0 = Date.now();
      proxy.kill('SIGTERM');
      expect(await proxy.waitExit(2000)).toBe(0);
      expect(Date.now() - t0).toBeLessThan(2000);
      const log = fs.readFileSync(path.join(dir, 'proxy.log'), 'utf8');
      expect(log).toContain(c.notice ?? `vring 0 carries ${c.kind}, not an eventfd: forwarded as it came, not interposed`);
    },
    30_000,
  );
});
