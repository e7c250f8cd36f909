/**
 * A live migration read as one story from the sessions of a recording (or of one daemon): the
 * source's dirty logging (SET_LOG_BASE, LOG_ALL), its rings stopped (GET_VRING_BASE answers),
 * the destination's rings started (SET_VRING_BASE), the indices handed over, and how the
 * destination announced the guest. Pure over the events.
 *
 * A source is a session whose back-end answered GET_VRING_BASE while LOG_ALL was acked; its
 * destination is another session that then sets the same rings up for the first time, with
 * the same amount of guest memory (as the checker's VU023 pairs them).
 */
import { applyMainMessage, deviceStateResult, hasBit, HEADER_SIZE, newNegotiation, Request, stopsVring, VirtioFeature, type Negotiation } from '../protocol';
import type { DirtyLogEvent, ProxyEvent } from '../events/events';
import { secs } from '../log/format';

/** virtio-net: the driver announces itself after a migration (VIRTIO_NET_F_GUEST_ANNOUNCE) */
const GUEST_ANNOUNCE = 21;

export interface MigratedRing {
  vring: number;
  /** the source's back-end's GET_VRING_BASE answer */
  stoppedAt: number;
  stoppedNs: bigint;
  /** the destination's SET_VRING_BASE */
  resumedFrom?: number;
  resumedNs?: bigint;
}

export interface Migration {
  source: number;
  destination?: number;
  /** the source's SET_LOG_BASE: when, how big, which fd */
  log?: { ns: bigint; bytes: bigint; fd?: string };
  logAllNs?: bigint;
  rings: MigratedRing[];
  /** how the destination told the network the guest moved */
  announce?: string;
  /** the back-ends' own state (DEVICE_STATE): saved by the source's, loaded by the destination's */
  deviceState?: { save?: DeviceStateTransfer; load?: DeviceStateTransfer };
  /** what the proxy read of the source's dirty log (`--rings`) */
  dirtyLog?: Omit<DirtyLogEvent, 'type' | 'session'>;
  /** the proxy ended the destination's session (a fault rule, bad input): when and why */
  destinationCut?: { ns: bigint; reason: string };
}

/** One SET_DEVICE_STATE_FD transfer and what the back-end answered to it and to CHECK_DEVICE_STATE. */
export interface DeviceStateTransfer {
  direction: string;
  ns: bigint;
  fd?: string;
  /** SET_DEVICE_STATE_FD's answer: "ok" or "error N" */
  result?: string;
  /** CHECK_DEVICE_STATE's answer, when it was asked */
  checked?: string;
  /** what went through the proxy's pipe (interposed transfers), and for how long */
  bytes?: number;
  ms?: number;
  /** the copy failed: the peers saw the pipe end early */
  copyError?: string;
  /** a fault rule held the bytes this long before the copy began */
  heldMs?: number;
}

interface SessionState {
  startNs: bigint;
  logAll: boolean;
  logAllNs?: bigint;
  log?: Migration['log'];
  memoryBytes: bigint;
  /** the virtio features the front-end acked last */
  features?: bigint;
  /** what the session negotiated (which requests stop a ring) */
  negotiation: Negotiation;
  started: Set<number>;
  deviceState?: DeviceStateTransfer;
}

export function findMigrations(events: ProxyEvent[]): Migration[] {
  const sessions = new Map<number, SessionState>();
  const bySource = new Map<number, Migration>();
  /** each source's guest memory size: a destination with another is another VM */
  const sourceMemory = new Map<number, bigint>();
  /** sessions the proxy ended itself */
  const cut = new Map<number, { ns: bigint; reason: string }>();
  /** the last dirty log each session read */
  const dirtyLogs = new Map<number, NonNullable<Migration['dirtyLog']>>();
  const state = (id: number, ts: bigint): SessionState => {
    let s = sessions.get(id);
    if (!s) sessions.set(id, (s = { startNs: ts, logAll: false, memoryBytes: 0n, negotiation: newNegotiation(), started: new Set() }));
    return s;
  };
  for (const e of events) {
    if (e.type === 'session-start')
      sessions.set(e.session, { startNs: e.ts, logAll: false, memoryBytes: 0n, negotiation: newNegotiation(), started: new Set() });
    if (e.type === 'device-state') {
      const t = sessions.get(e.session)?.deviceState;
      if (t && t.direction === e.direction)
        Object.assign(t, {
          bytes: e.bytes,
          ms: Number(e.ts - e.startNs) / 1e6,
          ...(e.error ? { copyError: e.error } : {}),
          ...(e.heldMs ? { heldMs: e.heldMs } : {}),
        });
    }
    if (e.type === 'session-end' && e.by === 'proxy') cut.set(e.session, { ns: e.ts, reason: e.reason });
    if (e.type === 'dirty-log') {
      const { type: _t, session: _s, ...figures } = e;
      dirtyLogs.set(e.session, figures);
    }
    if (e.type !== 'message' || e.channel !== 'main' || e.undelivered) continue;
    const s = state(e.session, e.ts);
    const d = e.decoded;
    const p = d.payload as Record<string, unknown>;
    applyMainMessage(s.negotiation, d.request, d.flags, e.raw.subarray(HEADER_SIZE));
    if (d.reply) {
      if (stopsVring(s.negotiation, d.request) && s.logAll) {
        const m = bySource.get(e.session) ?? {
          source: e.session,
          rings: [],
          ...(s.log ? { log: s.log } : {}),
          ...(s.logAllNs !== undefined ? { logAllNs: s.logAllNs } : {}),
        };
        bySource.set(e.session, m);
        const vring = p.index as number;
        m.rings = m.rings.filter((r) => r.vring !== vring).concat({ vring, stoppedAt: p.num as number, stoppedNs: e.ts });
        sourceMemory.set(e.session, s.memoryBytes);
      }
      if (d.request === Request.SET_DEVICE_STATE_FD && s.deviceState) s.deviceState.result = deviceStateResult(p.value as bigint);
      if (d.request === Request.CHECK_DEVICE_STATE && s.deviceState) s.deviceState.checked = deviceStateResult(p.value as bigint);
      continue;
    }
    switch (d.request) {
      case Request.SET_FEATURES: {
        const on = hasBit(p.features as bigint, VirtioFeature.LOG_ALL);
        if (on && !s.logAll) s.logAllNs = e.ts;
        s.logAll = on;
        s.features = p.features as bigint;
        break;
      }
      case Request.SET_LOG_BASE: {
        const fd = e.fds[0];
        s.log = { ns: e.ts, bytes: p.mmapSize as bigint, ...(fd ? { fd: `${fd.kind}${fd.memfdName ? ` ${fd.memfdName}` : ''}` } : {}) };
        break;
      }
      case Request.SET_MEM_TABLE:
        s.memoryBytes = ((p.regions as { memorySize: bigint }[]) ?? []).reduce((n, r) => n + r.memorySize, 0n);
        break;
      case Request.ADD_MEM_REG:
        s.memoryBytes += (p.region as { memorySize: bigint }).memorySize;
        break;
      case Request.SET_DEVICE_STATE_FD: {
        const fd = e.fds[0];
        s.deviceState = { direction: String(p.direction), ns: e.ts, ...(fd ? { fd: fd.kind } : {}) };
        break;
      }
      case Request.SEND_RARP: {
        const m = [...bySource.values()].find((x) => x.destination === e.session);
        if (m && !m.announce) m.announce = `SEND_RARP at ${secs(e.ts)}`;
        break;
      }
      case Request.SET_VRING_BASE: {
        const vring = p.index as number;
        const first = !s.started.has(vring);
        s.started.add(vring);
        if (!first) break;
        for (const m of bySource.values()) {
          const ring = m.rings.find((r) => r.vring === vring && r.resumedFrom === undefined && r.stoppedNs < e.ts);
          const sameVm = sourceMemory.get(m.source) === s.memoryBytes;
          if (!ring || m.source === e.session || !sameVm || (m.destination !== undefined && m.destination !== e.session)) continue;
          m.destination = e.session;
          // QEMU sends SEND_RARP after the switchover only when the guest cannot announce itself
          if (!m.announce && s.features !== undefined && hasBit(s.features, GUEST_ANNOUNCE)) m.announce = 'GUEST_ANNOUNCE acked: the guest announces itself';
          ring.resumedFrom = p.num as number;
          ring.resumedNs = e.ts;
          break;
        }
        break;
      }
    }
  }
  for (const m of bySource.values()) {
    const save = sessions.get(m.source)?.deviceState;
    const load = m.destination !== undefined ? sessions.get(m.destination)?.deviceState : undefined;
    if (save || load) m.deviceState = { ...(save ? { save } : {}), ...(load ? { load } : {}) };
    const log = dirtyLogs.get(m.source);
    if (log) m.dirtyLog = log;
    const end = m.destination !== undefined ? cut.get(m.destination) : undefined;
    if (end) m.destinationCut = end;
  }
  return [...bySource.values()];
}

/** "dirty log read: 120 page marks on 40 pages in 31 reads (vring 0: used ring 12, buffers 100; other 8)" */
export function dirtyLogText(d: NonNullable<Migration['dirtyLog']>): string {
  const per = d.vrings.map((v) => `vring ${v.vring}: used ring ${v.usedRing}, buffers ${v.buffers}`);
  if (d.other) per.push(`other ${d.other}`);
  return `dirty log read: ${d.marks} page marks by the back-end on ${d.pages} pages in ${d.samples} reads${per.length ? ` (${per.join('; ')})` : ''} (at least: the front-end clears the log at every sync)${d.error ? `; reading stopped: ${d.error}` : ''}`;
}

function transferText(t: DeviceStateTransfer | undefined, side: string): string {
  if (!t) return `no transfer on the ${side}`;
  const carried =
    t.bytes !== undefined
      ? `, ${t.bytes} bytes in ${t.ms!.toFixed(1)} ms${t.heldMs ? `, held ${t.heldMs} ms by a fault rule` : ''}${t.copyError ? ` (cut short: ${t.copyError})` : ''}`
      : '';
  return `${t.direction} on the ${side} at ${secs(t.ns)}${t.fd ? ` (${t.fd}${carried})` : ''}: ${t.result ?? 'no answer'}, ${t.checked ? `checked ${t.checked}` : 'never checked (check VU024)'}`;
}

/** What `info` and the report print for one migration; `net`: the device announces the guest (SEND_RARP, GUEST_ANNOUNCE). */
export function migrationLines(m: Migration, net = true): string[] {
  const lines = [
    `migration: session ${m.source} (source) → ${m.destination !== undefined ? `session ${m.destination} (destination)` : 'no destination in this recording'}`,
  ];
  const log = m.log ? `SET_LOG_BASE at ${secs(m.log.ns)}, ${m.log.bytes} bytes${m.log.fd ? ` (${m.log.fd})` : ''}` : 'no SET_LOG_BASE';
  lines.push(`  dirty logging: ${log}${m.logAllNs !== undefined ? `; LOG_ALL acked at ${secs(m.logAllNs)}` : ''}`);
  if (m.dirtyLog) lines.push(`  ${dirtyLogText(m.dirtyLog)}`);
  const stop = m.rings.reduce((t, r) => (r.stoppedNs < t ? r.stoppedNs : t), m.rings[0]?.stoppedNs ?? 0n);
  const resumed = m.rings.filter((r) => r.resumedNs !== undefined).map((r) => r.resumedNs!);
  const start = resumed.length ? resumed.reduce((a, b) => (a < b ? a : b)) : undefined;
  lines.push(
    `  switchover: source rings stopped at ${secs(stop)}${start !== undefined ? `; destination rings started ${(Number(start - stop) / 1e6).toFixed(1)} ms later` : ''}`,
  );
  for (const r of [...m.rings].sort((a, b) => a.vring - b.vring)) {
    const how =
      r.resumedFrom === undefined
        ? 'not resumed in this recording'
        : r.resumedFrom === r.stoppedAt
          ? `resumed from ${r.resumedFrom} (match)`
          : `resumed from ${r.resumedFrom}: MISMATCH (check VU023)`;
    lines.push(`  vring ${r.vring}: stopped at ${r.stoppedAt}, ${how}`);
  }
  if (m.deviceState) {
    const { save, load } = m.deviceState;
    lines.push(`  device state: ${transferText(save, 'source')}; ${transferText(load, 'destination')}`);
    // QEMU carries the source's state in its migration stream and writes it into the destination's pipe
    if (save?.bytes !== undefined && load?.bytes !== undefined)
      lines.push(`  device state handed over: ${save.bytes} bytes saved, ${load.bytes} loaded${save.bytes === load.bytes ? ' (match)' : ': MISMATCH'}`);
  }
  if (m.destinationCut) {
    const after = start !== undefined ? ` ${(Number(m.destinationCut.ns - start) / 1e6).toFixed(1)} ms after its rings started` : '';
    lines.push(`  destination ended by the proxy${after}: ${m.destinationCut.reason}`);
  }
  if (m.destination !== undefined && (net || m.announce)) lines.push(`  announce: ${m.announce ?? 'none seen (no SEND_RARP, GUEST_ANNOUNCE not acked)'}`);
  return lines;
}
