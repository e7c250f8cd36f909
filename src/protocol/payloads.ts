/**
 * Payload layouts (reference §4) and their decoders. Pure functions over bytes; all integers
 * little-endian (the byte order of every known deployment, and what the header uses here).
 * A decoder never throws on short input: the validator reports sizes, decoders decode what is there.
 */
import { expectedUpdateSize, GPU_PAYLOAD_SIZES, gpuDecoders, type GpuPayloadKind } from './gpu-payloads';

export const NOFD_MASK = 0x100;
export const VRING_IDX_MASK = 0xff;
/**
 * Vrings a device can have (QEMU's VIRTIO_QUEUE_MAX). SET_VRING_NUM/BASE/ADDR carry a u32
 * index: what is kept per vring is kept for these only.
 */
export const MAX_VRINGS = 1024;
/** Memory regions one session can add with ADD_MEM_REG (QEMU's VHOST_USER_MAX_RAM_SLOTS). */
export const MAX_RAM_SLOTS = 512;
/**
 * The u64 answer to SET_DEVICE_STATE_FD and CHECK_DEVICE_STATE (vhost-user.rst): bits 0-7 are 0 on
 * success; for SET_DEVICE_STATE_FD, NOFD_MASK says the back-end returned no fd of its own and uses
 * the front-end's pipe. "ok" or "error N".
 */
export function deviceStateResult(v: bigint): string {
  const err = v & 0xffn;
  return err === 0n ? 'ok' : `error ${err}`;
}

export const MAX_MEM_REGIONS = 8; // VHOST_MEMORY_BASELINE_NREGIONS (QEMU, libvhost-user, DPDK)

export type PayloadKind =
  | 'none'
  | 'u64'
  | 'ack'
  | 'features'
  | 'protocolFeatures'
  | 'status'
  | 'mac'
  | 'vringState'
  | 'vringFd'
  | 'vringAddr'
  | 'memTable'
  | 'memRegion'
  | 'log'
  | 'inflight'
  | 'config'
  | 'iotlb'
  | 'cryptoSession'
  | 'deviceState'
  | 'uuid'
  | 'shmemConfig'
  | 'mmapRequest'
  | 'vringArea'
  | GpuPayloadKind
  | 'opaque';

/** Sizes a payload of a kind may have; `undefined` for kinds whose size is computed from the payload. */
export const PAYLOAD_SIZES: Record<PayloadKind, readonly number[] | undefined> = {
  none: [0],
  u64: [8],
  ack: [8],
  features: [8],
  protocolFeatures: [8],
  status: [8],
  mac: [8],
  vringState: [8],
  vringFd: [8],
  vringAddr: [40],
  memTable: undefined,
  memRegion: [40, 48],
  log: [16, 8],
  inflight: [24],
  config: undefined,
  iotlb: [32],
  cryptoSession: undefined,
  deviceState: [8],
  uuid: [16],
  shmemConfig: [2056],
  mmapRequest: [40],
  vringArea: [24],
  ...GPU_PAYLOAD_SIZES,
  opaque: undefined,
};

export interface MemoryRegion {
  guestPhysAddr: bigint;
  memorySize: bigint;
  userspaceAddr: bigint;
  mmapOffset: bigint;
  /** with XEN_MMAP only */
  xenMmapFlags?: number;
  domid?: number;
}

/** Whether [addr, addr + len) lies in region `r`: in guest-physical addresses, or in the front-end's own ('uaddr'). */
export function regionHolds(r: MemoryRegion, addr: bigint, len = 1n, space: 'gpa' | 'uaddr' = 'gpa'): boolean {
  const base = space === 'gpa' ? r.guestPhysAddr : r.userspaceAddr;
  return addr >= base && addr - base + len <= r.memorySize;
}

export type Decoded = Record<string, unknown>;

const u64 = (p: Buffer, off: number): bigint => (p.length >= off + 8 ? p.readBigUInt64LE(off) : 0n);
const u32 = (p: Buffer, off: number): number => (p.length >= off + 4 ? p.readUInt32LE(off) : 0);
const u16 = (p: Buffer, off: number): number => (p.length >= off + 2 ? p.readUInt16LE(off) : 0);

function region(p: Buffer, off: number, xen: boolean): MemoryRegion {
  const r: MemoryRegion = {
    guestPhysAddr: u64(p, off),
    memorySize: u64(p, off + 8),
    userspaceAddr: u64(p, off + 16),
    mmapOffset: u64(p, off + 24),
  };
  if (xen) {
    r.xenMmapFlags = u32(p, off + 32);
    r.domid = u32(p, off + 36);
  }
  return r;
}

/** Memory table: nregions u32, padding u32, then regions of 32 bytes (40 with XEN_MMAP). */
export function memTableRegionSize(payloadLength: number, nregions: number): number {
  if (nregions > 0 && payloadLength === 8 + 40 * nregions) return 40;
  return 32;
}

export function expectedMemTableSize(p: Buffer): number[] {
  const n = u32(p, 0);
  return [8 + 32 * n, 8 + 40 * n];
}

export function expectedConfigSize(p: Buffer): number[] {
  return [12 + u32(p, 4)];
}

/** Renders a UUID the way VhostUserShared stores it (first three fields big-endian, i.e. RFC order). */
function uuid(p: Buffer, off: number): string {
  const h = p
    .subarray(off, off + 16)
    .toString('hex')
    .padEnd(32, '0');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** SET_LOG_BASE's dirty log: one bit per page of this size of guest physical memory (vhost-user.rst "Migration") */
export const DIRTY_LOG_PAGE = 4096n;

export const decoders: Record<PayloadKind, (p: Buffer) => Decoded> = {
  none: () => ({}),
  u64: (p) => ({ value: u64(p, 0) }),
  ack: (p) => ({ ack: u64(p, 0) }),
  features: (p) => ({ features: u64(p, 0) }),
  protocolFeatures: (p) => ({ protocolFeatures: u64(p, 0) }),
  status: (p) => ({ status: Number(u64(p, 0) & 0xffn) }),
  mac: (p) => ({ mac: [...p.subarray(0, 6)].map((b) => b.toString(16).padStart(2, '0')).join(':') }),
  vringState: (p) => ({ index: u32(p, 0), num: u32(p, 4) }),
  vringFd: (p) => {
    const v = u64(p, 0);
    return { index: Number(v & BigInt(VRING_IDX_MASK)), nofd: (v & BigInt(NOFD_MASK)) !== 0n };
  },
  vringAddr: (p) => ({
    index: u32(p, 0),
    flags: u32(p, 4),
    log: (u32(p, 4) & 1) === 1,
    desc: u64(p, 8),
    used: u64(p, 16),
    avail: u64(p, 24),
    logGuestAddr: u64(p, 32),
  }),
  memTable: (p) => {
    const nregions = u32(p, 0);
    const rsize = memTableRegionSize(p.length, nregions);
    const regions: MemoryRegion[] = [];
    for (let i = 0; i < nregions && 8 + (i + 1) * rsize <= p.length; i++) regions.push(region(p, 8 + i * rsize, rsize === 40));
    return { nregions, regions };
  },
  memRegion: (p) => ({ region: region(p, 8, p.length >= 48) }),
  log: (p) => (p.length >= 16 ? { mmapSize: u64(p, 0), mmapOffset: u64(p, 8) } : { mmapSize: u64(p, 0) }),
  inflight: (p) => ({ mmapSize: u64(p, 0), mmapOffset: u64(p, 8), numQueues: u16(p, 16), queueSize: u16(p, 18) }),
  config: (p) => {
    const size = u32(p, 4);
    return { offset: u32(p, 0), size, flags: u32(p, 8), data: p.subarray(12, 12 + size) };
  },
  iotlb: (p) => ({
    iova: u64(p, 0),
    size: u64(p, 8),
    uaddr: u64(p, 16),
    perm: p.length > 24 ? p[24] : 0,
    type: p.length > 25 ? p[25] : 0,
  }),
  // QEMU and DPDK lay the session out differently (reference §4.5): show the op code only.
  cryptoSession: (p) => ({ opCode: u64(p, 0), length: p.length }),
  deviceState: (p) => ({ direction: u32(p, 0) === 0 ? 'save' : 'load', phase: u32(p, 4) }),
  uuid: (p) => ({ uuid: uuid(p, 0) }),
  shmemConfig: (p) => {
    const nregions = u32(p, 0);
    const sizes: { shmid: number; size: bigint }[] = [];
    for (let i = 0; i < 256 && 8 + (i + 1) * 8 <= p.length; i++) {
      const s = u64(p, 8 + i * 8);
      if (s !== 0n) sizes.push({ shmid: i, size: s });
    }
    return { nregions, sizes };
  },
  mmapRequest: (p) => ({
    shmid: p.length > 0 ? p[0] : 0,
    fdOffset: u64(p, 8),
    shmOffset: u64(p, 16),
    len: u64(p, 24),
    flags: u64(p, 32),
    writable: (u64(p, 32) & 1n) === 1n,
  }),
  vringArea: (p) => {
    const v = u64(p, 0);
    return {
      index: Number(v & BigInt(VRING_IDX_MASK)),
      nofd: (v & BigInt(NOFD_MASK)) !== 0n,
      size: u64(p, 8),
      offset: u64(p, 16),
    };
  },
  ...gpuDecoders,
  opaque: (p) => ({ length: p.length }),
};

/** The sizes a payload of `kind` may have, given the payload itself (for variable layouts). */
export function allowedSizes(kind: PayloadKind, p: Buffer): number[] | undefined {
  switch (kind) {
    case 'memTable':
      return expectedMemTableSize(p);
    case 'config':
      return expectedConfigSize(p);
    case 'gpuUpdate':
      return expectedUpdateSize(p);
    default: {
      const s = PAYLOAD_SIZES[kind];
      return s ? [...s] : undefined;
    }
  }
}
