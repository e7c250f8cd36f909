/**
 * The flight recorder with synthetic events: segment rotation (every segment reads on its own),
 * retention by size and age, pins (merged in bursts, released only when they alone exceed the
 * bound), and `vhostscope ls`. test/e2e/flight.test.ts runs it with real peers.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listDirectory, lsText } from '../../src/views/ls';
import { encodeMessage, Request } from '../../src/protocol';
import type { ProxyEvent } from '../../src/events/events';
import { MAX_PINS, PinBook, listSegments, readPins, segmentFile, sweep } from '../../src/recording/flight';
import { Recorder, type FlightOptions } from '../../src/recording/recorder';
import { sweepIntervalMs } from '../../src/recording/retention-schedule';
import { encodeFrame } from '../../src/recording/frames';
import { readRecording } from '../../src/recording/reader';
import type { HeaderRecord, MessageRecord } from '../../src/recording/records';
import { tmpDir } from '../helpers';

const start = (id: number): ProxyEvent => ({
  type: 'session-start',
  ts: 0n,
  session: id,
  listenPath: '/l',
  connectPath: '/c',
  frontend: 'auto',
  interpose: true,
  peers: {},
});
const end = (id: number, reason = 'the frontend closed the connection'): ProxyEvent => ({
  type: 'session-end',
  ts: 1n,
  session: id,
  reason,
  by: 'frontend',
  messages: { 'F>B': 0, 'B>F': 0 },
  fdsForwarded: 0,
  vrings: [],
  relayPairs: [],
});
/** a 1 KiB SET_CONFIG-sized message, numbered in its payload */
const message = (id: number, n: number): ProxyEvent => {
  const payload = Buffer.alloc(1024);
  payload.writeUInt32LE(n);
  return {
    type: 'message',
    ts: BigInt(n),
    session: id,
    channel: 'main',
    sender: 'frontend',
    dir: 'F>B',
    raw: encodeMessage(Request.SET_CONFIG, 1, payload),
    decoded: undefined as never,
    fds: [],
    findings: [],
  };
};
const flight = (o: Partial<FlightOptions>): FlightOptions => ({ segmentBytes: 16 << 10, segmentMs: 600_000, pinBeforeMs: 60_000, pinAfterMs: 10_000, ...o });
const numbers = (file: string): number[] =>
  readRecording(file)
    .records.filter((r): r is MessageRecord => r.type === 'message')
    .map((r) => r.raw.readUInt32LE(12));

describe('flight recorder', () => {
  it('rotates a session into segment files that each read on their own, losing no message', async () => {
    const dir = tmpDir('flight-rotate') + '/';
    const rec = new Recorder(dir, { flight: flight({ keepBytes: 1 << 30 }) });
    rec.onEvent(start(1));
    rec.onDevice(1, 0n, { device: 'net', reason: 'test', strength: 1 });
    for (let n = 0; n < 200; n++) rec.onEvent(message(1, n));
    rec.onEvent(end(1));
    await rec.close();
    const segs = listSegments(dir);
    expect(segs.length).toBeGreaterThanOrEqual(10); // 200 KiB in 16 KiB segments
    expect(segs.map((s) => s.index)).toEqual(segs.map((_, i) => i));
    expect(new Set(segs.map((s) => s.session)).size).toBe(1);
    const all: number[] = [];
    for (const s of segs) {
      const { records, torn } = readRecording(s.file);
      expect(torn).toBeUndefined();
      // header (naming the session and index for later segments), the session's start, its device
      expect(records.slice(0, 3).map((r) => r.type)).toEqual(['header', 'session-start', 'device']);
      expect((records[0] as HeaderRecord).part).toEqual(s.index ? { session: s.session, index: s.index } : undefined);
      expect(s.bytes).toBeLessThan((16 << 10) + 2048); // at most one message past the size
      all.push(...numbers(s.file));
    }
    expect(all).toEqual(Array.from({ length: 200 }, (_, i) => i));
    expect(readRecording(segs.at(-1)!.file).records.at(-1)?.type).toBe('session-end');
  });

  it("keeps the directory within --keep: oldest unpinned segments go, a live session's first segment and pinned windows stay", async () => {
    const dir = tmpDir('flight-keep') + '/';
    const rec = new Recorder(dir, { flight: flight({ keepBytes: 64 << 10 }) });
    rec.onEvent(start(1)); // lives through everything
    for (let n = 0; n < 20; n++) rec.onEvent(message(1, n));
    // session 2 hits a fault rule: its window is pinned
    rec.onEvent(start(2));
    for (let n = 0; n < 10; n++) rec.onEvent(message(2, n));
    rec.onEvent({ type: 'fault', ts: 5n, session: 2, rule: 'r1', text: 'drop SET_CONFIG', action: 'drop', detail: '' });
    rec.onEvent(end(2));
    await new Promise((r) => setTimeout(r, 50)); // a pin keeps segments whose span meets its window
    // then a lot of traffic from session 1, long after session 2 (pin windows are wall-clock: move them)
    const pins = readPins(dir);
    expect(pins.map((p) => [p.reason, p.session])).toEqual([['fault rule r1 (drop SET_CONFIG): drop', expect.stringMatching(/-s2$/)]]);
    for (let n = 20; n < 400; n++) rec.onEvent(message(1, n));
    await rec.close();
    const segs = listSegments(dir);
    const bytes = segs.reduce((n, s) => n + s.bytes, 0);
    // within the bound plus the segments retention may not touch (the open one and session 1's first)
    expect(bytes).toBeLessThanOrEqual((64 << 10) + 2 * (18 << 10));
    const s1 = segs.filter((s) => s.session.endsWith('-s1'));
    expect(s1[0]!.index).toBe(0); // the handshake stays while the session lives
    expect(s1.length).toBeLessThan(25); // most of the 25 it wrote are gone
    expect(numbers(s1.at(-1)!.file).at(-1)).toBe(399);
    expect(segs.filter((s) => s.session.endsWith('-s2')).length).toBeGreaterThanOrEqual(1); // pinned
    const listing = lsText(dir).join('\n');
    expect(listing).toMatch(/2 session\(s\)/);
    expect(listing).toMatch(/-s2 .*pinned by 1/);
    expect(listing).toMatch(/pin 1: .* of .*-s2: fault rule r1 \(drop SET_CONFIG\): drop/);
  });

  it("reads each segment's header once per file (a cache across sweeps), and a file without a header yet again", () => {
    const dir = tmpDir('flight-starts');
    const withHeader = (file: string, wallClockMs: number): void => {
      const header = { type: 'header', format: 'vhostscope', version: 1, host: { wallClockMs }, argv: [] } as unknown as HeaderRecord;
      fs.writeFileSync(file, encodeFrame(header));
    };
    const a = segmentFile(dir, 'x-s1', 0);
    const b = segmentFile(dir, 'x-s2', 0);
    withHeader(a, 1_000);
    fs.writeFileSync(b, ''); // just created: no header yet
    const starts = new Map<string, number>();
    expect(listSegments(dir, starts).map((s) => s.startMs)).toEqual([1_000, fs.statSync(b).mtimeMs]);
    expect(starts.size).toBe(1); // b is not cached: its header is still to come
    // a's header rewritten in place (same inode): the cached start stands, an uncached listing reads it
    const fd = fs.openSync(a, 'r+');
    fs.writeSync(
      fd,
      encodeFrame({ type: 'header', format: 'vhostscope', version: 1, host: { wallClockMs: 2_000 }, argv: [] } as unknown as HeaderRecord),
      0,
      undefined,
      0,
    );
    fs.closeSync(fd);
    withHeader(b, 3_000);
    expect(listSegments(dir, starts).map((s) => [path.basename(s.file), s.startMs])).toEqual([
      ['x-s1.vhsrec', 1_000],
      ['x-s2.vhsrec', 3_000],
    ]);
    expect(listSegments(dir).map((s) => s.startMs)).toEqual([2_000, 3_000]);
    fs.unlinkSync(a);
    expect(listSegments(dir, starts)).toHaveLength(1);
    expect(starts.size).toBe(1); // a deleted file leaves the cache
  });

  it('merges a burst of the same trigger into one pin and releases the oldest pins only when they alone exceed the bound', () => {
    const dir = tmpDir('flight-pins');
    const book = new PinBook(dir, 1000, 1000);
    const a = book.pin('fault rule r1', 'x-s1', 10_000);
    const b = book.pin('fault rule r1', 'x-s1', 10_500); // inside a's window: extends it
    const c = book.pin('fault rule r1', 'x-s1', 20_000); // far after: a new pin
    expect([a.id, b.id, c.id]).toEqual([1, 1, 2]);
    expect(b.toMs).toBe(11_500);
    expect(readPins(dir).map((p) => [p.id, p.toMs])).toEqual([
      [1, 11_500],
      [2, 21_000],
    ]);
    expect(new PinBook(dir).list().map((p) => p.id)).toEqual([1, 2]); // from the file, as a restarted daemon sees it
    // two closed segments, each pinned, together over the bound
    for (const [name, t] of [
      ['x-s1', 10_000],
      ['y-s1', 20_000],
    ] as const) {
      const f = segmentFile(dir, name, 0);
      fs.writeFileSync(f, Buffer.alloc(10_000));
      fs.utimesSync(f, t / 1000, t / 1000);
    }
    const pinsAll = new PinBook(dir, 1000, 1000);
    pinsAll.pin('mark: y', undefined, 20_000);
    const r = sweep(dir, { keepBytes: 15_000 }, pinsAll, new Set(), 20_500); // (while pins 2 and 3 are still in their windows)
    expect(r.released.map((p) => p.id)).toEqual([1]); // the oldest pin goes first
    expect(r.deleted.map((s) => path.basename(s.file))).toEqual(['x-s1.vhsrec']);
    expect(r.bytes).toBe(10_000);
    expect(readPins(dir).map((p) => p.id)).toEqual([2, 3]);
  });

  it("sweeps thousands of segments under hundreds of pins asking each segment only its own session's pins", () => {
    const dir = tmpDir('flight-many');
    const book = new PinBook(dir, 1000, 1000);
    for (let i = 0; i < 300; i++) book.pin(`error ${i}`, `x-s${i}`, 10_000 + i);
    for (let i = 0; i < 3000; i++) {
      const f = segmentFile(dir, `x-s${i}`, 0);
      fs.writeFileSync(f, Buffer.alloc(10));
      fs.utimesSync(f, 10, 10);
    }
    let lists = 0;
    const list = book.list.bind(book);
    book.list = () => {
      lists++;
      return list();
    };
    const pinnedOne = (s: { session: string }): boolean => Number(s.session.slice(3)) < 300;
    const r = sweep(dir, { keepBytes: 300 * 10 }, book, new Set(), 20_000);
    expect(r.deleted.length).toBe(2700);
    expect(r.deleted.filter(pinnedOne)).toEqual([]);
    expect(r.released).toEqual([]);
    // the book is read a few times per sweep, not once per segment (3000 x sorting 300 pins held the loop for seconds)
    expect(lists).toBeLessThan(10);
  });

  it("spaces sweeps by nine times the last one's duration: retention takes at most a tenth of the loop", () => {
    expect(sweepIntervalMs(0)).toBe(1000);
    expect(sweepIntervalMs(100)).toBe(1000);
    expect(sweepIntervalMs(400)).toBe(3600);
    const took = 2000;
    expect(took / sweepIntervalMs(took)).toBeLessThanOrEqual(0.25);
    expect(took / (took + sweepIntervalMs(took))).toBeLessThanOrEqual(0.1);
  });

  it('holds at most MAX_PINS pins (the oldest go), keeps its file compact, and never throws when the file cannot be written', () => {
    const dir = tmpDir('flight-pin-bounds');
    const book = new PinBook(dir, 1000, 1000);
    for (let i = 0; i < MAX_PINS + 50; i++) book.pin(`check VU0${i}`, 'x-s1', 10_000 + i * 5000);
    expect(book.list()).toHaveLength(MAX_PINS);
    expect(book.list()[0]!.reason).toBe('check VU050'); // the 50 oldest released
    // a trigger firing at every message extends its pin: the file stays near one line a pin
    for (let t = 0; t < 20_000; t++) book.pin('fault rule r1', 'x-s1', 100_000_000 + t);
    const lines = fs.readFileSync(book.file, 'utf8').split('\n').filter(Boolean).length;
    expect(lines).toBeLessThanOrEqual(4 * MAX_PINS + 64 + 1);
    expect(readPins(dir)).toHaveLength(MAX_PINS);
    // the file cannot be written (a full disk, here a directory in its place): pins go on in memory
    fs.rmSync(book.file);
    fs.mkdirSync(book.file);
    const p = book.pin('SIGUSR1', undefined, 500_000_000);
    expect(book.list().at(-1)).toEqual(p);
    expect(book.lastError?.message).toMatch(/EISDIR/);
    expect(() => book.release(p.id)).not.toThrow();
    expect(() => book.compact()).not.toThrow();
  });

  it('never writes the pins file through a symlink planted at its name', () => {
    const dir = tmpDir('flight-pin-link');
    const victim = path.join(tmpDir('flight-victim'), 'victim');
    fs.writeFileSync(victim, 'untouched\n');
    fs.symlinkSync(victim, path.join(dir, 'pins.jsonl'));
    const book = new PinBook(dir, 1000, 1000);
    book.pin('mark: x', undefined, 1000);
    expect(book.lastError?.message).toMatch(/ELOOP/);
    expect(fs.readFileSync(victim, 'utf8')).toBe('untouched\n');
  });

  it('deletes unpinned segments older than --keep-for, and never an open one', () => {
    const dir = tmpDir('flight-age');
    const now = Date.now();
    const files = ['old-s1', 'old-s2', 'new-s3', 'open-s4'].map((n) => segmentFile(dir, n, 0));
    for (const f of files) fs.writeFileSync(f, 'x');
    const day = 86_400_000;
    for (const f of files.slice(0, 2)) fs.utimesSync(f, (now - 8 * day) / 1000, (now - 8 * day) / 1000);
    fs.utimesSync(files[3]!, (now - 9 * day) / 1000, (now - 9 * day) / 1000);
    const pins = new PinBook(dir, 60_000, 10_000);
    pins.pin('check VU001 (reply-expected)', 'old-s2', now - 8 * day);
    const r = sweep(dir, { keepMs: 7 * day }, pins, new Set([files[3]!]), now);
    expect(r.deleted.map((s) => path.basename(s.file))).toEqual(['old-s1.vhsrec']);
    expect(fs.readdirSync(dir).sort()).toEqual(['new-s3.vhsrec', 'old-s2.vhsrec', 'open-s4.vhsrec', 'pins.jsonl']);
    expect(listDirectory(dir).sessions.find((s) => s.session === 'old-s2')?.pins).toEqual([1]);
  });

  it('lets go of a pin past --pin-for, and of one whose window is over and keeps no segment', () => {
    const dir = tmpDir('flight-pin-age');
    const now = Date.now();
    const day = 86_400_000;
    const kept = segmentFile(dir, 'kept-s1', 0);
    fs.writeFileSync(kept, 'x');
    fs.utimesSync(kept, (now - 40 * day) / 1000, (now - 40 * day) / 1000);
    const pins = new PinBook(dir, 60_000, 10_000);
    const old = pins.pin('check VU001', 'kept-s1', now - 40 * day); // keeps kept-s1, but 40 days old
    const orphan = pins.pin('mark: nothing recorded then', 'gone-s2', now - 2 * day); // its segments were deleted by hand
    const current = pins.pin('SIGUSR1', undefined, now); // its window is not over: kept
    const r = sweep(dir, { keepMs: 7 * day }, pins, new Set(), now);
    expect(r.expired.map((p) => p.id).sort()).toEqual([old.id, orphan.id].sort());
    expect(r.released).toEqual([]);
    expect(pins.list().map((p) => p.id)).toEqual([current.id]);
    // the segment the old pin kept goes by --keep-for now, in the same sweep
    expect(r.deleted.map((x) => path.basename(x.file))).toEqual(['kept-s1.vhsrec']);
    // and a restarted daemon agrees: the file says so
    expect(new PinBook(dir, 60_000, 10_000).list().map((p) => p.id)).toEqual([current.id]);
  });

  it('refuses --keep without a directory', () => {
    expect(() => new Recorder(path.join(tmpDir('flight-file'), 'one.vhsrec'), { flight: flight({ keepBytes: 1 }) })).toThrow(/give --record a directory/);
  });
});
