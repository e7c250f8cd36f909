/** Ring snapshots as text and as JSON-safe records (the log, show, the report). */
import type { DeviceType } from '../protocol';
import { decodeBuffer } from './headers';
import type { RingEntry, RingSnapshot } from './snapshot';

const flagNames = (f: number, packed: boolean): string =>
  [f & 1 ? 'N' : '', f & 2 ? 'W' : 'R', f & 4 ? 'I' : '', packed ? `${f & 0x80 ? 'A' : 'a'}${f & 0x8000 ? 'U' : 'u'}` : ''].join('');

/** "head 3: 0x1102d5000+98 R | IPv4 169.254.77.2 > 169.254.77.1 ICMP echo request id 1 seq 2" */
export function entryLine(e: RingEntry, s: RingSnapshot, device: DeviceType, vring: number): string {
  const descs = e.descs.map((d) => `0x${d.addr.toString(16)}+${d.len} ${flagNames(d.flags, s.packed)}`).join(', ');
  const hdr = decodeBuffer(e, { device, vring, kind: s.kind });
  const used = e.usedLen !== undefined ? ` used ${e.usedLen}` : '';
  return `${s.packed ? 'id' : 'head'} ${e.head}${used}: ${descs}${hdr ? ` | ${hdr.summary}` : ''}`;
}

export function indicesText(s: RingSnapshot): string {
  if (!s.packed) return `avail idx ${s.availIdx} used idx ${s.usedIdx}`;
  // packed rings have no index fields: these are the positions the proxy has read up to
  const pos = (v: number): string => `${v & 0x7fff} (wrap ${v >> 15})`;
  return `read up to: available ${pos(s.availIdx)}, used ${pos(s.usedIdx)}`;
}

/** JSON-safe fields of a ring event's snapshot. */
export function ringRecord(s: RingSnapshot, device: DeviceType, vring: number): Record<string, unknown> {
  return {
    kind: s.kind,
    packed: s.packed,
    availIdx: s.availIdx,
    usedIdx: s.usedIdx,
    ...(s.error ? { error: s.error } : {}),
    ...(s.truncated ? { truncated: true } : {}),
    chains: s.entries.map((e) => entryLine(e, s, device, vring)),
  };
}
