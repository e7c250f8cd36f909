/**
 * Per-vring notification statistics of one session: kick, call and err counts and rates,
 * and the kick→next-call time (from the first kick after a call to the next call on the same
 * vring) as a histogram with percentiles.
 *
 * That figure is not a request's latency (with --rings, src/rings/requests.ts measures that):
 * with interrupt suppression kicks and calls are not one per request. So it is only taken where
 * it can mean one: never on a net rx vring (the driver's kick offers empty buffers; the next call
 * is whenever a packet arrives), and never across an idle gap (a call more than a second after
 * the kick): those kicks are counted as unpaired instead.
 */
import { LatencyHistogram } from '../util/latency-histogram';

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
  /** kicks not paired with a call: the call came after an idle gap (> 1 s) */
  unpaired?: number;
  /** kick→call latency counts in power-of-two µs buckets [fromUs, toUs) (non-empty ones) */
  histogram?: { fromUs: number; toUs: number; count: number }[];
}

class VringCounter {
  kicks = 0;
  calls = 0;
  errs = 0;
  pendingKick: bigint | undefined;
  unpaired = 0;
  readonly hist = new LatencyHistogram();
  /** bucket i counts latencies in [2^i, 2^(i+1)) µs; bucket 0 also holds < 1 µs */
  readonly buckets: number[] = new Array(40).fill(0);
}

/** a call later than this after the kick is not its completion but the end of an idle gap */
export const MAX_PAIR_GAP_NS = 1_000_000_000n;

export class NotificationStats {
  private readonly vrings = new Map<number, VringCounter>();
  private readonly startNs: bigint;
  /** vrings whose kicks start no request the next call ends (net rx) */
  private pairable: (vring: number) => boolean = () => true;

  constructor(startNs: bigint, device?: string) {
    this.startNs = startNs;
    if (device) this.setDevice(device);
  }

  /** The device type, once known: on net, even vrings (receive queues) are not paired. */
  setDevice(device: string): void {
    this.pairable = device === 'net' ? (v) => v % 2 === 1 : () => true;
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
      if (c.pendingKick === undefined && this.pairable(vring)) c.pendingKick = ts;
    } else if (kind === 'call') {
      c.calls++;
      if (c.pendingKick !== undefined && ts - c.pendingKick > MAX_PAIR_GAP_NS) {
        c.unpaired++;
        c.pendingKick = undefined;
      } else if (c.pendingKick !== undefined) {
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
        const s: VringStats = {
          vring,
          kicks: c.kicks,
          calls: c.calls,
          errs: c.errs,
          kickRate: c.kicks / secs,
          callRate: c.calls / secs,
          ...(c.unpaired ? { unpaired: c.unpaired } : {}),
        };
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
