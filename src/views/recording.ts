/** A recording's messages and summary as text (`vhostscope show`, `info`). */
import { deviceOf, recordingDevices } from '../recording/devices';
import { finalRingStates, ringStateText, ringTransitions, SessionRings, type RingTransition } from '../analysis/ring-states';
import { findMigrations, migrationLines } from '../analysis/migration';
import { summarize } from '../analysis/summary';
import { eventfdMode } from '../events/events';
import { eventRecord, humanLine, secs } from '../log/format';
import type { ChannelKind, DeviceType, Dialect } from '../protocol';
import { eventFilter } from '../log/filter';
import { readRecording, recordingEvents } from '../recording/reader';
import { inflightText } from '../rings/inflight';
import type { InflightEvent } from '../events/events';

export interface ShowOptions {
  session?: string;
  channel?: ChannelKind;
  request?: string;
  since?: string;
  until?: string;
  json?: boolean;
  notifications?: boolean;
  rings?: boolean;
  device?: DeviceType;
  dialect?: Dialect;
}

function tornNote(file: string, torn: { offset: number; bytes: number; reason: string } | undefined): string | undefined {
  return torn && `${file}: the recording ends in a torn frame at byte ${torn.offset} (${torn.bytes} bytes: ${torn.reason}); everything before it was read`;
}

export function showRecording(file: string, o: ShowOptions, out: (line: string) => void): void {
  const scan = readRecording(file);
  const events = recordingEvents(scan.records, { notifications: Boolean(o.notifications), ...(o.dialect ? { dialect: o.dialect } : {}) });
  const devices = recordingDevices(scan.records, o.device);
  const t0 = events[0]?.ts ?? 0n;
  const keep = eventFilter(o, t0);
  const rings = new Map<number, SessionRings>();
  for (const e of events) {
    // every message counts for the rings' states, shown or not
    let changed: RingTransition[] = [];
    if (e.type === 'message') {
      if (!rings.has(e.session)) rings.set(e.session, new SessionRings());
      changed = rings.get(e.session)!.apply(e);
    }
    if (!keep(e)) continue;
    const rec = eventRecord(e, 'session' in e ? deviceOf(devices, e.session) : 'generic');
    out(o.json ? JSON.stringify(rec) : humanLine(rec));
    for (const t of changed)
      out(
        o.json
          ? JSON.stringify({ event: 'ring-state', session: t.session, vring: t.vring, started: t.started, enabled: t.enabled, why: t.why })
          : `    vring ${t.vring} is now ${ringStateText(t)}`,
      );
  }
  const note = tornNote(file, scan.torn);
  if (note) out(o.json ? JSON.stringify({ event: 'torn', ...scan.torn, msg: note }) : `!! ${note}`);
}

export function infoText(file: string, device?: DeviceType): string[] {
  const scan = readRecording(file);
  const sum = summarize(scan.records, device);
  const lines: string[] = [];
  const h = sum.headers[0];
  lines.push(
    `recording ${file}: ${scan.records.length} records in ${sum.headers.length} segment(s), ${scan.goodBytes} bytes${scan.torn ? `; ${tornNote(file, scan.torn)}` : ''}`,
  );
  if (h)
    lines.push(
      `captured by vhostscope ${h.host.vhostscope} on ${h.host.hostname} (${h.host.kernel}, ${h.host.arch}, ${h.host.byteOrder}) at ${new Date(h.host.wallClockMs).toISOString()}; timestamps: ${h.host.clock}`,
    );
  const events = recordingEvents(scan.records);
  const transitions = ringTransitions(events);
  const inflight = events.filter((e): e is InflightEvent => e.type === 'inflight');
  for (const s of sum.sessions) {
    const peer = (p?: { pid: number; exe?: string; cmdline?: string }): string =>
      p ? `pid ${p.pid}${p.exe ? ` ${p.exe}` : ''}${p.cmdline ? ` [${p.cmdline.length > 160 ? `${p.cmdline.slice(0, 160)}…` : p.cmdline}]` : ''}` : '?';
    lines.push(`session ${s.session}: ${s.listen} (${peer(s.peers.listen)}) <-> ${s.connect} (${peer(s.peers.connect)})`);
    lines.push(
      `  start ${secs(s.startNs)}${s.durationS !== undefined ? `, duration ${s.durationS.toFixed(3)} s` : ', no end recorded'}; eventfds ${eventfdMode(s)}`,
    );
    lines.push(`  messages F>B ${s.messages['F>B']}, B>F ${s.messages['B>F']}; fds ${s.fds}`);
    lines.push(`  device: ${s.device ? `${s.device} (${s.deviceReason})` : 'not known (--device names it)'}`);
    const f = s.features;
    if (f.offered) lines.push(`  virtio features offered: ${f.offered.join('|')}`);
    if (f.acked) lines.push(`  virtio features acked:   ${f.acked.join('|')}`);
    if (f.protocolOffered) lines.push(`  protocol features offered: ${f.protocolOffered.join('|')}`);
    if (f.protocolInUse) lines.push(`  protocol features in use:  ${f.protocolInUse.join('|')}`);
    lines.push(
      `  requests: ${Object.entries(s.requests)
        .map(([k, v]) => `${k}×${v}`)
        .join(' ')}`,
    );
    const n = Object.entries(s.notifications);
    lines.push(
      `  notifications: ${n.length ? n.map(([k, v]) => `${k} ${v.events}`).join(', ') : 'none'}${s.droppedNotifications ? ` (${s.droppedNotifications} not recorded: the disk fell behind)` : ''}`,
    );
    const faults = Object.entries(s.faults);
    if (faults.length)
      lines.push(
        `  fault rules applied: ${faults
          .map(
            ([rule, by]) =>
              `${rule}: ${Object.entries(by)
                .map(([a, n]) => `${a}×${n}`)
                .join(' ')}`,
          )
          .join('; ')}`,
      );
    const rings = [...finalRingStates(transitions, s.session).values()];
    if (rings.length)
      lines.push(`  rings at the end: ${rings.map((t) => `vring ${t.vring} ${ringStateText(t)} (since ${t.why} at ${secs(t.ts)})`).join('; ')}`);
    for (const r of inflight.filter((x) => x.session === s.session))
      lines.push(`  inflight region at ${r.when}${r.error ? ` (${r.error})` : ''}: ${inflightText(r.queues).join('; ') || 'no queue read'}`);
    if (s.endReason) lines.push(`  end: ${s.endReason}`);
  }
  const devices = recordingDevices(scan.records, device);
  for (const m of findMigrations(events)) lines.push(...migrationLines(m, deviceOf(devices, m.source) === 'net'));
  return lines;
}
