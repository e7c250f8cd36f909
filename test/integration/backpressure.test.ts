/**
 * A peer that stops reading: the proxy must neither drop the other peer's control messages nor
 * queue them without bound. It stops reading the sender instead (back-pressure), so the
 * sender's own socket fills, and it forwards everything, in order, once the reader is back.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, type Channel, type ChannelEnd } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import { closedUnderUs } from '../../src/proxy/channel-end';
import type { ProxyEvent } from '../../src/events/events';
import { FD_HIGH_WATER, HIGH_WATER } from '../../src/proxy/backpressure';
import { openFds, tmpDir, until } from '../helpers';

/** GET_CONFIG with 256 bytes of config space; `seq` rides in the offset field. */
function config(seq: number): Buffer {
  const p = Buffer.alloc(12 + 256);
  p.writeUInt32LE(seq, 0);
  p.writeUInt32LE(256, 4);
  return encodeMessage(Request.GET_CONFIG, 1, p);
}

/** A daemon whose one session's backend accepted the connection and reads nothing (yet). */
async function stalledSession(dir: string): Promise<{ listener: { close(): void }; events: ProxyEvent[]; d: ProxyDaemon; fe: Channel; beFd: number }> {
  let beFd: number | null = null;
  const listener = new native.Listener(native.listenUnix(path.join(dir, 'be.sock'), 4, 0o600), (_e, fd) => {
    if (fd !== null) beFd = fd; // accepted, and not read: the stalled peer
  });
  const events: ProxyEvent[] = [];
  const d = new ProxyDaemon({
    listenPath: path.join(dir, 'fe.sock'),
    connectPath: path.join(dir, 'be.sock'),
    interpose: false,
    emit: (e) => events.push(e),
    notice: () => {},
  });
  d.start();
  const fe: Channel = new native.Channel(
    native.connectUnix(path.join(dir, 'fe.sock')),
    65536,
    () => {},
    () => {},
  );
  fe.start();
  await until(() => beFd !== null, 5000, 'the proxy to connect to the backend');
  return { listener, events, d, fe, beFd: beFd! };
}

describe('back-pressure', () => {
  it('a backend that stops reading pauses the frontend instead of queueing in the daemon; all messages arrive in order later', async () => {
    const dir = tmpDir('backpressure');
    const before = openFds();
    const { listener, events, d, fe, beFd } = await stalledSession(dir);

    const total = 20000; // 5.4 MB: far more than the high-water mark and both sockets' buffers
    for (let i = 0; i < total; i++) fe.send(config(i));
    await until(() => d.status().sessions[0]?.backpressure.pausedNow === 1, 10000, 'the proxy to pause the frontend');
    const notice = events.find((e) => e.type === 'notice' && /back-pressure: the backend is not reading/.test(e.msg));
    expect(notice).toBeDefined();
    // The frontend's socket is full: what it still has to send waits on its side, not in the daemon.
    await new Promise((r) => setTimeout(r, 300));
    expect(fe.queuedBytes).toBeGreaterThan(0);
    const forwarded = events.filter((e) => e.type === 'message').length;
    expect(forwarded).toBeLessThan(total);
    // bounded: what the daemon forwarded but the backend has not read is at most the
    // high-water mark plus one message (and what the backend's socket buffer holds)
    expect(forwarded * 280).toBeLessThan(HIGH_WATER + 280 + 4 * 1024 * 1024);

    // The backend reads again: every message arrives, once, in order.
    const seqs: number[] = [];
    const be: Channel = new native.Channel(
      beFd,
      65536,
      (m) => seqs.push(m.readUInt32LE(12)),
      () => {},
    );
    be.start();
    await until(() => seqs.length === total, 20000, 'every message at the backend');
    expect(seqs.every((s, i) => s === i)).toBe(true);
    expect(events.some((e) => e.type === 'notice' && /back-pressure released/.test(e.msg))).toBe(true);
    expect(d.status().sessions[0].backpressure.pausedNow).toBe(0);
    expect(d.status().sessions[0].backpressure.pauses).toBeGreaterThan(0);

    fe.close();
    be.close();
    await until(() => d.status().sessions.length === 0, 5000, 'the session to end');
    d.stop();
    listener.close();
    await until(() => openFds() === before, 5000, 'no leaked fd');
  }, 60000);

  it('a stalled backend that closes with messages still queued for it is a peer that went away, not bad input', async () => {
    const dir = tmpDir('backpressure-gone');
    const { listener, events, d, fe, beFd } = await stalledSession(dir);
    for (let i = 0; i < 20000; i++) fe.send(config(i));
    await until(() => d.status().sessions[0]?.backpressure.pausedNow === 1, 10000, 'the proxy to pause the frontend');
    native.close(beFd); // gone, with the daemon's queue for it full
    await until(() => events.some((e) => e.type === 'session-end'), 5000, 'the session to end');
    const end = events.find((e) => e.type === 'session-end');
    // (the daemon sees either EOF or its queued writes failing, whichever comes first: both are a peer gone)
    expect(end && end.type === 'session-end' ? end.reason : '').toMatch(/^the backend closed the connection/);
    const failed = (code: ChannelEnd['code'], errno: number): ChannelEnd => ({
      code,
      errno,
      message: 'sendmsg failed: Broken pipe',
      header: Buffer.alloc(0),
      payloadReceived: 0,
      payloadExpected: 0,
    });
    expect(closedUnderUs(failed('EWRITE', 32))).toBe(true); // EPIPE: seen by the 30-minute soak as "bad input from the backend"
    expect(closedUnderUs(failed('EREAD', 104))).toBe(true); // ECONNRESET
    expect(closedUnderUs(failed('EWRITE', 9))).toBe(false); // EBADF: the daemon's own fault
    expect(closedUnderUs(failed('OVERSIZE', 0))).toBe(false);
    fe.close();
    d.stop();
    listener.close();
  }, 60000);

  it('counts fds as well as bytes: small messages each carrying an fd pause the sender long before a megabyte', async () => {
    const dir = tmpDir('backpressure-fds');
    const before = openFds();
    const { listener, events, d, fe, beFd } = await stalledSession(dir);
    const efd = native.eventfd(0);
    // 20-byte SET_VRING_KICKs, one fd each: 20 000 of them are 400 KB, under the byte mark
    const kick = encodeMessage(Request.SET_VRING_KICK, 1, Buffer.alloc(8));
    for (let i = 0; i < 20000; i++) fe.send(kick, [native.dup(efd)]);
    await until(() => d.status().sessions[0]?.backpressure.pausedNow === 1, 10000, 'the proxy to pause the frontend');
    const notice = events.find((e) => e.type === 'notice' && /back-pressure: the backend is not reading/.test(e.msg));
    expect(notice && notice.type === 'notice' ? notice.msg : '').toMatch(/and up to \d+ fds queued/);
    await new Promise((r) => setTimeout(r, 300));
    // what the daemon holds: at most FD_HIGH_WATER queued plus one message (the rest wait in the
    // sockets, in the kernel, or in this test's own frontend queue: one fd per whole 20-byte message)
    const frontendHolds = Math.floor(fe.queuedBytes / kick.length);
    expect(frontendHolds).toBeGreaterThan(0);
    expect(openFds() - before - frontendHolds).toBeLessThan(FD_HIGH_WATER + 64);
    native.close(beFd);
    await until(() => events.some((e) => e.type === 'session-end'), 5000, 'the session to end');
    fe.close();
    d.stop();
    listener.close();
    native.close(efd);
    await until(() => openFds() === before, 5000, 'no leaked fd');
  }, 60000);
});
