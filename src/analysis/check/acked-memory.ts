/**
 * Whether the driver uses memory before the back-end has mapped it (VU048, field case C12,
 * catalogue R32; needs --rings). SET_MEM_TABLE, ADD_MEM_REG and REM_MEM_REG change the memory
 * table; the back-end has taken a change in once it answers anything after it (the REPLY_ACK
 * ack, or any later reply: messages are served in order, which is why QEMU 28ed5ef16384 sent a
 * GET_FEATURES as a barrier before REPLY_ACK existed). A descriptor in a kick's snapshot that
 * lies in memory the pending change added, outside the acknowledged table, is a request the
 * back-end cannot serve yet: the race of C12.
 *
 * Only kicks while a change waits for its acknowledgement are judged, and only descriptors in
 * the new table: the relay reads a ring while the driver writes it, so a snapshot can hold a
 * descriptor the driver had not finished or had already reused (any address at all; the
 * snapshot's own "outside every memory region" is routine for the same reason). Not with
 * ACCESS_PLATFORM either (descriptors hold IOVAs, translated through the IOTLB).
 */
import { hasBit, regionHolds, Request, VirtioFeature, type MemoryRegion } from '../../protocol';
import type { MessageEvent, RingEvent } from '../../events/events';
import { RULES } from '../rules';
import type { CheckFinding, SessionState } from './state';

const TABLE_CHANGES = new Set<number>([Request.SET_MEM_TABLE, Request.ADD_MEM_REG, Request.REM_MEM_REG]);

const inside = (regions: readonly MemoryRegion[], addr: bigint, len: bigint): boolean => regions.some((r) => regionHolds(r, addr, len));

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

/** A kick's snapshot: the first descriptor per vring in memory only the pending change has, told once per table change. */
export function outsideAckedMemory(s: SessionState, e: RingEvent): CheckFinding[] {
  const snap = e.snapshot;
  const change = s.tableChange;
  if (snap.kind !== 'kick' || !change || !s.ackedRegions || s.reportedOutsideAcked.has(e.vring)) return [];
  if (hasBit(s.negotiation.ackedFeatures, VirtioFeature.ACCESS_PLATFORM)) return [];
  const acked = s.ackedRegions;
  for (const entry of snap.entries)
    for (const desc of entry.descs) {
      const len = BigInt(Math.max(desc.len, 1));
      if (inside(acked, desc.addr, len) || !inside(s.regions, desc.addr, len)) continue;
      s.reportedOutsideAcked.add(e.vring);
      const where = `gpa 0x${desc.addr.toString(16)}+0x${desc.len.toString(16)} (chain ${entry.head})`;
      const age = (Number(e.ts - change.ts) / 1e6).toFixed(0);
      return [
        {
          rule: RULES.descriptorOutsideAckedMemory,
          session: e.session,
          ts: e.ts,
          at: `kick vring ${e.vring}`,
          detail: `vring ${e.vring}: a descriptor at ${where} is in memory ${change.name} added ${age} ms before, which the back-end has not acknowledged yet`,
        },
      ];
    }
  return [];
}
