/**
 * The frame scanners' verdicts word for word: how much of a buffer or file is whole frames,
 * and why the rest is not (a short header, a length beyond any record, an incomplete frame, a
 * CRC mismatch, an undecodable body), at the exact sizes where one verdict becomes another.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { encodeFrame, FRAME_HEADER, MAX_FRAME, scanFrames, tailScan } from '../../src/recording/frames';
import type { RecordingRecord } from '../../src/recording/records';
import { RecordingWriter } from '../../src/recording/writer';
import { tmpDir } from '../helpers';

const rec = (n: number): RecordingRecord => ({ type: 'dropped', session: 1, ts: BigInt(n), notifications: n });
const good = Buffer.concat([encodeFrame(rec(1)), encodeFrame(rec(2))]);
/** a frame header claiming `len` bytes (CRC of nothing) */
const head = (len: number): Buffer => {
  const b = Buffer.alloc(FRAME_HEADER);
  b.writeUInt32LE(len, 0);
  return b;
};
/** a frame whose CRC is right but whose body is not msgpack */
const undecodable = (): Buffer => {
  const body = Buffer.from([0x92]); // an array of two, and nothing after it
  const h = head(1);
  h.writeUInt32LE(zlib.crc32(body), 4);
  return Buffer.concat([h, body]);
};
const tail = (buf: Buffer): ReturnType<typeof tailScan> => {
  const f = path.join(tmpDir('frames-tail'), 'a.vhsrec');
  fs.writeFileSync(f, buf);
  const fd = fs.openSync(f, 'r');
  try {
    return tailScan(fd);
  } finally {
    fs.closeSync(fd);
  }
};

describe('frames', () => {
  it('scanFrames: whole frames, then the verdict on what follows them', () => {
    const at = good.length;
    const verdict = (extra: Buffer) => scanFrames(Buffer.concat([good, extra]));
    expect(verdict(Buffer.alloc(0))).toEqual({ records: [rec(1), rec(2)], goodBytes: at });
    expect(verdict(Buffer.alloc(7))).toEqual({
      records: [rec(1), rec(2)],
      goodBytes: at,
      torn: { offset: at, bytes: 7, reason: '7 bytes, shorter than a frame header' },
    });
    expect(verdict(head(MAX_FRAME + 1)).torn).toEqual({ offset: at, bytes: 8, reason: `frame length ${MAX_FRAME + 1} is beyond any record` });
    expect(verdict(head(MAX_FRAME)).torn?.reason).toBe(`incomplete frame: 0 of ${MAX_FRAME} bytes`); // the largest a record may be
    expect(verdict(Buffer.concat([head(50), Buffer.alloc(10)])).torn).toEqual({ offset: at, bytes: 18, reason: 'incomplete frame: 10 of 50 bytes' });
    const bad = verdict(undecodable());
    expect(bad.goodBytes).toBe(at);
    expect(bad.records).toEqual([rec(1), rec(2)]);
    expect(bad.torn?.offset).toBe(at);
    expect(bad.torn?.bytes).toBe(9);
    expect(bad.torn?.reason).toMatch(/^undecodable frame: .+/);
    // an empty frame with a right CRC is undecodable, not whole
    expect(verdict(head(0)).torn?.reason).toMatch(/^undecodable frame: /);
  });

  it('tailScan: where the whole frames of a file end, and why the rest is cut', () => {
    const at = good.length;
    expect(tail(good)).toEqual({ goodBytes: at });
    expect(tail(Buffer.alloc(0))).toEqual({ goodBytes: 0 });
    expect(tail(Buffer.concat([good, Buffer.alloc(7)]))).toEqual({ goodBytes: at, torn: { bytes: 7, reason: '7 bytes, shorter than a frame header' } });
    expect(tail(Buffer.concat([good, head(MAX_FRAME + 1)]))).toEqual({
      goodBytes: at,
      torn: { bytes: 8, reason: `frame length ${MAX_FRAME + 1} is beyond any record` },
    });
    expect(tail(Buffer.concat([good, head(MAX_FRAME)]))).toEqual({ goodBytes: at, torn: { bytes: 8, reason: `incomplete frame: 0 of ${MAX_FRAME} bytes` } });
    expect(tail(Buffer.concat([good, head(50), Buffer.alloc(10)]))).toEqual({ goodBytes: at, torn: { bytes: 18, reason: 'incomplete frame: 10 of 50 bytes' } });
    // a frame just short of whole by less than a header's length is incomplete, not a CRC mismatch
    expect(tail(Buffer.concat([good, head(10), Buffer.alloc(4)]))).toEqual({ goodBytes: at, torn: { bytes: 12, reason: 'incomplete frame: 4 of 10 bytes' } });
    // exactly a frame header, of an empty body whose CRC (0) is right: a whole frame as far as the tail goes
    expect(tail(Buffer.concat([good, head(0)]))).toEqual({ goodBytes: at + FRAME_HEADER });
    // exactly a frame header and its whole (empty) body: a frame; only its CRC is checked here
    const last = encodeFrame(rec(3));
    last[last.length - 1] ^= 0xff;
    expect(tail(Buffer.concat([good, last]))).toEqual({ goodBytes: at, torn: { bytes: last.length, reason: 'CRC mismatch' } });
  });

  it('a writer appending to a file whose last frame claims a length beyond any record keeps the frames before it', async () => {
    const f = path.join(tmpDir('frames-reopen'), 'a.vhsrec');
    fs.writeFileSync(f, Buffer.concat([good, head(MAX_FRAME + 1), Buffer.alloc(100)]));
    const w = new RecordingWriter(f);
    expect(w.recovered).toEqual({ tornBytes: 108, reason: `frame length ${MAX_FRAME + 1} is beyond any record` });
    w.write(rec(3));
    await w.close();
    expect(scanFrames(fs.readFileSync(f))).toEqual({ records: [rec(1), rec(2), rec(3)], goodBytes: good.length + encodeFrame(rec(3)).length });
  });
});
