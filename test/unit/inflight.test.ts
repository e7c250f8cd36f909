/**
 * The inflight region's split layout (src/rings/inflight.ts), built byte by byte as libvhost-user
 * and DPDK lay it out: each queue at mmap_size / num_queues, a 16-byte header, 16 bytes per
 * descriptor; the heads in flight in the order the back-end took them; what makes a region one a
 * restarted back-end cannot trust.
 */
import { describe, expect, it } from 'vitest';
import { INFLIGHT_DESC, INFLIGHT_QUEUE_HEADER, inflightProblems, inflightText, MAX_LISTED_HEADS, readInflightSplit } from '../../src/rings/inflight';

/** DPDK's per-queue size for a split ring: align64(16 x queue_size + 16) */
const stride = (queueSize: number): number => Math.ceil((INFLIGHT_DESC * queueSize + INFLIGHT_QUEUE_HEADER) / 64) * 64;

function region(queueSize: number, queues: { version: number; descNum: number; usedIdx?: number; taken?: [head: number, counter: number][] }[]): Buffer {
  const s = stride(queueSize);
  const b = Buffer.alloc(s * queues.length);
  queues.forEach((q, i) => {
    const base = i * s;
    b.writeBigUInt64LE(0x1234n, base);
    b.writeUInt16LE(q.version, base + 8);
    b.writeUInt16LE(q.descNum, base + 10);
    b.writeUInt16LE(7, base + 12);
    b.writeUInt16LE(q.usedIdx ?? 0, base + 14);
    for (const [head, counter] of q.taken ?? []) {
      const at = base + INFLIGHT_QUEUE_HEADER + head * INFLIGHT_DESC;
      b[at] = 1;
      b.writeUInt16LE(head + 1, at + 6);
      b.writeBigUInt64LE(BigInt(counter), at + 8);
    }
  });
  return b;
}

describe('inflight region', () => {
  it('reads each queue at its stride: header fields, and the heads in flight in the order they were taken', () => {
    const r = region(128, [
      {
        version: 1,
        descNum: 128,
        usedIdx: 40,
        taken: [
          [9, 3],
          [5, 1],
          [127, 2],
        ],
      },
      { version: 0, descNum: 0 },
    ]);
    expect(stride(128)).toBe(2112);
    expect(readInflightSplit(r, 2, 128)).toEqual([
      { vring: 0, features: 0x1234n, version: 1, descNum: 128, lastBatchHead: 7, usedIdx: 40, inflight: [5, 127, 9], inflightCount: 3 },
      { vring: 1, features: 0x1234n, version: 0, descNum: 0, lastBatchHead: 7, usedIdx: 0, inflight: [], inflightCount: 0 },
    ]);
  });

  it('never reads a descriptor past the queue size or the queue part of the buffer', () => {
    const r = region(8, [{ version: 1, descNum: 8, taken: [[7, 1]] }]);
    // a mark right after the 8 descriptors (the alignment padding) is not a descriptor
    r[INFLIGHT_QUEUE_HEADER + 8 * INFLIGHT_DESC] = 1;
    expect(readInflightSplit(r, 1, 8)[0]!.inflight).toEqual([7]);
    expect(readInflightSplit(r, 1, 4)[0]!.inflightCount).toBe(0); // a smaller queue: head 7 is beyond it
    expect(readInflightSplit(r.subarray(0, INFLIGHT_QUEUE_HEADER + 4 * INFLIGHT_DESC), 1, 8)[0]!.inflightCount).toBe(0); // cut short
    expect(readInflightSplit(Buffer.alloc(10), 1, 8)).toEqual([]);
    expect(readInflightSplit(r, 0, 8)).toEqual([]);
  });

  it('lists at most 64 heads, with the whole count', () => {
    const taken = Array.from({ length: 100 }, (_, i): [number, number] => [i, 100 - i]);
    const [q] = readInflightSplit(region(128, [{ version: 1, descNum: 128, taken }]), 1, 128);
    expect(q!.inflightCount).toBe(100);
    expect(q!.inflight).toHaveLength(MAX_LISTED_HEADS);
    expect(q!.inflight.slice(0, 3)).toEqual([99, 98, 97]);
    expect(inflightText([q!])[0]).toMatch(/^vring 0: version 1, desc_num 128, 100 in flight \(heads 99, 98, .*, 36, \.\.\.\), used_idx 0$/);
  });

  it('a region no back-end wrote is fine; another version, another size or marks in a fresh region are not', () => {
    const q = (version: number, descNum: number, inflightCount = 0) => ({
      vring: 0,
      features: 0n,
      version,
      descNum,
      lastBatchHead: 0,
      usedIdx: 0,
      inflight: [],
      inflightCount,
    });
    expect(inflightProblems(q(0, 0), 128)).toEqual([]);
    expect(inflightProblems(q(1, 128, 5), 128)).toEqual([]);
    expect(inflightProblems(q(2, 128), 128)).toEqual(['vring 0: version 2, not 1']);
    expect(inflightProblems(q(1, 256), 128)).toEqual(['vring 0: desc_num 256, but the queues have 128 descriptors']);
    expect(inflightProblems(q(0, 0, 1), 128)).toEqual(['vring 0: 1 descriptor(s) marked in flight in a region no back-end set up (version 0)']);
    expect(inflightText([q(1, 128)])).toEqual(['vring 0: version 1, desc_num 128, 0 in flight, used_idx 0']);
  });
});
