/**
 * A session's second channels: the back-end request channel (SET_BACKEND_REQ_FD) and the GPU
 * socket (GPU_SET_SOCKET). The front-end's socket stays with the proxy; the back-end gets one end
 * of a socketpair of ours; messages between the two go through the session's own pipeline
 * (validation, fault rules, interpositions, events) like those of the main channel.
 */
import { native, type Channel, type ChannelEnd } from '../native';
import {
  channelRules,
  encodeMessage,
  isReplyExpected,
  messageIsReply,
  parseHeader,
  replyAckInUse,
  requestName,
  HEADER_SIZE,
  type ChannelKind,
  type Negotiation,
  type Side,
} from '../protocol';
import { closeFds } from '../events/fds';
import type { BackPressure } from './backpressure';

export type SubChannelKind = 'backend' | 'gpu';

/** The front-end's socket and our socketpair end the back-end got. */
interface SubChannel {
  fe: Channel;
  be: Channel;
  /** requests the proxy injected towards the front-end whose replies it must absorb */
  injected: number[];
}

/** What the sub-channels need of their session. */
export interface SubChannelHost {
  readonly negotiation: Negotiation;
  readonly pressure: BackPressure;
  readonly closed: boolean;
  /** runs a callback the addon or a timer calls, ending the session (not the daemon) if it throws */
  guarded<A extends unknown[]>(where: string, fn: (...a: A) => void): (...a: A) => void;
  /** a message that goes on: validated, through the fault rules, forwarded to `to` */
  handle(channel: ChannelKind, sender: Side, to: Channel, raw: Buffer, fds: number[], ts: bigint, where: string, fdsAt: number): void;
  /** the front-end's answer to an injected request, absorbed here: reported, not forwarded */
  absorbed(kind: SubChannelKind, raw: Buffer, fds: number[], ts: bigint): void;
  /** a request the proxy sent of its own */
  injected(kind: SubChannelKind, raw: Buffer): void;
  /** a sub-channel ended (the session goes on) */
  ended(kind: SubChannelKind, reason: string): void;
  /** a peer broke the channel's framing: the session ends */
  broken(kind: SubChannelKind, side: Side, end: ChannelEnd): void;
}

export class SubChannels {
  private readonly subs = new Map<SubChannelKind, SubChannel>();

  constructor(private readonly host: SubChannelHost) {}

  get kinds(): SubChannelKind[] {
    return [...this.subs.keys()];
  }

  /** Each channel of each sub-channel, with who is at its far end (held-fd checks). */
  channels(): [Channel, string][] {
    return [...this.subs].flatMap(([kind, sub]): [Channel, string][] => [
      [sub.fe, `the frontend (${kind} channel)`],
      [sub.be, `the backend (${kind} channel)`],
    ]);
  }

  /** The channel on which `side` sends on `kind` (to answer it there). */
  channelOf(kind: SubChannelKind, side: Side): Channel | undefined {
    const sub = this.subs.get(kind);
    return side === 'frontend' ? sub?.fe : sub?.be;
  }

  /**
   * Keeps the front-end's socket, gives the back-end one end of a socketpair of ours, and relays
   * between the two. Returns the fd to forward to the back-end. On error every fd is closed, and
   * the error says so (`fdsTaken`) once the front-end's socket was handed to a channel.
   */
  interpose(kind: SubChannelKind, frontendSock: number): number {
    this.close(kind, 'replaced by a new one');
    const [ours, theirs] = native.socketpair();
    // The back-end gets its end in the blocking mode the front-end gave its own: vhost-user-gpu
    // writes a GPU_UPDATE with one sendmsg and takes a short write as an error.
    try {
      native.setNonblocking(theirs, native.nonblocking(frontendSock));
    } catch (err) {
      native.close(ours);
      native.close(theirs);
      throw err;
    }
    let fe: Channel;
    try {
      fe = this.channel(kind, 'frontend', frontendSock);
    } catch (err) {
      native.close(ours); // frontendSock was the failed Channel's, which closed it
      native.close(theirs);
      throw Object.assign(err as Error, { fdsTaken: true });
    }
    let be: Channel;
    try {
      be = this.channel(kind, 'backend', ours);
    } catch (err) {
      fe.close(); // and with it frontendSock; `ours` was the failed Channel's
      native.close(theirs);
      throw Object.assign(err as Error, { fdsTaken: true });
    }
    this.subs.set(kind, { fe, be, injected: [] });
    fe.start();
    be.start();
    return theirs;
  }

  private channel(kind: SubChannelKind, side: Side, fd: number): Channel {
    const { host } = this;
    const ch: Channel = new native.Channel(
      fd,
      channelRules(kind).maxPayload,
      host.guarded(`a ${kind}-channel message from the ${side}`, (m: Buffer, f: number[], t: bigint, at: number) => this.onMessage(kind, side, m, f, t, at)),
      host.guarded(`the end of the ${side}'s ${kind} channel`, (e: ChannelEnd | null) => this.onEnd(kind, side, e)),
      host.guarded(`the drain of the ${side}'s ${kind} channel`, () => host.pressure.drained(ch)),
    );
    return ch;
  }

  private onMessage(kind: SubChannelKind, sender: Side, raw: Buffer, fds: number[], ts: bigint, fdsAt: number): void {
    const sub = this.subs.get(kind);
    if (this.host.closed || !sub) {
      closeFds(fds);
      return;
    }
    const h = raw.length >= HEADER_SIZE ? parseHeader(raw) : undefined;
    // the front-end's answer to a request the proxy injected goes no further
    if (h && sender === 'frontend' && messageIsReply(kind, h.flags, sender) && sub.injected.includes(h.request)) {
      sub.injected.splice(sub.injected.indexOf(h.request), 1);
      this.host.absorbed(kind, raw, fds, ts);
      return;
    }
    this.host.handle(kind, sender, sender === 'frontend' ? sub.be : sub.fe, raw, fds, ts, `${kind} channel`, fdsAt);
  }

  private onEnd(kind: SubChannelKind, side: Side, end: ChannelEnd | null): void {
    if (this.host.closed) return;
    // a peer may drop its back-end channel and go on with the main one (QEMU does on errors)
    if (end === null) this.close(kind, `the ${side} closed it`);
    else this.host.broken(kind, side, end);
  }

  /** Ends one sub-channel; the session goes on. */
  close(kind: SubChannelKind, reason: string): void {
    const sub = this.subs.get(kind);
    if (!sub) return;
    this.subs.delete(kind);
    this.host.pressure.forget(sub.fe);
    this.host.pressure.forget(sub.be);
    sub.fe.close();
    sub.be.close();
    this.host.ended(kind, reason);
  }

  /** Closes every sub-channel with the session (no event: the session's end says it all). */
  closeAll(): void {
    for (const sub of this.subs.values()) {
      sub.fe.close();
      sub.be.close();
    }
    this.subs.clear();
  }

  /**
   * Sends a request of the proxy's own to the front-end, as if the back-end had sent it (e.g.
   * CONFIG_CHANGE_MSG); the front-end's reply is absorbed. False when there is no such channel.
   */
  inject(kind: SubChannelKind, request: number, payload: Buffer = Buffer.alloc(0)): boolean {
    const sub = this.subs.get(kind);
    if (this.host.closed || !sub) return false;
    const negotiation = this.host.negotiation;
    const flags = channelRules(kind).requestFlags(replyAckInUse(negotiation));
    const msg = encodeMessage(request, flags, payload);
    try {
      sub.fe.send(msg);
    } catch (err) {
      // the front-end went away under the injection (EPIPE): that ends this channel, not the daemon
      this.close(kind, `injecting ${requestName(kind, request)} failed: ${(err as Error).message}`);
      return false;
    }
    if (isReplyExpected(kind, request, flags, negotiation)) sub.injected.push(request);
    this.host.injected(kind, msg);
    return true;
  }
}
