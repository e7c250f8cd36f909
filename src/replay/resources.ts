/**
 * Fresh resources of the recorded kinds and sizes for a replayed request: memfds for guest
 * memory, log and inflight areas; eventfds; socketpairs for the backend channel and the GPU
 * socket. The replayer keeps its own copy of each (the peer's copy is sent and closed).
 */
import { native } from '../native';
import type { FdDescription } from '../events/events';

export interface Made {
  /** fds to send (the channel takes ownership) */
  send: number[];
  /** our copies, closed when the replay ends */
  keep: number[];
  /** for socket kinds: our end, to serve that channel */
  sockets: number[];
}

export function makeFds(fds: FdDescription[], context: string): Made {
  const made: Made = { send: [], keep: [], sockets: [] };
  for (const d of fds) {
    if (d.kind === 'eventfd') {
      const e = native.eventfd(0);
      made.send.push(e);
      made.keep.push(native.dup(e));
    } else if (d.kind === 'socket') {
      const [ours, theirs] = native.socketpair();
      made.send.push(theirs);
      made.sockets.push(ours);
    } else {
      // guest memory, log, inflight, anything else with a size: a sparse memfd of that size
      const m = native.memfdCreate(`vhostscope-replay-${context}`, Math.max(d.size ?? 4096, 4096));
      made.send.push(m);
      made.keep.push(native.dup(m));
    }
  }
  return made;
}
