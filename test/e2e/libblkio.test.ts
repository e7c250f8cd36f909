/**
 * libblkio as the front-end, no VM: qemu-io from Debian 13 (QEMU 10, libblkio 1.5) and sid
 * (QEMU 11.1) through the virtio-blk-vhost-user driver (qemu-block-extra's block-blkio.so:
 * libblkio has a virtio driver of its own, so this is another front-end implementation) writes a
 * pattern through vhostscope to qemu-storage-daemon 7.2, 10 and 11.1, reads it back and has
 * qemu-io verify it; the host then reads
 * the image. The recording must hold the whole session, and check names only the quirk libblkio
 * and libvhost-user agree on.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Peer, waitForSocket } from '../../src/demo/process';
import { rootMissing, type RootRelease } from '../../src/demo/roots';
import { fromRelease, type Release } from '../../src/demo/release';
import { cleanUp, tmpDir } from '../helpers';
import { checkRecording, ProxyProcess, sessionEnd } from './harness/proxy';

/** qemu-io from `release`'s root with `commands`, against the vhost-user-blk socket `sock`; its output. */
function qemuIo(release: RootRelease, work: string, sock: string, commands: string[]): string {
  const run = fromRelease(release, [work], 'qemu-io', [
    '--image-opts',
    `driver=virtio-blk-vhost-user,path=${sock},cache.direct=on`,
    ...commands.flatMap((c) => ['-c', c]),
  ]);
  const r = spawnSync(run.cmd, run.args, { env: run.env, encoding: 'utf8', timeout: 120_000 });
  return `${r.stdout}${r.stderr}${r.status !== 0 ? `\n(exit ${r.status})` : ''}`;
}

describe('libblkio (qemu-io) <-> qemu-storage-daemon through the proxy', () => {
  it.each([
    ['debian13', 'debian12'],
    ['debian13', 'debian13'],
    ['sid', 'sid'],
    ['sid', 'debian12'],
  ] as const)(
    'qemu-io from %s, qemu-storage-daemon from %s: a pattern written, read back and verified by qemu-io, found in the image by the host',
    async (frontend: RootRelease, release: Release) => {
      for (const r of new Set<RootRelease>([frontend, ...(release === 'debian12' ? [] : [release])])) {
        const missing = rootMissing(r);
        if (missing) throw new Error(`${missing} (scripts/install-deps.sh builds every root)`);
      }
      const work = tmpDir('blkio');
      const img = path.join(work, 'disk.raw');
      fs.writeFileSync(img, Buffer.alloc(0));
      fs.truncateSync(img, 64 << 20);
      const be = path.join(work, 'qsd.sock');
      const fe = path.join(work, 'fe.sock');
      const run = fromRelease(release, [work], 'qemu-storage-daemon', [
        '--blockdev',
        `driver=file,node-name=file0,filename=${img}`,
        '--blockdev',
        'driver=raw,node-name=disk0,file=file0',
        '--export',
        `type=vhost-user-blk,id=e0,node-name=disk0,addr.type=unix,addr.path=${be},writable=on,num-queues=1`,
      ]);
      const qsd = new Peer(run.cmd, run.args, { name: 'qsd', logFile: path.join(work, 'qsd.log'), env: run.env });
      const proxy = new ProxyProcess(work, ['--device', 'blk', '--rings=headers']);
      let out = '';
      try {
        await waitForSocket(be, 20_000, qsd);
        await proxy.starter(fe, be);
        out = qemuIo(frontend, work, fe, ['write -P 0xa5 4M 1M', 'read -P 0xa5 4M 1M', 'read -P 0 0 64k']);
      } finally {
        await cleanUp(
          () => proxy.stop(),
          () => qsd.stop(),
        );
      }
      expect(out, out).toMatch(/wrote 1048576\/1048576 bytes at offset 4194304/);
      expect(out, out).toMatch(/read 1048576\/1048576 bytes at offset 4194304/);
      expect(out, out).toMatch(/read 65536\/65536 bytes at offset 0/);
      expect(out).not.toMatch(/Pattern verification failed|error|exit/i);
      // the host sees what libblkio wrote, through qemu-storage-daemon, in the image
      const fd = fs.openSync(img, 'r');
      const block = Buffer.alloc(1 << 20);
      fs.readSync(fd, block, 0, block.length, 4 << 20);
      fs.closeSync(fd);
      expect(block.every((b) => b === 0xa5)).toBe(true);

      // the whole session through the proxy: libblkio adds its memory with ADD_MEM_REG (CONFIGURE_MEM_SLOTS)
      const msgs = proxy.messages();
      expect(msgs.some((m) => m.request === 'ADD_MEM_REG' && m.dir === 'F>B')).toBe(true);
      const end = sessionEnd(proxy);
      expect(end.reason).toBe('the frontend closed the connection');
      const q = end.vrings.find((v) => v.vring === 0);
      expect(q?.kicks ?? 0).toBeGreaterThan(0);
      expect(q?.calls ?? 0).toBeGreaterThan(0);
      // libblkio sets NEED_REPLY on GET_CONFIG and libvhost-user echoes it in the reply (flags
      // 0xd): QEMU would drop that reply, libblkio takes it. The one finding, on exactly those.
      checkRecording(proxy, ['reply-flags']);
      const flagged = msgs.filter((m) => (m.findings as { rule: string }[] | undefined)?.length);
      expect(flagged.map((m) => `${m.dir} ${m.request}`)).toEqual(flagged.map(() => 'B>F GET_CONFIG'));
    },
    240_000,
  );
});
