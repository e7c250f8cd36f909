/**
 * Framing of a recording file: each record is `[u32 length][u32 crc32][msgpack]`, little-endian,
 * where length counts the msgpack bytes and crc32 (zlib's) covers them. A reader stops at the
 * first frame that is incomplete or fails its CRC: that is a torn end, never data.
 */
import { Packr } from 'msgpackr';
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
    if (rest < FRAME_HEADER + len) return { records, goodBytes: off, torn: { offset: off, bytes: rest, reason: `incomplete frame: ${rest - FRAME_HEADER} of ${len} bytes` } };
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
