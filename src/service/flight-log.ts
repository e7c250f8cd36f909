/** What the flight recorder's retention and pins tell the log. */
import type { Logger } from 'pino';
import { bytesText } from '../log/format';
import type { Pin, SweepResult } from '../recording/flight';

export function logSweep(logger: Logger, r: SweepResult): void {
  if (r.deleted.length)
    logger.info({
      event: 'notice',
      msg: `retention: deleted ${r.deleted.length} segment file(s) (${bytesText(r.deleted.reduce((n, s) => n + s.bytes, 0))}), the oldest from ${new Date(r.deleted[0]!.startMs).toISOString()}; ${bytesText(r.bytes)} kept`,
    });
  for (const p of r.released)
    logger.warn({
      event: 'notice',
      msg: `retention: pinned segments alone exceed --keep; released pin ${p.id} (${p.reason}, ${new Date(p.atMs).toISOString()})`,
    });
  if (r.expired.length)
    logger.info({
      event: 'notice',
      msg: `retention: let go of ${r.expired.length} pin(s) older than --pin-for or keeping no segment any more, the oldest ${r.expired[0]!.id} (${r.expired[0]!.reason}, ${new Date(r.expired[0]!.atMs).toISOString()})`,
    });
}

/** A pin is logged when made, not each time a burst of the same trigger extends it. */
const loggedPins = new Set<number>();
export function logPin(logger: Logger, p: Pin): void {
  if (loggedPins.has(p.id)) return;
  loggedPins.add(p.id);
  if (loggedPins.size > 1000) loggedPins.delete(loggedPins.values().next().value!);
  logger.warn({
    event: 'notice',
    pin: p.id,
    msg: `pinned the recording ${new Date(p.fromMs).toISOString()} to ${new Date(p.toMs).toISOString()}${p.session ? ` of ${p.session}` : ''}: ${p.reason}`,
  });
}
