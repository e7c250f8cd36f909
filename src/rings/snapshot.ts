/**
 * Vring snapshots as the native relay writes them (native/rings.cc), decoded. All little-endian:
 *
 *   record  u32 length (whole record) | u64 ts | u32 pair | u32 ring | u8 kind (0 kick, 1 call, 2 base)
 *           | u8 flags (1 packed, 2 error, 4 truncated) | u16 entries | u16 availIdx | u16 usedIdx
 *           | u16 error | u16 readUs | entries...
 *   entry   u16 head (split: descriptor index; packed: buffer id) | u16 descriptors | u32 usedLen | descriptors...
 *   desc    u64 addr | u32 len | u16 flags | u16 next (packed: id) | u16 captured | captured bytes
 *
 * Split rings: availIdx/usedIdx are the rings' idx fields. Packed rings: the driver's and the
 * device's next positions with their wrap counters in bit 15. Entries are the chains made
 * available since the last kick (kick) or used since the last call (call); "base" has none.
 */

export type SnapshotKind = 'kick' | 'call' | 'base';

/** virtq descriptor flag: the device writes this buffer (virtio spec "The Virtqueue Descriptor Table") */
export const VRING_DESC_F_WRITE = 2;

export interface RingDesc {
  addr: bigint;
  len: number;
  flags: number;
  /** split: next descriptor; packed: buffer id */
  next: number;
  /** the first bytes of the buffer (--rings=headers) */
  bytes?: Buffer;
}

export interface RingEntry {
  head: number;
  /** calls: the length the device reported as written */
  usedLen?: number;
  descs: RingDesc[];
}

export interface RingSnapshot {
  ts: bigint;
  pair: number;
  ring: number;
  kind: SnapshotKind;
  packed: boolean;
  /** more chains or descriptors than a snapshot holds (64 chains, 128 descriptors per chain) */
  truncated: boolean;
  error?: string;
  availIdx: number;
  usedIdx: number;
  /** the ring was read within this many µs after ts (0: not known, recordings before it was kept) */
  readUs: number;
  entries: RingEntry[];
}

const KINDS: SnapshotKind[] = ['kick', 'call', 'base'];
const ERRORS: Record<number, string> = {
  1: 'a ring address is in no memory region',
  2: 'a memory region is larger than its file now (the file shrank): not read',
  3: 'a descriptor points outside every memory region',
  4: 'a descriptor chain loops or runs past the ring',
};

/**
 * Errors met while following a descriptor chain, after the ring's indices and the entry's head
 * were read: the snapshot's indices and heads still hold. A completed chain's descriptors can be
 * gone by the time the call is read (the driver frees an indirect table as soon as it sees the
 * used element), so these are routine for a fast driver, not a broken ring.
 */
const CHAIN_ERRORS = new Set([ERRORS[3], ERRORS[4]]);

/** True when the snapshot's indices and entry heads can be trusted (no error, or one inside a chain). */
export function indicesRead(s: Pick<RingSnapshot, 'error'>): boolean {
  return s.error === undefined || CHAIN_ERRORS.has(s.error);
}

export const SNAPSHOT_HEADER = 32;

/** Decodes one record at `off`; returns it and the offset after it. Throws on a malformed record. */
export function decodeSnapshot(buf: Buffer, off = 0): { snapshot: RingSnapshot; next: number } {
  if (off + SNAPSHOT_HEADER > buf.length) throw new Error('ring snapshot: truncated header');
  const len = buf.readUInt32LE(off);
  const end = off + len;
  if (len < SNAPSHOT_HEADER || end > buf.length) throw new Error(`ring snapshot: length ${len} does not fit`);
  const kind = KINDS[buf.readUInt8(off + 20)];
  if (!kind) throw new Error(`ring snapshot: unknown kind ${buf.readUInt8(off + 20)}`);
  const flags = buf.readUInt8(off + 21);
  const n = buf.readUInt16LE(off + 22);
  const err = buf.readUInt16LE(off + 28);
  const s: RingSnapshot = {
    ts: buf.readBigUInt64LE(off + 4),
    pair: buf.readUInt32LE(off + 12),
    ring: buf.readUInt32LE(off + 16),
    kind,
    packed: (flags & 1) !== 0,
    truncated: (flags & 4) !== 0,
    ...(flags & 2 ? { error: ERRORS[err] ?? `error ${err}` } : {}),
    availIdx: buf.readUInt16LE(off + 24),
    usedIdx: buf.readUInt16LE(off + 26),
    readUs: buf.readUInt16LE(off + 30),
    entries: [],
  };
  let p = off + SNAPSHOT_HEADER;
  const need = (k: number): void => {
    if (p + k > end) throw new Error('ring snapshot: entry runs past the record');
  };
  for (let i = 0; i < n; i++) {
    need(8);
    const head = buf.readUInt16LE(p);
    const nd = buf.readUInt16LE(p + 2);
    const usedLen = buf.readUInt32LE(p + 4);
    p += 8;
    const entry: RingEntry = { head, ...(kind === 'call' ? { usedLen } : {}), descs: [] };
    for (let d = 0; d < nd; d++) {
      need(18);
      const desc: RingDesc = { addr: buf.readBigUInt64LE(p), len: buf.readUInt32LE(p + 8), flags: buf.readUInt16LE(p + 12), next: buf.readUInt16LE(p + 14) };
      const cap = buf.readUInt16LE(p + 16);
      p += 18;
      need(cap);
      if (cap) desc.bytes = Buffer.from(buf.subarray(p, p + cap));
      p += cap;
      entry.descs.push(desc);
    }
    s.entries.push(entry);
  }
  return { snapshot: s, next: end };
}

export function decodeSnapshots(buf: Buffer): { raw: Buffer; snapshot: RingSnapshot }[] {
  const out: { raw: Buffer; snapshot: RingSnapshot }[] = [];
  for (let off = 0; off < buf.length; ) {
    const { snapshot, next } = decodeSnapshot(buf, off);
    out.push({ raw: buf.subarray(off, next), snapshot });
    off = next;
  }
  return out;
}

/** The bytes a chain's buffers start with, as far as they were captured contiguously. */
export function chainBytes(e: RingEntry, writable?: boolean): Buffer {
  const parts: Buffer[] = [];
  for (const d of e.descs) {
    if (writable !== undefined && ((d.flags & VRING_DESC_F_WRITE) !== 0) !== writable) continue;
    if (!d.bytes) break;
    parts.push(d.bytes);
    if (d.bytes.length < d.len) break; // captured only a prefix: what follows is not contiguous
  }
  return Buffer.concat(parts);
}
