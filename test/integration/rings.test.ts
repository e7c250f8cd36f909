/**
 * Ring snapshots on the relay thread, against rings laid out by hand in a real memfd: split
 * and packed, chains and captured bytes, translation through the memory table, and a memfd
 * shrunk under the daemon (an error in the snapshot, never SIGBUS).
 */
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { decodeSnapshots } from '../../src/rings/snapshot';
import { decodeBuffer } from '../../src/rings/headers';
import { until } from '../helpers';

const MEM = 1 << 20;
const GPA = 0x40000000n;
const UADDR = 0x7f0000000000n;
const NUM = 8;
// layout inside the memfd (offsets)
const DESC = 0x1000;
const AVAIL = 0x2000;
const USED = 0x3000;
const BUF = 0x10000;

const relay = new native.Relay(1024, 0);

/** Every waiting snapshot record, copied out through one reused buffer as RelayHub does. */
function drainRings(into = Buffer.alloc(64 << 10)): Buffer {
  const parts: Buffer[] = [];
  for (let n = relay.drainRings(into); n !== 0; n = relay.drainRings(into)) {
    if (n < 0) into = Buffer.alloc(-n);
    else parts.push(Buffer.from(into.subarray(0, n)));
  }
  return Buffer.concat(parts);
}
afterAll(() => relay.stop());

function memfd(): number {
  return native.memfdCreate('vhs-ring-test', MEM);
}
const put = (fd: number, off: number, b: Buffer): void => void fs.writeSync(fd, b, 0, b.length, off);
const u16 = (v: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(v);
  return b;
};
function desc(addr: bigint, len: number, flags: number, next: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(addr, 0);
  b.writeUInt32LE(len, 8);
  b.writeUInt16LE(flags, 12);
  b.writeUInt16LE(next, 14);
  return b;
}

/** packed layout: id before flags */
const pdesc = (addr: bigint, len: number, flags: number, id: number): Buffer => desc(addr, len, id, flags);

/** A kick through a fresh relay pair watching `ring`; returns the snapshot it produced. */
async function kickAndSnapshot(ringId: number, kind: 0 | 1) {
  const src = native.eventfd(0);
  const dst = native.eventfd(0);
  const mine = native.dup(src);
  const pair = relay.addPair(src, dst);
  expect(relay.attachRing(pair, ringId, kind)).toBe(true);
  native.eventfdWrite(mine, 1);
  let got: ReturnType<typeof decodeSnapshots> = [];
  await until(() => (got = got.concat(decodeSnapshots(drainRings()))).length > 0, 3000, 'a snapshot');
  relay.removePair(pair);
  native.close(mine);
  return got[0].snapshot;
}

describe('ring snapshots', () => {
  it('split ring: new avail chains with descriptors and their first bytes; used entries at calls', async () => {
    const fd = memfd();
    const mem = new native.GuestMemory();
    mem.add(native.dup(fd), GPA, BigInt(MEM), UADDR, 0n);
    // chain 0 -> 1: a 16-byte blk header (readable) then a 1-byte status (writable)
    const hdr = Buffer.alloc(16);
    hdr.writeUInt32LE(1, 0); // OUT
    hdr.writeBigUInt64LE(2048n, 8);
    put(fd, BUF, hdr);
    put(fd, DESC, desc(GPA + BigInt(BUF), 16, 1, 1));
    put(fd, DESC + 16, desc(GPA + BigInt(BUF + 0x100), 4096, 3, 2));
    put(fd, DESC + 32, desc(GPA + BigInt(BUF + 0x2000), 1, 2, 0));
    put(fd, AVAIL + 4, u16(0)); // ring[0] = head 0
    put(fd, AVAIL + 2, u16(1)); // avail idx 1
    relay.setRing(1, mem, UADDR + BigInt(DESC), UADDR + BigInt(AVAIL), UADDR + BigInt(USED), NUM, false, 128, 0, 0);
    const kick = await kickAndSnapshot(1, 0);
    expect(kick).toMatchObject({ kind: 'kick', packed: false, availIdx: 1, usedIdx: 0 });
    expect(kick.error).toBeUndefined();
    expect(kick.entries).toHaveLength(1);
    expect(kick.entries[0].descs.map((d) => [d.addr, d.len, d.flags])).toEqual([
      [GPA + BigInt(BUF), 16, 1],
      [GPA + BigInt(BUF + 0x100), 4096, 3],
      [GPA + BigInt(BUF + 0x2000), 1, 2],
    ]);
    expect(kick.entries[0].descs[0].bytes).toEqual(hdr);
    expect(decodeBuffer(kick.entries[0], { device: 'blk', vring: 0, kind: 'kick' })?.summary).toBe('blk OUT (write) sector 2048 len 4096');
    // the device completes it: status 0, used elem {id 0, len 1}
    put(fd, BUF + 0x2000, Buffer.from([0]));
    put(fd, USED + 4, Buffer.from([0, 0, 0, 0, 1, 0, 0, 0]));
    put(fd, USED + 2, u16(1));
    const call = await kickAndSnapshot(1, 1);
    expect(call).toMatchObject({ kind: 'call', usedIdx: 1 });
    expect(call.entries[0]).toMatchObject({ head: 0, usedLen: 1 });
    expect(decodeBuffer(call.entries[0], { device: 'blk', vring: 0, kind: 'call' })?.summary).toBe('blk OUT (write) sector 2048 len 4096 status OK');
    // a second kick with nothing new: indices only
    expect((await kickAndSnapshot(1, 0)).entries).toEqual([]);
    const base = decodeSnapshots(relay.snapshotRing(1)!)[0].snapshot;
    expect(base).toMatchObject({ kind: 'base', availIdx: 1, usedIdx: 1, entries: [] });
    // a buffer too small for the next record gets its size back, negated, and loses nothing
    const src = native.eventfd(0);
    const mine = native.dup(src);
    const pair = relay.addPair(src, native.eventfd(0));
    relay.attachRing(pair, 1, 0);
    native.eventfdWrite(mine, 1);
    let need = 0;
    await until(() => (need = -relay.drainRings(Buffer.alloc(8))) > 0, 3000, 'a record that does not fit');
    const exact = Buffer.alloc(need);
    expect(relay.drainRings(exact)).toBe(need);
    expect(decodeSnapshots(exact)[0].snapshot).toMatchObject({ kind: 'kick', availIdx: 1, entries: [] });
    expect(relay.drainRings(exact)).toBe(0);
    relay.removePair(pair);
    native.close(mine);
    relay.removeRing(1);
    mem.clear();
    native.close(fd);
  });

  it('split ring: an indirect descriptor is replaced by its table', async () => {
    const fd = memfd();
    const mem = new native.GuestMemory();
    mem.add(native.dup(fd), GPA, BigInt(MEM), UADDR, 0n);
    const TABLE = 0x5000;
    put(fd, DESC, desc(GPA + BigInt(TABLE), 48, 4, 0)); // INDIRECT, 3 entries
    put(fd, TABLE, desc(GPA + BigInt(BUF), 40, 1, 1));
    put(fd, TABLE + 16, desc(GPA + BigInt(BUF + 0x100), 4096, 1, 2));
    put(fd, TABLE + 32, desc(GPA + BigInt(BUF + 0x2000), 16, 2, 0));
    const inHdr = Buffer.alloc(40);
    inHdr.writeUInt32LE(40, 0);
    inHdr.writeUInt32LE(15, 4); // FUSE READ
    inHdr.writeBigUInt64LE(77n, 8);
    put(fd, BUF, inHdr);
    put(fd, AVAIL + 4, u16(0));
    put(fd, AVAIL + 2, u16(1));
    relay.setRing(5, mem, UADDR + BigInt(DESC), UADDR + BigInt(AVAIL), UADDR + BigInt(USED), NUM, false, 128, 0, 0);
    const kick = await kickAndSnapshot(5, 0);
    expect(kick.entries[0].descs.map((d) => d.len)).toEqual([40, 4096, 16]);
    expect(decodeBuffer(kick.entries[0], { device: 'fs', vring: 1, kind: 'kick' })?.summary).toBe('FUSE READ unique 77 nodeid 0');
    relay.removeRing(5);
    mem.clear();
    native.close(fd);
  });

  it('packed ring: available descriptors by their flags and the wrap counter', async () => {
    const fd = memfd();
    const mem = new native.GuestMemory();
    mem.add(native.dup(fd), GPA, BigInt(MEM), UADDR, 0n);
    const AVAIL_F = 1 << 7;
    const USED_F = 1 << 15;
    // two buffers made available with wrap counter 1: id 5 (one desc), id 6 (two descs)
    put(fd, DESC, pdesc(GPA + BigInt(BUF), 64, AVAIL_F, 5));
    put(fd, DESC + 16, pdesc(GPA + BigInt(BUF + 0x100), 16, AVAIL_F | 1, 0));
    put(fd, DESC + 32, pdesc(GPA + BigInt(BUF + 0x200), 32, AVAIL_F, 6));
    relay.setRing(2, mem, UADDR + BigInt(DESC), UADDR + BigInt(AVAIL), UADDR + BigInt(USED), NUM, true, 0, 0x8000, 0x8000);
    const kick = await kickAndSnapshot(2, 0);
    expect(kick).toMatchObject({ kind: 'kick', packed: true, availIdx: 0x8000 | 3 });
    expect(kick.entries.map((e) => [e.head, e.descs.length])).toEqual([
      [5, 1],
      [6, 2],
    ]);
    // the device uses buffer 5 (one slot) and 6 (two slots): flags AVAIL == USED == wrap
    put(fd, DESC, pdesc(GPA + BigInt(BUF), 60, AVAIL_F | USED_F, 5));
    put(fd, DESC + 16, pdesc(GPA + BigInt(BUF + 0x100), 0, AVAIL_F | USED_F, 6));
    const call = await kickAndSnapshot(2, 1);
    expect(call.entries.map((e) => [e.head, e.usedLen])).toEqual([
      [5, 60],
      [6, 0],
    ]);
    expect(call.usedIdx).toBe(0x8000 | 3);
    relay.removeRing(2);
    mem.clear();
    native.close(fd);
  });

  it('a memfd shrunk by a peer gives an error in the snapshot, not SIGBUS', async () => {
    const fd = memfd();
    const mem = new native.GuestMemory();
    mem.add(native.dup(fd), GPA, BigInt(MEM), UADDR, 0n);
    put(fd, AVAIL + 2, u16(1));
    relay.setRing(3, mem, UADDR + BigInt(DESC), UADDR + BigInt(AVAIL), UADDR + BigInt(USED), NUM, false, 128, 0, 0);
    fs.ftruncateSync(fd, 4096); // the ring pages are gone from the file
    const s = await kickAndSnapshot(3, 0);
    expect(s.error).toMatch(/the file shrank/);
    expect(s.entries).toEqual([]);
    relay.removeRing(3);
    mem.clear();
    native.close(fd);
  });

  it('a sealed memfd is read through its mapping, an unsealed one with pread', () => {
    const mem = new native.GuestMemory();
    mem.add(native.memfdCreate('sealed', MEM, true), GPA, BigInt(MEM), UADDR, 0n);
    mem.add(native.memfdCreate('unsealed', MEM), GPA + BigInt(MEM), BigInt(MEM), UADDR + BigInt(MEM), 0n);
    expect([mem.regions, mem.mapped]).toEqual([2, 1]);
    mem.clear();
  });

  it('snapshots thousands of kicks while another process shrinks and regrows the memfd: errors, never SIGBUS', async () => {
    const fd = memfd();
    const mem = new native.GuestMemory();
    mem.add(native.dup(fd), GPA, BigInt(MEM), UADDR, 0n);
    relay.setRing(5, mem, UADDR + BigInt(DESC), UADDR + BigInt(AVAIL), UADDR + BigInt(USED), NUM, false, 4096, 0, 0);
    // The child owns the race: shrink to one page, regrow, lay out one chain of a 4 KiB buffer
    // (so the snapshot reads ring, descriptor and buffer), over and over. A state with no hold
    // lasted microseconds: under load no snapshot met a whole chain (a CI run saw 0).
    const child = spawn(
      process.execPath,
      [
        '-e',
        `
      const fs = require('fs');
      const d = Buffer.alloc(16); d.writeBigUInt64LE(${GPA + BigInt(BUF)}n, 0); d.writeUInt32LE(4096, 8);
      const idx = Buffer.from([1, 0]), head = Buffer.from([0, 0]);
      // each state held a millisecond: on a loaded machine the snapshots still meet both
      const hold = () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
      process.stdout.write('racing\\n');
      for (;;) {
        fs.ftruncateSync(3, 4096); hold(); fs.ftruncateSync(3, ${MEM});
        fs.writeSync(3, d, 0, 16, ${DESC}); fs.writeSync(3, head, 0, 2, ${AVAIL + 4}); fs.writeSync(3, idx, 0, 2, ${AVAIL + 2}); hold();
      }`,
      ],
      { stdio: ['ignore', 'pipe', 'inherit', fd] },
    );
    await new Promise((r) => child.stdout!.once('data', r));
    const src = native.eventfd(0);
    const kick = native.dup(src);
    const pair = relay.addPair(src, native.eventfd(0));
    relay.attachRing(pair, 5, 0);
    const errors = new Set<string>();
    let snapshots = 0;
    let withEntries = 0;
    try {
      // thousands of snapshots, and at least a second of racing
      const started = Date.now();
      while (snapshots < 3000 || Date.now() - started < 1000) {
        native.eventfdWrite(kick, 1);
        await new Promise((r) => setTimeout(r, 0));
        for (const { snapshot } of decodeSnapshots(drainRings())) {
          snapshots++;
          if (snapshot.error) errors.add(snapshot.error);
          else if (snapshot.entries.length) withEntries++;
        }
      }
    } finally {
      child.kill('SIGKILL');
      relay.removePair(pair);
      relay.removeRing(5);
      drainRings(); // what the last kicks produced is not the next test's
      native.close(kick);
      mem.clear();
      native.close(fd);
    }
    // We are still here (SIGBUS would have ended this process), the shrinks were seen, and
    // between them the chain was read whole.
    expect(snapshots).toBeGreaterThan(100);
    expect([...errors].some((e) => /the file shrank/.test(e))).toBe(true);
    expect([...errors].every((e) => /file shrank|outside every memory region/.test(e))).toBe(true);
    expect(withEntries).toBeGreaterThan(0);
  });

  it('refuses regions that do not fit in their file, and addresses outside every region', async () => {
    const fd = memfd();
    const mem = new native.GuestMemory();
    expect(() => mem.add(native.dup(fd), GPA, BigInt(MEM * 2), UADDR, 0n)).toThrow(/EINVAL/);
    expect(mem.regions).toBe(0);
    mem.add(native.dup(fd), GPA, BigInt(MEM), UADDR, 0n);
    relay.setRing(4, mem, 0x1000n, 0x2000n, 0x3000n, NUM, false, 0, 0, 0);
    expect((await kickAndSnapshot(4, 0)).error).toBe('a ring address is in no memory region');
    expect(mem.remove(GPA, BigInt(MEM))).toBe(true);
    expect(mem.regions).toBe(0);
    relay.removeRing(4);
    native.close(fd);
  });
});
