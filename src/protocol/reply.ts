/**
 * The "is a reply expected" rule (reference §1.4): a reply follows a request iff the request
 * always has one, or it carries NEED_REPLY and REPLY_ACK is in use, plus the cases that depend
 * on negotiated features (SET_LOG_BASE with LOG_SHMFD, postcopy memory tables).
 * Getting this wrong either deadlocks a peer or shifts every later reply by one.
 */
import { ProtocolFeature } from './features';
import { channelRules } from './channels';
import { resolveRequest, type Dialect } from './dialects';
import { encodeMessage, needsReply, type ChannelKind } from './header';
import { protocolFeatureInUse, replyAckInUse, type Negotiation } from './negotiation';
import { Request, requestSpec, type RequestSpec } from './requests';
import type { PayloadKind } from './payloads';

export function isReplyExpected(channel: ChannelKind, request: number, flags: number, n: Negotiation, dialect?: Dialect): boolean {
  const spec = resolveRequest(channel, request, { negotiation: n, dialect }).spec;
  if (spec?.alwaysReply) return true;
  if (channel === 'main' && request === Request.SET_LOG_BASE && protocolFeatureInUse(n, ProtocolFeature.LOG_SHMFD)) return true;
  if (postcopyReply(channel, spec, n)) return true;
  return channelRules(channel).hasNeedReply && needsReply(flags) && replyAckInUse(n);
}

/** After POSTCOPY_LISTEN, the layout the back-end answers a memory table with (its own mapping addresses). */
const postcopyReply = (channel: ChannelKind, spec: RequestSpec | undefined, n: Negotiation): PayloadKind | undefined =>
  channel === 'main' && n.postcopyListening ? spec?.postcopyReply : undefined;

/** The payload kinds that are a single u64 value (features, status, queue counts, acks). */
const U64_REPLIES = new Set(['u64', 'ack', 'features', 'protocolFeatures', 'status', 'gpuProtocolFeatures']);

/**
 * A reply on the far side's behalf (fault rules `answer` and `filter`): `value` goes into a u64
 * reply (0 = success for an ack), GET_VRING_BASE answers {index, value}, GET_CONFIG echoes the
 * request's header with zeroed contents. Returns undefined when the request takes no reply, or
 * one the proxy cannot make up (replies that carry fds or a layout of their own).
 */
export function synthesizeReply(channel: ChannelKind, request: number, flags: number, payload: Buffer, n: Negotiation, value = 0n): Buffer | undefined {
  if (!isReplyExpected(channel, request, flags, n)) return undefined;
  const spec = requestSpec(channel, request);
  // a postcopy memory table is answered with the back-end's addresses: a layout not ours to make up
  const kind = spec?.alwaysReply ? spec.reply : (postcopyReply(channel, spec, n) ?? 'ack');
  let body: Buffer;
  if (U64_REPLIES.has(kind)) {
    body = Buffer.alloc(8);
    body.writeBigUInt64LE(BigInt.asUintN(64, value));
  } else if (kind === 'vringState' && payload.length >= 4) {
    body = Buffer.alloc(8);
    body.writeUInt32LE(payload.readUInt32LE(0), 0);
    body.writeUInt32LE(Number(BigInt.asUintN(32, value)), 4);
  } else if (kind === 'config' && payload.length >= 12) {
    body = Buffer.alloc(payload.length);
    payload.copy(body, 0, 0, 12);
  } else return undefined;
  if (spec && spec.replyFds[0] > 0) return undefined;
  return encodeMessage(request, channelRules(channel).replyFlags, body);
}
