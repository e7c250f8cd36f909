/**
 * What `status` reports of a daemon and its sessions: read by the control socket, `top`, the
 * metrics and the CLI's views, written by the proxy.
 */
import type { RelayStats } from '../native';
import type { ActiveRule } from '../faults';
import type { RelayPairSummary } from './events';
import type { VringStats } from './notification-stats';

/** Which of our two sockets a peer is on. */
export type Position = 'listen' | 'connect';
export type FrontendPosition = Position | 'auto';

export interface SessionStatus {
  session: number;
  frontend: Position | 'not yet known';
  channels: string[];
  messages: { 'F>B': number; 'B>F': number };
  fdsForwarded: number;
  /** how often a sender was paused because its peer was not reading, and how many are now */
  backpressure: { pauses: number; pausedNow: number };
  features: { offered?: string; acked?: string; ackedNames?: string[]; protocolInUse?: string[] };
  vrings: VringStats[];
  /** each ring's spec state (started/stopped x enabled/disabled), from the messages the back-end received */
  ringStates?: { vring: number; started: boolean; enabled: boolean }[];
  relayPairs: RelayPairSummary[];
  faults?: { held: string[]; queued: number };
}

export interface DaemonStatus {
  pid: number;
  listen: string;
  connect: string;
  uptimeS: number;
  interpose: boolean;
  /** --observe: eventfds watched, not relayed */
  observe?: boolean;
  pendingConnects: number;
  sessions: SessionStatus[];
  /** the relay thread's counters and transit histogram (top takes its percentiles per interval) */
  relay?: RelayStats;
  /** per relay thread (--relay-threads): sessions served, CPU time, notifications picked up */
  relayThreads?: { sessions: number; threadCpuNs: number; notifications: number }[];
  rules: ActiveRule[];
}
