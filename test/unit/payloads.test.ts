/**
 * Payload decoders at the edges of their layouts: payloads shorter than a field read it as 0
 * (never a throw), the memory table's region size and count, optional trailing fields present
 * from exactly their size, the SHMEM config's 256 slots, and the sizes a payload may have.
 * test/unit/protocol.test.ts decodes whole payloads of each kind.
 */
import { u32s } from '../sessions';
import { describe, expect, it } from 'vitest';
import { allowedSizes, decoders, expectedConfigSize, expectedMemTableSize, memTableRegionSize } from '../../src/protocol';

const u64s = (...v: bigint[]): Buffer => {
  const b = Buffer.alloc(8 * v.length);
  v.forEach((x, i) => b.writeBigUInt64LE(x, 8 * i));
  return b;
};

describe('payload decoders at their edges', () => {
  it('reads a field the payload is too short for as 0', () => {
    expect(decoders.vringState(Buffer.alloc(3, 0xff))).toEqual({ index: 0, num: 0 });
    expect(decoders.vringState(Buffer.from([7, 0, 0, 0, 9, 0, 0]))).toEqual({ index: 7, num: 0 });
    expect(decoders.vringState(Buffer.from([7, 0, 0, 0, 9, 0, 0, 0]))).toEqual({ index: 7, num: 9 });
    const inflight = Buffer.concat([u64s(1n, 2n), Buffer.from([3, 0, 4])]);
    expect(decoders.inflight(inflight)).toEqual({ mmapSize: 1n, mmapOffset: 2n, numQueues: 3, queueSize: 0 });
    expect(decoders.inflight(inflight.subarray(0, 17))).toMatchObject({ numQueues: 0 });
    expect(decoders.u64(Buffer.alloc(7, 1))).toEqual({ value: 0n });
  });

  it('tells a 40-byte region (XEN_MMAP) from a 32-byte one by the table size, and never without regions', () => {
    expect(memTableRegionSize(8 + 40 * 2, 2)).toBe(40);
    expect(memTableRegionSize(8 + 32 * 2, 2)).toBe(32);
    expect(memTableRegionSize(8, 0)).toBe(32); // 8 + 40 x 0: no region to size
    expect(memTableRegionSize(8 + 40 * 2, 3)).toBe(32);
    expect(expectedMemTableSize(u32s(3, 0))).toEqual([8 + 32 * 3, 8 + 40 * 3]);
    expect(expectedConfigSize(u32s(0, 6, 0))).toEqual([18]);
  });

  it('decodes as many regions as the table says and holds, no more', () => {
    const region = (a: bigint): Buffer => u64s(a, 0x1000n, a + 1n, 0n);
    const t = (n: number, ...regions: Buffer[]): Buffer => Buffer.concat([u32s(n, 0), ...regions]);
    expect(decoders.memTable(t(3, region(1n), region(2n))).regions).toHaveLength(2); // says 3, holds 2
    expect(decoders.memTable(t(1, region(1n), region(2n))).regions).toEqual([{ guestPhysAddr: 1n, memorySize: 0x1000n, userspaceAddr: 2n, mmapOffset: 0n }]);
    expect(decoders.memTable(t(2, region(1n), region(2n).subarray(0, 31))).regions).toHaveLength(1); // the second cut short
    const xen = Buffer.concat([region(5n), u32s(1, 7)]);
    expect(decoders.memTable(t(1, xen)).regions).toEqual([
      { guestPhysAddr: 5n, memorySize: 0x1000n, userspaceAddr: 6n, mmapOffset: 0n, xenMmapFlags: 1, domid: 7 },
    ]);
    expect(decoders.memRegion(Buffer.concat([u64s(0n), xen])).region).toMatchObject({ xenMmapFlags: 1, domid: 7 });
    expect(decoders.memRegion(Buffer.concat([u64s(0n), region(5n)])).region).not.toHaveProperty('domid');
  });

  it('reads the optional trailing fields from exactly their size', () => {
    expect(decoders.vringAddr(u32s(1, 2))).toMatchObject({ flags: 2, log: false });
    expect(decoders.vringAddr(u32s(1, 3))).toMatchObject({ flags: 3, log: true });
    const iotlb = Buffer.concat([u64s(1n, 2n, 3n), Buffer.from([6, 2])]);
    expect(decoders.iotlb(iotlb.subarray(0, 24))).toMatchObject({ perm: 0, type: 0 });
    expect(decoders.iotlb(iotlb.subarray(0, 25))).toMatchObject({ perm: 6, type: 0 });
    expect(decoders.iotlb(iotlb)).toMatchObject({ perm: 6, type: 2 });
    expect(decoders.mmapRequest(Buffer.alloc(0))).toMatchObject({ shmid: 0, writable: false });
    const map = Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), u64s(1n, 2n, 3n, 2n)]);
    expect(decoders.mmapRequest(map)).toEqual({ shmid: 4, fdOffset: 1n, shmOffset: 2n, len: 3n, flags: 2n, writable: false });
    map.writeBigUInt64LE(3n, 32);
    expect(decoders.mmapRequest(map)).toMatchObject({ flags: 3n, writable: true });
    expect(decoders.uuid(Buffer.from([1, 2]))).toEqual({ uuid: '01020000-0000-0000-0000-000000000000' });
  });

  it('lists at most 256 SHMEM regions, the non-empty ones, from whole slots', () => {
    // slot 256, past the 256 regions there are, holds a size too: it must not be listed
    const sizes = Array.from({ length: 257 }, (_, i) => BigInt(i % 3 === 2 ? 0 : i + 1));
    const cfg = decoders.shmemConfig(Buffer.concat([u32s(256, 0), u64s(...sizes)])) as { nregions: number; sizes: { shmid: number; size: bigint }[] };
    expect(cfg.nregions).toBe(256);
    expect(cfg.sizes.length).toBe(256 - 85); // slots 2, 5, ..., 254 are empty
    expect(cfg.sizes.at(-1)).toEqual({ shmid: 255, size: 256n });
    expect(cfg.sizes.slice(0, 3)).toEqual([
      { shmid: 0, size: 1n },
      { shmid: 1, size: 2n },
      { shmid: 3, size: 4n },
    ]);
    const cut = decoders.shmemConfig(Buffer.concat([u32s(2, 0), u64s(5n, 6n).subarray(0, 15)])) as { sizes: unknown[] };
    expect(cut.sizes).toEqual([{ shmid: 0, size: 5n }]);
  });

  it('gives the sizes a payload may have: by its own count for variable layouts, from the table otherwise', () => {
    expect(allowedSizes('memTable', u32s(2, 0))).toEqual([72, 88]);
    expect(allowedSizes('config', u32s(0, 4, 0))).toEqual([16]);
    expect(allowedSizes('u64', Buffer.alloc(0))).toEqual([8]);
    expect(allowedSizes('memRegion', Buffer.alloc(0))).toEqual([40, 48]);
    expect(allowedSizes('opaque', Buffer.alloc(3))).toBeUndefined();
  });
});
