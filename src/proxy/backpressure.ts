/**
 * Back-pressure between the two peers of a session. The proxy never drops or reorders a
 * control message, so when one peer stops reading, what the other sends must wait somewhere:
 * not in the daemon (that would grow without bound) but in the sender's own socket. Once a
 * channel has more than HIGH_WATER bytes queued towards a peer, the channel those messages
 * came from is paused (the addon stops reading it); when the queue has drained, it is read
 * again. The daemon holds at most HIGH_WATER plus one message per direction.
 */
import type { Channel } from '../native';

/** Bytes queued towards a peer beyond which the sender is paused. */
export const HIGH_WATER = 1 << 20;

export interface PressureChange {
  /** true: `source` is paused now; false: it is read again */
  paused: boolean;
  /** the queue's size when it was paused (0 when resumed: it drained) */
  queued: number;
  /** what the caller named the destination */
  label: string;
}

export class BackPressure {
  /** destination → the sources paused until it drains, and its label */
  private readonly held = new Map<Channel, { sources: Set<Channel>; label: string }>();
  private pauses = 0;

  constructor(
    private readonly onChange: (c: PressureChange) => void,
    private readonly highWater = HIGH_WATER,
  ) {}

  /** After `source`'s message went to `destination`, which now has `queued` bytes waiting. */
  afterSend(source: Channel | undefined, destination: Channel, queued: number, label: string): void {
    if (queued <= this.highWater || !source) return;
    let h = this.held.get(destination);
    if (!h) {
      h = { sources: new Set(), label };
      this.held.set(destination, h);
    }
    if (h.sources.has(source)) return;
    source.pause();
    h.sources.add(source);
    this.pauses++;
    this.onChange({ paused: true, queued, label });
  }

  /** `destination`'s queue is empty: read its sources again. */
  drained(destination: Channel): void {
    const h = this.held.get(destination);
    if (!h) return;
    this.held.delete(destination);
    for (const source of h.sources) source.start();
    this.onChange({ paused: false, queued: 0, label: h.label });
  }

  /** A channel that closes is neither a destination nor a source any more. */
  forget(channel: Channel): void {
    this.held.delete(channel);
    for (const h of this.held.values()) h.sources.delete(channel);
  }

  /** How often a sender was paused, and how many are paused now. */
  snapshot(): { pauses: number; pausedNow: number } {
    let pausedNow = 0;
    for (const h of this.held.values()) pausedNow += h.sources.size;
    return { pauses: this.pauses, pausedNow };
  }
}
