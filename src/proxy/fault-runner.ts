/**
 * Applies the daemon's fault rules to one session. Decisions are made when a message arrives
 * (and logged then); carrying them out keeps each direction of each channel in order, as a
 * stream does: a delayed message holds up the ones behind it, while a held message steps aside
 * and lets the others pass until its condition is met (that reordering is the point of hold).
 * Everything the runner did is reported as a fault event; nothing here touches a socket.
 *
 * A stage of the message's path, one way: the session hands each validated message in
 * (submit), and every message comes out once, on `next`, with what became of it (forwarded,
 * dropped, answered by the proxy). FaultEffects is what a rule may do besides: report, inject a
 * notification, disconnect a peer.
 */
import type { PendingMessage } from './pending-message';
import {
  clearPayloadBits,
  HEADER_SIZE,
  isReplyExpected,
  protocolFeatureNames,
  Request,
  requesterOf,
  synthesizeReply,
  virtioFeatureNames,
  type ChannelKind,
  type Negotiation,
  type Side,
} from '../protocol';
import {
  isNotificationMatch,
  matchesMessage,
  matchesNotification,
  type CompiledMatch,
  type FaultAction,
  type FaultRuleSet,
  type MessageFacts,
  type NotificationMatch,
  type RuleEntry,
  vringOf,
  chaosPerturbation,
  CHAOS_DEFAULT_MAX_MS,
} from '../faults';

type Verdict =
  /** `split`: chaos cuts it in two writes (the stream waits for the rest) */
  | { kind: 'forward'; delayMs: number; split?: { at: number; restMs: number } }
  | { kind: 'drop'; entry: RuleEntry }
  | { kind: 'answer'; entry: RuleEntry; value: bigint; why: string }
  /** `until`/`maxMs`: a chaos hold's own condition, else the hold rule's */
  | { kind: 'hold'; entry: RuleEntry; until?: CompiledMatch | NotificationMatch; maxMs?: number };

/** What becomes of a message the rules have seen: the stage's one output. */
export type FaultOutcome =
  /** the normal path (late when `heldNs` is set): interpose, forward, report */
  | { kind: 'forward' }
  /** not forwarded; its fds are the next stage's to close */
  | { kind: 'dropped' }
  /** not forwarded; the proxy answers the sender with `reply` when it can make one up */
  | { kind: 'answered'; reply?: Buffer; rule: string };

/** What a rule may do besides deciding a message's fate. */
export interface FaultEffects {
  readonly negotiation: Negotiation;
  now(): bigint;
  /** signal the vring's interposed eventfd; returns why not when it cannot */
  injectNotification(kind: 'kick' | 'call', vring: number): string | undefined;
  /** report an injected notification as an event (after the fault event that caused it) */
  injected(kind: 'kick' | 'call', vring: number): void;
  disconnect(side: Side, reason: string): void;
  /** send what a split message held back (its bytes from splitAt on) */
  sendRest(m: PendingMessage): void;
  /** report what a rule did (a fault event) */
  fault(rule: RuleEntry, action: FaultAction, detail: string): void;
}

interface Stream {
  queue: { m: PendingMessage; verdict: Verdict; readyAt: number }[];
  timer?: NodeJS.Timeout;
}

interface Held {
  m: PendingMessage;
  entry: RuleEntry;
  until: CompiledMatch | NotificationMatch;
  timer: NodeJS.Timeout;
}

const DEFAULT_HOLD_MS = 5000;

/** How a hold is reported: a chaos rule's as chaos. */
const actionOf = (e: RuleEntry): FaultAction => (e.rule.action === 'chaos' ? 'chaos' : 'hold');

const FEATURE_REQUESTS = {
  virtio: { offer: Request.GET_FEATURES, ack: Request.SET_FEATURES },
  protocol: { offer: Request.GET_PROTOCOL_FEATURES, ack: Request.SET_PROTOCOL_FEATURES },
};

export class FaultRunner {
  private readonly counts = new Map<string, number>();
  private readonly streams = new Map<string, Stream>();
  private readonly held: Held[] = [];
  private readonly fired = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly started = Date.now();
  private disposed = false;
  private readonly unsubscribe: () => void;

  /**
   * `device`: the name of the device this session is on (a --config device's); rules scoped to
   * another device (`device=`) never apply here.
   */
  constructor(
    private readonly rules: FaultRuleSet,
    private readonly host: FaultEffects,
    private readonly next: (m: PendingMessage, outcome: FaultOutcome) => void,
    private readonly nameOf: (channel: ChannelKind, request: number) => string,
    private readonly device?: string,
  ) {
    for (const e of this.live()) this.armTimer(e);
    this.unsubscribe = rules.onChange((change, e) => change === 'added' && this.applies(e) && this.armTimer(e));
  }

  private applies(e: RuleEntry): boolean {
    return e.rule.device === undefined || e.rule.device === this.device;
  }

  /** The daemon's live rules that apply to this session. */
  private live(): RuleEntry[] {
    return this.rules.live().filter((e) => this.applies(e));
  }

  /**
   * A device-state transfer begins (its pipe interposed): how long the proxy holds its bytes
   * before copying them on (0: not at all). Every hold-state rule that applies adds its time.
   */
  stateHoldMs(direction: 'save' | 'load'): number {
    let ms = 0;
    for (const e of this.live()) {
      const r = e.rule;
      if (r.action !== 'hold-state' || ![direction, 'both'].includes(r.phase ?? 'both') || !this.rules.use(e)) continue;
      ms += r.ms;
      this.host.fault(e, 'hold-state', `the device-state ${direction} pipe held ${r.ms} ms before its bytes are copied on`);
    }
    return ms;
  }

  /** "F>B SET_VRING_KICK(vring 0)", "B>F GET_FEATURES reply" */
  private describe(m: PendingMessage): string {
    const vring = vringOf({ channel: m.channel, sender: m.sender, request: m.request, reply: m.reply, raw: m.received });
    const chan = m.channel === 'main' ? '' : `${m.channel}:`;
    return `${m.sender === 'frontend' ? 'F>B' : 'B>F'} ${chan}${this.nameOf(m.channel, m.request)}${m.reply ? ' reply' : ''}${vring !== undefined ? `(vring ${vring})` : ''}`;
  }

  /** Counts a match of `ref` (rule id + role) and says whether the rule's nth lets it apply. */
  private nth(key: string, ref: CompiledMatch): boolean {
    const n = (this.counts.get(key) ?? 0) + 1;
    this.counts.set(key, n);
    return ref.nth === undefined || ref.nth === n;
  }

  /** A message arrived (validated): decide, log, then queue it on its stream. */
  submit(m: PendingMessage): void {
    const facts: MessageFacts = { channel: m.channel, sender: m.sender, request: m.request, reply: m.reply, raw: m.received };
    let verdict: Verdict = { kind: 'forward', delayMs: 0 };
    for (const e of this.live()) {
      const c = e.compiled;
      const r = c.rule;
      if (r.action === 'mask') {
        this.applyMask(e, m);
        continue;
      }
      if (r.action === 'chaos') {
        // every message counts, perturbed or not: its place in the stream decides its fate
        const key = `${e.id}/chaos/${m.channel}/${m.sender}`;
        const index = this.counts.get(key) ?? 0;
        this.counts.set(key, index + 1);
        if (verdict.kind !== 'forward') continue;
        const p = chaosPerturbation(r.seed, r.profile ?? 'all', r.maxMs ?? CHAOS_DEFAULT_MAX_MS, {
          channel: m.channel,
          sender: m.sender,
          request: m.request,
          reply: m.reply,
          vring: vringOf(facts),
          num: m.received.length >= HEADER_SIZE + 8 ? m.received.readUInt32LE(HEADER_SIZE + 4) : undefined,
          index,
          size: m.raw.length,
        });
        if (!p || !this.rules.use(e)) continue;
        m.faults.push(e.id);
        if ('splitAt' in p) {
          verdict.split = { at: p.splitAt, restMs: p.restMs };
          this.host.fault(e, 'chaos', `${this.describe(m)} split in two writes: ${p.splitAt} of ${m.raw.length} bytes, the rest ${p.restMs} ms later`);
        } else if ('delayMs' in p) {
          verdict.delayMs += p.delayMs;
          this.host.fault(e, 'chaos', `${this.describe(m)} delayed by ${p.delayMs} ms (${p.why})`);
        } else verdict = { kind: 'hold', entry: e, until: { notification: 'kick', vring: p.holdUntilKick }, maxMs: p.maxMs };
        continue;
      }
      if (r.action === 'filter') {
        const channel = r.channel ?? 'main';
        if (verdict.kind !== 'forward' || m.channel !== channel || m.reply || m.sender !== requesterOf(channel) || c.allow!.has(m.request)) continue;
        if (!this.rules.use(e)) continue;
        m.faults.push(e.id);
        verdict = { kind: 'answer', entry: e, value: r.answer === 'fail' ? 1n : 0n, why: 'filtered' };
        continue;
      }
      if (!c.match || !matchesMessage(c.match, facts) || !this.nth(`${e.id}/match`, c.match)) continue;
      if (verdict.kind !== 'forward' && r.action !== 'delay') continue;
      if (!this.rules.use(e)) continue;
      m.faults.push(e.id);
      switch (r.action) {
        case 'delay':
          if (verdict.kind === 'forward') verdict.delayMs += r.ms;
          this.host.fault(e, 'delay', `${this.describe(m)} delayed by ${r.ms} ms`);
          break;
        case 'drop':
          verdict = { kind: 'drop', entry: e };
          break;
        case 'answer':
          verdict = { kind: 'answer', entry: e, value: c.value ?? 0n, why: 'answered' };
          break;
        case 'hold':
          verdict = { kind: 'hold', entry: e };
          break;
      }
    }
    const key = `${m.channel}/${m.sender}`;
    let s = this.streams.get(key);
    if (!s) this.streams.set(key, (s = { queue: [] }));
    s.queue.push({ m, verdict, readyAt: verdict.kind === 'forward' ? Date.now() + verdict.delayMs : 0 });
    this.pump(s);
  }

  private applyMask(e: RuleEntry, m: PendingMessage): void {
    const r = e.compiled.rule;
    if (r.action !== 'mask' || m.channel !== 'main') return;
    const reqs = FEATURE_REQUESTS[r.features];
    const where = r.in ?? 'both';
    const offer = m.reply && m.sender === 'backend' && m.request === reqs.offer && where !== 'ack';
    const ack = !m.reply && m.sender === 'frontend' && m.request === reqs.ack && where !== 'offer';
    if (!offer && !ack) return;
    const done = clearPayloadBits(m.raw, e.compiled.clear!);
    if (!done || !this.rules.use(e)) return;
    const { before: value, cleared } = done;
    m.raw = done.message;
    const names = r.features === 'protocol' ? protocolFeatureNames(cleared) : virtioFeatureNames(cleared);
    m.masked.push(...names);
    m.faults.push(e.id);
    this.host.fault(
      e,
      'mask',
      `${this.describe(m)}: cleared ${names.join('|')} (${offer ? 'offered' : 'acked'} 0x${value.toString(16)}, forwarded 0x${(value & ~cleared).toString(16)})`,
    );
  }

  private pump(s: Stream): void {
    if (s.timer) return;
    while (s.queue.length && !this.disposed) {
      const head = s.queue[0];
      const wait = head.readyAt - Date.now();
      if (wait > 0) {
        s.timer = this.later(wait, () => {
          s.timer = undefined;
          this.pump(s);
        });
        return;
      }
      s.queue.shift();
      if (head.verdict.kind === 'forward' && head.verdict.delayMs) head.m.heldNs = this.host.now() - head.m.ts;
      const split = head.verdict.kind === 'forward' ? head.verdict.split : undefined;
      if (split) head.m.splitAt = split.at;
      this.execute(head.m, head.verdict);
      if (split) {
        // the stream waits: nothing may come between a message's two parts
        const m = head.m;
        s.timer = this.later(split.restMs, () => {
          s.timer = undefined;
          this.host.sendRest(m);
          this.pump(s);
        });
        return;
      }
    }
  }

  private execute(m: PendingMessage, v: Verdict): void {
    switch (v.kind) {
      case 'forward':
        this.deliver(m);
        break;
      case 'drop':
        this.host.fault(v.entry, 'drop', `${this.describe(m)} dropped${m.fds.length ? ` with its ${m.fds.length} fd(s)` : ''}`);
        this.next(m, { kind: 'dropped' });
        break;
      case 'answer': {
        const reply = m.reply ? undefined : synthesizeReply(m.channel, m.request, m.flags, m.received.subarray(HEADER_SIZE), this.host.negotiation, v.value);
        const action: FaultAction = v.why === 'filtered' ? 'filter' : 'answer';
        const expected = !m.reply && isReplyExpected(m.channel, m.request, m.flags, this.host.negotiation);
        if (reply) this.host.fault(v.entry, action, `${this.describe(m)} not forwarded; the proxy answered it (value ${v.value})`);
        else if (expected)
          this.host.fault(v.entry, action, `${this.describe(m)} not forwarded; a reply is due but the proxy cannot make one up for this request`);
        else this.host.fault(v.entry, action, `${this.describe(m)} not forwarded (no reply due)`);
        this.next(m, { kind: 'answered', reply, rule: v.entry.id });
        break;
      }
      case 'hold': {
        const rule = v.entry.compiled.rule;
        const maxMs = v.maxMs ?? (rule.action === 'hold' ? (rule.maxMs ?? DEFAULT_HOLD_MS) : DEFAULT_HOLD_MS);
        const until = v.until ?? v.entry.compiled.until!;
        const what = isNotificationMatch(until)
          ? `a ${until.notification}${until.vring !== undefined ? ` on vring ${until.vring}` : ''}`
          : `${until.name}${until.reply ? ' reply' : ''}`;
        this.host.fault(v.entry, actionOf(v.entry), `${this.describe(m)} held until ${what} has passed (at most ${maxMs} ms); later messages go ahead of it`);
        const h: Held = {
          m,
          entry: v.entry,
          until,
          timer: this.later(maxMs, () => this.release(h, `not released by ${what} within ${maxMs} ms: forwarded now`)),
        };
        this.held.push(h);
        break;
      }
    }
    this.afterHandled(m);
  }

  private deliver(m: PendingMessage): void {
    this.next(m, { kind: 'forward' });
    if (this.disposed) return;
    const facts: MessageFacts = { channel: m.channel, sender: m.sender, request: m.request, reply: m.reply, raw: m.received };
    for (const h of [...this.held]) {
      const until = h.until;
      if (!isNotificationMatch(until) && matchesMessage(until, facts) && this.nth(`${h.entry.id}/until`, until))
        this.release(h, `released after ${this.describe(m)}`);
    }
  }

  private release(h: Held, why: string): void {
    const i = this.held.indexOf(h);
    if (i < 0 || this.disposed) return;
    this.held.splice(i, 1);
    clearTimeout(h.timer);
    this.timers.delete(h.timer);
    h.m.heldNs = this.host.now() - h.m.ts;
    this.host.fault(h.entry, actionOf(h.entry), `${this.describe(h.m)} ${why} (held ${(Number(h.m.heldNs) / 1e6).toFixed(1)} ms)`);
    this.deliver(h.m);
  }

  /** A relayed (or injected) notification passed: release the holds waiting for it. */
  onNotification(kind: string, vring: number): void {
    for (const h of [...this.held]) {
      const until = h.until;
      if (isNotificationMatch(until) && matchesNotification(until, kind, vring)) this.release(h, `released after a ${kind} on vring ${vring}`);
    }
  }

  /** One-shot rules fired by a message: inject, disconnect. */
  private afterHandled(m: PendingMessage): void {
    if (this.disposed) return;
    const facts: MessageFacts = { channel: m.channel, sender: m.sender, request: m.request, reply: m.reply, raw: m.received };
    for (const e of this.live()) {
      const w = e.compiled.when;
      if (!w || !('after' in w) || this.fired.has(e.id) || this.fired.has(`${e.id}/armed`)) continue;
      if (!matchesMessage(w.after, facts) || !this.nth(`${e.id}/after`, w.after)) continue;
      const why = `${w.delayMs ? `${w.delayMs} ms ` : ''}after ${this.describe(m)}`;
      if (w.delayMs) {
        this.fired.add(`${e.id}/armed`);
        this.later(w.delayMs, () => this.rules.live().includes(e) && this.fire(e, why));
      } else this.fire(e, why);
      if (this.disposed) return;
    }
  }

  private armTimer(e: RuleEntry): void {
    const w = e.compiled.when;
    if (!w || !('afterMs' in w)) return;
    this.later(
      Math.max(0, this.started + w.afterMs - Date.now()),
      () => this.rules.live().includes(e) && this.fire(e, `${w.afterMs} ms after the session started`),
    );
  }

  private fire(e: RuleEntry, why: string): void {
    if (this.fired.has(e.id) || !this.rules.use(e)) return;
    this.fired.add(e.id);
    const r = e.compiled.rule;
    if (r.action === 'inject') {
      const problem = this.host.injectNotification(r.notification, r.vring);
      this.host.fault(
        e,
        'inject',
        problem ? `could not inject a ${r.notification} on vring ${r.vring} ${why}: ${problem}` : `injected a ${r.notification} on vring ${r.vring} ${why}`,
      );
      if (!problem) {
        this.host.injected(r.notification, r.vring);
        this.onNotification(r.notification, r.vring);
      }
    } else if (r.action === 'disconnect') {
      this.host.fault(e, 'disconnect', `disconnecting the ${r.side} ${why}`);
      this.host.disconnect(r.side, `fault rule ${e.id} (${e.text}): disconnected the ${r.side} ${why}`);
    }
  }

  private later(ms: number, fn: () => void): NodeJS.Timeout {
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.disposed) fn();
    }, ms);
    this.timers.add(t);
    return t;
  }

  /** What the runner holds back right now (for `vhostscope status`). */
  snapshot(): { held: string[]; queued: number } {
    return {
      held: this.held.map((h) => `${this.describe(h.m)} (rule ${h.entry.id})`),
      queued: [...this.streams.values()].reduce((n, s) => n + s.queue.length, 0),
    };
  }

  /** Session over: cancel timers and hand back every fd still held or queued. */
  dispose(): number[] {
    this.disposed = true;
    this.unsubscribe();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const fds = [...this.held.flatMap((h) => h.m.fds), ...[...this.streams.values()].flatMap((s) => s.queue.flatMap((q) => q.m.fds))];
    this.held.length = 0;
    this.streams.clear();
    return fds;
  }
}
