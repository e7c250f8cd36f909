/**
 * libvirt (Debian 12's 9.0) run by hand, the way a host without systemd runs it: libvirtd in the
 * foreground as root, QEMU domains of type 'qemu' (TCG), a transient domain per test. The QEMU
 * driver is told (in /etc/libvirt/qemu.conf, a marked block) to run QEMU as root without a
 * security driver, cgroups or mount namespaces, and to log to files: a container has none of
 * those facilities, and a vhost-user socket owned by root must be reachable by QEMU.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findKernel } from './guest';
import { Peer, sleep } from '../src/demo/process';

const QEMU_CONF = '/etc/libvirt/qemu.conf';
const MARK = '# vhostscope lab (src/lab/libvirt.ts)';
const SETTINGS = `${MARK}
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = [ ]
cgroup_controllers = [ ]
stdio_handler = "file"
`;

export function libvirtMissing(): string | undefined {
  return fs.existsSync('/usr/sbin/libvirtd')
    ? undefined
    : '/usr/sbin/libvirtd missing: apt-get install --no-install-recommends libvirt-daemon-system libvirt-clients';
}

export function virsh(...args: string[]): string {
  return execFileSync('virsh', ['-c', 'qemu:///system', ...args], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'pipe'] });
}

export class Libvirtd {
  private peer: Peer | undefined;

  constructor(readonly workDir: string) {}

  async start(): Promise<void> {
    // a libvirtd left from an earlier test would answer virsh in place of ours (and hold the
    // drivers' pid files, so ours exits): refuse with its pid rather than test the wrong daemon
    const stale = runningLibvirtd();
    if (stale.length) throw new Error(`a libvirtd is already running (pid ${stale.join(', ')}): stop it first`);
    const conf = fs.existsSync(QEMU_CONF) ? fs.readFileSync(QEMU_CONF, 'utf8') : '';
    if (!conf.includes(MARK)) fs.writeFileSync(QEMU_CONF, `${conf}\n${SETTINGS}`);
    this.peer = new Peer('/usr/sbin/libvirtd', ['--pid-file', path.join(this.workDir, 'libvirtd.pid')], {
      name: 'libvirtd',
      logFile: path.join(this.workDir, 'libvirtd.log'),
      timeoutMs: 600_000,
    });
    const end = Date.now() + 60_000;
    for (;;) {
      try {
        virsh('version');
        return;
      } catch (err) {
        if (!this.peer.alive) throw new Error(`libvirtd exited\n${this.peer.log().slice(-2000)}`);
        if (Date.now() > end) throw new Error(`libvirtd did not answer within 60 s: ${(err as Error).message}\n${this.peer.log().slice(-2000)}`);
        await sleep(500);
      }
    }
  }

  async stop(): Promise<void> {
    await this.peer?.stop(15_000);
  }
}

function runningLibvirtd(): number[] {
  try {
    return execFileSync('pgrep', ['-x', 'libvirtd'], { encoding: 'utf8' }).split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

export interface VhostUserGuest {
  name: string;
  /** the vhost-user socket: QEMU connects to it (default), or listens on it (`qemuListens`) */
  socket: string;
  /** net: QEMU is the server (mode='server'), as OpenStack deploys it with OVS dpdkvhostuserclient ports */
  qemuListens?: boolean;
  initrd: string;
  /** the guest's serial console goes here */
  console: string;
  /** net: a virtio-net interface with this MAC; blk: a virtio-blk disk (vda) */
  device: { type: 'net'; mac: string } | { type: 'blk' };
  /** more kernel command line */
  append?: string;
}

/**
 * A transient domain with one vhost-user device: `<interface type='vhostuser'>` (net) or
 * `<disk type='vhostuser'>` (blk), direct kernel boot of the lab's initramfs, memfd shared
 * memory (vhost-user needs it), the console in a file. `-global virtio-net-pci.vectors=0`:
 * QEMU 7.2 under TCG crashes in vhost_net_start with MSI-X (src/lab/guest.ts), so the domain
 * asks for INTx, as the lab's own QEMU command lines do.
 */
export function vhostUserDomainXml(g: VhostUserGuest): string {
  const k = findKernel();
  const device =
    g.device.type === 'net'
      ? `<interface type='vhostuser'>
      <mac address='${g.device.mac}'/>
      <source type='unix' path='${g.socket}' mode='${g.qemuListens ? 'server' : 'client'}'/>
      <model type='virtio'/>
      <rom enabled='no'/>
    </interface>`
      : `<disk type='vhostuser' device='disk'>
      <driver name='qemu' type='raw'/>
      <source type='unix' path='${g.socket}'/>
      <target dev='vda' bus='virtio'/>
    </disk>`;
  return `<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>${g.name}</name>
  <memory unit='MiB'>256</memory>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <vcpu placement='static' cpuset='1'>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>${k.image}</kernel>
    <initrd>${g.initrd}</initrd>
    <cmdline>console=ttyS0 panic=-1 quiet loglevel=3 ${g.append ?? ''}</cmdline>
  </os>
  <cpu mode='maximum'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    ${device}
    <serial type='file'><source path='${g.console}'/><target port='0'/></serial>
    <memballoon model='none'/>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-global'/>
    <qemu:arg value='virtio-net-pci.vectors=0'/>
  </qemu:commandline>
</domain>
`;
}

/**
 * Destroys a domain libvirt may still run. A transient domain whose guest powers off between a
 * check and this call is gone already: that is the outcome wanted, not an error.
 */
export function destroyDomain(name: string): void {
  try {
    virsh('destroy', name);
  } catch (err) {
    const why = `${(err as { stderr?: string }).stderr ?? ''} ${(err as Error).message}`;
    if (!/Domain not found|domain is not running|failed to get domain/i.test(why)) throw err;
  }
}

/** Whether libvirt still runs the domain (a transient domain disappears when it shuts off). */
export function domainRunning(name: string): boolean {
  try {
    return /running|paused|blocked/.test(virsh('domstate', name));
  } catch {
    return false;
  }
}
