/**
 * Whether the driver's buffers lie in memory the back-end has mapped (VU048, field case C12,
 * catalogue R32; needs --rings). SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG change the memory
 * table; the back-end has taken a change in once it answers anything after it (the REPLY_ACK
 * ack, or any later reply: messages are served in order, which is why QEMU 28ed5ef16384 sent a
 * GET_FEATURES as a barrier before REPLY_ACK existed). A descriptor in a kick's snapshot outside
 * that acknowledged table is a request the back-end cannot serve yet: either memory the table
 * just added (the race of C12) or memory no table has.
 *
 * Only kicks are judged (a call's chains were completed, and a fast driver may already have
 * reused their descriptors), only once a first table was acknowledged (before it, VU008 tells a
 * kick), and not with ACCESS_PLATFORM (descriptors hold IOVAs, translated through the IOTLB).
 */
import { hasBit, Request, VirtioFeature, type MemoryRegion } from '../../protocol';
import type { MessageEvent, RingEvent } from '../../events/events';
import { RULES } from '../rules';
import type { CheckFinding, SessionState } from './state';

const TABLE_CHANGES = new Set<number>([Request.SET_MEM_TABLE, Request.ADD_MEM_REG, Request.REM_MEM_REG]);

const inside = (regions: readonly MemoryRegion[], addr: bigint, len: bigint): boolean =>
  regions.some((r) => addr >= r.guestPhysAddr && addr + len <= r.guestPhysAddr + r.memorySize);

/** After a main-channel message (the checker has applied it to s.regions): a table change waits for its ack; a reply acks. */
export function trackAckedMemory(s: SessionState, e: MessageEvent): void {
  const d = e.decoded;
  if (!d.reply && e.sender === 'frontend' && TABLE_CHANGES.has(d.request)) {
    s.tableChange ??= { name: d.name, ts: e.ts };
    s.reportedOutsideAcked.clear();
  } else if (d.reply && e.sender === 'backend' && s.tableChange) {
    s.ackedRegions = s.regions.slice();
    s.tableChange = undefined;
  }
}

/** A kick's snapshot: the first descriptor per vring outside the acknowledged table, told once per table change. */
export function outsideAckedMemory(s: SessionState, e: RingEvent): CheckFinding[] {
  const snap = e.snapshot;
  if (snap.kind !== 'kick' || !s.ackedRegions || s.reportedOutsideAcked.has(e.vring)) return [];
  if (hasBit(s.negotiation.ackedFeatures, VirtioFeature.ACCESS_PLATFORM)) return [];
  const acked = s.ackedRegions;
  for (const entry of snap.entries)
    for (const desc of entry.descs) {
      const len = BigInt(Math.max(desc.len, 1));
      if (inside(acked, desc.addr, len)) continue;
      s.reportedOutsideAcked.add(e.vring);
      const where = `gpa 0x${desc.addr.toString(16)}+0x${desc.len.toString(16)} (chain ${entry.head})`;
      const why =
        s.tableChange && inside(s.regions, desc.addr, len)
          ? `is in memory ${s.tableChange.name} added ${(Number(e.ts - s.tableChange.ts) / 1e6).toFixed(0)} ms before, which the back-end has not acknowledged yet`
          : 'is in no memory region the back-end was given';
      return [
        {
          rule: RULES.descriptorOutsideAckedMemory,
          session: e.session,
          ts: e.ts,
          at: `kick vring ${e.vring}`,
          detail: `vring ${e.vring}: a descriptor at ${where} ${why}`,
        },
      ];
    }
  return [];
}
