/**
 * Each vring's state as the spec defines it ("Ring states"): started or stopped, and enabled or
 * disabled. A ring starts once the back-end has its kick fd (SET_VRING_KICK; or VRING_KICK with
 * in-band notifications) and stops when GET_VRING_BASE is answered (or its skip-drain form), and
 * every ring stops at RESET_OWNER / RESET_DEVICE; SET_VRING_ENABLE enables and disables it, and
 * without PROTOCOL_FEATURES a ring is enabled from the start. Computed from the main channel's
 * messages as the back-end received them (a message a fault rule kept from it changes nothing).
 */
import { hasBit, newNegotiation, applyMainMessage, HEADER_SIZE, MAX_VRINGS, Request, stopsVring, VirtioFeature, type Negotiation } from '../protocol';
import type { MessageEvent, ProxyEvent } from '../events/events';

export interface RingState {
  started: boolean;
  enabled: boolean;
}

/** One change of a ring's state, and the message that made it. */
export interface RingTransition extends RingState {
  session: number;
  vring: number;
  ts: bigint;
  /** e.g. "SET_VRING_KICK", "GET_VRING_BASE reply", "SET_VRING_ENABLE(0)" */
  why: string;
}

export const ringStateText = (s: RingState): string => `${s.started ? 'started' : 'stopped'}, ${s.enabled ? 'enabled' : 'disabled'}`;

/** One session's rings, message by message: what the checker asks live, and what `info` lists. */
export class SessionRings {
  private readonly n: Negotiation = newNegotiation();
  readonly rings = new Map<number, RingState>();
  private anyStarted = false;

  /** Takes in one message; returns the state changes it made (main-channel messages the back-end received only). */
  apply(e: MessageEvent): RingTransition[] {
    if (e.channel !== 'main' || e.undelivered) return [];
    const out: RingTransition[] = [];
    const d = e.decoded;
    const p = d.payload as { index?: number; num?: number };
    const set = (vring: number, next: Partial<RingState>, why: string): void => {
      if (vring < 0 || vring >= MAX_VRINGS) return;
      // without PROTOCOL_FEATURES a ring is enabled as soon as it exists (spec "Ring states")
      const was = this.rings.get(vring) ?? { started: false, enabled: !hasBit(this.n.ackedFeatures, VirtioFeature.PROTOCOL_FEATURES) };
      const now = { ...was, ...next };
      this.rings.set(vring, now);
      if (now.started) this.anyStarted = true;
      if (now.started !== was.started || now.enabled !== was.enabled) out.push({ session: e.session, vring, ts: e.ts, why, ...now });
    };
    if (d.reply && e.sender === 'backend' && stopsVring(this.n, d.request) && p.index !== undefined) set(p.index, { started: false }, `${d.name} reply`);
    if (!d.reply && e.sender === 'frontend') {
      if (d.request === Request.SET_VRING_KICK && p.index !== undefined) set(p.index, { started: true }, d.name);
      if (d.request === Request.SET_VRING_ENABLE && p.index !== undefined) set(p.index, { enabled: p.num === 1 }, `${d.name}(${p.num})`);
      if (d.request === Request.RESET_OWNER || d.request === Request.RESET_DEVICE) for (const v of [...this.rings.keys()]) set(v, { started: false }, d.name);
    }
    applyMainMessage(this.n, d.request, d.flags, e.raw.subarray(HEADER_SIZE));
    return out;
  }

  /** Some ring was started, and every ring is stopped now: the device is suspended. */
  get suspended(): boolean {
    return this.anyStarted && [...this.rings.values()].every((r) => !r.started);
  }
}

/** Every ring's transitions, per session, in order. */
export function ringTransitions(events: ProxyEvent[]): RingTransition[] {
  const out: RingTransition[] = [];
  const sessions = new Map<number, SessionRings>();
  for (const e of events) {
    if (e.type === 'session-start') sessions.set(e.session, new SessionRings());
    if (e.type !== 'message') continue;
    let s = sessions.get(e.session);
    if (!s) sessions.set(e.session, (s = new SessionRings()));
    out.push(...s.apply(e));
  }
  return out;
}

/** The last state of each ring of `session`, by vring. */
export function finalRingStates(transitions: RingTransition[], session: number): Map<number, RingTransition> {
  const last = new Map<number, RingTransition>();
  for (const t of transitions) if (t.session === session) last.set(t.vring, t);
  return new Map([...last].sort((a, b) => a[0] - b[0]));
}
