/**
 * Seeded fuzzing of the TypeScript side: every decoder, the validator, the formatter and the
 * checker on random messages; the frame scanner on mutated real recordings; the record reader
 * on random records. CI runs a short fixed-seed pass; bench/fuzz/run.sh runs it for longer
 * (VHS_FUZZ_SECONDS, VHS_FUZZ_SEED). Nothing may throw except with a clear, framed message.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Packr } from 'msgpackr';
import * as zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { Checker } from '../../src/analysis/checker';
import { changedFields } from '../../src/analysis/diff';
import { eventRecord, humanLine } from '../../src/log/format';
import {
  BACKEND_REQUESTS,
  decodeMessage,
  formatPayload,
  GPU_REQUESTS,
  MAIN_REQUESTS,
  newNegotiation,
  toJsonSafe,
  validateMessage,
  type ChannelKind,
} from '../../src/protocol';
import type { MessageEvent } from '../../src/events/events';
import { FRAME_HEADER, scanFrames } from '../../src/recording/frames';
import { recordingEvents } from '../../src/recording/reader';
import { decodeSnapshots } from '../../src/rings/snapshot';
import { decodeBuffer } from '../../src/rings/headers';

// A fixed number of cases by default, so that a seed names one run whatever the machine's load;
// VHS_FUZZ_SECONDS runs for a duration instead (bench/fuzz/run.sh).
const CASES = Number(process.env.VHS_FUZZ_CASES ?? 3000);
const SECONDS = process.env.VHS_FUZZ_SECONDS === undefined ? undefined : Number(process.env.VHS_FUZZ_SECONDS);
const SEED = Number(process.env.VHS_FUZZ_SEED ?? 1);
const TIMEOUT = (SECONDS ?? 0) * 1000 + 60_000;

/** mulberry32: small, fast, reproducible */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function timed(label: string, body: (r: () => number, i: number) => void, cases = CASES): number {
  const r = rng(SEED);
  const end = SECONDS === undefined ? Infinity : Date.now() + SECONDS * 1000;
  let i = 0;
  while (SECONDS === undefined ? i < cases : Date.now() < end) body(r, i++);
  console.log(`${label}: ${i} cases (seed ${SEED})`);
  return i;
}

const CODES: Record<ChannelKind, number[]> = {
  main: MAIN_REQUESTS.map((x) => x.code),
  backend: BACKEND_REQUESTS.map((x) => x.code),
  gpu: GPU_REQUESTS.map((x) => x.code),
};
const SIZES = [0, 1, 4, 8, 12, 16, 24, 32, 40, 48, 69, 2056, 300];

function randomMessage(r: () => number, channel: ChannelKind): Buffer {
  const code = r() < 0.9 ? CODES[channel][Math.floor(r() * CODES[channel].length)] : Math.floor(r() * 2000);
  const size = r() < 0.8 ? SIZES[Math.floor(r() * SIZES.length)] : Math.floor(r() * 4096);
  const flags = r() < 0.8 ? [1, 5, 9, 13][Math.floor(r() * 4)] : Math.floor(r() * 0x100000000);
  const b = Buffer.alloc(12 + size);
  b.writeUInt32LE(code, 0);
  b.writeUInt32LE(flags >>> 0, 4);
  b.writeUInt32LE(size, 8);
  for (let i = 12; i < b.length; i++) b[i] = r() < 0.5 ? 0 : Math.floor(r() * 256);
  if (size >= 4 && r() < 0.3) b.writeUInt32LE(Math.floor(r() * 12), 12); // plausible region / index counts
  return b;
}

describe('fuzz (seeded)', () => {
  it('decoders, validator, formatters, diff and checker never throw on random messages', { timeout: TIMEOUT }, () => {
    const checker = new Checker();
    checker.onEvent({ type: 'session-start', ts: 0n, session: 1, listenPath: '', connectPath: '', frontend: 'auto', interpose: true, peers: {} });
    let prev: MessageEvent | undefined;
    const n = timed('messages', (r, i) => {
      const channel = (['main', 'main', 'main', 'backend', 'gpu'] as const)[Math.floor(r() * 5)];
      const raw = randomMessage(r, channel);
      const d = decodeMessage(channel, raw);
      formatPayload(d, 'net');
      JSON.stringify(toJsonSafe(d, 'blk'));
      const findings = validateMessage(raw, {
        channel,
        sender: r() < 0.5 ? 'frontend' : 'backend',
        fdCount: Math.floor(r() * 10),
        negotiation: newNegotiation(),
      });
      const ev: MessageEvent = {
        type: 'message',
        ts: BigInt(i),
        session: 1,
        channel,
        sender: r() < 0.5 ? 'frontend' : 'backend',
        dir: r() < 0.5 ? 'F>B' : 'B>F',
        raw,
        decoded: d,
        fds: [],
        findings,
      };
      humanLine(eventRecord(ev));
      checker.onEvent(ev);
      if (prev && prev.decoded.request === d.request) changedFields(prev, ev);
      prev = ev;
      if (r() < 0.01) checker.onEvent({ type: 'notification', ts: BigInt(i), session: 1, vring: Math.floor(r() * 4), kind: 'kick', count: 1 });
    });
    expect(n).toBeGreaterThan(100);
  });

  it('ring snapshots: random and mutated records decode or fail with a message; headers never throw', { timeout: TIMEOUT }, () => {
    // a valid record to mutate: one kick with one chain of two descriptors and captured bytes
    const good = Buffer.alloc(32 + 8 + 2 * 18 + 40);
    good.writeUInt32LE(good.length, 0);
    good.writeUInt16LE(1, 22);
    good.writeUInt16LE(2, 32 + 2);
    good.writeUInt16LE(40, 32 + 8 + 16);
    good.writeUInt16LE(3, 32 + 8 + 18 + 40 + 12);
    let decoded = 0;
    const n = timed('ring snapshots', (r) => {
      const b = Buffer.from(r() < 0.5 ? good : Buffer.alloc(Math.floor(r() * 200)));
      for (let k = Math.floor(r() * 6); k > 0 && b.length; k--) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
      let snaps: ReturnType<typeof decodeSnapshots> = [];
      try {
        snaps = decodeSnapshots(b);
      } catch (err) {
        expect((err as Error).message).toMatch(/^ring snapshot: /);
        return;
      }
      decoded++;
      for (const { snapshot } of snaps) {
        for (const device of ['net', 'blk', 'fs', 'generic'] as const) {
          for (const e of snapshot.entries) decodeBuffer(e, { device, vring: Math.floor(r() * 3), kind: snapshot.kind });
          humanLine(eventRecord({ type: 'ring', ts: 0n, session: 1, vring: 1, snapshot, raw: b }, device));
        }
      }
    });
    expect(n).toBeGreaterThan(100);
    expect(decoded).toBeGreaterThan(0);
  });

  it('the frame scanner reads mutated real recordings up to the damage, never past it', { timeout: TIMEOUT }, () => {
    const dir = path.resolve(__dirname, '..', '..', 'recordings');
    const files = fs
      .readdirSync(dir)
      .filter((f) => f.endsWith('.vhsrec'))
      .map((f) => {
        const data = fs.readFileSync(path.join(dir, f));
        // where each whole frame ends in the undamaged file: the scanner may stop only at one of these
        const ends = [0];
        while (ends.at(-1)! < data.length) ends.push(ends.at(-1)! + FRAME_HEADER + data.readUInt32LE(ends.at(-1)!));
        expect(ends.at(-1), f).toBe(data.length);
        return { data, ends };
      });
    let torn = 0;
    const n = timed(
      'mutated recordings',
      (r) => {
        const { data: src, ends } = files[Math.floor(r() * files.length)];
        const b = Buffer.from(src);
        const kind = Math.floor(r() * 3);
        const at = Math.floor(r() * b.length);
        let m: Buffer = b;
        let damage = at; // the first byte that is not the original's
        if (kind === 0) {
          const flipped: number[] = [];
          for (let k = 0; k < 1 + Math.floor(r() * 4); k++) {
            const i = Math.floor(r() * b.length);
            b[i] ^= 1 << Math.floor(r() * 8);
            flipped.push(i);
          }
          damage = Math.min(b.length, ...flipped.filter((i) => b[i] !== src[i])); // b.length: the flips cancelled out
        } else if (kind === 1) m = b.subarray(0, at);
        else m = Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(r() * 256), Math.floor(r() * 256)]), b.subarray(at)]);
        const scan = scanFrames(m);
        // exactly the whole frames before the damage are read, and a damaged end is reported torn
        const wholeBefore = ends.filter((e) => e <= damage).at(-1)!;
        expect(scan.goodBytes, `kind ${kind} damage at ${damage}`).toBe(wholeBefore);
        expect(scan.torn === undefined, `kind ${kind} damage at ${damage} of ${m.length}`).toBe(scan.goodBytes === m.length);
        if (scan.torn) {
          torn++;
          expect(scan.torn.offset).toBe(scan.goodBytes);
          expect(scan.torn.bytes).toBe(m.length - scan.goodBytes);
        }
        expect(scan.records.length).toBe(ends.indexOf(wholeBefore));
        try {
          recordingEvents(scan.records, { notifications: true });
        } catch (err) {
          expect((err as Error).message).toMatch(/^frame \d+ \(/);
        }
      },
      Math.ceil(CASES / 3),
    );
    expect(n).toBeGreaterThan(100);
    expect(torn).toBeGreaterThan(n / 2);
  });

  it('the reader rejects malformed records with an error naming the frame', { timeout: TIMEOUT }, () => {
    const packr = new Packr({ useRecords: false, int64AsType: 'bigint' });
    const types = ['header', 'session-start', 'message', 'notify', 'session-end', 'dropped', 'bogus'];
    const values = (r: () => number): unknown => [undefined, 1, -1, 'x', 5n, Buffer.alloc(Math.floor(r() * 30)), [1, 2], {}, null, true][Math.floor(r() * 10)];
    let rejected = 0;
    const n = timed('random records', (r) => {
      const rec: Record<string, unknown> = { type: types[Math.floor(r() * types.length)] };
      for (const k of ['ts', 'session', 'raw', 'fds', 'channel', 'dir', 'ts0', 'dt', 'vk', 'c', 'messages', 'forwarded']) if (r() < 0.6) rec[k] = values(r);
      if (r() < 0.5) rec.channel = 'main';
      if (r() < 0.5) rec.dir = 'F>B';
      const body = packr.pack(rec);
      const frame = Buffer.alloc(8);
      frame.writeUInt32LE(body.length, 0);
      frame.writeUInt32LE(zlib.crc32(body), 4);
      const scan = scanFrames(Buffer.concat([frame, body]));
      try {
        recordingEvents(scan.records, { notifications: true });
      } catch (err) {
        expect((err as Error).message).toMatch(/^frame 0 \(.*\): not a valid record: /);
        rejected++;
      }
    });
    expect(n).toBeGreaterThan(100);
    expect(rejected).toBeGreaterThan(0);
  });
});
