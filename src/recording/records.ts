/**
 * What a recording holds: one record per frame, plain msgpack maps (docs/recording-format.md).
 * Pure data: the writer and the reader both use these shapes.
 */
import type { DirtyLogEvent, FdDescription, InflightEvent, PeerIdentity, RelayPairSummary } from '../events/events';
import type { VringStats } from '../events/notification-stats';

export const FORMAT_NAME = 'vhostscope-recording';
export const FORMAT_VERSION = 1;

/** Notification kinds as stored: a small integer per event. */
export const KIND_CODES = { kick: 0, call: 1, err: 2 } as const;
export const KIND_NAMES = ['kick', 'call', 'err'] as const;

export interface HostFacts {
  byteOrder: 'LE' | 'BE';
  kernel: string;
  arch: string;
  hostname: string;
  node: string;
  vhostscope: string;
  /** every ts in the file is this clock, in ns */
  clock: 'CLOCK_MONOTONIC';
  /** the same instant on both clocks, to place monotonic timestamps in wall time */
  monotonicNs: bigint;
  wallClockMs: number;
}

/** First frame of every segment (a segment = one daemon run writing to the file). */
export interface HeaderRecord {
  type: 'header';
  format: typeof FORMAT_NAME;
  version: number;
  host: HostFacts;
  /** the command line of the recording daemon */
  argv: string[];
  /** a flight recorder's later segment file: which session it continues, and its index (1, 2, ...) */
  part?: { session: string; index: number };
}

export interface SessionStartRecord {
  type: 'session-start';
  ts: bigint;
  session: number;
  listen: string;
  connect: string;
  frontend: string;
  interpose: boolean;
  observe?: true;
  peers: { listen?: PeerIdentity; connect?: PeerIdentity };
}

export interface MessageRecord {
  type: 'message';
  ts: bigint;
  session: number;
  channel: 'main' | 'backend' | 'gpu';
  dir: 'F>B' | 'B>F';
  /** header and payload as received from the sender */
  raw: Buffer;
  /** fds in slot order, identified before forwarding */
  fds: FdDescription[];
  /** what was forwarded instead, when the proxy changed the message (masked feature bits) */
  forwarded?: Buffer;
  interposed?: boolean;
  /** sent by the proxy itself (--inject) */
  injected?: boolean;
  /** the frontend's reply to an injected request, kept by the proxy */
  absorbed?: boolean;
  /** ids of the fault rules applied to it */
  faults?: string[];
  /** not forwarded: a fault rule dropped it or answered it in the far side's place */
  undelivered?: 'dropped' | 'answered';
  /** held or delayed by a fault rule this long; `ts` is then when it was forwarded */
  heldNs?: bigint;
  /** the bytes of the message that came before its fds, when not 0 (the header's first byte) */
  fdsAt?: number;
}

/** What a fault rule did (see FaultEvent). */
export interface FaultRecord {
  type: 'fault';
  ts: bigint;
  session: number;
  rule: string;
  text: string;
  action: string;
  detail: string;
}

/** A device-state transfer through the proxy's pipe (see DeviceStateEvent). */
export interface DeviceStateRecord {
  type: 'device-state';
  ts: bigint;
  session: number;
  direction: string;
  startNs: bigint;
  bytes: number;
  error?: string;
  data?: Buffer;
  truncated?: boolean;
  heldMs?: number;
}

/** What the proxy read of a dirty log: the event as it is (every field is plain data). */
export type DirtyLogRecord = DirtyLogEvent;
export type InflightRecord = InflightEvent;

/** A kick or call the proxy signalled itself (fault rule inject); relayed ones go in notify batches. */
export interface InjectedNotificationRecord {
  type: 'notify-injected';
  ts: bigint;
  session: number;
  vring: number;
  kind: 'kick' | 'call';
}

/**
 * A batch of relayed notifications of one session, stored as columns: `dt` are deltas in ns
 * (the first from `ts0`), `vk` is vring * 4 + kind code, `c` the eventfd count. Small
 * integers pack into one msgpack byte, which keeps a notification at a few bytes.
 */
export interface NotifyBatchRecord {
  type: 'notify';
  session: number;
  ts0: bigint;
  dt: number[];
  vk: number[];
  c: number[];
  /** positions (in dt/vk/c) of notifications that came on a replaced fd; absent when none did */
  replaced?: number[];
}

export interface DropRecord {
  type: 'dropped';
  session: number;
  ts: bigint;
  /** notification events the recorder had no room for (the disk could not keep up) */
  notifications: number;
}

export interface SessionEndRecord {
  type: 'session-end';
  ts: bigint;
  session: number;
  reason: string;
  by?: string;
  messages: { 'F>B': number; 'B>F': number };
  fdsForwarded: number;
  vrings: VringStats[];
  relayPairs: RelayPairSummary[];
  droppedNotifications: number;
  /** vring snapshots not recorded because the disk fell behind (absent: none) */
  droppedRings?: number;
}

/** Written when a file is reopened after a crash: what was cut off its torn end. */
export interface RecoveryRecord {
  type: 'recovered';
  ts: bigint;
  tornBytes: number;
  reason: string;
}

/** A vring snapshot (--rings): the relay's record as is (layout: src/rings/snapshot.ts). */
export interface RingRecord {
  type: 'ring';
  session: number;
  vring: number;
  raw: Buffer;
  /** GET_VRING_BASE's answer, for snapshots of kind "base" */
  base?: number;
}

/** Which virtio device the session carries, as the proxy inferred it, and why (readers skip unknown records). */
export interface DeviceRecord {
  type: 'device';
  ts: bigint;
  session: number;
  device: string;
  reason: string;
}

export type RecordingRecord =
  | HeaderRecord
  | SessionStartRecord
  | MessageRecord
  | NotifyBatchRecord
  | DropRecord
  | SessionEndRecord
  | RecoveryRecord
  | FaultRecord
  | InjectedNotificationRecord
  | RingRecord
  | DeviceRecord
  | DeviceStateRecord
  | DirtyLogRecord
  | InflightRecord;

/** One notification, unpacked from a batch. */
export interface NotificationEntry {
  ts: bigint;
  session: number;
  vring: number;
  kind: (typeof KIND_NAMES)[number];
  count: number;
  replaced?: boolean;
}

export function* unpackBatch(b: NotifyBatchRecord): Generator<NotificationEntry> {
  let ts = b.ts0;
  const replaced = new Set(Array.isArray(b.replaced) ? b.replaced : []);
  for (let i = 0; i < b.dt.length; i++) {
    ts += BigInt(b.dt[i]);
    yield { ts, session: b.session, vring: b.vk[i] >> 2, kind: KIND_NAMES[b.vk[i] & 3], count: b.c[i], ...(replaced.has(i) ? { replaced: true } : {}) };
  }
}
