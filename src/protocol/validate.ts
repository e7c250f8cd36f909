/**
 * The one validator for every message on every channel. Pure: bytes + context in, findings out.
 *
 * `fatal` findings make the message unforwardable (the session is closed): the header is not
 * vhost-user (version, reserved bits), the size is beyond any payload, or more fds arrived than
 * any message may carry. `warning` findings are spec deviations a transparent proxy still
 * forwards unchanged: peers differ, and the user wants to see the deviation, not a broken session.
 */
import { HEADER_SIZE, needsReply, parseHeader, type ChannelKind } from './header';
import { channelRules, messageIsReply, type Finding, type Side } from './channels';
import { replyAckInUse, type Negotiation } from './negotiation';
import { payloadLayout } from './decode';
import { allowedSizes, decoders, MAX_MEM_REGIONS, type PayloadKind } from './payloads';
import { resolveRequest, type Dialect } from './dialects';
import { requestName, type FdRange } from './requests';

export type { Finding, Side } from './channels';

/** No vhost-user message carries more (VHOST_MEMORY_BASELINE_NREGIONS; back-end channel: 8 too). */
export const MAX_FDS_PER_MESSAGE = 8;

export interface MessageContext {
  channel: ChannelKind;
  /** who sent the message */
  sender: Side;
  fdCount: number;
  negotiation: Negotiation;
  /** the user's --dialect (dialects.ts) */
  dialect?: Dialect;
  /** bytes of the message received before its first fd (0: with the header's first byte) */
  fdsAt?: number;
}

/** The side that sends requests on a channel: the front-end on the main socket, the back-end on the others. */
export function requesterOf(channel: ChannelKind): Side {
  return channelRules(channel).requester;
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

/** Header findings by the rules of the channel the header travelled on. */
export function validateHeader(header: Buffer, channel: ChannelKind = 'main'): Finding[] {
  return channelRules(channel).checkHeader(parseHeader(header));
}

export function validateMessage(message: Buffer, ctx: MessageContext): Finding[] {
  const rules = channelRules(ctx.channel);
  const out = validateHeader(message, ctx.channel);
  const h = parseHeader(message);
  const payload = message.subarray(HEADER_SIZE);
  if (ctx.fdCount > MAX_FDS_PER_MESSAGE)
    out.push({ severity: 'fatal', rule: 'too-many-fds', message: `${ctx.fdCount} fds, no message carries more than ${MAX_FDS_PER_MESSAGE}` });
  if (out.some((f) => f.severity === 'fatal')) return out;
  if (ctx.fdCount && ctx.fdsAt)
    out.push({
      severity: 'warning',
      rule: 'fds-after-header',
      message: `the ${ctx.fdCount === 1 ? 'fd' : `${ctx.fdCount} fds`} of ${requestName(ctx.channel, h.request)} came with byte ${ctx.fdsAt} of the message, not with its header's first byte`,
    });

  const spec = resolveRequest(ctx.channel, h.request, { negotiation: ctx.negotiation, dialect: ctx.dialect, payloadSize: h.size }).spec;
  const reply = messageIsReply(ctx.channel, h.flags, ctx.sender);
  const requester = requesterOf(ctx.channel);
  if (!spec) {
    out.push({ severity: 'warning', rule: 'unknown-request', message: `request code ${h.request} is not defined on the ${ctx.channel} channel` });
    return out;
  }
  if (rules.replyBy === 'flag') {
    if (reply && ctx.sender === requester)
      out.push({ severity: 'warning', rule: 'reply-from-requester', message: `the ${ctx.sender} sent a message with REPLY set on the ${ctx.channel} channel` });
    if (!reply && ctx.sender !== requester)
      out.push({
        severity: 'warning',
        rule: 'request-from-responder',
        message: `the ${ctx.sender} sent a request on the ${ctx.channel} channel, where requests come from the ${requester}`,
      });
  } else if (!reply && h.flags !== rules.requestFlags(false)) {
    out.push({
      severity: 'warning',
      rule: 'request-flags',
      message: `${spec.name} request with flags 0x${h.flags.toString(16)}, requests carry 0x${rules.requestFlags(false).toString(16)} on the ${ctx.channel} channel (the front-end ignores them)`,
    });
  }
  if (reply && h.flags !== rules.replyFlags)
    out.push({
      severity: 'warning',
      rule: 'reply-flags',
      message: `reply flags 0x${h.flags.toString(16)}, QEMU accepts only 0x${rules.replyFlags.toString(16)} on the ${ctx.channel} channel`,
    });
  if (rules.hasNeedReply && !reply && needsReply(h.flags) && !replyAckInUse(ctx.negotiation) && ctx.negotiation.protocolFeatures !== undefined)
    out.push({ severity: 'warning', rule: 'need-reply-without-reply-ack', message: 'NEED_REPLY set but REPLY_ACK is not negotiated' });

  // h.size, not payload.length: a recording may keep a GPU_UPDATE without its pixels
  const layout = payloadLayout(ctx.channel, h.request, reply, h.size, spec);
  const sizes = allowedSizes(layout, payload);
  const replyMayBeEmpty = reply && h.size === 0;
  if (sizes && !replyMayBeEmpty && !sizes.includes(h.size))
    out.push({
      severity: 'warning',
      rule: 'payload-size',
      message: `${spec.name}${reply ? ' reply' : ''} payload is ${h.size} bytes, expected ${sizes.join(' or ')}`,
    });

  const range = fdRangeFor(layout, reply ? spec.replyFds : spec.requestFds, payload);
  if (ctx.fdCount < range[0] || ctx.fdCount > range[1]) {
    const want = range[0] === range[1] ? `${range[0]}` : `${range[0]}..${range[1]}`;
    out.push({ severity: 'warning', rule: 'fd-count', message: `${spec.name}${reply ? ' reply' : ''} carries ${ctx.fdCount} fds, expected ${want}` });
  }
  return out;
}
