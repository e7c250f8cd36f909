/**
 * Follows each session's evidence of which virtio device it carries (src/protocol/
 * device-inference.ts) as events go by, and says when a session's best guess changes: the
 * proxy logs it and names feature bits by it, the recorder keeps it with its reason.
 */
import {
  decoders,
  guessFromCommandLine,
  guessFromConfigSize,
  guessFromGpuSocket,
  HEADER_SIZE,
  parseHeader,
  Request,
  strongerGuess,
  type DeviceGuess,
} from '../protocol';
import type { ProxyEvent } from './events';

export class DeviceTracker {
  private readonly guesses = new Map<number, DeviceGuess>();

  /** Feeds one event; returns the session's new guess when it changed. */
  observe(e: ProxyEvent): DeviceGuess | undefined {
    let g: DeviceGuess | undefined;
    if (e.type === 'session-start') {
      for (const [pos, p] of Object.entries(e.peers)) g = strongerGuess(g, p ? guessFromCommandLine(`peer on the ${pos} side`, p.cmdline, p.exe) : undefined);
    } else if (e.type === 'message' && e.channel === 'main' && e.raw.length >= HEADER_SIZE) {
      // from the bytes (the recorder sees events from any source, decoded or not)
      const h = parseHeader(e.raw);
      if (h.request === Request.GPU_SET_SOCKET && e.dir === 'F>B') g = guessFromGpuSocket();
      else if (h.request === Request.GET_CONFIG && e.dir === 'B>F' && e.raw.length > HEADER_SIZE + 12)
        g = guessFromConfigSize(Number(decoders.config(e.raw.subarray(HEADER_SIZE)).size));
    } else if (e.type === 'session-end') {
      this.guesses.delete(e.session);
      return undefined;
    }
    if (!g) return undefined;
    const before = this.guesses.get(e.session);
    const now = strongerGuess(before, g)!;
    if (now === before) return undefined;
    this.guesses.set(e.session, now);
    return before?.device === now.device ? undefined : now;
  }

  guess(session: number): DeviceGuess | undefined {
    return this.guesses.get(session);
  }
}
