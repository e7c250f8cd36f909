/**
 * Back-pressure between the two peers of a session. The proxy never drops or reorders a
 * control message, so when one peer stops reading, what the other sends must wait somewhere:
 * not in the daemon (that would grow without bound) but in the sender's own socket. Once a
 * channel has more than HIGH_WATER bytes queued towards a peer, the channel those messages
 * came from is paused (the addon stops reading it); when the queue has drained, it is read
 * again. The daemon holds at most HIGH_WATER bytes and FD_HIGH_WATER fds plus one message per
 * direction.
 */
import type { Channel } from '../native';

/** Bytes queued towards a peer beyond which the sender is paused. */
export const HIGH_WATER = 1 << 20;
/**
 * ... or fds: a megabyte of 20-byte messages that each carry one would be 52 000 fds held in
 * the daemon's table (which every session shares).
 */
export const FD_HIGH_WATER = 256;

export interface PressureChange {
  /** true: `source` is paused now; false: it is read again */
  paused: boolean;
  /** the queue's size when it was paused (0 when resumed: it drained) */
  queued: number;
  /** fds sent towards it since it last drained, when it was paused */
  fds?: number;
  /** what the caller named the destination */
  label: string;
}

export class BackPressure {
  /** destination → the sources paused until it drains, and its label */
  private readonly held = new Map<Channel, { sources: Set<Channel>; label: string }>();
  /** fds sent towards a destination since it last drained: an upper bound on what its queue holds */
  private readonly fdsSince = new Map<Channel, number>();
  private pauses = 0;

  constructor(
    private readonly onChange: (c: PressureChange) => void,
    private readonly highWater = HIGH_WATER,
    private readonly fdHighWater = FD_HIGH_WATER,
  ) {}

  /** After `source`'s message (with `fds` fds) went to `destination`, which now has `queued` bytes waiting. */
  afterSend(source: Channel | undefined, destination: Channel, queued: number, label: string, fds = 0): void {
    let fdsQueued = 0;
    if (queued === 0) this.fdsSince.delete(destination);
    else if (fds) this.fdsSince.set(destination, (fdsQueued = (this.fdsSince.get(destination) ?? 0) + fds));
    else fdsQueued = this.fdsSince.get(destination) ?? 0;
    if ((queued <= this.highWater && fdsQueued <= this.fdHighWater) || !source) return;
    let h = this.held.get(destination);
    if (!h) {
      h = { sources: new Set(), label };
      this.held.set(destination, h);
    }
    if (h.sources.has(source)) return;
    source.pause();
    h.sources.add(source);
    this.pauses++;
    this.onChange({ paused: true, queued, label, ...(fdsQueued ? { fds: fdsQueued } : {}) });
  }

  /** `destination`'s queue is empty: read its sources again. */
  drained(destination: Channel): void {
    this.fdsSince.delete(destination);
    const h = this.held.get(destination);
    if (!h) return;
    this.held.delete(destination);
    for (const source of h.sources) source.start();
    this.onChange({ paused: false, queued: 0, label: h.label });
  }

  /** A channel that closes is neither a destination nor a source any more. */
  forget(channel: Channel): void {
    this.held.delete(channel);
    this.fdsSince.delete(channel);
    for (const h of this.held.values()) h.sources.delete(channel);
  }

  /** How often a sender was paused, and how many are paused now. */
  snapshot(): { pauses: number; pausedNow: number } {
    let pausedNow = 0;
    for (const h of this.held.values()) pausedNow += h.sources.size;
    return { pauses: this.pauses, pausedNow };
  }
}
