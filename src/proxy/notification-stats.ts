/**
 * Per-vring notification statistics of one session: kick, call and err counts and rates,
 * and kick→call latency (from the first kick after a call to the next call on the same
 * vring) as a histogram with percentiles.
 */
import { LatencyHistogram } from './latency-histogram';

export type NotificationKind = 'kick' | 'call' | 'err';

export interface VringStats {
  vring: number;
  /** relayed notifications (eventfd reads; counts may be coalesced into one) */
  kicks: number;
  calls: number;
  errs: number;
  /** per second, over the window the figures cover */
  kickRate: number;
  callRate: number;
  /** kick→call latency in µs */
  latencyUs?: { count: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /** kick→call latency counts in power-of-two µs buckets [fromUs, toUs) (non-empty ones) */
  histogram?: { fromUs: number; toUs: number; count: number }[];
}

class VringCounter {
  kicks = 0;
  calls = 0;
  errs = 0;
  pendingKick: bigint | undefined;
  readonly hist = new LatencyHistogram();
  /** bucket i counts latencies in [2^i, 2^(i+1)) µs; bucket 0 also holds < 1 µs */
  readonly buckets: number[] = new Array(40).fill(0);
}

export class NotificationStats {
  private readonly vrings = new Map<number, VringCounter>();
  private readonly startNs: bigint;

  constructor(startNs: bigint) {
    this.startNs = startNs;
  }

  private vring(v: number): VringCounter {
    let c = this.vrings.get(v);
    if (!c) this.vrings.set(v, (c = new VringCounter()));
    return c;
  }

  record(vring: number, kind: NotificationKind, ts: bigint): void {
    const c = this.vring(vring);
    if (kind === 'kick') {
      c.kicks++;
      if (c.pendingKick === undefined) c.pendingKick = ts;
    } else if (kind === 'call') {
      c.calls++;
      if (c.pendingKick !== undefined) {
        const d = ts - c.pendingKick;
        c.hist.record(Number(d));
        const us = Number(d) / 1000;
        c.buckets[Math.min(c.buckets.length - 1, us < 1 ? 0 : Math.floor(Math.log2(us)))]++;
        c.pendingKick = undefined;
      }
    } else c.errs++;
  }

  snapshot(nowNs: bigint): VringStats[] {
    const secs = Math.max(Number(nowNs - this.startNs) / 1e9, 1e-9);
    return [...this.vrings.entries()]
      .sort(([a], [b]) => a - b)
      .map(([vring, c]) => {
        const s: VringStats = { vring, kicks: c.kicks, calls: c.calls, errs: c.errs, kickRate: c.kicks / secs, callRate: c.calls / secs };
        if (c.hist.count > 0) {
          const us = (ns: number): number => Math.round(ns / 10) / 100;
          s.latencyUs = {
            count: c.hist.count,
            p50: us(c.hist.percentile(50)),
            p90: us(c.hist.percentile(90)),
            p99: us(c.hist.percentile(99)),
            p999: us(c.hist.percentile(99.9)),
            max: us(c.hist.max),
          };
          s.histogram = c.buckets.flatMap((count, i) => (count ? [{ fromUs: i === 0 ? 0 : 2 ** i, toUs: 2 ** (i + 1), count }] : []));
        }
        return s;
      });
  }
}
