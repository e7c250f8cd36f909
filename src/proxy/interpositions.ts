/**
 * What the proxy does to a main-channel message on its way through, as named handlers chosen
 * from a table by sender, reply-or-request and request code (rules as data, handlers apart):
 * ProxySession.deliver runs the handlers a message matches, in table order, and nothing else.
 */
import type { Side } from '../protocol';
import type { MessageEvent } from '../events/events';

/** A message on its way out: handlers may replace its bytes or fds and annotate its event. */
export interface Outgoing {
  readonly request: number;
  /** the fds as received (owned by the session until forwarded) */
  readonly fds: readonly number[];
  out: Buffer;
  outFds: number[];
  extra: Partial<MessageEvent>;
  /** feature names the proxy cleared from the message */
  masked: string[];
}

export interface Interposition {
  /** what it is, for the log: "cannot interpose SET_VRING_CALL (eventfd interposer): …" */
  readonly name: string;
  readonly sender: Side;
  readonly reply: boolean;
  /** the request codes it acts on; every request when absent */
  readonly requests?: readonly number[];
  /**
   * Before forwarding. A throw closes the session; the fds are closed too unless the error
   * says `fdsTaken` (a handler that handed them on).
   */
  before?(o: Outgoing): void;
  /** Once forwarded. */
  after?(o: Outgoing): void;
}

export class InterpositionTable {
  private readonly cache = new Map<string, readonly Interposition[]>();

  constructor(private readonly handlers: readonly Interposition[]) {}

  /** The handlers for one message, in table order. */
  for(sender: Side, reply: boolean, request: number): readonly Interposition[] {
    const key = `${sender}:${reply ? 'r' : 'q'}:${request}`;
    let hs = this.cache.get(key);
    if (!hs) {
      hs = this.handlers.filter((h) => h.sender === sender && h.reply === reply && (!h.requests || h.requests.includes(request)));
      this.cache.set(key, hs);
    }
    return hs;
  }
}
