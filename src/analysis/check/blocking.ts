/**
 * VU036: both sides blocked. The front-end waits for a main-channel reply while the back-end
 * waits for a backend-channel reply: unless one of them serves its other channel while it waits,
 * neither ever answers (field-bugs C15: an IOTLB miss sent during SET_MEM_TABLE).
 */
import { RULES } from '../rules';
import type { CheckFinding, Pending, SessionState } from './state';

const waiting = (s: SessionState): [Pending, Pending] | undefined => {
  const main = s.pending.find((p) => p.channel === 'main');
  const backend = s.pending.find((p) => p.channel === 'backend');
  return main && backend ? [main, backend] : undefined;
};

/** After a request that waits for its reply: are both sides waiting now? */
export function noteBlocked(s: SessionState, ts: bigint): void {
  if (waiting(s)) s.blockedSince ??= ts;
}

/**
 * The finding, once, when both sides have waited on each other longer than `timeoutNs` (or
 * still did when the session ended); forgets the wait once either was answered.
 */
export function blockedFinding(s: SessionState, session: number, ts: bigint, timeoutNs: bigint, sessionEnded: boolean): CheckFinding[] {
  if (s.blockedSince === undefined) return [];
  const both = waiting(s);
  if (!both) {
    s.blockedSince = undefined;
    return [];
  }
  if (s.reportedBlocked || (!sessionEnded && ts - s.blockedSince <= timeoutNs)) return [];
  s.reportedBlocked = true;
  const [main, backend] = both;
  main.blocked = backend.blocked = true;
  const ms = (Number(ts - s.blockedSince) / 1e6).toFixed(0);
  return [
    {
      rule: RULES.bothSidesBlocked,
      session,
      ts: s.blockedSince,
      message: Math.max(main.message, backend.message),
      at: `F>B ${main.name} / B>F backend:${backend.name}`,
      detail: `the front-end waited for the reply to ${main.name} while the back-end waited for the reply to ${backend.name} (backend channel), ${sessionEnded ? `until the session ended ${ms} ms later` : `for ${ms} ms`}`,
    },
  ];
}
