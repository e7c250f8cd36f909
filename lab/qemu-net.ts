/**
 * QEMU (TCG) virtio-net + vhost-user <-> testpmd net_vhost (icmpecho): the guest pings testpmd
 * and prints every round-trip time. Used by bench/notify to compare guest ping RTT direct,
 * through the proxy, and through the proxy with interposed eventfds.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildInitramfs, qemuArgs, vhostUserNetArgs } from './guest';
import { startProxy } from './proxy-process';
import { Peer } from '../src/demo/process';
import { Testpmd } from '../src/demo/testpmd';

export interface QemuPingOptions {
  workDir: string;
  pings: number;
  /** seconds between pings */
  interval?: number;
  /** `vhostscope proxy` arguments beyond --listen/--connect; undefined = direct connection */
  proxyArgs?: string[];
  /** runs while the guest boots and pings (given the socket QEMU connects to); awaited before the result */
  whileRunning?: (feSock: string) => Promise<void>;
}

export interface QemuPingResult {
  rttMs: number[];
  sent: number;
  replied: number;
}

export async function runQemuPing(o: QemuPingOptions): Promise<QemuPingResult> {
  fs.mkdirSync(o.workDir, { recursive: true });
  const initrd = buildInitramfs(
    o.workDir,
    `
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
ip link set lo up; ip link set eth0 up
i=0; until [ "$(cat /sys/class/net/eth0/operstate)" = up ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
ip addr add 169.254.77.2/24 dev eth0
ping -c 2 -W 2 169.254.77.1 >/dev/null 2>&1
ping -c ${o.pings} -i ${o.interval ?? 0.1} -W 1 169.254.77.1 2>&1 | sed 's/^/GUEST-PING: /'
echo "GUEST-RESULT: done"
`,
    ['virtio_pci', 'virtio_net'],
  );
  const direct = o.proxyArgs === undefined;
  const beSock = path.join(o.workDir, direct ? 'vhu.sock' : 'be.sock');
  const feSock = path.join(o.workDir, direct ? 'vhu.sock' : 'fe.sock');
  for (const s of new Set([beSock, feSock])) fs.rmSync(s, { force: true });
  const tp = new Testpmd({ name: 'be', workDir: o.workDir, mainLcore: 1, forwardMode: 'icmpecho', mbufs: 8192, vdev: `net_vhost0,iface=${beSock},queues=1` });
  let proxy: Peer | undefined;
  let q: Peer | undefined;
  try {
    await tp.peer.waitForLog(/binding succeeded/, 30_000);
    tp.cmd('start');
    if (!direct) {
      proxy = await startProxy({ listen: feSock, connect: beSock, args: o.proxyArgs ?? [], logFile: path.join(o.workDir, 'proxy.log') });
    }
    q = new Peer('taskset', qemuArgs(initrd, '', vhostUserNetArgs(`socket,id=c0,path=${feSock}`)), {
      name: 'qemu',
      logFile: path.join(o.workDir, 'qemu.log'),
      timeoutMs: 240_000,
    });
    const during = o.whileRunning?.(feSock);
    during?.catch(() => undefined); // awaited below, once QEMU is done
    const rc = await q.waitExit(200_000);
    await during;
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}`);
    const log = q.log();
    const rttMs = [...log.matchAll(/GUEST-PING: .*time=([\d.]+) ms/g)].map((m) => Number(m[1]));
    const stats = log.match(/(\d+) packets transmitted, (\d+) packets received/);
    return { rttMs, sent: Number(stats?.[1] ?? 0), replied: Number(stats?.[2] ?? 0) };
  } finally {
    await q?.stop();
    await proxy?.stop();
    await tp.peer.stop();
  }
}
