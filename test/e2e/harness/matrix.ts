/**
 * What every run of the interop matrix must show (test/e2e/interop.test.ts, sid.test.ts): the
 * sessions ended cleanly, nothing was flagged, the recording agrees with the log, and the proxy
 * named the device by itself.
 */
import { expect } from 'vitest';
import type { DeviceType } from '../../../src/protocol';
import { recordingDevices } from '../../../src/recording/devices';
import { readRecording } from '../../../src/recording/reader';
import type { GuestRun } from './interop';
import { checkRecording, type LogRecord } from './proxy';

/**
 * Every session ended because the frontend left, never on bad input; no message was flagged;
 * the recording agrees with the log; the proxy named the device without --device.
 */
export function expectClean(run: GuestRun | { proxy: GuestRun['proxy'] }, device: DeviceType, allowed: string[] = []): LogRecord[] {
  const msgs = run.proxy.messages();
  const flagged = msgs.filter((m) => m.findings?.some((f) => !allowed.includes(f.rule)));
  expect(flagged.map((m) => `${m.dir} ${m.request}: ${m.findings!.map((f) => f.rule).join(',')}`)).toEqual([]);
  for (const end of run.proxy.records().filter((r) => r.event === 'session-end')) expect(String(end.reason)).not.toMatch(/bad input|cannot interpose|failed/);
  checkRecording(run.proxy, allowed);
  const records = readRecording(run.proxy.recordFile).records;
  // the proxy's own inference is in the recording (not re-derived by the reader)
  expect(records.filter((r) => r.type === 'device').map((r) => (r.type === 'device' ? r.device : ''))).toContain(device);
  const inferred = recordingDevices(records).get(1);
  expect(inferred?.device, `inferred from ${inferred?.reason}`).toBe(device);
  expect(run.proxy.records().find((r) => r.event === 'device')).toMatchObject({ device });
  return msgs;
}

/** The protocol features the back-end offered, as the proxy's log summarises them. */
export const offered = (msgs: LogRecord[]): string => String(msgs.find((m) => m.request === 'GET_PROTOCOL_FEATURES' && m.dir === 'B>F')?.summary);

/** The requests the front-end sent with NEED_REPLY, each name once, sorted. */
export const needReply = (msgs: LogRecord[]): string[] =>
  [...new Set(msgs.filter((m) => m.dir === 'F>B' && String(m.flags).includes('NEED_REPLY')).map((m) => String(m.request)))].sort();

/** NEED_REPLY requests the back-end did not answer, per request name (none: every ack came). */
export function unanswered(msgs: LogRecord[]): Record<string, number> {
  const due: Record<string, number> = {};
  for (const m of msgs) {
    const r = String(m.request);
    if (m.dir === 'F>B' && String(m.flags).includes('NEED_REPLY')) due[r] = (due[r] ?? 0) + 1;
    else if (m.dir === 'B>F' && r in due) due[r]--;
  }
  return Object.fromEntries(Object.entries(due).filter(([, n]) => n !== 0));
}
