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
import { blockWriteReadLoop, buildInitramfs, qemuArgs, qemuCommand } from '../../lab/guest';
import { cleanUp, tmpDir } from '../helpers';
import { checkRecording, ProxyProcess, sessionEnd } from './harness/proxy';
import { infoText } from '../../src/views/recording';

const SAMPLE = '/usr/share/dpdk/examples/vhost_blk';

/** The sample built in `work` (a few seconds). */
function buildVhostBlk(work: string): string {
  if (!fs.existsSync(SAMPLE)) throw new Error(`${SAMPLE} is missing: install dpdk-doc (scripts/install-deps.sh)`);
  const src = path.join(work, 'vhost_blk');
  fs.cpSync(SAMPLE, src, { recursive: true });
  execFileSync('make', ['shared'], { cwd: src, stdio: 'pipe', timeout: 300_000 });
  return path.join(src, 'build', 'vhost-blk-shared');
}

/** The sample, run from `work` (it listens on ./vhost.socket, removing a stale one), without hugepages. */
const vhostBlk = (bin: string, work: string, name: string): Peer =>
  new Peer(bin, ['--no-huge', '-m', '512', '--no-pci', '--file-prefix', `${name}${process.pid}`], { name, logFile: path.join(work, `${name}.log`), cwd: work });

describe("QEMU vhost-user-blk <-> DPDK's vhost_blk sample through the proxy", () => {
  it('the guest writes a block and reads it back; the inflight region is set up through the proxy', async () => {
    const work = tmpDir('vhost-blk');
    const bin = buildVhostBlk(work);
    const token = `tok${Date.now()}`;
    // the sample listens on ./vhost.socket
    const be = path.join(work, 'vhost.socket');
    const fe = path.join(work, 'fe.sock');
    const backend = vhostBlk(bin, work, 'vhost-blk');
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

  it.each([
    ['QEMU 7.2', 'debian12'],
    ['QEMU 10', 'debian13'],
  ] as const)(
    'killed mid-I/O and restarted under %s: QEMU hands the new back-end the inflight region the old one left, read through the proxy',
    async (_name, release) => {
      const work = tmpDir('vhost-blk-restart');
      const bin = buildVhostBlk(work);
      const token = `tok${Date.now()}`;
      const be = path.join(work, 'vhost.socket');
      const fe = path.join(work, 'fe.sock');
      const N = 40;
      // write block n and read it back, every 0.1 s: I/O in flight whenever the back-end dies
      const initrd = buildInitramfs(work, blockWriteReadLoop(N, 16, 0.1), ['virtio_pci', 'virtio_blk']);
      const first = vhostBlk(bin, work, 'vblk1');
      let second: Peer | undefined;
      const proxy = new ProxyProcess(work, ['--device', 'blk', '--rings=headers', '--check']);
      let q: Peer | undefined;
      try {
        await waitForSocket(be, 30_000, first);
        await proxy.starter(fe, be);
        const run = qemuCommand(release, [work], initrd, `lab.token=${token}`, [
          '-chardev',
          `socket,id=c0,path=${fe},reconnect=1`,
          '-device',
          'vhost-user-blk-pci,chardev=c0,num-queues=1',
        ]);
        q = new Peer(run.cmd, run.args, { name: 'qemu', logFile: path.join(work, 'qemu.log'), env: run.env, timeoutMs: 240_000 });
        await q.waitForLog(/GUEST-IO 8:/, 150_000);
        first.kill('SIGKILL'); // a crash: nothing flushed, nothing said
        await first.waitExit(10_000);
        second = vhostBlk(bin, work, 'vblk2');
        await waitForSocket(be, 30_000, second);
        expect(await q.waitExit(200_000)).toBe(0);
      } finally {
        await cleanUp(
          () => q?.stop(),
          () => first.stop(),
          () => second?.stop(),
          () => proxy.stop(),
        );
      }
      const log = q!.log();
      expect(log).toContain('GUEST-RESULT: DONE');
      // no I/O error reached the guest across the crash
      expect(log).not.toMatch(/write failed/);
      const io = [...log.matchAll(/GUEST-IO (\d+): (.*)/g)].map((m) => [Number(m[1]), m[2]!.trim()] as const);
      expect(io.map(([n]) => n)).toEqual(Array.from({ length: N }, (_, i) => i));
      // the sample keeps its disk in memory: a block written by the dead back-end and read from the new
      // one comes back empty, so at most the one block the crash fell between; every other reads back
      const wrong = io.filter(([n, got]) => got !== `block ${n} ${token}`);
      expect(wrong.length, JSON.stringify(wrong)).toBeLessThanOrEqual(1);

      type Reading = { session: number; when: string; queues: { version: number; descNum: number; inflight: number[]; usedIdx: number }[] };
      const inflight = proxy.records().filter((r) => r.event === 'inflight') as unknown as Reading[];
      const left = inflight.find((r) => r.session === 1 && r.when === 'session end');
      const handed = inflight.find((r) => r.session > 1 && r.when === 'SET_INFLIGHT_FD');
      // the first back-end set the region up (version 1, 128 descriptors: the sample's queue size) and died with it
      expect(left?.queues.map((x) => [x.version, x.descNum])).toEqual([[1, 128]]);
      // QEMU kept it and handed the very same region to the second: as the first left it
      expect(handed?.queues).toEqual(left?.queues);
      expect(proxy.records().find((r) => r.event === 'session-end' && r.session === 1)).toMatchObject({ reason: 'the backend closed the connection' });
      // info tells it per session: the region set up by the first back-end, handed to the second
      const info = infoText(proxy.recordFile).filter((l) => l.startsWith('  inflight region at'));
      expect(info).toContainEqual(expect.stringMatching(/^ {2}inflight region at session end: vring 0: version 1, desc_num 128, \d+ in flight/));
      expect(info.filter((l) => l.startsWith('  inflight region at SET_INFLIGHT_FD: vring 0: version 1, desc_num 128'))).toHaveLength(1);
      // no check fired on the regions (VU045), live or in the recording
      expect(proxy.records().filter((r) => r.event === 'finding' && r.id === 'VU045')).toEqual([]);
      fs.writeFileSync(
        path.join(work, 'result.txt'),
        `guest I/O ${io.length}/${N}, ${wrong.length} block(s) lost with the in-memory disk; the region handed over: ${JSON.stringify(handed?.queues)}\n`,
      );
    },
    300_000,
  );
});
