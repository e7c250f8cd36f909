/**
 * Per-request latency of a recording made with --rings: every session's ring snapshots through
 * a RequestTracker (src/rings/requests.ts), summarised per vring and device operation.
 */
import type { DeviceType } from '../protocol';
import { recordingDevices, deviceOf } from '../recording/devices';
import { recordingEvents } from '../recording/reader';
import type { RecordingRecord } from '../recording/records';
import { RequestTracker, type CompletedRequest } from '../rings/requests';
import { LatencyHistogram } from '../util/latency-histogram';

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface OperationLatency {
  vring: number;
  op: string;
  count: number;
  /** submitted → completed by the device (as far as snapshots resolve it), µs; unbounded requests left out */
  latencyUs: Percentiles;
  /**
   * requests whose completion no call marked and no snapshot closer than 1 ms bracketed (a
   * driver that polled for them): done within `withinMaxUs` of their last pending sighting, no
   * latency of theirs in the percentiles
   */
  unbounded?: { count: number; withinMaxUs: number };
  /** median over the requests of their bracket: how much earlier each may have been submitted plus how much earlier done, µs */
  uncertaintyP50Us: number;
  /** split rings: completed → the call that told the driver, µs (p50) */
  notifyP50Us?: number;
  /** requests done before the snapshot that saw them submitted was read (latency is that bound) */
  belowResolution: number;
  /** requests per second over the session */
  rate: number;
}

export interface SessionRequests {
  session: number;
  device: DeviceType;
  method: 'rings';
  operations: OperationLatency[];
  /** chains submitted and not completed when the session ended (or the recording stops) */
  outstanding: { vring: number; head: number; op: string; ageUs: number }[];
  unmatched: number;
  /** per vring: completions the used index showed that no call listed (the driver polls them) */
  usedWithoutCall: { vring: number; count: number }[];
  truncatedSnapshots: number;
  abandoned: number;
  /** every completed request, in completion order (for charts; omitted from JSON summaries) */
  requests: CompletedRequest[];
}

const us = (ns: number): number => Math.round(ns / 10) / 100;

function percentiles(h: LatencyHistogram): Percentiles {
  return { p50: us(h.percentile(50)), p90: us(h.percentile(90)), p99: us(h.percentile(99)), max: us(h.max) };
}

function median(xs: number[]): number {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1];
}

/** Sessions with ring snapshots, in the order they started; none when the recording has no --rings. */
export function requestLatency(records: RecordingRecord[], override?: DeviceType): SessionRequests[] {
  const devices = recordingDevices(records, override);
  const trackers = new Map<number, { tracker: RequestTracker; done: CompletedRequest[]; start: bigint; end?: bigint; snapshots: number }>();
  let last = 0n;
  for (const e of recordingEvents(records)) {
    last = e.ts > last ? e.ts : last;
    if (e.type === 'session-start') {
      trackers.set(e.session, { tracker: new RequestTracker(deviceOf(devices, e.session)), done: [], start: e.ts, snapshots: 0 });
    } else if (e.type === 'ring') {
      const t = trackers.get(e.session);
      if (!t) continue;
      t.snapshots++;
      t.done.push(...t.tracker.observe(e.vring, e.snapshot));
    } else if (e.type === 'session-end') {
      const t = trackers.get(e.session);
      if (t) t.end = e.ts;
    }
  }
  const out: SessionRequests[] = [];
  for (const [session, t] of trackers) {
    if (t.snapshots === 0) continue;
    const end = t.end ?? last;
    const secs = Math.max(Number(end - t.start) / 1e9, 1e-9);
    const groups = new Map<string, CompletedRequest[]>();
    for (const r of t.done) {
      const key = `${r.vring}\u0000${r.op}`;
      let g = groups.get(key);
      if (!g) groups.set(key, (g = []));
      g.push(r);
    }
    const operations = [...groups.values()]
      .map((rs): OperationLatency => {
        const h = new LatencyHistogram();
        for (const r of rs) if (!r.unbounded) h.record(r.latencyNs);
        const unbounded = rs.filter((r) => r.unbounded);
        const told = rs.filter((r) => r.notifyNs !== undefined);
        return {
          vring: rs[0].vring,
          op: rs[0].op,
          count: rs.length,
          latencyUs: percentiles(h),
          ...(unbounded.length
            ? { unbounded: { count: unbounded.length, withinMaxUs: us(Math.max(...unbounded.map((r) => r.completionUncertaintyNs))) } }
            : {}),
          uncertaintyP50Us: us(median(rs.map((r) => r.uncertaintyNs + r.completionUncertaintyNs))),
          ...(told.length ? { notifyP50Us: us(median(told.map((r) => r.notifyNs!))) } : {}),
          belowResolution: rs.filter((r) => r.belowResolution).length,
          rate: rs.length / secs,
        };
      })
      .sort((a, b) => a.vring - b.vring || a.op.localeCompare(b.op));
    out.push({
      session,
      device: deviceOf(devices, session),
      method: 'rings',
      operations,
      outstanding: t.tracker.outstanding().map((o) => ({ vring: o.vring, head: o.head, op: o.op, ageUs: us(Number(end - o.submittedNs)) })),
      unmatched: t.tracker.unmatched,
      usedWithoutCall: [...t.tracker.usedWithoutCall()].map(([vring, count]) => ({ vring, count })),
      truncatedSnapshots: t.tracker.truncated,
      abandoned: t.tracker.abandoned,
      requests: t.done,
    });
  }
  return out;
}
