/** How a replay reaches its live peer (src/replay/frontend.ts openPeer) and takes its messages one by one (Inbox). */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { Inbox, openPeer } from '../../src/replay/frontend';
import { tmpDir } from '../helpers';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('openPeer', () => {
  it('keeps trying to connect until the peer listens, and gives up after the timeout naming the path', async () => {
    const sock = path.join(tmpDir('replay-peer'), 'late.sock');
    let listenFd = -1;
    setTimeout(() => (listenFd = native.listenUnix(sock, 1, 0o600)), 250);
    const fd = await openPeer({ connect: sock, timeoutMs: 5000 });
    expect(native.fdInfo(fd).kind).toBe('socket');
    native.close(fd);
    native.close(listenFd);
    const t0 = Date.now();
    await expect(openPeer({ connect: path.join(path.dirname(sock), 'never.sock'), timeoutMs: 300 })).rejects.toThrow(/^cannot connect to .*never\.sock: /);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(300);
  });

  it('listens for one peer, or says nobody came', async () => {
    const dir = tmpDir('replay-listen');
    await expect(openPeer({ listen: path.join(dir, 'a.sock'), timeoutMs: 200 })).rejects.toThrow(
      `nobody connected to ${path.join(dir, 'a.sock')} within 200 ms`,
    );
    const b = path.join(dir, 'b.sock');
    const accepted = openPeer({ listen: b, timeoutMs: 5000 });
    await sleep(50);
    const client = native.connectUnix(b);
    const fd = await accepted;
    expect(native.fdInfo(fd).kind).toBe('socket');
    native.close(fd);
    native.close(client);
  });

  it('needs one of the two', async () => {
    await expect(openPeer({ timeoutMs: 100 })).rejects.toThrow('replay needs --connect PATH or --listen PATH');
  });
});

describe('Inbox', () => {
  it('hands messages over in order, waits for the next up to its timeout, and tells how the peer left', async () => {
    const [a, b] = native.socketpair();
    const inbox = new Inbox(a);
    const peer = new native.Channel(
      b,
      65536,
      () => undefined,
      () => undefined,
    );
    peer.start();
    peer.send(encodeMessage(Request.GET_FEATURES, 1, Buffer.alloc(0)));
    peer.send(encodeMessage(Request.SET_OWNER, 1, Buffer.alloc(0)));
    expect((await inbox.next(1000))!.raw.readUInt32LE(0)).toBe(Request.GET_FEATURES);
    expect((await inbox.next(1000))!.raw.readUInt32LE(0)).toBe(Request.SET_OWNER);
    expect(inbox.pending).toBe(0);
    const t0 = Date.now();
    expect(await inbox.next(150)).toBeUndefined();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
    // a waiter wakes as soon as the peer closes, long before its timeout
    const waiting = inbox.next(10_000);
    const t1 = Date.now();
    peer.close();
    expect(await waiting).toBeUndefined();
    expect(Date.now() - t1).toBeLessThan(5000);
    expect(inbox.closed).toBe('the peer closed the connection');
    inbox.close();
    expect(inbox.closed).toBe('the peer closed the connection'); // the first reason stays
  });

  it('close() wakes a waiter and says the replay closed it', async () => {
    const [a, b] = native.socketpair();
    const inbox = new Inbox(a);
    const waiting = inbox.next(10_000);
    inbox.close();
    expect(await waiting).toBeUndefined();
    expect(inbox.closed).toBe('closed by the replay');
    native.close(b);
  });
});
