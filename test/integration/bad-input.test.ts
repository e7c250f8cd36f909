/**
 * Bad input from either peer: one clear log line naming the session, the peer and the header
 * bytes; that session closed on both sides; the daemon keeps serving; no fd left open.
 * The peers here are fakes on purpose (they send what no real peer would).
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { humanLine, eventRecord } from '../../src/log/format';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import type { ProxyEvent, SessionEndEvent } from '../../src/events/events';
import { openFds, tmpDir, until } from '../helpers';

const dir = tmpDir('bad');
const listenPath = path.join(dir, 'fe.sock');
const backendPath = path.join(dir, 'be.sock');
const events: ProxyEvent[] = [];
let backendOpen = 0;
let backendMode: 'echo-features' | 'garbage-reply' = 'echo-features';
let backend: net.Server;
let daemon: ProxyDaemon;

const ends = (): SessionEndEvent[] => events.filter((e): e is SessionEndEvent => e.type === 'session-end');

beforeAll(async () => {
  backend = net.createServer((s) => {
    backendOpen++;
    s.on('data', (d) => {
      if (d.length >= 12 && d.readUInt32LE(0) === 1) {
        if (backendMode === 'garbage-reply') s.write(Buffer.from('deadbeefdeadbeefdeadbeef', 'hex'));
        else {
          const p = Buffer.alloc(8);
          p.writeBigUInt64LE(1n << 30n);
          s.write(encodeMessage(1, 5, p));
        }
      }
    });
    s.on('error', () => {});
    s.on('close', () => backendOpen--);
  });
  await new Promise<void>((r) => backend.listen(backendPath, r));
  daemon = new ProxyDaemon({ listenPath, connectPath: backendPath, emit: (e) => events.push(e) });
  daemon.start();
});

afterAll(async () => {
  daemon.stop();
  await new Promise((r) => backend.close(r));
});

/** One frontend connection that sends `bytes` (optionally with fds) and waits until the proxy closes it. */
async function badSession(bytes: Buffer, fds: number[] = [], endAfter = false): Promise<void> {
  const fd = native.connectUnix(listenPath);
  let closed = false;
  const ch = new native.Channel(
    fd,
    1 << 20,
    () => {},
    () => (closed = true),
  );
  ch.start();
  ch.send(bytes, fds);
  if (endAfter) {
    ch.close();
    closed = true;
  }
  await until(() => closed, 5000, 'the proxy to close the session');
  ch.close();
}

const hdr = (request: number, flags: number, size: number): Buffer => {
  const b = Buffer.alloc(12);
  b.writeUInt32LE(request, 0);
  b.writeUInt32LE(flags, 4);
  b.writeUInt32LE(size, 8);
  return b;
};

const cases: { name: string; run: () => Promise<void>; expect: RegExp }[] = [
  {
    name: 'garbage',
    run: () => badSession(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
    expect: /version 3 in flags 0x5448202f, expected 1; header announces a payload larger than 65536 bytes/,
  },
  { name: 'version 2', run: () => badSession(hdr(1, 2, 0)), expect: /version 2 in flags 0x2, expected 1/ },
  { name: 'reserved flag bits', run: () => badSession(hdr(1, 0x41, 0)), expect: /reserved flag bits set: flags 0x41/ },
  { name: 'size above 64 KiB', run: () => badSession(hdr(5, 1, 65537)), expect: /payload larger than 65536/ },
  {
    name: 'EOF mid-message',
    run: () => badSession(Buffer.concat([hdr(5, 1, 40), Buffer.alloc(10)]), [], true),
    expect: /EOF in the middle of a message \(12\/12 header bytes, 10\/40 payload bytes\)/,
  },
  {
    name: 'too many fds',
    run: () =>
      badSession(
        encodeMessage(5, 1, Buffer.alloc(8)),
        Array.from({ length: 9 }, () => native.eventfd(0)),
      ),
    expect: /9 fds, no message carries more than 8/,
  },
  {
    name: 'MSG_CTRUNC',
    run: () =>
      badSession(
        encodeMessage(5, 1, Buffer.alloc(8)),
        Array.from({ length: 70 }, () => native.eventfd(0)),
      ),
    expect: /control data truncated/,
  },
];

describe('bad input from a peer', () => {
  it.each(cases)('$name: one clear line, session closed on both sides', async (c) => {
    const n = ends().length;
    await c.run();
    await until(() => ends().length === n + 1 && backendOpen === 0);
    const end = ends()[n];
    // nothing was said yet when the garbage came: the proxy cannot know the role, only the side
    expect(end.reason).toMatch(/^bad input from the (frontend|peer on the listen side)/);
    expect(end.reason).toMatch(c.expect);
    expect(end.reason).toMatch(/header [0-9a-f]{2,24}|header \(none\)/);
    const line = humanLine(eventRecord(end));
    expect(line).toMatch(new RegExp(`s${end.session} session end: bad input from the`));
  });

  it('fds sent with a message that never completes: the session ends past 64 held, every one closed', async () => {
    await until(() => backendOpen === 0);
    const before = openFds();
    const n = ends().length;
    const fd = native.connectUnix(listenPath);
    let closed = false;
    const ch = new native.Channel(
      fd,
      1 << 20,
      () => {},
      () => (closed = true),
    );
    ch.start();
    ch.send(hdr(Request.SET_MEM_TABLE, 1, 1000), [native.eventfd(0)]); // a payload that never comes whole
    for (let i = 0; i < 12 && !closed; i++) {
      ch.send(
        Buffer.alloc(1),
        Array.from({ length: 8 }, () => native.eventfd(0)),
      );
      await new Promise((r) => setTimeout(r, 5));
    }
    await until(() => closed && ends().length === n + 1 && backendOpen === 0, 5000, 'the proxy to end the session');
    ch.close();
    expect(ends()[n].reason).toMatch(/^bad input from the (frontend|peer on the listen side): more fds than any message carries arrived with one message/);
    await until(() => openFds() === before, 5000, `fds back to ${before} (now ${openFds()})`);
  });

  it('fds held in a message that stops short of the bound: the session ends after the held-fds timeout, every one closed', async () => {
    const d2dir = tmpDir('bad-held');
    const d2 = new ProxyDaemon({ listenPath: path.join(d2dir, 'fe.sock'), connectPath: backendPath, heldFdsTimeoutMs: 600, emit: (e) => events.push(e) });
    d2.start();
    await until(() => backendOpen === 0);
    const before = openFds();
    const n = ends().length;
    let closed = false;
    const ch = new native.Channel(
      native.connectUnix(path.join(d2dir, 'fe.sock')),
      1 << 20,
      () => {},
      () => (closed = true),
    );
    ch.start();
    // 8 fds (a legal count) with a message that is never finished
    ch.send(
      hdr(Request.SET_MEM_TABLE, 1, 1000),
      Array.from({ length: 8 }, () => native.eventfd(0)),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(closed).toBe(false); // not at once: a message may take a moment to arrive whole
    await until(() => closed && ends().length === n + 1 && backendOpen === 0, 5000, 'the proxy to end the session');
    ch.close();
    expect(ends()[n].reason).toMatch(
      /^the (frontend|peer on the listen side) has held 8 fds in an unfinished message for \d+ s; a peer sends a message's bytes with its fds$/,
    );
    await until(() => openFds() === before, 5000, `fds back to ${before} (now ${openFds()})`);
    d2.stop();
  });

  it('bad input from the backend closes the session on both sides too', async () => {
    backendMode = 'garbage-reply';
    try {
      const n = ends().length;
      const fd = native.connectUnix(listenPath);
      let closed = false;
      const ch = new native.Channel(
        fd,
        65536,
        () => {},
        () => (closed = true),
      );
      ch.start();
      ch.send(encodeMessage(1, 1));
      await until(() => closed && ends().length === n + 1 && backendOpen === 0);
      ch.close();
      expect(ends()[n].reason).toMatch(/^bad input from the backend: version 2 in flags 0xefbeadde.*header deadbeefdeadbeefdeadbeef/);
    } finally {
      backendMode = 'echo-features'; // the next test gets a well-behaved backend whatever happened here
    }
  });

  it('survives 1000 bad sessions without leaking an fd, then still forwards a good one', async () => {
    await until(() => backendOpen === 0);
    const before = openFds();
    const n = ends().length;
    for (let i = 0; i < 1000; i++) {
      await cases[i % cases.length].run().catch((e: Error) => {
        throw new Error(`session ${i} (${cases[i % cases.length].name}): ${e.message}`);
      });
    }
    await until(() => ends().length === n + 1000 && backendOpen === 0, 20_000, 'all sessions to end');
    expect(
      ends()
        .slice(n)
        .every((e) => e.reason.startsWith('bad input')),
    ).toBe(true);
    expect(openFds()).toBe(before);

    const fd = native.connectUnix(listenPath);
    const replies: Buffer[] = [];
    const ch = new native.Channel(
      fd,
      65536,
      (m) => replies.push(m),
      () => {},
    );
    ch.start();
    ch.send(encodeMessage(1, 1));
    await until(() => replies.length === 1);
    expect(replies[0].readUInt32LE(4)).toBe(5);
    expect(replies[0].readBigUInt64LE(12)).toBe(1n << 30n);
    ch.close();
    await until(() => backendOpen === 0);
    expect(openFds()).toBe(before);
  }, 120_000);
});
