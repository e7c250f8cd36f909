/**
 * Turns one message's bytes into a decoded record: header fields, the request's name on its
 * channel, and the payload decoded by the layout that applies (request or reply, with the
 * size-dependent cases of reference §9).
 */
import { HEADER_SIZE, parseHeader, type ChannelKind, type Header } from './header';
import { GPU_UPDATE_HEADER, messageIsReply, type Side } from './channels';
import { decoders, type Decoded, type PayloadKind } from './payloads';
import { resolveRequest, type Dialect, type DialectContext } from './dialects';
import { requestName, requestSpec } from './requests';

export interface DecodedMessage extends Header {
  channel: ChannelKind;
  name: string;
  known: boolean;
  /** the implementation family this meaning of the code comes from, when not the standard */
  dialect?: Dialect;
  /** every meaning of the code, when what the session negotiated does not decide it */
  ambiguous?: string[];
  reply: boolean;
  /** the layout the payload was decoded with */
  layout: PayloadKind;
  payload: Decoded;
}

/** Which layout a payload has, from the request code, the reply flag and the payload size. */
export function payloadLayout(channel: ChannelKind, request: number, reply: boolean, size: number, spec = requestSpec(channel, request)): PayloadKind {
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

/**
 * `sender`: who sent it, where known; on the GPU channel that, not the flags, makes a reply.
 * `dialects`: what the session negotiated and the user's --dialect, for codes whose meaning
 * depends on the implementation (dialects.ts).
 */
export function decodeMessage(channel: ChannelKind, message: Buffer, sender?: Side, dialects: DialectContext = {}): DecodedMessage {
  const h = parseHeader(message);
  const payload = message.subarray(HEADER_SIZE);
  const reply = messageIsReply(channel, h.flags, sender);
  const meaning = resolveRequest(channel, h.request, { ...dialects, payloadSize: h.size });
  // A recording keeps a GPU_UPDATE's rectangle but not its pixels: the header still has the size.
  const layout = payloadLayout(channel, h.request, reply, Math.max(h.size, payload.length), meaning.spec);
  const decoded = decoders[layout](payload);
  if (payload.length < h.size) {
    decoded.truncated = true;
    if (layout === 'gpuUpdate') decoded.pixelBytes = h.size - GPU_UPDATE_HEADER;
  }
  return {
    ...h,
    channel,
    name: meaning.spec?.name ?? requestName(channel, h.request),
    known: meaning.spec !== undefined,
    ...(meaning.dialect ? { dialect: meaning.dialect } : {}),
    ...(meaning.ambiguous ? { ambiguous: meaning.ambiguous } : {}),
    reply,
    layout,
    payload: decoded,
  };
}
