/**
 * What a session sees of the data path: the vring eventfds relayed through the relay thread
 * (interposer.ts), the rings snapshotted at each kick and call and the migration's dirty log
 * (--rings), and the per-vring notification figures they add up to. The session owns one and
 * asks it for figures; every event it emits carries the session's id.
 */
import { native } from '../native';
import type { DeviceType, Negotiation } from '../protocol';
import { relayPairSummary, type ProxyEvent, type RelayPairSummary } from '../events/events';
import { NotificationStats, type NotificationKind } from '../events/notification-stats';
import { Interposer } from './interposer';
import type { RelayHub } from './relay-hub';
import { RingTracker, type RingsMode } from './ring-tracker';
import { DirtyLogReader, type DirtyLogResult } from './dirty-log-reader';
import { InflightReader, type InflightReading } from './inflight-reader';

export interface DataPathOptions {
  session: number;
  emit: (e: ProxyEvent) => void;
  /** interpose vring eventfds through this relay; undefined = pass them through */
  relay?: RelayHub;
  /** snapshot the vrings at every relayed kick and call (needs `relay`) */
  rings?: RingsMode;
  /** the device, when the user said: net receive queues are not paired kick→call */
  device?: DeviceType;
  /** emit a stats event this often (0: only at session end) */
  statsIntervalMs?: number;
  /** what the session negotiated (the inflight region's layout depends on it) */
  negotiation: Negotiation;
}

export interface DataPathHooks {
  /** `fn` guarded as the session guards its callbacks */
  guarded<A extends unknown[]>(where: string, fn: (...a: A) => void): (...a: A) => void;
  notice(msg: string): void;
  /** a relayed notification passed (fault rules may wait for one) */
  notified(kind: NotificationKind, vring: number): void;
}

export class DataPath {
  /** the relay of this session's eventfds; undefined with --no-interpose */
  readonly interposer: Interposer | undefined;
  readonly rings: RingTracker | undefined;
  /** --rings: the migration's dirty log, read while it lasts */
  readonly dirtyLog: DirtyLogReader | undefined;
  /** --rings: the inflight region (INFLIGHT_SHMFD) */
  readonly inflight: InflightReader | undefined;
  private readonly stats: NotificationStats;
  private readonly statsTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly opts: DataPathOptions,
    hooks: DataPathHooks,
  ) {
    const { session, emit, relay } = opts;
    this.stats = new NotificationStats(native.monotonicNs(), opts.device);
    if (opts.statsIntervalMs) {
      this.statsTimer = setInterval(
        hooks.guarded('the stats timer', () => this.emitStats()),
        opts.statsIntervalMs,
      );
      this.statsTimer.unref();
    }
    if (!relay) return;
    this.interposer = new Interposer(
      relay,
      hooks.guarded('a relayed notification', (vring: number, kind: NotificationKind, e: { ts: bigint; count: number }, replaced: boolean) => {
        this.stats.record(vring, kind, e.ts);
        emit({ type: 'notification', ts: e.ts, session, vring, kind, count: e.count, ...(replaced ? { replaced } : {}) });
        hooks.notified(kind, vring);
      }),
      (why) => hooks.notice(why),
    );
    if (!opts.rings) return;
    const notice = hooks.guarded('a ring notice', (msg: string) => hooks.notice(msg));
    this.dirtyLog = new DirtyLogReader(
      hooks.guarded('the end of a dirty log', (r: DirtyLogResult) => {
        const { endNs, ...figures } = r;
        emit({ type: 'dirty-log', ts: endNs, session, ...figures });
      }),
      notice,
    );
    this.inflight = new InflightReader(
      opts.negotiation,
      hooks.guarded('an inflight region', (r: InflightReading) => emit({ type: 'inflight', ts: native.monotonicNs(), session, ...r })),
      notice,
    );
    this.rings = new RingTracker(
      relay,
      opts.rings,
      hooks.guarded('a ring snapshot', (vring, snapshot, raw) => {
        this.dirtyLog?.onSnapshot(vring, snapshot);
        emit({ type: 'ring', ts: snapshot.ts, session, vring, snapshot, raw });
      }),
      notice,
    );
  }

  /** A ring's snapshot taken when its base was set or read, reported with that base. */
  ringBase(vring: number, base: number, now: NonNullable<ReturnType<RingTracker['snapshotNow']>>): void {
    this.opts.emit({ type: 'ring', ts: now.snapshot.ts, session: this.opts.session, vring, snapshot: now.snapshot, raw: now.raw, base });
  }

  /** Signals the vring's interposed eventfd as if its peer had; returns why not when it cannot. */
  inject(kind: 'kick' | 'call', vring: number): string | undefined {
    if (!this.interposer) return 'the session does not interpose eventfds (--no-interpose)';
    return this.interposer.inject(kind, vring);
  }

  /** The device the session carries, once known (net: its receive queues' kicks are not paired with calls). */
  setDevice(device: DeviceType): void {
    this.stats.setDevice(device);
  }

  /** Per-vring notification figures so far; `drain` first takes in what the relay thread has not yet handed over. */
  figures(drain = true): ReturnType<NotificationStats['snapshot']> {
    if (drain) this.opts.relay?.drain();
    return this.stats.snapshot(native.monotonicNs());
  }

  /** Relay pairs held now (current and in their grace period). */
  get livePairs(): number {
    return this.interposer?.livePairs ?? 0;
  }

  /** Relay pairs as `status` and the session's end report them; `final` ones only when `all`. */
  pairs(all: boolean): RelayPairSummary[] {
    const pairs = this.interposer?.pairs() ?? [];
    return (all ? pairs : pairs.filter((p) => !p.final)).map(relayPairSummary);
  }

  private emitStats(): void {
    this.opts.emit({ type: 'stats', ts: native.monotonicNs(), session: this.opts.session, vrings: this.figures() });
  }

  /** The session is over: stop the timer, tear down the relay pairs, stop reading rings and log. */
  close(): void {
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.interposer?.teardownAll();
    this.rings?.close();
    this.dirtyLog?.close();
    this.inflight?.close();
  }
}
