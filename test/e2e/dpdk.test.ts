/**
 * End to end, no VM: DPDK testpmd virtio-user (frontend) <-> vhostscope proxy <-> testpmd vhost
 * (backend), with exact packet-count checks on both sides and assertions on the proxy's log.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDpdkScenario, type DpdkMode, type Roles } from '../../src/demo/dpdk-scenario';
import { tmpDir } from '../helpers';
import { ProxyProcess, sessionEnd, type LogRecord } from './harness/proxy';
import { checkRecording } from './harness/proxy';
import { readRecording, recordingEvents } from '../../src/recording/reader';

const cases: { name: string; mode: DpdkMode; roles: Roles; vuArgs?: string; noInterpose?: boolean; rings?: boolean }[] = [
  { name: 'txonly', mode: 'txonly', roles: 'backend-server' },
  { name: 'rxonly', mode: 'rxonly', roles: 'backend-server' },
  { name: 'loop', mode: 'loop', roles: 'backend-server' },
  { name: 'txonly, frontend as server', mode: 'txonly', roles: 'frontend-server' },
  { name: 'loop, packed ring, --rings', mode: 'loop', roles: 'backend-server', vuArgs: ',packed_vq=1', rings: true },
  { name: 'loop, --no-interpose', mode: 'loop', roles: 'backend-server', noInterpose: true },
];

const find = (msgs: LogRecord[], request: string, reply = false): LogRecord | undefined =>
  msgs.find(
    (m) =>
      m.request === request &&
      String(m.flags).includes('REPLY') === reply &&
      !(reply && String(m.flags).includes('NEED_REPLY') && !/\|REPLY/.test(String(m.flags))),
  );

describe.each(cases)('DPDK virtio-user <-> vhost through the proxy: $name', (c) => {
  it('carries every packet, and the log shows the decoded handshake', async () => {
    const work = tmpDir(`dpdk-${c.mode}`);
    const proxy = new ProxyProcess(
      work,
      [...(c.noInterpose ? ['--no-interpose'] : []), ...(c.rings ? ['--rings=headers', '--device', 'net'] : [])],
      c.name === 'txonly' ? 'dpdk-net-txonly' : undefined,
    );
    const listenSock = path.join(work, c.roles === 'backend-server' ? 'fe.sock' : 'be.sock');
    try {
      const r = await runDpdkScenario({ workDir: work, mode: c.mode, roles: c.roles, vuArgs: c.vuArgs, durationS: 2, proxy: proxy.starter });
      expect(r.problems).toEqual([]);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
    expect(fs.existsSync(listenSock)).toBe(false); // removed on SIGTERM
    const recs = proxy.records();
    const msgs = proxy.messages();
    // roles come from who spoke first: virtio-user's SET_OWNER goes F>B whichever side listens
    expect(msgs[0]).toMatchObject({ request: 'SET_OWNER', dir: 'F>B', session: 1 });
    const pf = msgs.find((m) => m.request === 'GET_PROTOCOL_FEATURES' && m.dir === 'B>F')!;
    expect(recs.find((r) => r.event === 'session-start')?.interpose).toBe(!c.noInterpose);
    if (c.noInterpose) {
      expect(pf.summary).toBe('0x10cbf (MQ|LOG_SHMFD|RARP|REPLY_ACK|MTU|BACKEND_REQ|CRYPTO_SESSION|BACKEND_SEND_FD|HOST_NOTIFIER|STATUS)');
      expect(msgs.some((m) => m.interposed)).toBe(false);
    } else {
      // HOST_NOTIFIER would let the guest ring a doorbell page past the interposed eventfd
      expect(pf.summary).toBe('0x104bf (MQ|LOG_SHMFD|RARP|REPLY_ACK|MTU|BACKEND_REQ|CRYPTO_SESSION|BACKEND_SEND_FD|STATUS)');
      expect(pf.masked).toEqual(['HOST_NOTIFIER']);
      expect(msgs.filter((m) => m.interposed).map((m) => m.request)).toEqual(['SET_VRING_CALL', 'SET_VRING_CALL', 'SET_VRING_KICK', 'SET_VRING_KICK']);
    }
    const mem = msgs.find((m) => m.request === 'SET_MEM_TABLE' && m.dir === 'F>B')!;
    expect(mem.fdInfo).toEqual([expect.objectContaining({ kind: 'memfd', size: 256 << 20 })]);
    expect(mem.summary).toMatch(/^nregions=1 \[gpa=0x[0-9a-f]+ size=256MiB /);
    expect(msgs.filter((m) => m.request === 'SET_VRING_KICK' && m.fds?.[0]?.startsWith('eventfd'))).toHaveLength(2);
    const feats = msgs.find((m) => m.request === 'SET_FEATURES')!;
    const packed = ((feats.payload?.names as string[]) ?? []).includes('RING_PACKED');
    expect(packed).toBe(c.vuArgs === ',packed_vq=1');
    // every reply the rule predicted arrived, and nothing was flagged on real peers
    expect(msgs.filter((m) => m.findings)).toEqual([]);
    expect(msgs.filter((m) => m.replyExpected).length).toBe(msgs.filter((m) => m.dir === 'B>F').length);
    expect(find(msgs, 'GET_VRING_BASE', true)).toBeDefined();
    const end = recs.find((r) => r.event === 'session-end')!;
    expect(end.reason).toBe('the frontend closed the connection');
    expect(end.fdsForwarded).toBe(5);
    // DPDK polls: virtio-user kicks each ring about once at start and the vhost backend, polling
    // too, never calls. Report what it did; the relay must have lost nothing.
    const { vrings, relayPairs } = sessionEnd(proxy);
    console.log(`DPDK ${c.name}: notifications per vring ${JSON.stringify(vrings.map((v) => ({ vring: v.vring, kicks: v.kicks, calls: v.calls })))}`);
    for (const p of relayPairs) expect(p.written, `${p.kind} ${p.vring}`).toBe(p.read);
    expect(checkRecording(proxy).messages).toBeGreaterThan(20);
    if (c.rings) {
      // packed ring: virtio-user's first rx kick offers its receive buffers (64 per snapshot,
      // the rest at the next); testpmd polls, so the tx ring is kicked once, before traffic
      const rings = recordingEvents(readRecording(proxy.recordFile).records).filter((e) => e.type === 'ring');
      expect(rings.length).toBeGreaterThanOrEqual(4);
      // recorded, not logged: a snapshot per kick and call would flood the log (--log-rings asks for it)
      expect(recs.some((r) => r.event === 'ring')).toBe(false);
      for (const e of rings) if (e.type === 'ring') expect([e.snapshot.packed, e.snapshot.error]).toEqual([true, undefined]);
      const rxKick = rings.find((e) => e.type === 'ring' && e.vring === 0 && e.snapshot.kind === 'kick');
      expect(rxKick?.type === 'ring' && rxKick.snapshot.entries.length).toBe(64);
      expect(rxKick?.type === 'ring' && rxKick.snapshot.entries.every((x) => x.descs.length === 1 && (x.descs[0].flags & 0x82) === 0x82)).toBe(true); // device-writable, available
    }
    if (!c.noInterpose) {
      expect(relayPairs).toHaveLength(4);
      expect(vrings.reduce((n, v) => n + v.kicks, 0)).toBeGreaterThan(0);
    }
  }, 120_000);
});
