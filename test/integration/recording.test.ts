/** Recording format, durability and reading back, with synthetic events. */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { infoText, showRecording } from '../../src/views/recording';
import { encodeMessage, Request } from '../../src/protocol';
import type { ProxyEvent } from '../../src/events/events';
import { encodeFrame, FRAME_HEADER, MAX_FRAME, scanFrames, tailScan } from '../../src/recording/frames';
import { Recorder } from '../../src/recording/recorder';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import { unpackBatch, type NotifyBatchRecord } from '../../src/recording/records';
import { RecordingWriter, unwritten } from '../../src/recording/writer';
import { tmpDir, until } from '../helpers';
import { Session, u32s } from '../sessions';

const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};

/** A small but complete session: handshake messages, fds, notifications, end. */
function session(id: number, t: bigint): ProxyEvent[] {
  const msg = (dt: bigint, dir: 'F>B' | 'B>F', raw: Buffer, fds: ProxyEvent[] = []): ProxyEvent => ({
    type: 'message',
    ts: t + dt,
    session: id,
    channel: 'main',
    sender: dir === 'F>B' ? 'frontend' : 'backend',
    dir,
    raw,
    decoded: undefined as never,
    fds: fds as never,
    findings: [],
  });
  const ev: ProxyEvent[] = [
    {
      type: 'session-start',
      ts: t,
      session: id,
      listenPath: '/l',
      connectPath: '/c',
      frontend: 'auto',
      interpose: true,
      peers: { listen: { pid: 1, uid: 0, exe: '/usr/bin/qemu' } },
    },
    msg(1000n, 'F>B', encodeMessage(Request.GET_FEATURES, 1)),
    msg(2000n, 'B>F', encodeMessage(Request.GET_FEATURES, 5, u64((1n << 30n) | (1n << 32n)))),
    msg(3000n, 'F>B', encodeMessage(Request.GET_PROTOCOL_FEATURES, 1)),
    {
      ...(msg(4000n, 'B>F', encodeMessage(Request.GET_PROTOCOL_FEATURES, 5, u64(0x8n))) as object),
      received: encodeMessage(Request.GET_PROTOCOL_FEATURES, 5, u64(0x808n)),
      masked: ['HOST_NOTIFIER'],
    } as ProxyEvent,
    msg(5000n, 'F>B', encodeMessage(Request.SET_VRING_KICK, 1, u64(1n)), [{ slot: 0, kind: 'eventfd', eventfdId: 42 }] as never),
  ];
  for (let i = 0; i < 10; i++)
    ev.push({ type: 'notification', ts: t + 10_000n + BigInt(i) * 1500n, session: id, vring: 1, kind: i % 2 ? 'call' : 'kick', count: 1 });
  ev.push({
    type: 'session-end',
    ts: t + 50_000n,
    session: id,
    reason: 'the frontend closed the connection',
    by: 'frontend',
    messages: { 'F>B': 3, 'B>F': 2 },
    fdsForwarded: 1,
    vrings: [],
    relayPairs: [],
  });
  return ev;
}

describe('recording', () => {
  it('round-trips every record of a session and reads back in time order', async () => {
    const file = path.join(tmpDir('rec'), 'one.vhsrec');
    const rec = new Recorder(file);
    for (const e of session(1, 1_000_000_000n)) rec.onEvent(e);
    await rec.close();
    const scan = readRecording(file);
    expect(scan.torn).toBeUndefined();
    expect(scan.records.map((r) => r.type)).toEqual([
      'header',
      'session-start',
      'message',
      'message',
      'message',
      'message',
      'message',
      'notify',
      'session-end',
    ]);
    const h = scan.records[0];
    expect(h).toMatchObject({ type: 'header', format: 'vhostscope-recording', version: 1, host: { byteOrder: 'LE', clock: 'CLOCK_MONOTONIC' } });
    const masked = scan.records[5];
    expect(masked).toMatchObject({ type: 'message', dir: 'B>F' });
    expect((masked as { raw: Buffer }).raw.readBigUInt64LE(12)).toBe(0x808n); // as received
    expect((masked as { forwarded: Buffer }).forwarded.readBigUInt64LE(12)).toBe(0x8n);
    const batch = scan.records[7] as NotifyBatchRecord;
    expect([...unpackBatch(batch)].map((n) => `${n.kind}${n.vring}@${n.ts - 1_000_000_000n}`)).toEqual(
      Array.from({ length: 10 }, (_, i) => `${i % 2 ? 'call' : 'kick'}1@${10_000 + i * 1500}`),
    );
    const events = recordingEvents(scan.records, { notifications: true });
    expect(events.map((e) => e.type)).toEqual([
      'session-start',
      'message',
      'message',
      'message',
      'message',
      'message',
      ...Array(10).fill('notification'),
      'session-end',
    ]);
    const m = events[4];
    expect(m.type === 'message' && m.masked).toEqual(['HOST_NOTIFIER']);
  });

  it('round-trips what the proxy read of a dirty log and a held device-state transfer', async () => {
    const file = path.join(tmpDir('rec'), 'migration.vhsrec');
    const rec = new Recorder(file);
    const t = 5_000_000_000n;
    const dirty: ProxyEvent = {
      type: 'dirty-log',
      ts: t + 900n,
      session: 1,
      startNs: t + 100n,
      bytes: 8192,
      samples: 31,
      marks: 120,
      pages: 40,
      vrings: [
        { vring: 0, usedRing: 12, buffers: 100 },
        { vring: 1, usedRing: 9, buffers: 0 },
      ],
      other: 8,
      error: 'reading the log failed: EIO',
    };
    const state: ProxyEvent = { type: 'device-state', ts: t + 800n, session: 1, direction: 'save', startNs: t + 700n, bytes: 62, heldMs: 2000 };
    for (const e of [session(1, t)[0], state, dirty]) rec.onEvent(e);
    await rec.close();
    const back = recordingEvents(readRecording(file).records).filter((e) => e.type === 'dirty-log' || e.type === 'device-state');
    expect(back).toEqual([state, dirty]);
  });

  it('keeps a notification at a few bytes (columns, delta timestamps)', () => {
    const n = 100_000;
    const b: NotifyBatchRecord = { type: 'notify', session: 1, ts0: 123_456_789_000n, dt: [], vk: [], c: [] };
    for (let i = 0; i < n; i++) {
      b.dt.push(1800 + (i % 7) * 100);
      b.vk.push(i % 2 ? 5 : 4);
      b.c.push(1);
    }
    const perEvent = encodeFrame(b).length / n;
    expect(perEvent).toBeLessThanOrEqual(6);
  });

  it('reports a torn last frame, never mistakes it for data, and cuts it before appending again', async () => {
    const file = path.join(tmpDir('torn'), 'r.vhsrec');
    const w = new RecordingWriter(file);
    w.writeHeader(1n);
    for (let i = 0; i < 100; i++) w.write({ type: 'dropped', session: 1, ts: BigInt(i), notifications: i });
    await w.close();
    const whole = fs.readFileSync(file);
    fs.writeFileSync(file, whole.subarray(0, whole.length - 5)); // a crash mid-write
    const scan = readRecording(file);
    expect(scan.records).toHaveLength(100);
    expect(scan.torn).toMatchObject({ reason: expect.stringMatching(/incomplete frame/) });
    const corrupt = Buffer.from(whole);
    corrupt[corrupt.length - 3] ^= 0xff;
    expect(scanFrames(corrupt).torn?.reason).toBe('CRC mismatch');
    expect(scanFrames(corrupt).records).toHaveLength(100);

    const w2 = new RecordingWriter(file);
    expect(w2.recovered).toMatchObject({ tornBytes: expect.any(Number) });
    w2.writeHeader(2n);
    w2.write({ type: 'dropped', session: 2, ts: 5n, notifications: 1 });
    await w2.close();
    const again = readRecording(file);
    expect(again.torn).toBeUndefined();
    expect(again.records.map((r) => r.type).slice(99)).toEqual(['dropped', 'header', 'recovered', 'dropped']);
  });

  it('cuts a last frame whose CRC fails before appending', async () => {
    const file = path.join(tmpDir('crc-tail'), 'r.vhsrec');
    const w = new RecordingWriter(file);
    for (let i = 0; i < 10; i++) w.write({ type: 'dropped', session: 1, ts: BigInt(i), notifications: i });
    await w.close();
    const whole = fs.readFileSync(file);
    const last = whole.length - 1;
    fs.writeFileSync(file, Buffer.concat([whole.subarray(0, last), Buffer.from([whole[last] ^ 0xff])]));
    const w2 = new RecordingWriter(file);
    expect(w2.recovered).toMatchObject({ reason: 'CRC mismatch' });
    await w2.close();
    const after = readRecording(file);
    expect(after.torn).toBeUndefined();
    expect(after.records).toHaveLength(9);
  });

  it('appends after the whole frames of a file larger than its read chunk, whatever the cut', () => {
    const file = path.join(tmpDir('big'), 'r.vhsrec');
    const frames: Buffer[] = [];
    let size = 0;
    for (let i = 0; size < 9 << 20; i++) {
      const f = encodeFrame({ type: 'ring', session: 1, ts: BigInt(i), raw: Buffer.alloc((i * 7919) % 70_000, i & 0xff) } as never);
      frames.push(f);
      size += f.length;
    }
    const whole = Buffer.concat(frames);
    for (const cut of [whole.length, whole.length - 1, (4 << 20) + 3, (8 << 20) - 1, 5]) {
      fs.writeFileSync(file, whole.subarray(0, cut));
      const fd = fs.openSync(file, 'r');
      try {
        const t = tailScan(fd);
        const s = scanFrames(whole.subarray(0, cut));
        expect(t.goodBytes, `cut at ${cut}`).toBe(s.goodBytes);
        expect(t.torn?.bytes, `cut at ${cut}`).toBe(s.torn?.bytes);
      } finally {
        fs.closeSync(fd);
      }
    }
  });

  it('never follows a symlink at the recording path: the file it points to is neither cut nor written', () => {
    const dir = tmpDir('rec-link');
    const victim = path.join(dir, 'victim');
    fs.writeFileSync(victim, 'precious, and not a recording\n');
    const link = path.join(dir, 'r.vhsrec');
    fs.symlinkSync(victim, link);
    expect(() => new RecordingWriter(link)).toThrow(/ELOOP/);
    expect(fs.readFileSync(victim, 'utf8')).toBe('precious, and not a recording\n');
  });

  it('takes a frame length beyond any record for corruption, not for a record still being written', () => {
    const good = encodeFrame({ type: 'mark', ts: 1n, text: 'x' } as never);
    const huge = Buffer.alloc(FRAME_HEADER + 64);
    huge.writeUInt32LE(MAX_FRAME + 1, 0);
    const scan = scanFrames(Buffer.concat([good, huge]));
    expect(scan.goodBytes).toBe(good.length);
    expect(scan.torn).toEqual({ offset: good.length, bytes: huge.length, reason: `frame length ${MAX_FRAME + 1} is beyond any record` });
  });

  it('after a short writev, queues exactly the bytes not written, in order', () => {
    const bufs = [Buffer.from('abc'), Buffer.from('de'), Buffer.from('fghi')];
    const rest = (n: number): string => Buffer.concat(unwritten(bufs, n)).toString();
    const whole = 'abcdefghi';
    for (let n = 0; n <= whole.length; n++) expect(rest(n)).toBe(whole.slice(n));
    expect(unwritten(bufs, 5)).toHaveLength(1); // a boundary: no empty piece left in front
    expect(unwritten([], 0)).toEqual([]);
  });

  it('writes thousands of queued frames (more than one writev takes) whole and in order', async () => {
    const file = path.join(tmpDir('many'), 'm.vhsrec');
    const w = new RecordingWriter(file, { flushMs: 60_000 });
    w.writeHeader(1n);
    for (let i = 0; i < 20000; i++) w.write({ type: 'dropped', session: 1, ts: BigInt(i), notifications: i }); // flushes of thousands of iovecs (> IOV_MAX)
    await w.close();
    const scan = readRecording(file);
    expect(scan.torn).toBeUndefined();
    scan.records.slice(1).forEach((r, i) => expect(r).toMatchObject({ type: 'dropped', notifications: i }));
    expect(scan.records).toHaveLength(20001);
    expect(w.bytesWritten).toBe(fs.statSync(file).size);
  });

  it('survives SIGKILL of the writer: every complete frame reads back', async () => {
    const file = path.join(tmpDir('kill'), 'k.vhsrec');
    const writerModule = path.resolve(__dirname, '..', '..', 'dist', 'recording', 'writer.js');
    const child = spawn(
      process.execPath,
      [
        '-e',
        `
      const { RecordingWriter } = require(${JSON.stringify(writerModule)});
      const w = new RecordingWriter(${JSON.stringify(file)}, { flushMs: 1 });
      w.writeHeader(1n);
      let i = 0;
      setInterval(() => { for (let k = 0; k < 500; k++) w.write({ type: 'dropped', session: 1, ts: BigInt(i), notifications: i++ }); }, 1);
    `,
      ],
      { stdio: 'ignore' },
    );
    await until(() => fs.existsSync(file) && fs.statSync(file).size > 200_000, 10_000, 'the writer to write');
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const scan = readRecording(file);
    expect(scan.records.length).toBeGreaterThan(1000);
    scan.records.slice(1).forEach((r, i) => expect(r).toMatchObject({ type: 'dropped', notifications: i }));
    expect(scan.goodBytes + (scan.torn?.bytes ?? 0)).toBe(fs.statSync(file).size);
  });

  it('drops notification batches, never control records, when the disk falls behind', async () => {
    const file = path.join(tmpDir('drop'), 'd.vhsrec');
    const w = new RecordingWriter(file, { maxPendingBytes: 1000, flushMs: 60_000 });
    w.writeHeader(1n);
    let kept = 0;
    for (let i = 0; i < 50; i++) {
      if (w.write({ type: 'notify', session: 1, ts0: 1n, dt: Array(100).fill(1000), vk: Array(100).fill(4), c: Array(100).fill(1) })) kept++;
      w.write({ type: 'dropped', session: 1, ts: BigInt(i), notifications: 0 });
    }
    expect(kept).toBeLessThan(50);
    expect(w.droppedNotifications).toBe((50 - kept) * 100);
    await w.close();
    const scan = readRecording(file);
    expect(scan.records.filter((r) => r.type === 'dropped')).toHaveLength(50);
  });

  it('drops vring snapshots too when the disk falls behind, counts them, and never drops a message', async () => {
    const file = path.join(tmpDir('drop-rings'), 'r.vhsrec');
    const w = new RecordingWriter(file, { maxPendingBytes: 1000, flushMs: 60_000 });
    w.writeHeader(1n);
    let kept = 0;
    let messages = 0;
    for (let i = 0; i < 50; i++) {
      if (w.write({ type: 'ring', session: 1, vring: 0, raw: Buffer.alloc(200, i) })) kept++;
      if (w.write({ type: 'message', ts: BigInt(i), session: 1, channel: 'main', dir: 'F>B', raw: Buffer.from('010000000100000000000000', 'hex'), fds: [] }))
        messages++;
    }
    expect(kept).toBeLessThan(50);
    expect(w.droppedRings).toBe(50 - kept);
    expect(messages).toBe(50);
    await w.close();
    const scan = readRecording(file);
    expect(scan.records.filter((r) => r.type === 'message')).toHaveLength(50);
    expect(scan.records.filter((r) => r.type === 'ring')).toHaveLength(kept);
  });

  it('writes one file per session into a directory', async () => {
    const dir = tmpDir('dir') + '/';
    const rec = new Recorder(dir);
    const a = session(1, 1_000_000n);
    const b = session(2, 2_000_000n);
    for (let i = 0; i < a.length; i++) {
      rec.onEvent(a[i]);
      rec.onEvent(b[i]);
    }
    await rec.close();
    expect(rec.files).toHaveLength(2);
    expect(rec.files.map((f) => path.basename(f))).toEqual([expect.stringMatching(/-s1\.vhsrec$/), expect.stringMatching(/-s2\.vhsrec$/)]);
    for (const [i, f] of rec.files.entries()) {
      const s = readRecording(f);
      expect(s.records.filter((r) => 'session' in r).every((r) => (r as { session: number }).session === i + 1)).toBe(true);
    }
    // vhostscope_recording_bytes_total: exactly what the files hold, the closed ones included
    expect(rec.figures().bytes).toBe(rec.files.reduce((n, f) => n + fs.statSync(f).size, 0));
  });

  it('counts the bytes of a single-file recording as the file holds them, while live and once closed', async () => {
    const file = path.join(tmpDir('bytes'), 'one.vhsrec');
    const rec = new Recorder(file);
    const a = session(1, 1_000_000n);
    for (const e of a.slice(0, 4)) rec.onEvent(e);
    // at any moment: what reached the file, never what is still queued for it
    expect(rec.figures().bytes).toBe(fs.statSync(file).size);
    await until(() => rec.figures().bytes > 0 && rec.figures().bytes === fs.statSync(file).size);
    for (const e of [...a.slice(4), ...session(2, 2_000_000n)]) rec.onEvent(e);
    await rec.close();
    expect(rec.figures().bytes).toBe(fs.statSync(file).size);
    expect(rec.figures()).toMatchObject({ droppedNotifications: 0, droppedRings: 0 });
  });

  it('show filters and formats like the live log; info summarises', async () => {
    const file = path.join(tmpDir('show'), 's.vhsrec');
    const rec = new Recorder(file);
    for (const e of [...session(1, 1_000_000_000n), ...session(2, 2_000_000_000n)]) rec.onEvent(e);
    await rec.close();
    const lines: string[] = [];
    showRecording(file, { device: 'generic', session: '2', request: 'GET_FEATURES' }, (l) => lines.push(l));
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatch(/s2 B>F GET_FEATURES\s+v1\|REPLY\s+size=8\s+0x140000000 \(PROTOCOL_FEATURES\|VERSION_1\)/);
    const json: string[] = [];
    showRecording(file, { device: 'generic', since: '0.5', json: true, notifications: true }, (l) => json.push(l));
    expect(json.map((l) => JSON.parse(l).session).every((s) => s === 2)).toBe(true);
    expect(json.filter((l) => JSON.parse(l).event === 'notification')).toHaveLength(10);
    const info = infoText(file, 'generic').join('\n');
    expect(info).toMatch(/session 1: \/l \(pid 1 \/usr\/bin\/qemu\) <-> \/c/);
    expect(info).toMatch(/protocol features offered: REPLY_ACK\|HOST_NOTIFIER/);
    expect(info).toMatch(/virtio features offered: PROTOCOL_FEATURES\|VERSION_1/);
    expect(info).toMatch(/notifications: vring 1 kick 5, vring 1 call 5/);
    expect(info).toMatch(/duration 0\.000 s/);
  });

  it("show puts each ring's new spec state under the message that changed it, shown or filtered out", async () => {
    const file = path.join(tmpDir('show-rings'), 's.vhsrec');
    const rec = new Recorder(file);
    const s = new Session()
      .handshake()
      .vring(0)
      .fe(Request.SET_VRING_ENABLE, u32s(0, 0))
      .fe(Request.GET_VRING_BASE, u32s(0, 0))
      .be(Request.GET_VRING_BASE, u32s(0, 0));
    for (const e of s.end()) rec.onEvent(e);
    await rec.close();
    const lines: string[] = [];
    showRecording(file, { device: 'generic' }, (l) => lines.push(l));
    const states = lines.flatMap((l, i) =>
      l.startsWith('    vring ')
        ? [
            `${lines[i - 1]
              .match(/(F>B|B>F) (\S+)/)
              ?.slice(1)
              .join(' ')}: ${l.trim()}`,
          ]
        : [],
    );
    expect(states).toEqual([
      'F>B SET_VRING_KICK: vring 0 is now started, disabled',
      'F>B SET_VRING_ENABLE: vring 0 is now started, enabled',
      'F>B SET_VRING_ENABLE: vring 0 is now started, disabled',
      'B>F GET_VRING_BASE: vring 0 is now stopped, disabled',
    ]);
    const json: string[] = [];
    showRecording(file, { device: 'generic', request: 'GET_VRING_BASE', json: true }, (l) => json.push(l));
    expect(json.map((l) => JSON.parse(l)).filter((r) => r.event === 'ring-state')).toEqual([
      { event: 'ring-state', session: 1, vring: 0, started: false, enabled: false, why: 'GET_VRING_BASE reply' },
    ]);
  });
});
