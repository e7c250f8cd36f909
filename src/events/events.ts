/**
 * What the proxy observes, as plain data: the log formats it, the recorder (later) stores it,
 * tests assert on it. One shape for every consumer.
 */
import type { FdInfo } from '../native';
import type { ChannelKind, DecodedMessage, Finding, Side } from '../protocol';
import type { NotificationKind, VringStats } from './notification-stats';
import type { RingSnapshot } from '../rings/snapshot';
import type { InflightQueue } from '../rings/inflight';

export type Direction = 'F>B' | 'B>F';

export interface FdDescription {
  slot: number;
  kind: FdInfo['kind'] | 'unknown';
  size?: number;
  memfdName?: string;
  seals?: number;
  eventfdId?: number;
  target?: string;
}

export interface MessageEvent {
  type: 'message';
  /** CLOCK_MONOTONIC ns when the message was complete in the proxy */
  ts: bigint;
  session: number;
  channel: ChannelKind;
  sender: Side;
  dir: Direction;
  raw: Buffer;
  decoded: DecodedMessage;
  fds: FdDescription[];
  findings: Finding[];
  /** for requests: whether the far side must answer */
  replyExpected?: boolean;
  /** the proxy forwarded its own eventfd in place of the peer's (SET_VRING_KICK/CALL/ERR) */
  interposed?: boolean;
  /** protocol features the proxy cleared in this GET_PROTOCOL_FEATURES reply */
  masked?: string[];
  /** the message as the sender sent it, when the proxy forwarded a changed `raw` */
  received?: Buffer;
  /** sent by the proxy itself (--inject), not by the peer it is attributed to */
  injected?: boolean;
  /** a reply to an injected request: the proxy kept it */
  absorbed?: boolean;
  /** ids of the fault rules applied to this message */
  faults?: string[];
  /** a fault rule kept it from the far side: dropped, or answered by the proxy */
  undelivered?: 'dropped' | 'answered';
  /** a fault rule held or delayed it: forwarded this long after it arrived (then `ts` is when it was forwarded) */
  heldNs?: bigint;
  /** the bytes of the message that came before its fds, when not 0 (the spec puts them with the header's first byte) */
  fdsAt?: number;
}

/** A fault rule did something (proxy --fault / --rules / `vhostscope rules add`). */
export interface FaultEvent {
  type: 'fault';
  ts: bigint;
  session: number;
  /** the rule's id */
  rule: string;
  /** the rule in the short syntax */
  text: string;
  action: 'delay' | 'drop' | 'answer' | 'hold' | 'hold-state' | 'inject' | 'mask' | 'disconnect' | 'filter' | 'chaos';
  detail: string;
}

/**
 * A device-state transfer the proxy carried (SET_DEVICE_STATE_FD's pipe, interposed), once it
 * ended: `ts` is its end, `startNs` when the pipe was handed over.
 */
export interface DeviceStateEvent {
  type: 'device-state';
  ts: bigint;
  session: number;
  direction: 'save' | 'load';
  startNs: bigint;
  bytes: number;
  /** how the copy failed (the peers saw their ends close early) */
  error?: string;
  /** --record-device-state: the bytes, the first `keep` of them when `truncated` */
  data?: Buffer;
  truncated?: boolean;
  /** how long a fault rule (hold-state) kept the bytes back before the copy began */
  heldMs?: number;
}

/** An interposed second channel (backend request channel, GPU socket) ended; the session goes on. */
export interface ChannelEndEvent {
  type: 'channel-end';
  ts: bigint;
  session: number;
  channel: ChannelKind;
  reason: string;
}

/** One relayed vring notification (eventfd counts may have coalesced into `count`). */
export interface NotificationEvent {
  type: 'notification';
  ts: bigint;
  session: number;
  vring: number;
  kind: NotificationKind;
  count: number;
  /** signalled by the proxy (fault rule inject), not relayed from a peer */
  injected?: boolean;
  /** came on an fd a newer SET_VRING_KICK/CALL/ERR had replaced (relayed during its grace period) */
  replaced?: boolean;
}

/**
 * What was on a vring when the proxy relayed one of its kicks or calls (--rings), or when the
 * backend answered GET_VRING_BASE (kind "base", with the answer in `base`).
 */
export interface RingEvent {
  type: 'ring';
  ts: bigint;
  session: number;
  vring: number;
  snapshot: RingSnapshot;
  /** the snapshot as the relay wrote it (what the recording keeps) */
  raw: Buffer;
  /** GET_VRING_BASE's answer (num), for kind "base" */
  base?: number;
}

/** Something the proxy could not do for a session, which goes on regardless (e.g. map a region for --rings). */
export interface NoticeEvent {
  type: 'notice';
  ts: bigint;
  session: number;
  msg: string;
}

export interface StatsEvent {
  type: 'stats';
  ts: bigint;
  session: number;
  vrings: VringStats[];
}

export interface RelayPairSummary {
  vring: number;
  kind: NotificationKind;
  /** counts read from the source fd and written to the destination fd */
  read: number;
  written: number;
  /**
   * The relay thread's own time for this pair's notifications (wake-up to the forwarding write issued), bucket i
   * counting transits in [2^i, 2^(i+1)) ns, trailing empty buckets left out. Absent in older
   * recordings.
   */
  transitBuckets?: number[];
  transitSumNs?: number;
}

/** What a session reports of one relay pair (live or folded finished ones). */
export function relayPairSummary(p: {
  vring: number;
  kind: NotificationKind;
  stats: { read: number; written: number; transitBuckets?: number[]; transitSumNs?: number } | null;
}): RelayPairSummary {
  const buckets = p.stats?.transitBuckets ?? [];
  let n = buckets.length;
  while (n > 0 && !buckets[n - 1]) n--;
  return {
    vring: p.vring,
    kind: p.kind,
    read: p.stats?.read ?? 0,
    written: p.stats?.written ?? 0,
    ...(n ? { transitBuckets: buckets.slice(0, n), transitSumNs: p.stats?.transitSumNs ?? 0 } : {}),
  };
}

export interface SessionStartEvent {
  type: 'session-start';
  ts: bigint;
  session: number;
  listenPath: string;
  connectPath: string;
  frontend: 'listen' | 'connect' | 'auto';
  /** whether vring eventfds are interposed (notification timing) or passed through */
  interpose: boolean;
  /** --observe: the peers' eventfds are watched (timing on, off their path), not relayed */
  observe?: true;
  peers: { listen?: PeerIdentity; connect?: PeerIdentity };
}

/** What the proxy did with a session's (or daemon's) vring eventfds, in a word or two. */
export const eventfdMode = (s: { interpose?: unknown; observe?: unknown }): string => (s.observe ? 'observed' : s.interpose ? 'interposed' : 'passed through');

export interface SessionEndEvent {
  type: 'session-end';
  ts: bigint;
  session: number;
  reason: string;
  /** the side whose behaviour ended the session, if one did */
  by?: Side | 'listen' | 'connect' | 'proxy';
  messages: { 'F>B': number; 'B>F': number };
  fdsForwarded: number;
  /** per vring notification statistics (interposed sessions) */
  vrings: VringStats[];
  relayPairs: RelayPairSummary[];
}

/**
 * Whether a session ended in an error (bad input, a failure in the proxy, a fault rule's
 * disconnect) rather than a peer closing or the daemon stopping.
 */
export function endedInError(e: SessionEndEvent): boolean {
  return !/ closed the connection( |$)/.test(e.reason) && !e.reason.startsWith('daemon ');
}

/**
 * Whether the back-end's side ended a session (it closed, crashed, broke the protocol, or could
 * not be reached): the front-end is then expected to reconnect, as QEMU's reconnect=N does.
 */
export function endedByBackend(e: SessionEndEvent): boolean {
  return e.by === 'backend' || e.by === 'connect';
}

export interface PeerIdentity {
  pid: number;
  uid: number;
  exe?: string;
  cmdline?: string;
}

/**
 * What the proxy read of a dirty log (SET_LOG_BASE, `--rings`) once it ended (replaced, or the
 * session ended): page marks seen across `samples` reads, put down to vrings. A lower bound: the
 * front-end clears the bits at every sync, and marks set and cleared between two reads are missed.
 */
export interface DirtyLogEvent {
  type: 'dirty-log';
  ts: bigint;
  session: number;
  /** when the log was handed over (SET_LOG_BASE) */
  startNs: bigint;
  /** the log's size */
  bytes: number;
  samples: number;
  marks: number;
  /** distinct pages */
  pages: number;
  vrings: { vring: number; usedRing: number; buffers: number }[];
  other: number;
  error?: string;
}

/**
 * What the proxy read of the inflight region (`--rings`, INFLIGHT_SHMFD): as the front-end handed
 * it to the back-end (SET_INFLIGHT_FD: after a reconnect, what the new back-end must resubmit),
 * and as the session left it (what was in flight when it ended).
 */
export interface InflightEvent {
  type: 'inflight';
  ts: bigint;
  session: number;
  when: 'SET_INFLIGHT_FD' | 'session end';
  mmapSize: number;
  numQueues: number;
  queueSize: number;
  queues: InflightQueue[];
  /** why the region could not be read (or not whole) */
  error?: string;
}

export type ProxyEvent =
  | MessageEvent
  | SessionStartEvent
  | SessionEndEvent
  | NotificationEvent
  | StatsEvent
  | ChannelEndEvent
  | FaultEvent
  | RingEvent
  | NoticeEvent
  | DeviceStateEvent
  | DirtyLogEvent
  | InflightEvent;
