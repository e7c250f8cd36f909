/**
 * What the proxy does to a main-channel message on its way through, as named handlers chosen
 * from a table by sender, reply-or-request and request code (rules as data, handlers apart):
 * ProxySession.deliver runs the handlers a message matches, in table order, and nothing else.
 * Each row below says which spec message it serves; mainInterpositions() is the table a session
 * runs, given the parts it has (an eventfd interposer, ring snapshots, a dirty-log reader).
 */
import {
  clearPayloadBits,
  decoders,
  HEADER_SIZE,
  ProtocolFeature,
  protocolFeatureNames,
  Request,
  requestName,
  stopsVring,
  type Negotiation,
  type Side,
} from '../protocol';
import type { NotificationKind } from '../events/notification-stats';
import { notOfKind } from '../events/fds';
import type { Interposer } from './interposer';
import type { RingTracker } from './ring-tracker';
import type { DirtyLogReader } from './dirty-log-reader';
import type { InflightReader } from './inflight-reader';
import type { SubChannelKind, SubChannels } from './sub-channels';
import type { PendingMessage } from './pending-message';

/** A message on its way out: handlers may replace its bytes or fds and annotate its event. */
export interface Interposition {
  /** what it is, for the log: "cannot interpose SET_VRING_CALL (eventfd interposer): …" */
  readonly name: string;
  readonly sender: Side;
  readonly reply: boolean;
  /** the request codes it acts on; every request when absent */
  readonly requests?: readonly number[];
  /**
   * Before forwarding. A throw closes the session; the fds are closed too unless the error
   * says `fdsTaken` (a handler that handed them on).
   */
  before?(o: PendingMessage): void;
  /** Once forwarded. */
  after?(o: PendingMessage): void;
}

export class InterpositionTable {
  private readonly cache = new Map<string, readonly Interposition[]>();

  constructor(private readonly handlers: readonly Interposition[]) {}

  /** The handlers for one message, in table order. */
  for(sender: Side, reply: boolean, request: number): readonly Interposition[] {
    const key = `${sender}:${reply ? 'r' : 'q'}:${request}`;
    let hs = this.cache.get(key);
    if (!hs) {
      hs = this.handlers.filter((h) => h.sender === sender && h.reply === reply && (!h.requests || h.requests.includes(request)));
      this.cache.set(key, hs);
    }
    return hs;
  }
}

/** The parts of a session the rows act with. */
export interface SessionParts {
  /** the eventfd interposer (absent with --no-interpose) */
  interposer: Interposer | undefined;
  /** --rings */
  rings: RingTracker | undefined;
  /** --rings during a migration: the dirty log */
  dirtyLog: DirtyLogReader | undefined;
  /** --rings: the inflight region */
  inflight: InflightReader | undefined;
  subs: SubChannels;
  /** --keep-features: leave the notification-bypassing protocol features offered */
  keepFeatures: boolean;
  notice(msg: string): void;
  /** SET_DEVICE_STATE_FD: the pipe the proxy copies through */
  deviceState(o: PendingMessage): void;
  /** what the session negotiated so far (what a code means can depend on it) */
  negotiation: Negotiation;
  /** the ring as GET_VRING_BASE's answer left it */
  ringBase(vring: number, base: number, now: NonNullable<ReturnType<RingTracker['snapshotNow']>>): void;
}

const NOTIFY_REQUESTS: Record<number, NotificationKind> = {
  [Request.SET_VRING_KICK]: 'kick',
  [Request.SET_VRING_CALL]: 'call',
  [Request.SET_VRING_ERR]: 'err',
};
/** Sockets the front-end hands the back-end over the main channel: the proxy interposes them too. */
const SUB_CHANNEL_REQUESTS: Record<number, SubChannelKind> = {
  [Request.SET_BACKEND_REQ_FD]: 'backend',
  [Request.GPU_SET_SOCKET]: 'gpu',
};
/** Protocol features that move notifications off the eventfds: masked while interposing. */
const BYPASS_MASK = [ProtocolFeature.HOST_NOTIFIER, ProtocolFeature.INBAND_NOTIFICATIONS].reduce((bits, bit) => bits | (1n << BigInt(bit)), 0n);

/** SET_VRING_KICK/CALL/ERR: the peer gets an eventfd of the relay's; the relay times each notification. */
const eventfdInterposer = (interposer: Interposer, rings: RingTracker | undefined): Interposition => ({
  name: 'eventfd interposer',
  sender: 'frontend',
  reply: false,
  requests: Object.keys(NOTIFY_REQUESTS).map(Number),
  before: (o) => {
    const kind = NOTIFY_REQUESTS[o.request]!;
    const v = decoders.vringFd(o.raw.subarray(HEADER_SIZE));
    o.outFds = interposer.interpose(kind, v.index as number, v.nofd as boolean, o.outFds);
    o.extra.interposed = o.outFds !== o.fds;
    rings?.attach(v.index as number, kind, interposer.pairId(kind, v.index as number));
  },
});

/** SET_BACKEND_REQ_FD / GPU_SET_SOCKET: the socket becomes a second channel of the session. */
const subChannel = (p: SessionParts): Interposition => ({
  name: 'sub-channel',
  sender: 'frontend',
  reply: false,
  requests: Object.keys(SUB_CHANNEL_REQUESTS).map(Number),
  before: (o) => {
    if (o.fds.length !== 1) return;
    const what = notOfKind(o.fds[0]!, 'socket:');
    if (what) {
      // only a socket can be polled and relayed as a channel; anything else goes as it came
      p.notice(`${requestName('main', o.request)} carries ${what}, not a socket: forwarded as it came, not interposed (its messages are not seen)`);
      return;
    }
    o.outFds = [p.subs.interpose(SUB_CHANNEL_REQUESTS[o.request]!, o.fds[0]!)];
    o.extra.interposed = true;
  },
});

/** SET_DEVICE_STATE_FD: the state goes through a pipe of the proxy's, counted (and kept with --record-device-state). */
const deviceStatePipe = (p: SessionParts): Interposition => ({
  name: 'device-state pipe',
  sender: 'frontend',
  reply: false,
  requests: [Request.SET_DEVICE_STATE_FD],
  before: (o) => p.deviceState(o),
});

/** GET_PROTOCOL_FEATURES reply: HOST_NOTIFIER and INBAND_NOTIFICATIONS would bypass the interposed eventfds. */
const notificationFeatureMask = (): Interposition => ({
  name: 'notification-feature mask',
  sender: 'backend',
  reply: true,
  requests: [Request.GET_PROTOCOL_FEATURES],
  before: (o) => {
    if (o.raw.length !== HEADER_SIZE + 8) return;
    const done = clearPayloadBits(o.raw, BYPASS_MASK);
    if (!done) return;
    o.raw = done.message;
    o.masked.push(...protocolFeatureNames(done.cleared));
  },
});

/** SET_LOG_BASE, SET_VRING_NUM/ADDR: where the dirty log and the used rings are, for reading the log. */
const dirtyLogReader = (d: DirtyLogReader): Interposition => ({
  name: 'dirty log reader',
  sender: 'frontend',
  reply: false,
  requests: [Request.SET_LOG_BASE, Request.SET_VRING_NUM, Request.SET_VRING_ADDR],
  before: (o) => d.beforeForward(o.request, o.raw, o.outFds),
});

/** SET_INFLIGHT_FD: the region QEMU keeps across a reconnect, read as handed over and at the session's end. */
const inflightReader = (r: InflightReader): Interposition => ({
  name: 'inflight region reader',
  sender: 'frontend',
  reply: false,
  requests: [Request.SET_INFLIGHT_FD],
  before: (o) => r.beforeForward(o.raw, o.outFds),
});

/** The requests that may stop a vring (stopsVring decides by what was negotiated). */
const STOPS = [Request.GET_VRING_BASE, Request.GET_VRING_BASE_SKIP_DRAIN];

/** GET_VRING_BASE reply: read what the back-end marked before the front-end syncs (and clears) the log. */
const dirtyLogSample = (d: DirtyLogReader, p: SessionParts): Interposition => ({
  name: 'dirty log sample',
  sender: 'backend',
  reply: true,
  requests: STOPS,
  before: (o) => stopsVring(p.negotiation, o.request) && d.sample(),
});

/** Every front-end request: memory tables and ring addresses, for the ring snapshots. */
const ringTracker = (rings: RingTracker): Interposition => ({
  name: 'ring tracker',
  sender: 'frontend',
  reply: false,
  before: (o) => rings.beforeForward(o.request, o.raw, o.outFds),
});

/** GET_VRING_BASE reply: one more snapshot of the ring as the stopped back-end left it. */
const ringBaseSnapshot = (rings: RingTracker, p: SessionParts): Interposition => ({
  name: 'ring base snapshot',
  sender: 'backend',
  reply: true,
  requests: STOPS,
  before: (o) => {
    if (o.raw.length < HEADER_SIZE + 8 || !stopsVring(p.negotiation, o.request)) return;
    const st = decoders.vringState(o.raw.subarray(HEADER_SIZE));
    const now = rings.snapshotNow(st.index as number);
    if (now) p.ringBase(st.index as number, st.num as number, now);
  },
});

/** GET_VRING_BASE reply, once forwarded: the ring is stopped, its relay pairs too. */
const relayStop = (interposer: Interposer, p: SessionParts): Interposition => ({
  name: 'relay stop',
  sender: 'backend',
  reply: true,
  requests: STOPS,
  after: (o) => stopsVring(p.negotiation, o.request) && interposer.stopVring(decoders.vringState(o.raw.subarray(HEADER_SIZE)).index as number),
});

/** RESET_OWNER, once forwarded: every relay pair goes. */
const relayTeardown = (interposer: Interposer): Interposition => ({
  name: 'relay teardown',
  sender: 'frontend',
  reply: false,
  requests: [Request.RESET_OWNER],
  after: () => interposer.teardownAll(),
});

/** The main channel's table for a session with these parts, in the order the rows run. */
export function mainInterpositions(p: SessionParts): Interposition[] {
  const { interposer, rings, dirtyLog, inflight } = p;
  return [
    interposer && eventfdInterposer(interposer, rings),
    subChannel(p),
    deviceStatePipe(p),
    interposer && !p.keepFeatures && notificationFeatureMask(),
    dirtyLog && dirtyLogReader(dirtyLog),
    dirtyLog && dirtyLogSample(dirtyLog, p),
    inflight && inflightReader(inflight),
    rings && ringTracker(rings),
    rings && ringBaseSnapshot(rings, p),
    interposer && relayStop(interposer, p),
    interposer && relayTeardown(interposer),
  ].filter((row): row is Interposition => Boolean(row));
}
