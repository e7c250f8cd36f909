/**
 * The log's subscriber: one line per event, at the level its content calls for. Relayed
 * notifications and ring snapshots are the high-rate events: recorded always, logged only on
 * request (one line each would flood the log under load).
 */
import type { Logger } from 'pino';
import type { ProxyEvent } from '../events/events';
import type { DeviceGuess, DeviceType } from '../protocol';
import { eventRecord } from '../log/format';

export interface EventLogOptions {
  logNotifications?: boolean;
  logRings?: boolean;
}

/** Logs one event; `guess` is the device inference this event changed, if any. */
export function logEvent(logger: Logger, e: ProxyEvent, device: DeviceType, guess: DeviceGuess | undefined, o: EventLogOptions): void {
  if (e.type === 'notification' && !o.logNotifications) return;
  if (e.type === 'ring' && !o.logRings) return;
  if (guess && 'session' in e)
    logger.info({
      event: 'device',
      session: e.session,
      device: guess.device,
      reason: guess.reason,
      msg: `session ${e.session} carries a ${guess.device} device (from ${guess.reason})`,
    });
  const rec = eventRecord(e, device);
  if (e.type === 'notice') return void logger.warn(rec);
  const bad = e.type === 'session-end' && e.reason.startsWith('bad input');
  const warn = (e.type === 'message' && e.findings.length > 0) || e.type === 'fault' || (e.type === 'device-state' && e.error !== undefined);
  if (bad) logger.error(rec);
  else if (warn) logger.warn(rec);
  else logger.info(rec);
}
