/**
 * The 12-byte vhost-user message header (reference §1.1): request u32, flags u32, size u32,
 * in the byte order of the host (every known deployment is little-endian; recordings store
 * the capture host's order).
 */

export const HEADER_SIZE = 12;

/** Bits 0-1: protocol version, always 1. */
export const FLAG_VERSION_MASK = 0x3;
export const VHOST_USER_VERSION = 0x1;
/** Bit 2: set on every reply. */
export const FLAG_REPLY = 0x4;
/** Bit 3: the sender asks for a REPLY_ACK (only meaningful once REPLY_ACK is negotiated). */
export const FLAG_NEED_REPLY = 0x8;
/** Bits 4-31 are reserved and must be zero (rust-vmm and crosvm reject them). */
export const FLAG_RESERVED_MASK = ~0xf >>> 0;

/** Which socket a message travelled on: each has its own numbering space. */
export type ChannelKind = 'main' | 'backend' | 'gpu';

export interface Header {
  request: number;
  flags: number;
  size: number;
}

export function parseHeader(buf: Buffer): Header {
  if (buf.length < HEADER_SIZE) throw new RangeError(`header needs ${HEADER_SIZE} bytes, got ${buf.length}`);
  return { request: buf.readUInt32LE(0), flags: buf.readUInt32LE(4), size: buf.readUInt32LE(8) };
}

export function encodeHeader(h: Header): Buffer {
  const b = Buffer.alloc(HEADER_SIZE);
  b.writeUInt32LE(h.request >>> 0, 0);
  b.writeUInt32LE(h.flags >>> 0, 4);
  b.writeUInt32LE(h.size >>> 0, 8);
  return b;
}

/** A whole message: header followed by its payload. */
export function encodeMessage(request: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([encodeHeader({ request, flags, size: payload.length }), payload]);
}

export const isReply = (flags: number): boolean => (flags & FLAG_REPLY) !== 0;
export const needsReply = (flags: number): boolean => (flags & FLAG_NEED_REPLY) !== 0;

/**
 * "v1|REPLY|NEED_REPLY" style rendering for logs. The GPU channel has no version bits and no
 * NEED_REPLY: its flags render as "0" or "REPLY", with any other bit shown as reserved.
 */
export function flagsToString(flags: number, channel: ChannelKind = 'main'): string {
  if (channel === 'gpu') {
    const parts = flags & FLAG_REPLY ? ['REPLY'] : [];
    const other = flags & ~FLAG_REPLY;
    if (other) parts.push(`reserved=0x${(other >>> 0).toString(16)}`);
    return parts.join('|') || '0';
  }
  const parts = [`v${flags & FLAG_VERSION_MASK}`];
  if (flags & FLAG_REPLY) parts.push('REPLY');
  if (flags & FLAG_NEED_REPLY) parts.push('NEED_REPLY');
  const reserved = flags & FLAG_RESERVED_MASK;
  if (reserved) parts.push(`reserved=0x${(reserved >>> 0).toString(16)}`);
  return parts.join('|');
}

/**
 * Clears `bits` in a message's u64 payload (a feature word): a copy of the message with them
 * cleared, the word as it was and what was cleared; undefined when none of them was set.
 */
export function clearPayloadBits(message: Buffer, bits: bigint): { message: Buffer; before: bigint; cleared: bigint } | undefined {
  if (message.length < HEADER_SIZE + 8) return undefined;
  const before = message.readBigUInt64LE(HEADER_SIZE);
  const cleared = before & bits;
  if (!cleared) return undefined;
  const out = Buffer.from(message);
  out.writeBigUInt64LE(before & ~cleared, HEADER_SIZE);
  return { message: out, before, cleared };
}
