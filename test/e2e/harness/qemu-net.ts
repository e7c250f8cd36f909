/** QEMU virtio-net guests that ping testpmd (icmpecho), for the e2e tests. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { GUEST_MAC, qemuArgs, vhostUserNetArgs } from '../../../lab/guest';
import { Peer } from '../../../src/demo/process';
import { Testpmd } from '../../../src/demo/testpmd';

const MAC = GUEST_MAC;

export const guestBody = (pings: number, minOk: number): string => `
echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
ip link set lo up
ip link set eth0 up || { echo "GUEST-RESULT: FAIL no eth0"; exit 0; }
i=0; until [ "$(cat /sys/class/net/eth0/operstate)" = up ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
udhcpc -i eth0 -n -q -t 2 -T 1 -s /bin/true >/dev/null 2>&1
ip addr add 169.254.77.2/24 dev eth0
n=0; ok=0
while [ $n -lt ${pings} ]; do
  if ping -c 1 -W 1 169.254.77.1 >/dev/null 2>&1; then ok=$((ok+1)); echo "GUEST-PING: seq=$n ok"; else echo "GUEST-PING: seq=$n lost"; fi
  n=$((n+1)); sleep 0.3
done
echo "GUEST-PING: $n sent, $ok replied"
if [ "$ok" -ge ${minOk} ]; then echo "GUEST-RESULT: PASS replies=$ok/$n"; else echo "GUEST-RESULT: FAIL only $ok/$n ping replies"; fi
`;

export function backend(work: string, name: string, sock: string, client: boolean): Testpmd {
  const t = new Testpmd({
    name,
    workDir: work,
    mainLcore: 1,
    forwardMode: 'icmpecho',
    mbufs: 8192,
    vdev: `net_vhost0,iface=${sock},queues=1${client ? ',client=1' : ''}`,
  });
  return t;
}

export async function startForwarding(t: Testpmd, server: boolean): Promise<void> {
  if (server) await t.peer.waitForLog(/binding succeeded/, 30_000);
  t.cmd('set verbose 1');
  t.cmd('start');
}

export function qemu(work: string, initrd: string, chardev: string): Peer {
  return new Peer('taskset', qemuArgs(initrd, '', vhostUserNetArgs(chardev)), { name: 'qemu', logFile: path.join(work, 'qemu.log'), timeoutMs: 240_000 });
}

export function expectGuestTraffic(q: Peer, be: Testpmd): void {
  expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
  const log = be.peer.log();
  expect(log).toMatch(new RegExp(`src=${MAC}`, 'i'));
  expect(log).toMatch(/ARP/);
  expect(log).toMatch(/ICMP/);
}

/** The last ping sequence number the guest saw answered (-1: none yet). */
export const lastPingOk = (q: Peer): number => Math.max(-1, ...[...q.log().matchAll(/seq=(\d+) ok/g)].map((m) => Number(m[1])));

/**
 * A new testpmd on the backend socket, as after a crash (the old one must be stopped), then
 * waits until the guest's pings are answered again past `lastOkBefore`.
 */
export async function restartBackendUntilPingsResume(work: string, sock: string, q: Peer, lastOkBefore: number, gapMs = 0): Promise<Testpmd> {
  await new Promise((r) => setTimeout(r, gapMs));
  fs.rmSync(sock, { force: true });
  const tp = backend(work, 'be2', sock, false);
  await startForwarding(tp, true);
  await tp.peer.waitForLog(/virtio is now ready for processing/, 60_000);
  const end = Date.now() + 60_000;
  while (lastPingOk(q) <= Math.max(lastOkBefore, 0) + 2) {
    if (Date.now() > end) throw new Error(`no ping replies after the restart (last ${lastPingOk(q)}, before it ${lastOkBefore})`);
    await new Promise((r) => setTimeout(r, 500));
  }
  return tp;
}
