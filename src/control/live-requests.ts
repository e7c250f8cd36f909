/**
 * Per-request latency of the running daemon's sessions (--rings), for `vhostscope top`: every
 * session's ring snapshots through a RequestTracker as they arrive, one bounded histogram per
 * vring and operation. Ended sessions are dropped; nothing here grows with time.
 */
import type { DeviceType } from '../protocol';
import type { PeerIdentity, ProxyEvent } from '../events/events';
import { RequestTracker } from '../rings/requests';
import { LatencyHistogram } from '../util/latency-histogram';

export interface LiveOperation {
  vring: number;
  op: string;
  /** requests completed since the session started */
  count: number;
  p50Us: number;
  p99Us: number;
  maxUs: number;
}

export interface LiveSession {
  session: number;
  device: DeviceType;
  peers: { listen?: PeerIdentity; connect?: PeerIdentity };
  /** false: the daemon takes no ring snapshots (no --rings): no request figures */
  rings: boolean;
  operations: LiveOperation[];
  outstanding: number;
  /** age of the oldest outstanding request, µs */
  oldestUs?: number;
}

interface Tracked {
  tracker: RequestTracker;
  device: DeviceType;
  peers: LiveSession['peers'];
  ops: Map<string, { vring: number; op: string; hist: LatencyHistogram }>;
  snapshots: number;
}

const us = (ns: number): number => Math.round(ns / 10) / 100;

export class LiveRequests {
  private readonly sessions = new Map<number, Tracked>();

  onEvent(e: ProxyEvent): void {
    if (e.type === 'session-start') {
      this.sessions.set(e.session, { tracker: new RequestTracker('generic'), device: 'generic', peers: e.peers, ops: new Map(), snapshots: 0 });
    } else if (e.type === 'session-end') {
      this.sessions.delete(e.session);
    } else if (e.type === 'ring') {
      const t = this.sessions.get(e.session);
      if (!t) return;
      t.snapshots++;
      for (const r of t.tracker.observe(e.vring, e.snapshot)) {
        const key = `${r.vring}\u0000${r.op}`;
        let o = t.ops.get(key);
        if (!o) t.ops.set(key, (o = { vring: r.vring, op: r.op, hist: new LatencyHistogram() }));
        o.hist.record(r.latencyNs);
      }
    }
  }

  /** The device a session carries, once inferred (or given with --device). */
  setDevice(session: number, device: DeviceType): void {
    const t = this.sessions.get(session);
    if (!t) return;
    t.device = device;
    t.tracker.setDevice(device);
  }

  snapshot(nowNs: bigint): LiveSession[] {
    return [...this.sessions].map(([session, t]) => {
      const out = t.tracker.outstanding();
      return {
        session,
        device: t.device,
        peers: t.peers,
        rings: t.snapshots > 0,
        operations: [...t.ops.values()]
          .map((o) => ({
            vring: o.vring,
            op: o.op,
            count: o.hist.count,
            p50Us: us(o.hist.percentile(50)),
            p99Us: us(o.hist.percentile(99)),
            maxUs: us(o.hist.max),
          }))
          .sort((a, b) => a.vring - b.vring || a.op.localeCompare(b.op)),
        outstanding: out.length,
        ...(out.length ? { oldestUs: us(Number(nowNs - out[0].submittedNs)) } : {}),
      };
    });
  }
}
