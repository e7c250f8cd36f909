/**
 * The recording writer at its edges: which files it refuses to append to, the back-pressure
 * bound at exactly its value, the 256 KiB early flush, one flush clock shared by the writers of
 * an interval, a write that fails (nothing queued after it), and what a closed writer takes.
 * test/integration/recording.test.ts has the torn-tail recovery, short writes and SIGKILL.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeFrame } from '../../src/recording/frames';
import { readRecording } from '../../src/recording/reader';
import type { HeaderRecord, RecordingRecord } from '../../src/recording/records';
import { RecordingWriter } from '../../src/recording/writer';
import { tmpDir } from '../helpers';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const ring = (bytes: number): RecordingRecord => ({ type: 'ring', session: 1, vring: 0, raw: Buffer.alloc(bytes, 1) });
const notify = (n: number): RecordingRecord => ({ type: 'notify', session: 1, ts0: 1n, dt: Array(n).fill(1), vk: Array(n).fill(0), c: Array(n).fill(1) });
const size = (f: string): number => fs.statSync(f).size;

describe('recording writer', () => {
  it('refuses a path that is not a regular file, or a file of another user', () => {
    const dir = tmpDir('writer-refuse');
    expect(() => new RecordingWriter(dir)).toThrow(/EISDIR|is not a regular file/);
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    expect(() => new RecordingWriter(fifo)).toThrow(`${fifo} is not a regular file`);
    const other = path.join(dir, 'other.vhsrec');
    fs.writeFileSync(other, '');
    fs.chownSync(other, 65534, 65534);
    expect(() => new RecordingWriter(other)).toThrow(`${other} belongs to uid 65534, not to this daemon (uid ${process.geteuid!()}); refusing to append to it`);
    expect(size(other)).toBe(0);
    const fdsBefore = fs.readdirSync('/proc/self/fd').length;
    expect(() => new RecordingWriter(other)).toThrow();
    expect(fs.readdirSync('/proc/self/fd').length).toBe(fdsBefore); // the refused file's fd is closed
  });

  it('describes the host and the command line in its header', async () => {
    const file = path.join(tmpDir('writer-header'), 'a.vhsrec');
    const w = new RecordingWriter(file, { argv: ['vhostscope', 'proxy'] });
    w.writeHeader(5n);
    const w2 = new RecordingWriter(path.join(path.dirname(file), 'b.vhsrec'));
    w2.writeHeader(5n);
    await Promise.all([w.close(), w2.close()]);
    const h = readRecording(file).records[0] as HeaderRecord;
    expect(h.argv).toEqual(['vhostscope', 'proxy']);
    expect(h.host.kernel).toBe(`${os.type()} ${os.release()} ${os.version()}`);
    expect((readRecording(w2.path).records[0] as HeaderRecord).argv).toEqual(process.argv);
  });

  it('takes high-rate records up to exactly its bound of queued bytes, then drops and counts them', async () => {
    const file = path.join(tmpDir('writer-bound'), 'a.vhsrec');
    const first = encodeFrame(ring(100)).length;
    const w = new RecordingWriter(file, { maxPendingBytes: first, flushMs: 60_000 });
    expect(w.write(ring(100))).toBe(true); // 0 queued: taken
    expect(w.queuedBytes).toBe(first);
    expect(w.write(notify(3))).toBe(true); // exactly at the bound: still taken
    expect(w.write(notify(3))).toBe(false);
    expect(w.write(ring(1))).toBe(false);
    expect([w.droppedNotifications, w.droppedRings]).toEqual([3, 1]);
    expect(w.write({ type: 'dropped', session: 1, ts: 1n, notifications: 3 })).toBe(true); // never a control record
    await w.close();
    expect(readRecording(file).records.map((r) => r.type)).toEqual(['ring', 'notify', 'dropped']);
  });

  it('starts writing at 256 KiB queued without waiting for its clock, and again after if as much queued meanwhile', async () => {
    const file = path.join(tmpDir('writer-early'), 'a.vhsrec');
    const w = new RecordingWriter(file, { flushMs: 600_000 });
    w.write(ring(100 << 10));
    await sleep(50);
    expect(size(file)).toBe(0); // under 256 KiB: waits for the clock
    w.write(ring(200 << 10)); // now over: written at once
    w.write(ring(300 << 10)); // queued behind the write in flight, over the bound by itself
    await sleep(300);
    expect(size(file)).toBe(encodeFrame(ring(100 << 10)).length + encodeFrame(ring(200 << 10)).length + encodeFrame(ring(300 << 10)).length);
    expect(w.queuedBytes).toBe(0);
    expect(w.bytesWritten).toBe(size(file));
    await w.close();
  });

  it('starts writing at exactly 256 KiB queued, not a byte before', async () => {
    const dir = tmpDir('writer-256k');
    const overhead = encodeFrame(ring(1 << 16)).length - (1 << 16); // the frame and record around the bytes
    const exact = ring((256 << 10) - overhead);
    expect(encodeFrame(exact).length).toBe(256 << 10);
    const a = new RecordingWriter(path.join(dir, 'a.vhsrec'), { flushMs: 600_000 });
    a.write(exact);
    const b = new RecordingWriter(path.join(dir, 'b.vhsrec'), { flushMs: 600_000 });
    b.write(ring((256 << 10) - overhead - 1));
    await sleep(100);
    expect(size(a.path)).toBe(256 << 10);
    expect(size(b.path)).toBe(0);
    await Promise.all([a.close(), b.close()]);
  });

  it('flushes on one clock per interval: a closed writer leaves the clock running for the others', async () => {
    const dir = tmpDir('writer-clock');
    const a = new RecordingWriter(path.join(dir, 'a.vhsrec'), { flushMs: 20 });
    const b = new RecordingWriter(path.join(dir, 'b.vhsrec'), { flushMs: 20 });
    await a.close();
    b.write(ring(10));
    await sleep(200);
    expect(size(b.path)).toBe(encodeFrame(ring(10)).length);
    await b.close();
  });

  it('after a write fails: the error is kept, nothing more is queued, and close still resolves', async () => {
    const file = path.join(tmpDir('writer-fail'), 'a.vhsrec');
    const w = new RecordingWriter(file, { flushMs: 600_000 });
    // the writer's fd becomes a read-only one (closed, and the same number opened read-only)
    const fd = (w as unknown as { fd: number }).fd;
    fs.closeSync(fd);
    expect(fs.openSync('/dev/null', 'r')).toBe(fd);
    w.write(ring(300 << 10)); // over 256 KiB: a write starts, and fails
    await sleep(100);
    expect(w.error?.message).toMatch(/EBADF/);
    expect(w.queuedBytes).toBe(0);
    expect(w.write({ type: 'dropped', session: 1, ts: 1n, notifications: 0 })).toBe(false);
    expect(w.write(ring(1))).toBe(false);
    expect(w.droppedAfterFailure).toBe(2);
    w.flush(); // nothing to do on a failed file
    await w.close();
    expect(size(file)).toBe(0);
  });

  it('takes nothing once closed, and a second close is the first', async () => {
    const file = path.join(tmpDir('writer-closed'), 'a.vhsrec');
    const w = new RecordingWriter(file);
    w.write(ring(10));
    const done = w.close();
    expect(w.write(ring(10))).toBe(false);
    expect(w.droppedAfterFailure).toBe(0);
    expect(w.close()).toBe(done);
    await done;
    expect(readRecording(file).records).toHaveLength(1);
  });
});
