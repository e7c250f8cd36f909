/**
 * Framing of a recording file: each record is `[u32 length][u32 crc32][msgpack]`, little-endian,
 * where length counts the msgpack bytes and crc32 (zlib's) covers them. A reader stops at the
 * first frame that is incomplete or fails its CRC: that is a torn end, never data.
 */
import { Packr } from 'msgpackr';
import * as fs from 'node:fs';
import * as zlib from 'node:zlib';
import type { RecordingRecord } from './records';

export const FRAME_HEADER = 8;
/** no record is larger: a length above it is corruption, not a record */
export const MAX_FRAME = 16 << 20;

// Plain maps, no shared structures: every frame decodes on its own (a reader may start
// at any frame boundary, and a torn frame cannot corrupt the next segment's records).
const packr = new Packr({ useRecords: false, moreTypes: false, int64AsType: 'bigint' });

export function encodeFrame(r: RecordingRecord): Buffer {
  const body = packr.pack(r);
  const f = Buffer.allocUnsafe(FRAME_HEADER + body.length);
  f.writeUInt32LE(body.length, 0);
  f.writeUInt32LE(zlib.crc32(body), 4);
  body.copy(f, FRAME_HEADER);
  return f;
}

export interface FrameScan {
  records: RecordingRecord[];
  /** bytes of complete, valid frames from the start */
  goodBytes: number;
  /** what ends the file early, if anything does */
  torn?: { offset: number; bytes: number; reason: string };
}

export function scanFrames(buf: Buffer): FrameScan {
  const records: RecordingRecord[] = [];
  let off = 0;
  while (off < buf.length) {
    const rest = buf.length - off;
    if (rest < FRAME_HEADER) return { records, goodBytes: off, torn: { offset: off, bytes: rest, reason: `${rest} bytes, shorter than a frame header` } };
    const len = buf.readUInt32LE(off);
    if (len > MAX_FRAME) return { records, goodBytes: off, torn: { offset: off, bytes: rest, reason: `frame length ${len} is beyond any record` } };
    if (rest < FRAME_HEADER + len)
      return { records, goodBytes: off, torn: { offset: off, bytes: rest, reason: `incomplete frame: ${rest - FRAME_HEADER} of ${len} bytes` } };
    const body = buf.subarray(off + FRAME_HEADER, off + FRAME_HEADER + len);
    if (zlib.crc32(body) !== buf.readUInt32LE(off + 4)) return { records, goodBytes: off, torn: { offset: off, bytes: rest, reason: 'CRC mismatch' } };
    try {
      records.push(packr.unpack(body) as RecordingRecord);
    } catch (err) {
      return { records, goodBytes: off, torn: { offset: off, bytes: rest, reason: `undecodable frame: ${(err as Error).message}` } };
    }
    off += FRAME_HEADER + len;
  }
  return { records, goodBytes: off };
}

/** read size of tailScan: the file is walked this much at a time, whatever its size */
const TAIL_SCAN_CHUNK = 4 << 20;

/**
 * Where the whole frames of an open recording end, for appending to it: the frame lengths are
 * walked through the file a chunk at a time (memory stays bounded however large it is) and the
 * last frame's CRC is checked, since a crash can only have damaged the end. Damage in the middle
 * is left for the reader to report, never cut off.
 */
export function tailScan(fd: number): { goodBytes: number; torn?: { bytes: number; reason: string } } {
  const size = fs.fstatSync(fd).size;
  const buf = Buffer.allocUnsafe(TAIL_SCAN_CHUNK);
  let off = 0;
  let last: { at: number; len: number } | undefined;
  /** the whole frames end at `at`; what follows is cut, for `reason` */
  const torn = (at: number, reason: string) => ({ goodBytes: at, torn: { bytes: size - at, reason } });
  while (off < size) {
    if (size - off < FRAME_HEADER) return torn(off, `${size - off} bytes, shorter than a frame header`);
    const got = fs.readSync(fd, buf, 0, Math.min(TAIL_SCAN_CHUNK, size - off), off);
    let i = 0;
    while (i + FRAME_HEADER <= got) {
      const at = off + i;
      const len = buf.readUInt32LE(i);
      if (len > MAX_FRAME) return torn(at, `frame length ${len} is beyond any record`);
      if (at + FRAME_HEADER + len > size) return torn(at, `incomplete frame: ${size - at - FRAME_HEADER} of ${len} bytes`);
      last = { at, len };
      i += FRAME_HEADER + len;
    }
    off += i; // the next read starts at the first frame this chunk did not hold whole
  }
  if (last) {
    const frame = Buffer.allocUnsafe(FRAME_HEADER + last.len);
    fs.readSync(fd, frame, 0, frame.length, last.at);
    if (zlib.crc32(frame.subarray(FRAME_HEADER)) !== frame.readUInt32LE(4)) return torn(last.at, 'CRC mismatch');
  }
  return { goodBytes: off };
}
