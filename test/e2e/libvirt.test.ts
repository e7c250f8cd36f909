/**
 * End to end with libvirt, untouched: libvirt 9.0 (started by hand, no systemd) runs a TCG guest
 * whose <interface type='vhostuser'> connects to a testpmd vhost backend's socket. vhostscope
 * attaches to that socket with no change to the domain XML; the guest's pings to testpmd cross
 * vhostscope, the recording holds the session, and `virsh dumpxml` still names the same path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GUEST_MAC, buildInitramfs } from '../../lab/guest';
import { Libvirtd, destroyDomain, domainRunning, libvirtMissing, vhostUserDomainXml, virsh } from '../../lab/libvirt';
import { Peer, waitForSocket } from '../../src/demo/process';
import type { Testpmd } from '../../src/demo/testpmd';
import { CLI } from '../../lab/proxy-process';
import { readRecording } from '../../src/recording/reader';
import { cleanUp, tmpDir, until } from '../helpers';
import { backend, guestBody, startForwarding } from './harness/qemu-net';
import { blkGuest, guestWritten, sha } from './harness/storage-guests';
import { storageDaemon } from '../../lab/storage-daemon';

// every test here needs libvirtd: say so plainly rather than as "libvirtd exited"
const needLibvirt = (): void => {
  const missing = libvirtMissing();
  if (missing) throw new Error(missing);
};

describe('libvirt', () => {
  it('a libvirt guest on a vhostuser interface pings testpmd through vhostscope attach, its XML untouched, and again after a reset', async () => {
    needLibvirt();
    const work = tmpDir('libvirt');
    const sock = path.join(work, 'vhu.sock');
    const consoleLog = path.join(work, 'console.log');
    const name = `vhs-${path.basename(work).slice(-6)}`;
    const initrd = buildInitramfs(work, guestBody(20, 8), ['virtio_pci', 'virtio_net']);
    const tp = backend(work, 'be', sock, false);
    const libvirtd = new Libvirtd(work);
    let a: Peer | undefined;
    try {
      await startForwarding(tp, true);
      await libvirtd.start();
      const original = fs.statSync(sock);
      a = new Peer(process.execPath, [CLI, 'attach', sock, '--json', '--device', 'net', '--record', path.join(work, 'vm.vhsrec')], {
        name: 'attach',
        logFile: path.join(work, 'attach.log'),
        timeoutMs: 300_000,
      });
      await until(() => /attached to/.test(fs.readFileSync(path.join(work, 'attach.log'), 'utf8')), 20_000, 'the attach');
      const xmlFile = path.join(work, 'domain.xml');
      fs.writeFileSync(xmlFile, vhostUserDomainXml({ name, socket: sock, initrd, console: consoleLog, device: { type: 'net', mac: GUEST_MAC } }));
      virsh('create', xmlFile);
      // what libvirt holds for the domain: the same socket path, nothing of vhostscope
      const live = virsh('dumpxml', name);
      expect(live).toContain(`<source type='unix' path='${sock}' mode='client'/>`);
      expect(live).not.toMatch(/vhostscope/);
      // a hard reset of the guest (virsh reset): QEMU resets the device, the guest boots again and
      // its driver sets the device up again over the same connection, through vhostscope
      const consoleText = (): string => (fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, 'utf8') : '');
      await until(() => /seq=3 ok/.test(consoleText()), 120_000, 'pings before the reset');
      virsh('reset', name);
      await until(() => (consoleText().match(/seq=3 ok/g) ?? []).length >= 2 || !domainRunning(name), 150_000, 'pings after the reset');
      await until(() => /GUEST-RESULT/.test(consoleText()) || !domainRunning(name), 200_000, 'the guest to finish');
      expect(consoleText()).toMatch(/GUEST-RESULT: PASS/);
      expect((consoleText().match(/seq=3 ok/g) ?? []).length).toBeGreaterThanOrEqual(2);
      a.kill('SIGTERM');
      expect(await a.waitExit(10_000)).toBe(0);
      expect(fs.statSync(sock).ino).toBe(original.ino);
      // the session came through vhostscope: QEMU (started by libvirt) <-> testpmd
      const records = readRecording(path.join(work, 'vm.vhsrec')).records;
      const start = records.find((r) => r.type === 'session-start');
      expect(start && start.type === 'session-start' ? start.peers.listen?.exe : undefined).toMatch(/qemu-system-x86_64/);
      expect(records.filter((r) => r.type === 'message').length).toBeGreaterThan(30);
      expect(tp.peer.log()).toMatch(/ICMP/);
    } finally {
      await cleanUp(
        () => destroyDomain(name),
        () => a?.kill('SIGKILL'),
        () => libvirtd.stop(),
        () => tp.peer.stop(),
      );
    }
  }, 300_000);

  it("a libvirt guest on a vhostuser disk reads and writes through vhostscope attach on qemu-storage-daemon's socket", async () => {
    needLibvirt();
    const work = tmpDir('libvirt-blk');
    const { img, token, host, guestWrite, initrd } = blkGuest(work);
    const sock = path.join(work, 'blk.sock');
    const consoleLog = path.join(work, 'console.log');
    const name = `vhs-${path.basename(work).slice(-6)}`;
    const qsd = storageDaemon(work, img, sock);
    const libvirtd = new Libvirtd(work);
    let a: Peer | undefined;
    try {
      await waitForSocket(sock, 20_000, qsd);
      await libvirtd.start();
      a = new Peer(process.execPath, [CLI, 'attach', sock, '--json', '--device', 'blk', '--record', path.join(work, 'vm.vhsrec')], {
        name: 'attach',
        logFile: path.join(work, 'attach.log'),
        timeoutMs: 300_000,
      });
      await until(() => /attached to/.test(fs.readFileSync(path.join(work, 'attach.log'), 'utf8')), 20_000, 'the attach');
      const xmlFile = path.join(work, 'domain.xml');
      fs.writeFileSync(xmlFile, vhostUserDomainXml({ name, socket: sock, initrd, console: consoleLog, device: { type: 'blk' }, append: `lab.token=${token}` }));
      virsh('create', xmlFile);
      expect(virsh('dumpxml', name)).toContain(`<source type='unix' path='${sock}'`);
      await until(
        () => /GUEST-RESULT/.test(fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, 'utf8') : '') || !domainRunning(name),
        200_000,
        'the guest to finish',
      );
      const console_ = fs.readFileSync(consoleLog, 'utf8');
      expect(console_).toMatch(/GUEST-RESULT: PASS/);
      expect(console_).toContain(`GUEST-READ-SHA: ${sha(host)}`);
      a.kill('SIGTERM');
      expect(await a.waitExit(10_000)).toBe(0);
    } finally {
      await cleanUp(
        () => destroyDomain(name),
        () => a?.kill('SIGKILL'),
        () => libvirtd.stop(),
        () => qsd.stop(),
      );
    }
    expect(sha(guestWritten(img))).toBe(sha(guestWrite)); // the guest's write is in the image
    const records = readRecording(path.join(work, 'vm.vhsrec')).records;
    expect(records.filter((r) => r.type === 'message').length).toBeGreaterThan(20);
  }, 300_000);

  it("QEMU listens (mode='server'): after attach on its socket, a restarted backend comes back through vhostscope and the guest pings again", async () => {
    needLibvirt();
    const work = tmpDir('libvirt-srv');
    const sock = path.join(work, 'qemu.sock');
    const consoleLog = path.join(work, 'console.log');
    const name = `vhs-${path.basename(work).slice(-6)}`;
    const initrd = buildInitramfs(work, guestBody(80, 10), ['virtio_pci', 'virtio_net']);
    const libvirtd = new Libvirtd(work);
    let tp1: Testpmd | undefined;
    let tp2: Testpmd | undefined;
    let a: Peer | undefined;
    const consoleText = (): string => (fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, 'utf8') : '');
    try {
      await libvirtd.start();
      const xmlFile = path.join(work, 'domain.xml');
      fs.writeFileSync(
        xmlFile,
        vhostUserDomainXml({ name, socket: sock, qemuListens: true, initrd, console: consoleLog, device: { type: 'net', mac: GUEST_MAC } }),
      );
      // QEMU waits for its vhost-user peer before it runs the guest, and `virsh create` for QEMU
      const creating = new Peer('virsh', ['-c', 'qemu:///system', 'create', xmlFile], {
        name: 'virsh-create',
        logFile: path.join(work, 'virsh-create.log'),
        timeoutMs: 120_000,
      });
      await until(() => fs.existsSync(sock), 60_000, 'QEMU listening');
      // the backend connects to QEMU (client=1), directly: the guest pings it
      tp1 = backend(work, 'be1', sock, true);
      await startForwarding(tp1, false);
      expect(await creating.waitExit(90_000)).toBe(0);
      await until(() => /seq=3 ok/.test(consoleText()), 150_000, 'pings over the direct connection');
      a = new Peer(process.execPath, [CLI, 'attach', sock, '--json', '--device', 'net', '--record', path.join(work, 'vm.vhsrec')], {
        name: 'attach',
        logFile: path.join(work, 'attach.log'),
        timeoutMs: 300_000,
      });
      await until(() => /attached to .*the 1 made before stay direct/.test(fs.readFileSync(path.join(work, 'attach.log'), 'utf8')), 20_000, 'the attach');
      // the backend restarts (as after an upgrade or a crash) and connects to the same path: vhostscope
      await tp1.peer.stop();
      const okBefore = (consoleText().match(/ ok/g) ?? []).length;
      tp2 = backend(work, 'be2', sock, true);
      await startForwarding(tp2, false);
      await until(() => (consoleText().match(/ ok/g) ?? []).length >= okBefore + 3, 150_000, 'pings through vhostscope after the restart');
      expect(virsh('dumpxml', name)).toContain(`<source type='unix' path='${sock}' mode='server'/>`);
      a.kill('SIGTERM');
      expect(await a.waitExit(10_000)).toBe(0);
    } finally {
      await cleanUp(
        () => destroyDomain(name),
        () => a?.kill('SIGKILL'),
        () => tp1?.peer.stop(),
        () => tp2?.peer.stop(),
        () => libvirtd.stop(),
      );
    }
    const records = readRecording(path.join(work, 'vm.vhsrec')).records;
    const start = records.find((r) => r.type === 'session-start');
    expect(start && start.type === 'session-start' ? start.peers.listen?.exe : undefined).toMatch(/dpdk-testpmd/); // the restarted backend connected to vhostscope
    expect(records.filter((r) => r.type === 'message').length).toBeGreaterThan(20);
  }, 400_000);
});
