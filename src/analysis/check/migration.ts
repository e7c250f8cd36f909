/**
 * The migration rules (VU020-VU024): dirty logging, ring positions across a stop and a
 * migration, device state. The daemon-wide `stops` carry a source's rings to its destination.
 */
import { hasBit, Request, stopsVring, VirtioFeature, DIRTY_LOG_PAGE as LOG_PAGE } from '../../protocol';
import type { MessageEvent } from '../../events/events';
import { RULES } from '../rules';
import type { AddFinding, CheckFinding, MigrationStop, SessionState, VringMap } from './state';

/**
 * VU020-VU024: dirty logging, ring positions across a stop and a migration, device state.
 * Runs on main-channel messages the far side received, before the negotiation takes them in.
 */
export function migrationRules(s: SessionState, stops: VringMap<MigrationStop>, e: MessageEvent, index: number, at: string, add: AddFinding): void {
  const d = e.decoded;
  const p = d.payload as Record<string, never>;
  const packed = hasBit(s.negotiation.ackedFeatures, VirtioFeature.RING_PACKED);
  if (d.reply) {
    if (!stopsVring(s.negotiation, d.request) || e.sender !== 'backend') return;
    const vring = p.index as number;
    const num = p.num as number;
    const use = s.ringUse.get(vring);
    s.ringUse.delete(vring);
    if (!packed && (num & 0xffff) === 0 && use && (use.calls > 0 || use.base !== 0))
      add(
        RULES.vringBaseZeroAfterUse,
        `vring ${vring}: GET_VRING_BASE answered 0, but the ring ${use.base !== 0 ? `was set up from base ${use.base}` : `had ${use.calls} call(s) from the back-end since it started`}`,
      );
    if (s.logAll) stops.set(vring, { session: e.session, base: num, ts: e.ts, memoryBytes: s.memoryBytes });
    return;
  }
  if (e.sender !== 'frontend') return;
  if (stopsVring(s.negotiation, d.request) && s.logAll && s.logBytes === undefined && !s.reportedLogAll) {
    s.reportedLogAll = true;
    add(RULES.logAllWithoutLogBase, `vring ${p.index} stopped with LOG_ALL acked and no SET_LOG_BASE in this session`);
  }
  switch (d.request) {
    case Request.SET_VRING_BASE: {
      const vring = p.index as number;
      const num = p.num as number;
      s.ringUse.set(vring, { base: num & 0xffff, calls: 0 });
      const stop = stops.get(vring);
      // a destination: another session, setting this ring up for the first time, after the
      // source stopped, with the same amount of guest memory (another VM behind the same daemon is not)
      if (stop && stop.session !== e.session && stop.ts < e.ts && !s.everStarted.has(vring) && stop.memoryBytes === s.memoryBytes) {
        stops.delete(vring);
        if (num !== stop.base)
          add(
            RULES.migratedBaseMismatch,
            `vring ${vring}: the destination resumes from ${num}, the source's back-end stopped at ${stop.base} (session ${stop.session})`,
          );
      }
      s.everStarted.add(vring);
      break;
    }
    case Request.SET_LOG_BASE: {
      s.logBytes = p.mmapSize as bigint;
      const end = s.regions.reduce((m, r) => (r.guestPhysAddr + r.memorySize > m ? r.guestPhysAddr + r.memorySize : m), 0n);
      const needed = (end / LOG_PAGE + 7n) / 8n;
      if (end > 0n && s.logBytes < needed)
        add(RULES.logTooSmall, `a ${s.logBytes}-byte log for guest memory up to 0x${end.toString(16)}: one bit per 4 KiB page needs ${needed} bytes`);
      break;
    }
    case Request.SET_DEVICE_STATE_FD:
      if (s.deviceState)
        add(RULES.deviceStateUnchecked, `a new SET_DEVICE_STATE_FD, and the transfer started by message #${s.deviceState.message} was never checked`);
      s.deviceState = { ts: e.ts, message: index, at };
      break;
    case Request.CHECK_DEVICE_STATE:
      s.deviceState = undefined;
      break;
  }
}

/** At the end of a session: dirty logging never given a log, a device state never checked. */
export function migrationLeftovers(s: SessionState, session: number, ts: bigint): CheckFinding[] {
  const out: CheckFinding[] = [];
  if (s.logAll && s.logBytes === undefined && !s.reportedLogAll)
    out.push({ rule: RULES.logAllWithoutLogBase, session, ts, at: 'end of session', detail: 'LOG_ALL acked and no SET_LOG_BASE before the session ended' });
  if (s.deviceState)
    out.push({
      rule: RULES.deviceStateUnchecked,
      session,
      ts: s.deviceState.ts,
      message: s.deviceState.message,
      at: s.deviceState.at,
      detail: 'SET_DEVICE_STATE_FD started a transfer that no CHECK_DEVICE_STATE checked before the session ended',
    });
  return out;
}
