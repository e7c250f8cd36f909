/**
 * Turns proxy events into recording records: one file for everything, or one file per session
 * in a directory. Notifications are batched per session (columns, delta timestamps); a batch is
 * written before the session's next message so that a session's records stay in order.
 *
 * With `flight` options (a directory only) it is a flight recorder: a session's file is rotated
 * into segment files by size and age, pins keep the windows around what matters, and retention
 * deletes the oldest unpinned segments beyond the size and age bounds (flight.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native } from '../native';
import type { DeviceGuess } from '../protocol';
import type { RecordingFigures } from '../control/metrics';
import type { ProxyEvent } from '../events/events';
import { endedInError } from '../events/events';
import type { DeviceRecord, HeaderRecord, SessionStartRecord } from './records';
import { ensureTrustedDir } from '../util/trusted-path';
import { RecordingWriter, type WriterOptions } from './writer';
import { deviceStateRecord, dirtyLogRecord, faultRecord, messageRecord, NotifyBatch, sessionEndRecord, sessionStartRecord } from './event-records';
import { RetentionSchedule } from './retention-schedule';
import { PinBook, segmentFile, sweep, type Pin, type RetentionLimits, type SegmentStarts, type SweepResult } from './flight';

const BATCH_EVENTS = 4096;
const BATCH_MS = 200;

interface SessionState {
  writer: RecordingWriter;
  batch: NotifyBatch | undefined;
  dropped: number;
  /** vring snapshots not recorded: the disk fell behind */
  droppedRings: number;
  ownWriter: boolean;
  /** directory mode: `<stamp>-s<id>`, the name every segment file of the session starts with */
  name?: string;
  /** the segment being written (0: the first) and when it began (wall clock ms) */
  part: number;
  partStartedMs: number;
  /** wall clock ms before which no rotation is tried again (the last one could not open a file) */
  retryRotationMs: number;
  /** the segment's size after its header and (copied) start: an age rotation needs more than that */
  partBaseBytes: number;
  /** copied to the start of every later segment, so that each reads on its own */
  start?: SessionStartRecord;
  device?: DeviceRecord;
}

export interface FlightOptions extends RetentionLimits {
  /** a segment file is closed and the next one begun at this size */
  segmentBytes: number;
  /** ... or at this age (ms) */
  segmentMs: number;
  /** a pin keeps from this long before its trigger to this long after (ms) */
  pinBeforeMs: number;
  pinAfterMs: number;
  /** retention deleted segments or released pins */
  onSweep?: (r: SweepResult) => void;
  /** a trigger pinned a window (new or extended) */
  onPin?: (p: Pin) => void;
}

export interface RecorderOptions extends WriterOptions {
  /**
   * called when a file cannot be written (disk full, ...) or created (`opening`: what happens
   * instead); forwarding goes on regardless
   */
  onError?: (path: string, err: Error, opening?: string) => void;
  /** rotate, pin and retain (directory mode only) */
  flight?: FlightOptions;
}

/** after a rotation that could not open its file, the session stays in its segment this long */
const ROTATION_RETRY_MS = 10_000;
/** `files` keeps the names of this many most recent files */
const RECENT_FILES = 100;

export class Recorder {
  private readonly dirMode: boolean;
  private readonly shared: RecordingWriter | undefined;
  private readonly sessions = new Map<number, SessionState>();
  private readonly timer: NodeJS.Timeout;
  private readonly reported = new WeakSet<RecordingWriter>();
  /** the most recent files begun (at most RECENT_FILES) */
  readonly files: string[] = [];
  readonly pins: PinBook | undefined;
  private pinErrorTold: Error | undefined;
  /** when retention runs (flight recorder) */
  private readonly retention: RetentionSchedule | undefined;
  private readonly segmentStarts: SegmentStarts = new Map();
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
    if (opts.flight && !this.dirMode)
      throw new Error(`--keep and --keep-for rotate a directory of segment files: give --record a directory (ending in /), not ${target}`);
    ensureTrustedDir(this.dirMode ? target : path.dirname(path.resolve(target)), 'recordings');
    if (opts.flight) {
      this.pins = new PinBook(target, opts.flight.pinBeforeMs, opts.flight.pinAfterMs);
      this.retention = new RetentionSchedule(() => this.sweep());
    }
    if (!this.dirMode) {
      this.shared = new RecordingWriter(target, opts);
      this.live.add(this.shared);
      this.shared.writeHeader(native.monotonicNs());
      this.files.push(target);
    }
    this.timer = setInterval(() => this.flushBatches(), BATCH_MS);
    this.timer.unref();
  }

  private sessionName(id: number): string {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    return `${stamp}-s${id}`;
  }

  private opened(file: string): void {
    this.files.push(file);
    if (this.files.length > RECENT_FILES) this.files.shift();
  }

  /** Which device a session carries, as the daemon inferred it (after its session-start). */
  onDevice(session: number, ts: bigint, g: DeviceGuess): void {
    const s = this.sessions.get(session);
    if (!s) return;
    const r: DeviceRecord = { type: 'device', ts, session, device: g.device, reason: g.reason };
    s.device = r;
    s.writer.write(r);
  }

  /**
   * Keeps the recording around now from retention (flight recorder): of one session (by id) or
   * of every session. Returns the pin, or undefined without --keep.
   */
  pin(reason: string, session?: number): Pin | undefined {
    if (!this.pins) return undefined;
    const name = session === undefined ? undefined : this.sessions.get(session)?.name;
    if (session !== undefined && !name) return undefined; // not a session being recorded
    const p = this.pins.pin(reason, name);
    this.opts.flight?.onPin?.(p);
    // the pin holds in memory whatever the disk says; the first failure to write it is told
    const err = this.pins.lastError;
    if (err && !this.pinErrorTold) this.opts.onError?.(this.pins.file, err);
    this.pinErrorTold = err;
    return p;
  }

  /** Files retention must not touch: open segments, and each live session's first one. */
  private protectedFiles(): Set<string> {
    const keep = new Set<string>();
    for (const s of this.sessions.values()) {
      keep.add(s.writer.path);
      if (s.name) keep.add(segmentFile(this.target, s.name, 0));
    }
    return keep;
  }

  private sweep(): void {
    const f = this.opts.flight;
    if (!f || !this.pins) return;
    try {
      const r = sweep(this.target, f, this.pins, this.protectedFiles(), Date.now(), this.segmentStarts);
      if (r.deleted.length || r.released.length || r.expired.length) f.onSweep?.(r);
    } catch (err) {
      this.opts.onError?.(this.target, err as Error);
    }
  }

  /** Flight recorder: begins the session's next segment file when this one is big or old enough. */
  private maybeRotate(id: number, s: SessionState): void {
    const f = this.opts.flight;
    if (!f || !s.name || !s.start) return;
    const bytes = s.writer.bytesWritten + s.writer.queuedBytes;
    const full = bytes >= f.segmentBytes;
    const old = Date.now() - s.partStartedMs >= f.segmentMs && (bytes > s.partBaseBytes || s.batch !== undefined);
    if (!full && !old) return;
    if (Date.now() < s.retryRotationMs) return;
    this.flushBatch(id, s);
    const file = segmentFile(this.target, s.name, s.part + 1);
    const next = this.openWriter(file, { session: s.name, index: s.part + 1 });
    if (!next) {
      // no new file (no inode, no fd left): the session goes on in this one, and tries again later
      s.retryRotationMs = Date.now() + ROTATION_RETRY_MS;
      return;
    }
    this.closeWriter(s.writer);
    s.part++;
    s.partStartedMs = Date.now();
    s.writer = next;
    s.writer.write(s.start);
    if (s.device) s.writer.write(s.device);
    s.partBaseBytes = s.writer.bytesWritten + s.writer.queuedBytes;
    this.retention?.soon();
  }

  onEvent(e: ProxyEvent): void {
    if (e.type === 'session-start') {
      const name = this.shared ? undefined : this.sessionName(e.session);
      const writer = this.shared ?? this.openWriter(segmentFile(this.target, name!, 0));
      if (!writer) return; // told; the session is forwarded, not recorded
      const start = sessionStartRecord(e);
      const state: SessionState = {
        writer,
        batch: undefined,
        dropped: 0,
        droppedRings: 0,
        ownWriter: !this.shared,
        part: 0,
        partStartedMs: Date.now(),
        partBaseBytes: 0,
        retryRotationMs: 0,
        ...(name ? { name, start } : {}),
      };
      this.sessions.set(e.session, state);
      writer.write(start);
      state.partBaseBytes = writer.bytesWritten + writer.queuedBytes;
      return;
    }
    const s = this.sessions.get(e.session);
    if (!s) return;
    switch (e.type) {
      case 'message':
        this.flushBatch(e.session, s);
        s.writer.write(messageRecord(e));
        break;
      case 'ring':
        if (!s.writer.write({ type: 'ring', session: e.session, vring: e.vring, raw: e.raw, ...(e.base !== undefined ? { base: e.base } : {}) }))
          s.droppedRings++;
        break;
      case 'notice':
        break;
      case 'dirty-log': {
        this.flushBatch(e.session, s);
        s.writer.write(dirtyLogRecord(e));
        break;
      }
      case 'inflight':
        this.flushBatch(e.session, s);
        s.writer.write(e);
        break;
      case 'device-state':
        this.flushBatch(e.session, s);
        s.writer.write(deviceStateRecord(e));
        break;
      case 'fault':
        this.flushBatch(e.session, s);
        s.writer.write(faultRecord(e));
        this.pin(`fault rule ${e.rule} (${e.text}): ${e.action}`, e.session);
        break;
      case 'notification': {
        if (e.injected) {
          this.flushBatch(e.session, s);
          s.writer.write({ type: 'notify-injected', ts: e.ts, session: e.session, vring: e.vring, kind: e.kind as 'kick' });
          break;
        }
        s.batch ??= new NotifyBatch(e.session, e.ts);
        if (s.batch.add(e) >= BATCH_EVENTS) this.flushBatch(e.session, s);
        return; // the per-notification path stays short: rotation is checked with the batch timer
      }
      case 'session-end':
        if (endedInError(e)) this.pin(`session ${e.session} ended in an error: ${e.reason}`, e.session);
        this.flushBatch(e.session, s);
        s.writer.write(sessionEndRecord(e, s.dropped, s.droppedRings));
        if (s.ownWriter) this.closeWriter(s.writer);
        else s.writer.flush();
        this.sessions.delete(e.session);
        this.checkErrors(s.writer);
        if (s.name) this.retention?.soon();
        return;
      case 'stats':
      case 'channel-end':
        return;
    }
    this.maybeRotate(e.session, s);
  }

  /**
   * A new file, its header written; or, when it cannot be created (EMFILE, ENOSPC, EACCES, a
   * removed directory), undefined after telling onError: forwarding never waits for the disk.
   */
  private openWriter(file: string, part?: HeaderRecord['part']): RecordingWriter | undefined {
    let w: RecordingWriter;
    try {
      w = new RecordingWriter(file, { ...this.opts, exclusive: true });
    } catch (err) {
      this.opts.onError?.(
        file,
        err as Error,
        part ? 'the session stays in its current segment and tries again in 10 s' : 'the session is forwarded without a recording',
      );
      return undefined;
    }
    this.live.add(w);
    this.opened(file);
    w.writeHeader(native.monotonicNs(), part);
    return w;
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
  figures(): RecordingFigures {
    const f = { ...this.closedFigures, queuedBytes: 0 };
    for (const w of this.live) {
      f.queuedBytes += w.queuedBytes;
      f.bytes += w.bytesWritten;
      f.droppedNotifications += w.droppedNotifications;
      f.droppedRings += w.droppedRings;
    }
    return f;
  }

  private flushBatch(id: number, s: SessionState): void {
    if (!s.batch) return;
    const b = s.batch.record;
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
      this.maybeRotate(id, s);
    }
  }

  private checkErrors(w: RecordingWriter): void {
    if (w.error && !this.reported.has(w)) {
      this.reported.add(w); // a WeakSet: a closed writer leaves it with its last reference
      this.opts.onError?.(w.path, w.error);
    }
  }

  /** Flushes every batch and closes every file (SIGINT/SIGTERM); resolves when all is on disk. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    // a sweep that was waiting runs now, while the live sessions' first segments are still protected
    this.retention?.stop();
    for (const [id, s] of this.sessions) {
      this.flushBatch(id, s);
      if (s.ownWriter) this.closeWriter(s.writer);
    }
    this.sessions.clear();
    if (this.shared) this.closeWriter(this.shared);
    await Promise.all([...this.closing]);
  }
}
