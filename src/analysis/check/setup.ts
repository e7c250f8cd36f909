/**
 * Rules on how the front-end sets the device up: features acked that were never offered, memory
 * tables and their slots, ring layouts and addresses, enables, inflight, the config space. Runs
 * on main-channel requests the back-end received (and GET_CONFIG's reply), before the
 * negotiation takes them in.
 */
import { HEADER_SIZE, hasBit, ProtocolFeature, regionHolds, Request, VirtioFeature, type MemoryRegion } from '../../protocol';
import type { FdDescription, MessageEvent } from '../../events/events';
import { RULES } from '../rules';
import type { AddFinding, SessionState } from './state';

const within = (a: bigint, aSize: bigint, b: bigint, bSize: bigint): boolean => a < b + bSize && b < a + aSize;

/** Two regions overlap in guest-physical or in front-end address space. */
const overlap = (x: MemoryRegion, r: MemoryRegion): boolean =>
  within(x.guestPhysAddr, x.memorySize, r.guestPhysAddr, r.memorySize) || within(x.userspaceAddr, x.memorySize, r.userspaceAddr, r.memorySize);

const regionText = (r: MemoryRegion): string =>
  `gpa 0x${r.guestPhysAddr.toString(16)}+0x${r.memorySize.toString(16)} (uaddr 0x${r.userspaceAddr.toString(16)})`;

/**
 * fd kinds no back-end can mmap; anything else may be (a memfd, a file, hugetlbfs, a DAX device
 * among "other"). A recording may say any kind: only these words reach a finding.
 */
const UNMAPPABLE = new Set<FdDescription['kind']>(['eventfd', 'socket', 'pipe']);
/** fd kinds whose size /proc reports as the file's */
const SIZED = new Set<FdDescription['kind']>(['memfd', 'hugetlbfs', 'file']);

/** Why the back-end cannot map region `r` from `fd`, if it cannot (a size of 0 is one /proc could not tell). */
function unmappable(r: MemoryRegion, fd: FdDescription | undefined): string | undefined {
  if (!fd) return undefined;
  if (UNMAPPABLE.has(fd.kind)) return `${regionText(r)} comes with ${fd.kind === 'eventfd' ? 'an' : 'a'} ${fd.kind}, which cannot be mapped`;
  const end = r.mmapOffset + r.memorySize;
  if (SIZED.has(fd.kind) && fd.size && BigInt(fd.size) < end)
    return `${regionText(r)} needs its ${fd.kind} up to byte 0x${end.toString(16)} (mmap_offset 0x${r.mmapOffset.toString(16)}), the file has 0x${fd.size.toString(16)}`;
  return undefined;
}

const POSTCOPY = new Set([Request.POSTCOPY_ADVISE, Request.POSTCOPY_LISTEN, Request.POSTCOPY_END]);

/** GET_CONFIG: the back-end answers with the bytes asked for, or (libvhost-user) a zero-size refusal that QEMU cannot take. */
function configRules(s: SessionState, e: MessageEvent, add: AddFinding): void {
  const d = e.decoded;
  const p = d.payload as { offset?: number; size?: number };
  if (!d.reply) {
    s.configAsked = p.size !== undefined ? { offset: p.offset ?? 0, size: p.size } : undefined;
    return;
  }
  const asked = s.configAsked;
  s.configAsked = undefined;
  if (!asked) return;
  const what = `GET_CONFIG for ${asked.size} bytes at offset ${asked.offset}`;
  if (p.size === undefined) add(RULES.configRefused, `${what} answered with a ${e.raw.length - HEADER_SIZE}-byte payload: the back-end refused it`);
  else if (p.size !== asked.size) add(RULES.configRefused, `${what} answered with ${p.size} bytes`);
}

export function setupRules(s: SessionState, e: MessageEvent, add: AddFinding): void {
  const d = e.decoded;
  if (d.request === Request.GET_CONFIG && e.sender === (d.reply ? 'backend' : 'frontend')) configRules(s, e, add);
  if (d.reply || e.sender !== 'frontend') return;
  const p = d.payload as Record<string, never>;
  if (POSTCOPY.has(d.request) && hasBit(s.negotiation.protocolFeatures, ProtocolFeature.CONFIGURE_MEM_SLOTS))
    add(RULES.postcopyWithMemSlots, `${d.name} with CONFIGURE_MEM_SLOTS negotiated`);
  switch (d.request) {
    case Request.SET_FEATURES: {
      const extra = s.offered !== undefined ? (p.features as bigint) & ~s.offered : 0n;
      if (extra) add(RULES.featureNotOffered, `SET_FEATURES acks 0x${extra.toString(16)} that GET_FEATURES never offered`);
      break;
    }
    case Request.SET_PROTOCOL_FEATURES: {
      const extra = s.offeredProtocol !== undefined ? (p.protocolFeatures as bigint) & ~s.offeredProtocol : 0n;
      if (extra) add(RULES.featureNotOffered, `SET_PROTOCOL_FEATURES sets 0x${extra.toString(16)} that GET_PROTOCOL_FEATURES never offered`);
      break;
    }
    case Request.SET_MEM_TABLE: {
      s.regions = (p.regions as MemoryRegion[]) ?? [];
      s.haveMemTable = true;
      for (const [i, r] of s.regions.entries()) {
        const o = s.regions.slice(0, i).find((x) => overlap(x, r));
        if (o) add(RULES.regionsOverlap, `${regionText(r)} overlaps ${regionText(o)}`);
        const why = unmappable(r, e.fds[i]);
        if (why) add(RULES.regionFdUnmappable, `SET_MEM_TABLE region ${i}: ${why}`);
      }
      const limit = s.maxSlots !== undefined ? Math.min(s.maxSlots, 8) : 8;
      if ((p.nregions as number) > limit) add(RULES.tooManyRegions, `SET_MEM_TABLE with ${p.nregions} regions, at most ${limit}`);
      break;
    }
    case Request.ADD_MEM_REG: {
      const r = p.region as MemoryRegion;
      const o = s.regions.find((x) => overlap(x, r));
      if (o) add(RULES.regionsOverlap, `ADD_MEM_REG ${regionText(r)} overlaps ${regionText(o)}, not removed first`);
      const why = unmappable(r, e.fds[0]);
      if (why) add(RULES.regionFdUnmappable, `ADD_MEM_REG: ${why}`);
      s.regions.push(r);
      s.haveMemTable = true;
      if (s.maxSlots !== undefined && s.regions.length > s.maxSlots)
        add(RULES.tooManyRegions, `${s.regions.length} regions after ADD_MEM_REG, GET_MAX_MEM_SLOTS said ${s.maxSlots}`);
      break;
    }
    case Request.REM_MEM_REG: {
      const r = p.region as MemoryRegion;
      s.regions = s.regions.filter((x) => !(x.guestPhysAddr === r.guestPhysAddr && x.memorySize === r.memorySize && x.userspaceAddr === r.userspaceAddr));
      break;
    }
    case Request.SET_VRING_NUM:
      s.vringNum.set(p.index as number, p.num as number);
      break;
    case Request.SET_VRING_BASE: {
      s.sawVringBase = true;
      const packed = hasBit(s.negotiation.ackedFeatures, VirtioFeature.RING_PACKED);
      if (!packed && ((p.num as number) & 0xffff0000) !== 0)
        add(RULES.packedLayoutMismatch, `split ring but SET_VRING_BASE num 0x${(p.num as number).toString(16)} uses the packed encoding (bits 16-31)`);
      break;
    }
    case Request.SET_VRING_ADDR: {
      if (!s.haveMemTable) add(RULES.ringBeforeMemTable, `vring ${p.index} addresses set before any memory table`);
      // IOVAs (ACCESS_PLATFORM) go through the IOTLB; with GPA_ADDRESSES they are guest-physical
      const iova = hasBit(s.negotiation.ackedFeatures, VirtioFeature.ACCESS_PLATFORM);
      const gpa = hasBit(s.negotiation.protocolFeatures, ProtocolFeature.GPA_ADDRESSES);
      if (s.haveMemTable && !iova) {
        const inSpace = (a: bigint, space: 'gpa' | 'uaddr'): boolean => s.regions.some((r) => regionHolds(r, a, 1n, space));
        const inside = (a: bigint): boolean => inSpace(a, gpa ? 'gpa' : 'uaddr');
        const rings = (['desc', 'used', 'avail'] as const).map((k) => [k, p[k] as bigint] as const);
        // bit 21 acked, but every address is the front-end's own: it does not number bit 21 as the spec does
        if (gpa && rings.some(([, a]) => !inside(a)) && rings.every(([, a]) => inSpace(a, 'uaddr')))
          add(
            RULES.gpaAddressesIgnored,
            `vring ${p.index}: protocol feature 21 (GPA_ADDRESSES) is negotiated, but desc=0x${(p.desc as bigint).toString(16)} and the other ring addresses are the front-end's own (in the regions' userspace range)`,
          );
        else for (const [k, a] of rings) if (!inside(a)) add(RULES.ringOutsideRegions, `vring ${p.index} ${k}=0x${a.toString(16)} is in no memory region`);
      }
      const q = s.vringNum.get(p.index as number);
      const packed = hasBit(s.negotiation.ackedFeatures, VirtioFeature.RING_PACKED);
      if (
        packed &&
        q !== undefined &&
        (p.avail as bigint) === (p.desc as bigint) + BigInt(16 * q) &&
        (p.used as bigint) - (p.avail as bigint) >= BigInt(6 + 2 * q)
      )
        add(
          RULES.packedLayoutMismatch,
          `RING_PACKED negotiated but vring ${p.index} is laid out as a split ring (avail ring after the descriptors, used ring after it)`,
        );
      break;
    }
    case Request.SET_VRING_ENABLE:
      if ((p.num as number) === 1) s.enabled.add(p.index as number);
      else s.enabled.delete(p.index as number);
      break;
    case Request.SET_INFLIGHT_FD:
      if (!s.sawVringBase) add(RULES.inflightBeforeVringBase, 'SET_INFLIGHT_FD before any SET_VRING_BASE');
      break;
  }
}
