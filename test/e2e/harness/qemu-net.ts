/** QEMU virtio-net guests that ping testpmd (icmpecho), for the e2e tests. */
import * as path from 'node:path';
import { expect } from 'vitest';
import { GUEST_MAC, qemuArgs, vhostUserNetArgs } from '../../../src/lab/guest';
import { Peer } from '../../../src/lab/process';
import { Testpmd } from '../../../src/lab/testpmd';

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
    name, workDir: work, mainLcore: 1, forwardMode: 'icmpecho', mbufs: 8192,
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

