/**
 * Replays the recorded backend to a live frontend: each request the frontend sends is matched
 * with the next recorded one (resynchronising a few steps ahead when they differ) and answered
 * with the recorded reply, byte for byte (QEMU drops a connection on a reply whose flags or size
 * are off). Where the live frontend diverges from the recording, the report says so.
 */
import { native } from '../native';
import {
  applyMainMessage,
  encodeMessage,
  formatPayload,
  HEADER_SIZE,
  isReplyExpected,
  newNegotiation,
  parseHeader,
  synthesizeReply,
  type DeviceType,
} from '../protocol';
import { changedFields } from '../analysis/diff';
import type { MessageEvent, ProxyEvent } from '../events/events';
import { closeFds } from '../events/fds';
import { Inbox, message, openPeer, type Divergence, type ReplayResult } from './frontend';
import type { Script, Step } from './script';
import { SplitSender, type RecordedSplit } from './chaos';

export interface BackendReplayOptions {
  connect?: string;
  listen?: string;
  strict?: boolean;
  /** how long the frontend may stay silent before the replay ends */
  idleTimeoutMs: number;
  /** how long to wait for the frontend to appear */
  timeoutMs: number;
  device?: DeviceType;
  emit?: (e: ProxyEvent) => void;
  log?: (line: string) => void;
  /** called for every request of the live frontend (tests watch for DRIVER_OK) */
  onRequest?: (m: MessageEvent) => void;
  /** the recording's split chaos rule, repeated on the replies (replay/chaos.ts) */
  split?: RecordedSplit;
}

/** how far ahead a differing request is looked for in the recording */
const RESYNC_WINDOW = 24;

export async function replayAsBackend(script: Script, o: BackendReplayOptions): Promise<ReplayResult> {
  const emit = o.emit ?? (() => {});
  const result: ReplayResult = { divergences: [], notes: [], sent: 0 };
  const fd = await openPeer({ ...(o.connect ? { connect: o.connect } : {}), ...(o.listen ? { listen: o.listen } : {}), timeoutMs: o.timeoutMs });
  const inbox = new Inbox(fd);
  const n = newNegotiation();
  const steps = script.frontend;
  let pos = 0;
  let received = 0;
  emit({
    type: 'session-start',
    ts: native.monotonicNs(),
    session: script.session,
    listenPath: o.listen ?? '',
    connectPath: o.connect ?? '',
    frontend: 'connect',
    interpose: false,
    peers: {},
  });
  const splitter = o.split ? new SplitSender(o.split, 'backend', script.session, emit) : undefined;
  const anyReply = (code: number): Buffer | undefined => steps.find((s) => s.request.decoded.request === code && s.replyServed)?.replyServed;
  try {
    for (;;) {
      const m = await inbox.next(o.idleTimeoutMs);
      if (!m) {
        if (!inbox.closed) result.notes.push(`the frontend was silent for ${o.idleTimeoutMs} ms: replay ended`);
        break;
      }
      const live = message(m.raw, m.fds, m.ts, 'F>B', 'main', script.session);
      received++;
      closeFds(m.fds); // the replayed backend keeps nothing: no guest memory is touched
      emit(live);
      o.onRequest?.(live);
      const h = parseHeader(m.raw);
      const name = live.decoded.name;
      let match: Step | undefined;
      if (steps[pos]?.request.decoded.request === h.request) match = steps[pos++];
      else {
        const ahead = steps.slice(pos, pos + RESYNC_WINDOW).findIndex((s) => s.request.decoded.request === h.request);
        const recorded = steps[pos]?.request.decoded.name ?? '(end of recording)';
        const d: Divergence = {
          index: steps[pos]?.index ?? -1,
          request: name,
          kind: 'reply-differs',
          recorded,
          live: `${name} ${formatPayload(live.decoded, o.device)}`,
          fields: ['request'],
        };
        result.divergences.push(d);
        if (ahead >= 0) {
          match = steps[pos + ahead];
          result.notes.push(`resynchronised: skipped ${ahead} recorded request(s) to ${name}`);
          pos += ahead + 1;
        }
        if (o.strict) break;
      }
      if (match) {
        const fields = changedFields(match.request, live, o.device);
        if (fields.length)
          result.divergences.push({
            index: match.index,
            request: name,
            kind: 'reply-differs',
            recorded: formatPayload(match.request.decoded, o.device),
            live: formatPayload(live.decoded, o.device),
            fields,
          });
        if (fields.length && o.strict) break;
      }
      applyMainMessage(n, h.request, h.flags, m.raw.subarray(HEADER_SIZE));
      if (!isReplyExpected('main', h.request, h.flags, n)) continue;
      let reply = match?.replyServed ?? anyReply(h.request);
      if (!reply) {
        // nothing recorded to say: an ack (u64 0) where an ack is due, the layout's success value
        // where one can be made up (the fault rules' `answer`), else eight zero bytes
        reply = synthesizeReply('main', h.request, h.flags, m.raw.subarray(HEADER_SIZE), n) ?? encodeMessage(h.request, 5, Buffer.alloc(8));
        result.notes.push(`${name}: no recorded reply, answered ${reply.length - HEADER_SIZE} bytes of success`);
      }
      if (splitter) await splitter.send(inbox.channel, reply);
      else inbox.channel.send(reply);
      result.sent++;
      emit(message(reply, [], native.monotonicNs(), 'B>F', 'main', script.session));
    }
  } finally {
    inbox.close();
    emit({
      type: 'session-end',
      ts: native.monotonicNs(),
      session: script.session,
      reason: inbox.closed ?? 'replay finished',
      by: 'proxy',
      messages: { 'F>B': received, 'B>F': result.sent },
      fdsForwarded: 0,
      vrings: [],
      relayPairs: [],
    });
  }
  if (pos < steps.length) result.notes.push(`${steps.length - pos} recorded request(s) never came from the live frontend`);
  return result;
}
