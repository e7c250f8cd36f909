/**
 * Reads a recording back: every complete frame, the torn end if any, and the records turned
 * back into the proxy's events so that `show` formats them exactly like the live log.
 */
import * as fs from 'node:fs';
import {
  applyMainMessage,
  Request,
  virtioFeatureNames,
  decodeMessage,
  HEADER_SIZE,
  messageIsReply,
  isReplyExpected,
  type Dialect,
  newNegotiation,
  parseHeader,
  protocolFeatureNames,
  validateMessage,
  type Negotiation,
} from '../protocol';
import type { ProxyEvent } from '../events/events';
import { scanFrames, type FrameScan } from './frames';
import { unpackBatch, type RecordingRecord } from './records';
import { decodeSnapshot } from '../rings/snapshot';

export function readRecording(file: string): FrameScan {
  return scanFrames(fs.readFileSync(file));
}

/**
 * The proxy events a recording holds, in time order. Notifications come out one by one
 * (from their batches) only when asked for: there can be millions.
 */
export function recordingEvents(records: RecordingRecord[], opts: { notifications?: boolean; dialect?: Dialect } = {}): ProxyEvent[] {
  const out: ProxyEvent[] = [];
  const negotiations = new Map<number, Negotiation>();
  for (const [frame, r] of records.entries()) {
    try {
      addRecord(r);
    } catch (err) {
      throw new Error(`frame ${frame} (${typeof r?.type === 'string' ? r.type : 'no type'}): not a valid record: ${(err as Error).message}`);
    }
  }
  // notifications were drained in batches: put everything in time order (stable for equal ts)
  return out
    .map((e, i) => ({ e, i }))
    .sort((a, b) => (a.e.ts < b.e.ts ? -1 : a.e.ts > b.e.ts ? 1 : a.i - b.i))
    .map((x) => x.e);

  function addRecord(r: RecordingRecord): void {
    switch (r.type) {
      case 'session-start':
        if (typeof r.ts !== 'bigint' || typeof r.session !== 'number') throw new Error('ts or session missing');
        negotiations.set(r.session, newNegotiation());
        out.push({
          type: 'session-start',
          ts: r.ts,
          session: r.session,
          listenPath: r.listen,
          connectPath: r.connect,
          frontend: r.frontend as 'auto',
          interpose: r.interpose,
          ...(r.observe ? { observe: true as const } : {}),
          peers: r.peers,
        });
        break;
      case 'message': {
        if (!Buffer.isBuffer(r.raw) || r.raw.length < HEADER_SIZE) throw new Error('raw is not a message');
        if (r.forwarded !== undefined && (!Buffer.isBuffer(r.forwarded) || r.forwarded.length < HEADER_SIZE)) throw new Error('forwarded is not a message');
        if (
          typeof r.ts !== 'bigint' ||
          typeof r.session !== 'number' ||
          !Array.isArray(r.fds) ||
          !['main', 'backend', 'gpu'].includes(r.channel) ||
          (r.dir !== 'F>B' && r.dir !== 'B>F')
        )
          throw new Error('ts, session, channel, direction or fds missing');
        const forwarded = r.forwarded ?? r.raw;
        const h = parseHeader(forwarded);
        const n = negotiations.get(r.session) ?? newNegotiation();
        const sender = r.dir === 'F>B' ? 'frontend' : 'backend';
        const fdsAt = typeof r.fdsAt === 'number' && r.fdsAt > 0 ? r.fdsAt : undefined;
        const findings = validateMessage(r.raw, { channel: r.channel, sender, fdCount: r.fds.length, fdsAt, negotiation: n, dialect: opts.dialect });
        if (r.channel === 'main' && !r.undelivered) applyMainMessage(n, h.request, h.flags, forwarded.subarray(HEADER_SIZE));
        const reply = messageIsReply(r.channel, h.flags, sender);
        const cleared = r.forwarded && r.raw.length >= 20 && forwarded.length >= 20 ? r.raw.readBigUInt64LE(12) & ~forwarded.readBigUInt64LE(12) : 0n;
        const virtio = r.channel === 'main' && (h.request === Request.GET_FEATURES || h.request === Request.SET_FEATURES);
        const masked = virtio ? virtioFeatureNames(cleared) : protocolFeatureNames(cleared);
        out.push({
          type: 'message',
          ts: r.ts,
          session: r.session,
          channel: r.channel,
          sender,
          dir: r.dir,
          raw: forwarded,
          decoded: decodeMessage(r.channel, forwarded, sender, { negotiation: n, dialect: opts.dialect }),
          fds: r.fds,
          findings,
          ...(reply ? {} : { replyExpected: isReplyExpected(r.channel, h.request, h.flags, n, opts.dialect) }),
          ...(r.interposed ? { interposed: true } : {}),
          ...(r.injected ? { injected: true } : {}),
          ...(r.absorbed ? { absorbed: true } : {}),
          ...(r.forwarded ? { received: r.raw, masked } : {}),
          ...(Array.isArray(r.faults) ? { faults: r.faults.map(String) } : {}),
          ...(r.undelivered === 'dropped' || r.undelivered === 'answered' ? { undelivered: r.undelivered } : {}),
          ...(typeof r.heldNs === 'bigint' ? { heldNs: r.heldNs } : {}),
          ...(fdsAt ? { fdsAt } : {}),
        });
        break;
      }
      case 'fault':
        if (typeof r.ts !== 'bigint' || typeof r.session !== 'number' || typeof r.detail !== 'string') throw new Error('ts, session or detail missing');
        out.push({ type: 'fault', ts: r.ts, session: r.session, rule: String(r.rule), text: String(r.text), action: r.action as 'drop', detail: r.detail });
        break;
      case 'device-state':
        if (typeof r.ts !== 'bigint' || typeof r.session !== 'number' || typeof r.bytes !== 'number' || (r.direction !== 'save' && r.direction !== 'load'))
          throw new Error('ts, session, bytes or direction missing');
        out.push({
          type: 'device-state',
          ts: r.ts,
          session: r.session,
          direction: r.direction,
          startNs: typeof r.startNs === 'bigint' ? r.startNs : r.ts,
          bytes: r.bytes,
          ...(typeof r.error === 'string' ? { error: r.error } : {}),
          ...(Buffer.isBuffer(r.data) ? { data: r.data } : {}),
          ...(r.truncated === true ? { truncated: true } : {}),
          ...(typeof r.heldMs === 'number' ? { heldMs: r.heldMs } : {}),
        });
        break;
      case 'dirty-log': {
        const counts = [r.bytes, r.samples, r.marks, r.pages, r.other];
        if (typeof r.ts !== 'bigint' || typeof r.session !== 'number' || !counts.every((n) => typeof n === 'number') || !Array.isArray(r.vrings))
          throw new Error('ts, session, counts or vrings missing');
        const vrings = r.vrings.map((v) => ({ vring: Number(v.vring), usedRing: Number(v.usedRing), buffers: Number(v.buffers) }));
        out.push({
          type: 'dirty-log',
          ts: r.ts,
          session: r.session,
          startNs: typeof r.startNs === 'bigint' ? r.startNs : r.ts,
          bytes: r.bytes,
          samples: r.samples,
          marks: r.marks,
          pages: r.pages,
          vrings,
          other: r.other,
          ...(typeof r.error === 'string' ? { error: r.error } : {}),
        });
        break;
      }
      case 'inflight': {
        const counts = [r.mmapSize, r.numQueues, r.queueSize];
        if (typeof r.ts !== 'bigint' || typeof r.session !== 'number' || !counts.every((n) => typeof n === 'number') || !Array.isArray(r.queues))
          throw new Error('ts, session, sizes or queues missing');
        if (r.when !== 'SET_INFLIGHT_FD' && r.when !== 'session end') throw new Error(`when is ${String(r.when)}`);
        const queues = r.queues.map((q) => ({
          vring: Number(q.vring),
          features: typeof q.features === 'bigint' ? q.features : 0n,
          version: Number(q.version),
          descNum: Number(q.descNum),
          lastBatchHead: Number(q.lastBatchHead),
          usedIdx: Number(q.usedIdx),
          inflight: Array.isArray(q.inflight) ? q.inflight.map(Number) : [],
          inflightCount: Number(q.inflightCount),
        }));
        out.push({
          type: 'inflight',
          ts: r.ts,
          session: r.session,
          when: r.when,
          mmapSize: r.mmapSize,
          numQueues: r.numQueues,
          queueSize: r.queueSize,
          queues,
          ...(typeof r.error === 'string' ? { error: r.error } : {}),
        });
        break;
      }
      case 'ring': {
        if (!Buffer.isBuffer(r.raw) || typeof r.session !== 'number' || typeof r.vring !== 'number') throw new Error('raw, session or vring missing');
        const { snapshot } = decodeSnapshot(r.raw);
        out.push({
          type: 'ring',
          ts: snapshot.ts,
          session: r.session,
          vring: r.vring,
          snapshot,
          raw: r.raw,
          ...(typeof r.base === 'number' ? { base: r.base } : {}),
        });
        break;
      }
      case 'notify-injected':
        if (typeof r.ts !== 'bigint' || typeof r.session !== 'number' || typeof r.vring !== 'number') throw new Error('ts, session or vring missing');
        if (opts.notifications) out.push({ type: 'notification', ts: r.ts, session: r.session, vring: r.vring, kind: r.kind, count: 1, injected: true });
        break;
      case 'notify':
        if (
          typeof r.ts0 !== 'bigint' ||
          !Array.isArray(r.dt) ||
          !Array.isArray(r.vk) ||
          !Array.isArray(r.c) ||
          r.dt.length !== r.vk.length ||
          r.dt.length !== r.c.length ||
          !r.dt.every((x) => Number.isInteger(x) && x >= 0)
        )
          throw new Error('notification columns malformed');
        if (opts.notifications) for (const e of unpackBatch(r)) out.push({ type: 'notification', ...e });
        break;
      case 'session-end':
        if (typeof r.ts !== 'bigint' || typeof r.session !== 'number' || typeof r.messages !== 'object' || r.messages === null)
          throw new Error('ts, session or counts missing');
        out.push({
          type: 'session-end',
          ts: r.ts,
          session: r.session,
          reason: r.reason,
          ...(r.by ? { by: r.by as 'proxy' } : {}),
          messages: r.messages,
          fdsForwarded: r.fdsForwarded,
          vrings: r.vrings,
          relayPairs: r.relayPairs,
        });
        break;
      default:
        break;
    }
  }
}
