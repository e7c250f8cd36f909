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
