/** The flight recorder's options (`proxy --keep ...`), checked, and what it logs. */
import type { Logger } from 'pino';
import { bytesText } from '../log/format';
import type { Pin, SweepResult } from '../recording/flight';
import type { FlightOptions } from '../recording/recorder';
import { durationOption, sizeOption } from './numbers';

export interface FlightCliOptions {
  record?: string;
  keep?: string;
  keepFor?: string;
  pinBefore: string;
  pinAfter: string;
  pinFor?: string;
  segmentSize?: string;
  segmentFor: string;
}

/** --keep, --keep-for and the pin and segment options, checked; undefined without --keep/--keep-for. */
export function flightOptions(o: FlightCliOptions): Omit<FlightOptions, 'onSweep' | 'onPin'> | undefined {
  const keepBytes = o.keep !== undefined ? sizeOption('--keep', o.keep) : undefined;
  const keepMs = o.keepFor !== undefined ? durationOption('--keep-for', o.keepFor, { min: 1000 }) : undefined;
  if (keepBytes === undefined && keepMs === undefined) {
    if (o.segmentSize !== undefined) throw new Error('--segment-size rotates a flight recording: give --keep or --keep-for too');
    return undefined;
  }
  if (!o.record) throw new Error('--keep and --keep-for bound a recording directory: give --record DIR/ too');
  const segmentBytes = o.segmentSize !== undefined ? sizeOption('--segment-size', o.segmentSize) : Math.max(1 << 20, Math.min(64 << 20, Math.floor((keepBytes ?? Infinity) / 16)));
  return {
    ...(keepBytes !== undefined ? { keepBytes } : {}),
    ...(keepMs !== undefined ? { keepMs } : {}),
    segmentBytes,
    segmentMs: durationOption('--segment-for', o.segmentFor, { min: 1000 }),
    pinBeforeMs: durationOption('--pin-before', o.pinBefore),
    pinAfterMs: durationOption('--pin-after', o.pinAfter),
    ...(o.pinFor !== undefined ? { pinMs: durationOption('--pin-for', o.pinFor, { min: 1000 }) } : {}),
  };
}

export function logSweep(logger: Logger, r: SweepResult): void {
  if (r.deleted.length) logger.info({ event: 'notice', msg: `retention: deleted ${r.deleted.length} segment file(s) (${bytesText(r.deleted.reduce((n, s) => n + s.bytes, 0))}), the oldest from ${new Date(r.deleted[0]!.startMs).toISOString()}; ${bytesText(r.bytes)} kept` });
  for (const p of r.released) logger.warn({ event: 'notice', msg: `retention: pinned segments alone exceed --keep; released pin ${p.id} (${p.reason}, ${new Date(p.atMs).toISOString()})` });
  if (r.expired.length) logger.info({ event: 'notice', msg: `retention: let go of ${r.expired.length} pin(s) older than --pin-for or keeping no segment any more, the oldest ${r.expired[0]!.id} (${r.expired[0]!.reason}, ${new Date(r.expired[0]!.atMs).toISOString()})` });
}

/** A pin is logged when made, not each time a burst of the same trigger extends it. */
const loggedPins = new Set<number>();
export function logPin(logger: Logger, p: Pin): void {
  if (loggedPins.has(p.id)) return;
  loggedPins.add(p.id);
  if (loggedPins.size > 1000) loggedPins.delete(loggedPins.values().next().value!);
  logger.warn({ event: 'notice', pin: p.id, msg: `pinned the recording ${new Date(p.fromMs).toISOString()} to ${new Date(p.toMs).toISOString()}${p.session ? ` of ${p.session}` : ''}: ${p.reason}` });
}

