/**
 * The whole surface of the native addon (native/*.cc), written down once.
 *
 * The addon does syscalls and polling only: sockets with SCM_RIGHTS on the libuv loop,
 * message framing, eventfd/memfd, fd identification. Every decision (what is valid,
 * when to retry, what to log, when to close) is made in TypeScript by its callers.
 *
 * fd ownership: an fd handed to `Channel.send` belongs to the channel from then on (it is
 * closed once sent, or when the channel closes). fds delivered by `onMessage` belong to
 * the receiver of the callback, which must forward or close each one.
 */

/** How a Channel's stream ended abnormally. A clean EOF between messages is reported as `null`. */
export interface ChannelEnd {
  /** EOF_MID_MESSAGE | OVERSIZE | CTRUNC | EREAD | EWRITE | EPOLL */
  code: 'EOF_MID_MESSAGE' | 'OVERSIZE' | 'CTRUNC' | 'EREAD' | 'EWRITE' | 'EPOLL';
  errno: number;
  message: string;
  /** the header bytes received so far (up to 12) */
  header: Buffer;
  payloadReceived: number;
  payloadExpected: number;
}

export type OnMessage = (message: Buffer, fds: number[], monotonicNs: bigint) => void;
export type OnEnd = (end: ChannelEnd | null) => void;

export interface Channel {
  /** Start (or resume) reading messages. */
  start(): void;
  /** Send one whole message with its fds in one sendmsg; returns the bytes still queued. Throws an errno error. */
  send(message: Buffer, fds?: number[]): number;
  /** Stop polling, close the socket and every fd still held (queued or half-received). Idempotent. */
  close(): void;
  readonly fd: number;
  readonly queuedBytes: number;
}

export interface ChannelConstructor {
  /** Takes ownership of `fd`. `maxPayload`: a header announcing more ends the stream with OVERSIZE. */
  new (fd: number, maxPayload: number, onMessage: OnMessage, onEnd: OnEnd): Channel;
}

export interface Listener {
  close(): void;
}

export interface ListenerConstructor {
  /** Takes ownership of a listening socket fd and accepts at once; each accepted fd is non-blocking and CLOEXEC. */
  new (fd: number, onConnection: (err: NodeJS.ErrnoException | null, fd: number | null) => void): Listener;
}

export interface RelayPairStats {
  /** sum of the counts read from the source */
  read: number;
  /** sum of the counts written to the destination */
  written: number;
  /** number of reads (each may carry a coalesced count) */
  notifications: number;
  writeErrors: number;
}

export interface RelayStats {
  /** CPU time of the relay thread so far */
  threadCpuNs: number;
  notifications: number;
  /** events the ring had no room for (the notification itself was still relayed) */
  droppedEvents: number;
  pairs: number;
  niceApplied: boolean;
}

/**
 * A native thread that relays eventfd counts from each pair's source to its destination,
 * timestamping every relayed notification into a lock-free ring that JS drains in batches.
 */
export interface Relay {
  /** Takes ownership of both fds; returns the pair id (never reused). */
  addPair(src: number, dst: number): number;
  /** Stops relaying, closes both fds; returns the pair's final counts, or null if unknown. */
  removePair(id: number): RelayPairStats | null;
  /** Events since the last drain: 16 bytes each, u64 ts (CLOCK_MONOTONIC ns), u32 pair id, u32 count (LE). */
  drain(): Buffer;
  pairStats(id: number): RelayPairStats | null;
  stats(): RelayStats;
  /** Joins the thread and closes every pair's fds. Idempotent. */
  stop(): void;
}

export interface RelayConstructor {
  /**
   * spinNs: after relaying, keep polling this long before sleeping (lower latency, more CPU);
   * nice: the relay thread's niceness (negative needs CAP_SYS_NICE; stats().niceApplied tells);
   * cpu: pin the relay thread to this CPU (-1 or absent: the scheduler chooses)
   */
  new (ringCapacity: number, spinNs?: number, nice?: number, cpu?: number): Relay;
}

export type FdKind = 'eventfd' | 'memfd' | 'socket' | 'file' | 'hugetlbfs' | 'pipe' | 'other';

export interface FdInfo {
  kind: FdKind;
  /** readlink of /proc/self/fd/N, e.g. "anon_inode:[eventfd]", "/memfd:qemu (deleted)", "socket:[123]" */
  target: string;
  size: number;
  inode: number;
  blockSize: number;
  hugetlb: boolean;
  /** for memfds (also hugetlb memfds) */
  memfdName?: string;
  /** F_GET_SEALS where the fd supports sealing */
  seals?: number;
  /** eventfd-id from /proc/self/fdinfo: tells eventfds apart (they all share one inode) */
  eventfdId?: number;
}

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface NativeAddon {
  Channel: ChannelConstructor;
  Listener: ListenerConstructor;
  Relay: RelayConstructor;
  /** bind + chmod(mode) + listen; the path must not exist. */
  listenUnix(path: string, backlog: number, mode: number): number;
  /** Non-blocking connect; throws ENOENT/ECONNREFUSED/EAGAIN for the caller to retry. */
  connectUnix(path: string): number;
  /** True if something accepts connections on path. */
  probeUnix(path: string): boolean;
  socketpair(): [number, number];
  close(fd: number): void;
  dup(fd: number): number;
  eventfd(initial: number): number;
  eventfdWrite(fd: number, count: number): void;
  /** null when the counter is zero */
  eventfdRead(fd: number): bigint | null;
  memfdCreate(name: string, size: number): number;
  peerCred(fd: number): PeerCred;
  fdInfo(fd: number): FdInfo;
  /** CLOCK_MONOTONIC in ns, the clock of every timestamp the addon hands out (= process.hrtime.bigint()) */
  monotonicNs(): bigint;
}
