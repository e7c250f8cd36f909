/**
 * The recorder, event by event: what each kind of event writes (or does not), the notification
 * batches at their bound, what a session's end counts as dropped, the flight recorder's pins,
 * rotation by age and its retry, the names of recent files, and the figures metrics read.
 * test/integration/recording.test.ts round-trips whole sessions; test/unit/flight.test.ts and
 * retention-edges.test.ts cover segments, pins and retention themselves.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { encodeMessage, Request } from '../../src/protocol';
import type { ProxyEvent, SessionEndEvent } from '../../src/events/events';
import { Recorder, type FlightOptions } from '../../src/recording/recorder';
import { infoText } from '../../src/views/recording';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import type { RecordingRecord } from '../../src/recording/records';
import type { SweepResult } from '../../src/recording/flight';
import { tmpDir } from '../helpers';
import { sessionEnd, sessionStart } from '../sessions';

const start = (session: number): ProxyEvent => sessionStart(session);
const end = (session: number, reason?: string, by: SessionEndEvent['by'] = 'frontend'): ProxyEvent => sessionEnd(session, reason, by, 9_000_000n);
const message = (session: number, ts: bigint): ProxyEvent => ({
  type: 'message',
  ts,
  session,
  channel: 'main',
  sender: 'frontend',
  dir: 'F>B',
  raw: encodeMessage(Request.GET_FEATURES, 1),
  decoded: undefined as never,
  fds: [],
  findings: [],
});
const kick = (session: number, ts: bigint, injected?: boolean): ProxyEvent => ({
  type: 'notification',
  ts,
  session,
  vring: 1,
  kind: 'kick',
  count: 1,
  ...(injected ? { injected } : {}),
});
const ring = (session: number, base?: number): ProxyEvent => ({
  type: 'ring',
  ts: 5n,
  session,
  vring: 2,
  snapshot: undefined as never,
  raw: Buffer.alloc(16, 7),
  ...(base !== undefined ? { base } : {}),
});
const types = (file: string): string[] => readRecording(file).records.map((r) => r.type);
const records = <T extends RecordingRecord['type']>(file: string, type: T): Extract<RecordingRecord, { type: T }>[] =>
  readRecording(file).records.filter((r): r is Extract<RecordingRecord, { type: T }> => r.type === type);
const flight = (o: Partial<FlightOptions> = {}): FlightOptions => ({ segmentBytes: 1 << 20, segmentMs: 600_000, pinBeforeMs: 1000, pinAfterMs: 1000, ...o });

describe('recorder', () => {
  it('writes rings (with their base when there is one) and injected notifications in place; notices, stats and channel ends write nothing', async () => {
    const file = path.join(tmpDir('rec-kinds'), 'a.vhsrec');
    const rec = new Recorder(file);
    rec.onEvent(start(1));
    rec.onEvent(kick(1, 10n));
    rec.onEvent(ring(1));
    rec.onEvent(ring(1, 42));
    rec.onEvent(kick(1, 20n, true)); // the batch of the kick before it goes first
    rec.onEvent({ type: 'notice', ts: 30n, session: 1, text: 'x' } as unknown as ProxyEvent);
    rec.onEvent({ type: 'stats', ts: 31n, session: 1 } as unknown as ProxyEvent);
    rec.onEvent({ type: 'channel-end', ts: 32n, session: 1 } as unknown as ProxyEvent);
    rec.onEvent(end(1));
    await rec.close();
    expect(types(file)).toEqual(['header', 'session-start', 'ring', 'ring', 'notify', 'notify-injected', 'session-end']);
    const [a, b] = records(file, 'ring');
    expect(a).toEqual({ type: 'ring', session: 1, vring: 2, raw: Buffer.alloc(16, 7) });
    expect(a).not.toHaveProperty('base');
    expect(b).toEqual({ type: 'ring', session: 1, vring: 2, raw: Buffer.alloc(16, 7), base: 42 });
    expect(records(file, 'notify-injected')).toEqual([{ type: 'notify-injected', ts: 20n, session: 1, vring: 1, kind: 'kick' }]);
  });

  it('records what --rings read of the inflight region, and reads it back as it was', async () => {
    const file = path.join(tmpDir('rec-inflight'), 'a.vhsrec');
    const rec = new Recorder(file);
    const inflight: ProxyEvent = {
      type: 'inflight',
      ts: 9n,
      session: 1,
      when: 'session end',
      mmapSize: 384,
      numQueues: 2,
      queueSize: 8,
      queues: [{ vring: 0, features: 0x10n, version: 1, descNum: 8, lastBatchHead: 2, usedIdx: 40, inflight: [7, 3], inflightCount: 2 }],
      error: 'the file holds 192 of the 384 bytes SET_INFLIGHT_FD gave',
    };
    rec.onEvent(start(1));
    rec.onEvent(kick(1, 5n));
    rec.onEvent(inflight);
    rec.onEvent(end(1));
    await rec.close();
    expect(types(file)).toEqual(['header', 'session-start', 'notify', 'inflight', 'session-end']);
    expect(recordingEvents(readRecording(file).records).filter((e) => e.type === 'inflight')).toEqual([inflight]);
    expect(infoText(file)).toContain(
      '  inflight region at session end (the file holds 192 of the 384 bytes SET_INFLIGHT_FD gave): vring 0: version 1, desc_num 8, 2 in flight (heads 7, 3), used_idx 40',
    );
  });

  it('ignores events of a session it never saw begin', async () => {
    const file = path.join(tmpDir('rec-unknown'), 'a.vhsrec');
    const rec = new Recorder(file);
    for (const e of [message(7, 1n), kick(7, 2n), ring(7), end(7)]) expect(() => rec.onEvent(e)).not.toThrow();
    rec.onDevice(7, 3n, { device: 'net', reason: 'x' } as never);
    await rec.close();
    expect(types(file)).toEqual(['header']);
  });

  it('writes a batch as soon as it holds 4096 notifications', async () => {
    const file = path.join(tmpDir('rec-batch'), 'a.vhsrec');
    const rec = new Recorder(file);
    rec.onEvent(start(1));
    for (let i = 0; i < 4097; i++) rec.onEvent(kick(1, BigInt(i)));
    rec.onEvent(end(1));
    await rec.close();
    expect(records(file, 'notify').map((b) => b.dt.length)).toEqual([4096, 1]);
  });

  it("counts each notification it could not record once, in the session's end and in the dropped records", async () => {
    const file = path.join(tmpDir('rec-dropped'), 'a.vhsrec');
    const rec = new Recorder(file, { maxPendingBytes: 1000, flushMs: 60_000 });
    rec.onEvent(start(1));
    rec.onEvent(start(2));
    for (let i = 0; i < 20; i++) {
      for (let k = 0; k < 50; k++) rec.onEvent(kick(1, BigInt(i * 1000 + k)));
      rec.onEvent(message(1, BigInt(i * 1000 + 999)));
    }
    for (let i = 0; i < 10; i++) rec.onEvent(ring(1));
    rec.onEvent(end(1));
    rec.onEvent(end(2)); // the shared file's other session dropped nothing
    await rec.close();
    const kept = records(file, 'notify').reduce((n, r) => n + r.dt.length, 0);
    const dropped = records(file, 'dropped').reduce((n, r) => n + r.notifications, 0);
    expect(kept).toBeLessThan(1000);
    expect(kept + dropped).toBe(1000);
    const ends = records(file, 'session-end');
    expect(ends.map((e) => [e.session, e.droppedNotifications, e.droppedRings])).toEqual([
      [1, dropped, 10],
      [2, 0, undefined],
    ]);
    expect(rec.figures()).toMatchObject({ droppedNotifications: dropped, droppedRings: 10 });
  });

  it('in a directory: a file per session, the 100 most recent names kept; an existing directory needs no slash', async () => {
    const dir = tmpDir('rec-dir');
    const rec = new Recorder(dir);
    for (let s = 1; s <= 103; s++) {
      rec.onEvent(start(s));
      rec.onEvent(end(s));
    }
    await rec.close();
    expect(rec.files).toHaveLength(100);
    expect(path.basename(rec.files[0]!)).toMatch(/-s4\.vhsrec$/);
    expect(path.basename(rec.files[99]!)).toMatch(/-s103\.vhsrec$/);
    expect(path.basename(rec.files[0]!)).toMatch(/^\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d-\d{3}Z-s4\.vhsrec$/); // no ':' or '.' in the stamp
    expect(fs.readdirSync(dir)).toHaveLength(103);
    expect(rec.figures().bytes).toBe(fs.readdirSync(dir).reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0));
    // a long-lived daemon keeps no closed file: their figures are folded into the totals
    const held = rec as unknown as { live: Set<unknown>; closing: Set<unknown> };
    expect([held.live.size, held.closing.size]).toEqual([0, 0]);
  });

  it("pins a session's window by its file name, or every session's; not a session it does not record; nothing without --keep", async () => {
    const dir = tmpDir('rec-pin');
    const pins: string[] = [];
    const rec = new Recorder(dir, { flight: flight({ onPin: (p) => pins.push(`${p.reason}@${p.session ?? '*'}`) }) });
    rec.onEvent(start(1));
    const name = path.basename(rec.files[0]!, '.vhsrec');
    expect(rec.pin('mark: a', 1)?.session).toBe(name);
    expect(rec.pin('mark: b')?.session).toBeUndefined();
    expect(rec.pin('mark: c', 9)).toBeUndefined();
    rec.onEvent(end(1, 'bad input from the backend: x', 'backend'));
    rec.onEvent(start(2));
    rec.onEvent(end(2)); // a clean end pins nothing
    await rec.close();
    expect(pins).toEqual([`mark: a@${name}`, 'mark: b@*', `session 1 ended in an error: bad input from the backend: x@${name}`]);
    expect(rec.pins!.list()).toHaveLength(3);
    const plain = new Recorder(tmpDir('rec-nopin'));
    plain.onEvent(start(1));
    expect(plain.pin('mark: a', 1)).toBeUndefined();
    await plain.close();
  });

  it('tells the first failure to write the pins once, and again after a success', async () => {
    const dir = tmpDir('rec-pin-err');
    const errors: string[] = [];
    const rec = new Recorder(dir, { flight: flight(), onError: (f, e) => errors.push(`${path.basename(f)} ${e.message.split(':')[0]}`) });
    fs.mkdirSync(path.join(dir, 'pins.jsonl'));
    rec.pin('a');
    rec.pin('b');
    expect(errors).toEqual(['pins.jsonl EISDIR']);
    fs.rmdirSync(path.join(dir, 'pins.jsonl'));
    rec.pin('c');
    fs.rmSync(path.join(dir, 'pins.jsonl'));
    fs.mkdirSync(path.join(dir, 'pins.jsonl'));
    rec.pin('d');
    expect(errors).toEqual(['pins.jsonl EISDIR', 'pins.jsonl EISDIR']);
    await rec.close();
  });

  it('rotates a session that wrote something by age, not an idle one, and tells retention what it deleted', async () => {
    const dir = tmpDir('rec-age');
    const sweeps: SweepResult[] = [];
    const rec = new Recorder(dir, { flight: flight({ segmentMs: 50, keepBytes: 1, onSweep: (r) => sweeps.push(r) }) });
    expect(sweeps).toEqual([]); // the first sweep found nothing: not told
    rec.onEvent(start(1));
    rec.onEvent(start(2));
    await new Promise((r) => setTimeout(r, 120));
    rec.onEvent(message(1, 1n)); // session 1 is old and wrote: a new segment
    const segments = (s: number): string[] => fs.readdirSync(dir).filter((f) => new RegExp(`-s${s}(\\.\\d+)?\\.vhsrec$`).test(f));
    expect(segments(1)).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 450)); // two turns of the batch timer, which checks rotation too
    expect(segments(2)).toHaveLength(1); // nothing but its start: no rotation, whatever its age
    rec.onEvent(end(1));
    rec.onEvent(end(2));
    await rec.close();
    expect(sweeps.flatMap((r) => r.deleted).length).toBeGreaterThan(0);
  });
});

describe('recorder: failures and figures', () => {
  it('goes on without an onError to tell: a segment it cannot create, pins it cannot write, a sweep without onSweep', async () => {
    const dir = tmpDir('rec-quiet');
    fs.mkdirSync(path.join(dir, 'pins.jsonl'));
    const rec = new Recorder(dir, { flight: flight({ keepBytes: 1 }) });
    expect(() => rec.pin('a')).not.toThrow();
    rec.onEvent(start(1));
    rec.onEvent(end(1)); // a deleting sweep follows, with no onSweep to call
    const gone = path.join(dir, 'gone');
    fs.mkdirSync(gone);
    const lost = new Recorder(`${gone}/`);
    fs.rmdirSync(gone); // the directory went: no session file can be made
    expect(() => lost.onEvent(start(2))).not.toThrow();
    expect(lost.files).toEqual([]);
    await Promise.all([rec.close(), lost.close()]);
  });

  it('tells a sweep that deleted something, and says nothing of one that did not', async () => {
    const dir = tmpDir('rec-sweep-told');
    const errors: string[] = [];
    const sweeps: number[] = [];
    const rec = new Recorder(dir, {
      flight: flight({ keepBytes: 1, onSweep: (r) => sweeps.push(r.deleted.length) }),
      onError: (_f, e) => errors.push(e.message),
    });
    rec.onEvent(start(1));
    rec.onEvent(end(1));
    await rec.close();
    expect(sweeps).toEqual([1]);
    expect(errors).toEqual([]);
  });

  it("counts the live files' queued bytes and drops in its figures, before and after they close", async () => {
    const file = path.join(tmpDir('rec-figures'), 'a.vhsrec');
    const rec = new Recorder(file, { maxPendingBytes: 100, flushMs: 600_000 });
    rec.onEvent(start(1));
    for (let i = 0; i < 3; i++) rec.onEvent(ring(1));
    rec.onEvent(kick(1, 1n));
    rec.onEvent(message(1, 2n));
    const live = rec.figures();
    expect(live.queuedBytes).toBeGreaterThan(100);
    expect([live.droppedNotifications, live.droppedRings]).toEqual([1, 3]);
    expect(live.bytes).toBe(0);
    await rec.close();
    expect(rec.figures()).toEqual({ bytes: fs.statSync(file).size, queuedBytes: 0, droppedNotifications: 1, droppedRings: 3 });
  });

  it("never opens a session's file over one of the same name", async () => {
    const dir = tmpDir('rec-excl');
    vi.useFakeTimers({ now: new Date('2026-12-07T12:00:00.000Z'), toFake: ['Date'] });
    try {
      const taken = path.join(dir, '2026-12-07T12-00-00-000Z-s1.vhsrec');
      fs.writeFileSync(taken, 'not ours');
      const errors: string[] = [];
      const rec = new Recorder(dir, { onError: (f, e, opening) => errors.push(`${path.basename(f)} ${e.message.split(':')[0]}: ${opening}`) });
      rec.onEvent(start(1));
      rec.onEvent(end(1));
      await rec.close();
      expect(fs.readFileSync(taken, 'utf8')).toBe('not ours');
      expect(errors).toEqual(['2026-12-07T12-00-00-000Z-s1.vhsrec EEXIST: the session is forwarded without a recording']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a rotation that cannot open its next segment stays in this one, told once, and tries again 10 s later', async () => {
    const dir = tmpDir('rec-retry');
    const errors: string[] = [];
    const rec = new Recorder(dir, { flight: flight({ segmentBytes: 1 }), onError: (f, _e, opening) => errors.push(`${path.basename(f)}: ${opening}`) });
    rec.onEvent(start(1));
    const name = path.basename(rec.files[0]!, '.vhsrec');
    fs.mkdirSync(path.join(dir, `${name}.1.vhsrec`)); // where the next segment would go
    for (let i = 0; i < 5; i++) rec.onEvent(message(1, BigInt(i)));
    expect(errors).toEqual([`${name}.1.vhsrec: the session stays in its current segment and tries again in 10 s`]);
    expect(rec.files).toHaveLength(1);
    expect(readRecording(rec.files[0]!).records.filter((r) => r.type === 'message')).toHaveLength(0); // still queued in the first segment
    rec.onEvent(end(1));
    await rec.close();
    expect(readRecording(rec.files[0]!).records.filter((r) => r.type === 'message')).toHaveLength(5);
  });
});
