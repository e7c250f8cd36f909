/**
 * One proxied connection: the peer that connected to our listening socket and the peer we
 * connected to. Every message goes through unchanged, in order, with its fds; each is decoded,
 * validated and reported as an event after it has been forwarded (forwarding comes first:
 * QEMU waits for replies synchronously, so the proxy's own work must not sit in front of it).
 */
import { native, type Channel, type ChannelEnd } from '../native';
import {
  applyMainMessage,
  decodeMessage,
  decoders,
  HEADER_SIZE,
  isReply,
  isReplyExpected,
  protocolFeatureNames,
  ProtocolFeature,
  Request,
  MAX_PAYLOAD,
  newNegotiation,
  parseHeader,
  validateHeader,
  validateMessage,
  type ChannelKind,
  type Negotiation,
  type Side,
} from '../protocol';
import type { Direction, MessageEvent, ProxyEvent, SessionEndEvent } from './events';
import { closeFds, describeFds, peerIdentity } from './fds';
import { Interposer } from './interposer';
import { NotificationStats, type NotificationKind } from './notification-stats';
import type { RelayHub } from './relay-hub';

/** Protocol features that move notifications off the eventfds: masked while interposing. */
const BYPASS_FEATURES = [ProtocolFeature.HOST_NOTIFIER, ProtocolFeature.INBAND_NOTIFICATIONS];
const NOTIFY_REQUESTS: Record<number, NotificationKind> = {
  [Request.SET_VRING_KICK]: 'kick',
  [Request.SET_VRING_CALL]: 'call',
  [Request.SET_VRING_ERR]: 'err',
};

/** Which of our two sockets a peer is on. */
export type Position = 'listen' | 'connect';
export type FrontendPosition = Position | 'auto';

export interface SessionOptions {
  id: number;
  listenPath: string;
  connectPath: string;
  frontend: FrontendPosition;
  emit: (e: ProxyEvent) => void;
  onClosed: (s: ProxySession) => void;
  /** interpose vring eventfds through this relay; undefined = pass them through */
  relay?: RelayHub;
  /** keep HOST_NOTIFIER / INBAND_NOTIFICATIONS offered even while interposing */
  keepFeatures?: boolean;
  /** emit a stats event this often (0: only at session end) */
  statsIntervalMs?: number;
}

const other = (p: Position): Position => (p === 'listen' ? 'connect' : 'listen');

export class ProxySession {
  readonly id: number;
  readonly negotiation: Negotiation = newNegotiation();
  private readonly legs = new Map<Position, Channel>();
  private frontendAt: Position | undefined;
  private closed = false;
  private readonly counts = { 'F>B': 0, 'B>F': 0 };
  private fdsForwarded = 0;
  private readonly interposer: Interposer | undefined;
  private readonly stats: NotificationStats;
  private statsTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: SessionOptions,
    listenFd: number,
    connectFd: number,
  ) {
    this.id = opts.id;
    if (opts.frontend !== 'auto') this.frontendAt = opts.frontend;
    this.stats = new NotificationStats(native.monotonicNs());
    if (opts.relay) {
      this.interposer = new Interposer(opts.relay, (vring, kind, e) => {
        this.stats.record(vring, kind, e.ts);
        opts.emit({ type: 'notification', ts: e.ts, session: this.id, vring, kind, count: e.count });
      });
    }
    if (opts.statsIntervalMs) {
      this.statsTimer = setInterval(() => this.emitStats(), opts.statsIntervalMs);
      this.statsTimer.unref();
    }
    const peers = { listen: peerIdentity(listenFd), connect: peerIdentity(connectFd) };
    this.legs.set('listen', this.makeLeg('listen', listenFd));
    this.legs.set('connect', this.makeLeg('connect', connectFd));
    opts.emit({
      type: 'session-start',
      ts: native.monotonicNs(),
      session: this.id,
      listenPath: opts.listenPath,
      connectPath: opts.connectPath,
      frontend: opts.frontend,
      interpose: this.interposer !== undefined,
      peers,
    });
    for (const leg of this.legs.values()) leg.start();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Where the frontend is, once known (forced, or from who spoke first). */
  get frontendPosition(): Position | undefined {
    return this.frontendAt;
  }

  private makeLeg(pos: Position, fd: number): Channel {
    return new native.Channel(
      fd,
      MAX_PAYLOAD,
      (msg, fds, ts) => this.onMessage(pos, msg, fds, ts),
      (end) => this.onEnd(pos, end),
    );
  }

  private sideOf(pos: Position): Side {
    return pos === this.frontendAt ? 'frontend' : 'backend';
  }

  private onMessage(from: Position, raw: Buffer, fds: number[], ts: bigint): void {
    if (this.closed) {
      closeFds(fds);
      return;
    }
    // The frontend always speaks first (reference §6): that fixes the roles for this session.
    if (this.frontendAt === undefined) this.frontendAt = from;
    const sender = this.sideOf(from);
    const channel: ChannelKind = 'main';
    const fdInfo = describeFds(fds);
    const findings = validateMessage(raw, { channel, sender, fdCount: fds.length, negotiation: this.negotiation });
    const fatal = findings.find((f) => f.severity === 'fatal');
    if (fatal) {
      closeFds(fds);
      this.close(`bad input from the ${sender} (${from} side): ${fatal.message}; header ${raw.subarray(0, HEADER_SIZE).toString('hex')}`, sender);
      return;
    }
    const h = parseHeader(raw);
    const reply = isReply(h.flags);
    const extra: Partial<MessageEvent> = {};
    let out = raw;
    let outFds = fds;
    try {
      if (this.interposer && !reply && sender === 'frontend' && NOTIFY_REQUESTS[h.request]) {
        const v = decoders.vringFd(raw.subarray(HEADER_SIZE));
        outFds = this.interposer.interpose(NOTIFY_REQUESTS[h.request], v.index as number, v.nofd as boolean, fds);
        extra.interposed = outFds !== fds;
      }
    } catch (err) {
      closeFds(fds);
      this.close(`cannot interpose ${h.request}: ${(err as Error).message}`, 'proxy');
      return;
    }
    if (this.interposer && !this.opts.keepFeatures && reply && sender === 'backend' && h.request === Request.GET_PROTOCOL_FEATURES && h.size === 8) {
      const offered = raw.readBigUInt64LE(HEADER_SIZE);
      const mask = BYPASS_FEATURES.reduce((m, bit) => m | (1n << BigInt(bit)), 0n);
      if (offered & mask) {
        out = Buffer.from(raw);
        out.writeBigUInt64LE(offered & ~mask, HEADER_SIZE);
        extra.masked = protocolFeatureNames(offered & mask);
        extra.received = raw;
      }
    }
    const to = this.legs.get(other(from))!;
    try {
      to.send(out, outFds); // the channel owns the fds now and closes its copies once sent
    } catch (err) {
      this.close(`forwarding to the ${this.sideOf(other(from))} failed: ${(err as Error).message}`, 'proxy');
      return;
    }
    this.fdsForwarded += outFds.length;
    const dir: Direction = sender === 'frontend' ? 'F>B' : 'B>F';
    this.counts[dir]++;
    applyMainMessage(this.negotiation, h.request, h.flags, out.subarray(HEADER_SIZE));
    const decoded = decodeMessage(channel, out);
    if (this.interposer) {
      if (reply && h.request === Request.GET_VRING_BASE) this.interposer.stopVring(decoded.payload.index as number);
      if (!reply && h.request === Request.RESET_OWNER) this.interposer.teardownAll();
    }
    this.opts.emit({
      type: 'message',
      ts,
      session: this.id,
      channel,
      sender,
      dir,
      raw: out,
      decoded,
      fds: fdInfo,
      findings,
      ...(reply ? {} : { replyExpected: isReplyExpected(channel, h.request, h.flags, this.negotiation) }),
      ...extra,
    });
  }

  private emitStats(): void {
    this.opts.relay?.drain();
    this.opts.emit({ type: 'stats', ts: native.monotonicNs(), session: this.id, vrings: this.stats.snapshot(native.monotonicNs()) });
  }

  /** Per-vring notification figures so far. */
  notificationStats(): ReturnType<NotificationStats['snapshot']> {
    this.opts.relay?.drain();
    return this.stats.snapshot(native.monotonicNs());
  }

  private onEnd(pos: Position, end: ChannelEnd | null): void {
    if (this.closed) return;
    const by = this.frontendAt ? this.sideOf(pos) : pos;
    const who = this.frontendAt ? by : `peer on the ${pos} side`;
    if (end === null) {
      this.close(`the ${who} closed the connection`, by);
      return;
    }
    const hdr = end.header.toString('hex') || '(none)';
    // An oversized header is usually not vhost-user at all: say what else is wrong with it first.
    const headerFault = end.code === 'OVERSIZE' ? validateHeader(end.header).find((f) => f.rule !== 'header-oversize') : undefined;
    const detail =
      end.code === 'EOF_MID_MESSAGE'
        ? `EOF in the middle of a message (${end.header.length}/12 header bytes, ${end.payloadReceived}/${end.payloadExpected} payload bytes)`
        : end.code === 'OVERSIZE'
          ? `${headerFault ? `${headerFault.message}; ` : ''}header announces a payload larger than ${MAX_PAYLOAD} bytes`
          : end.message;
    this.close(`bad input from the ${who}: ${detail}; header ${hdr}`, by);
  }

  /** Closes both sides (and every fd the session still holds) and reports the end once. */
  close(reason: string, by?: SessionEndEvent['by']): void {
    if (this.closed) return;
    this.closed = true;
    for (const leg of this.legs.values()) leg.close();
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.interposer?.teardownAll();
    const pairs = this.interposer?.pairs() ?? [];
    this.opts.emit({
      type: 'session-end',
      ts: native.monotonicNs(),
      session: this.id,
      reason,
      ...(by ? { by } : {}),
      messages: { ...this.counts },
      fdsForwarded: this.fdsForwarded,
      vrings: this.stats.snapshot(native.monotonicNs()),
      relayPairs: pairs.map((p) => ({ vring: p.vring, kind: p.kind, read: p.stats?.read ?? 0, written: p.stats?.written ?? 0 })),
    });
    this.opts.onClosed(this);
  }
}
