/**
 * The flight recorder's retention at its edges: which files count as segments and when they
 * began, a pin's window at its exact ends, when a burst merges into a pin, the pins file as a
 * restarted daemon reads it, and the --keep and --keep-for bounds at exactly their values.
 * test/unit/flight.test.ts has the recorder's behaviour as a whole.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { listSegments, PinBook, pinKeeps, readPins, segmentFile, sweep, type Pin, type Segment } from '../../src/recording/flight';
import { encodeFrame } from '../../src/recording/frames';
import type { HeaderRecord } from '../../src/recording/records';
import { tmpDir } from '../helpers';

const header = (wallClockMs: number): Buffer =>
  encodeFrame({ type: 'header', format: 'vhostscope', version: 1, host: { wallClockMs }, argv: [] } as unknown as HeaderRecord);
/** a segment file of `bytes` bytes whose last write was at `mtimeMs` */
const file = (f: string, bytes: number, mtimeMs: number, head?: number): string => {
  const b = Buffer.alloc(bytes);
  if (head !== undefined) header(head).copy(b);
  fs.writeFileSync(f, b);
  fs.utimesSync(f, mtimeMs / 1000, mtimeMs / 1000);
  return f;
};
const names = (segs: readonly Segment[]): string[] => segs.map((s) => path.basename(s.file));
const openFds = (): number => fs.readdirSync('/proc/self/fd').length;
const lines = (book: PinBook): string[] => fs.readFileSync(book.file, 'utf8').split('\n').filter(Boolean);

describe('retention at its edges', () => {
  it('a segment begins at its whole header; a cut header, a directory or a foreign name is no segment start', () => {
    const whole = tmpDir('ret-whole');
    file(segmentFile(whole, 'a-s1', 0), 200, 9_000_000, 1_000);
    expect(listSegments(whole).map((s) => s.startMs)).toEqual([1_000]);
    // the same header less its last byte: no whole first frame, so the file counts from its last write
    // (read right after the whole one, whose bytes are still in the shared read buffer)
    const cut = tmpDir('ret-cut');
    const f = segmentFile(cut, 'a-s1', 0);
    fs.writeFileSync(f, header(1_000).subarray(0, header(1_000).length - 1));
    fs.utimesSync(f, 5_000, 5_000);
    expect(listSegments(cut).map((s) => s.startMs)).toEqual([5_000_000]);
    // a directory with a segment's name, and files that are not segments
    fs.mkdirSync(segmentFile(cut, 'b-s2', 0));
    fs.writeFileSync(path.join(cut, 'notes.txt'), 'x');
    fs.writeFileSync(path.join(cut, 'a-s1.vhsrec.tmp'), 'x');
    expect(names(listSegments(cut))).toEqual(['a-s1.vhsrec']);
  });

  it('reads every header without keeping an fd', () => {
    const dir = tmpDir('ret-fds');
    for (let i = 0; i < 40; i++) file(segmentFile(dir, `a-s${i}`, 0), 100, 1_000_000, 1_000 + i);
    const before = openFds();
    expect(listSegments(dir)).toHaveLength(40);
    expect(openFds()).toBe(before);
  });

  it('orders segments by start, then by their index within the session', () => {
    const dir = tmpDir('ret-order');
    for (const i of [5, 2, 4, 0, 3, 1]) file(segmentFile(dir, 'a-s1', i), 100, 1_000_000, 7_000);
    file(segmentFile(dir, 'b-s2', 0), 100, 1_000_000, 6_000);
    expect(listSegments(dir).map((s) => `${s.session}.${s.index}`)).toEqual(['b-s2.0', 'a-s1.0', 'a-s1.1', 'a-s1.2', 'a-s1.3', 'a-s1.4', 'a-s1.5']);
  });

  it("keeps a segment that touches the pin's window at either end, of its session or of every session", () => {
    const seg = (startMs: number, endMs: number, session = 'a-s1'): Segment => ({ file: 'f', session, index: 0, bytes: 1, startMs, endMs });
    const pin: Pin = { id: 1, atMs: 150, fromMs: 100, toMs: 200, reason: 'r', session: 'a-s1' };
    expect(pinKeeps(pin, seg(200, 300))).toBe(true); // begins as the window ends
    expect(pinKeeps(pin, seg(201, 300))).toBe(false);
    expect(pinKeeps(pin, seg(0, 100))).toBe(true); // ends as the window begins
    expect(pinKeeps(pin, seg(0, 99))).toBe(false);
    expect(pinKeeps(pin, seg(120, 180, 'b-s2'))).toBe(false); // another session's
    const { session: _, ...everySession } = pin;
    expect(pinKeeps(everySession, seg(120, 180, 'b-s2'))).toBe(true);
  });

  it('merges a trigger into a pin of the same reason and session whose window reaches it, and only those', () => {
    const book = new PinBook(tmpDir('ret-merge'), 1000, 1000);
    const a = book.pin('r', 'a-s1', 10_000); // [9000, 11000]
    expect(book.pin('r', 'b-s2', 10_000).id).not.toBe(a.id); // another session
    expect(book.pin('other', 'a-s1', 10_000).id).not.toBe(a.id); // another reason
    expect(book.pin('r', undefined, 10_000).id).not.toBe(a.id); // every session is not a-s1
    const linesBefore = lines(book).length;
    expect(book.pin('r', 'a-s1', 9_000)).toBe(a); // inside: nothing changes, nothing written
    expect(book.pin('r', 'a-s1', 10_000)).toBe(a); // the same window exactly: nothing written
    expect(lines(book)).toHaveLength(linesBefore);
    const b = book.pin('r', 'a-s1', 12_000); // from 11000: the window's end reaches it
    expect([b.id, b.fromMs, b.toMs]).toEqual([a.id, 9_000, 13_000]);
    expect(book.pin('r', 'a-s1', 14_001).id).not.toBe(a.id); // from 13001: past the end
    expect(book.list().map((p) => p.atMs)).toEqual([10_000, 10_000, 10_000, 10_000, 14_001]);
  });

  it('lists pins by the time of their trigger, whatever order they came in', () => {
    const book = new PinBook(tmpDir('ret-list'), 10, 10);
    book.pin('late', undefined, 5_000);
    book.pin('early', undefined, 1_000);
    book.pin('middle', undefined, 3_000);
    expect(book.list().map((p) => p.reason)).toEqual(['early', 'middle', 'late']);
  });

  it('writes a release to the file at once, and nothing for a pin it does not hold', () => {
    const dir = tmpDir('ret-release');
    const book = new PinBook(dir, 10, 10);
    const a = book.pin('a', undefined, 1_000);
    const b = book.pin('b', undefined, 2_000);
    book.release(a.id);
    expect(readPins(dir).map((p) => p.id)).toEqual([b.id]);
    const n = lines(book).length;
    book.release(a.id);
    book.release(99);
    expect(lines(book)).toHaveLength(n);
  });

  it('compacts the file once its lines pass four per pin and 64, to the pins in force, owner-only', () => {
    const dir = tmpDir('ret-compact');
    const book = new PinBook(dir, 10, 10);
    for (let t = 0; t < 68; t++) book.pin('r', undefined, 1_000 + t * 5); // one pin, extended 67 times
    expect(lines(book)).toHaveLength(68); // 68 = 4 x 1 + 64: not yet
    book.pin('r', undefined, 1_000 + 68 * 5);
    expect(lines(book)).toHaveLength(1);
    expect(fs.statSync(book.file).mode & 0o777).toBe(0o600);
    expect(readPins(dir)).toEqual(book.list());
  });

  it('says why it could not compact', () => {
    const dir = tmpDir('ret-compact-fail');
    const book = new PinBook(dir, 10, 10);
    book.pin('r', undefined, 1_000);
    fs.mkdirSync(`${book.file}.tmp`); // in the way of the temporary file
    fs.writeFileSync(path.join(`${book.file}.tmp`, 'x'), '');
    book.compact();
    expect(book.lastError).toBeInstanceOf(Error);
    expect(readPins(dir)).toHaveLength(1);
  });

  it('reads the pins file line by line: the last line of an id wins, a release removes it, other lines are skipped', () => {
    const dir = tmpDir('ret-read');
    const p = (id: number, toMs: number): string => JSON.stringify({ id, atMs: 1, fromMs: 0, toMs, reason: 'r' });
    fs.writeFileSync(
      path.join(dir, 'pins.jsonl'),
      [
        p(1, 10),
        '',
        '   ',
        p(2, 20),
        '{"x":1}',
        '{"id":"3"}',
        'not json',
        p(1, 15),
        '{"id":2,"released":true}',
        p(4, 40),
        '{"id":4,"released":false}',
        '{"id":5,"at',
      ].join('\n'),
    );
    expect(readPins(dir).map((x) => [x.id, x.toMs])).toEqual([
      [1, 15],
      [4, undefined],
    ]);
    expect(readPins(tmpDir('ret-none'))).toEqual([]);
  });

  it('lets a pin go exactly when it is older than --pin-for', () => {
    const dir = tmpDir('ret-pin-for');
    const keep = file(segmentFile(dir, 'a-s1', 0), 10, 1_000, 1_000);
    const book = new PinBook(dir, 0, 0);
    book.pin('r', 'a-s1', 1_000);
    expect(sweep(dir, { pinMs: 500 }, book, new Set(), 1_500).expired).toEqual([]); // 500 ms after: not older
    expect(sweep(dir, { pinMs: 500 }, book, new Set(), 1_501).expired.map((x) => x.id)).toEqual([1]);
    expect(fs.existsSync(keep)).toBe(true); // no bound asked for its segment
  });

  it('deletes by age only past --keep-for, and counts what is left', () => {
    const dir = tmpDir('ret-keep-for');
    file(segmentFile(dir, 'a-s1', 0), 100, 10_000);
    file(segmentFile(dir, 'b-s2', 0), 30, 11_000);
    const r = sweep(dir, { keepMs: 1_000 }, new PinBook(dir), new Set(), 12_000); // b-s2 exactly 1000 ms old
    expect(names(r.deleted)).toEqual(['a-s1.vhsrec']);
    expect(r.bytes).toBe(30);
    // with no --keep-for, age deletes nothing
    expect(sweep(dir, {}, new PinBook(dir), new Set(), 1e12).deleted).toEqual([]);
  });

  it('deletes by size only past --keep, oldest first, and stops as soon as the rest fits', () => {
    const dir = tmpDir('ret-keep');
    file(segmentFile(dir, 'a-s1', 0), 100, 1_000, 1_000);
    file(segmentFile(dir, 'b-s2', 0), 100, 2_000, 2_000);
    file(segmentFile(dir, 'c-s3', 0), 100, 3_000, 3_000);
    expect(sweep(dir, { keepBytes: 300 }, new PinBook(dir), new Set(), 4_000).deleted).toEqual([]); // exactly at the bound
    const r = sweep(dir, { keepBytes: 200 }, new PinBook(dir), new Set(), 4_000);
    expect(names(r.deleted)).toEqual(['a-s1.vhsrec']);
    expect(r.bytes).toBe(200);
  });

  it('over --keep with pinned segments alone: releases the oldest pin and deletes only what it kept, one pin at a time', () => {
    const dir = tmpDir('ret-pinned');
    file(segmentFile(dir, 'a-s1', 0), 100, 1_000, 1_000);
    file(segmentFile(dir, 'b-s2', 0), 100, 2_000, 2_000);
    file(segmentFile(dir, 'c-s3', 0), 100, 3_000, 3_000);
    const open = file(segmentFile(dir, 'd-s4', 0), 100, 500, 500); // oldest, but open
    const book = new PinBook(dir, 0, 0);
    book.pin('x', 'b-s2', 2_000);
    book.pin('y', 'a-s1', 1_000); // a younger pin on the oldest segment
    book.pin('z', 'c-s3', 3_000);
    const r = sweep(dir, { keepBytes: 300 }, book, new Set([open]), 3_000);
    expect(r.released.map((p) => p.reason)).toEqual(['y']); // the pin of the oldest trigger time
    expect(names(r.deleted)).toEqual(['a-s1.vhsrec']);
    expect(r.bytes).toBe(300);
    expect(book.list().map((p) => p.reason)).toEqual(['x', 'z']);
    expect(readPins(dir).map((p) => p.reason)).toEqual(['x', 'z']);
  });

  it('lets go of a pin whose window is over and keeps nothing, and keeps one whose window has not ended', () => {
    const dir = tmpDir('ret-orphan');
    file(segmentFile(dir, 'a-s1', 0), 10, 1_000, 1_000);
    const book = new PinBook(dir, 0, 0);
    book.pin('ends now', 'gone-s9', 5_000); // toMs 5000, nothing of gone-s9 left
    book.pin('every session', undefined, 1_000); // keeps a-s1
    book.pin('nothing then', undefined, 3_000); // no segment spans 3000
    const r = sweep(dir, {}, book, new Set(), 5_000);
    expect(r.expired.map((p) => p.reason)).toEqual(['nothing then']);
    expect(book.list().map((p) => p.reason)).toEqual(['every session', 'ends now']);
    expect(sweep(dir, {}, book, new Set(), 5_001).expired.map((p) => p.reason)).toEqual(['ends now']);
    expect(readPins(dir).map((p) => p.reason)).toEqual(['every session']);
  });
});
