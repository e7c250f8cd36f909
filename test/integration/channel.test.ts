/** The addon's framing and fd passing, on real sockets. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native, type Channel, type ChannelEnd } from '../../src/native';
import { encodeMessage } from '../../src/protocol';
import { openFds, tmpDir, until } from '../helpers';

interface Got {
  msgs: { buf: Buffer; fds: number[]; ts: bigint }[];
  end: ChannelEnd | null | undefined;
}

const open: Channel[] = [];
function pair(maxPayload = 65536): { tx: Channel; rx: Channel; got: Got } {
  const [a, b] = native.socketpair();
  const got: Got = { msgs: [], end: undefined };
  const tx = new native.Channel(
    a,
    maxPayload,
    () => {},
    () => {},
  );
  const rx = new native.Channel(
    b,
    maxPayload,
    (buf, fds, ts) => got.msgs.push({ buf, fds, ts }),
    (e) => (got.end = e),
  );
  rx.start();
  open.push(tx, rx);
  return { tx, rx, got };
}

afterEach(() => {
  for (const c of open.splice(0)) c.close();
});

describe('Channel', () => {
  it('passes eventfds that arrive as new, close-on-exec fds for the same kernel objects', async () => {
    const { tx, got } = pair();
    const e1 = native.eventfd(0);
    const e2 = native.eventfd(0);
    const keep1 = native.dup(e1);
    tx.send(encodeMessage(12, 1, Buffer.alloc(8)), [e1, e2]);
    await until(() => got.msgs.length === 1);
    const [r1, r2] = got.msgs[0].fds;
    expect(got.msgs[0].fds).toHaveLength(2);
    expect(fs.readFileSync(`/proc/self/fdinfo/${r1}`, 'utf8')).toMatch(/flags:\s+0[0-7]*2[0-7]{6}/); // O_CLOEXEC = 02000000
    native.eventfdWrite(r1, 5);
    expect(native.eventfdRead(keep1)).toBe(5n);
    expect(native.fdInfo(r1).eventfdId).toBe(native.fdInfo(keep1).eventfdId);
    expect(native.fdInfo(r2).eventfdId).not.toBe(native.fdInfo(r1).eventfdId);
    const t = native.monotonicNs();
    expect(t - got.msgs[0].ts).toBeGreaterThanOrEqual(0n);
    expect(t - got.msgs[0].ts).toBeLessThan(5_000_000_000n);
    for (const fd of [r1, r2, keep1]) native.close(fd);
  });

  it('assembles a header split 5+7 with the fds on the first piece and a payload in two pieces', async () => {
    const { tx, got } = pair();
    const msg = encodeMessage(5, 9, Buffer.alloc(40, 0xab));
    const m = native.memfdCreate('guest', 4096);
    tx.send(msg.subarray(0, 5), [m]);
    await new Promise((r) => setTimeout(r, 20));
    expect(got.msgs).toHaveLength(0);
    tx.send(msg.subarray(5, 12));
    tx.send(msg.subarray(12, 30));
    await new Promise((r) => setTimeout(r, 20));
    expect(got.msgs).toHaveLength(0);
    tx.send(msg.subarray(30));
    await until(() => got.msgs.length === 1);
    expect(got.msgs[0].buf.equals(msg)).toBe(true);
    expect(got.msgs[0].fds).toHaveLength(1);
    expect(native.fdInfo(got.msgs[0].fds[0])).toMatchObject({ kind: 'memfd', memfdName: 'guest', size: 4096 });
    native.close(got.msgs[0].fds[0]);
  });

  it('never reads into the next message: two fd-less messages in one write, then one with an fd', async () => {
    const { tx, got } = pair();
    tx.send(Buffer.concat([encodeMessage(1, 1), encodeMessage(3, 1)]));
    tx.send(encodeMessage(13, 1, Buffer.alloc(8)), [native.eventfd(0)]);
    await until(() => got.msgs.length === 3);
    expect(got.msgs.map((m) => m.fds.length)).toEqual([0, 0, 1]);
    expect(got.msgs.map((m) => m.buf.readUInt32LE(0))).toEqual([1, 3, 13]);
    native.close(got.msgs[2].fds[0]);
  });

  it('queues a 4 MiB message behind a full socket buffer and delivers it whole with its fd, sent once', async () => {
    const before = openFds();
    const { tx, got } = pair(8 << 20);
    const big = encodeMessage(8, 1, Buffer.alloc(4 << 20, 7));
    const queued = tx.send(big, [native.eventfd(0)]);
    expect(queued).toBeGreaterThan(0);
    tx.send(encodeMessage(12, 1, Buffer.alloc(8)), [native.memfdCreate('next', 8192)]);
    await until(() => got.msgs.length === 2, 10_000);
    expect(got.msgs[0].buf.length).toBe(big.length);
    expect(got.msgs[0].buf.equals(big)).toBe(true);
    // the fd goes with the first chunk only: re-attached to every later chunk of a partial write,
    // it would arrive many times over (and the sender's copies would leak)
    expect(got.msgs.map((m) => m.fds.length)).toEqual([1, 1]);
    expect(native.fdInfo(got.msgs[0].fds[0]).kind).toBe('eventfd');
    expect(native.fdInfo(got.msgs[1].fds[0])).toMatchObject({ kind: 'memfd', memfdName: 'next' });
    expect(tx.queuedBytes).toBe(0);
    for (const m of got.msgs) native.close(m.fds[0]);
    for (const c of open.splice(0)) c.close();
    expect(openFds()).toBe(before);
  });

  it('reports MSG_CTRUNC when more fds arrive than the receive buffer holds, and leaks none', async () => {
    const before = openFds();
    const { tx, got } = pair();
    const fds = Array.from({ length: 100 }, () => native.eventfd(0));
    tx.send(encodeMessage(5, 1), fds);
    await until(() => got.end !== undefined);
    expect(got.end?.code).toBe('CTRUNC');
    for (const c of open.splice(0)) c.close();
    expect(openFds()).toBe(before);
  });

  it('reports EOF in the middle of a message with the header bytes, and a clean EOF as null', async () => {
    const a = pair();
    a.tx.send(encodeMessage(5, 1, Buffer.alloc(40)).subarray(0, 20));
    a.tx.close();
    await until(() => a.got.end !== undefined);
    expect(a.got.end).toMatchObject({ code: 'EOF_MID_MESSAGE', payloadReceived: 8, payloadExpected: 40 });
    expect(a.got.end!.header.toString('hex')).toBe('050000000100000028000000');
    const b = pair();
    b.tx.send(encodeMessage(1, 1));
    b.tx.close();
    await until(() => b.got.end !== undefined);
    expect(b.got.end).toBeNull();
    expect(b.got.msgs).toHaveLength(1);
  });

  it('stops at a header that announces more than maxPayload', async () => {
    const { tx, got } = pair(1024);
    tx.send(Buffer.from('01000000010000000000ff00', 'hex'));
    await until(() => got.end !== undefined);
    expect(got.end?.code).toBe('OVERSIZE');
  });

  it('closes the fds of queued and half-received messages on close', async () => {
    const before = openFds();
    const { tx, rx } = pair();
    tx.send(encodeMessage(5, 1, Buffer.alloc(40)).subarray(0, 4), [native.memfdCreate('x', 4096)]);
    await new Promise((r) => setTimeout(r, 20));
    rx.close();
    tx.close();
    open.splice(0);
    expect(openFds()).toBe(before);
  });
});

describe('fdInfo and sockets', () => {
  it('identifies eventfd, memfd with seals, socket, file and pipe', () => {
    const dir = tmpDir('fdinfo');
    const e = native.eventfd(3);
    const m = native.memfdCreate('guest-ram', 1 << 20);
    const [s1, s2] = native.socketpair();
    const f = fs.openSync(path.join(dir, 'f'), 'w+');
    fs.writeSync(f, 'hello');
    expect(native.fdInfo(e)).toMatchObject({ kind: 'eventfd', target: 'anon_inode:[eventfd]' });
    expect(typeof native.fdInfo(e).eventfdId).toBe('number');
    expect(native.fdInfo(m)).toMatchObject({ kind: 'memfd', memfdName: 'guest-ram', size: 1 << 20, seals: 0, hugetlb: false });
    expect(native.fdInfo(s1).kind).toBe('socket');
    expect(native.fdInfo(f)).toMatchObject({ kind: 'file', size: 5 });
    expect(native.eventfdRead(e)).toBe(3n);
    expect(native.eventfdRead(e)).toBeNull();
    for (const fd of [e, m, s1, s2]) native.close(fd);
    fs.closeSync(f);
  });

  it('listens, connects, accepts, and reports connect errors as errno codes', async () => {
    const dir = tmpDir('sock');
    const p = path.join(dir, 'l.sock');
    const lfd = native.listenUnix(p, 8, 0o600);
    expect(fs.statSync(p).mode & 0o777).toBe(0o600);
    expect(native.probeUnix(p)).toBe(true);
    const accepted: number[] = [];
    const l = new native.Listener(lfd, (_err, fd) => fd !== null && accepted.push(fd));
    const c = native.connectUnix(p);
    await until(() => accepted.length === 2); // the probe's connection, then ours
    expect(native.peerCred(accepted[1]).pid).toBe(process.pid);
    expect(() => native.connectUnix(path.join(dir, 'missing.sock'))).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    l.close();
    for (const fd of [c, ...accepted]) native.close(fd);
    expect(native.probeUnix(p)).toBe(false);
  });
});
