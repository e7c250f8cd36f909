/**
 * The "is a reply expected" rule (reference §1.4): a reply follows a request iff the request
 * always has one, or it carries NEED_REPLY and REPLY_ACK is in use, plus the cases that depend
 * on negotiated features (SET_LOG_BASE with LOG_SHMFD, postcopy memory tables).
 * Getting this wrong either deadlocks a peer or shifts every later reply by one.
 */
import { ProtocolFeature } from './features';
import { needsReply, type ChannelKind } from './header';
import { protocolFeatureInUse, replyAckInUse, type Negotiation } from './negotiation';
import { Request, requestSpec } from './requests';

export function isReplyExpected(channel: ChannelKind, request: number, flags: number, n: Negotiation): boolean {
  const spec = requestSpec(channel, request);
  if (spec?.alwaysReply) return true;
  if (channel === 'main') {
    if (request === Request.SET_LOG_BASE && protocolFeatureInUse(n, ProtocolFeature.LOG_SHMFD)) return true;
    if (n.postcopyListening && (request === Request.SET_MEM_TABLE || request === Request.ADD_MEM_REG)) return true;
  }
  return needsReply(flags) && replyAckInUse(n);
}
