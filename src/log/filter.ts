/**
 * The event filters of `show` (a recording) and `tail` (a running daemon): one definition, so
 * that the same options select the same events in both.
 */
import { requestByName, type ChannelKind } from '../protocol';
import type { ProxyEvent } from '../events/events';

export interface EventFilterOptions {
  session?: string | number;
  channel?: ChannelKind;
  request?: string;
  /** seconds after t0 */
  since?: string | number;
  until?: string | number;
  /** include every relayed kick/call/err (off: too many lines) */
  notifications?: boolean;
  /** include the vring snapshots (--rings) */
  rings?: boolean;
}

export function eventFilter(o: EventFilterOptions, t0: bigint): (e: ProxyEvent) => boolean {
  const since = o.since !== undefined ? t0 + BigInt(Math.round(Number(o.since) * 1e9)) : undefined;
  const until = o.until !== undefined ? t0 + BigInt(Math.round(Number(o.until) * 1e9)) : undefined;
  const wanted = o.request ? (requestByName(o.channel ?? 'main', o.request)?.name ?? o.request.toUpperCase()) : undefined;
  return (e) => {
    if (o.session !== undefined && e.session !== Number(o.session)) return false;
    if (since !== undefined && e.ts < since) return false;
    if (until !== undefined && e.ts > until) return false;
    if (!o.notifications && e.type === 'notification') return false;
    if (!o.rings && e.type === 'ring') return false;
    if (o.channel && e.type === 'message' && e.channel !== o.channel) return false;
    if (wanted && (e.type !== 'message' || e.decoded.name !== wanted)) return false;
    return true;
  };
}
