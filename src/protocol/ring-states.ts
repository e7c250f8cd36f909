/**
 * Each vring's state as the spec defines it ("Ring states"): started or stopped, and enabled or
 * disabled. A ring starts once the back-end has its kick fd (SET_VRING_KICK; or VRING_KICK with
 * in-band notifications) and stops when GET_VRING_BASE is answered (or its skip-drain form), and
 * every ring stops at RESET_OWNER / RESET_DEVICE; SET_VRING_ENABLE enables and disables it, and
 * without PROTOCOL_FEATURES a ring is enabled from the start. Computed from the main channel's
 * messages as the back-end received them (a message a fault rule kept from it changes nothing).
 */
import type { DecodedMessage } from './decode';
import { hasBit, VirtioFeature } from './features';
import { HEADER_SIZE } from './header';
import { applyMainMessage, newNegotiation, stopsVring, type Negotiation } from './negotiation';
import { MAX_VRINGS } from './payloads';
import { Request } from './requests';
import type { ChannelKind } from './header';
import type { Side } from './channels';

/** What the state machine needs of a message (a proxy's message event has it). */
export interface RingMessage {
  session: number;
  ts: bigint;
  channel: ChannelKind;
  sender: Side;
  raw: Buffer;
  decoded: DecodedMessage;
  /** a fault rule kept it from the far side */
  undelivered?: string;
}

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
  private readonly n: Negotiation;
  /** whether the negotiation is this object's own, to follow message by message */
  private readonly ownsNegotiation: boolean;
  readonly rings = new Map<number, RingState>();
  private anyStarted = false;

  /** `negotiation`: the caller's, which the caller keeps up to date; without it, one of its own. */
  constructor(negotiation?: Negotiation) {
    this.n = negotiation ?? newNegotiation();
    this.ownsNegotiation = negotiation === undefined;
  }

  /** Takes in one message; returns the state changes it made (main-channel messages the back-end received only). */
  apply(e: RingMessage): RingTransition[] {
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
    if (this.ownsNegotiation) applyMainMessage(this.n, d.request, d.flags, e.raw.subarray(HEADER_SIZE));
    return out;
  }

  /** Some ring was started, and every ring is stopped now: the device is suspended. */
  get suspended(): boolean {
    return this.anyStarted && [...this.rings.values()].every((r) => !r.started);
  }
}
