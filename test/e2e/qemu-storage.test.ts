/**
 * End to end with a VM: QEMU (TCG) vhost-user-blk <-> proxy <-> qemu-storage-daemon, and
 * vhost-user-fs <-> proxy <-> virtiofsd. Data is checked on the host, both directions.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Peer, waitForSocket } from '../../src/demo/process';
import { cleanUp, tmpDir } from '../helpers';
import { blockWriteReadLoop, buildInitramfs, qemuArgs } from '../../lab/guest';
import { blkGuest, fsGuest, guestWritten, sha } from './harness/storage-guests';
import { expectRequestsAccountedFor, ProxyProcess, ringBases, ringHeaders, sessionEnd, vring } from './harness/proxy';
import { checkRecording } from './harness/proxy';
import { storageDaemon } from '../../lab/storage-daemon';

describe('QEMU vhost-user-blk <-> qemu-storage-daemon through the proxy', () => {
  it('the guest reads the host pattern and its write lands in the image', async () => {
    const work = tmpDir('blk');
    const { img, token, host, guestWrite, initrd } = blkGuest(work);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    // the proxy itself tells QEMU, over the interposed backend channel, that the config changed
    const proxy = new ProxyProcess(work, ['--device', 'blk', '--inject', 'backend:CONFIG_CHANGE_MSG@1000', '--rings=headers'], 'qemu-blk-qsd');
    const qsd = storageDaemon(work, img, be);
    let q: Peer | undefined;
    try {
      await waitForSocket(be, 20_000, qsd);
      await proxy.starter(fe, be);
      q = new Peer(
        'taskset',
        qemuArgs(initrd, `lab.token=${token}`, ['-chardev', `socket,id=c0,path=${fe}`, '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1']),
        { name: 'qemu', logFile: path.join(work, 'qemu.log'), timeoutMs: 240_000 },
      );
      expect(await q.waitExit(150_000)).toBe(0);
    } finally {
      await q?.stop();
      await qsd.stop(); // flushes and closes the image
      await proxy.stop();
    }
    expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
    expect(q.log()).toContain(`GUEST-READ-SHA: ${sha(host)}`);
    expect(sha(guestWritten(img))).toBe(sha(guestWrite));

    const msgs = proxy.messages();
    const add = msgs.filter((m) => m.request === 'ADD_MEM_REG' && m.dir === 'F>B');
    expect(add.length).toBeGreaterThan(0);
    expect(add[0].fdInfo).toEqual([expect.objectContaining({ kind: 'memfd', memfdName: 'memory-backend-memfd', size: 256 << 20 })]);
    expect(add[0].summary).toMatch(/^\[gpa=0x0 size=256MiB uaddr=0x[0-9a-f]+ off=0x0\]$/);
    expect(msgs.find((m) => m.request === 'GET_PROTOCOL_FEATURES' && m.dir === 'B>F')?.summary).toBe(
      '0x872b (MQ|LOG_SHMFD|REPLY_ACK|BACKEND_REQ|PAGEFAULT|CONFIG|BACKEND_SEND_FD|CONFIGURE_MEM_SLOTS)',
    );
    const cfg = msgs.find((m) => m.request === 'GET_CONFIG' && m.dir === 'B>F')!;
    expect(cfg.payload).toMatchObject({ offset: 0, size: 57 });
    // capacity in 512-byte sectors is the first u64 of virtio-blk config: 64 MiB = 0x20000
    expect(String(cfg.payload?.data).slice(0, 16)).toBe('0000020000000000');
    expect(msgs.find((m) => m.request === 'GET_MAX_MEM_SLOTS' && m.dir === 'B>F')?.summary).toBe('value=32');
    expect(msgs.filter((m) => m.findings)).toEqual([]);
    // the injected CONFIG_CHANGE_MSG: QEMU acked it (absorbed by the proxy) and re-read the config
    // from qemu-storage-daemon on the main channel
    const inj = msgs.findIndex((m) => m.channel === 'backend' && m.injected);
    expect(inj).toBeGreaterThan(0);
    expect(msgs[inj]).toMatchObject({ request: 'CONFIG_CHANGE_MSG', dir: 'B>F', flags: 'v1|NEED_REPLY' });
    expect(msgs.find((m, i) => i > inj && m.channel === 'backend' && m.absorbed)).toMatchObject({ request: 'CONFIG_CHANGE_MSG', dir: 'F>B', summary: 'ack=0' });
    const after = msgs.slice(inj + 1);
    expect(after.find((m) => m.request === 'GET_CONFIG' && m.dir === 'F>B')).toBeDefined();
    expect(after.find((m) => m.request === 'GET_CONFIG' && m.dir === 'B>F')?.payload).toMatchObject({ size: 57 });
    expect(msgs.find((m) => m.request === 'SET_BACKEND_REQ_FD')?.interposed).toBe(true);
    // block I/O: the guest kicks the request queue, qemu-storage-daemon calls back; latency measured
    const q0 = vring(proxy, 0);
    expect(q0.kicks).toBeGreaterThan(0);
    expect(q0.calls).toBeGreaterThan(0);
    expect(q0.latencyUs?.count).toBeGreaterThan(0);
    for (const p of sessionEnd(proxy).relayPairs) expect(p.written, `${p.kind} ${p.vring}`).toBe(p.read);
    expect(checkRecording(proxy).messages).toBeGreaterThan(20);
    // --rings=headers: the requests on the ring are the guest's reads of the host pattern
    // (sectors 0..2047) and its 1 MiB write at 2 MiB (sectors 4096..6143), completed OK
    const blk = ringHeaders(proxy, 'blk').map((h) => ({ kind: h.kind, ...h.header.blk! }));
    const reads = blk.filter((b) => b.kind === 'kick' && b.type === 'IN (read)');
    const writes = blk.filter((b) => b.kind === 'kick' && b.type === 'OUT (write)');
    expect(reads.some((r) => r.sector === 0n)).toBe(true);
    const ours = writes.filter((w) => w.sector >= 4096n && w.sector < 6144n);
    expect(ours.length).toBeGreaterThan(0);
    for (const w of ours) expect(w.sector + BigInt(w.dataLen / 512)).toBeLessThanOrEqual(6144n);
    expect(ours.reduce((n, w) => n + w.dataLen, 0)).toBeGreaterThanOrEqual(64 << 10);
    const done = blk.filter((b) => b.kind === 'call' && b.type === 'OUT (write)' && b.sector >= 4096n && b.sector < 6144n);
    expect(done.length).toBeGreaterThan(0);
    expect(done.every((d) => d.status === 'OK')).toBe(true);
    expect(ringBases(proxy).every((b) => !b.error && b.base === b.usedIdx)).toBe(true);
    // per-request latency (stats --json): every read and write the guest submitted, completed
    expectRequestsAccountedFor(proxy, 'blk', 0, { read: (h) => h.blk?.type === 'IN (read)', write: (h) => h.blk?.type === 'OUT (write)' });
  }, 200_000);
});

describe('QEMU vhost-user-blk: qemu-storage-daemon killed mid-I/O and restarted, through the proxy', () => {
  // #20 item 5 without its inflight half: no vhost-user-blk back-end Debian ships offers
  // INFLIGHT_SHMFD (qsd 7.2 and 10 answer 0x872b), so QEMU never asks GET_INFLIGHT_FD; it resumes
  // the ring from the used index it saw (virtio_queue_restore_last_avail_idx), and the new
  // back-end redoes whatever the dead one had taken but not completed.
  it('QEMU reconnects through the proxy, the new back-end takes over the ring, and every write the guest made reads back', async () => {
    const work = tmpDir('blk-restart');
    const token = `tok${Date.now()}`;
    const img = path.join(work, 'disk.raw');
    fs.writeFileSync(img, Buffer.alloc(0));
    fs.truncateSync(img, 64 << 20);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const N = 60;
    // the guest writes block n, reads it back with O_DIRECT, every 0.2 s: I/O in flight whenever the back-end dies
    const initrd = buildInitramfs(work, blockWriteReadLoop(N, 200, 0.2), ['virtio_pci', 'virtio_blk']);
    const qsd = (name: string): Peer =>
      new Peer(
        'qemu-storage-daemon',
        [
          '--blockdev',
          `driver=file,node-name=file0,filename=${img}`,
          '--blockdev',
          'driver=raw,node-name=disk0,file=file0',
          '--export',
          `type=vhost-user-blk,id=e0,node-name=disk0,addr.type=unix,addr.path=${be},writable=on,num-queues=1`,
        ],
        { name, logFile: path.join(work, `${name}.log`) },
      );
    const proxy = new ProxyProcess(work, ['--device', 'blk', '--check']);
    const q1 = qsd('qsd1');
    let q2: Peer | undefined;
    let q: Peer | undefined;
    try {
      await waitForSocket(be, 20_000, q1);
      await proxy.starter(fe, be);
      q = new Peer(
        'taskset',
        qemuArgs(initrd, `lab.token=${token}`, ['-chardev', `socket,id=c0,path=${fe},reconnect=1`, '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1']),
        { name: 'qemu', logFile: path.join(work, 'qemu.log'), timeoutMs: 240_000 },
      );
      await q.waitForLog(/GUEST-IO 10:/, 120_000);
      q1.kill('SIGKILL'); // as a crash: nothing flushed, nothing said
      await q1.waitExit(10_000);
      q2 = qsd('qsd2');
      await waitForSocket(be, 20_000, q2);
      expect(await q.waitExit(200_000)).toBe(0);
    } finally {
      await cleanUp(
        () => q?.stop(),
        () => q1.stop(),
        () => q2?.stop(),
        () => proxy.stop(),
      );
    }
    const log = q!.log();
    expect(log).toContain('GUEST-RESULT: DONE');
    expect(log).not.toMatch(/write failed/);
    const io = [...log.matchAll(/GUEST-IO (\d+): (.*)/g)].map((m) => [Number(m[1]), m[2].trim()] as const);
    expect(io.map(([n]) => n)).toEqual(Array.from({ length: N }, (_, i) => i));
    for (const [n, got] of io) expect(got, `block ${n}`).toBe(`block ${n} ${token}`);

    const recs = proxy.records();
    const ends = recs.filter((r) => r.event === 'session-end');
    expect(ends[0]).toMatchObject({ session: 1, reason: 'the backend closed the connection' });
    const msgs = proxy.messages();
    const s2 = msgs.filter((m) => m.session === 2);
    // the second back-end got the ring from where QEMU saw the first one's completions, and served I/O
    expect(s2.filter((m) => m.request === 'SET_VRING_BASE' && m.dir === 'F>B').some((m) => Number(m.payload?.num) > 0)).toBe(true);
    expect(sessionEnd(proxy, 2).vrings.find((v) => v.vring === 0)?.kicks ?? 0).toBeGreaterThan(0);
    // no inflight region: qsd does not offer INFLIGHT_SHMFD, so QEMU never asks for one
    expect(s2.find((m) => m.request === 'GET_PROTOCOL_FEATURES' && m.dir === 'B>F')?.payload?.names).not.toContain('INFLIGHT_SHMFD');
    expect(msgs.some((m) => m.request === 'GET_INFLIGHT_FD')).toBe(false);
    fs.writeFileSync(
      path.join(work, 'result.txt'),
      `guest I/O ${io.length}/${N} read back; session 2 resumed vring 0 from ${s2.find((m) => m.request === 'SET_VRING_BASE' && m.dir === 'F>B')?.payload?.num}\n`,
    );
  }, 300_000);
});

describe('QEMU vhost-user-fs <-> virtiofsd through the proxy', () => {
  it('the guest reads a host file and writes one the host sees', async () => {
    const work = tmpDir('fs');
    const { share, token, hello, initrd } = fsGuest(work);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const proxy = new ProxyProcess(work, ['--device', 'fs', '--rings=headers'], 'qemu-fs-virtiofsd');
    const vfs = new Peer('/usr/lib/qemu/virtiofsd', ['-f', `--socket-path=${be}`, '-o', `source=${share}`, '-o', 'cache=none', '-o', 'sandbox=namespace'], {
      name: 'virtiofsd',
      logFile: path.join(work, 'virtiofsd.log'),
    });
    let q: Peer | undefined;
    try {
      await waitForSocket(be, 20_000, vfs);
      await proxy.starter(fe, be);
      q = new Peer(
        'taskset',
        qemuArgs(initrd, `lab.token=${token}`, ['-chardev', `socket,id=c0,path=${fe}`, '-device', 'vhost-user-fs-pci,chardev=c0,tag=t0,queue-size=1024']),
        { name: 'qemu', logFile: path.join(work, 'qemu.log'), timeoutMs: 240_000 },
      );
      expect(await q.waitExit(150_000)).toBe(0);
      // virtiofsd exits by itself when its frontend (here: the proxy) disconnects
      await vfs.waitExit(10_000);
    } finally {
      await q?.stop();
      await vfs.stop();
      await proxy.stop();
    }
    expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
    expect(q.log()).toContain(`GUEST-READ-SHA: ${sha(hello)}`);
    expect(q.log()).toContain(`GUEST-TOKEN: ${token}`);
    expect(fs.readFileSync(path.join(share, 'from-guest.txt'), 'utf8')).toBe(`guest wrote this ${token}\n`);

    const msgs = proxy.messages();
    expect(msgs.filter((m) => m.request === 'SET_VRING_NUM').map((m) => m.summary)).toContain('vring=1 num=1024');
    expect(msgs.some((m) => m.request === 'ADD_MEM_REG' && m.fdInfo?.[0]?.kind === 'memfd')).toBe(true);
    expect(msgs.find((m) => m.request === 'SET_BACKEND_REQ_FD')?.fds).toEqual(['socket']);
    expect(msgs.filter((m) => m.findings)).toEqual([]);
    expect(proxy.records().find((r) => r.event === 'session-end')?.reason).toBe('the frontend closed the connection');
    // FUSE requests go on the request queue (vring 1); virtiofsd answers with calls
    expect(vring(proxy, 1).kicks).toBeGreaterThan(0);
    expect(vring(proxy, 1).calls).toBeGreaterThan(0);
    for (const p of sessionEnd(proxy).relayPairs) expect(p.written, `${p.kind} ${p.vring}`).toBe(p.read);
    expect(checkRecording(proxy).messages).toBeGreaterThan(20);
    // --rings=headers: the FUSE requests the guest's mount, cat and echo made, and their answers
    const fuse = ringHeaders(proxy, 'fs').filter((h) => h.vring === 1);
    const sent = new Set(fuse.filter((h) => h.kind === 'kick').map((h) => h.header.fuse!.opcode));
    for (const op of ['INIT', 'LOOKUP', 'OPEN', 'READ', 'WRITE', 'CREATE']) expect([...sent], op).toContain(op);
    const answered = fuse.filter((h) => h.kind === 'call' && h.header.fuse!.opcode === 'READ');
    expect(answered.length).toBeGreaterThan(0);
    expect(answered.some((a) => a.header.fuse!.error === 0)).toBe(true);
    // per-request latency (stats --json): each FUSE READ and LOOKUP the guest sent, answered
    expectRequestsAccountedFor(proxy, 'fs', 1, { 'FUSE READ': (h) => h.fuse?.opcode === 'READ', 'FUSE LOOKUP': (h) => h.fuse?.opcode === 'LOOKUP' });
  }, 200_000);
});
