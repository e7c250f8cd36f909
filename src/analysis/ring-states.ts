/**
 * The rings' spec states over a recording (src/protocol/ring-states.ts has the state machine):
 * every transition, per session, in order, and each ring's last state.
 */
import { SessionRings, type RingTransition } from '../protocol';
import type { ProxyEvent } from '../events/events';

export { ringStateText, SessionRings, type RingState, type RingTransition } from '../protocol';

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
