/** How a channel ended, in words: a peer that went away, or one that sent what is not vhost-user. */
import type { ChannelEnd } from '../native';
import { channelRules, validateHeader, type ChannelKind } from '../protocol';

/**
 * A channel ended because the peer closed its end while we still wrote to it (queued messages
 * flushed into EPIPE or ECONNRESET): a peer that went away, not one that sent bad input.
 */
export function closedUnderUs(end: ChannelEnd): boolean {
  return (end.code === 'EWRITE' || end.code === 'EREAD') && (end.errno === 32 || end.errno === 104);
}

/** A send failed because the peer closed its end (EPIPE, ECONNRESET). */
export function peerGone(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return e.code === 'EPIPE' || e.code === 'ECONNRESET' || /\((EPIPE|ECONNRESET)\)$/.test(e.message ?? '');
}

/** What was wrong with what the peer sent, for a channel the addon ended on bad input. */
export function describeEnd(end: ChannelEnd, channel: ChannelKind = 'main'): string {
  // An oversized header is usually not vhost-user at all: say what else is wrong with it first.
  const headerFault =
    end.code === 'OVERSIZE' ? validateHeader(end.header, channel).find((f) => f.rule !== 'header-oversize' && f.severity === 'fatal') : undefined;
  if (end.code === 'EOF_MID_MESSAGE')
    return `EOF in the middle of a message (${end.header.length}/12 header bytes, ${end.payloadReceived}/${end.payloadExpected} payload bytes)`;
  if (end.code === 'OVERSIZE')
    return `${headerFault ? `${headerFault.message}; ` : ''}header announces a payload larger than ${channelRules(channel).maxPayload} bytes`;
  return end.message;
}
