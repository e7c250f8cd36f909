/** Checking a recording file (`vhostscope check`). */
import { checkEvents, type CheckFinding } from '../analysis/checker';
import type { Dialect } from '../protocol';
import { readRecording, recordingEvents } from '../recording/reader';

export function checkFile(file: string, replyTimeoutMs = 5000, dialect?: Dialect): { findings: CheckFinding[]; torn?: string } {
  const scan = readRecording(file);
  const findings = checkEvents(recordingEvents(scan.records, { notifications: true, ...(dialect ? { dialect } : {}) }), BigInt(replyTimeoutMs) * 1_000_000n);
  return { findings, ...(scan.torn ? { torn: scan.torn.reason } : {}) };
}
