/**
 * The one validator for every message on every channel. Pure: bytes + context in, findings out.
 *
 * `fatal` findings make the message unforwardable (the session is closed): the header is not
 * vhost-user (version, reserved bits), the size is beyond any payload, or more fds arrived than
 * any message may carry. `warning` findings are spec deviations a transparent proxy still
 * forwards unchanged: peers differ, and the user wants to see the deviation, not a broken session.
 */
import {
  FLAG_RESERVED_MASK,
  FLAG_VERSION_MASK,
  FLAG_REPLY,
  HEADER_SIZE,
  MAX_PAYLOAD,
  VHOST_USER_VERSION,
  isReply,
  needsReply,
  parseHeader,
  type ChannelKind,
} from './header';
import { replyAckInUse, type Negotiation } from './negotiation';
import { payloadLayout } from './decode';
import { allowedSizes, decoders, MAX_MEM_REGIONS, type PayloadKind } from './payloads';
import { requestSpec, type FdRange } from './requests';

/** No vhost-user message carries more (VHOST_MEMORY_BASELINE_NREGIONS; back-end channel: 8 too). */
export const MAX_FDS_PER_MESSAGE = 8;

export type Side = 'frontend' | 'backend';

export interface MessageContext {
  channel: ChannelKind;
  /** who sent the message */
  sender: Side;
  fdCount: number;
  negotiation: Negotiation;
}

export interface Finding {
  severity: 'fatal' | 'warning';
  rule: string;
  message: string;
}

/** The side that sends requests on a channel: the front-end on the main socket, the back-end on the others. */
export function requesterOf(channel: ChannelKind): Side {
  return channel === 'main' ? 'frontend' : 'backend';
}

function fdRangeFor(layout: PayloadKind, range: FdRange, payload: Buffer): FdRange {
  if (layout === 'vringFd' || layout === 'vringArea') {
    const nofd = decoders[layout](payload).nofd === true;
    return nofd ? [0, 0] : [1, 1];
  }
  if (layout === 'memTable') {
    const n = Math.min(payload.length >= 4 ? payload.readUInt32LE(0) : 0, MAX_MEM_REGIONS);
    return [n, n];
  }
  return range;
}

export function validateHeader(header: Buffer): Finding[] {
  const h = parseHeader(header);
  const out: Finding[] = [];
  if ((h.flags & FLAG_VERSION_MASK) !== VHOST_USER_VERSION)
    out.push({ severity: 'fatal', rule: 'header-version', message: `version ${h.flags & FLAG_VERSION_MASK} in flags 0x${h.flags.toString(16)}, expected 1` });
  if (h.flags & FLAG_RESERVED_MASK)
    out.push({ severity: 'fatal', rule: 'header-reserved-flags', message: `reserved flag bits set: flags 0x${h.flags.toString(16)}` });
  if (h.size > MAX_PAYLOAD)
    out.push({ severity: 'fatal', rule: 'header-oversize', message: `payload size ${h.size} exceeds ${MAX_PAYLOAD}` });
  return out;
}

export function validateMessage(message: Buffer, ctx: MessageContext): Finding[] {
  const out = validateHeader(message);
  const h = parseHeader(message);
  const payload = message.subarray(HEADER_SIZE);
  if (ctx.fdCount > MAX_FDS_PER_MESSAGE)
    out.push({ severity: 'fatal', rule: 'too-many-fds', message: `${ctx.fdCount} fds, no message carries more than ${MAX_FDS_PER_MESSAGE}` });
  if (out.some((f) => f.severity === 'fatal')) return out;

  const spec = requestSpec(ctx.channel, h.request);
  const reply = isReply(h.flags);
  const requester = requesterOf(ctx.channel);
  if (!spec) {
    out.push({ severity: 'warning', rule: 'unknown-request', message: `request code ${h.request} is not defined on the ${ctx.channel} channel` });
    return out;
  }
  if (reply && ctx.sender === requester)
    out.push({ severity: 'warning', rule: 'reply-from-requester', message: `the ${ctx.sender} sent a message with REPLY set on the ${ctx.channel} channel` });
  if (!reply && ctx.sender !== requester)
    out.push({ severity: 'warning', rule: 'request-from-responder', message: `the ${ctx.sender} sent a request on the ${ctx.channel} channel, where requests come from the ${requester}` });
  if (reply && h.flags !== (VHOST_USER_VERSION | FLAG_REPLY))
    out.push({ severity: 'warning', rule: 'reply-flags', message: `reply flags 0x${h.flags.toString(16)}, QEMU accepts only 0x5` });
  if (!reply && needsReply(h.flags) && !replyAckInUse(ctx.negotiation) && ctx.negotiation.protocolFeatures !== undefined)
    out.push({ severity: 'warning', rule: 'need-reply-without-reply-ack', message: 'NEED_REPLY set but REPLY_ACK is not negotiated' });

  const layout = payloadLayout(ctx.channel, h.request, reply, payload.length);
  const sizes = allowedSizes(layout, payload);
  const replyMayBeEmpty = reply && payload.length === 0;
  if (sizes && !replyMayBeEmpty && !sizes.includes(payload.length))
    out.push({ severity: 'warning', rule: 'payload-size', message: `${spec.name}${reply ? ' reply' : ''} payload is ${payload.length} bytes, expected ${sizes.join(' or ')}` });

  const range = fdRangeFor(layout, reply ? spec.replyFds : spec.requestFds, payload);
  if (ctx.fdCount < range[0] || ctx.fdCount > range[1]) {
    const want = range[0] === range[1] ? `${range[0]}` : `${range[0]}..${range[1]}`;
    out.push({ severity: 'warning', rule: 'fd-count', message: `${spec.name}${reply ? ' reply' : ''} carries ${ctx.fdCount} fds, expected ${want}` });
  }
  return out;
}
