/** `vhostscope stats`: per-vring figures and the kick→call histogram, from a recording. */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { statsText } from '../../src/cli/stats-command';
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
    rec.onEvent({ type: 'session-end', ts: t0 + 1_000_000_000n, session: 1, reason: 'end', messages: { 'F>B': 0, 'B>F': 0 }, fdsForwarded: 0, vrings: [], relayPairs: [] });
    await rec.close();
    const text = statsText(file).join('\n');
    expect(text).toMatch(/vring 0: kicks 0 \(0\.0\/s\) calls 0 \(0\.0\/s\) errs 1/);
    expect(text).toMatch(/vring 1: kicks 100 \(100\.0\/s\) calls 100 \(100\.0\/s\) errs 0 kick→call µs p50 20\.\d+ p90 20\.\d+ p99 300\.\d+ p99\.9 300\.\d+ max 300\.\d+ \(n=100\)/);
    expect(text).toMatch(/16µs-32µs \|#{40} 90/);
    expect(text).toMatch(/256µs-512µs \|#{4} 10/);
  });
});
