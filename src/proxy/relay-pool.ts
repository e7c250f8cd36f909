/**
 * The daemon's relay threads (--relay-threads N, default 1). Where one relay thread saturates a
 * CPU, sessions shard over more threads. A session's pairs and rings all stay on one thread (a
 * ring snapshot is taken by the thread that relays the kick or call); a new session goes to the
 * thread serving the fewest sessions.
 */
import type { RelayStats } from '../native';
import { RelayHub } from './relay-hub';

export interface RelayAssignment {
  hub: RelayHub;
  /** which thread (0-based), for logs and placement */
  thread: number;
  /** the session ended: its thread serves one fewer */
  release(): void;
}

/** The sum of several relay threads' figures (CPU time, counts, transit histogram). */
export function sumRelayStats(all: RelayStats[]): RelayStats | undefined {
  if (!all.length) return undefined;
  const buckets: number[] = [];
  for (const s of all) s.transitBuckets.forEach((n, i) => (buckets[i] = (buckets[i] ?? 0) + n));
  return {
    threadCpuNs: all.reduce((a, s) => a + s.threadCpuNs, 0),
    notifications: all.reduce((a, s) => a + s.notifications, 0),
    droppedEvents: all.reduce((a, s) => a + s.droppedEvents, 0),
    pairs: all.reduce((a, s) => a + s.pairs, 0),
    niceApplied: all.every((s) => s.niceApplied),
    droppedSnapshots: all.reduce((a, s) => a + s.droppedSnapshots, 0),
    observerRealtime: all.some((s) => s.observerRealtime),
    transitBuckets: buckets,
    transitSumNs: all.reduce((a, s) => a + s.transitSumNs, 0),
  };
}

export class RelayPool {
  private readonly hubs: RelayHub[];
  private readonly sessions: number[];

  constructor(threads: number, spinUs: number, nice: number, cpu: number, observe = false, observeRealtime = true) {
    if (!Number.isInteger(threads) || threads < 1) throw new Error(`relay threads: ${threads} (at least 1)`);
    this.hubs = Array.from({ length: threads }, () => new RelayHub(spinUs, nice, cpu, observe, observeRealtime));
    this.sessions = this.hubs.map(() => 0);
  }

  get threads(): number {
    return this.hubs.length;
  }

  /** Starts every thread now (a daemon's fd count stays constant after start). */
  start(): void {
    for (const h of this.hubs) h.start();
  }

  /** The thread for a new session: the one serving the fewest (the lowest on a tie). */
  assign(): RelayAssignment {
    const thread = this.sessions.indexOf(Math.min(...this.sessions));
    this.sessions[thread]++;
    let released = false;
    return {
      hub: this.hubs[thread],
      thread,
      release: () => {
        if (released) return;
        released = true;
        this.sessions[thread]--;
      },
    };
  }

  /** Sessions served per thread. */
  load(): number[] {
    return [...this.sessions];
  }

  /** All threads' figures summed. */
  stats(): RelayStats | undefined {
    return sumRelayStats(this.threadStats().filter((s): s is RelayStats => s !== undefined));
  }

  /** Each thread's own figures (undefined for a thread not started). */
  threadStats(): (RelayStats | undefined)[] {
    return this.hubs.map((h) => h.stats());
  }

  stop(): void {
    for (const h of this.hubs) h.stop();
  }
}
