/**
 * Turns one message's bytes into a decoded record: header fields, the request's name on its
 * channel, and the payload decoded by the layout that applies (request or reply, with the
 * size-dependent cases of reference §9).
 */
import { HEADER_SIZE, isReply, parseHeader, type ChannelKind, type Header } from './header';
import { decoders, type Decoded, type PayloadKind } from './payloads';
import { requestName, requestSpec } from './requests';

export interface DecodedMessage extends Header {
  channel: ChannelKind;
  name: string;
  known: boolean;
  reply: boolean;
  /** the layout the payload was decoded with */
  layout: PayloadKind;
  payload: Decoded;
}

/** Which layout a payload has, from the request code, the reply flag and the payload size. */
export function payloadLayout(channel: ChannelKind, request: number, reply: boolean, size: number): PayloadKind {
  const spec = requestSpec(channel, request);
  if (!spec) return size === 0 ? 'none' : 'opaque';
  if (!reply) return spec.request;
  if (spec.reply === 'ack' || spec.reply === 'none') {
    if (size === 0) return 'none';
    if (size === 8) return 'ack';
    if (spec.postcopyReply) return spec.postcopyReply;
    return 'opaque';
  }
  if (size === 0) return 'none'; // e.g. GET_CONFIG failure, SET_LOG_BASE reply from DPDK
  return spec.reply;
}

export function decodeMessage(channel: ChannelKind, message: Buffer): DecodedMessage {
  const h = parseHeader(message);
  const payload = message.subarray(HEADER_SIZE);
  const reply = isReply(h.flags);
  const layout = payloadLayout(channel, h.request, reply, payload.length);
  return {
    ...h,
    channel,
    name: requestName(channel, h.request),
    known: requestSpec(channel, h.request) !== undefined,
    reply,
    layout,
    payload: decoders[layout](payload),
  };
}
