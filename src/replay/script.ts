/**
 * What a replay plays: a recorded session turned into steps. As the frontend: each request the
 * frontend sent, with the reply the backend gave. As the backend: each request with the reply to
 * serve. Messages the proxy made itself (--inject) and their replies are left out.
 */
import { decodeMessage, HEADER_SIZE, parseHeader } from '../protocol';
import type { FdDescription, MessageEvent } from '../events/events';
import { readRecording, recordingEvents } from '../recording/reader';
import type { RecordingRecord } from '../recording/records';

export interface Step {
  /** index among the session's messages */
  index: number;
  ts: bigint;
  request: MessageEvent;
  /** as the peer sent it (before any change by the proxy) */
  raw: Buffer;
  fds: FdDescription[];
  reply?: MessageEvent;
  /** the reply as the backend sent it (what a live backend is compared with) */
  replyRaw?: Buffer;
  /** the reply as the frontend received it (what a replayed backend serves; the proxy may have masked bits) */
  replyServed?: Buffer;
}

export interface Script {
  session: number;
  /** main-channel requests of the frontend, in order */
  frontend: Step[];
  /** backend-channel requests of the backend, with the frontend's replies */
  backendChannel: Step[];
}

export class RecordingError extends Error {}

export function loadRecording(file: string): { records: RecordingRecord[]; torn?: string } {
  let scan: ReturnType<typeof readRecording>;
  try {
    scan = readRecording(file);
  } catch (err) {
    throw new RecordingError(`${file}: cannot read: ${(err as Error).message}`);
  }
  const frames = scan.records.length;
  const torn = scan.torn
    ? `${file}: frame ${frames} (at byte ${scan.torn.offset}) is torn: ${scan.torn.reason}; using the ${frames} complete frames before it`
    : undefined;
  if (!scan.records.some((r) => r.type === 'header'))
    throw new RecordingError(`${file}: frame 0 is not a vhostscope recording header${torn ? ` (${torn})` : ''}`);
  return { records: scan.records, ...(torn ? { torn } : {}) };
}

export function buildScript(records: RecordingRecord[], session?: number): Script {
  const events = recordingEvents(records).filter((e): e is MessageEvent => e.type === 'message');
  const id = session ?? events[0]?.session;
  if (id === undefined) throw new RecordingError('the recording holds no session with messages');
  const msgs = events.filter((m) => m.session === id && !m.injected && !m.absorbed);
  if (!msgs.length) throw new RecordingError(`session ${id} has no messages in this recording`);
  const steps = (channel: string, requester: 'F>B' | 'B>F'): Step[] => {
    const out: Step[] = [];
    msgs.forEach((m, index) => {
      if (m.channel !== channel) return;
      const raw = m.received ?? m.raw;
      if (raw.length < HEADER_SIZE) return;
      if (m.dir === requester && !m.decoded.reply) out.push({ index, ts: m.ts, request: m, raw, fds: m.fds });
      else if (m.dir !== requester && m.decoded.reply) {
        const open = [...out].reverse().find((s) => !s.reply && s.request.decoded.request === parseHeader(raw).request);
        if (open) {
          // compare with what the backend really said, not with what the proxy forwarded
          open.reply = m.received ? { ...m, raw: m.received, decoded: decodeMessage(m.channel, m.received) } : m;
          open.replyRaw = raw;
          open.replyServed = m.raw;
        }
      }
    });
    return out;
  };
  return { session: id, frontend: steps('main', 'F>B'), backendChannel: steps('backend', 'B>F') };
}
