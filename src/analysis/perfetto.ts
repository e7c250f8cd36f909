/**
 * Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing): a process per
 * session, a track per channel and per vring; requests are slices that end at their reply,
 * requests without a reply and notifications are instants.
 */
import { isReplyExpected, newNegotiation, applyMainMessage, HEADER_SIZE } from '../protocol';
import type { ProxyEvent } from '../events/events';
import { formatPayload } from '../protocol';

interface TraceEvent {
  name: string;
  ph: 'X' | 'i' | 'M';
  ts?: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: 't';
  cat?: string;
  args?: Record<string, unknown>;
}

const CHANNEL_TID: Record<string, number> = { main: 1, backend: 2, gpu: 3 };
const VRING_TID = 100;

export function toPerfetto(events: ProxyEvent[]): { traceEvents: TraceEvent[]; displayTimeUnit: 'ns' } {
  const out: TraceEvent[] = [];
  const t0 = events[0]?.ts ?? 0n;
  const us = (ts: bigint): number => Number(ts - t0) / 1000;
  const named = new Set<string>();
  const track = (pid: number, tid: number, name: string): void => {
    const k = `${pid}/${tid}`;
    if (named.has(k)) return;
    named.add(k);
    out.push({ name: 'thread_name', ph: 'M', pid, tid, args: { name } });
  };
  const open = new Map<string, { ev: TraceEvent }>();
  const negotiation = new Map<number, ReturnType<typeof newNegotiation>>();
  for (const e of events) {
    if (e.type === 'session-start') {
      negotiation.set(e.session, newNegotiation());
      out.push({ name: 'process_name', ph: 'M', pid: e.session, tid: 0, args: { name: `session ${e.session}: ${e.listenPath} <-> ${e.connectPath}` } });
    } else if (e.type === 'message') {
      const tid = CHANNEL_TID[e.channel];
      track(e.session, tid, `${e.channel} channel`);
      const d = e.decoded;
      const n = negotiation.get(e.session) ?? newNegotiation();
      const key = `${e.session}/${e.channel}/${d.request}`;
      if (d.reply) {
        const o = open.get(key);
        if (o) {
          o.ev.dur = Math.max(us(e.ts) - (o.ev.ts ?? 0), 0.001);
          o.ev.args = { ...o.ev.args, reply: formatPayload(d) };
          open.delete(key);
        } else out.push({ name: `${d.name} reply`, ph: 'i', s: 't', ts: us(e.ts), pid: e.session, tid, cat: e.channel });
      } else {
        const ev: TraceEvent = {
          name: d.name,
          ph: 'X',
          ts: us(e.ts),
          dur: 0.001,
          pid: e.session,
          tid,
          cat: e.channel,
          args: { dir: e.dir, flags: d.flags, size: d.size, payload: formatPayload(d), fds: e.fds.map((f) => f.kind) },
        };
        out.push(ev);
        if (e.channel === 'main') applyMainMessage(n, d.request, d.flags, e.raw.subarray(HEADER_SIZE));
        if (isReplyExpected(e.channel, d.request, d.flags, n)) open.set(key, { ev });
      }
    } else if (e.type === 'notification') {
      const tid = VRING_TID + e.vring;
      track(e.session, tid, `vring ${e.vring}`);
      out.push({ name: e.kind, ph: 'i', s: 't', ts: us(e.ts), pid: e.session, tid, cat: 'notification', args: { count: e.count } });
    } else if (e.type === 'session-end') {
      out.push({ name: 'session end', ph: 'i', s: 't', ts: us(e.ts), pid: e.session, tid: 1, args: { reason: e.reason } });
    }
  }
  return { traceEvents: out, displayTimeUnit: 'ns' };
}
