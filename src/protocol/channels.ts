/**
 * The rules of each vhost-user channel, one entry per channel, each from its own spec: who
 * sends requests, how a header is checked, how large a payload may be, which flags a reply
 * carries and which flags a request the proxy sends itself gets.
 *
 * - main (docs/interop/vhost-user.rst): version 1 in bits 0-1, REPLY (bit 2), NEED_REPLY (bit 3),
 *   bits 4-31 reserved; replies carry exactly 0x5.
 * - backend (the channel of SET_BACKEND_REQ_FD): the same header as the main channel, with the
 *   back-end as the requester.
 * - gpu (docs/interop/vhost-user-gpu.rst, the socket of GPU_SET_SOCKET): no version bits; the
 *   only flag is REPLY (bit 2). The back-end's requests carry flags 0 and QEMU's replies 0x4
 *   (VHOST_USER_GPU_MSG_FLAG_REPLY). GPU_UPDATE carries a rectangle's pixels, so payloads are
 *   far larger than on the other channels.
 */
import { FLAG_NEED_REPLY, FLAG_REPLY, FLAG_RESERVED_MASK, FLAG_VERSION_MASK, VHOST_USER_VERSION, type ChannelKind, type Header } from './header';

export type Side = 'frontend' | 'backend';

export interface Finding {
  severity: 'fatal' | 'warning';
  rule: string;
  message: string;
}

/**
 * Main and backend channels: larger than every payload either defines (the largest,
 * GET_SHMEM_CONFIG's reply, is 2056 B), with room for private extensions.
 */
export const MAX_PAYLOAD = 64 * 1024;

/** The largest scanout a Linux virtio-gpu guest sets up (drivers/gpu/drm/virtio: XRES_MAX, YRES_MAX). */
export const GPU_MAX_SCANOUT = 8192;
/** VhostUserGpuUpdate: scanout_id, x, y, width, height (u32 each), then the pixels. */
export const GPU_UPDATE_HEADER = 20;
/** 4 bytes a pixel (PIXMAN_x8r8g8b8). */
export const GPU_BYTES_PER_PIXEL = 4;
/** The largest GPU message: a GPU_UPDATE of a whole maximal scanout (256 MiB of pixels). */
export const GPU_MAX_PAYLOAD = GPU_UPDATE_HEADER + GPU_MAX_SCANOUT * GPU_MAX_SCANOUT * GPU_BYTES_PER_PIXEL;

/** Bit 2 of a GPU message's flags: set on every reply (VHOST_USER_GPU_MSG_FLAG_REPLY). */
export const GPU_FLAG_REPLY = 0x4;

export interface ChannelRules {
  kind: ChannelKind;
  /** the side that sends requests; the other side only replies */
  requester: Side;
  /** the largest payload a message may announce; larger is not this protocol */
  maxPayload: number;
  /** the flags every well-formed reply carries (what the receiving side checks for) */
  replyFlags: number;
  /**
   * Whether a message is a reply: by its REPLY flag (main, backend), or by who sent it (gpu:
   * QEMU reads no flags of the back-end's requests, and vhost-user-gpu sends some with
   * uninitialised flags, so the direction is what the receiver goes by).
   */
  replyBy: 'flag' | 'direction';
  /** whether NEED_REPLY exists on this channel (asks for a REPLY_ACK) */
  hasNeedReply: boolean;
  /** flags of a request the proxy sends itself; `replyAck`: REPLY_ACK is negotiated */
  requestFlags(replyAck: boolean): number;
  /** header findings: fatal where the bytes cannot be this channel's protocol */
  checkHeader(h: Header): Finding[];
}

const hex = (v: number): string => `0x${(v >>> 0).toString(16)}`;

function oversize(h: Header, max: number, what: string): Finding[] {
  return h.size > max ? [{ severity: 'fatal', rule: 'header-oversize', message: `payload size ${h.size} exceeds ${max}${what}` }] : [];
}

/** Main and backend channels share the vhost-user header. */
function vhostUserHeader(h: Header): Finding[] {
  const out: Finding[] = [];
  if ((h.flags & FLAG_VERSION_MASK) !== VHOST_USER_VERSION)
    out.push({ severity: 'fatal', rule: 'header-version', message: `version ${h.flags & FLAG_VERSION_MASK} in flags ${hex(h.flags)}, expected 1` });
  if (h.flags & FLAG_RESERVED_MASK) out.push({ severity: 'fatal', rule: 'header-reserved-flags', message: `reserved flag bits set: flags ${hex(h.flags)}` });
  return [...out, ...oversize(h, MAX_PAYLOAD, '')];
}

const vhostUser = (kind: 'main' | 'backend', requester: Side): ChannelRules => ({
  kind,
  requester,
  maxPayload: MAX_PAYLOAD,
  replyFlags: VHOST_USER_VERSION | FLAG_REPLY,
  replyBy: 'flag',
  hasNeedReply: true,
  requestFlags: (replyAck) => VHOST_USER_VERSION | (replyAck ? FLAG_NEED_REPLY : 0),
  checkHeader: vhostUserHeader,
});

export const CHANNEL_RULES: Record<ChannelKind, ChannelRules> = {
  main: vhostUser('main', 'frontend'),
  backend: vhostUser('backend', 'backend'),
  gpu: {
    kind: 'gpu',
    requester: 'backend',
    maxPayload: GPU_MAX_PAYLOAD,
    replyFlags: GPU_FLAG_REPLY,
    replyBy: 'direction',
    hasNeedReply: false,
    requestFlags: () => 0,
    // flags are checked against the direction in validateMessage (a warning: QEMU ignores them)
    checkHeader: (h) => oversize(h, GPU_MAX_PAYLOAD, ' (a GPU_UPDATE of an 8192x8192 scanout)'),
  },
};

/** Whether a message on `kind` sent by `sender` is a reply, by that channel's rule. */
export function messageIsReply(kind: ChannelKind, flags: number, sender?: Side): boolean {
  const rules = CHANNEL_RULES[kind];
  if (rules.replyBy === 'direction' && sender) return sender !== rules.requester;
  return (flags & FLAG_REPLY) !== 0;
}

export const channelRules = (kind: ChannelKind): ChannelRules => CHANNEL_RULES[kind];
