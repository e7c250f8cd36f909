/**
 * Reads a recording back: every complete frame, the torn end if any, and the records turned
 * back into the proxy's events so that `show` formats them exactly like the live log.
 */
import * as fs from 'node:fs';
import {
  applyMainMessage,
  decodeMessage,
  HEADER_SIZE,
  isReply,
  isReplyExpected,
  newNegotiation,
  parseHeader,
  protocolFeatureNames,
  validateMessage,
  type Negotiation,
} from '../protocol';
import type { ProxyEvent } from '../proxy/events';
import { scanFrames, type FrameScan } from './frames';
import { unpackBatch, type RecordingRecord } from './records';

export function readRecording(file: string): FrameScan {
  return scanFrames(fs.readFileSync(file));
}

/**
 * The proxy events a recording holds, in time order. Notifications come out one by one
 * (from their batches) only when asked for: there can be millions.
 */
export function recordingEvents(records: RecordingRecord[], opts: { notifications?: boolean } = {}): ProxyEvent[] {
  const out: ProxyEvent[] = [];
  const negotiations = new Map<number, Negotiation>();
  for (const r of records) {
    switch (r.type) {
      case 'session-start':
        negotiations.set(r.session, newNegotiation());
        out.push({ type: 'session-start', ts: r.ts, session: r.session, listenPath: r.listen, connectPath: r.connect, frontend: r.frontend as 'auto', interpose: r.interpose, peers: r.peers });
        break;
      case 'message': {
        const forwarded = r.forwarded ?? r.raw;
        const h = parseHeader(forwarded);
        const n = negotiations.get(r.session) ?? newNegotiation();
        const sender = r.dir === 'F>B' ? 'frontend' : 'backend';
        const findings = validateMessage(r.raw, { channel: r.channel, sender, fdCount: r.fds.length, negotiation: n });
        if (r.channel === 'main') applyMainMessage(n, h.request, h.flags, forwarded.subarray(HEADER_SIZE));
        const reply = isReply(h.flags);
        const masked = r.forwarded && r.raw.length >= 20 && forwarded.length >= 20 ? protocolFeatureNames(r.raw.readBigUInt64LE(12) & ~forwarded.readBigUInt64LE(12)) : [];
        out.push({
          type: 'message',
          ts: r.ts,
          session: r.session,
          channel: r.channel,
          sender,
          dir: r.dir,
          raw: forwarded,
          decoded: decodeMessage(r.channel, forwarded),
          fds: r.fds,
          findings,
          ...(reply ? {} : { replyExpected: isReplyExpected(r.channel, h.request, h.flags, n) }),
          ...(r.interposed ? { interposed: true } : {}),
          ...(r.injected ? { injected: true } : {}),
          ...(r.absorbed ? { absorbed: true } : {}),
          ...(r.forwarded ? { received: r.raw, masked } : {}),
        });
        break;
      }
      case 'notify':
        if (opts.notifications) for (const e of unpackBatch(r)) out.push({ type: 'notification', ...e });
        break;
      case 'session-end':
        out.push({ type: 'session-end', ts: r.ts, session: r.session, reason: r.reason, ...(r.by ? { by: r.by as 'proxy' } : {}), messages: r.messages, fdsForwarded: r.fdsForwarded, vrings: r.vrings, relayPairs: r.relayPairs });
        break;
      default:
        break;
    }
  }
  // notifications were drained in batches: put everything in time order (stable for equal ts)
  return out.map((e, i) => ({ e, i })).sort((a, b) => (a.e.ts < b.e.ts ? -1 : a.e.ts > b.e.ts ? 1 : a.i - b.i)).map((x) => x.e);
}
