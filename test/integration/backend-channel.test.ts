/**
 * The backend request channel (SET_BACKEND_REQ_FD) and the GPU socket (GPU_SET_SOCKET),
 * interposed as second channels of the session, with fake peers on real sockets: every
 * backend-channel request with its payload, fds and reply; injection; closes; bad input.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { BACKEND_REQUESTS, encodeMessage, formatPayload, GPU_MAX_PAYLOAD, Request, toJsonSafe } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import type { MessageEvent, ProxyEvent, SessionEndEvent } from '../../src/events/events';
import { openFds, tmpDir, until } from '../helpers';
import { reply, scriptedBackend, u64 } from '../peers';

type Got = { msg: Buffer; fds: number[] }[];
function channel(fd: number, got: Got, onMsg?: (m: Buffer, fds: number[]) => void): Channel {
  const ch = new native.Channel(
    fd,
    GPU_MAX_PAYLOAD,
    (msg, fds) => {
      got.push({ msg, fds });
      onMsg?.(msg, fds);
    },
    () => {},
  );
  ch.start();
  return ch;
}

/** `blockingSocket`: the frontend's channel socket is blocking, as QEMU's socketpair is. */
async function setup(request = Request.SET_BACKEND_REQ_FD, blockingSocket = false) {
  const dir = tmpDir('bchan');
  const listenPath = path.join(dir, 'fe.sock');
  const backendPath = path.join(dir, 'be.sock');
  const beChan: Got = [];
  const feMain: Got = [];
  const feChan: Got = [];
  const chans: Channel[] = [];
  let beSub: Channel | undefined;
  let beSubNonblocking: boolean | undefined;
  const backend = scriptedBackend(
    backendPath,
    (g, conn) => {
      if (g.code === request && g.fds.length === 1) {
        beSubNonblocking = native.nonblocking(g.fds[0]); // before libuv (uv_poll_init) sets O_NONBLOCK
        beSub = channel(g.fds[0], beChan);
        chans.push(beSub);
        conn.send(reply(g.code, u64(0n)));
      }
      if (g.code === Request.GET_FEATURES) conn.send(reply(g.code, u64(1n << 30n)));
    },
    { maxPayload: GPU_MAX_PAYLOAD },
  );
  const beMain: Got = backend.got;
  const events: ProxyEvent[] = [];
  const daemon = new ProxyDaemon({ listenPath, connectPath: backendPath, emit: (e) => events.push(e) });
  daemon.start();
  const fe = channel(native.connectUnix(listenPath), feMain);
  // REPLY_ACK and the backend channel negotiated, as QEMU does
  fe.send(encodeMessage(Request.SET_PROTOCOL_FEATURES, 1, u64((1n << 3n) | (1n << 5n) | (1n << 10n))));
  const [feEnd, give] = native.socketpair();
  if (blockingSocket) native.setNonblocking(give, false);
  const feSub = channel(feEnd, feChan);
  fe.send(encodeMessage(request, 9), [give]);
  await until(() => beSub !== undefined && feMain.length === 1, 5000, 'the channel to be set up');
  const done = (): void => {
    fe.close();
    feSub.close();
    daemon.stop();
    backend.close();
    for (const c of chans) c.close();
    for (const m of [...beMain, ...beChan, ...feMain, ...feChan]) for (const fd of m.fds) native.close(fd);
  };
  return { fe, feSub, beSub: () => beSub!, beSubNonblocking: () => beSubNonblocking, beMain, beChan, feMain, feChan, events, daemon, done };
}

/** A payload of the right layout for each backend request, and the fds it carries. */
function requestFor(code: number): { payload: Buffer; fds: number[] } {
  const uuid = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  switch (code) {
    case 1:
      return { payload: Buffer.concat([u64(0x1000n), u64(0x1000n), u64(0n), Buffer.from([3, 1, 0, 0, 0, 0, 0, 0])]), fds: [] };
    case 2:
      return { payload: Buffer.alloc(0), fds: [] };
    case 3:
      return { payload: Buffer.concat([u64(1n), u64(4096n), u64(0n)]), fds: [native.memfdCreate('notifier', 4096)] };
    case 4:
    case 5:
      return { payload: Buffer.alloc(8), fds: [] };
    case 6:
    case 7:
    case 8:
      return { payload: uuid, fds: [] };
    case 9:
      return { payload: Buffer.concat([Buffer.alloc(8), u64(0n), u64(0n), u64(4096n), u64(1n)]), fds: [native.memfdCreate('shm', 4096)] };
    case 10:
      return { payload: Buffer.concat([Buffer.alloc(8), u64(0n), u64(0n), u64(4096n), u64(0n)]), fds: [] };
    default:
      return { payload: Buffer.alloc(16, 7), fds: [native.eventfd(0)] };
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
    expect(inj.map((m) => [m.decoded.name, m.dir, m.injected ?? m.absorbed])).toEqual([
      ['CONFIG_CHANGE_MSG', 'B>F', true],
      ['CONFIG_CHANGE_MSG', 'F>B', true],
    ]);
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

/** GPU socket messages as QEMU 10 and vhost-user-gpu 10 exchanged them (test/e2e/gpu.test.ts). */
const REAL_GPU: { messages: { dir: 'F>B' | 'B>F'; name: string; hex: string }[] } = JSON.parse(
  fs.readFileSync(path.join(__dirname, '../fixtures/gpu-qemu10.json'), 'utf8'),
);

describe('GPU socket', () => {
  it('relays the real QEMU 10 / vhost-user-gpu exchange unchanged: requests with flags 0, replies with 0x4, none closes the session', async () => {
    const r = await setup(Request.GPU_SET_SOCKET);
    let toFe = 0;
    let toBe = 0;
    for (const m of REAL_GPU.messages) {
      const raw = Buffer.from(m.hex, 'hex');
      if (raw.readUInt32LE(8) !== raw.length - 12) continue; // recorded without its pixels
      if (m.dir === 'B>F') {
        r.beSub().send(raw);
        await until(() => r.feChan.length === toFe + 1, 2000, m.name);
        expect(r.feChan[toFe++].msg.equals(raw)).toBe(true);
      } else {
        r.feSub.send(raw);
        await until(() => r.beChan.length === toBe + 1, 2000, m.name);
        expect(r.beChan[toBe++].msg.equals(raw)).toBe(true);
      }
    }
    const gpu = r.events.filter((e): e is MessageEvent => e.type === 'message' && e.channel === 'gpu');
    expect(gpu.map((m) => `${m.dir} ${m.decoded.name}${m.decoded.reply ? ' reply' : ''}`)).toEqual([
      'B>F GPU_GET_PROTOCOL_FEATURES',
      'F>B GPU_GET_PROTOCOL_FEATURES reply',
      'B>F GPU_SET_PROTOCOL_FEATURES',
      'B>F GPU_GET_EDID',
      'F>B GPU_GET_EDID reply',
      'B>F GPU_GET_DISPLAY_INFO',
      'F>B GPU_GET_DISPLAY_INFO reply',
      'B>F GPU_SCANOUT',
      'B>F GPU_UPDATE',
    ]);
    expect(formatPayload(gpu[1].decoded)).toBe('0x3 (EDID|DMABUF2)');
    expect(formatPayload(gpu[4].decoded)).toBe('edid 1024 bytes vendor=RHT');
    expect(formatPayload(gpu[6].decoded)).toBe('scanout0=1280x800+0+0');
    expect(formatPayload(gpu[7].decoded)).toBe('scanout=0 1280x800');
    // all but the last are clean; vhost-user-gpu sent that GPU_UPDATE with uninitialised flags (0x5)
    expect(gpu.slice(0, -1).flatMap((m) => m.findings)).toEqual([]);
    expect(gpu.at(-1)!.decoded.flags).toBe(5);
    expect(gpu.at(-1)!.findings.map((f) => f.rule)).toEqual(['request-flags']);
    expect(r.events.some((e) => e.type === 'session-end')).toBe(false);
    r.done();
  });

  it("hands the backend its end in the frontend's blocking mode, and relays a full-screen GPU_UPDATE whole", async () => {
    const r = await setup(Request.GPU_SET_SOCKET, true);
    // vhost-user-gpu writes a whole update with one sendmsg and takes a short write as an error
    expect(r.beSubNonblocking()).toBe(false);
    const nb = await setup(Request.GPU_SET_SOCKET, false);
    expect(nb.beSubNonblocking()).toBe(true);
    nb.done();
    const update = Buffer.alloc(20 + 1280 * 800 * 4);
    update.writeUInt32LE(1280, 12);
    update.writeUInt32LE(800, 16);
    for (let i = 20; i < update.length; i += 4) update.writeUInt32LE(0x00ff8000 ^ i, i);
    const raw = encodeMessage(8, 0, update);
    r.beSub().send(raw);
    await until(() => r.feChan.length === 1, 10_000, 'the update');
    expect(r.feChan[0].msg.equals(raw)).toBe(true);
    const m = r.events.find((e): e is MessageEvent => e.type === 'message' && e.channel === 'gpu')!;
    expect(m.findings).toEqual([]);
    expect(formatPayload(m.decoded)).toBe('scanout=0 rect=1280x800+0+0 pixels=4096000 bytes first=#00ff8014');
    expect(JSON.stringify(toJsonSafe(m.decoded)).length).toBeLessThan(300);
    r.done();
  });

  it('closes the session cleanly on a GPU header announcing more than any update carries', async () => {
    const before = openFds();
    const r = await setup(Request.GPU_SET_SOCKET);
    const h = Buffer.alloc(12);
    h.writeUInt32LE(8, 0);
    h.writeUInt32LE(GPU_MAX_PAYLOAD + 1, 8);
    r.beSub().send(h);
    await until(() => r.events.some((e) => e.type === 'session-end'));
    const end = r.events.find((e): e is SessionEndEvent => e.type === 'session-end')!;
    expect(end.reason).toBe(
      `bad input from the backend (gpu channel): header announces a payload larger than ${GPU_MAX_PAYLOAD} bytes; header 080000000000000015000010`,
    );
    r.done();
    expect(openFds()).toBe(before);
  });
});
