/**
 * Turns proxy events into recording records: one file for everything, or one file per session
 * in a directory. Notifications are batched per session (columns, delta timestamps); a batch is
 * written before the session's next message so that a session's records stay in order.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native';
import { HEADER_SIZE, type DeviceGuess } from '../protocol';
import type { ProxyEvent } from '../proxy/events';
import { KIND_CODES, type NotifyBatchRecord } from './records';
import { RecordingWriter, type WriterOptions } from './writer';

const BATCH_EVENTS = 4096;
const BATCH_MS = 200;

interface SessionState {
  writer: RecordingWriter;
  batch: NotifyBatchRecord | undefined;
  last: bigint;
  dropped: number;
  /** vring snapshots not recorded: the disk fell behind */
  droppedRings: number;
  ownWriter: boolean;
}

export interface RecorderOptions extends WriterOptions {
  /** called when a file cannot be written (disk full, ...): forwarding goes on regardless */
  onError?: (path: string, err: Error) => void;
}

/**
 * A message's bytes as recorded: whole up to 64 KiB of payload (every message but a large
 * GPU_UPDATE); beyond that its first 4 KiB, the header keeping the real size. A full-screen
 * GPU_UPDATE is megabytes of pixels per frame: the recording keeps the rectangle and the first
 * pixels, and readers report the rest as not recorded.
 */
export const RECORD_WHOLE_PAYLOAD = 64 * 1024;
export const RECORD_PAYLOAD_PREFIX = 4096;
export function recordedBytes(raw: Buffer): Buffer {
  return raw.length - HEADER_SIZE > RECORD_WHOLE_PAYLOAD ? Buffer.from(raw.subarray(0, HEADER_SIZE + RECORD_PAYLOAD_PREFIX)) : raw;
}

export class Recorder {
  private readonly dirMode: boolean;
  private readonly shared: RecordingWriter | undefined;
  private readonly sessions = new Map<number, SessionState>();
  private readonly timer: NodeJS.Timeout;
  private readonly reported = new Set<RecordingWriter>();
  readonly files: string[] = [];
  /** closes still writing (each leaves the set when done: a long-lived daemon keeps none) */
  private readonly closing = new Set<Promise<void>>();
  /** writers open now, and what the closed ones wrote and dropped (for metrics) */
  private readonly live = new Set<RecordingWriter>();
  private readonly closedFigures = { bytes: 0, droppedNotifications: 0, droppedRings: 0 };

  constructor(
    readonly target: string,
    private readonly opts: RecorderOptions = {},
  ) {
    this.dirMode = target.endsWith('/') || (fs.existsSync(target) && fs.lstatSync(target).isDirectory());
    if (this.dirMode) fs.mkdirSync(target, { recursive: true });
    else {
      this.shared = new RecordingWriter(target, opts);
      this.live.add(this.shared);
      this.shared.writeHeader(native.monotonicNs());
      this.files.push(target);
    }
    this.timer = setInterval(() => this.flushBatches(), BATCH_MS);
    this.timer.unref();
  }

  private sessionFile(id: number): string {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    return path.join(this.target, `${stamp}-s${id}.vhsrec`);
  }

  /** Which device a session carries, as the daemon inferred it (after its session-start). */
  onDevice(session: number, ts: bigint, g: DeviceGuess): void {
    this.sessions.get(session)?.writer.write({ type: 'device', ts, session, device: g.device, reason: g.reason });
  }

  onEvent(e: ProxyEvent): void {
    if (e.type === 'session-start') {
      let writer = this.shared;
      if (!writer) {
        const file = this.sessionFile(e.session);
        writer = new RecordingWriter(file, this.opts);
        this.live.add(writer);
        writer.writeHeader(native.monotonicNs());
        this.files.push(file);
      }
      this.sessions.set(e.session, { writer, batch: undefined, last: 0n, dropped: 0, droppedRings: 0, ownWriter: !this.shared });
      writer.write({ type: 'session-start', ts: e.ts, session: e.session, listen: e.listenPath, connect: e.connectPath, frontend: e.frontend, interpose: e.interpose, peers: e.peers });
      return;
    }
    const s = this.sessions.get(e.session);
    if (!s) return;
    switch (e.type) {
      case 'message':
        this.flushBatch(e.session, s);
        s.writer.write({
          type: 'message',
          ts: e.ts,
          session: e.session,
          channel: e.channel,
          dir: e.dir,
          raw: recordedBytes(e.received ?? e.raw),
          fds: e.fds,
          ...(e.received ? { forwarded: recordedBytes(e.raw) } : {}),
          ...(e.interposed ? { interposed: true } : {}),
          ...(e.injected ? { injected: true } : {}),
          ...(e.absorbed ? { absorbed: true } : {}),
          ...(e.faults ? { faults: e.faults } : {}),
          ...(e.undelivered ? { undelivered: e.undelivered } : {}),
          ...(e.heldNs !== undefined ? { heldNs: e.heldNs } : {}),
        });
        break;
      case 'ring':
        if (!s.writer.write({ type: 'ring', session: e.session, vring: e.vring, raw: e.raw, ...(e.base !== undefined ? { base: e.base } : {}) })) s.droppedRings++;
        break;
      case 'notice':
        break;
      case 'fault':
        this.flushBatch(e.session, s);
        s.writer.write({ type: 'fault', ts: e.ts, session: e.session, rule: e.rule, text: e.text, action: e.action, detail: e.detail });
        break;
      case 'notification': {
        if (e.injected) {
          this.flushBatch(e.session, s);
          s.writer.write({ type: 'notify-injected', ts: e.ts, session: e.session, vring: e.vring, kind: e.kind as 'kick' });
          break;
        }
        if (!s.batch) {
          s.batch = { type: 'notify', session: e.session, ts0: e.ts, dt: [], vk: [], c: [] };
          s.last = e.ts;
        }
        const b = s.batch;
        const dt = e.ts >= s.last ? e.ts - s.last : 0n; // the relay ring is in order; guard anyway
        b.dt.push(Number(dt));
        b.vk.push(e.vring * 4 + KIND_CODES[e.kind]);
        b.c.push(e.count);
        s.last = e.ts >= s.last ? e.ts : s.last;
        if (b.dt.length >= BATCH_EVENTS) this.flushBatch(e.session, s);
        break;
      }
      case 'session-end':
        this.flushBatch(e.session, s);
        s.dropped += s.writer.droppedNotifications;
        s.writer.write({
          type: 'session-end',
          ts: e.ts,
          session: e.session,
          reason: e.reason,
          ...(e.by ? { by: e.by } : {}),
          messages: e.messages,
          fdsForwarded: e.fdsForwarded,
          vrings: e.vrings,
          relayPairs: e.relayPairs,
          droppedNotifications: s.dropped,
          ...(s.droppedRings ? { droppedRings: s.droppedRings } : {}),
        });
        if (s.ownWriter) this.closeWriter(s.writer);
        else s.writer.flush();
        this.sessions.delete(e.session);
        this.checkErrors(s.writer);
        break;
      case 'stats':
      case 'channel-end':
        break;
    }
  }

  /** Closes a writer, moving its figures to the closed totals once it is on disk. */
  private closeWriter(w: RecordingWriter): void {
    const done: Promise<void> = w.close().finally(() => {
      this.closing.delete(done);
      if (!this.live.delete(w)) return;
      this.closedFigures.bytes += w.bytesWritten;
      this.closedFigures.droppedNotifications += w.droppedNotifications;
      this.closedFigures.droppedRings += w.droppedRings;
    });
    this.closing.add(done);
  }

  /** Bytes written and records dropped (the disk fell behind) over every file, for metrics. */
  figures(): { bytes: number; droppedNotifications: number; droppedRings: number } {
    const f = { ...this.closedFigures };
    for (const w of this.live) {
      f.bytes += w.bytesWritten;
      f.droppedNotifications += w.droppedNotifications;
      f.droppedRings += w.droppedRings;
    }
    return f;
  }

  private flushBatch(id: number, s: SessionState): void {
    if (!s.batch) return;
    const b = s.batch;
    s.batch = undefined;
    if (!s.writer.write(b)) {
      s.dropped += b.dt.length;
      s.writer.write({ type: 'dropped', session: id, ts: b.ts0, notifications: b.dt.length });
    }
  }

  private flushBatches(): void {
    for (const [id, s] of this.sessions) {
      this.flushBatch(id, s);
      this.checkErrors(s.writer);
    }
  }

  private checkErrors(w: RecordingWriter): void {
    if (w.error && !this.reported.has(w)) {
      this.reported.add(w);
      this.opts.onError?.(w.path, w.error);
    }
  }

  /** Flushes every batch and closes every file (SIGINT/SIGTERM); resolves when all is on disk. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    for (const [id, s] of this.sessions) {
      this.flushBatch(id, s);
      if (s.ownWriter) this.closeWriter(s.writer);
    }
    this.sessions.clear();
    if (this.shared) this.closeWriter(this.shared);
    await Promise.all([...this.closing]);
  }
}
