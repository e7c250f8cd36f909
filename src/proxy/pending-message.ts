import type { Channel } from '../native';
import type { ChannelKind, Finding, Side } from '../protocol';
import type { MessageEvent } from '../events/events';

/**
 * A message on its way through the proxy: the one in-flight type every stage of its path takes
 * (message-path.ts: validation, fault rules, interpositions, forwarding, report), its header
 * parsed once when it arrived.
 */
export interface PendingMessage {
  channel: ChannelKind;
  sender: Side;
  /** what will be forwarded (a copy with bits cleared when a mask rule or an interposition applied) */
  raw: Buffer;
  /** as the sender sent it */
  received: Buffer;
  /** the fds as received (owned by the session until forwarded) */
  fds: number[];
  /** the fds to forward: the received ones, or the proxy's own in their place (an interposition's) */
  outFds: number[];
  /** what the report of this message adds (interposed, masked, received, faults, heldNs) */
  extra: Partial<MessageEvent>;
  ts: bigint;
  findings: Finding[];
  /** the header, parsed once when the message arrived */
  request: number;
  flags: number;
  reply: boolean;
  /** the channel it goes out on (decided when it arrived) */
  to: Channel;
  /** ids of the rules applied to it */
  faults: string[];
  masked: string[];
  /** set when the message goes out later than it came in */
  heldNs?: bigint;
  /** chaos split: only these first bytes (and the fds) go out with the message; the rest on FaultEffects.sendRest */
  splitAt?: number;
}
