/**
 * --rings keeps state per vring and per memory region a peer names: both are capped at what a
 * device can have, and what is beyond is told (and not kept), never an exception or a map
 * entry per u32.
 */
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { encodeMessage, MAX_RAM_SLOTS, MAX_VRINGS, Request } from '../../src/protocol';
import type { RelayHub } from '../../src/proxy/relay-hub';
import { RingTracker } from '../../src/proxy/ring-tracker';
import { openFds } from '../helpers';

function fakeHub(): RelayHub & { rings: number } {
  const hub = { rings: 0, allocRing: () => hub.rings++, setRing: () => {}, removeRing: () => {}, freeRing: () => {} };
  return hub as unknown as RelayHub & { rings: number };
}

const u32s = (...v: number[]): Buffer =>
  Buffer.concat(
    v.map((x) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(x);
      return b;
    }),
  );

describe('--rings caps', () => {
  it('a vring index beyond 1024 is told and not followed', () => {
    const hub = fakeHub();
    const problems: string[] = [];
    const t = new RingTracker(
      hub,
      'ring',
      () => {},
      (m) => problems.push(m),
    );
    t.beforeForward(Request.SET_VRING_NUM, encodeMessage(Request.SET_VRING_NUM, 1, u32s(3, 256)), []);
    for (let i = 0; i < 1000; i++) t.beforeForward(Request.SET_VRING_NUM, encodeMessage(Request.SET_VRING_NUM, 1, u32s(MAX_VRINGS + i, 256)), []);
    t.beforeForward(Request.SET_VRING_BASE, encodeMessage(Request.SET_VRING_BASE, 1, u32s(0xffffffff, 0)), []);
    expect(hub.rings).toBe(1); // vring 3 only
    expect(problems).toHaveLength(1001);
    expect(problems[0]).toBe(`--rings: vring ${MAX_VRINGS} is beyond the ${MAX_VRINGS} a virtio device can have; not followed`);
    t.close();
  });

  it(`ADD_MEM_REG beyond ${MAX_RAM_SLOTS} regions: the rest are told and not mapped (no fd kept for them)`, () => {
    const before = openFds();
    const problems: string[] = [];
    const t = new RingTracker(
      fakeHub(),
      'ring',
      () => {},
      (m) => problems.push(m),
    );
    for (let i = 0; i < MAX_RAM_SLOTS + 20; i++) {
      const fd = native.memfdCreate('region', 4096, true);
      const p = Buffer.alloc(40);
      p.writeBigUInt64LE(BigInt(i) * 4096n, 8); // guest address
      p.writeBigUInt64LE(4096n, 16); // size
      p.writeBigUInt64LE(0x7f0000000000n + BigInt(i) * 4096n, 24); // user address
      t.beforeForward(Request.ADD_MEM_REG, encodeMessage(Request.ADD_MEM_REG, 1, p), [fd]);
      native.close(fd); // (the forwarded copy: the tracker keeps its own dup)
    }
    expect(t.memory.regions).toBe(MAX_RAM_SLOTS);
    expect(openFds() - before).toBe(MAX_RAM_SLOTS);
    expect(problems).toHaveLength(20);
    expect(problems[0]).toMatch(
      new RegExp(
        `^--rings: more than ${MAX_RAM_SLOTS} memory regions \\(ADD_MEM_REG\\); the region at gpa 0x${(MAX_RAM_SLOTS * 4096).toString(16)} is not mapped`,
      ),
    );
    t.close();
    expect(openFds()).toBe(before);
  });
});

describe('--rings with GPA_ADDRESSES (2026): ring addresses are guest-physical', () => {
  const u64s = (...v: bigint[]): Buffer => Buffer.concat(v.map((x) => Buffer.from(new BigUint64Array([x]).buffer)));
  const GUEST = 0x1_0000_0000n; // guest-physical base of the one region
  const FRONTEND = 0x7f00_0000_0000n; // where the front-end mapped it
  function run(protocolFeatures: bigint, desc: bigint): { rings: bigint[][]; problems: string[] } {
    const rings: bigint[][] = [];
    const problems: string[] = [];
    const hub = { allocRing: () => 0, setRing: (_id: number, _m: unknown, d: bigint, a: bigint, u: bigint) => rings.push([d, a, u]), freeRing: () => {} };
    const t = new RingTracker(
      hub as unknown as RelayHub,
      'ring',
      () => {},
      (m) => problems.push(m),
    );
    t.beforeForward(Request.SET_PROTOCOL_FEATURES, encodeMessage(Request.SET_PROTOCOL_FEATURES, 1, u64s(protocolFeatures)), []);
    const table = Buffer.concat([u32s(1, 0), u64s(GUEST, 0x100000n, FRONTEND, 0n)]);
    t.beforeForward(Request.SET_MEM_TABLE, encodeMessage(Request.SET_MEM_TABLE, 1, table), [native.memfdCreate('guest', 0x100000, true)]);
    t.beforeForward(Request.SET_VRING_NUM, encodeMessage(Request.SET_VRING_NUM, 1, u32s(0, 256)), []);
    t.beforeForward(
      Request.SET_VRING_ADDR,
      encodeMessage(Request.SET_VRING_ADDR, 1, Buffer.concat([u32s(0, 0), u64s(desc, desc + 0x2000n, desc + 0x1000n, 0n)])),
      [],
    );
    t.close();
    return { rings, problems };
  }

  it('translates them through the regions to the addresses the relay reads by', () => {
    expect(run(1n << 21n, GUEST + 0x4000n)).toEqual({ rings: [[FRONTEND + 0x4000n, FRONTEND + 0x5000n, FRONTEND + 0x6000n]], problems: [] });
  });

  it('without the feature they are the front-end virtual addresses, as they came', () => {
    expect(run(0n, FRONTEND + 0x4000n).rings).toEqual([[FRONTEND + 0x4000n, FRONTEND + 0x5000n, FRONTEND + 0x6000n]]);
  });

  it('a guest-physical ring address in no region: told, and the ring not read', () => {
    const r = run(1n << 21n, 0x4000n);
    expect(r.rings).toEqual([]);
    expect(r.problems).toEqual(["--rings: the ring's desc at guest-physical 0x4000 (GPA_ADDRESSES) is in no memory region; this ring is not shown"]);
  });
});
