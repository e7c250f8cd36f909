/**
 * Prometheus metrics of one proxy daemon (`proxy --metrics HOST:PORT`), from the events the
 * daemon emits and the relay's own counters.
 *
 * Labels are bounded by construction: `listen` is the daemon's socket path; a session is named
 * by its `slot`, the lowest number free when it started (so a daemon that has carried ten
 * thousand sessions, four at a time, has slots 1-4), and its series are removed when it ends;
 * vrings beyond MAX_VRING_LABEL share the label "other"; request names are the protocol's own
 * (an unknown code counts as "unknown"). The totals without a slot (messages, findings,
 * faults, sessions) outlive the sessions they count.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { native, type RelayStats } from '../native';
import { endedInError, type ProxyEvent } from '../events/events';
import { MAX_PAIR_GAP_NS, type NotificationKind } from '../events/notification-stats';

/** vring indexes above this share one label value: a peer cannot create series at will */
export const MAX_VRING_LABEL = 63;

/** kick→call latency buckets (s): 10 µs (a polling backend on its own CPU) to 1 s (a stalled one) */
const KICK_TO_CALL_BUCKETS = [10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 1];

/** Relay transit bucket bounds reported (s): 2^8 ns to 2^24 ns (256 ns to 16.8 ms), powers of two. */
const TRANSIT_BOUNDS_LOG2 = Array.from({ length: 17 }, (_, i) => i + 8);

export interface RecordingFigures {
  bytes: number;
  droppedNotifications: number;
  droppedRings: number;
  /** bytes encoded and waiting for the disk now */
  queuedBytes: number;
}

/** What a daemon's metrics read at scrape time rather than count from events. */
export interface MetricSources {
  relay?: () => RelayStats | undefined;
  recording?: () => RecordingFigures;
  /** channels paused now because the peer they write to does not read */
  pausedChannels?: () => number;
}

/**
 * One registry per process: every daemon (one per --config device) adds its series, labelled by
 * listen path. `logDropped`: the process's count of log lines dropped (the log fell behind).
 */
export function createRegistry(logDropped?: () => number): Registry {
  const registry = new Registry();
  // process_resident_memory_bytes, process_open_fds, event loop lag, ... The lag monitor samples
  // on a timer, 10 ms by default: ~100 wake-ups/s of a daemon that otherwise sleeps, each one a
  // preemption of a polling DPDK lcore on a small machine (bench/dpdk-threads.js: 316 context
  // switches of the daemon and 405 preemptions of an lcore per 3 s window, against 12 and 110
  // without --metrics). Sampled twice a second, a blocked loop still shows in the lag figures.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 500 });
  new Gauge({
    name: 'vhostscope_malloc_bytes',
    help: 'glibc heap over every arena: in use, free inside the arenas (resident until trimmed), mmapped one by one',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const m = native.mallocStats();
      this.set({ state: 'in_use' }, m.inUseBytes);
      this.set({ state: 'free' }, m.freeBytes);
      this.set({ state: 'mmapped' }, m.mmappedBytes);
    },
  });
  if (logDropped) {
    const name = 'vhostscope_log_dropped_lines_total';
    const help = 'log lines dropped because the log output fell 16 MiB behind (the recording keeps every message)';
    registry.registerMetric({
      name,
      help,
      type: 'counter',
      aggregator: 'sum',
      get: async () => ({ name, help, type: 'counter', aggregator: 'sum', values: [{ value: logDropped(), labels: {} }] }),
    } as never);
  }
  return registry;
}

interface SessionSeries {
  slot: string;
  /** notification counter children by `${vring}:${kind}` (label hashing once, not per notification) */
  counters: Map<string, ReturnType<Counter<string>['labels']>>;
  latency: Map<number, ReturnType<Histogram<string>['labels']>>;
  /** per vring: when the first kick since the last call was relayed (ns) */
  pendingKick: Map<number, bigint>;
  vrings: Set<string>;
}

/** The metric families, created once per registry and shared by its daemons. */
class Families {
  readonly sessionsStarted: Counter<string>;
  readonly sessionsEnded: Counter<string>;
  readonly sessionsActive: Gauge<string>;
  readonly messages: Counter<string>;
  readonly notifications: Counter<string>;
  readonly kickToCall: Histogram<string>;
  readonly findings: Counter<string>;
  readonly faults: Counter<string>;
  /** every daemon's scrape-time sources, read by the families registered in scrapeTimeFamilies */
  readonly sources: { listen: string; sources: MetricSources }[] = [];

  constructor(readonly registry: Registry) {
    const registers = [registry];
    this.sessionsStarted = new Counter({
      name: 'vhostscope_sessions_started_total',
      help: 'sessions started (a peer connected and the proxy reached the other)',
      labelNames: ['listen'],
      registers,
    });
    this.sessionsEnded = new Counter({
      name: 'vhostscope_sessions_ended_total',
      help: 'sessions ended, by the side whose behaviour ended them (frontend, backend, proxy, or none: a clean close)',
      labelNames: ['listen', 'by', 'error'],
      registers,
    });
    this.sessionsActive = new Gauge({ name: 'vhostscope_sessions_active', help: 'sessions being proxied now', labelNames: ['listen'], registers });
    this.messages = new Counter({
      name: 'vhostscope_messages_total',
      help: 'vhost-user messages forwarded, by channel, direction (F>B, B>F) and request',
      labelNames: ['listen', 'channel', 'direction', 'request'],
      registers,
    });
    this.notifications = new Counter({
      name: 'vhostscope_notifications_total',
      help: "relayed vring notifications (eventfd reads) per live session slot and vring; a slot's series end with its session",
      labelNames: ['listen', 'slot', 'vring', 'kind'],
      registers,
    });
    this.kickToCall = new Histogram({
      name: 'vhostscope_kick_to_call_seconds',
      help: 'from the first kick after a call to the next call on the same vring (within 1 s; later calls end an idle gap), per live session slot',
      labelNames: ['listen', 'slot', 'vring'],
      buckets: KICK_TO_CALL_BUCKETS,
      registers,
    });
    this.findings = new Counter({
      name: 'vhostscope_findings_total',
      help: 'protocol findings: message validation, and the live checks with --check',
      labelNames: ['listen', 'rule', 'severity'],
      registers,
    });
    this.faults = new Counter({
      name: 'vhostscope_fault_applications_total',
      help: 'fault rules applied to a message or a vring',
      labelNames: ['listen', 'rule', 'action'],
      registers,
    });
    for (const m of scrapeTimeFamilies(() => this.sources)) registry.registerMetric(m as never);
  }
}

type Sourced = { listen: string; sources: MetricSources };

/** A family whose values are read from every daemon's sources at scrape time. */
function readFamily(name: string, help: string, type: 'counter' | 'gauge', all: () => Sourced[], read: (s: MetricSources) => number | undefined) {
  return {
    name,
    help,
    type,
    aggregator: 'sum' as const,
    get: async () => ({
      name,
      help,
      type,
      aggregator: 'sum' as const,
      values: all().flatMap(({ listen, sources }) => {
        const value = read(sources);
        return value === undefined ? [] : [{ value, labels: { listen } }];
      }),
    }),
  };
}

/** The relay's counters and transit, recording volume and drops, back-pressure: read when scraped. */
function scrapeTimeFamilies(all: () => Sourced[]) {
  const relay = (s: MetricSources): RelayStats | undefined => s.relay?.();
  return [
    readFamily('vhostscope_relay_notifications_total', 'notifications the relay thread relayed', 'counter', all, (s) => relay(s)?.notifications),
    readFamily(
      'vhostscope_relay_dropped_events_total',
      'relayed notifications whose timing event was dropped (JS fell 64 Ki events behind; the notification itself went through)',
      'counter',
      all,
      (s) => relay(s)?.droppedEvents,
    ),
    readFamily(
      'vhostscope_relay_dropped_snapshots_total',
      'vring snapshots (--rings) dropped because 16 MiB of them waited for JS',
      'counter',
      all,
      (s) => relay(s)?.droppedSnapshots,
    ),
    readFamily('vhostscope_relay_cpu_seconds_total', 'CPU time of the relay thread', 'counter', all, (s) => {
      const r = relay(s);
      return r ? r.threadCpuNs / 1e9 : undefined;
    }),
    transitHistogram(all),
    readFamily('vhostscope_recording_bytes_total', 'bytes written to recordings', 'counter', all, (s) => s.recording?.().bytes),
    readFamily(
      'vhostscope_recording_dropped_notifications_total',
      'notifications not recorded because the disk fell behind',
      'counter',
      all,
      (s) => s.recording?.().droppedNotifications,
    ),
    readFamily(
      'vhostscope_recording_dropped_snapshots_total',
      'vring snapshots not recorded because the disk fell behind',
      'counter',
      all,
      (s) => s.recording?.().droppedRings,
    ),
    readFamily('vhostscope_recording_queued_bytes', 'bytes of recording waiting for the disk', 'gauge', all, (s) => s.recording?.().queuedBytes),
    readFamily(
      'vhostscope_backpressure_paused_channels',
      'channels whose reading is paused because the peer they forward to is not reading',
      'gauge',
      all,
      (s) => s.pausedChannels?.(),
    ),
  ];
}

const families = new WeakMap<Registry, Families>();

function familiesOf(registry: Registry): Families {
  let f = families.get(registry);
  if (!f) families.set(registry, (f = new Families(registry)));
  return f;
}

export class DaemonMetrics {
  private readonly f: Families;
  private readonly sessions = new Map<number, SessionSeries>();
  private readonly slots = new Set<number>();

  constructor(
    registry: Registry,
    private readonly listen: string,
    sources: MetricSources = {},
  ) {
    this.f = familiesOf(registry);
    this.f.sessionsActive.set({ listen }, 0);
    this.f.sources.push({ listen, sources });
  }

  onEvent(e: ProxyEvent): void {
    const listen = this.listen;
    switch (e.type) {
      case 'session-start':
        this.sessions.set(e.session, { slot: String(this.takeSlot()), counters: new Map(), latency: new Map(), pendingKick: new Map(), vrings: new Set() });
        this.f.sessionsStarted.inc({ listen });
        this.f.sessionsActive.set({ listen }, this.sessions.size);
        return;
      case 'session-end':
        this.endSession(e.session, e.by ?? 'none', endedInError(e));
        return;
      case 'message':
        this.f.messages.inc({ listen, channel: e.channel, direction: e.dir, request: e.decoded.known ? e.decoded.name : 'unknown' });
        for (const f of e.findings) this.onFinding(f.rule, f.severity);
        return;
      case 'fault':
        this.f.faults.inc({ listen, rule: e.rule, action: e.action });
        return;
      case 'notification':
        this.onNotification(e.session, e.vring, e.kind, e.ts);
        return;
      default:
        return;
    }
  }

  /** A finding of the live checker (--check), or of message validation. */
  onFinding(rule: string, severity: string): void {
    this.f.findings.inc({ listen: this.listen, rule, severity });
  }

  private onNotification(session: number, vring: number, kind: NotificationKind, ts: bigint): void {
    const s = this.sessions.get(session);
    if (!s) return;
    const key = `${vring}:${kind}`;
    let child = s.counters.get(key);
    if (!child) {
      const v = vringLabel(vring);
      s.vrings.add(v);
      s.counters.set(key, (child = this.f.notifications.labels({ listen: this.listen, slot: s.slot, vring: v, kind })));
    }
    child.inc();
    if (kind === 'kick') {
      if (!s.pendingKick.has(vring)) s.pendingKick.set(vring, ts);
    } else if (kind === 'call') {
      const kicked = s.pendingKick.get(vring);
      if (kicked === undefined) return;
      s.pendingKick.delete(vring);
      if (ts - kicked > MAX_PAIR_GAP_NS) return; // the end of an idle gap, not a completion (as in `stats`)
      let h = s.latency.get(vring);
      if (!h) s.latency.set(vring, (h = this.f.kickToCall.labels({ listen: this.listen, slot: s.slot, vring: vringLabel(vring) })));
      h.observe(Number(ts - kicked) / 1e9);
    }
  }

  private endSession(session: number, by: string, error: boolean): void {
    const s = this.sessions.get(session);
    if (!s) return;
    this.sessions.delete(session);
    this.slots.delete(Number(s.slot));
    for (const vring of s.vrings) {
      for (const kind of ['kick', 'call', 'err']) this.f.notifications.remove({ listen: this.listen, slot: s.slot, vring, kind });
      this.f.kickToCall.remove({ listen: this.listen, slot: s.slot, vring });
    }
    this.f.sessionsEnded.inc({ listen: this.listen, by, error: String(error) });
    this.f.sessionsActive.set({ listen: this.listen }, this.sessions.size);
  }

  private takeSlot(): number {
    let slot = 1;
    while (this.slots.has(slot)) slot++;
    this.slots.add(slot);
    return slot;
  }
}

function vringLabel(vring: number): string {
  return vring <= MAX_VRING_LABEL ? String(vring) : 'other';
}

/** The relay's power-of-two transit buckets as a Prometheus histogram (cumulative, in seconds). */
function transitHistogram(all: () => Sourced[]) {
  const name = 'vhostscope_relay_transit_seconds';
  const help =
    "relay thread transit of a notification: from its wake-up to the count read and the forwarding write issued (excludes the scheduler's wake-up latency)";
  return {
    name,
    help,
    type: 'histogram' as const,
    aggregator: 'sum' as const,
    get: async () => {
      const values: { value: number; labels: Record<string, string | number>; metricName: string }[] = [];
      for (const { listen, sources } of all()) {
        const r = sources.relay?.();
        if (!r) continue;
        let cumulative = 0;
        let next = 0;
        for (const log2 of TRANSIT_BOUNDS_LOG2) {
          // bucket i holds [2^i, 2^(i+1)) ns: everything below 2^log2 ns is in the buckets below log2
          for (; next < log2 && next < r.transitBuckets.length; next++) cumulative += r.transitBuckets[next]!;
          values.push({ value: cumulative, labels: { listen, le: 2 ** log2 / 1e9 }, metricName: `${name}_bucket` });
        }
        const count = r.transitBuckets.reduce((a, b) => a + b, 0);
        values.push({ value: count, labels: { listen, le: '+Inf' }, metricName: `${name}_bucket` });
        values.push({ value: r.transitSumNs / 1e9, labels: { listen }, metricName: `${name}_sum` });
        values.push({ value: count, labels: { listen }, metricName: `${name}_count` });
      }
      return { name, help, type: 'histogram' as const, aggregator: 'sum' as const, values };
    },
  };
}
