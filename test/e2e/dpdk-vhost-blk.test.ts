/**
 * DPDK's vhost_blk sample as a back-end: built from Debian's dpdk-doc (`make shared` against
 * dpdk-dev), an in-memory block device on DPDK's vhost library, the one vhost-user-blk back-end
 * here that offers INFLIGHT_SHMFD. QEMU 7.2 writes a block through vhostscope and reads it back,
 * and sets up the inflight region the back-end asked for, which --rings reads: fresh when QEMU
 * hands it over, set up by the back-end (version 1, 128 descriptors) when the session ends.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Peer, waitForSocket } from '../../src/demo/process';
import { buildInitramfs, qemuArgs } from '../../lab/guest';
import { cleanUp, tmpDir } from '../helpers';
import { checkRecording, ProxyProcess, sessionEnd } from './harness/proxy';

const SAMPLE = '/usr/share/dpdk/examples/vhost_blk';

/** The sample built in `work` (a few seconds). */
function buildVhostBlk(work: string): string {
  if (!fs.existsSync(SAMPLE)) throw new Error(`${SAMPLE} is missing: install dpdk-doc (scripts/install-deps.sh)`);
  const src = path.join(work, 'vhost_blk');
  fs.cpSync(SAMPLE, src, { recursive: true });
  execFileSync('make', ['shared'], { cwd: src, stdio: 'pipe', timeout: 300_000 });
  return path.join(src, 'build', 'vhost-blk-shared');
}

describe("QEMU vhost-user-blk <-> DPDK's vhost_blk sample through the proxy", () => {
  it('the guest writes a block and reads it back; the inflight region is set up through the proxy', async () => {
    const work = tmpDir('vhost-blk');
    const bin = buildVhostBlk(work);
    const token = `tok${Date.now()}`;
    // the sample listens on ./vhost.socket
    const be = path.join(work, 'vhost.socket');
    const fe = path.join(work, 'fe.sock');
    const backend = new Peer(bin, ['--no-huge', '-m', '512', '--no-pci', '--file-prefix', `vblk${process.pid}`], {
      name: 'vhost-blk',
      logFile: path.join(work, 'vhost-blk.log'),
      cwd: work,
    });
    const proxy = new ProxyProcess(work, ['--device', 'blk', '--rings=headers']);
    const initrd = buildInitramfs(
      work,
      `
tok=$(sed -n 's/.*lab.token=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
i=0; until [ -b /dev/vda ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] || { echo "GUEST-RESULT: FAIL no /dev/vda"; exit 0; }
echo "written $tok" > /tmp/w
dd if=/tmp/w of=/dev/vda bs=4096 seek=8 conv=sync,fsync 2>/dev/null || echo "GUEST-RESULT: FAIL write"
echo "GUEST-READBACK: $(dd if=/dev/vda bs=4096 skip=8 count=1 iflag=direct 2>/dev/null | head -c 64 | tr -d '\\000')"
`,
      ['virtio_pci', 'virtio_blk'],
    );
    let q: Peer | undefined;
    try {
      await waitForSocket(be, 30_000, backend);
      await proxy.starter(fe, be);
      q = new Peer(
        'taskset',
        qemuArgs(initrd, `lab.token=${token}`, ['-chardev', `socket,id=c0,path=${fe}`, '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1']),
        { name: 'qemu', logFile: path.join(work, 'qemu.log'), timeoutMs: 240_000 },
      );
      expect(await q.waitExit(150_000)).toBe(0);
    } finally {
      await cleanUp(
        () => q?.stop(),
        () => proxy.stop(),
        () => backend.stop(),
      );
    }
    const log = q!.log();
    expect(log).not.toMatch(/GUEST-RESULT: FAIL/);
    expect(log).toContain(`GUEST-READBACK: written ${token}`);

    const msgs = proxy.messages();
    // the back-end offers INFLIGHT_SHMFD, and QEMU sets the region up: GET_INFLIGHT_FD answered
    // with a memfd, SET_INFLIGHT_FD handing it back
    expect(msgs.find((m) => m.request === 'GET_PROTOCOL_FEATURES' && m.dir === 'B>F')?.summary).toMatch(/INFLIGHT_SHMFD/);
    const got = msgs.find((m) => m.request === 'GET_INFLIGHT_FD' && m.dir === 'B>F');
    expect(got?.fdInfo?.[0]?.kind).toBe('memfd');
    expect(msgs.some((m) => m.request === 'SET_INFLIGHT_FD' && m.dir === 'F>B' && m.fdInfo?.[0]?.kind === 'memfd')).toBe(true);
    // --rings read the region: fresh as handed over, set up by the back-end as the session ended
    type Reading = {
      when: string;
      numQueues: number;
      queueSize: number;
      queues: { version: number; descNum: number; inflightCount: number; usedIdx: number }[];
    };
    const inflight = proxy.records().filter((r) => r.event === 'inflight') as unknown as Reading[];
    const handed = inflight.filter((r) => r.when === 'SET_INFLIGHT_FD');
    expect(handed.length).toBeGreaterThan(0);
    for (const r of handed) expect([r.numQueues, r.queueSize, r.queues.map((q) => [q.version, q.descNum, q.inflightCount])]).toEqual([1, 128, [[0, 0, 0]]]);
    const last = inflight.at(-1)!;
    expect([last.when, last.queues.map((q) => [q.version, q.descNum, q.inflightCount])]).toEqual(['session end', [[1, 128, 0]]]);
    expect(last.queues[0]!.usedIdx).toBeGreaterThan(0); // the back-end kept its used index there as it completed requests
    const q0 = sessionEnd(proxy).vrings.find((v) => v.vring === 0);
    expect(q0?.kicks ?? 0).toBeGreaterThan(0);
    // the recording matches the log, and no message broke a rule of its own
    checkRecording(proxy);
    expect(msgs.filter((m) => m.findings)).toEqual([]);
  }, 240_000);
});
