/**
 * Finds a peer that holds fds in an unfinished message: each channel may hold up to 64 for as
 * long as it likes otherwise, and a thousand sessions doing so fill the daemon's fd table. A real
 * peer sends a message's bytes with its fds at once.
 */
import type { Channel } from '../native';

export class HeldFdWatch {
  /** per channel, the fds it held for an unfinished message at the last check and since when */
  private readonly held = new Map<Channel, { fds: number; sinceMs: number }>();

  /**
   * Checks each channel (with the peer it reads from, for the reason): the reason to end the
   * session when one has held fds for `timeoutMs`, else undefined.
   */
  check(channels: [Channel, string][], nowMs: number, timeoutMs: number): string | undefined {
    for (const [ch, who] of channels) {
      const fds = ch.heldFds;
      const h = this.held.get(ch);
      if (!fds) {
        this.held.delete(ch);
        continue;
      }
      if (!h || fds < h.fds) {
        this.held.set(ch, { fds, sinceMs: nowMs }); // a new message (fewer held than before: the last one completed)
        continue;
      }
      h.fds = fds;
      if (nowMs - h.sinceMs >= timeoutMs)
        return `${who} has held ${fds} fd${fds > 1 ? 's' : ''} in an unfinished message for ${Math.round((nowMs - h.sinceMs) / 1000)} s; a peer sends a message's bytes with its fds`;
    }
    return undefined;
  }
}
