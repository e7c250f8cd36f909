/**
 * Which device each session of a recording carries: the proxy's own inference (device
 * records), or, for recordings made before it kept one, the same inference run again over
 * the recorded session starts and messages. `override` (--device) wins for every session.
 */
import type { DeviceGuess, DeviceType } from '../protocol';
import { DeviceTracker } from '../events/device-tracker';
import { recordingEvents } from './reader';
import type { RecordingRecord } from './records';

export interface SessionDevice {
  device: DeviceType;
  reason: string;
}

export function recordingDevices(records: RecordingRecord[], override?: DeviceType): Map<number, SessionDevice> {
  const out = new Map<number, SessionDevice>();
  const sessions = records.filter((r) => r.type === 'session-start').map((r) => (r as { session: number }).session);
  if (override) {
    for (const s of sessions) out.set(s, { device: override, reason: '--device' });
    return out;
  }
  for (const r of records) if (r.type === 'device') out.set(r.session, { device: r.device as DeviceType, reason: r.reason });
  if (sessions.every((s) => out.has(s))) return out;
  const tracker = new DeviceTracker();
  const found = new Map<number, DeviceGuess>();
  for (const e of recordingEvents(records)) {
    const g = tracker.observe(e);
    if (g && 'session' in e && !out.has(e.session)) found.set(e.session, g);
  }
  for (const [s, g] of found) out.set(s, { device: g.device, reason: g.reason });
  return out;
}

/** The device to name feature bits by in `session` ('generic' when nothing tells). */
export function deviceOf(devices: Map<number, SessionDevice>, session: number): DeviceType {
  return devices.get(session)?.device ?? 'generic';
}
