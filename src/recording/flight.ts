/**
 * The flight recorder's files: a recording directory of segment files, the pins that keep some
 * of them, and the retention that deletes the rest when the directory is over its size or age
 * bound (`proxy --record DIR/ --keep 2GiB --keep-for 7d`).
 *
 * A session's recording is a set of segment files: `<stamp>-s<id>.vhsrec` holds its start and
 * handshake, `<stamp>-s<id>.<n>.vhsrec` (n = 1, 2, ...) what followed. Every segment reads on
 * its own: it starts with a header (whose `part` names the session and the index) and a copy of
 * the session-start record. Pins are lines of `pins.jsonl` in the same directory; a segment
 * whose time span meets a pin's window (of its session, or of every session) is never deleted.
 * Everything is in the files: a restarted daemon, or `vhostscope ls`, sees the same state.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FRAME_HEADER, scanFrames } from './frames';
import type { HeaderRecord } from './records';

export const PINS_FILE = 'pins.jsonl';
const SEGMENT_NAME = /^(.+-s\d+)(?:\.(\d+))?\.vhsrec$/;

export interface Segment {
  file: string;
  /** the session's name: `<stamp>-s<id>`, shared by all its segments */
  session: string;
  /** 0 for the first segment */
  index: number;
  bytes: number;
  /** wall clock (ms) of the segment's header, and of its last write */
  startMs: number;
  endMs: number;
}

export interface Pin {
  id: number;
  /** wall clock ms of the trigger */
  atMs: number;
  /** the window kept: [fromMs, toMs] */
  fromMs: number;
  toMs: number;
  reason: string;
  /** only this session's segments (`<stamp>-s<id>`); absent: every session's */
  session?: string;
}

/** The first segment's file name of a session, and of its n-th segment after that. */
export function segmentFile(dir: string, session: string, index: number): string {
  return path.join(dir, index === 0 ? `${session}.vhsrec` : `${session}.${index}.vhsrec`);
}

const FIRST_FRAME_MAX = 16 << 10;
/** one read buffer for every header: a sweep of thousands of segments allocates nothing per file */
const firstFrame = Buffer.alloc(FIRST_FRAME_MAX);

/** When a segment began, from its header; undefined for a file without one (empty, foreign, not yet written). */
function headerWallClock(file: string): number | undefined {
  let fd = -1;
  try {
    fd = fs.openSync(file, 'r');
    const n = fs.readSync(fd, firstFrame, 0, FIRST_FRAME_MAX, 0);
    const len = n >= FRAME_HEADER ? firstFrame.readUInt32LE(0) : 0;
    if (FRAME_HEADER + len > n) return undefined; // no whole first frame
    const first = scanFrames(firstFrame.subarray(0, FRAME_HEADER + len)).records[0] as HeaderRecord | undefined;
    return first?.type === 'header' ? first.host.wallClockMs : undefined;
  } catch {
    return undefined;
  } finally {
    if (fd >= 0) fs.closeSync(fd);
  }
}

/**
 * When each segment file began (its header's wall clock), by file and inode: a header never
 * changes, so a daemon reads each once rather than every segment's at every sweep (with
 * thousands of segments that re-reading held the event loop for seconds).
 */
export type SegmentStarts = Map<string, number>;

/** Every segment file in the directory, oldest first. `starts`: a cache kept across calls. */
export function listSegments(dir: string, starts?: SegmentStarts): Segment[] {
  const out: Segment[] = [];
  const seen = new Set<string>();
  for (const name of fs.readdirSync(dir)) {
    const m = SEGMENT_NAME.exec(name);
    if (!m) continue;
    const file = path.join(dir, name);
    let st: fs.Stats;
    try {
      st = fs.statSync(file);
    } catch {
      continue; // deleted meanwhile
    }
    if (!st.isFile()) continue;
    const key = `${file}\0${st.ino}`;
    seen.add(key);
    let startMs = starts?.get(key) ?? headerWallClock(file);
    if (startMs !== undefined) starts?.set(key, startMs);
    else startMs = st.mtimeMs; // no header (yet): counts from its last write, read again next time
    out.push({ file, session: m[1]!, index: m[2] ? Number(m[2]) : 0, bytes: st.size, startMs, endMs: st.mtimeMs });
  }
  if (starts) for (const key of starts.keys()) if (!seen.has(key)) starts.delete(key);
  return out.sort((a, b) => a.startMs - b.startMs || a.index - b.index);
}

export function pinKeeps(pin: Pin, s: Segment): boolean {
  return (pin.session === undefined || pin.session === s.session) && s.startMs <= pin.toMs && s.endMs >= pin.fromMs;
}

/**
 * The pins of a directory. Triggers that come in bursts (a fault rule firing at every message, a
 * peer that repeats an error) extend the window of the pin they fall in rather than adding pins;
 * a changed pin is appended again with its id, and the last line of an id wins.
 */
/** pins in force at most: a trigger that keeps firing with new reasons releases the oldest */
export const MAX_PINS = 1000;

export class PinBook {
  private readonly pins = new Map<number, Pin>();
  private nextId = 1;
  readonly file: string;
  /** lines appended since the file was last rewritten: it is compacted when they pile up */
  private lines = 0;
  /** the last error writing the file (the pins hold in memory regardless) */
  lastError: Error | undefined;

  constructor(
    readonly dir: string,
    private readonly beforeMs = 60_000,
    private readonly afterMs = 10_000,
  ) {
    this.file = path.join(dir, PINS_FILE);
    for (const p of readPins(dir)) {
      this.pins.set(p.id, p);
      this.nextId = Math.max(this.nextId, p.id + 1);
    }
  }

  list(): Pin[] {
    return [...this.pins.values()].sort((a, b) => a.atMs - b.atMs);
  }

  /** Keeps the window around now (or `atMs`); returns the pin that holds it. */
  pin(reason: string, session?: string, atMs = Date.now()): Pin {
    const fromMs = atMs - this.beforeMs;
    const toMs = atMs + this.afterMs;
    for (const p of this.pins.values()) {
      if (p.session !== session || p.reason !== reason || p.toMs < fromMs) continue;
      if (toMs <= p.toMs) return p;
      const extended = { ...p, toMs };
      this.store(extended);
      return extended;
    }
    const p: Pin = { id: this.nextId++, atMs, fromMs, toMs, reason, ...(session ? { session } : {}) };
    this.store(p);
    while (this.pins.size > MAX_PINS) this.release(this.list()[0]!.id);
    return p;
  }

  /** Forgets a pin (retention may then delete what it kept). */
  release(id: number): void {
    if (!this.pins.delete(id)) return;
    this.append({ id, released: true });
  }

  /** Rewrites the file with the pins in force only (it is appended to at every change). */
  compact(): void {
    const tmp = `${this.file}.tmp`;
    try {
      // a fresh file (wx: never through a link planted at the name), then one rename over the old
      fs.rmSync(tmp, { force: true });
      fs.writeFileSync(
        tmp,
        this.list()
          .map((p) => JSON.stringify(p) + '\n')
          .join(''),
        { mode: 0o600, flag: 'wx' },
      );
      fs.renameSync(tmp, this.file);
      this.lines = this.pins.size;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = err as Error;
    }
  }

  private store(p: Pin): void {
    this.pins.set(p.id, p);
    this.append(p);
  }

  /**
   * One line more in the file. A write that fails (a full disk) leaves the pin in force in memory:
   * a pin must never cost a session or the daemon (SIGUSR1 pins).
   */
  private append(line: object): void {
    try {
      const fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
      try {
        fs.writeSync(fd, JSON.stringify(line) + '\n');
      } finally {
        fs.closeSync(fd);
      }
      this.lastError = undefined;
    } catch (err) {
      this.lastError = err as Error;
      return;
    }
    if (++this.lines > 4 * this.pins.size + 64) this.compact(); // an extended pin appends each time
  }
}

/** The pins in force in a directory (`pins.jsonl`; a torn last line is ignored). */
export function readPins(dir: string): Pin[] {
  let text = '';
  try {
    text = fs.readFileSync(path.join(dir, PINS_FILE), 'utf8');
  } catch {
    return [];
  }
  const pins = new Map<number, Pin>();
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    let p: Pin & { released?: boolean };
    try {
      p = JSON.parse(line) as Pin & { released?: boolean };
    } catch {
      continue;
    }
    if (typeof p.id !== 'number') continue;
    if (p.released) pins.delete(p.id);
    else pins.set(p.id, p);
  }
  return [...pins.values()];
}

export interface RetentionLimits {
  /** total bytes of segment files kept (pinned ones included) */
  keepBytes?: number;
  /** segments whose last write is older than this are deleted (unless pinned) */
  keepMs?: number;
  /** a pin is released this long after its window ends (default PIN_MS) */
  pinMs?: number;
}

/** How long a pin keeps what it pinned, by default: a month to look at it, not forever. */
export const PIN_MS = 30 * 86_400_000;

export interface SweepResult {
  deleted: Segment[];
  /** pins let go because the pinned segments alone were over keepBytes */
  released: Pin[];
  /** pins let go because they were older than pinMs, or their window is over and keeps no segment */
  expired: Pin[];
  /** bytes of segment files after the sweep */
  bytes: number;
}

function bySession<T extends { session?: string }>(items: readonly T[]): Map<string | undefined, T[]> {
  const out = new Map<string | undefined, T[]>();
  for (const i of items) {
    const list = out.get(i.session);
    if (list) list.push(i);
    else out.set(i.session, [i]);
  }
  return out;
}

/** Whether a pin keeps a segment, asking only the pins of its session and those of every session. */
function pinLookup(pins: readonly Pin[]): (s: Segment) => boolean {
  const index = bySession(pins);
  const everySession = index.get(undefined) ?? [];
  return (s) => everySession.some((p) => pinKeeps(p, s)) || (index.get(s.session) ?? []).some((p) => pinKeeps(p, s));
}

/**
 * Deletes the segments the limits do not keep: open ones and the first segment of a live
 * session (its handshake, which every later segment needs) are never candidates; pinned ones are
 * deleted only when pinned segments alone exceed keepBytes, oldest pin first (the bound holds
 * even when a trigger fires all the time).
 */
export function sweep(
  dir: string,
  limits: RetentionLimits,
  pins: PinBook,
  keepOpen: ReadonlySet<string>,
  nowMs = Date.now(),
  starts?: SegmentStarts,
): SweepResult {
  const segments = listSegments(dir, starts);
  const deleted: Segment[] = [];
  const released: Pin[] = [];
  const expired: Pin[] = [];
  // pins past their age: let go first, so that what they kept goes by the other bounds
  for (const p of pins.list()) {
    if (nowMs - p.toMs <= (limits.pinMs ?? PIN_MS)) continue;
    pins.release(p.id);
    expired.push(p);
  }
  const candidate = (s: Segment): boolean => !keepOpen.has(s.file);
  // the pins in force, read again only when one is let go: thousands of segments ask each
  let inForce = pins.list();
  let pinned = pinLookup(inForce);
  const gone = new Set<Segment>();
  const remove = (s: Segment): void => {
    try {
      fs.unlinkSync(s.file);
    } catch {
      /* gone already */
    }
    deleted.push(s);
    gone.add(s);
  };
  let live = segments.filter((s) => {
    const old = limits.keepMs !== undefined && nowMs - s.endMs > limits.keepMs;
    if (old && candidate(s) && !pinned(s)) {
      remove(s);
      return false;
    }
    return true;
  });
  let bytes = live.reduce((n, s) => n + s.bytes, 0);
  if (limits.keepBytes !== undefined && bytes > limits.keepBytes) {
    for (const s of live) {
      if (bytes <= limits.keepBytes) break;
      if (!candidate(s) || pinned(s)) continue;
      remove(s);
      bytes -= s.bytes;
    }
    live = live.filter((s) => !gone.has(s));
    // still over: pinned segments alone exceed the bound; release the oldest pins until not
    while (bytes > limits.keepBytes) {
      const oldest = inForce[0];
      if (!oldest) break;
      pins.release(oldest.id);
      released.push(oldest);
      inForce = pins.list();
      pinned = pinLookup(inForce);
      for (const s of live) {
        if (bytes <= limits.keepBytes) break;
        if (gone.has(s) || !candidate(s) || pinned(s)) continue;
        remove(s);
        bytes -= s.bytes;
      }
    }
  }
  // pins whose window is over and keeps no segment any more (deleted by hand, or never written)
  const kept = segments.filter((s) => !gone.has(s));
  const left = bySession(kept);
  for (const p of pins.list()) {
    const mine = p.session === undefined ? kept : (left.get(p.session) ?? []);
    if (p.toMs >= nowMs || mine.some((s) => pinKeeps(p, s))) continue;
    pins.release(p.id);
    expired.push(p);
  }
  if (released.length || expired.length) pins.compact();
  return { deleted, released, expired, bytes };
}
