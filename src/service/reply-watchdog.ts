/**
 * The reply watchdog: a request whose reply is due (a mandatory reply, or NEED_REPLY with
 * REPLY_ACK) and has not come within `thresholdMs` raises an alarm while it still waits, not
 * at the next request or the session's end as `check` finds it: a front-end stuck in its
 * synchronous wait is visible as it happens. Each channel has at most one request outstanding
 * (the protocol is synchronous per channel); a reply that comes after the alarm is told too.
 * An alarm while the other side waits on the other channel too (the front-end for a main-channel
 * reply, the back-end for a backend-channel one) names that request: both sides are blocked.
 */
import type { MessageEvent, ProxyEvent } from '../events/events';
import type { ChannelKind, Side } from '../protocol';

export interface OverdueReply {
  session: number;
  channel: ChannelKind;
  /** the request's name */
  request: string;
  /** who waits for the reply, and who owes it */
  waiting: Side;
  owing: Side;
  /** how long it has waited */
  waitedMs: number;
  /** the other side's request, when it waits on the other channel at the same time (both sides blocked) */
  alsoWaiting?: { channel: ChannelKind; request: string; waitedMs: number };
}

interface Pending {
  session: number;
  channel: ChannelKind;
  code: number;
  request: string;
  sender: Side;
  sinceMs: number;
  alarmed: boolean;
}

export class ReplyWatchdog {
  private readonly pending = new Map<string, Pending>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly thresholdMs: number,
    private readonly overdue: (o: OverdueReply) => void,
    private readonly lateAnswer: (o: OverdueReply) => void,
    private readonly now: () => number = Date.now,
    checkEveryMs = Math.max(50, Math.min(1000, thresholdMs / 4)),
  ) {
    this.timer = setInterval(() => this.check(), checkEveryMs);
    this.timer.unref();
  }

  onEvent(e: ProxyEvent): void {
    if (e.type === 'session-end') {
      for (const [k, p] of this.pending) if (p.session === e.session) this.pending.delete(k);
      return;
    }
    if (e.type !== 'message' || e.undelivered) return;
    const key = `${e.session}/${e.channel}`;
    if (e.decoded.reply) this.answered(key, e);
    else if (e.replyExpected)
      this.pending.set(key, {
        session: e.session,
        channel: e.channel,
        code: e.decoded.request,
        request: e.decoded.name,
        sender: e.sender,
        sinceMs: this.now(),
        alarmed: false,
      });
  }

  /** Raises the alarm for every reply now overdue (once each); the timer calls it. */
  check(): void {
    const now = this.now();
    for (const p of this.pending.values())
      if (!p.alarmed && now - p.sinceMs >= this.thresholdMs) {
        p.alarmed = true;
        this.overdue(this.describe(p, now));
      }
  }

  close(): void {
    clearInterval(this.timer);
    this.pending.clear();
  }

  private answered(key: string, e: MessageEvent): void {
    const p = this.pending.get(key);
    if (!p || p.code !== e.decoded.request) return;
    this.pending.delete(key);
    if (p.alarmed) this.lateAnswer(this.describe(p, this.now()));
  }

  private describe(p: Pending, now: number): OverdueReply {
    const owing: Side = p.sender === 'frontend' ? 'backend' : 'frontend';
    const other = [...this.pending.values()].find((o) => o.session === p.session && o.sender === owing && o.channel !== 'gpu' && p.channel !== 'gpu');
    return {
      session: p.session,
      channel: p.channel,
      request: p.request,
      waiting: p.sender,
      owing,
      waitedMs: now - p.sinceMs,
      ...(other ? { alsoWaiting: { channel: other.channel, request: other.request, waitedMs: now - other.sinceMs } } : {}),
    };
  }
}
