/**
 * Replay against real peers: the recorded frontend against fresh backends (qemu-storage-daemon,
 * testpmd, and the wrong backend: virtiofsd), and the recorded backend serving a fresh QEMU.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildInitramfs, qemuArgs, vhostUserNetArgs } from '../../lab/guest';
import { Peer, waitForSocket } from '../../src/demo/process';
import { Testpmd } from '../../src/demo/testpmd';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import type { MessageEvent } from '../../src/events/events';
import { tmpDir, until } from '../helpers';
import { spawn } from 'node:child_process';
import { CLI } from './harness/proxy';

const REC = path.resolve(__dirname, '..', '..', 'recordings');

function replay(work: string, args: string[]): Peer {
  return new Peer(process.execPath, [CLI, 'replay', ...args, '--record', path.join(work, 'replay.vhsrec')], {
    name: 'replay',
    logFile: path.join(work, 'replay.log'),
    timeoutMs: 120_000,
  });
}

function qsd(work: string, sock: string): Peer {
  const img = path.join(work, 'disk.raw');
  fs.writeFileSync(img, Buffer.alloc(0));
  fs.truncateSync(img, 64 << 20); // the recorded disk's size: GET_CONFIG must match
  return new Peer(
    'qemu-storage-daemon',
    [
      '--blockdev',
      `driver=file,node-name=file0,filename=${img}`,
      '--blockdev',
      'driver=raw,node-name=disk0,file=file0',
      '--export',
      `type=vhost-user-blk,id=e0,node-name=disk0,addr.type=unix,addr.path=${sock},writable=on,num-queues=1`,
    ],
    { name: 'qsd', logFile: path.join(work, 'qsd.log') },
  );
}

describe('replay as the frontend', () => {
  it('the QEMU vhost-user-blk recording against a fresh qemu-storage-daemon: no divergence', async () => {
    const work = tmpDir('replay-blk');
    const sock = path.join(work, 'be.sock');
    const backend = qsd(work, sock);
    try {
      await waitForSocket(sock, 20_000, backend);
      const r = replay(work, [path.join(REC, 'qemu-blk-qsd.vhsrec'), '--as', 'frontend', '--connect', sock]);
      expect(await r.waitExit(60_000)).toBe(0);
      expect(r.log()).toMatch(/^0 divergence\(s\), 33 message\(s\) sent$/m);
      // the replay's own recording compares with the same tools
      const msgs = recordingEvents(readRecording(path.join(work, 'replay.vhsrec')).records).filter((e): e is MessageEvent => e.type === 'message');
      expect(msgs.filter((m) => m.dir === 'B>F').map((m) => m.decoded.name)).toContain('GET_CONFIG');
    } finally {
      await backend.stop();
    }
  }, 90_000);

  it('--step waits for Enter before each request; --pace original keeps the recorded gaps', async () => {
    const work = tmpDir('replay-step');
    const sock = path.join(work, 'be.sock');
    const backend = qsd(work, sock);
    try {
      await waitForSocket(sock, 20_000, backend);
      const child = spawn(
        process.execPath,
        [
          CLI,
          'replay',
          path.join(REC, 'qemu-blk-qsd.vhsrec'),
          '--as',
          'frontend',
          '--connect',
          sock,
          '--step',
          '--until',
          '3',
          '--record',
          path.join(work, 'r.vhsrec'),
        ],
        { stdio: ['pipe', 'pipe', 'pipe'] },
      );
      let err = '';
      let out = '';
      child.stderr.on('data', (d) => (err += d));
      child.stdout.on('data', (d) => (out += d));
      for (let i = 0; i < 3; i++) {
        await until(() => (err.match(/\[Enter\]/g) ?? []).length === i + 1, 10_000, `prompt ${i + 1}`);
        child.stdin.write('\n');
      }
      await new Promise((r) => child.on('exit', r));
      expect(err).toMatch(/#0 GET_FEATURES\? \[Enter\][\s\S]*#2 GET_PROTOCOL_FEATURES\? \[Enter\]/);
      expect(out).toMatch(/0 divergence\(s\), 3 message\(s\) sent/);
      // original pace: the replayed requests are spread like the recorded ones
      const r = replay(work, [path.join(REC, 'qemu-blk-qsd.vhsrec'), '--as', 'frontend', '--connect', sock, '--pace', 'original', '--until', '20']);
      expect(await r.waitExit(60_000)).toBe(0);
      const span = (file: string, n: number): number => {
        const reqs = recordingEvents(readRecording(file).records)
          .filter((e): e is MessageEvent => e.type === 'message' && e.dir === 'F>B' && !e.decoded.reply && !e.injected)
          .slice(0, n);
        return Number(reqs.at(-1)!.ts - reqs[0].ts) / 1e6;
      };
      const recorded = span(path.join(REC, 'qemu-blk-qsd.vhsrec'), 20);
      expect(recorded).toBeGreaterThan(20);
      expect(span(path.join(work, 'replay.vhsrec'), 20)).toBeGreaterThan(recorded * 0.9);
    } finally {
      await backend.stop();
    }
  }, 90_000);

  it('the qemu-storage-daemon recording against virtiofsd: the real differences, exit 1', async () => {
    const work = tmpDir('replay-wrong');
    const sock = path.join(work, 'be.sock');
    fs.mkdirSync(path.join(work, 'share'));
    const vfs = new Peer('/usr/lib/qemu/virtiofsd', ['-f', `--socket-path=${sock}`, '-o', `source=${path.join(work, 'share')}`, '-o', 'sandbox=namespace'], {
      name: 'virtiofsd',
      logFile: path.join(work, 'virtiofsd.log'),
    });
    try {
      await waitForSocket(sock, 20_000, vfs);
      const r = replay(work, [path.join(REC, 'qemu-blk-qsd.vhsrec'), '--as', 'frontend', '--connect', sock, '--timeout', '2000']);
      expect(await r.waitExit(60_000)).toBe(1);
      const log = r.log();
      expect(log).toMatch(/DIVERGES #0 GET_FEATURES \(reply-differs\)/);
      expect(log).toMatch(/features: -bit1 -bit2 -bit6/); // blk's SIZE_MAX|SEG_MAX|BLK_SIZE are not virtio-fs features
      expect(log).toMatch(/DIVERGES #\d+ GET_PROTOCOL_FEATURES[\s\S]*protocol features: -PAGEFAULT -CONFIG/);
      expect(log).toMatch(/DIVERGES #\d+ GET_QUEUE_NUM[\s\S]*value: 0x1 -> 0x2/);
    } finally {
      await vfs.stop();
    }
  }, 90_000);

  it("the DPDK virtio-user recording against testpmd's vhost backend: the device becomes ready", async () => {
    const work = tmpDir('replay-dpdk');
    const sock = path.join(work, 'be.sock');
    const tp = new Testpmd({ name: 'be', workDir: work, mainLcore: 0, forwardMode: 'rxonly', vdev: `net_vhost0,iface=${sock},queues=1` });
    try {
      await tp.peer.waitForLog(/binding succeeded/, 30_000);
      const r = replay(work, [path.join(REC, 'dpdk-net-txonly.vhsrec'), '--as', 'frontend', '--connect', sock, '--until', '26']);
      await tp.peer.waitForLog(/virtio is now ready for processing/, 30_000);
      expect(await r.waitExit(60_000)).toBe(0);
      expect(r.log()).toMatch(/^0 divergence\(s\), 26 message\(s\) sent$/m);
    } finally {
      await tp.peer.stop();
    }
  }, 90_000);
});

describe('replay as the backend', () => {
  it('serves a fresh QEMU virtio-net from the testpmd recording: the driver reaches DRIVER_OK', async () => {
    const work = tmpDir('replay-be');
    const sock = path.join(work, 'fe.sock');
    const initrd = buildInitramfs(
      work,
      `
ip link set eth0 up || { echo "GUEST-RESULT: FAIL no eth0"; exit 0; }
sleep 1
echo "GUEST-RESULT: PASS eth0 $(cat /sys/class/net/eth0/operstate)"
`,
      ['virtio_pci', 'virtio_net'],
    );
    const r = replay(work, [
      path.join(REC, 'qemu-net-testpmd.vhsrec'),
      '--as',
      'backend',
      '--listen',
      sock,
      '--timeout',
      '30000',
      '--idle-timeout',
      '60000',
      '--device',
      'net',
    ]);
    await waitForSocket(sock, 20_000, r);
    const q = new Peer('taskset', qemuArgs(initrd, '', vhostUserNetArgs(`socket,id=c0,path=${sock}`)), {
      name: 'qemu',
      logFile: path.join(work, 'qemu.log'),
      timeoutMs: 120_000,
    });
    try {
      expect(await q.waitExit(100_000)).toBe(0);
      expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
      const rc = await r.waitExit(30_000);
      const msgs = recordingEvents(readRecording(path.join(work, 'replay.vhsrec')).records).filter((e): e is MessageEvent => e.type === 'message');
      const status = msgs.filter((m) => m.dir === 'F>B' && m.decoded.name === 'SET_STATUS').map((m) => (m.decoded.payload as { status: number }).status);
      expect(status.some((s) => (s & 4) !== 0)).toBe(true); // DRIVER_OK
      expect(msgs.some((m) => m.decoded.name === 'SET_VRING_KICK')).toBe(true);
      expect(r.log()).toMatch(/^0 divergence\(s\)/m);
      expect(rc).toBe(0);
    } finally {
      await q.stop();
      await r.stop();
    }
  }, 150_000);
});
