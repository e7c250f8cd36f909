/** The flight recorder's options (`proxy --keep ...`), checked. */
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
  const segmentBytes =
    o.segmentSize !== undefined ? sizeOption('--segment-size', o.segmentSize) : Math.max(1 << 20, Math.min(64 << 20, Math.floor((keepBytes ?? Infinity) / 16)));
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
