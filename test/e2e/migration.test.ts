/**
 * Live migration through vhostscope: a QEMU 7.2 (TCG) virtio-net guest pinging testpmd moves to
 * a second QEMU on the same machine (`-incoming unix:`, `migrate` over QMP). Both QEMUs'
 * vhost-user connections go through one vhostscope daemon to the same testpmd; the guest's
 * pings are counted across the switchover, and the recording holds both sessions: the source's
 * dirty logging (LOG_ALL, SET_LOG_BASE with its memfd) and stop, the destination's start.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildInitramfs, qemuArgs, vhostUserNetArgs } from '../../src/lab/guest';
import { Peer, sleep, waitForSocket } from '../../src/lab/process';
import { qmpCommand } from '../../src/lab/qmp';
import { cleanUp, tmpDir, until } from '../helpers';
import { backend, guestBody, startForwarding } from './harness/qemu-net';
import { CLI, ProxyProcess } from './harness/proxy';

const PINGS = 70;

/**
 * Boots the guest on a source QEMU through the proxy, starts a destination QEMU (`-incoming`)
 * whose vhost-user connection also goes through the proxy once `ready` shows in the source's
 * console, migrates over QMP and quits the paused source; resolves with both QEMUs' consoles once
 * the guest has powered off on the destination.
 */
async function migrateThroughProxy(work: string, proxy: ProxyProcess, initrd: string, append: string, device: string[], ready: RegExp): Promise<{ src: string; dst: string }> {
  const migSock = path.join(work, 'migrate.sock');
  const qmp = (name: string): string => path.join(work, `${name}-qmp.sock`);
  const qemuPeer = (name: string, extra: string[]): Peer =>
    new Peer('taskset', qemuArgs(initrd, append, [...device, '-qmp', `unix:${qmp(name)},server=on,wait=off`, ...extra]), { name, logFile: path.join(work, `${name}.log`), timeoutMs: 300_000 });
  let src: Peer | undefined;
  let dst: Peer | undefined;
  try {
    src = qemuPeer('src', []);
    await until(() => ready.test(src!.log()), 120_000, `${ready} on the source`);
    dst = qemuPeer('dst', ['-incoming', `unix:${migSock}`]);
    await waitForSocket(qmp('dst'), 30_000, dst);
    await waitForSocket(migSock, 30_000, dst); // QEMU listens for the migration stream
    await until(() => proxy.records().filter((r) => r.event === 'session-start').length === 2, 30_000, 'the destination\'s vhost-user connection');
    await qmpCommand(qmp('src'), 'migrate', { uri: `unix:${migSock}` });
    let status: { status?: string } = {};
    for (const end = Date.now() + 120_000; status.status !== 'completed' && status.status !== 'failed' && Date.now() < end; await sleep(500)) {
      status = (await qmpCommand(qmp('src'), 'query-migrate')) as typeof status;
    }
    expect(status.status, JSON.stringify(status)).toBe('completed');
    await qmpCommand(qmp('src'), 'quit').catch(() => undefined); // the source is paused for good
    expect(await dst.waitExit(200_000)).toBe(0);
    return { src: src.log(), dst: dst.log() };
  } finally {
    await cleanUp(() => src?.stop(), () => dst?.stop());
  }
}

describe('live migration through vhostscope', () => {
  it('a virtio-net guest moves to a second QEMU while it pings testpmd, both connections through one daemon', async () => {
    const work = tmpDir('migrate');
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const initrd = buildInitramfs(work, guestBody(PINGS, PINGS - 10), ['virtio_pci', 'virtio_net']);
    const tp = backend(work, 'be', be, false);
    const proxy = new ProxyProcess(work, ['--device', 'net'], 'qemu-net-migration');
    let dstLog = '';
    try {
      await startForwarding(tp, true);
      await proxy.starter(fe, be);
      dstLog = (await migrateThroughProxy(work, proxy, initrd, '', vhostUserNetArgs(`socket,id=c0,path=${fe}`), /seq=10 ok/)).dst;
    } finally {
      await cleanUp(() => proxy.stop(), () => tp.peer.stop());
    }
    // the guest kept pinging on the destination: the last pings, and the tally, are printed there
    const tally = /GUEST-PING: (\d+) sent, (\d+) replied/.exec(dstLog);
    expect(tally, dstLog.slice(-2000)).not.toBeNull();
    const [sent, replied] = [Number(tally![1]), Number(tally![2])];
    expect(sent).toBe(PINGS);
    expect(sent - replied, 'pings lost across the migration').toBeLessThanOrEqual(3);
    expect(dstLog).toMatch(/seq=\d+ ok/); // answered after the switchover, through the destination's session
    fs.writeFileSync(path.join(work, 'result.txt'), `sent ${sent} replied ${replied}\n`);

    const msgs = proxy.messages();
    const s1 = msgs.filter((m) => m.session === 1);
    const s2 = msgs.filter((m) => m.session === 2);
    // the source: dirty logging switched on (LOG_ALL acked), the log memfd handed over and acked
    expect(s1.some((m) => m.request === 'SET_FEATURES' && /LOG_ALL/.test(m.summary ?? ''))).toBe(true);
    const logBase = s1.find((m) => m.request === 'SET_LOG_BASE' && m.dir === 'F>B');
    expect(logBase?.fdInfo?.[0]?.kind).toBe('memfd');
    expect(s1.some((m) => m.request === 'SET_LOG_BASE' && m.dir === 'B>F')).toBe(true);
    // then stopped: GET_VRING_BASE of both rings answered
    expect(s1.filter((m) => m.request === 'GET_VRING_BASE' && m.dir === 'B>F').length).toBeGreaterThanOrEqual(2);
    // the destination took over: its rings started from where the source's stopped
    const stoppedAt = new Map(s1.filter((m) => m.request === 'GET_VRING_BASE' && m.dir === 'B>F').map((m) => [m.payload?.index, m.payload?.num]));
    const startedAt = s2.filter((m) => m.request === 'SET_VRING_BASE' && m.dir === 'F>B').map((m) => [m.payload?.index, m.payload?.num] as const);
    expect(startedAt.length).toBeGreaterThanOrEqual(2);
    for (const [vring, base] of startedAt.slice(-2)) expect(base, `vring ${vring}`).toBe(stoppedAt.get(vring));
    // the destination announced the guest: SEND_RARP from QEMU (or the guest's own announce)
    expect(s2.some((m) => m.request === 'SEND_RARP') || s2.some((m) => m.request === 'SET_FEATURES' && /GUEST_ANNOUNCE/.test(m.summary ?? ''))).toBe(true);
    expect(msgs.filter((m) => m.findings)).toEqual([]);
    // read back as one story, as a user asks for it
    const info = execFileSync(process.execPath, [CLI, 'info', proxy.recordFile], { encoding: 'utf8' });
    expect(info).toContain('migration: session 1 (source) → session 2 (destination)');
    for (const [vring, base] of startedAt.slice(-2)) expect(info).toContain(`vring ${vring}: stopped at ${base}, resumed from ${base} (match)`);
    expect(execFileSync(process.execPath, [CLI, 'check', proxy.recordFile], { encoding: 'utf8' })).toMatch(/^0 finding\(s\)/m);
  }, 400_000);
});
