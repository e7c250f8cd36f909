/**
 * A back-end that stops serving while the guest waits on it, caught live: QEMU (TCG)
 * vhost-user-blk reads through the proxy (--check --rings) from qemu-storage-daemon, which is
 * stopped (SIGSTOP) for a while in the middle. The guest's kicks find no progress on the ring,
 * and the running proxy names it (VU041) before the back-end is let go; the guest then finishes.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Peer, waitForSocket } from '../../src/demo/process';
import { tmpDir } from '../helpers';
import { buildInitramfs, qemuArgs } from '../../lab/guest';
import { CLI, ProxyProcess } from './harness/proxy';
import { storageDaemon } from '../../lab/storage-daemon';

/** How long the back-end is stopped: past the check's 5 s, well within the guest's 30 s block-layer timeout. */
const STOPPED_MS = 9000;

/** A guest that reads a different 256 KiB of the disk every 0.2 s (the page cache never has it) for about 25 s. */
function readingGuest(work: string): string {
  return buildInitramfs(
    work,
    `
i=0; until [ -b /dev/vda ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] || { echo "GUEST-RESULT: FAIL no /dev/vda"; exit 0; }
echo "GUEST-IO-START"
n=0; end=$(( $(cut -d. -f1 /proc/uptime) + 25 ))
while [ $(cut -d. -f1 /proc/uptime) -lt $end ]; do
  dd if=/dev/vda of=/dev/null bs=65536 count=4 skip=$(( (n % 256) * 4 )) 2>/dev/null || { echo "GUEST-RESULT: FAIL read"; exit 0; }
  n=$((n+1)); sleep 0.2
done
echo "GUEST-READS: $n"
echo "GUEST-RESULT: PASS"
`,
    ['virtio_pci', 'virtio_blk'],
  );
}

describe('a back-end that stops serving', () => {
  it('qemu-storage-daemon stopped under a reading guest: proxy --check names the kick it never serves while it is stopped (VU041)', async () => {
    const work = tmpDir('stalled');
    const img = path.join(work, 'disk.raw');
    fs.writeFileSync(img, Buffer.alloc(0));
    fs.truncateSync(img, 64 << 20);
    const initrd = readingGuest(work);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const proxy = new ProxyProcess(work, ['--device', 'blk', '--rings', '--check', '--stats-interval', '0']);
    const qsd = storageDaemon(work, img, be);
    let q: Peer | undefined;
    /** what the running proxy had said of VU041 just before the back-end was let go */
    let whileStopped: string[] = [];
    try {
      await waitForSocket(be, 20_000, qsd);
      await proxy.starter(fe, be);
      q = new Peer('taskset', qemuArgs(initrd, '', ['-chardev', `socket,id=c0,path=${fe}`, '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1']), {
        name: 'qemu',
        logFile: path.join(work, 'qemu.log'),
        timeoutMs: 240_000,
      });
      await q.waitForLog(/GUEST-IO-START/, 150_000);
      await new Promise((r) => setTimeout(r, 2000));
      // QEMU 7.2's guest can wait on its first request at boot too (a stall of its own, told as such): only what comes now counts
      const stalls = () =>
        proxy
          .records()
          .filter((r) => r.event === 'finding' && r.id === 'VU041')
          .map((r) => String(r.detail));
      const before = stalls().length;
      qsd.kill('SIGSTOP');
      await new Promise((r) => setTimeout(r, STOPPED_MS));
      whileStopped = stalls().slice(before);
      qsd.kill('SIGCONT');
      expect(await q.waitExit(150_000)).toBe(0);
    } finally {
      qsd.kill('SIGCONT');
      await q?.stop();
      await qsd.stop();
      expect(await proxy.stop()).toBe(0);
    }
    expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
    // named while the back-end was still stopped: live, not at the end; once for the stall
    expect(whileStopped).toEqual([
      expect.stringMatching(
        /^vring 0: a kick made requests available \(avail idx \d+, used idx \d+\) and the proxy saw no progress on the ring \(no call, no used-index change\) for \d+\.\d s$/,
      ),
    ]);
    // the recording says the same, and nothing else but QEMU's kick before enable (docs/check-rules.md)
    let out = '';
    try {
      out = execFileSync(process.execPath, [CLI, 'check', proxy.recordFile], { encoding: 'utf8', timeout: 60_000 });
    } catch (err) {
      out = (err as { stdout: string }).stdout;
    }
    const ids = [...out.matchAll(/ (VU\d+) /g)].map((m) => m[1]);
    expect(
      ids.filter((id) => id !== 'VU010'),
      out,
    ).toEqual(expect.arrayContaining(['VU041']));
    expect(new Set(ids.filter((id) => id !== 'VU010')), out).toEqual(new Set(['VU041']));
  }, 300_000);
});
