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
  HEADER_SIZE,
  isReplyExpected,
  MAX_PAYLOAD,
  newNegotiation,
  parseHeader,
  validateHeader,
  validateMessage,
  type ChannelKind,
  type Negotiation,
  type Side,
} from '../protocol';
import type { Direction, ProxyEvent, SessionEndEvent } from './events';
import { closeFds, describeFds, peerIdentity } from './fds';

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

  constructor(
    private readonly opts: SessionOptions,
    listenFd: number,
    connectFd: number,
  ) {
    this.id = opts.id;
    if (opts.frontend !== 'auto') this.frontendAt = opts.frontend;
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
    const to = this.legs.get(other(from))!;
    try {
      to.send(raw, fds); // the channel owns the fds now and closes its copies once sent
    } catch (err) {
      this.close(`forwarding to the ${this.sideOf(other(from))} failed: ${(err as Error).message}`, 'proxy');
      return;
    }
    this.fdsForwarded += fds.length;
    const dir: Direction = sender === 'frontend' ? 'F>B' : 'B>F';
    this.counts[dir]++;
    const h = parseHeader(raw);
    applyMainMessage(this.negotiation, h.request, h.flags, raw.subarray(HEADER_SIZE));
    const decoded = decodeMessage(channel, raw);
    this.opts.emit({
      type: 'message',
      ts,
      session: this.id,
      channel,
      sender,
      dir,
      raw,
      decoded,
      fds: fdInfo,
      findings,
      ...(decoded.reply ? {} : { replyExpected: isReplyExpected(channel, h.request, h.flags, this.negotiation) }),
    });
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
    this.opts.emit({
      type: 'session-end',
      ts: native.monotonicNs(),
      session: this.id,
      reason,
      ...(by ? { by } : {}),
      messages: { ...this.counts },
      fdsForwarded: this.fdsForwarded,
    });
    this.opts.onClosed(this);
  }
}
