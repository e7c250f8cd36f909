/**
 * End to end: `vhostscope attach` slides into a running DPDK vhost backend's socket path (testpmd
 * listening), neither peer configured for it: a frontend that connects afterwards goes through
 * vhostscope and carries every packet; SIGTERM puts the backend's own socket back (same inode),
 * and the next frontend connects directly. After a SIGKILL, `vhostscope detach` restores it.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Peer, sleep } from '../../src/demo/process';
import { CLI } from '../../lab/proxy-process';
import { Testpmd } from '../../src/demo/testpmd';
import { OvsDpdk, ovsMissing } from '../../lab/ovs';
import { buildInitramfs } from '../../lab/guest';
import { backend, guestBody, lastPingOk, qemu, startForwarding } from './harness/qemu-net';
import { native } from '../../src/native';
import { movedPath } from '../../src/proxy/attach';
import { readRecording } from '../../src/recording/reader';
import { tmpDir, until } from '../helpers';

const READY = /virtio is now ready for processing/g;

describe('vhostscope attach with a running testpmd vhost backend', () => {
  it("takes over its socket path, carries a new frontend's traffic, and gives the path back", async () => {
    const work = tmpDir('attach');
    const sock = path.join(work, 'vhu.sock');
    const be = new Testpmd({ name: 'be', workDir: work, mainLcore: 0, forwardMode: 'rxonly', vdev: `net_vhost0,iface=${sock},queues=1` });
    const frontend = (name: string): Testpmd =>
      new Testpmd({ name, workDir: work, mainLcore: 1, forwardMode: 'txonly', vdev: `net_virtio_user0,path=${sock},queues=1` });
    const attach = (n: number): Peer =>
      new Peer(process.execPath, [CLI, 'attach', sock, '--json', '--record', path.join(work, `attach${n}.vhsrec`)], {
        name: `attach${n}`,
        logFile: path.join(work, `attach${n}.log`),
        timeoutMs: 120_000,
      });
    const attachedLog = (n: number): string => fs.readFileSync(path.join(work, `attach${n}.log`), 'utf8');
    try {
      await be.peer.waitForLog(/binding succeeded/, 30_000);
      const original = fs.statSync(sock);

      // attach: the backend's socket moves aside, vhostscope listens at the path with its mode and owner
      const a = attach(1);
      // (no probe of the socket here: a probe is a connection, and a session, through vhostscope)
      await until(() => fs.existsSync(movedPath(sock)) && /attached to/.test(attachedLog(1)), 20_000, 'the attach');
      const ours = fs.statSync(sock);
      expect(ours.ino).not.toBe(original.ino);
      expect([ours.mode, ours.uid, ours.gid]).toEqual([original.mode, original.uid, original.gid]);
      expect(fs.statSync(movedPath(sock)).ino).toBe(original.ino);

      // a frontend that starts now goes through vhostscope, and every packet crosses
      const fe1 = frontend('fe1');
      await be.peer.waitForLog(READY, 60_000);
      await fe1.peer.waitForLog(/testpmd> /, 60_000);
      await be.peer.waitForLog(/testpmd> /, 60_000);
      await be.start();
      await fe1.start();
      await sleep(2000);
      const sent = await fe1.stopForwarding();
      await sleep(500);
      const got = await be.stopForwarding();
      expect(sent.tx).toBeGreaterThan(10_000);
      expect(got.rx).toBe(sent.tx);
      await fe1.quit();

      // SIGTERM: the backend's own socket is back at the path, in one rename
      a.kill('SIGTERM');
      expect(await a.waitExit(10_000)).toBe(0);
      expect(fs.statSync(sock).ino).toBe(original.ino);
      expect(fs.existsSync(movedPath(sock))).toBe(false);
      expect(attachedLog(1)).toMatch(/detached: .* is the peer's own socket again/);
      const rec = readRecording(path.join(work, 'attach1.vhsrec')).records;
      expect(rec.filter((r) => r.type === 'session-start')).toHaveLength(1);
      expect(rec.filter((r) => r.type === 'message').length).toBeGreaterThan(20);

      // the next frontend connects to the backend directly
      const fe2 = frontend('fe2');
      await until(() => (be.peer.log().match(READY) ?? []).length === 2, 60_000, 'the direct connection');
      await fe2.peer.waitForLog(/testpmd> /, 60_000);
      await fe2.quit();

      // a killed attach leaves its dead socket at the path: detach puts the backend's back
      const k = attach(2);
      await until(() => fs.existsSync(movedPath(sock)) && /attached to/.test(attachedLog(2)), 20_000, 'the second attach');
      k.kill('SIGKILL');
      await k.waitExit(10_000);
      expect(native.probeUnix(sock)).toBe(false);
      expect(execFileSync(process.execPath, [CLI, 'detach', sock], { encoding: 'utf8', timeout: 60_000 })).toMatch(
        /the peer's socket is back \(and listening; owner uid \d+\)/,
      );
      expect(fs.statSync(sock).ino).toBe(original.ino);
      expect(execFileSync(process.execPath, [CLI, 'detach', sock], { encoding: 'utf8', timeout: 60_000 })).toMatch(/not attached/);
      // attach refuses a path nobody listens on, and leaves it alone
      await be.quit();
      const r = (() => {
        try {
          execFileSync(process.execPath, [CLI, 'attach', sock], { encoding: 'utf8', stdio: 'pipe', timeout: 60_000 });
          return '';
        } catch (err) {
          return String((err as { stderr: string }).stderr);
        }
      })();
      expect(r).toMatch(/nobody listens on it|no such socket/);
    } finally {
      if (be.peer.alive) await be.quit();
    }
  }, 120_000);

  it("takes over an OVS-DPDK dpdkvhostuser port's socket: a testpmd frontend reaches OVS through it", async () => {
    const missing = ovsMissing();
    if (missing) throw new Error(missing);
    const work = tmpDir('attach-ovs');
    const ovs = new OvsDpdk(work);
    let fe: Testpmd | undefined;
    let a: Peer | undefined;
    try {
      await ovs.start(0);
      const sock = await ovs.addServerPort('vhu0'); // <rundir>/vhu0, where an operator's OVS puts it
      const original = fs.statSync(sock);
      a = new Peer(process.execPath, [CLI, 'attach', sock, '--json', '--device', 'net'], {
        name: 'attach',
        logFile: path.join(work, 'attach.log'),
        timeoutMs: 120_000,
      });
      await until(() => /attached to/.test(fs.readFileSync(path.join(work, 'attach.log'), 'utf8')), 20_000, 'the attach');
      fe = new Testpmd({ name: 'fe', workDir: work, mainLcore: 1, forwardMode: 'txonly', vdev: `net_virtio_user0,path=${sock},queues=1` });
      await fe.peer.waitForLog(/testpmd> /, 60_000);
      await until(() => /virtio is now ready for processing/.test(ovs.log()), 30_000, 'OVS: the port ready');
      await fe.start();
      // OVS's PMD counts what it takes from the port (the only port: testpmd's packets)
      let rx = 0;
      await until(() => (rx = ovs.pmdPacketsReceived()) > 1000, 30_000, 'packets received by the OVS PMD');
      await fe.stopForwarding();
      await fe.quit();
      a.kill('SIGTERM');
      expect(await a.waitExit(10_000)).toBe(0);
      expect(fs.statSync(sock).ino).toBe(original.ino); // OVS's own socket again
      const log = fs
        .readFileSync(path.join(work, 'attach.log'), 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { event?: string; request?: string; dir?: string });
      // the handshake went through vhostscope: OVS (the backend) answered the frontend's requests
      expect(log.some((r) => r.event === 'message' && r.request === 'GET_PROTOCOL_FEATURES' && r.dir === 'B>F')).toBe(true);
      expect(log.filter((r) => r.event === 'message' && r.request === 'SET_VRING_KICK')).toHaveLength(2);
      expect(rx).toBeGreaterThan(1000);
    } finally {
      if (fe?.peer.alive) await fe.peer.stop();
      if (a?.alive) a.kill('SIGKILL');
      await ovs.stop();
    }
  }, 180_000);

  it("--reconnect ends QEMU's direct connection to testpmd: QEMU (reconnect=1) comes back through vhostscope and the guest's pings resume", async () => {
    const work = tmpDir('attach-reconnect');
    const initrd = buildInitramfs(work, guestBody(40, 10), ['virtio_pci', 'virtio_net']);
    const sock = path.join(work, 'vhu.sock');
    const tp = backend(work, 'be', sock, false); // testpmd vhost listens; QEMU connects with reconnect=1
    let q: Peer | undefined;
    let a: Peer | undefined;
    try {
      await startForwarding(tp, true);
      const original = fs.statSync(sock);
      q = qemu(work, initrd, `socket,id=c0,path=${sock},reconnect=1`);
      await q.waitForLog(/seq=3 ok/, 120_000); // the guest pings testpmd over the direct connection
      const attachLog = path.join(work, 'attach.log');
      a = new Peer(process.execPath, [CLI, 'attach', sock, '--reconnect', '--json', '--device', 'net'], {
        name: 'attach',
        logFile: attachLog,
        timeoutMs: 200_000,
      });
      const records = (): { event?: string; msg?: string; pid?: number; request?: string; session?: number }[] =>
        fs
          .readFileSync(attachLog, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l));
      await until(() => records().some((r) => /ended the direct connection held by pid/.test(String(r.msg))), 20_000, 'the direct connection ended');
      expect(records().find((r) => r.pid !== undefined)?.pid).toBe(tp.peer.pid); // testpmd's end of it
      const lastBefore = lastPingOk(q);
      // QEMU reconnects to the same path: now vhostscope, which forwards to testpmd's moved socket
      await until(() => records().some((r) => r.event === 'message' && r.request === 'SET_VRING_KICK'), 60_000, 'the handshake through vhostscope');
      await until(() => lastPingOk(q!) > lastBefore + 2, 90_000, 'pings answered again');
      expect(await q.waitExit(150_000)).toBe(0);
      expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
      a.kill('SIGTERM');
      expect(await a.waitExit(10_000)).toBe(0);
      expect(fs.statSync(sock).ino).toBe(original.ino);
      expect(records().filter((r) => r.event === 'session-start').length).toBeGreaterThanOrEqual(1);
    } finally {
      await q?.stop();
      if (a?.alive) a.kill('SIGKILL');
      await tp.peer.stop();
    }
  }, 300_000);

  it("--reconnect on a QEMU server socket that an OVS dpdkvhostuserclient port connects to: OVS comes back through vhostscope and the guest's pings resume", async () => {
    const missing = ovsMissing();
    if (missing) throw new Error(missing);
    const work = tmpDir('attach-ovs-client');
    const initrd = buildInitramfs(work, guestBody(60, 10), ['virtio_pci', 'virtio_net']);
    const qsock = path.join(work, 'qemu.sock'); // QEMU listens (server=on); OVS connects to it
    const ovs = new OvsDpdk(work);
    let q: Peer | undefined;
    let tp: Testpmd | undefined;
    let a: Peer | undefined;
    try {
      await ovs.start(0);
      q = qemu(work, initrd, `socket,id=c0,path=${qsock},server=on,wait=off`);
      await until(() => fs.existsSync(qsock), 60_000, 'QEMU listening');
      const original = fs.statSync(qsock);
      ovs.addClientPort('vhuc0', qsock);
      // the other side of the bridge: testpmd answering pings on a dpdkvhostuser port
      const vhu1 = await ovs.addServerPort('vhu1');
      tp = new Testpmd({ name: 'tp', workDir: work, mainLcore: 1, forwardMode: 'icmpecho', mbufs: 8192, vdev: `net_virtio_user0,path=${vhu1},queues=1` });
      await tp.peer.waitForLog(/testpmd> /, 60_000);
      tp.cmd('set verbose 1');
      tp.cmd('start');
      await q.waitForLog(/seq=3 ok/, 150_000); // guest -> OVS (direct) -> testpmd and back
      const attachLog = path.join(work, 'attach.log');
      a = new Peer(process.execPath, [CLI, 'attach', qsock, '--reconnect', '--json', '--device', 'net'], {
        name: 'attach',
        logFile: attachLog,
        timeoutMs: 240_000,
      });
      const records = (): { event?: string; msg?: string; pid?: number; request?: string }[] =>
        fs
          .readFileSync(attachLog, 'utf8')
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l));
      await until(() => records().some((r) => /ended the direct connection held by pid/.test(String(r.msg))), 20_000, 'the direct connection ended');
      const lastBefore = lastPingOk(q);
      await until(() => records().some((r) => r.event === 'message' && r.request === 'SET_VRING_KICK'), 60_000, 'OVS reconnecting through vhostscope');
      await until(() => lastPingOk(q!) > lastBefore + 2, 120_000, 'pings answered again');
      expect(await q.waitExit(200_000)).toBe(0);
      expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
      a.kill('SIGTERM');
      expect(await a.waitExit(10_000)).toBe(0);
      expect(fs.statSync(qsock).ino).toBe(original.ino);
    } finally {
      await q?.stop();
      if (a?.alive) a.kill('SIGKILL');
      await tp?.peer.stop();
      await ovs.stop();
    }
  }, 400_000);
});
