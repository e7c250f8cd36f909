/** A recording's notification figures, request latency and relay transit as text (`vhostscope stats`). */
import { relayTransit, transitLine, TRANSIT_METHOD, type RelayTransit } from '../analysis/relay-transit';
import { requestLatency, type SessionRequests } from '../analysis/request-latency';
import { durationUs, vringLine } from '../log/format';
import { NotificationStats, type VringStats } from '../events/notification-stats';
import { deviceOf, recordingDevices } from '../recording/devices';
import { readRecording, recordingEvents } from '../recording/reader';

export function histogramLines(v: VringStats, width = 40): string[] {
  const h = v.histogram ?? [];
  const max = Math.max(1, ...h.map((b) => b.count));
  const label = (us: number): string => (us >= 1e6 ? `${+(us / 1e6).toPrecision(3)}s` : us >= 1e3 ? `${+(us / 1e3).toPrecision(3)}ms` : `${us}µs`);
  return h.map((b) => `    ${`${label(b.fromUs)}-${label(b.toUs)}`.padStart(17)} |${'#'.repeat(Math.max(1, Math.round((b.count / max) * width)))} ${b.count}`);
}

const fmtUs = durationUs;

/** The per-request lines of one session (recorded with --rings). */
export function requestLines(s: SessionRequests): string[] {
  const lines = [
    `  requests (method: ring snapshots; latency = submitted → used by the device, ± how far the snapshots around each moment leave it open (p50); then → call: until the driver was told):`,
  ];
  if (!s.operations.length) lines.push('    no request completed');
  for (const o of s.operations) {
    const split = `${o.notifyP50Us !== undefined ? `; then → call p50 ${fmtUs(o.notifyP50Us)}` : ''}${o.belowResolution ? `; ${o.belowResolution} done within the snapshot read` : ''}${o.unbounded ? `; ${o.unbounded.count} polled for (no call: done within ${fmtUs(o.unbounded.withinMaxUs)}, left out)` : ''}`;
    lines.push(
      `    vring ${o.vring} ${o.op.padEnd(12)} n=${o.count} (${o.rate.toFixed(1)}/s) p50 ${fmtUs(o.latencyUs.p50)} p90 ${fmtUs(o.latencyUs.p90)} p99 ${fmtUs(o.latencyUs.p99)} max ${fmtUs(o.latencyUs.max)} ± ${fmtUs(o.uncertaintyP50Us)}${split}`,
    );
  }
  if (s.outstanding.length) {
    const oldest = s.outstanding[0];
    lines.push(
      `    outstanding at the end: ${s.outstanding.length} (oldest: vring ${oldest.vring} head ${oldest.head} ${oldest.op}, ${fmtUs(oldest.ageUs)} old)`,
    );
  }
  const notes = [
    s.unmatched ? `${s.unmatched} completions of requests submitted before the snapshots began` : '',
    ...s.usedWithoutCall.map((u) => `vring ${u.vring}: ${u.count} completions no call reported (the driver polls for them): those requests stay outstanding`),
    s.truncatedSnapshots ? `${s.truncatedSnapshots} snapshots held more chains than they list: some requests are missing` : '',
    s.abandoned ? `${s.abandoned} requests outstanding when their ring was set up again` : '',
  ].filter(Boolean);
  if (notes.length) lines.push(`    (${notes.join('; ')})`);
  return lines;
}

export interface StatsJson {
  sessions: { session: number; notifications: VringStats[]; requests?: Omit<SessionRequests, 'requests'>; relayTransit?: RelayTransit[] }[];
}

export function statsJson(file: string): StatsJson {
  const scan = readRecording(file);
  const { perSession, ends, last } = notificationStats(scan.records);
  const req = new Map(requestLatency(scan.records).map((r) => [r.session, r]));
  const transit = relayTransit(scan.records);
  return {
    sessions: [...perSession].map(([session, st]) => {
      const r = req.get(session);
      const { requests: _all, ...summary } = r ?? { requests: [] };
      const t = transit.get(session);
      return {
        session,
        notifications: st.snapshot(ends.get(session) ?? last),
        ...(r ? { requests: summary as Omit<SessionRequests, 'requests'> } : {}),
        ...(t ? { relayTransit: t } : {}),
      };
    }),
  };
}

function notificationStats(records: ReturnType<typeof readRecording>['records']): {
  perSession: Map<number, NotificationStats>;
  ends: Map<number, bigint>;
  last: bigint;
} {
  const events = recordingEvents(records, { notifications: true });
  const devices = recordingDevices(records);
  const perSession = new Map<number, NotificationStats>();
  const ends = new Map<number, bigint>();
  for (const e of events) {
    if (e.type === 'session-start') perSession.set(e.session, new NotificationStats(e.ts, deviceOf(devices, e.session)));
    else if (e.type === 'notification') perSession.get(e.session)?.record(e.vring, e.kind, e.ts);
    else if (e.type === 'session-end') ends.set(e.session, e.ts);
  }
  return { perSession, ends, last: events.at(-1)?.ts ?? 0n };
}

export function statsText(file: string): string[] {
  const scan = readRecording(file);
  const lines: string[] = [];
  const { perSession, ends, last } = notificationStats(scan.records);
  const req = new Map(requestLatency(scan.records).map((r) => [r.session, r]));
  const transit = relayTransit(scan.records);
  for (const [id, st] of perSession) {
    const snap = st.snapshot(ends.get(id) ?? last);
    lines.push(`session ${id}: ${snap.length ? '' : 'no notifications (eventfds passed through, or the peers poll)'}`);
    const r = req.get(id);
    if (r) lines.push(...requestLines(r));
    else lines.push('  requests: not measured (record with proxy --rings for per-request latency)');
    if (snap.length)
      lines.push(
        '  notifications (method: kick → next call on the vring; not per request: suppressed notifications, batching; net rx and idle gaps > 1 s not paired):',
      );
    for (const v of snap) {
      lines.push(`  ${vringLine(v)}`);
      if (v.histogram?.length) {
        lines.push('    kick→next call:');
        lines.push(...histogramLines(v));
      }
    }
    const t = transit.get(id);
    if (t) {
      lines.push(`  ${TRANSIT_METHOD}:`);
      lines.push(...t.map((x) => `    ${transitLine(x)}`));
    }
  }
  return lines;
}
