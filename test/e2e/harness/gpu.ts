/**
 * vhost-user-gpu under TCG: Debian 13's /usr/lib/qemu/vhost-user-gpu driven by QEMU 10 (or
 * sid's 11.1) vhost-user-gpu-pci, either directly or through the proxy. The guest (Debian 12's
 * kernel, virtio_gpu with DRM fbdev emulation) fills /dev/fb0 with one colour; a QMP
 * screendump then shows what reached QEMU's display over the GPU socket.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inRoot, type RootRelease } from '../../../src/demo/roots';
import { buildInitramfs, qemuArgs } from '../../../lab/guest';
import { Peer, sleep, waitForSocket } from '../../../src/demo/process';
import { countColour, qmpCommand, readPpm } from '../../../lab/qmp';
import type { ProxyProcess } from './proxy';

/** The guest's colour, as the screendump shows it (RGB) and as it writes it to fb0 (XRGB8888, little-endian). */
export const ORANGE = [0xff, 0x80, 0x00] as const;

const BODY = `
i=0; until [ -c /dev/fb0 ] || [ $i -ge 100 ]; do sleep 0.1; i=$((i+1)); done
[ -c /dev/fb0 ] || { echo "GUEST-RESULT: FAIL no /dev/fb0"; exit 0; }
for v in /sys/class/vtconsole/vtcon*/bind; do echo 0 > $v 2>/dev/null; done
SZ=$(cat /sys/class/graphics/fb0/virtual_size); BPP=$(cat /sys/class/graphics/fb0/bits_per_pixel)
W=\${SZ%,*}; H=\${SZ#*,}
echo "GUEST: fb0 $W x $H bpp=$BPP"
printf '\\000\\200\\377\\000' > /tmp/c
n=0; while [ $n -lt 10 ]; do cat /tmp/c /tmp/c > /tmp/d; mv /tmp/d /tmp/c; n=$((n+1)); done
chunks=$(( W * H * BPP / 8 / 4096 ))
n=0; while [ $n -lt $chunks ]; do cat /tmp/c; n=$((n+1)); done > /tmp/frame
cat /tmp/frame > /dev/fb0 2>/dev/null
sleep 2
cat /tmp/frame > /dev/fb0 2>/dev/null
echo "GUEST: fb filled"
sleep 8
echo "GUEST-RESULT: PASS"
`;

export interface GpuRun {
  width: number;
  height: number;
  orange: number;
  qemuLog: string;
}

/**
 * One guest run; `proxy` set: QEMU connects to the proxy, which connects to the backend.
 * `qemu`, `backend`: the releases QEMU and vhost-user-gpu come from.
 */
export async function runGpuGuest(work: string, proxy?: ProxyProcess, qemu: RootRelease = 'debian13', backend: RootRelease = 'debian13'): Promise<GpuRun> {
  fs.mkdirSync(work, { recursive: true });
  const initrd = buildInitramfs(work, BODY, ['virtio_pci', 'virtio_gpu']);
  const be = path.join(work, 'be.sock');
  const fe = proxy ? path.join(work, 'fe.sock') : be;
  const qmp = path.join(work, 'qmp.sock');
  const shot = path.join(work, 'shot.ppm');
  const gpuCmd = inRoot(backend, [work], '/usr/lib/qemu/vhost-user-gpu', [`--socket-path=${be}`]);
  const gpu = new Peer(gpuCmd.cmd, gpuCmd.args, { name: 'vhost-user-gpu', logFile: path.join(work, 'gpu.log'), env: gpuCmd.env, timeoutMs: 240_000 });
  let q: Peer | undefined;
  try {
    await waitForSocket(be, 30_000, gpu);
    if (proxy) await proxy.starter(fe, be);
    const [, , , ...qemuLine] = qemuArgs(initrd, '', [
      '-qmp',
      `unix:${qmp},server=on,wait=off`,
      '-chardev',
      `socket,id=c0,path=${fe}`,
      '-device',
      'vhost-user-gpu-pci,chardev=c0',
    ]);
    const qemuCmd = inRoot(qemu, [work], '/usr/bin/qemu-system-x86_64', qemuLine);
    q = new Peer('taskset', ['-c', '1', qemuCmd.cmd, ...qemuCmd.args], {
      name: 'qemu',
      logFile: path.join(work, 'qemu.log'),
      env: qemuCmd.env,
      timeoutMs: 240_000,
    });
    await q.waitForLog(/GUEST: fb filled|GUEST-RESULT/, 180_000);
    await sleep(3000); // the fbdev deferred-io flush reaches the backend, then QEMU
    await qmpCommand(qmp, 'screendump', { filename: shot });
    const rc = await q.waitExit(60_000);
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}\n${q.log().slice(-2000)}`);
    const img = readPpm(fs.readFileSync(shot));
    return { width: img.width, height: img.height, orange: countColour(img.rgb, ORANGE), qemuLog: q.log() };
  } finally {
    await q?.stop();
    await gpu.stop();
  }
}
