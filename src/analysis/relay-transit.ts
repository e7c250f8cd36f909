/**
 * What vhostscope itself added to each notification it relayed, per session, vring and kind:
 * the relay thread's time from its wake-up to the count read and its write to the far eventfd
 * issued, as the native relay bucketed it (powers of two of ns) and the session's end record
 * carries it. Left out: the scheduler's wake-up of the relay thread before it (no thread can
 * time that from inside) and the write itself, during which the woken peer may preempt the relay
 * on a shared CPU and run its whole request; bench/notify.js measures the whole hop against a
 * direct eventfd.
 */
import { durationUs } from '../log/format';
import type { NotificationKind } from '../events/notification-stats';
import type { RecordingRecord } from '../recording/records';

export interface RelayTransit {
  vring: number;
  kind: NotificationKind;
  /** notifications timed (the first of each burst the relay picked up) */
  count: number;
  meanNs: number;
  /** upper bounds of the power-of-two buckets holding the 50th and 99th percentiles and the longest */
  p50Ns: number;
  p99Ns: number;
  maxNs: number;
}

/** Per session (that ended in the recording and had interposed eventfds): transit per vring and kind. */
export function relayTransit(records: RecordingRecord[]): Map<number, RelayTransit[]> {
  const out = new Map<number, RelayTransit[]>();
  for (const r of records) {
    if (r.type !== 'session-end') continue;
    const slots = new Map<string, { vring: number; kind: NotificationKind; buckets: number[]; sumNs: number }>();
    for (const p of r.relayPairs) {
      if (!p.transitBuckets?.length) continue;
      const key = `${p.kind}:${p.vring}`;
      const s = slots.get(key) ?? { vring: p.vring, kind: p.kind, buckets: [], sumNs: 0 };
      slots.set(key, s);
      p.transitBuckets.forEach((n, i) => (s.buckets[i] = (s.buckets[i] ?? 0) + n));
      s.sumNs += p.transitSumNs ?? 0;
    }
    const list = [...slots.values()]
      .map((s) => {
        const b = transitPercentiles(s.buckets, s.sumNs);
        return b && { vring: s.vring, kind: s.kind, ...b };
      })
      .filter((t): t is RelayTransit => t !== undefined)
      .sort((a, b) => a.vring - b.vring || a.kind.localeCompare(b.kind));
    if (list.length) out.set(r.session, list);
  }
  return out;
}

/**
 * Count, mean and percentiles of a transit histogram (bucket i: [2^i, 2^(i+1)) ns), each
 * percentile given as its bucket's upper bound. Undefined when it holds nothing.
 */
export function transitPercentiles(buckets: number[], sumNs: number): Omit<RelayTransit, 'vring' | 'kind'> | undefined {
  const count = buckets.reduce((a, b) => a + (b ?? 0), 0);
  if (!count) return undefined;
  const upper = (i: number): number => 2 ** (i + 1);
  const at = (q: number): number => {
    const rank = Math.ceil(q * count);
    let seen = 0;
    for (let i = 0; i < buckets.length; i++) {
      seen += buckets[i] ?? 0;
      if (seen >= rank) return upper(i);
    }
    return upper(buckets.length - 1);
  };
  let last = buckets.length - 1;
  while (last > 0 && !buckets[last]) last--;
  return { count, meanNs: sumNs / count, p50Ns: at(0.5), p99Ns: at(0.99), maxNs: upper(last) };
}

export const TRANSIT_METHOD =
  "vhostscope's own time per relayed notification (relay thread: wake-up → count read, forwarding write issued; not included: the scheduler's wake-up before it)";

/** One line per vring and kind, for stats and the report. */
export function transitLine(t: RelayTransit): string {
  const us = (ns: number): string => durationUs(ns / 1000);
  return `vring ${t.vring} ${t.kind.padEnd(4)} n=${t.count} mean ${us(t.meanNs)} p50 ≤ ${us(t.p50Ns)} p99 ≤ ${us(t.p99Ns)} max ≤ ${us(t.maxNs)}`;
}
