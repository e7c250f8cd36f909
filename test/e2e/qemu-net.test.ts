/**
 * End to end with a VM: QEMU 7.2 (TCG) virtio-net-pci + vhost-user <-> proxy <-> testpmd
 * net_vhost in icmpecho mode. The guest pings testpmd; replies prove both rings work.
 * vectors=0: QEMU 7.2 under TCG segfaults with MSI-X at DRIVER_OK (lab finding).
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { waitForSocket, type Peer } from '../../src/demo/process';
import type { Testpmd } from '../../src/demo/testpmd';
import { tmpDir } from '../helpers';
import { buildInitramfs } from '../../lab/guest';
import { backend, expectGuestTraffic, guestBody, lastPingOk, qemu, restartBackendUntilPingsResume, startForwarding } from './harness/qemu-net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { CLI, ProxyProcess, statsJsonOf, ringBases, ringHeaders, sessionEnd, vring } from './harness/proxy';

const run = promisify(execFile);
import { checkRecording } from './harness/proxy';

function expectNetHandshake(proxy: ProxyProcess, session = 1): void {
  const msgs = proxy.messages().filter((m) => m.session === session);
  expect(msgs[0]).toMatchObject({ request: 'GET_FEATURES', dir: 'F>B' });
  const pf = msgs.find((m) => m.request === 'GET_PROTOCOL_FEATURES' && m.dir === 'B>F')!;
  expect(pf.payload?.names).toEqual(['MQ', 'LOG_SHMFD', 'RARP', 'REPLY_ACK', 'MTU', 'BACKEND_REQ', 'CRYPTO_SESSION', 'BACKEND_SEND_FD', 'STATUS']);
  expect(pf.masked).toEqual(['HOST_NOTIFIER']);
  const req = msgs.find((m) => m.request === 'SET_BACKEND_REQ_FD')!;
  expect(req.fds).toEqual(['socket']);
  const mem = msgs.find((m) => m.request === 'SET_MEM_TABLE')!;
  expect(mem.fdInfo?.every((f) => f.kind === 'memfd' && f.memfdName === 'memory-backend-memfd' && f.size === 256 << 20)).toBe(true);
  expect(mem.summary).toMatch(/size=(128|256)MiB/);
  expect(msgs.some((m) => m.request === 'SET_VRING_KICK' && m.fds?.[0]?.startsWith('eventfd'))).toBe(true);
  expect(msgs.filter((m) => m.findings)).toEqual([]);
  // interposed notifications: the guest's pings are tx kicks (vring 1), testpmd's replies rx calls (vring 0)
  expect(vring(proxy, 1, session).kicks).toBeGreaterThan(0);
  expect(vring(proxy, 0, session).calls).toBeGreaterThan(0);
  for (const p of sessionEnd(proxy, session).relayPairs) expect(p.written, `${p.kind} ${p.vring}`).toBe(p.read);
  expect(checkRecording(proxy).messages).toBeGreaterThan(20);
}

describe('QEMU virtio-net <-> testpmd through the proxy', () => {
  it('backend listens: 5 pings answered', async () => {
    const work = tmpDir('qnet');
    const initrd = buildInitramfs(work, guestBody(5, 5), ['virtio_pci', 'virtio_net']);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const proxy = new ProxyProcess(work, ['--device', 'net', '--stats-interval', '1', '--rings=headers'], 'qemu-net-testpmd');
    const tp = backend(work, 'be', be, false);
    let q: Peer | undefined;
    try {
      await startForwarding(tp, true);
      await proxy.starter(fe, be);
      q = qemu(work, initrd, `socket,id=c0,path=${fe}`);
      expect(await q.waitExit(150_000)).toBe(0);
      expectGuestTraffic(q, tp);
      await tp.quit();
    } finally {
      await q?.stop();
      await tp.peer.stop();
      await proxy.stop();
    }
    expectNetHandshake(proxy);
    const feats = proxy.messages().find((m) => m.request === 'SET_FEATURES')!;
    expect(feats.summary).toMatch(/MRG_RXBUF.*PROTOCOL_FEATURES.*VERSION_1/);
    // --stats-interval 1: per-vring figures while the guest runs, not only at the end
    const periodic = proxy.records().filter((r) => r.event === 'stats');
    expect(periodic.length).toBeGreaterThanOrEqual(3);
    expect((periodic.at(-1)!.vrings as { vring: number; kicks: number }[]).some((v) => v.vring === 1 && v.kicks > 0)).toBe(true);
    // --relay-cpu auto (the default): the relay went next to testpmd's polling lcore (CPU 0)
    expect(proxy.records().find((r) => r.event === 'notice' && r.relayCpu !== undefined)).toMatchObject({
      relayCpu: 0,
      msg: expect.stringMatching(/next to the backend's polling thread \S+ \(pid \d+, tid \d+, \d+% busy\)/),
    });
    // --rings=headers: the guest's echo requests on the tx ring (1), testpmd's replies on the rx ring (0)
    const headers = ringHeaders(proxy, 'net');
    const tx = headers.filter((h) => h.vring === 1).map((h) => h.header.summary);
    const rx = headers.filter((h) => h.vring === 0).map((h) => h.header.summary);
    expect(tx).toContainEqual(expect.stringMatching(/^52:54:00:12:34:56 > .* IPv4 169\.254\.77\.2 > 169\.254\.77\.1 ICMP echo request id \d+ seq \d+$/));
    expect(rx).toContainEqual(expect.stringMatching(/ > 52:54:00:12:34:56 IPv4 169\.254\.77\.1 > 169\.254\.77\.2 ICMP echo reply id \d+ seq \d+$/));
    expect(tx.filter((x) => x.includes('echo request')).length).toBeGreaterThanOrEqual(5);
    expect(rx.filter((x) => x.includes('echo reply')).length).toBeGreaterThanOrEqual(5);
    // GET_VRING_BASE answered within what the rings showed (check VU019 runs in checkRecording's findings too)
    const bases = ringBases(proxy);
    expect(bases.map((b) => b.vring).sort()).toEqual([0, 1]);
    for (const b of bases) expect(b.base).toBe(b.usedIdx);
    // the frames as ordinary packets, dissected by Wireshark
    const pcap = path.join(work, 'frames.pcapng');
    await run(process.execPath, [CLI, 'export', '--format', 'pcapng', '--frames', proxy.recordFile, '-o', pcap]);
    const tshark = (await run('tshark', ['-r', pcap, '-Y', 'icmp', '-T', 'fields', '-e', 'icmp.type', '-e', 'ip.src'])).stdout.trim().split('\n');
    expect(tshark.filter((l) => l === '8\t169.254.77.2').length).toBeGreaterThanOrEqual(5);
    expect(tshark.filter((l) => l === '0\t169.254.77.1').length).toBeGreaterThanOrEqual(5);
    const shown = (await run(process.execPath, [CLI, 'show', '--rings', '--device', 'net', proxy.recordFile])).stdout;
    expect(shown).toMatch(/ring vring 1 (kick|call): avail idx \d+ used idx \d+, \d+ new chain\(s\)\n.*ICMP echo request/);
    const q1 = vring(proxy, 1);
    console.log(`QEMU net: ${JSON.stringify(sessionEnd(proxy).vrings)}`);
    // tx kicks are rare (event idx) and the calls come with later pings: a kick is paired only with
    // a call within 1 s, otherwise counted as unpaired (it used to be paired across the idle gap)
    expect((q1.latencyUs?.count ?? 0) + (q1.unpaired ?? 0)).toBeGreaterThan(0);
    expect(q1.latencyUs?.max ?? 0).toBeLessThanOrEqual(1e6);
    // the rx queue's kicks offer buffers: never paired with the call of a packet that came later
    expect(vring(proxy, 0).kicks).toBeGreaterThan(0);
    expect(vring(proxy, 0).latencyUs).toBeUndefined();
    // per request (stats --json): each echo reply testpmd wrote into a buffer the guest had
    // offered is an rx fill completed; the offered buffers still empty stay outstanding
    const replies = ringHeaders(proxy, 'net').filter((h) => h.vring === 0 && h.kind === 'call' && /ICMP echo reply/.test(h.header.summary)).length;
    const req = statsJsonOf(proxy).sessions[0].requests!;
    const rxFill = req.operations.find((o) => o.vring === 0 && o.op === 'rx fill');
    expect(replies).toBeGreaterThanOrEqual(5);
    expect(rxFill?.count).toBeGreaterThanOrEqual(replies);
    expect(req.outstanding.every((o) => o.vring === 0 && o.op === 'rx fill')).toBe(true);
  }, 200_000);

  it('QEMU listens (server=on): the proxy connects to QEMU and testpmd connects to the proxy', async () => {
    const work = tmpDir('qnet-srv');
    const initrd = buildInitramfs(work, guestBody(5, 5), ['virtio_pci', 'virtio_net']);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const proxy = new ProxyProcess(work);
    const q = qemu(work, initrd, `socket,id=c0,path=${fe},server=on,wait=on`);
    let tp: Testpmd | undefined;
    try {
      await waitForSocket(fe, 30_000, q);
      await proxy.starter(be, fe);
      tp = backend(work, 'be', be, true);
      await startForwarding(tp, false);
      expect(await q.waitExit(150_000)).toBe(0);
      expectGuestTraffic(q, tp);
      await tp.quit();
    } finally {
      await q.stop();
      await tp?.peer.stop();
      await proxy.stop();
    }
    expectNetHandshake(proxy);
    // the frontend was detected on the connect side: QEMU spoke first
    expect(proxy.records().find((r) => r.event === 'session-start')?.frontend).toBe('auto');
    expect(proxy.messages()[0].dir).toBe('F>B');
  }, 200_000);

  it('backend restart with QEMU reconnect=1: QEMU renegotiates through the proxy and pings resume', async () => {
    const work = tmpDir('qnet-rec');
    const initrd = buildInitramfs(work, guestBody(40, 10), ['virtio_pci', 'virtio_net']);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const proxy = new ProxyProcess(work, [], 'qemu-net-backend-restart');
    const tp1 = backend(work, 'be1', be, false);
    let tp2: Testpmd | undefined;
    let q: Peer | undefined;
    try {
      await startForwarding(tp1, true);
      await proxy.starter(fe, be);
      q = qemu(work, initrd, `socket,id=c0,path=${fe},reconnect=1`);
      await q.waitForLog(/seq=3 ok/, 120_000);
      await tp1.peer.stop();
      tp2 = await restartBackendUntilPingsResume(work, be, q, lastPingOk(q), 3000);
      expect(await q.waitExit(150_000)).toBe(0);
      expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
      await tp2.quit();
    } finally {
      await q?.stop();
      await tp1.peer.stop();
      await tp2?.peer.stop();
      await proxy.stop();
    }
    const recs = proxy.records();
    const ends = recs.filter((r) => r.event === 'session-end');
    expect(ends[0]).toMatchObject({ session: 1, reason: 'the backend closed the connection' });
    expectNetHandshake(proxy, 2);
    // QEMU restored the ring bases from the used index: non-zero SET_VRING_BASE on the new session
    expect(proxy.messages().some((m) => m.session === 2 && m.request === 'SET_VRING_BASE' && !/num=0$/.test(String(m.summary)))).toBe(true);
  }, 240_000);
});
