/** What each proxy event becomes in a recording: one record per event, notifications batched. */
import { HEADER_SIZE } from '../protocol';
import type { DeviceStateEvent, DirtyLogEvent, FaultEvent, MessageEvent, NotificationEvent, SessionEndEvent, SessionStartEvent } from '../events/events';
import {
  KIND_CODES,
  type DeviceStateRecord,
  type DirtyLogRecord,
  type FaultRecord,
  type MessageRecord,
  type NotifyBatchRecord,
  type SessionEndRecord,
  type SessionStartRecord,
} from './records';

/**
 * A message's bytes as recorded: whole up to 64 KiB of payload (every message but a large
 * GPU_UPDATE); beyond that its first 4 KiB, the header keeping the real size. A full-screen
 * GPU_UPDATE is megabytes of pixels per frame: the recording keeps the rectangle and the first
 * pixels, and readers report the rest as not recorded.
 */
export const RECORD_WHOLE_PAYLOAD = 64 * 1024;
export const RECORD_PAYLOAD_PREFIX = 4096;
export function recordedBytes(raw: Buffer): Buffer {
  return raw.length - HEADER_SIZE > RECORD_WHOLE_PAYLOAD ? Buffer.from(raw.subarray(0, HEADER_SIZE + RECORD_PAYLOAD_PREFIX)) : raw;
}

export function sessionStartRecord(e: SessionStartEvent): SessionStartRecord {
  return {
    type: 'session-start',
    ts: e.ts,
    session: e.session,
    listen: e.listenPath,
    connect: e.connectPath,
    frontend: e.frontend,
    interpose: e.interpose,
    ...(e.observe ? { observe: true as const } : {}),
    peers: e.peers,
  };
}

/** The message as the sender sent it; what was forwarded too, when the proxy changed it. */
export function messageRecord(e: MessageEvent): MessageRecord {
  return {
    type: 'message',
    ts: e.ts,
    session: e.session,
    channel: e.channel,
    dir: e.dir,
    raw: recordedBytes(e.received ?? e.raw),
    fds: e.fds,
    ...(e.received ? { forwarded: recordedBytes(e.raw) } : {}),
    ...(e.interposed ? { interposed: true } : {}),
    ...(e.injected ? { injected: true } : {}),
    ...(e.absorbed ? { absorbed: true } : {}),
    ...(e.faults ? { faults: e.faults } : {}),
    ...(e.undelivered ? { undelivered: e.undelivered } : {}),
    ...(e.heldNs !== undefined ? { heldNs: e.heldNs } : {}),
    ...(e.fdsAt ? { fdsAt: e.fdsAt } : {}),
  };
}

export function dirtyLogRecord(e: DirtyLogEvent): DirtyLogRecord {
  const { type, ts, session, startNs, bytes, samples, marks, pages, vrings, other, error } = e;
  return { type, ts, session, startNs, bytes, samples, marks, pages, vrings, other, ...(error ? { error } : {}) };
}

export function deviceStateRecord(e: DeviceStateEvent): DeviceStateRecord {
  return {
    type: 'device-state',
    ts: e.ts,
    session: e.session,
    direction: e.direction,
    startNs: e.startNs,
    bytes: e.bytes,
    ...(e.error ? { error: e.error } : {}),
    ...(e.data ? { data: e.data } : {}),
    ...(e.truncated ? { truncated: true } : {}),
    ...(e.heldMs ? { heldMs: e.heldMs } : {}),
  };
}

export function faultRecord(e: FaultEvent): FaultRecord {
  return { type: 'fault', ts: e.ts, session: e.session, rule: e.rule, text: e.text, action: e.action, detail: e.detail };
}

/** The session's end, with the notifications the recording lost (`dropped`) and the ring snapshots it could not keep. */
export function sessionEndRecord(e: SessionEndEvent, dropped: number, droppedRings: number): SessionEndRecord {
  return {
    type: 'session-end',
    ts: e.ts,
    session: e.session,
    reason: e.reason,
    ...(e.by ? { by: e.by } : {}),
    messages: e.messages,
    fdsForwarded: e.fdsForwarded,
    vrings: e.vrings,
    relayPairs: e.relayPairs,
    droppedNotifications: dropped,
    ...(droppedRings ? { droppedRings } : {}),
  };
}

/** A session's notifications as columns: time deltas, vring and kind, counts. */
export class NotifyBatch {
  readonly record: NotifyBatchRecord;
  private last: bigint;

  constructor(session: number, ts0: bigint) {
    this.record = { type: 'notify', session, ts0, dt: [], vk: [], c: [] };
    this.last = ts0;
  }

  /** Adds a notification; returns how many the batch holds now. */
  add(e: NotificationEvent): number {
    const b = this.record;
    const dt = e.ts >= this.last ? e.ts - this.last : 0n; // the relay ring is in order; guard anyway
    b.dt.push(Number(dt));
    b.vk.push(e.vring * 4 + KIND_CODES[e.kind]);
    b.c.push(e.count);
    if (e.replaced) (b.replaced ??= []).push(b.dt.length - 1);
    if (e.ts > this.last) this.last = e.ts;
    return b.dt.length;
  }
}
