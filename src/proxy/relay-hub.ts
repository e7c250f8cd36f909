/**
 * The daemon's one native relay thread, shared by all sessions. Drains the relay's event ring
 * from a JS timer (a batch every few ms: waking JS per event costs more than it tells) and
 * routes each event to the session that owns the pair.
 */
import { native, type GuestMemory, type Relay, type RelayPairStats } from '../native';
import { decodeSnapshots, type RingSnapshot } from '../rings/snapshot';

export interface RelayEvent {
  ts: bigint;
  count: number;
}

export type PairListener = (e: RelayEvent) => void;
export type RingListener = (s: RingSnapshot, raw: Buffer) => void;

const DRAIN_MS = 10;
/** the relay's event ring: what JS has not drained beyond it is dropped and counted */
const RING_EVENTS = 1 << 16;
/** events copied per native call (16 bytes each): the hub's buffer, reused by every drain */
const EVENT_BATCH = 4096;
/** the snapshot buffer's first size; it grows to the largest record seen */
const SNAPSHOT_BUFFER = 256 << 10;
/** a drain stops after this many snapshot buffers: the relay may produce them as fast as we read */
const MAX_SNAPSHOT_DRAINS = 64;
/** a quiet relay is drained this rarely: a busy-polling peer loses no CPU to our wake-ups */
const IDLE_DRAIN_MS = 250;
/**
 * Measured here (2 vCPUs, bench/notify.js): a sleeping relay thread adds a wake-up of ~30-60 µs
 * per hop on a virtual CPU; polling for 50 µs after each notification brings a cross-CPU
 * eventfd round trip through two relay hops to ~17 µs (direct cross-CPU: ~60 µs), at the cost
 * of up to 50 µs of relay CPU per burst. --relay-spin-us 0 trades that latency for CPU.
 */
export const DEFAULT_SPIN_US = 50;
/**
 * Relay thread niceness. A negative value (root only) was measured to make no difference to
 * the guest ping RTT with busy-polling testpmd and a TCG vCPU on the two CPUs (1.04 ms at
 * both 0 and -10), so the default leaves the scheduler alone.
 */
export const DEFAULT_NICE = 0;

export class RelayHub {
  private relay: Relay | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly listeners = new Map<number, PairListener>();
  private readonly ringListeners = new Map<number, RingListener>();
  private nextRing = 1;
  private readonly events = Buffer.allocUnsafeSlow(EVENT_BATCH * 16);
  private snapshots = Buffer.allocUnsafeSlow(SNAPSHOT_BUFFER);
  private draining = false;

  /** spinUs: how long the relay thread keeps polling after a notification before it sleeps */
  constructor(
    private readonly spinUs = DEFAULT_SPIN_US,
    private readonly nice = DEFAULT_NICE,
    private readonly cpu = -1,
    /** sessions on this hub watch the peers' eventfds (--observe) instead of relaying them */
    readonly observe = false,
    /** the observer thread at real-time priority where allowed (--observe-priority) */
    private readonly observeRealtime = true,
  ) {}

  /** Starts the relay thread now rather than with the first pair (a daemon's fds stay constant). */
  start(): void {
    this.ensure();
  }

  private ensure(): Relay {
    if (!this.relay) {
      this.relay = new native.Relay(RING_EVENTS, this.spinUs * 1000, this.nice, this.cpu, this.observeRealtime);
      this.schedule(DRAIN_MS);
    }
    return this.relay;
  }

  /** Drains every DRAIN_MS while notifications flow, backing off to IDLE_DRAIN_MS when quiet. */
  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      const n = this.drain();
      if (this.relay) this.schedule(n > 0 ? DRAIN_MS : Math.min(ms * 2, IDLE_DRAIN_MS));
    }, ms);
    this.timer.unref();
  }

  /** Relays src → dst (both fds owned by the relay from now on). */
  add(src: number, dst: number, listener: PairListener): number {
    const id = this.ensure().addPair(src, dst);
    this.listeners.set(id, listener);
    return id;
  }

  /** Watches `fd` (a dup of a peer's eventfd, owned by the relay from now on) without reading it. */
  watch(fd: number, listener: PairListener): number {
    const id = this.ensure().addWatch(fd);
    this.listeners.set(id, listener);
    return id;
  }

  /** Delivers the pair's pending events, then stops it and closes its fds. */
  remove(id: number): RelayPairStats | null {
    if (!this.relay) return null;
    this.drain();
    this.listeners.delete(id);
    return this.relay.removePair(id);
  }

  pairStats(id: number): RelayPairStats | null {
    return this.relay?.pairStats(id) ?? null;
  }

  stats(): ReturnType<Relay['stats']> | undefined {
    return this.relay?.stats();
  }

  /**
   * Delivers every event (and ring snapshot) waiting; returns how many events there were.
   * The relay copies into buffers kept here, so a drain allocates nothing (fresh native
   * buffers every 10 ms, sized by the backlog, fragmented glibc's heap over the 30-minute
   * soak). A listener may drain again (a session that ends removes its pairs): that nested
   * drain gets buffers of its own, since the outer one is still reading these.
   */
  drain(): number {
    if (!this.relay) return 0;
    const nested = this.draining;
    this.draining = true;
    try {
      const events = nested ? Buffer.allocUnsafe(this.events.length) : this.events;
      let total = 0;
      // at most the relay's ring once over: a flood cannot keep this loop going
      for (let i = 0, n = EVENT_BATCH; n === EVENT_BATCH && i < RING_EVENTS / EVENT_BATCH; i++) {
        n = this.relay.drain(events);
        for (let off = 0; off < n * 16; off += 16) {
          const id = events.readUInt32LE(off + 8);
          this.listeners.get(id)?.({ ts: events.readBigUInt64LE(off), count: events.readUInt32LE(off + 12) });
        }
        total += n;
      }
      if (this.ringListeners.size) this.drainSnapshots(nested);
      return total;
    } finally {
      this.draining = nested;
    }
  }

  /** Snapshot records until none are left, each handed on as a copy (the buffer is reused). */
  private drainSnapshots(nested: boolean): void {
    let buf = nested ? Buffer.allocUnsafe(this.snapshots.length) : this.snapshots;
    for (let i = 0; i < MAX_SNAPSHOT_DRAINS && this.relay; i++) {
      const n = this.relay.drainRings(buf);
      if (n === 0) return;
      if (n < 0) {
        // one record larger than the buffer (a big ring with headers): grow once, keep it
        buf = Buffer.allocUnsafeSlow(-n);
        if (!nested) this.snapshots = buf;
        continue;
      }
      for (const { snapshot, raw } of decodeSnapshots(buf.subarray(0, n))) this.ringListeners.get(snapshot.ring)?.(snapshot, Buffer.from(raw));
    }
  }

  /** Moves the relay thread to one CPU (-1: anywhere); false if it could not. See Relay.setCpu. */
  setCpu(cpu: number, yieldWhileSpinning = false): boolean {
    return this.ensure().setCpu(cpu, yieldWhileSpinning);
  }

  /** A ring id for a session's vring, whose snapshots go to `listener`. */
  allocRing(listener: RingListener): number {
    const id = this.nextRing++;
    this.ringListeners.set(id, listener);
    return id;
  }

  setRing(
    id: number,
    mem: GuestMemory,
    desc: bigint,
    avail: bigint,
    used: bigint,
    num: number,
    packed: boolean,
    headerBytes: number,
    lastAvail: number,
    lastUsed: number,
  ): void {
    this.ensure().setRing(id, mem, desc, avail, used, num, packed, headerBytes, lastAvail, lastUsed);
  }

  attachRing(pairId: number, ringId: number, kind: 0 | 1): boolean {
    return this.relay?.attachRing(pairId, ringId, kind) ?? false;
  }

  /** The ring's indices now (a "base" snapshot), after delivering what was pending. */
  snapshotRing(id: number): { snapshot: RingSnapshot; raw: Buffer } | undefined {
    if (!this.relay) return undefined;
    this.drain();
    const buf = this.relay.snapshotRing(id);
    return buf ? decodeSnapshots(buf)[0] : undefined;
  }

  freeRing(id: number): void {
    this.drain();
    this.relay?.removeRing(id);
    this.ringListeners.delete(id);
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.drain();
    this.relay?.stop();
    this.relay = undefined;
    this.listeners.clear();
  }
}
