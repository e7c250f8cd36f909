/**
 * Fault rules against real peers: the proxy breaks or bends a real handshake and the peers
 * behave as the rule says, the log and the recording show it, and `check` names the cause.
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { buildInitramfs } from '../../lab/guest';
import { runDpdkScenario } from '../../src/demo/dpdk-scenario';
import { sleep, type Peer } from '../../src/demo/process';
import type { Testpmd } from '../../src/demo/testpmd';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import { tmpDir } from '../helpers';
import { CLI, ProxyProcess, type LogRecord } from './harness/proxy';
import { backend, guestBody, lastPingOk, qemu, restartBackendUntilPingsResume, startForwarding } from './harness/qemu-net';
import { VVU_ALLOWED } from '../../src/faults';

const run = promisify(execFile);

/** `vhostscope check FILE`: its output and exit code. */
async function check(file: string): Promise<{ out: string; code: number }> {
  try {
    const r = await run(process.execPath, [CLI, 'check', file]);
    return { out: r.stdout, code: 0 };
  } catch (err) {
    const e = err as { stdout: string; code: number };
    return { out: e.stdout, code: e.code };
  }
}

const faultsOf = (proxy: ProxyProcess): LogRecord[] => proxy.records().filter((r) => r.event === 'fault');

describe('fault rules with real peers', () => {
  it('drop SET_VRING_KICK: DPDK never starts the queue, no packet crosses, and check names the cause', async () => {
    const work = tmpDir('fault-drop');
    const proxy = new ProxyProcess(work, ['--fault', 'drop SET_VRING_KICK vring=0']);
    let r: Awaited<ReturnType<typeof runDpdkScenario>>;
    try {
      r = await runDpdkScenario({ workDir: work, mode: 'txonly', durationS: 1, expectReady: false, notReadyWaitMs: 3000, proxy: proxy.starter });
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
    expect(r.ready).toBe(false);
    expect(r.backend.rx).toBe(0); // traffic stopped: the backend never looked at the ring
    expect(r.problems).toContain('the backend never became ready');
    const kicks = proxy.messages().filter((m) => m.request === 'SET_VRING_KICK');
    expect(kicks.map((k) => [k.payload?.index, k.undelivered ?? 'forwarded'])).toEqual([
      [0, 'dropped'],
      [1, 'forwarded'],
    ]);
    expect(faultsOf(proxy).map((f) => f.detail)).toEqual(['F>B SET_VRING_KICK(vring 0) dropped with its 1 fd(s)']);
    const c = await check(proxy.recordFile);
    expect(c.code).toBe(1);
    expect(c.out).toContain('VU018 vring-without-kick');
    expect(c.out).toContain(
      "vring 0 was set up (SET_VRING_ADDR) but had no kick fd when the driver set DRIVER_OK: SET_VRING_KICK for vring 0 was dropped by the proxy's fault rule 1 (drop SET_VRING_KICK vring=0)",
    );
  }, 120_000);

  it('mask REPLY_ACK (offer and ack): DPDK completes the handshake without NEED_REPLY and every packet crosses', async () => {
    const work = tmpDir('fault-mask');
    const proxy = new ProxyProcess(work, ['--fault', 'mask protocol:REPLY_ACK']);
    try {
      const r = await runDpdkScenario({ workDir: work, mode: 'loop', durationS: 1, proxy: proxy.starter });
      expect(r.problems).toEqual([]);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
    const msgs = proxy.messages();
    const offer = msgs.find((m) => m.request === 'GET_PROTOCOL_FEATURES' && m.dir === 'B>F')!;
    expect(offer.masked).toEqual(['REPLY_ACK', 'HOST_NOTIFIER']);
    expect(offer.payload?.names).not.toContain('REPLY_ACK');
    const set = msgs.find((m) => m.request === 'SET_PROTOCOL_FEATURES')!;
    expect(set.payload?.names).not.toContain('REPLY_ACK');
    expect(msgs.filter((m) => String(m.flags).includes('NEED_REPLY'))).toEqual([]); // virtio-user asks for no acks now
    expect(msgs.filter((m) => m.findings)).toEqual([]);
    expect(faultsOf(proxy).map((f) => f.action)).toEqual(['mask']);
    // the recording keeps what the backend really offered next to what the frontend got
    const rec = recordingEvents(readRecording(proxy.recordFile).records).find(
      (e) => e.type === 'message' && e.decoded.name === 'GET_PROTOCOL_FEATURES' && e.decoded.reply,
    );
    expect(rec?.type === 'message' && rec.received!.readBigUInt64LE(12) & 8n).toBe(8n);
  }, 120_000);

  it('hold SET_VRING_ENABLE(0) while injecting a kick on vring 0: the recording shows the kick first (rust-vmm/vhost#247)', async () => {
    const work = tmpDir('fault-hold');
    const proxy = new ProxyProcess(work, ['--fault', 'hold SET_VRING_ENABLE vring=0 nth=1 until=kick:0', '--fault', 'inject kick:0 after=SET_VRING_ENABLE:0']);
    try {
      const r = await runDpdkScenario({ workDir: work, mode: 'loop', durationS: 1, proxy: proxy.starter });
      expect(r.problems).toEqual([]); // testpmd's vhost polls: it shrugs the early kick off
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
    const events = recordingEvents(readRecording(proxy.recordFile).records, { notifications: true });
    const trail = events
      .filter(
        (e) =>
          (e.type === 'message' && e.decoded.name === 'SET_VRING_ENABLE' && (e.decoded.payload as { num: number }).num === 1) ||
          e.type === 'fault' ||
          (e.type === 'notification' && e.injected),
      )
      .map((e) =>
        e.type === 'fault'
          ? `fault ${e.action}`
          : e.type === 'notification'
            ? `injected ${e.kind} vring ${e.vring}`
            : e.type === 'message'
              ? `SET_VRING_ENABLE(${(e.decoded.payload as { index: number }).index}, 1)${e.heldNs !== undefined ? ' held' : ''}`
              : e.type,
      );
    expect(trail).toEqual(['fault hold', 'fault inject', 'injected kick vring 0', 'fault hold', 'SET_VRING_ENABLE(0, 1) held', 'SET_VRING_ENABLE(1, 1)']);
    const info = (await run(process.execPath, [CLI, 'info', proxy.recordFile])).stdout;
    expect(info).toContain(
      'fault rules applied: 1 (hold SET_VRING_ENABLE vring=0 nth=1 until=kick:0): hold×2; 2 (inject kick:0 after=SET_VRING_ENABLE:0): inject×1',
    );
    const c = await check(proxy.recordFile);
    expect(c.out).toMatch(/VU010 kick-before-enable \(warning\) at kick vring 0: vring 0 kicked before SET_VRING_ENABLE\(0, 1\)/);
  }, 120_000);

  it('preset virtio-vhost-user: QEMU talks to testpmd through only the 15 requests that device passes, and the guest pings', async () => {
    const work = tmpDir('fault-vvu');
    const initrd = buildInitramfs(work, guestBody(5, 5), ['virtio_pci', 'virtio_net']);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const proxy = new ProxyProcess(work, ['--fault', 'preset virtio-vhost-user']);
    const tp = backend(work, 'be', be, false);
    let q: Peer | undefined;
    try {
      await startForwarding(tp, true);
      await proxy.starter(fe, be);
      q = qemu(work, initrd, `socket,id=c0,path=${fe}`);
      expect(await q.waitExit(150_000)).toBe(0);
      expect(q.log()).toMatch(/GUEST-RESULT: PASS/);
      await tp.quit();
    } finally {
      await q?.stop();
      await tp.peer.stop();
      await proxy.stop();
    }
    const msgs = proxy.messages();
    // what QEMU was offered: the device's MQ|REPLY_ACK (HOST_NOTIFIER would be masked anyway)
    expect(msgs.find((m) => m.request === 'GET_PROTOCOL_FEATURES' && m.dir === 'B>F')?.payload?.names).toEqual(['MQ', 'REPLY_ACK']);
    const delivered = msgs.filter((m) => m.dir === 'F>B' && !m.undelivered).map((m) => m.request as string);
    expect(delivered.filter((r) => !VVU_ALLOWED.includes(r))).toEqual([]);
    const filtered = faultsOf(proxy)
      .filter((f) => f.action === 'filter')
      .map((f) => String(f.detail).replace(/\(vring \d+\)/, ''));
    expect(filtered.length).toBeGreaterThan(0); // QEMU still sends SET_VRING_ERR, which the device would refuse
    expect(new Set(filtered)).toEqual(new Set(['F>B SET_VRING_ERR not forwarded (no reply due)']));
  }, 200_000);

  it('disconnect the backend after DRIVER_OK, restart testpmd: QEMU (reconnect=1) renegotiates through the proxy and pings resume', async () => {
    const work = tmpDir('fault-disc');
    const initrd = buildInitramfs(work, guestBody(60, 10), ['virtio_pci', 'virtio_net']);
    const fe = path.join(work, 'fe.sock');
    const be = path.join(work, 'be.sock');
    const proxy = new ProxyProcess(work, ['--fault', 'disconnect backend after=SET_STATUS:DRIVER_OK+8000 limit=1']);
    const tp1 = backend(work, 'be1', be, false);
    let tp2: Testpmd | undefined;
    let q: Peer | undefined;
    let cutAt = -1;
    try {
      await startForwarding(tp1, true);
      await proxy.starter(fe, be);
      q = qemu(work, initrd, `socket,id=c0,path=${fe},reconnect=1`);
      const deadline = Date.now() + 150_000;
      while (!proxy.records().some((r) => r.event === 'session-end')) {
        if (Date.now() > deadline || !q.alive) throw new Error('the disconnect rule never fired');
        await sleep(100);
      }
      cutAt = lastPingOk(q);
      await tp1.peer.stop(); // testpmd restarts, as after a crash
      tp2 = await restartBackendUntilPingsResume(work, be, q, cutAt);
      expect(await q.waitExit(150_000)).toBe(0);
      expect(cutAt).toBeGreaterThanOrEqual(0); // pings were answered before the cut, too
      await tp2.quit();
    } finally {
      await q?.stop();
      await tp1.peer.stop();
      await tp2?.peer.stop();
      await proxy.stop();
    }
    const ends = proxy.records().filter((r) => r.event === 'session-end');
    expect(ends[0]).toMatchObject({
      session: 1,
      by: 'proxy',
      reason: 'fault rule 1 (disconnect backend after=SET_STATUS:DRIVER_OK+8000 limit=1): disconnected the backend 8000 ms after F>B SET_STATUS',
    });
    const faults = faultsOf(proxy);
    expect(faults).toHaveLength(1); // limit=1: the renegotiated session was left alone
    // the last session is with the new testpmd: a full handshake up to DRIVER_OK, and traffic
    const last = Math.max(...proxy.messages().map((m) => m.session as number));
    const msgs = proxy.messages().filter((m) => m.session === last);
    expect(msgs[0]).toMatchObject({ request: 'GET_FEATURES', dir: 'F>B' });
    expect(msgs.some((m) => m.request === 'SET_STATUS' && /DRIVER_OK/.test(String(m.summary)))).toBe(true);
    expect(tp2!.peer.log()).toMatch(/ICMP/);
  }, 300_000);
});
