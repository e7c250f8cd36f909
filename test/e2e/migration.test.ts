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
import { CLI, ProxyProcess, sessionEnd } from './harness/proxy';

const PINGS = 70;

/**
 * Boots the guest on a source QEMU through the proxy, starts a destination QEMU (`-incoming`)
 * whose vhost-user connection also goes through the proxy once `ready` shows in the source's
 * console, migrates over QMP and quits the paused source; resolves with both QEMUs' consoles once
 * the guest has powered off on the destination.
 */
async function migrateThroughProxy(work: string, proxy: ProxyProcess, initrd: string, append: string, device: string[] | ((qemu: 'src' | 'dst') => string[]), ready: RegExp): Promise<{ src: string; dst: string }> {
  const migSock = path.join(work, 'migrate.sock');
  const qmp = (name: string): string => path.join(work, `${name}-qmp.sock`);
  const deviceOf = typeof device === 'function' ? device : () => device;
  const qemuPeer = (name: 'src' | 'dst', extra: string[]): Peer =>
    new Peer('taskset', qemuArgs(initrd, append, [...deviceOf(name), '-qmp', `unix:${qmp(name)},server=on,wait=off`, ...extra]), { name, logFile: path.join(work, `${name}.log`), timeoutMs: 300_000 });
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

  it('a vhost-user-blk guest moves to a second QEMU: what it wrote before reads back after, through the destination\'s session', async () => {
    const work = tmpDir('migrate-blk');
    const token = `tok${Date.now()}`;
    const img = path.join(work, 'disk.raw');
    fs.writeFileSync(img, Buffer.alloc(0));
    fs.truncateSync(img, 64 << 20);
    // shared storage, as a migration between hosts has it: one qemu-storage-daemon exports the
    // image twice (an export serves one client at a time, and both QEMUs are connected at once)
    const sock = (n: string): string => path.join(work, `${n}.sock`);
    const qsd = new Peer('qemu-storage-daemon', [
      '--blockdev', `driver=file,node-name=file0,filename=${img}`,
      '--blockdev', 'driver=raw,node-name=disk0,file=file0',
      ...['a', 'b'].flatMap((n) => ['--export', `type=vhost-user-blk,id=e${n},node-name=disk0,addr.type=unix,addr.path=${sock(`qsd-${n}`)},writable=on,num-queues=1`]),
    ], { name: 'qsd', logFile: path.join(work, 'qsd.log') });
    const proxy = new ProxyProcess(work, ['--device', 'blk'], 'qemu-blk-migration');
    const initrd = buildInitramfs(work, `
tok=$(sed -n 's/.*lab.token=\\([^ ]*\\).*/\\1/p' /proc/cmdline)
i=0; until [ -b /dev/vda ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
[ -b /dev/vda ] || { echo "GUEST-RESULT: FAIL no /dev/vda"; exit 0; }
echo "before-migration $tok" > /tmp/b
dd if=/tmp/b of=/dev/vda bs=4096 seek=100 conv=sync,fsync 2>/dev/null || echo "GUEST-RESULT: FAIL write"
echo "GUEST-WROTE"
n=0; while [ $n -lt 60 ]; do
  echo "GUEST-READBACK $n: $(dd if=/dev/vda bs=4096 skip=100 count=1 iflag=direct 2>/dev/null | head -c 64 | tr -d '\\000')"
  n=$((n+1)); sleep 0.5
done
echo "after-migration $tok" > /tmp/a
dd if=/tmp/a of=/dev/vda bs=4096 seek=101 conv=sync,fsync 2>/dev/null || echo "GUEST-RESULT: FAIL write after"
echo "GUEST-AFTER: $(dd if=/dev/vda bs=4096 skip=101 count=1 iflag=direct 2>/dev/null | head -c 64 | tr -d '\\000')"
`, ['virtio_pci', 'virtio_blk']);
    let logs = { src: '', dst: '' };
    try {
      await waitForSocket(sock('qsd-a'), 20_000, qsd);
      await waitForSocket(sock('qsd-b'), 20_000, qsd);
      await proxy.startConfig([
        { name: 'src-blk', listen: sock('fe-a'), connect: sock('qsd-a') },
        { name: 'dst-blk', listen: sock('fe-b'), connect: sock('qsd-b') },
      ]);
      const device = (q: 'src' | 'dst'): string[] => ['-chardev', `socket,id=c0,path=${sock(q === 'src' ? 'fe-a' : 'fe-b')}`, '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1'];
      logs = await migrateThroughProxy(work, proxy, initrd, `lab.token=${token}`, device, /GUEST-WROTE/);
    } finally {
      await cleanUp(() => proxy.stop(), () => qsd.stop());
    }
    expect(logs.src + logs.dst).not.toMatch(/GUEST-RESULT: FAIL/);
    // reads done by the guest after it moved: on the destination's console, through its session
    const readsAfter = [...logs.dst.matchAll(/GUEST-READBACK \d+: (.*)/g)].map((m) => m[1].trim());
    expect(readsAfter.length, logs.dst.slice(-2000)).toBeGreaterThan(0);
    expect(new Set(readsAfter)).toEqual(new Set([`before-migration ${token}`]));
    expect(logs.dst).toContain(`GUEST-AFTER: after-migration ${token}`);
    // and what the guest wrote on the destination is in the image
    const fd = fs.openSync(img, 'r');
    const block = Buffer.alloc(64);
    fs.readSync(fd, block, 0, 64, 101 * 4096);
    fs.closeSync(fd);
    expect(block.toString('latin1')).toContain(`after-migration ${token}`);

    const msgs = proxy.messages();
    const [s1, s2] = [1, 2].map((id) => msgs.filter((m) => m.session === id));
    expect(s1.some((m) => m.request === 'SET_FEATURES' && /LOG_ALL/.test(m.summary ?? ''))).toBe(true);
    expect(s1.find((m) => m.request === 'SET_LOG_BASE' && m.dir === 'F>B')?.fdInfo?.[0]?.kind).toBe('memfd');
    const stoppedAt = s1.filter((m) => m.request === 'GET_VRING_BASE' && m.dir === 'B>F').map((m) => m.payload?.num);
    const startedAt = s2.filter((m) => m.request === 'SET_VRING_BASE' && m.dir === 'F>B').map((m) => m.payload?.num);
    expect(stoppedAt.length).toBeGreaterThanOrEqual(1);
    expect(startedAt.at(-1)).toBe(stoppedAt.at(-1));
    expect(sessionEnd(proxy, 2).vrings.find((v) => v.vring === 0)?.kicks ?? 0, 'the destination carried I/O').toBeGreaterThan(0);
    expect(msgs.filter((m) => m.findings)).toEqual([]);
    const info = execFileSync(process.execPath, [CLI, 'info', proxy.recordFile], { encoding: 'utf8' });
    expect(info).toContain('migration: session 1 (source) → session 2 (destination)');
    expect(info).toContain(`vring 0: stopped at ${stoppedAt.at(-1)}, resumed from ${stoppedAt.at(-1)} (match)`);
    // QEMU 7.2 vhost-user-blk kicks each ring between SET_VRING_KICK and SET_VRING_ENABLE when it
    // starts the device (measured: 0.3 ms before the enable, on the source's every start). qsd
    // takes it; the rule warns because some back-ends drop it. Nothing about the migration is flagged.
    const findings = execFileSync(process.execPath, [CLI, 'check', '--json', proxy.recordFile], { encoding: 'utf8' })
      .split('\n').filter(Boolean).map((l) => JSON.parse(l) as { id: string; severity: string; session: number });
    expect(findings.filter((f) => f.id !== 'VU010'), JSON.stringify(findings)).toEqual([]);
    expect(findings.every((f) => f.severity === 'warning')).toBe(true);
  }, 400_000);
});
