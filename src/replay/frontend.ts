/**
 * Replays the recorded frontend against a live backend: fresh resources of the recorded kinds
 * and sizes (the recorded region layout and addresses are kept, so ring addresses stay
 * consistent with the regions), the recorded requests in order, a wait for every reply the
 * protocol says is due, and a comparison of each reply with the recorded one.
 */
import { native, type Channel } from '../native';
import {
  applyMainMessage,
  decodeMessage,
  encodeMessage,
  formatPayload,
  HEADER_SIZE,
  isReplyExpected,
  MAX_PAYLOAD,
  newNegotiation,
  parseHeader,
  Request,
  requestSpec,
  type DeviceType,
} from '../protocol';
import { changedFields } from '../analysis/diff';
import type { MessageEvent, ProxyEvent } from '../events/events';
import { closeFds, describeFds } from '../events/fds';
import { listenOn } from '../native/socket-path';
import { makeFds } from './resources';
import type { Script, Step } from './script';
import { SplitSender, type RecordedSplit } from './chaos';

export interface Divergence {
  index: number;
  request: string;
  kind: 'reply-differs' | 'no-reply' | 'unexpected-message' | 'connection-closed';
  recorded?: string;
  live?: string;
  fields: string[];
}

export interface ReplayResult {
  divergences: Divergence[];
  notes: string[];
  sent: number;
}

export interface FrontendReplayOptions {
  connect?: string;
  listen?: string;
  until?: number;
  pace: 'original' | 'fast';
  /** called before each request (--step) */
  beforeStep?: (step: Step, n: number) => Promise<void>;
  timeoutMs: number;
  device?: DeviceType;
  emit?: (e: ProxyEvent) => void;
  log?: (line: string) => void;
  /** the recording's split chaos rule, repeated on the requests (replay/chaos.ts) */
  split?: RecordedSplit;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Connects (retrying) or listens and accepts one peer; resolves to the socket fd. */
export async function openPeer(o: { connect?: string; listen?: string; timeoutMs: number }): Promise<number> {
  const end = Date.now() + o.timeoutMs;
  if (o.connect) {
    for (;;) {
      try {
        return native.connectUnix(o.connect);
      } catch (err) {
        if (Date.now() > end) throw new Error(`cannot connect to ${o.connect}: ${(err as Error).message}`);
        await sleep(100);
      }
    }
  }
  if (!o.listen) throw new Error('replay needs --connect PATH or --listen PATH');
  const lfd = listenOn(o.listen, 0o600);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      l.close();
      reject(new Error(`nobody connected to ${o.listen} within ${o.timeoutMs} ms`));
    }, o.timeoutMs);
    const l = new native.Listener(lfd, (err, fd) => {
      if (err || fd === null) return;
      clearTimeout(timer);
      l.close();
      resolve(fd);
    });
  });
}

/** A channel whose incoming messages can be awaited one by one. */
export class Inbox {
  readonly channel: Channel;
  private readonly queue: { raw: Buffer; fds: number[]; ts: bigint }[] = [];
  private waiter: (() => void) | undefined;
  closed: string | undefined;

  constructor(fd: number) {
    this.channel = new native.Channel(
      fd,
      MAX_PAYLOAD,
      (raw, fds, ts) => {
        this.queue.push({ raw, fds, ts });
        this.waiter?.();
      },
      (end) => {
        this.closed = end ? `${end.code}: ${end.message}` : 'the peer closed the connection';
        this.waiter?.();
      },
    );
    this.channel.start();
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Closes the channel and wakes whoever waits. */
  close(): void {
    this.channel.close();
    this.closed ??= 'closed by the replay';
    this.waiter?.();
  }

  async next(timeoutMs: number): Promise<{ raw: Buffer; fds: number[]; ts: bigint } | undefined> {
    const end = Date.now() + timeoutMs;
    while (!this.queue.length && !this.closed && Date.now() < end) {
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, end - Date.now()));
        this.waiter = () => {
          clearTimeout(t);
          r();
        };
      });
      this.waiter = undefined;
    }
    return this.queue.shift();
  }
}

/** A message of a replayed session as a proxy event (for the replay's own recording). */
export function message(raw: Buffer, fds: number[], ts: bigint, dir: 'F>B' | 'B>F', channel: 'main' | 'backend', session: number): MessageEvent {
  return {
    type: 'message',
    ts,
    session,
    channel,
    sender: dir === 'F>B' ? 'frontend' : 'backend',
    dir,
    raw,
    decoded: decodeMessage(channel, raw, dir === 'F>B' ? 'frontend' : 'backend'),
    fds: describeFds(fds),
    findings: [],
  };
}

/** Answers the live backend's requests on the backend channel, from the recording where it can. */
function serveBackendChannel(fd: number, script: Script, emit: (e: ProxyEvent) => void, replyAck: () => boolean): Inbox {
  const inbox = new Inbox(fd);
  const loop = async (): Promise<void> => {
    for (;;) {
      const m = await inbox.next(3_600_000);
      if (!m) return;
      emit(message(m.raw, m.fds, m.ts, 'B>F', 'backend', script.session));
      closeFds(m.fds);
      const h = parseHeader(m.raw);
      const spec = requestSpec('backend', h.request);
      if (!(spec?.alwaysReply || ((h.flags & 8) !== 0 && replyAck()))) continue;
      const recorded = script.backendChannel.find((s) => s.request.decoded.request === h.request && s.replyRaw);
      const reply = recorded?.replyRaw ?? encodeMessage(h.request, 5, Buffer.alloc(8));
      inbox.channel.send(reply);
      emit(message(reply, [], native.monotonicNs(), 'F>B', 'backend', script.session));
    }
  };
  void loop();
  return inbox;
}

export async function replayAsFrontend(script: Script, o: FrontendReplayOptions): Promise<ReplayResult> {
  const emit = o.emit ?? (() => {});
  const log = o.log ?? (() => {});
  const result: ReplayResult = { divergences: [], notes: [], sent: 0 };
  const fd = await openPeer({ ...(o.connect ? { connect: o.connect } : {}), ...(o.listen ? { listen: o.listen } : {}), timeoutMs: o.timeoutMs });
  const main = new Inbox(fd);
  const kept: number[] = [];
  const subs: Inbox[] = [];
  const n = newNegotiation();
  const lastBase = new Map<number, number>();
  const steps = o.until !== undefined ? script.frontend.slice(0, o.until) : script.frontend;
  emit({
    type: 'session-start',
    ts: native.monotonicNs(),
    session: script.session,
    listenPath: o.listen ?? '',
    connectPath: o.connect ?? '',
    frontend: 'listen',
    interpose: false,
    peers: {},
  });
  let prevTs: bigint | undefined;
  let answers = 0;
  const splitter = o.split ? new SplitSender(o.split, 'frontend', script.session, emit) : undefined;
  try {
    for (const [i, step] of steps.entries()) {
      const name = step.request.decoded.name;
      if (o.pace === 'original' && prevTs !== undefined) await sleep(Math.min(Number(step.ts - prevTs) / 1e6, 10_000));
      prevTs = step.ts;
      await o.beforeStep?.(step, i);
      while (main.pending) {
        const extra = (await main.next(0))!;
        closeFds(extra.fds);
        const d = decodeMessage('main', extra.raw);
        result.divergences.push({
          index: step.index,
          request: d.name,
          kind: 'unexpected-message',
          live: `${d.name}${d.reply ? ' reply' : ''} ${formatPayload(d, o.device)}`,
          fields: [],
        });
      }
      if (main.closed) {
        result.divergences.push({ index: step.index, request: name, kind: 'connection-closed', live: main.closed, fields: [] });
        break;
      }
      const made = makeFds(step.fds, name.toLowerCase());
      kept.push(...made.keep);
      for (const s of made.sockets)
        subs.push(serveBackendChannel(s, script, emit, () => (n.protocolFeatures !== undefined ? (n.protocolFeatures & 8n) !== 0n : false)));
      if (splitter) await splitter.send(main.channel, step.raw, made.send);
      else main.channel.send(step.raw, made.send);
      result.sent++;
      const h = parseHeader(step.raw);
      const payload = step.raw.subarray(HEADER_SIZE);
      emit(message(step.raw, [], native.monotonicNs(), 'F>B', 'main', script.session));
      applyMainMessage(n, h.request, h.flags, payload);
      if (h.request === Request.SET_VRING_BASE && payload.length >= 8) lastBase.set(payload.readUInt32LE(0), payload.readUInt32LE(4));
      if (!isReplyExpected('main', h.request, h.flags, n)) continue;
      const live = await main.next(o.timeoutMs);
      if (!live) {
        result.divergences.push({
          index: step.index,
          request: name,
          kind: main.closed ? 'connection-closed' : 'no-reply',
          recorded: step.reply ? formatPayload(step.reply.decoded, o.device) : '(no reply recorded)',
          live: main.closed ?? `nothing within ${o.timeoutMs} ms`,
          fields: [],
        });
        if (main.closed) break;
        continue;
      }
      closeFds(live.fds);
      const liveEv = message(live.raw, [], live.ts, 'B>F', 'main', script.session);
      emit(liveEv);
      answers++;
      if (!step.reply) {
        result.notes.push(`#${step.index} ${name}: answered live, but the recording has no reply to compare with`);
        continue;
      }
      const recorded = step.reply;
      if (liveEv.decoded.request !== h.request) {
        result.divergences.push({
          index: step.index,
          request: name,
          kind: 'reply-differs',
          recorded: `${recorded.decoded.name} reply`,
          live: `${liveEv.decoded.name}${liveEv.decoded.reply ? ' reply' : ''}`,
          fields: ['request code'],
        });
        continue;
      }
      let fields = changedFields(recorded, liveEv, o.device);
      if (h.request === Request.GET_VRING_BASE) {
        // A replay carries no guest I/O: the ring cannot have moved since SET_VRING_BASE.
        const vring = payload.readUInt32LE(0);
        const liveNum = live.raw.length >= HEADER_SIZE + 8 ? live.raw.readUInt32LE(HEADER_SIZE + 4) : -1;
        const recNum = recorded.raw.length >= HEADER_SIZE + 8 ? recorded.raw.readUInt32LE(HEADER_SIZE + 4) : -1;
        const expected = lastBase.get(vring) ?? 0;
        if (liveNum === expected && recNum !== liveNum) {
          fields = fields.filter((f) => !f.startsWith('num:'));
          result.notes.push(
            `#${step.index} GET_VRING_BASE vring ${vring}: ${liveNum} (= the replayed SET_VRING_BASE; the recorded ${recNum} reflects guest I/O a replay does not reproduce)`,
          );
        }
      }
      if (fields.length)
        result.divergences.push({
          index: step.index,
          request: name,
          kind: 'reply-differs',
          recorded: formatPayload(recorded.decoded, o.device),
          live: formatPayload(liveEv.decoded, o.device),
          fields,
        });
      log(`#${step.index} ${name}: ${fields.length ? 'DIFFERS' : 'same reply'}`);
    }
    // anything the backend sent after the last request
    await sleep(50);
    while (main.pending) {
      const extra = (await main.next(0))!;
      closeFds(extra.fds);
      const d = decodeMessage('main', extra.raw);
      result.divergences.push({ index: -1, request: d.name, kind: 'unexpected-message', live: `${d.name}${d.reply ? ' reply' : ''}`, fields: [] });
    }
  } finally {
    main.close();
    for (const s of subs) s.close();
    closeFds(kept);
    emit({
      type: 'session-end',
      ts: native.monotonicNs(),
      session: script.session,
      reason: 'replay finished',
      by: 'proxy',
      messages: { 'F>B': result.sent, 'B>F': answers },
      fdsForwarded: 0,
      vrings: [],
      relayPairs: [],
    });
  }
  return result;
}
