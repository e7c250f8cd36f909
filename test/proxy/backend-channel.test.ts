/**
 * The backend request channel (SET_BACKEND_REQ_FD) and the GPU socket (GPU_SET_SOCKET),
 * interposed as second channels of the session, with fake peers on real sockets: every
 * backend-channel request with its payload, fds and reply; injection; closes; bad input.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { BACKEND_REQUESTS, encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import type { MessageEvent, ProxyEvent, SessionEndEvent } from '../../src/proxy/events';
import { openFds, tmpDir, until } from '../helpers';

const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};

type Got = { msg: Buffer; fds: number[] }[];
function channel(fd: number, got: Got, onMsg?: (m: Buffer, fds: number[]) => void): Channel {
  const ch = new native.Channel(fd, 65536, (msg, fds) => {
    got.push({ msg, fds });
    onMsg?.(msg, fds);
  }, () => {});
  ch.start();
  return ch;
}

async function setup(request = Request.SET_BACKEND_REQ_FD) {
  const dir = tmpDir('bchan');
  const listenPath = path.join(dir, 'fe.sock');
  const backendPath = path.join(dir, 'be.sock');
  const beMain: Got = [];
  const beChan: Got = [];
  const feMain: Got = [];
  const feChan: Got = [];
  const chans: Channel[] = [];
  let beSub: Channel | undefined;
  const listener = new native.Listener(native.listenUnix(backendPath, 4, 0o600), (_e, fd) => {
    if (fd === null) return;
    const main: Channel = channel(fd, beMain, (m, fds) => {
      const code = m.readUInt32LE(0);
      if (code === request && fds.length === 1) {
        beSub = channel(fds[0], beChan);
        chans.push(beSub);
        main.send(encodeMessage(code, 5, u64(0n)));
      }
      if (code === Request.GET_FEATURES) main.send(encodeMessage(code, 5, u64(1n << 30n)));
    });
    chans.push(main);
  });
  const events: ProxyEvent[] = [];
  const daemon = new ProxyDaemon({ listenPath, connectPath: backendPath, emit: (e) => events.push(e) });
  daemon.start();
  const fe = channel(native.connectUnix(listenPath), feMain);
  // REPLY_ACK and the backend channel negotiated, as QEMU does
  fe.send(encodeMessage(Request.SET_PROTOCOL_FEATURES, 1, u64((1n << 3n) | (1n << 5n) | (1n << 10n))));
  const [feEnd, give] = native.socketpair();
  const feSub = channel(feEnd, feChan);
  fe.send(encodeMessage(request, 9), [give]);
  await until(() => beSub !== undefined && feMain.length === 1, 5000, 'the channel to be set up');
  const done = (): void => {
    fe.close();
    feSub.close();
    daemon.stop();
    listener.close();
    for (const c of chans) c.close();
    for (const m of [...beMain, ...beChan, ...feMain, ...feChan]) for (const fd of m.fds) native.close(fd);
  };
  return { fe, feSub, beSub: () => beSub!, beMain, beChan, feMain, feChan, events, daemon, done };
}

/** A payload of the right layout for each backend request, and the fds it carries. */
function requestFor(code: number): { payload: Buffer; fds: number[] } {
  const uuid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  switch (code) {
    case 1: return { payload: Buffer.concat([u64(0x1000n), u64(0x1000n), u64(0n), Buffer.from([3, 1, 0, 0, 0, 0, 0, 0])]), fds: [] };
    case 2: return { payload: Buffer.alloc(0), fds: [] };
    case 3: return { payload: Buffer.concat([u64(1n), u64(4096n), u64(0n)]), fds: [native.memfdCreate('notifier', 4096)] };
    case 4: case 5: return { payload: Buffer.alloc(8), fds: [] };
    case 6: case 7: case 8: return { payload: uuid, fds: [] };
    case 9: return { payload: Buffer.concat([Buffer.alloc(8), u64(0n), u64(0n), u64(4096n), u64(1n)]), fds: [native.memfdCreate('shm', 4096)] };
    case 10: return { payload: Buffer.concat([Buffer.alloc(8), u64(0n), u64(0n), u64(4096n), u64(0n)]), fds: [] };
    default: return { payload: Buffer.alloc(16, 7), fds: [native.eventfd(0)] };
  }
}

describe('backend request channel', () => {
  it('relays every backend request with its payload and fds, and every reply back', async () => {
    const before = openFds();
    const r = await setup();
    const req = r.events.find((e): e is MessageEvent => e.type === 'message' && e.decoded.name === 'SET_BACKEND_REQ_FD')!;
    expect(req.interposed).toBe(true);
    for (const [i, spec] of BACKEND_REQUESTS.entries()) {
      const { payload, fds } = requestFor(spec.code);
      const msg = encodeMessage(spec.code, 9, payload);
      r.beSub().send(msg, fds);
      await until(() => r.feChan.length === i + 1, 2000, spec.name);
      const got = r.feChan[i];
      expect(got.msg.equals(msg), spec.name).toBe(true);
      expect(got.fds.map((fd) => native.fdInfo(fd).kind)).toEqual(fds.length ? [spec.code === 3 || spec.code === 9 ? 'memfd' : 'eventfd'] : []);
      // the frontend answers: SHARED_OBJECT_LOOKUP with a dma-buf-like fd, everything else a plain ack
      const replyFds = spec.code === 8 ? [native.memfdCreate('dmabuf', 4096)] : [];
      r.feSub.send(encodeMessage(spec.code, 5, u64(0n)), replyFds);
      await until(() => r.beChan.length === i + 1, 2000, `${spec.name} reply`);
      expect(r.beChan[i].msg.readUInt32LE(0)).toBe(spec.code);
      expect(r.beChan[i].fds).toHaveLength(replyFds.length);
    }
    const msgs = r.events.filter((e): e is MessageEvent => e.type === 'message' && e.channel === 'backend');
    expect(msgs).toHaveLength(2 * BACKEND_REQUESTS.length);
    expect(msgs.filter((m) => !m.decoded.reply).map((m) => m.decoded.name)).toEqual(BACKEND_REQUESTS.map((s) => s.name));
    expect(msgs.filter((m) => !m.decoded.reply).every((m) => m.dir === 'B>F' && m.replyExpected === true)).toBe(true);
    expect(msgs.filter((m) => m.findings.length && m.decoded.request < 1000)).toEqual([]);
    const notifier = msgs.find((m) => m.decoded.name === 'VRING_HOST_NOTIFIER_MSG')!;
    expect(notifier.fds).toEqual([expect.objectContaining({ kind: 'memfd', memfdName: 'notifier' })]);
    expect(notifier.decoded.payload).toMatchObject({ index: 1, size: 4096n });
    r.done();
    expect(openFds()).toBe(before);
  });

  it('injects CONFIG_CHANGE_MSG towards the frontend and keeps the reply', async () => {
    const r = await setup();
    expect(r.daemon.activeSessions[0].inject('backend', 2)).toBe(true);
    await until(() => r.feChan.length === 1);
    expect(r.feChan[0].msg.readUInt32LE(0)).toBe(2);
    expect(r.feChan[0].msg.readUInt32LE(4)).toBe(9); // NEED_REPLY: REPLY_ACK is in use
    r.feSub.send(encodeMessage(2, 5, u64(0n)));
    await until(() => r.events.some((e) => e.type === 'message' && e.absorbed === true));
    await new Promise((res) => setTimeout(res, 30));
    expect(r.beChan).toHaveLength(0); // the backend never sent it, so it never sees the answer
    const inj = r.events.filter((e): e is MessageEvent => e.type === 'message' && e.channel === 'backend');
    expect(inj.map((m) => [m.decoded.name, m.dir, m.injected ?? m.absorbed])).toEqual([['CONFIG_CHANGE_MSG', 'B>F', true], ['CONFIG_CHANGE_MSG', 'F>B', true]]);
    r.done();
  });

  it('a closed backend channel ends only that channel; the main channel goes on', async () => {
    const r = await setup();
    r.feSub.close();
    await until(() => r.events.some((e) => e.type === 'channel-end'));
    r.fe.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => r.feMain.length === 2);
    expect(r.daemon.activeSessions).toHaveLength(1);
    expect(r.daemon.activeSessions[0].subChannels).toEqual([]);
    r.done();
  });

  it('bad input on the backend channel closes the session with a clear reason', async () => {
    const before = openFds();
    const r = await setup();
    r.beSub().send(Buffer.from('0100000002000000000000000000', 'hex'));
    await until(() => r.events.some((e) => e.type === 'session-end'));
    const end = r.events.find((e): e is SessionEndEvent => e.type === 'session-end')!;
    expect(end.reason).toMatch(/^bad input from the backend \(backend channel\): version 2 in flags 0x2, expected 1; header 010000000200000000000000$/);
    r.done();
    expect(openFds()).toBe(before);
  });
});

describe('GPU socket', () => {
  it('is interposed like the backend channel and decoded with the GPU message set', async () => {
    const r = await setup(Request.GPU_SET_SOCKET);
    r.beSub().send(encodeMessage(1, 1)); // GPU_GET_PROTOCOL_FEATURES
    await until(() => r.feChan.length === 1);
    r.feSub.send(encodeMessage(1, 5, u64(3n)));
    await until(() => r.beChan.length === 1);
    const dmabuf = native.memfdCreate('scanout', 4096);
    r.beSub().send(encodeMessage(9, 1, Buffer.alloc(56)), [dmabuf]); // GPU_DMABUF_SCANOUT
    await until(() => r.feChan.length === 2);
    expect(r.feChan[1].fds).toHaveLength(1);
    const gpu = r.events.filter((e): e is MessageEvent => e.type === 'message' && e.channel === 'gpu');
    expect(gpu.map((m) => `${m.dir} ${m.decoded.name}`)).toEqual(['B>F GPU_GET_PROTOCOL_FEATURES', 'F>B GPU_GET_PROTOCOL_FEATURES', 'B>F GPU_DMABUF_SCANOUT']);
    r.done();
  });
});
