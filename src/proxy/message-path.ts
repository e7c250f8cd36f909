/**
 * A message's path through the session, one way through named stages:
 *
 *   handle   check the header and size against the channel's rules (a fatal finding ends the
 *            session) and parse the header once, into a PendingMessage
 *   faults   the fault rules, if any, decide its fate (fault-runner.ts), in stream order
 *   settle   forward it, or report it as not forwarded (and answer its sender when a rule did)
 *   deliver  run the interpositions its channel, sender, reply and request select
 *            (interpositions.ts), forward it with its fds, account for the peer's reading
 *   report   decode it and emit it as a message event
 *
 * Decoding comes after forwarding: QEMU waits for replies synchronously, so the proxy's own work
 * must not sit in front of it.
 */
import { native, type Channel } from '../native';
import {
  applyMainMessage,
  decodeMessage,
  HEADER_SIZE,
  isReplyExpected,
  messageIsReply,
  parseHeader,
  requestName,
  validateMessage,
  type ChannelKind,
  type Dialect,
  type Finding,
  type Negotiation,
  type Side,
} from '../protocol';
import type { Direction, FdDescription, MessageEvent, ProxyEvent, SessionEndEvent } from '../events/events';
import { closeFds, describeFds } from '../events/fds';
import type { BackPressure } from './backpressure';
import { peerGone } from './channel-end';
import type { FaultOutcome, FaultRunner } from './fault-runner';
import type { PendingMessage } from './pending-message';
import type { Interposition, InterpositionTable } from './interpositions';

export interface PathParts {
  session: number;
  emit: (e: ProxyEvent) => void;
  negotiation: Negotiation;
  dialect?: Dialect;
  /** pauses a sender while the peer it sends to is not reading */
  pressure: BackPressure;
  /** what the proxy does to main-channel messages on their way */
  interpositions: InterpositionTable;
  /** the fault rules' stage, when the daemon has rules */
  faults?: FaultRunner;
}

/** What the path asks of its session. */
export interface PathHost {
  readonly closed: boolean;
  close(reason: string, by?: SessionEndEvent['by'], first?: Side): void;
  /** the channel on which `side` sends on `channel` (to answer it there) */
  channelTo(channel: ChannelKind, side: Side): Channel | undefined;
}

const receiverOf = (sender: Side): Side => (sender === 'frontend' ? 'backend' : 'frontend');

export class MessagePath {
  /** messages reported, by direction */
  readonly counts = { 'F>B': 0, 'B>F': 0 };
  /** fds handed to a peer */
  fdsForwarded = 0;

  constructor(
    private readonly parts: PathParts,
    private readonly host: PathHost,
  ) {}

  /**
   * Stage 1: validates and parses the header once, then hands the message to the fault rules (if
   * any) or on to settle(). `fdsAt`: the bytes of the message that came before its first fd.
   */
  handle(channel: ChannelKind, sender: Side, to: Channel, raw: Buffer, fds: number[], ts: bigint, where: string, fdsAt = 0): void {
    const { negotiation, dialect } = this.parts;
    const findings = validateMessage(raw, { channel, sender, fdCount: fds.length, fdsAt, negotiation, dialect });
    const fatal = findings.find((f) => f.severity === 'fatal');
    if (fatal) {
      closeFds(fds);
      this.host.close(`bad input from the ${sender} (${where}): ${fatal.message}; header ${raw.subarray(0, HEADER_SIZE).toString('hex')}`, sender);
      return;
    }
    const h = parseHeader(raw);
    const m: PendingMessage = {
      channel,
      sender,
      raw,
      received: raw,
      fds,
      outFds: fds,
      extra: fdsAt ? { fdsAt } : {},
      ts,
      findings,
      request: h.request,
      flags: h.flags,
      reply: messageIsReply(channel, h.flags, sender),
      to,
      faults: [],
      masked: [],
    };
    if (this.parts.faults) this.parts.faults.submit(m);
    else this.deliver(m);
  }

  /** Stage 3: what the fault rules decided. */
  settle(m: PendingMessage, outcome: FaultOutcome): void {
    if (outcome.kind === 'forward') {
      this.deliver(m);
      return;
    }
    const fdInfo = describeFds(m.fds);
    closeFds(m.fds);
    this.report(m.channel, m.sender, m.received, fdInfo, m.findings, m.ts, { ...m.extra, faults: m.faults, undelivered: outcome.kind });
    if (outcome.kind === 'answered' && outcome.reply) this.answer(m, outcome.reply, [outcome.rule]);
  }

  /** Sends a reply of the proxy's own to the sender of `m`, on its channel. */
  private answer(m: PendingMessage, reply: Buffer, faults: string[]): void {
    const back = this.host.channelTo(m.channel, m.sender);
    if (!back || this.host.closed) return;
    try {
      back.send(reply);
    } catch (err) {
      this.host.close(`answering the ${m.sender} (${m.channel} channel) failed: ${(err as Error).message}`, 'proxy');
      return;
    }
    this.report(m.channel, receiverOf(m.sender), reply, [], [], native.monotonicNs(), { injected: true, faults });
  }

  /** The bytes of a chaos-split message that deliver() held back. */
  sendRest(m: PendingMessage): void {
    if (this.host.closed || !m.splitAt) return;
    this.sendOut(m, m.raw.subarray(m.splitAt), [], `the rest of ${requestName(m.channel, m.request)}`);
  }

  /**
   * Sends `bytes` of `m` (and `fds`: the channel owns them now and closes its copies once sent)
   * to its receiver; returns the bytes still queued, or undefined when the send failed and closed
   * the session (a peer that has gone closed the connection: that is no failure of the proxy).
   */
  private sendOut(m: PendingMessage, bytes: Buffer, fds: number[], what: string): number | undefined {
    try {
      return m.to.send(bytes, fds);
    } catch (err) {
      const receiver = receiverOf(m.sender);
      if (m.channel === 'main' && peerGone(err)) this.host.close(`the ${receiver} closed the connection (found forwarding ${what} to it)`, receiver);
      else this.host.close(`forwarding to the ${receiver} (${m.channel} channel) failed: ${(err as Error).message}`, 'proxy');
      return undefined;
    }
  }

  /** Stage 4: interposes (the table's handlers for this message, in order), forwards, then reports. */
  private deliver(m: PendingMessage): void {
    if (this.host.closed) {
      closeFds(m.fds);
      return;
    }
    const { channel, sender, fds, findings, to, request } = m;
    const fdInfo = describeFds(fds);
    const stages = channel === 'main' ? this.parts.interpositions.for(sender, m.reply, request) : [];
    let stage: Interposition | undefined;
    try {
      for (stage of stages) stage.before?.(m);
    } catch (err) {
      // a handler that replaced the fds owns the received ones; what it made for the peer is ours to close
      if (!(err as { fdsTaken?: boolean }).fdsTaken) closeFds(m.outFds !== fds ? m.outFds : fds);
      this.host.close(`cannot interpose ${requestName(channel, request)} (${stage?.name}): ${(err as Error).message}`, 'proxy');
      return;
    }
    if (m.raw !== m.received) {
      m.extra.received = m.received;
      m.extra.masked = m.masked;
    }
    const receiver = receiverOf(sender);
    const nFds = m.outFds.length;
    // a chaos split sends the rest later (sendRest)
    const queued = this.sendOut(m, m.splitAt ? m.raw.subarray(0, m.splitAt) : m.raw, m.outFds, requestName(channel, request));
    if (queued === undefined) return;
    this.parts.pressure.afterSend(this.host.channelTo(channel, sender), to, queued, channel === 'main' ? receiver : `${receiver} (${channel} channel)`, nFds);
    this.fdsForwarded += m.outFds.length;
    if (channel === 'main') applyMainMessage(this.parts.negotiation, request, m.flags, m.raw.subarray(HEADER_SIZE));
    for (const st of stages) st.after?.(m);
    if (m.faults.length) m.extra.faults = m.faults;
    let ts = m.ts;
    if (m.heldNs !== undefined) {
      m.extra.heldNs = m.heldNs;
      ts = native.monotonicNs();
    }
    this.report(channel, sender, m.raw, fdInfo, findings, ts, m.extra);
  }

  /** A message the proxy took in itself (a reply to one of its own requests): reported, not forwarded. */
  absorbed(channel: ChannelKind, sender: Side, raw: Buffer, fds: number[], ts: bigint): void {
    const { negotiation, dialect } = this.parts;
    const fdInfo = describeFds(fds);
    closeFds(fds);
    this.report(channel, sender, raw, fdInfo, validateMessage(raw, { channel, sender, fdCount: fds.length, negotiation, dialect }), ts, { absorbed: true });
  }

  /** Stage 5: decodes the message as it went out and emits it. */
  report(channel: ChannelKind, sender: Side, raw: Buffer, fds: FdDescription[], findings: Finding[], ts: bigint, extra: Partial<MessageEvent>): void {
    const { negotiation, dialect, session } = this.parts;
    const dir: Direction = sender === 'frontend' ? 'F>B' : 'B>F';
    this.counts[dir]++;
    const decoded = decodeMessage(channel, raw, sender, { negotiation, dialect });
    this.parts.emit({
      type: 'message',
      ts,
      session,
      channel,
      sender,
      dir,
      raw,
      decoded,
      fds,
      findings,
      ...(decoded.reply ? {} : { replyExpected: isReplyExpected(channel, decoded.request, decoded.flags, negotiation, dialect) }),
      ...extra,
    });
  }
}
