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
  /** EOF_MID_MESSAGE | OVERSIZE | CTRUNC | TOO_MANY_FDS (more than 64 held for one unfinished message) | EREAD | EWRITE | EPOLL */
  code: 'EOF_MID_MESSAGE' | 'OVERSIZE' | 'CTRUNC' | 'TOO_MANY_FDS' | 'EREAD' | 'EWRITE' | 'EPOLL';
  errno: number;
  message: string;
  /** the header bytes received so far (up to 12) */
  header: Buffer;
  payloadReceived: number;
  payloadExpected: number;
}

/**
 * `fdsAt`: how many bytes of the message had arrived before its first fd (0 with the header's
 * first byte, as the spec asks; 0 too when it carried none).
 */
export type OnMessage = (message: Buffer, fds: number[], monotonicNs: bigint, fdsAt: number) => void;
export type OnEnd = (end: ChannelEnd | null) => void;
/** The write queue, which was not empty, is empty now. */
export type OnDrain = () => void;

export interface Channel {
  /** Start (or resume) reading messages. */
  start(): void;
  /** Stop reading until start(): the peer's further writes wait in its socket (back-pressure). */
  pause(): void;
  /** Send one whole message with its fds in one sendmsg; returns the bytes still queued. Throws an errno error. */
  send(message: Buffer, fds?: number[]): number;
  /** Stop polling, close the socket and every fd still held (queued or half-received). Idempotent. */
  close(): void;
  readonly fd: number;
  readonly queuedBytes: number;
  /** fds that arrived with the message being read, not yet whole (0 between messages) */
  readonly heldFds: number;
}

export interface ChannelConstructor {
  /** Takes ownership of `fd`, even when it throws (the fd is closed then). `maxPayload`: a header announcing more ends the stream with OVERSIZE. */
  new (fd: number, maxPayload: number, onMessage: OnMessage, onEnd: OnEnd, onDrain?: OnDrain): Channel;
}

export interface Listener {
  close(): void;
  /** Stops accepting; connections wait in the backlog (after an accept that failed for want of fds). */
  pause(): void;
  /** Accepts again. */
  resume(): void;
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
  /** this pair's relay transits, bucketed as RelayStats.transitBuckets */
  transitBuckets: number[];
  transitSumNs: number;
}

export interface RelayStats {
  /** CPU time of the relay thread so far */
  threadCpuNs: number;
  notifications: number;
  /** events the ring had no room for (the notification itself was still relayed) */
  droppedEvents: number;
  pairs: number;
  niceApplied: boolean;
  /** ring snapshots not kept because JS had not drained 16 MiB of them */
  droppedSnapshots: number;
  /** the observer thread (--observe) runs at SCHED_FIFO 1 (false: not started, no privilege, or given up under a flood) */
  observerRealtime: boolean;
  /**
   * Relay transit of each first notification of a burst: from the thread's wake-up to the
   * count read and the write to the destination issued (not the scheduler's wake-up latency
   * before it, nor the write, during which a peer it wakes on the same CPU may preempt it). Bucket i counts
   * transits in [2^i, 2^(i+1)) ns; the last bucket also holds everything longer.
   */
  transitBuckets: number[];
  transitSumNs: number;
}

/**
 * A native thread that relays eventfd counts from each pair's source to its destination,
 * timestamping every relayed notification into a lock-free ring that JS drains in batches.
 */
export interface Relay {
  /** Takes ownership of both fds; returns the pair id (never reused). */
  addPair(src: number, dst: number): number;
  /**
   * Takes ownership of `fd` (a dup of a peer's eventfd) and records every write to it without
   * reading it: the peers keep their own eventfd. A second thread of the relay watches it with an
   * io_uring poll; writes closer together than that thread's wake-up are seen as one. Returns the
   * pair id (its stats count wake-ups seen as notifications; read and written stay 0). Throws
   * (and closes fd) when the kernel refuses io_uring.
   */
  addWatch(fd: number): number;
  /** Stops relaying, closes both fds; returns the pair's final counts, or null if unknown. */
  removePair(id: number): RelayPairStats | null;
  /**
   * Copies the oldest waiting events into `into` (16 bytes each, u64 ts (CLOCK_MONOTONIC ns),
   * u32 pair id, u32 count, LE) and returns how many; as many as fit, so a full buffer means
   * call again. The caller's buffer is reused: draining allocates nothing.
   */
  drain(into: Buffer): number;
  pairStats(id: number): RelayPairStats | null;
  stats(): RelayStats;
  /** Joins the thread and closes every pair's fds. Idempotent. */
  stop(): void;
  /**
   * Moves the relay thread to one CPU (-1: back to every CPU the process may use); false if it
   * could not. yieldWhileSpinning: the peers the relay wakes run on that CPU too, so its polling
   * after a notification yields to them (never next to a busy-polling thread).
   */
  setCpu(cpu: number, yieldWhileSpinning?: boolean): boolean;
  /**
   * Where a vring is (front-end virtual addresses of SET_VRING_ADDR, read through `memory`),
   * and from which avail/used index on to report (split: indices; packed: position | wrap << 15).
   * headerBytes: bytes of buffer contents copied per chain (0: indices and descriptors only).
   * Replaces an earlier ring of the same id.
   */
  setRing(
    ringId: number,
    memory: GuestMemory,
    desc: bigint,
    avail: bigint,
    used: bigint,
    num: number,
    packed: boolean,
    headerBytes: number,
    lastAvail: number,
    lastUsed: number,
  ): void;
  /** From now on every notification this pair relays snapshots the ring (kind 0: kick, 1: call). Returns false for an unknown pair. */
  attachRing(pairId: number, ringId: number, kind: 0 | 1): boolean;
  removeRing(ringId: number): void;
  /** The ring's indices now, as one snapshot record of kind 2 ("base"), or null for an unknown ring. */
  snapshotRing(ringId: number): Buffer | null;
  /**
   * Copies whole waiting snapshot records (layout: src/rings/snapshot.ts) into `into`, oldest
   * first, and returns their bytes (0: none waiting); -N when the next record alone needs N
   * bytes, more than `into` has (grow it and call again).
   */
  drainRings(into: Buffer): number;
}

/**
 * Read-only views of the guest-memory fds of one session. A read can never fault: a file the
 * kernel keeps from shrinking (F_SEAL_SHRINK) is read through a mapping, any other with
 * pread(), so a file shrunk by a peer gives an error in the snapshot, never SIGBUS.
 */
export interface GuestMemory {
  /** Adds a region of the file (mapped whole and read-only when sealed). Takes ownership of fd; throws (EINVAL: the region is not inside the file). */
  add(fd: number, gpa: bigint, size: bigint, uaddr: bigint, mmapOffset: bigint): void;
  /** Unmaps the region with this guest address and size; false if there was none. */
  remove(gpa: bigint, size: bigint): boolean;
  /** Unmaps everything (the mappings also go when the last reference goes). */
  clear(): void;
  readonly regions: number;
  /** How many regions are read through a mapping: files sealed against shrinking. The others
   * are read with pread(), which cannot fault when a peer shrinks the file. */
  readonly mapped: number;
}

export interface GuestMemoryConstructor {
  new (): GuestMemory;
}

export interface RelayConstructor {
  /**
   * spinNs: after relaying, keep polling this long before sleeping (lower latency, more CPU);
   * nice: the relay thread's niceness (negative needs CAP_SYS_NICE; stats().niceApplied tells);
   * cpu: pin the relay thread to this CPU (-1 or absent: the scheduler chooses);
   * observerRealtime: run the observer thread (addWatch) at SCHED_FIFO 1 where allowed (default true)
   */
  new (ringCapacity: number, spinNs?: number, nice?: number, cpu?: number, observerRealtime?: boolean): Relay;
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
  /**
   * a file on a FUSE or network file system, its type ("fuse", "nfs4", ...): described from
   * /proc only (an fstat would ask its server, which may never answer), size 0
   */
  remote?: string;
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
  GuestMemory: GuestMemoryConstructor;
  /** bind + chmod(mode) + listen; the path must not exist. */
  listenUnix(path: string, backlog: number, mode: number): number;
  /** Non-blocking connect; throws ENOENT/ECONNREFUSED/EAGAIN for the caller to retry. */
  connectUnix(path: string): number;
  /** True if something accepts connections on path. */
  probeUnix(path: string): boolean;
  /** Both ends non-blocking and close-on-exec. */
  socketpair(): [number, number];
  /** [read end, write end], blocking and close-on-exec (the end a peer gets stays blocking). */
  pipe(): [number, number];
  /** Whether O_NONBLOCK is set on the fd's open file description. */
  nonblocking(fd: number): boolean;
  /** Sets or clears O_NONBLOCK (every copy of the fd shares it, the peer's too once passed). */
  setNonblocking(fd: number, on: boolean): void;
  close(fd: number): void;
  /**
   * Closes an fd a peer sent: at once, or, for a file whose close may wait for its file system
   * (FUSE's FLUSH, a server that never answers), on a thread of its own. Never blocks.
   */
  closeForeign(fd: number): void;
  /** fds given to that thread and not closed yet */
  pendingForeignCloses(): number;
  dup(fd: number): number;
  eventfd(initial: number): number;
  eventfdWrite(fd: number, count: number): void;
  /** null when the counter is zero */
  eventfdRead(fd: number): bigint | null;
  /** sealShrink: seal against shrinking and growing (as QEMU's memory-backend-memfd does) */
  memfdCreate(name: string, size: number, sealShrink?: boolean): number;
  peerCred(fd: number): PeerCred;
  /**
   * Shuts down a socket another process holds as its fd `fd` (pidfd_getfd, then shutdown both
   * ways): both ends see the connection end, if that fd is still the socket `inode` (else it
   * throws and touches nothing). Needs ptrace access to that process (root). Throws.
   */
  shutdownPeerSocket(pid: number, fd: number, inode: number): void;
  fdInfo(fd: number): FdInfo;
  /** CLOCK_MONOTONIC in ns, the clock of every timestamp the addon hands out (= process.hrtime.bigint()) */
  monotonicNs(): bigint;
  /** glibc's heap figures over every arena (mallinfo2) */
  mallocStats(): MallocStats;
}

/** glibc's malloc over every arena, in bytes (mallinfo2). */
export interface MallocStats {
  /** taken from the kernel by brk/mmap'ed heaps */
  arenaBytes: number;
  /** in chunks mmap()ed one by one (large allocations) */
  mmappedBytes: number;
  inUseBytes: number;
  /** free inside the arenas (resident unless whole pages of it were given back) */
  freeBytes: number;
  /** free at the top of the main heap */
  releasableBytes: number;
}
