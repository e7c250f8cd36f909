/** `vhostscope stats`: per-vring figures and the kick→call histogram, from a recording. */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { requestLatency } from '../../src/analysis/request-latency';
import { statsJson, statsText } from '../../src/views/stats';
import { readRecording } from '../../src/recording/reader';
import { Recorder } from '../../src/recording/recorder';
import { tmpDir } from '../helpers';

describe('stats', () => {
  it('counts per vring and bins kick→call latencies', async () => {
    const file = path.join(tmpDir('stats'), 's.vhsrec');
    const rec = new Recorder(file);
    const t0 = 1_000_000_000n;
    rec.onEvent({ type: 'session-start', ts: t0, session: 1, listenPath: '/l', connectPath: '/c', frontend: 'auto', interpose: true, peers: {} });
    // vring 1: 100 kicks each answered by a call 20 µs later (10 of them 300 µs later)
    for (let i = 0; i < 100; i++) {
      const k = t0 + BigInt(i) * 1_000_000n;
      rec.onEvent({ type: 'notification', ts: k, session: 1, vring: 1, kind: 'kick', count: 1 });
      rec.onEvent({ type: 'notification', ts: k + (i % 10 === 9 ? 300_000n : 20_000n), session: 1, vring: 1, kind: 'call', count: 1 });
    }
    rec.onEvent({ type: 'notification', ts: t0 + 5n, session: 1, vring: 0, kind: 'err', count: 1 });
    // vring 2: a kick, then a call after an idle gap of 2 s: not a latency
    rec.onEvent({ type: 'notification', ts: t0 + 10n, session: 1, vring: 2, kind: 'kick', count: 1 });
    rec.onEvent({ type: 'notification', ts: t0 + 2_000_000_010n, session: 1, vring: 2, kind: 'call', count: 1 });
    rec.onEvent({
      type: 'session-end',
      ts: t0 + 1_000_000_000n,
      session: 1,
      reason: 'end',
      messages: { 'F>B': 0, 'B>F': 0 },
      fdsForwarded: 0,
      vrings: [],
      relayPairs: [],
    });
    await rec.close();
    const text = statsText(file).join('\n');
    expect(text).toMatch(/vring 0: kicks 0 \(0\.0\/s\) calls 0 \(0\.0\/s\) errs 1/);
    expect(text).toMatch(
      /vring 1: kicks 100 \(100\.0\/s\) calls 100 \(100\.0\/s\) errs 0 kick→next call µs p50 20\.\d+ p90 20\.\d+ p99 (299|300)\.\d+ p99\.9 (299|300)\.\d+ max 300(\.\d+)? \(n=100\)/,
    );
    expect(text).toMatch(/16µs-32µs \|#{40} 90/);
    expect(text).toMatch(/vring 2: kicks 1 \([\d.]+\/s\) calls 1 \([\d.]+\/s\) errs 0 \(1 kicks unpaired: the next call came after an idle gap\)$/m);
    expect(text).toContain('requests: not measured (record with proxy --rings for per-request latency)');
    expect(text).toMatch(/notifications \(method: kick → next call/);
    expect(text).toMatch(/256µs-512µs \|#{4} 10/);
  });
});

describe('per-request latency of real recordings (recordings/, made through vhostscope --rings=headers)', () => {
  const REC = path.resolve(__dirname, '..', '..', 'recordings');

  it('blk (QEMU + qemu-storage-daemon): every read and write the kicks listed completed, none paired across the idle gap', () => {
    const [s] = statsJson(path.join(REC, 'qemu-blk-qsd.vhsrec')).sessions;
    const req = s.requests!;
    const count = (op: string): number => req.operations.filter((o) => o.op.startsWith(op)).reduce((n, o) => n + o.count, 0);
    // the recording's kick snapshots list 23 reads and 3 writes (show --rings)
    expect([count('read'), count('write')]).toEqual([23, 3]);
    expect([req.unmatched, req.abandoned, req.outstanding.length]).toEqual([0, 0, 0]);
    // the kick→next-call figure used to report p99 = 4 s here (an idle gap taken for a request)
    const v0 = s.notifications.find((v) => v.vring === 0)!;
    expect(v0.latencyUs!.max).toBeLessThan(1e6);
    expect(v0.unpaired).toBe(1);
    // SeaBIOS reads the boot sector polling: no snapshot for seconds until the device is set up
    // again; that request is reported with a bracket as wide as its figure
    for (const r of requestLatency(readRecording(path.join(REC, 'qemu-blk-qsd.vhsrec')).records)[0].requests) {
      if (r.latencyNs > 1e9) expect(r.uncertaintyNs + r.completionUncertaintyNs).toBeGreaterThanOrEqual(0.9 * r.latencyNs);
    }
  });

  it('fs (QEMU + virtiofsd): FUSE requests by opcode; net (QEMU + testpmd): rx fills and tx by queue', () => {
    const fsReq = statsJson(path.join(REC, 'qemu-fs-virtiofsd.vhsrec')).sessions[0].requests!;
    expect(fsReq.operations.find((o) => o.vring === 1 && o.op === 'FUSE READ')?.count).toBe(52);
    expect(fsReq.operations.find((o) => o.vring === 0)?.op).toBe('FUSE FORGET');
    const net = statsJson(path.join(REC, 'qemu-net-testpmd.vhsrec')).sessions[0];
    expect(net.requests!.operations.map((o) => `${o.vring} ${o.op}`)).toEqual(['0 rx fill', '1 tx']);
    // net rx: a kick offers buffers, so it is never paired with the next call
    expect(net.notifications.find((v) => v.vring === 0)?.latencyUs).toBeUndefined();
  });
});
