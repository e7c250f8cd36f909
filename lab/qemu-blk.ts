/**
 * QEMU (TCG) vhost-user-blk <-> qemu-storage-daemon: the guest does synchronous 4 KiB direct
 * reads and writes (queue depth 1, one request each, like `fio --rw=read --bs=4k --iodepth=1
 * --direct=1`) and reports what its own block layer measured. Used by bench/rings.js to compare
 * the I/O latency a guest sees direct, through the proxy, and through the proxy with --rings.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildInitramfs, qemuArgs } from './guest';
import { startProxy } from './proxy-process';
import { Peer, waitForSocket } from '../src/demo/process';
import { storageDaemon } from './storage-daemon';

export interface QemuBlkLatencyOptions {
  workDir: string;
  /** 4 KiB requests per pass and direction */
  ios: number;
  passes: number;
  /** `vhostscope proxy` arguments beyond --listen/--connect; undefined = direct connection */
  proxyArgs?: string[];
}

/** Mean latency of one pass's requests in µs, as the guest kernel accounted it. */
export interface BlkPass {
  readUs: number;
  writeUs: number;
  /** requests the pass completed (reads, writes): checks that each dd block was one request */
  reads: number;
  writes: number;
}

/**
 * /sys/block/vda/stat before and after each dd: fields 1 and 4 are reads completed and the
 * milliseconds they took in total (summed per request by the block layer, so fine-grained over
 * hundreds of requests), 5 and 8 the same for writes. busybox has no sub-second clock, the
 * block layer's own accounting is what iostat and fio's clat agree with.
 */
const GUEST = (ios: number, passes: number): string => `
i=0; until [ -b /dev/vda ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] || { echo "GUEST-RESULT: FAIL no /dev/vda"; exit 0; }
dd if=/dev/vda of=/dev/null bs=4096 count=64 iflag=direct 2>/dev/null
p=0; while [ $p -lt ${passes} ]; do
  a=$(cat /sys/block/vda/stat)
  dd if=/dev/vda of=/dev/null bs=4096 count=${ios} skip=1024 iflag=direct 2>/dev/null || echo "GUEST-RESULT: FAIL read"
  b=$(cat /sys/block/vda/stat)
  dd if=/dev/zero of=/dev/vda bs=4096 count=${ios} seek=8192 oflag=direct 2>/dev/null || echo "GUEST-RESULT: FAIL write"
  c=$(cat /sys/block/vda/stat)
  echo "GUEST-BLK: $a | $b | $c"
  p=$((p+1))
done
echo "GUEST-RESULT: done"
`;

export async function runQemuBlkLatency(o: QemuBlkLatencyOptions): Promise<BlkPass[]> {
  fs.mkdirSync(o.workDir, { recursive: true });
  const initrd = buildInitramfs(o.workDir, GUEST(o.ios, o.passes), ['virtio_pci', 'virtio_blk']);
  const img = path.join(o.workDir, 'disk.raw');
  fs.writeFileSync(img, Buffer.alloc(0));
  fs.truncateSync(img, 64 << 20);
  const direct = o.proxyArgs === undefined;
  const beSock = path.join(o.workDir, direct ? 'vhu.sock' : 'be.sock');
  const feSock = path.join(o.workDir, direct ? 'vhu.sock' : 'fe.sock');
  const qsd = storageDaemon(o.workDir, img, beSock);
  let proxy: Peer | undefined;
  let q: Peer | undefined;
  try {
    await waitForSocket(beSock, 20_000, qsd);
    if (!direct) proxy = await startProxy({ listen: feSock, connect: beSock, args: o.proxyArgs ?? [], logFile: path.join(o.workDir, 'proxy.log') });
    q = new Peer('taskset', qemuArgs(initrd, '', ['-chardev', `socket,id=c0,path=${feSock}`, '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1']), {
      name: 'qemu',
      logFile: path.join(o.workDir, 'qemu.log'),
      timeoutMs: 400_000,
    });
    const rc = await q.waitExit(380_000);
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}`);
    const log = q.log();
    if (/GUEST-RESULT: FAIL/.test(log)) throw new Error(`the guest failed: ${log.match(/GUEST-RESULT: FAIL.*/)?.[0]}`);
    return parseBlkPasses(log);
  } finally {
    await q?.stop();
    await proxy?.stop();
    await qsd.stop();
  }
}

/** The passes from the guest's GUEST-BLK lines (three /sys/block/vda/stat snapshots each). */
export function parseBlkPasses(log: string): BlkPass[] {
  return [...log.matchAll(/GUEST-BLK: ([\d ]+)\|([\d ]+)\|([\d ]+)/g)].map((m) => {
    const [a, b, c] = [m[1], m[2], m[3]].map((s) => s.trim().split(/\s+/).map(Number));
    const reads = b[0] - a[0];
    const writes = c[4] - b[4];
    return { reads, writes, readUs: ((b[3] - a[3]) * 1000) / reads, writeUs: ((c[7] - b[7]) * 1000) / writes };
  });
}
