/**
 * What the first bytes of a buffer say, per device type (--rings=headers): the virtio-net header
 * and the Ethernet/ARP/IPv4/ICMP/UDP/TCP headers behind it, the virtio-blk request header (type,
 * sector) and status, the FUSE request header (opcode, unique) of virtio-fs. Pure.
 */
import type { DeviceType } from '../protocol';
import { chainBytes, VRING_DESC_F_WRITE, type RingEntry } from './snapshot';

export interface BufferHeader {
  summary: string;
  /** virtio-net: the Ethernet frame as far as it was captured, and its full length */
  frame?: Buffer;
  frameLen?: number;
  /** virtio-blk */
  blk?: { type: string; sector: bigint; dataLen: number; status?: string };
  /** virtio-fs */
  fuse?: { opcode: string; unique: bigint; nodeid?: bigint; error?: number };
}

const mac = (b: Buffer, o: number): string => [...b.subarray(o, o + 6)].map((x) => x.toString(16).padStart(2, '0')).join(':');
const ip4 = (b: Buffer, o: number): string => [...b.subarray(o, o + 4)].join('.');

/** One line for an Ethernet frame (as far as captured). */
export function describeFrame(f: Buffer): string {
  if (f.length < 14) return `frame (${f.length} bytes captured)`;
  const type = f.readUInt16BE(12);
  const l2 = `${mac(f, 6)} > ${mac(f, 0)}`;
  if (type === 0x0806 && f.length >= 42) {
    const op = f.readUInt16BE(20);
    return `${l2} ARP ${op === 1 ? `who-has ${ip4(f, 38)} tell ${ip4(f, 28)}` : op === 2 ? `${ip4(f, 28)} is-at ${mac(f, 22)}` : `op ${op}`}`;
  }
  if (type === 0x0800 && f.length >= 34) {
    const ihl = (f[14] & 0xf) * 4;
    const proto = f[23];
    const src = ip4(f, 26);
    const dst = ip4(f, 30);
    const l4 = 14 + ihl;
    if (proto === 1 && f.length >= l4 + 8) {
      const t = f[l4];
      const what = t === 8 ? 'echo request' : t === 0 ? 'echo reply' : `type ${t}`;
      return `${l2} IPv4 ${src} > ${dst} ICMP ${what}${t === 0 || t === 8 ? ` id ${f.readUInt16BE(l4 + 4)} seq ${f.readUInt16BE(l4 + 6)}` : ''}`;
    }
    if ((proto === 6 || proto === 17) && f.length >= l4 + 4)
      return `${l2} IPv4 ${src}:${f.readUInt16BE(l4)} > ${dst}:${f.readUInt16BE(l4 + 2)} ${proto === 6 ? 'TCP' : 'UDP'}`;
    return `${l2} IPv4 ${src} > ${dst} proto ${proto}`;
  }
  if (type === 0x86dd) return `${l2} IPv6`;
  return `${l2} ethertype 0x${type.toString(16).padStart(4, '0')}`;
}

const BLK_TYPES: Record<number, string> = { 0: 'IN (read)', 1: 'OUT (write)', 4: 'FLUSH', 8: 'GET_ID', 11: 'DISCARD', 13: 'WRITE_ZEROES', 16: 'SECURE_ERASE' };
const BLK_STATUS: Record<number, string> = { 0: 'OK', 1: 'IOERR', 2: 'UNSUPP' };

export const FUSE_OPCODES: Record<number, string> = {
  1: 'LOOKUP',
  2: 'FORGET',
  3: 'GETATTR',
  4: 'SETATTR',
  5: 'READLINK',
  6: 'SYMLINK',
  8: 'MKNOD',
  9: 'MKDIR',
  10: 'UNLINK',
  11: 'RMDIR',
  12: 'RENAME',
  13: 'LINK',
  14: 'OPEN',
  15: 'READ',
  16: 'WRITE',
  17: 'STATFS',
  18: 'RELEASE',
  20: 'FSYNC',
  21: 'SETXATTR',
  22: 'GETXATTR',
  23: 'LISTXATTR',
  24: 'REMOVEXATTR',
  25: 'FLUSH',
  26: 'INIT',
  27: 'OPENDIR',
  28: 'READDIR',
  29: 'RELEASEDIR',
  30: 'FSYNCDIR',
  31: 'GETLK',
  32: 'SETLK',
  33: 'SETLKW',
  34: 'ACCESS',
  35: 'CREATE',
  36: 'INTERRUPT',
  37: 'BMAP',
  38: 'DESTROY',
  39: 'IOCTL',
  40: 'POLL',
  41: 'NOTIFY_REPLY',
  42: 'BATCH_FORGET',
  43: 'FALLOCATE',
  44: 'READDIRPLUS',
  45: 'RENAME2',
  46: 'LSEEK',
  47: 'COPY_FILE_RANGE',
  48: 'SETUPMAPPING',
  49: 'REMOVEMAPPING',
  50: 'SYNCFS',
  51: 'TMPFILE',
  52: 'STATX',
};

export interface HeaderContext {
  device: DeviceType;
  vring: number;
  kind: 'kick' | 'call' | 'base';
  /** virtio-net header size: 12 with VERSION_1 or MRG_RXBUF, else 10 */
  netHdrLen?: number;
}

/** What an entry's buffers hold, or undefined when nothing was captured or the device is not known. */
export function decodeBuffer(e: RingEntry, ctx: HeaderContext): BufferHeader | undefined {
  switch (ctx.device) {
    case 'net': {
      // queue pairs: even vrings receive (the device writes them), odd ones transmit
      const rx = ctx.vring % 2 === 0;
      if (rx && ctx.kind !== 'call') return undefined; // empty buffers offered to the device
      const bytes = chainBytes(e, Boolean(rx));
      const hdr = ctx.netHdrLen ?? 12;
      // what the buffers hold: for rx what the device wrote (usedLen), for tx the readable part
      const total = rx ? (e.usedLen ?? 0) : e.descs.filter((d) => !(d.flags & VRING_DESC_F_WRITE)).reduce((n, d) => n + d.len, 0);
      if (bytes.length <= hdr || total <= hdr) return undefined;
      const frame = bytes.subarray(hdr, Math.min(bytes.length, total));
      return { summary: describeFrame(frame), frame, frameLen: total - hdr };
    }
    case 'blk': {
      const first = e.descs[0];
      if (!first?.bytes || first.bytes.length < 16) return undefined;
      const t = first.bytes.readUInt32LE(0);
      const sector = first.bytes.readBigUInt64LE(8);
      const middle = e.descs.slice(1, -1);
      const dataLen = middle.reduce((n, d) => n + d.len, 0);
      const last = e.descs.at(-1);
      const status =
        ctx.kind === 'call' && last && last !== first && last.flags & VRING_DESC_F_WRITE && last.bytes?.length
          ? (BLK_STATUS[last.bytes[last.bytes.length - 1]] ?? `status ${last.bytes[last.bytes.length - 1]}`)
          : undefined;
      const type = BLK_TYPES[t] ?? `type ${t}`;
      return {
        summary: `blk ${type} sector ${sector} len ${dataLen}${status ? ` status ${status}` : ''}`,
        blk: { type, sector, dataLen, ...(status ? { status } : {}) },
      };
    }
    case 'fs': {
      const first = e.descs[0];
      if (!first?.bytes || first.bytes.length < 16) return undefined;
      const opcode = FUSE_OPCODES[first.bytes.readUInt32LE(4)] ?? `opcode ${first.bytes.readUInt32LE(4)}`;
      const unique = first.bytes.readBigUInt64LE(8);
      const nodeid = first.bytes.length >= 24 ? first.bytes.readBigUInt64LE(16) : undefined;
      const out = ctx.kind === 'call' ? e.descs.find((d) => d.flags & VRING_DESC_F_WRITE && d.bytes && d.bytes.length >= 16) : undefined;
      const error = out?.bytes ? out.bytes.readInt32LE(4) : undefined;
      return {
        summary: `FUSE ${opcode} unique ${unique}${nodeid !== undefined ? ` nodeid ${nodeid}` : ''}${error !== undefined ? ` -> ${error === 0 ? 'ok' : `error ${error}`}` : ''}`,
        fuse: { opcode, unique, ...(nodeid !== undefined ? { nodeid } : {}), ...(error !== undefined ? { error } : {}) },
      };
    }
    default:
      return undefined;
  }
}
