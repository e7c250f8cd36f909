/** The bounded latency histogram (src/util/latency-histogram.ts) and the kick→call figures built on it. */
import { describe, expect, it } from 'vitest';
import { LatencyHistogram } from '../../src/util/latency-histogram';
import { NotificationStats } from '../../src/events/notification-stats';

function exactPercentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
}

describe('LatencyHistogram', () => {
  it('gives every percentile within 1/32 of the exact value, from nanoseconds to minutes', () => {
    let seed = 7;
    const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    const values = Array.from({ length: 20_000 }, () => Math.floor(2 ** (rnd() * 37)));
    const h = new LatencyHistogram();
    for (const v of values) h.record(v);
    const sorted = [...values].sort((a, b) => a - b);
    expect(h.count).toBe(values.length);
    expect(h.min).toBe(sorted[0]);
    expect(h.max).toBe(sorted[sorted.length - 1]);
    for (const p of [1, 10, 50, 90, 99, 99.9, 100]) {
      const exact = exactPercentile(sorted, p);
      expect(Math.abs(h.percentile(p) - exact)).toBeLessThanOrEqual(Math.max(1, exact / 32));
    }
  });

  it('is exact below 32 ns, clamps to the recorded range and keeps values beyond its top', () => {
    const h = new LatencyHistogram();
    for (const v of [3, 3, 3, 17]) h.record(v);
    expect(h.percentile(50)).toBe(3);
    expect(h.percentile(100)).toBe(17);
    const big = new LatencyHistogram();
    big.record(2 ** 50);
    big.record(-5);
    expect(big.count).toBe(2);
    expect(big.min).toBe(0);
    expect(big.percentile(100)).toBe(2 ** 50);
    expect(new LatencyHistogram().percentile(50)).toBe(0);
  });
});

describe('NotificationStats', () => {
  it('pairs the first kick after a call with the next call on the same vring', () => {
    const s = new NotificationStats(0n);
    s.record(0, 'kick', 1_000n);
    s.record(0, 'kick', 2_000n); // not a new request start: the first kick is still pending
    s.record(0, 'call', 11_000n); // 10 µs
    s.record(0, 'call', 12_000n); // no kick pending: not a latency
    s.record(0, 'kick', 20_000n);
    s.record(0, 'call', 40_000n); // 20 µs
    const [v] = s.snapshot(1_000_000_000n);
    expect(v).toMatchObject({ vring: 0, kicks: 3, calls: 3 });
    expect(v.latencyUs?.count).toBe(2);
    expect(v.latencyUs?.p50).toBeCloseTo(10, 0);
    expect(v.latencyUs?.max).toBe(20);
  });
});
