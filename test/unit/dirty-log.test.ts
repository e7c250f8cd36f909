/**
 * Reading a dirty log: page marks counted across samples (a sync that cleared a bit and a new
 * mark count again), put down to used rings, completed buffers, or other; and the reader on a
 * real memfd, including one that shrinks under it.
 */
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { DirtyLogReader, type DirtyLogResult } from '../../src/proxy/dirty-log-reader';
import { DirtyLogCounter } from '../../src/rings/dirty-log';
import type { RingSnapshot } from '../../src/rings/snapshot';

const PAGE = 4096n;
/** a 32-byte log (256 pages = 1 MiB of guest memory) with these pages marked */
const log = (...pages: number[]): Buffer => {
  const b = Buffer.alloc(32);
  for (const p of pages) b[p >> 3] |= 1 << (p & 7);
  return b;
};
const call = (entries: { addr: bigint; len: number; write: boolean; usedLen?: number }[]): RingSnapshot => ({
  ts: 1n,
  pair: 0,
  ring: 1,
  kind: 'call',
  packed: false,
  truncated: false,
  availIdx: 0,
  usedIdx: 0,
  readUs: 0,
  entries: entries.map((d, i) => ({
    head: i,
    ...(d.usedLen !== undefined ? { usedLen: d.usedLen } : {}),
    descs: [{ addr: d.addr, len: d.len, flags: d.write ? 2 : 0, next: 0 }],
  })),
});

describe('DirtyLogCounter', () => {
  it('counts new marks between samples, again after a sync cleared them, and distinct pages once', () => {
    const c = new DirtyLogCounter(32);
    c.sample(log(3, 9));
    c.sample(log(3, 9, 10)); // 3 and 9 still set (not synced yet): only 10 is new
    c.sample(log()); // the front-end synced: cleared
    c.sample(log(3)); // marked again
    expect(c.figures()).toEqual({ samples: 4, marks: 4, pages: 3, vrings: [], other: 4 });
  });

  it('puts a mark down to the vring whose used ring or completed buffer covers the page', () => {
    const c = new DirtyLogCounter(32);
    c.usedRing(0, 16n * PAGE + 4000n, 256); // 6 + 8*256 bytes from the end of page 16: pages 16 and 17
    c.usedRing(1, 40n * PAGE, 256);
    // vring 0 completed a chain writing 100 bytes into page 50 (device-writable, used length 100),
    // and one whose writable buffer the device did not fill (used length 0); a read-only buffer on page 60
    c.completed(
      0,
      call([
        { addr: 50n * PAGE + 10n, len: 2048, write: true, usedLen: 100 },
        { addr: 70n * PAGE, len: 512, write: true, usedLen: 0 },
        { addr: 60n * PAGE, len: 64, write: false },
      ]),
    );
    c.sample(log(16, 17, 40, 50, 60, 70, 99));
    expect(c.figures()).toEqual({
      samples: 1,
      marks: 7,
      pages: 7,
      vrings: [
        { vring: 0, usedRing: 2, buffers: 1 },
        { vring: 1, usedRing: 1, buffers: 0 },
      ],
      other: 3,
    });
    // buffers count for the sample after their completion only
    c.sample(log());
    c.sample(log(50));
    expect(c.figures().other).toBe(4);
  });

  it('reads a short log as far as it goes', () => {
    const c = new DirtyLogCounter(32);
    c.sample(log(1).subarray(0, 1));
    expect(c.figures().marks).toBe(1);
  });
});

const u32s = (...v: number[]): Buffer =>
  Buffer.concat(
    v.map((x) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(x);
      return b;
    }),
  );
const u64s = (...v: bigint[]): Buffer =>
  Buffer.concat(
    v.map((x) => {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(x);
      return b;
    }),
  );

describe('DirtyLogReader on a memfd', () => {
  function setup(bytes: number) {
    const results: DirtyLogResult[] = [];
    const problems: string[] = [];
    const reader = new DirtyLogReader(
      (r) => results.push(r),
      (m) => problems.push(m),
    );
    const memfd = native.memfdCreate('vhost-log', bytes);
    reader.beforeForward(Request.SET_VRING_NUM, encodeMessage(Request.SET_VRING_NUM, 1, u32s(0, 256)), []);
    // SET_VRING_ADDR: index, flags, desc, used, avail, log_guest_addr (the used ring: page 2)
    reader.beforeForward(
      Request.SET_VRING_ADDR,
      encodeMessage(Request.SET_VRING_ADDR, 1, Buffer.concat([u32s(0, 1), u64s(0x7f0000001000n, 0x7f0000002000n, 0x7f0000003000n, 2n * PAGE)])),
      [],
    );
    reader.beforeForward(Request.SET_LOG_BASE, encodeMessage(Request.SET_LOG_BASE, 1, u64s(BigInt(bytes), 0n)), [memfd]);
    return { reader, results, problems, memfd };
  }

  it('reads the bits the back-end sets through its own copy of the fd, and reports at the end', () => {
    const { reader, results, problems, memfd } = setup(32);
    const fd = native.dup(memfd); // the back-end's mapping, as it were
    native.close(memfd); // the reader holds a dup: the front-end's copies go with the message
    fs.writeSync(fd, log(2, 20), 0, 32, 0);
    reader.sample();
    fs.writeSync(fd, log(), 0, 32, 0); // synced
    reader.sample();
    fs.writeSync(fd, log(2), 0, 32, 0); // marked again
    reader.sample();
    native.close(fd);
    reader.close();
    expect(problems).toEqual([]);
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ bytes: 32, marks: 3, pages: 2, vrings: [{ vring: 0, usedRing: 2, buffers: 0 }], other: 1 });
    expect(results[0].samples).toBe(4); // three here and the last one at the end
  });

  it('a log file shrunk under it: a short read is reported once, never a fault, and reading stops', () => {
    const { reader, results, problems, memfd } = setup(8192);
    fs.ftruncateSync(memfd, 100);
    reader.sample();
    reader.sample();
    reader.close();
    native.close(memfd);
    expect(problems).toEqual([
      'dirty log: the log file is shorter than SET_LOG_BASE said (100 of 8192 bytes read); the figures stand for what was read until now',
    ]);
    expect(results[0]).toMatchObject({ samples: 1, error: 'the log file is shorter than SET_LOG_BASE said (100 of 8192 bytes read)' });
  });

  it('a 1 MiB log whose bits all toggle: every mark counted, a bounded number put down to vrings, each sample quick', () => {
    const bytes = 1 << 20;
    const { reader, results, problems, memfd } = setup(bytes);
    const full = Buffer.alloc(bytes, 0xff);
    const empty = Buffer.alloc(bytes);
    let slowest = 0;
    for (let i = 0; i < 6; i++) {
      fs.writeSync(memfd, i % 2 ? empty : full, 0, bytes, 0); // set, then cleared (a sync), again
      const t0 = performance.now();
      reader.sample();
      slowest = Math.max(slowest, performance.now() - t0);
    }
    reader.close();
    native.close(memfd);
    expect(problems).toEqual([]);
    const r = results[0]!;
    expect(r.marks).toBe(3 * bytes * 8); // three samples saw every bit newly set
    expect(r.pages).toBe(bytes * 8);
    const classified = r.vrings.reduce((n, v) => n + v.usedRing + v.buffers, 0);
    expect(classified + r.other).toBe(r.marks);
    // 8 M marks per sample used to cost seconds of BigInt work each (3 s measured for 1 MiB):
    // now a read and a pass over the bytes (the bound is loose on purpose: a busy machine)
    expect(slowest).toBeLessThan(1000);
  });

  it('a log that is not memory (a pipe, which a read may block on forever) is not read, and says so', () => {
    const results: DirtyLogResult[] = [];
    const problems: string[] = [];
    const reader = new DirtyLogReader(
      (r) => results.push(r),
      (m) => problems.push(m),
    );
    const [r, w] = native.pipe();
    reader.beforeForward(Request.SET_LOG_BASE, encodeMessage(Request.SET_LOG_BASE, 1, u64s(4096n, 0n)), [r]);
    reader.sample(); // would block this thread on the empty pipe if it were read
    reader.close();
    native.close(r);
    native.close(w);
    expect(problems).toEqual([expect.stringMatching(/^the dirty log is pipe:\[\d+\], not a memfd: not read$/)]);
    expect(results).toEqual([]);
  });

  it('a new SET_LOG_BASE ends the old log (its figures reported) and reads the new one', () => {
    const { reader, results, memfd } = setup(32);
    const second = native.memfdCreate('vhost-log', 64);
    reader.beforeForward(Request.SET_LOG_BASE, encodeMessage(Request.SET_LOG_BASE, 1, u64s(64n, 0n)), [second]);
    expect(results.map((r) => r.bytes)).toEqual([32]);
    reader.close();
    expect(results.map((r) => r.bytes)).toEqual([32, 64]);
    native.close(memfd);
    native.close(second);
  });
});
