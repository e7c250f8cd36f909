import { describe, expect, it } from 'vitest';
import { relayTransit, transitLine } from '../../src/analysis/relay-transit';
import type { RecordingRecord, SessionEndRecord } from '../../src/recording/records';

const end = (session: number, relayPairs: SessionEndRecord['relayPairs']): RecordingRecord => ({
  type: 'session-end',
  ts: 1n,
  session,
  reason: 'frontend closed the connection',
  messages: { 'F>B': 0, 'B>F': 0 },
  fdsForwarded: 0,
  vrings: [],
  relayPairs,
  droppedNotifications: 0,
});

describe('relay transit from session ends', () => {
  it('folds the pairs of one vring slot (a call fd replaced by MSI-X churn) and bounds percentiles by the buckets', () => {
    const buckets = (at: Record<number, number>): number[] => Array.from({ length: Math.max(...Object.keys(at).map(Number)) + 1 }, (_x, i) => at[i] ?? 0);
    const t = relayTransit([
      end(3, [
        // 90 transits in [1024, 2048) ns and 10 in [8192, 16384): p50 ≤ 2048, p99 ≤ 16384
        { vring: 0, kind: 'call', read: 60, written: 60, transitBuckets: buckets({ 10: 50, 13: 5 }), transitSumNs: 50 * 1500 + 5 * 10_000 },
        { vring: 0, kind: 'call', read: 45, written: 45, transitBuckets: buckets({ 10: 40, 13: 5 }), transitSumNs: 40 * 1500 + 5 * 10_000 },
        { vring: 0, kind: 'kick', read: 5, written: 5, transitBuckets: buckets({ 9: 5 }), transitSumNs: 5 * 700 },
        { vring: 1, kind: 'kick', read: 0, written: 0 }, // never notified: no figure
      ]),
      end(4, [{ vring: 0, kind: 'kick', read: 1, written: 1 }]), // an older recording: no transits
    ]);
    expect([...t.keys()]).toEqual([3]);
    const [call, kick] = t.get(3)!;
    expect(call).toEqual({ vring: 0, kind: 'call', count: 100, meanNs: (90 * 1500 + 10 * 10_000) / 100, p50Ns: 2048, p99Ns: 16384, maxNs: 16384 });
    expect(kick).toMatchObject({ vring: 0, kind: 'kick', count: 5, p50Ns: 1024, p99Ns: 1024 });
    expect(transitLine(call)).toBe('vring 0 call n=100 mean 2.35 µs p50 ≤ 2.05 µs p99 ≤ 16.4 µs max ≤ 16.4 µs');
  });
});
