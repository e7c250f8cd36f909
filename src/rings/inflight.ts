/**
 * The inflight region (INFLIGHT_SHMFD): shared memory in which a back-end marks each request it
 * took from a split ring until it completes, so that a back-end restarted after a crash can
 * resubmit what was in flight (QEMU keeps the region across the reconnect and hands it to the new
 * back-end with SET_INFLIGHT_FD). One region per queue, each `mmap_size / num_queues` bytes:
 *
 *     u64 features; u16 version; u16 desc_num; u16 last_batch_head; u16 used_idx;
 *     then desc_num entries of { u8 inflight; u8 padding[5]; u16 next; u64 counter }
 *
 * (libvhost-user's VuVirtqInflight, DPDK's rte_vhost_inflight_info_split). A back-end sets
 * version 1 and desc_num when it first uses the queue; a fresh region is zero. `counter` orders
 * the requests as the back-end took them, which is the order they are resubmitted in.
 */

/** the queue header before the descriptor states */
export const INFLIGHT_QUEUE_HEADER = 16;
/** one descriptor's state */
export const INFLIGHT_DESC = 16;
/** the version every implementation writes */
export const INFLIGHT_VERSION = 1;
/** heads listed per queue at most (the count is always whole) */
export const MAX_LISTED_HEADS = 64;

export interface InflightQueue {
  vring: number;
  features: bigint;
  version: number;
  descNum: number;
  lastBatchHead: number;
  usedIdx: number;
  /** descriptor heads marked in flight, in the order the back-end took them (at most MAX_LISTED_HEADS) */
  inflight: number[];
  inflightCount: number;
}

/**
 * The split-ring queues of a region of `numQueues` queues of `queueSize` descriptors. A queue
 * whose part of the buffer is too short for its descriptors is read as far as it goes.
 */
export function readInflightSplit(region: Buffer, numQueues: number, queueSize: number): InflightQueue[] {
  if (numQueues <= 0) return [];
  const stride = Math.floor(region.length / numQueues);
  const out: InflightQueue[] = [];
  for (let q = 0; q < numQueues; q++) {
    const base = q * stride;
    if (stride < INFLIGHT_QUEUE_HEADER) break;
    const taken: { head: number; counter: bigint }[] = [];
    const descs = Math.min(queueSize, Math.floor((stride - INFLIGHT_QUEUE_HEADER) / INFLIGHT_DESC));
    for (let i = 0; i < descs; i++) {
      const at = base + INFLIGHT_QUEUE_HEADER + i * INFLIGHT_DESC;
      if (region[at] === 1) taken.push({ head: i, counter: region.readBigUInt64LE(at + 8) });
    }
    taken.sort((a, b) => (a.counter < b.counter ? -1 : a.counter > b.counter ? 1 : a.head - b.head));
    out.push({
      vring: q,
      features: region.readBigUInt64LE(base),
      version: region.readUInt16LE(base + 8),
      descNum: region.readUInt16LE(base + 10),
      lastBatchHead: region.readUInt16LE(base + 12),
      usedIdx: region.readUInt16LE(base + 14),
      inflight: taken.slice(0, MAX_LISTED_HEADS).map((t) => t.head),
      inflightCount: taken.length,
    });
  }
  return out;
}

/** What makes a queue's region one a restarted back-end cannot trust (catalogue R52). */
export function inflightProblems(q: InflightQueue, queueSize: number): string[] {
  const out: string[] = [];
  if (q.version !== 0 && q.version !== INFLIGHT_VERSION) out.push(`vring ${q.vring}: version ${q.version}, not ${INFLIGHT_VERSION}`);
  if (q.descNum !== 0 && q.descNum !== queueSize) out.push(`vring ${q.vring}: desc_num ${q.descNum}, but the queues have ${queueSize} descriptors`);
  if (q.version === 0 && q.inflightCount > 0)
    out.push(`vring ${q.vring}: ${q.inflightCount} descriptor(s) marked in flight in a region no back-end set up (version 0)`);
  return out;
}

/** One line per queue: "vring 0: version 1, 3 in flight (heads 5, 9, 12), used_idx 40". */
export function inflightText(queues: readonly InflightQueue[]): string[] {
  return queues.map((q) => {
    const heads = q.inflightCount ? ` (heads ${q.inflight.join(', ')}${q.inflightCount > q.inflight.length ? ', ...' : ''})` : '';
    return `vring ${q.vring}: version ${q.version}, desc_num ${q.descNum}, ${q.inflightCount} in flight${heads}, used_idx ${q.usedIdx}`;
  });
}
