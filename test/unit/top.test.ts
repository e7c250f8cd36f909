/** `vhostscope top`'s model, screen and keys (src/cli/top-command.ts), on crafted samples. */
import { describe, expect, it } from 'vitest';
import type { LiveSession } from '../../src/control/live-requests';
import { onKey, renderTop, sortRows, topRows, type TopSample } from '../../src/views/top';
import type { DaemonStatus } from '../../src/events/status';
import type { RelayStats } from '../../src/native';
import type { SessionStatus } from '../../src/events/status';

function session(id: number, kicks: number, calls: number): SessionStatus {
  return {
    session: id,
    frontend: 'listen',
    channels: ['main'],
    messages: { 'F>B': 10, 'B>F': 9 },
    fdsForwarded: 4,
    backpressure: { pauses: 0, pausedNow: 0 },
    features: {},
    relayPairs: [],
    ringStates: [
      { vring: 0, started: true, enabled: true },
      { vring: 1, started: true, enabled: false },
      { vring: 2, started: false, enabled: false },
    ],
    vrings: [
      { vring: 0, kicks: 1, calls: 0, errs: 0, kickRate: 0, callRate: 0 },
      { vring: 1, kicks, calls, errs: 0, kickRate: 0, callRate: 0, latencyUs: { count: 3, p50: 20, p90: 30, p99: 40, p999: 40, max: 40 } },
    ],
  };
}
function live(id: number, done: number, p99: number, outstanding: number): LiveSession {
  return {
    session: id,
    device: 'blk',
    rings: true,
    outstanding,
    ...(outstanding ? { oldestUs: 2500 } : {}),
    peers: { listen: { pid: 10 + id, uid: 0, exe: '/usr/bin/qemu-system-x86_64' }, connect: { pid: 20 + id, uid: 0, exe: '/usr/bin/qemu-storage-daemon' } },
    operations: [{ vring: 0, op: 'read ≤4K', count: done, p50Us: 30, p99Us: p99, maxUs: p99 * 2 }],
  };
}
function sample(atMs: number, sessions: SessionStatus[], requests: LiveSession[]): TopSample {
  // relay transit: by the second sample 100 more in [2, 4) µs and 2 in [64, 128) µs
  const transitBuckets = new Array(40).fill(0);
  if (atMs > 0) {
    transitBuckets[11] = 100;
    transitBuckets[16] = 2;
  }
  const status: DaemonStatus = {
    pid: 1,
    listen: '/run/fe.sock',
    connect: '/run/be.sock',
    uptimeS: 5,
    interpose: true,
    pendingConnects: 0,
    sessions,
    rules: [],
    relay: { transitBuckets, transitSumNs: atMs > 0 ? 100 * 3000 + 2 * 100_000 : 0 } as unknown as RelayStats,
  };
  return { atMs, status, requests };
}

describe('top', () => {
  const prev = sample(0, [session(1, 100, 100), session(2, 0, 0)], [live(1, 100, 80, 0), live(2, 0, 0, 0)]);
  const cur = sample(2000, [session(1, 300, 300), session(2, 50, 50)], [live(1, 300, 80, 0), live(2, 10, 900, 3)]);

  it('turns two samples into per-second rates, peers and the busiest operation', () => {
    const [one, two] = topRows(cur, prev);
    expect(one).toMatchObject({
      session: 1,
      device: 'blk',
      frontend: 'qemu-system-x86_64(11)',
      backend: 'qemu-storage-daemon(21)',
      messages: 19,
      kickRate: 100,
      callRate: 100,
      reqRate: 100,
      p99Us: 80,
    });
    expect(two).toMatchObject({ session: 2, reqRate: 5, outstanding: 3, oldestUs: 2500, p99Us: 900 });
  });

  it('sorts by rate, p99, outstanding or id', () => {
    const rows = topRows(cur, prev);
    expect(sortRows(rows, 'rate').map((r) => r.session)).toEqual([1, 2]);
    expect(sortRows(rows, 'p99').map((r) => r.session)).toEqual([2, 1]);
    expect(sortRows(rows, 'outstanding').map((r) => r.session)).toEqual([2, 1]);
  });

  it('draws a row per session and, for the picked one, its vrings and operations', () => {
    const screen = renderTop(cur, prev, { sort: 'rate', picked: 2, detail: true }, 200).join('\n');
    expect(screen).toMatch(/^ +1 blk +qemu-system-x86_64\(11\) +qemu-storage-daemon\(21\) +19 +100\.0 +100\.0 +100\.0 +0 +- +30\.0µs +80\.0µs$/m);
    expect(screen).toMatch(/^> +2 blk .* +5\.0 +3 +2\.50ms +30\.0µs +900\.0µs$/m);
    expect(screen).toMatch(/session 2: messages F>B 10 B>F 9/);
    // each ring's spec state next to its notifications; a ring with none still listed
    expect(screen).toMatch(/^ +0 started, enabled +1 +0 +0  -$/m);
    expect(screen).toMatch(/^ +1 started, disabled +\d+ +\d+ +0  20\.0µs \/ 40\.0µs$/m);
    expect(screen).toMatch(/^ +2 stopped, disabled +0 +0 +0  -$/m);
    expect(screen).toMatch(/^ +0 read ≤4K +10 +30\.0µs +900\.0µs +1\.80ms$/m);
    expect(screen).toMatch(/outstanding: 3, oldest 2\.50ms/);
    // the relay's own time over the interval, apart from the requests'
    expect(screen).toMatch(/relay's own time \(wake-up → forwarding write issued\): p50 < 4\.1µs p99 < 131\.1µs over 102/);
  });

  it('moves the pick with the arrows, cycles the sort with s, toggles details with Enter, quits with q', () => {
    const rows = sortRows(topRows(cur, prev), 'rate');
    let s = onKey('\u001b[B', { sort: 'rate', detail: false }, rows);
    expect(s).toMatchObject({ picked: 1 });
    s = onKey('j', s as never, rows);
    expect(s).toMatchObject({ picked: 2 });
    s = onKey('j', s as never, rows);
    expect(s).toMatchObject({ picked: 2 }); // stays on the last
    s = onKey('s', s as never, rows);
    expect(s).toMatchObject({ sort: 'p99' });
    s = onKey('\r', s as never, rows);
    expect(s).toMatchObject({ detail: true, picked: 2 });
    expect(onKey('q', s as never, rows)).toBe('quit');
  });
});
