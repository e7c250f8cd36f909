/**
 * Interposes the vring eventfds of one session. For SET_VRING_KICK/CALL/ERR the proxy makes
 * an eventfd of its own, forwards that one, and has the native relay copy counts between the
 * peer's fd and ours: kick (frontend writes its fd → relay → our fd the backend reads), call
 * and err (backend writes our fd → relay → the frontend's fd).
 */
import { native, type RelayPairStats } from '../native';
import { notOfKind } from '../events/fds';
import type { NotificationKind } from '../events/notification-stats';
import type { RelayEvent, RelayHub } from './relay-hub';

/** How long a replaced pair keeps relaying: the far peer may use the old fd until it has read the new message. */
const REPLACED_PAIR_GRACE_MS = 1000;
/**
 * At most this many replaced pairs of one vring slot keep relaying through their grace period;
 * an older one is finished at once (relaying what is pending). QEMU re-sends SET_VRING_CALL on
 * every MSI-X mask change, thousands of times a second under churn: without a bound every
 * re-send would hold two fds and a timer for a second. A backend that signals an fd replaced
 * more than this many messages ago is that far behind the frontend, and that signal is not
 * relayed.
 */
const MAX_RETIRING_PER_SLOT = 16;

/** What a peer's fd is when it is not an eventfd ("a pipe", "a socket", ...), else undefined. */
export function notEventfd(fd: number): string | undefined {
  return notOfKind(fd, 'anon_inode:[eventfd]');
}

export interface PairRecord {
  vring: number;
  kind: NotificationKind;
  pairId: number;
  /** the fd the relay writes to (owned by the relay; open while the pair is current); observed: the dup it watches */
  dst: number;
  /** --observe: the peers keep their eventfd, the relay only watches it */
  observed?: boolean;
  /** final counts, once the pair is gone */
  final?: RelayPairStats;
  /** when a newer SET_VRING_* message for its slot replaced it (as opposed to a stop or the session's end), monotonic ns */
  replacedAt?: bigint;
}

/** Finished pairs of one slot, folded into one record: memory stays flat however many there were. */
interface FinishedSlot {
  vring: number;
  kind: NotificationKind;
  pairs: number;
  final: RelayPairStats;
}

export class Interposer {
  private readonly current = new Map<string, PairRecord>();
  /** replaced pairs still relaying, per slot, oldest first */
  private readonly retiring = new Map<string, { rec: PairRecord; timer: NodeJS.Timeout }[]>();
  private readonly finished = new Map<string, FinishedSlot>();

  constructor(
    private readonly hub: RelayHub,
    /** `replaced`: the pair was replaced (a newer SET_VRING_* for its slot) when the count came */
    private readonly onNotification: (vring: number, kind: NotificationKind, e: RelayEvent, replaced: boolean) => void,
    /** told when a peer's fd is not an eventfd and goes through uninterposed */
    private readonly onRefused?: (why: string) => void,
  ) {}

  /**
   * For a SET_VRING_KICK/CALL/ERR carrying `fds`: returns the fds to forward instead.
   * NOFD, or an fd count other than one, is forwarded unchanged and ends any pair of that slot.
   */
  interpose(kind: NotificationKind, vring: number, nofd: boolean, fds: number[]): number[] {
    const key = `${kind}:${vring}`;
    const old = this.current.get(key);
    if (nofd || fds.length !== 1) {
      if (old) this.replaced(key, old, 0);
      return fds;
    }
    const peerFd = fds[0];
    const what = notEventfd(peerFd);
    if (what) {
      // The relay reads and writes 8-byte counts on whatever it is given, on its own thread and
      // under its lock: a pipe nobody drains would block it there, and the daemon with it. Only
      // an eventfd is relayed; anything else goes through untouched, as the peer sent it.
      if (old) this.replaced(key, old, 0);
      this.onRefused?.(
        `SET_VRING_${kind.toUpperCase()} vring ${vring} carries ${what}, not an eventfd: forwarded as it came, not interposed (its notifications are neither relayed nor timed)`,
      );
      return fds;
    }
    if (this.hub.observe) {
      const watched = this.watch(kind, vring, peerFd);
      if (watched) {
        this.current.set(key, watched);
        if (old) this.replaced(key, old, REPLACED_PAIR_GRACE_MS);
        return fds;
      }
    }
    const ours = native.eventfd(0);
    let kept: number;
    try {
      kept = native.dup(ours); // `ours` goes to the far peer; the relay keeps `kept`
    } catch (err) {
      native.close(ours); // out of fds (EMFILE) between the two: nothing of ours stays open
      throw err;
    }
    const [src, dst] = kind === 'kick' ? [peerFd, kept] : [kept, peerFd];
    const rec: PairRecord = { vring, kind, pairId: 0, dst };
    try {
      rec.pairId = this.hub.add(src, dst, (e) => this.onNotification(vring, kind, e, rec.replacedAt !== undefined && e.ts >= rec.replacedAt));
    } catch (err) {
      // the relay took both fds and closed them (the peer's among them: an fd it cannot poll,
      // such as a memfd); `ours` was never handed out. The caller must not close the peer's fd.
      native.close(ours);
      throw Object.assign(err as Error, { fdsTaken: true });
    }
    this.current.set(key, rec);
    if (old) this.replaced(key, old, REPLACED_PAIR_GRACE_MS);
    return [ours];
  }

  /**
   * --observe: the peer's eventfd goes through as it came, and the relay watches a dup of it.
   * Undefined when the kernel refuses io_uring: the session interposes instead, and says so once.
   */
  private watch(kind: NotificationKind, vring: number, peerFd: number): PairRecord | undefined {
    if (!Interposer.cannotWatch) {
      const dup = native.dup(peerFd);
      const rec: PairRecord = { vring, kind, pairId: 0, dst: dup, observed: true };
      try {
        rec.pairId = this.hub.watch(dup, (e) => this.onNotification(vring, kind, e, rec.replacedAt !== undefined && e.ts >= rec.replacedAt));
        return rec;
      } catch (err) {
        // the relay closed the dup; anything but the kernel's refusal (a stopped relay) is the caller's
        if ((err as NodeJS.ErrnoException).syscall !== 'io_uring_setup') throw err;
        Interposer.cannotWatch = (err as Error).message;
      }
    }
    if (!this.toldCannotWatch) {
      this.toldCannotWatch = true;
      this.onRefused?.(`--observe: the kernel refuses io_uring (${Interposer.cannotWatch}): this session's eventfds are interposed instead`);
    }
    return undefined;
  }

  /** why the kernel refused the relay's io_uring, once it did (it does not change its mind) */
  private static cannotWatch: string | undefined;
  private toldCannotWatch = false;

  /** A newer message for the slot replaced `old`: counts it reads from now on are flagged as such. */
  private replaced(key: string, old: PairRecord, graceMs: number): void {
    old.replacedAt = native.monotonicNs();
    this.retire(key, old, graceMs);
  }

  /**
   * Signals the vring's interposed eventfd as if the peer had (fault rule inject): a kick
   * reaches the backend, a call the frontend. Returns why not when the vring has no such pair.
   */
  inject(kind: 'kick' | 'call', vring: number): string | undefined {
    const rec = this.current.get(`${kind}:${vring}`);
    if (!rec) return `vring ${vring} has no interposed ${kind} eventfd (yet)`;
    native.eventfdWrite(rec.dst, 1);
    return undefined;
  }

  /** The relay pair now serving this vring's kick or call, if any. */
  pairId(kind: NotificationKind, vring: number): number | undefined {
    return this.current.get(`${kind}:${vring}`)?.pairId;
  }

  /** The vring stopped (GET_VRING_BASE answered): its pairs go. */
  stopVring(vring: number): void {
    for (const [key, rec] of [...this.current]) if (rec.vring === vring) this.retire(key, rec, 0);
  }

  /** RESET_OWNER or session end: every pair goes now. */
  teardownAll(): void {
    for (const [key, rec] of [...this.current]) this.retire(key, rec, 0);
    for (const [key, list] of this.retiring) {
      for (const r of list) {
        clearTimeout(r.timer);
        this.finish(key, r.rec);
      }
    }
    this.retiring.clear();
  }

  /**
   * Pairs with their counts (read from the source, written to the destination): each live or
   * retiring pair, and per slot one record that sums every finished pair (`final` set).
   */
  pairs(): (PairRecord & { stats: RelayPairStats | null; pairs?: number })[] {
    const live = [...this.current.values(), ...[...this.retiring.values()].flat().map((r) => r.rec)].map((r) => ({
      ...r,
      stats: this.hub.pairStats(r.pairId),
    }));
    const done = [...this.finished.values()].map((f) => ({
      vring: f.vring,
      kind: f.kind,
      pairId: -1,
      dst: -1,
      final: f.final,
      stats: f.final,
      pairs: f.pairs,
    }));
    return [...done, ...live];
  }

  /** How many pairs (live, retiring) this session holds: bounded by slots x (1 + MAX_RETIRING_PER_SLOT). */
  get livePairs(): number {
    return this.current.size + [...this.retiring.values()].reduce((n, l) => n + l.length, 0);
  }

  private retire(key: string, rec: PairRecord, graceMs: number): void {
    if (this.current.get(key) === rec) this.current.delete(key);
    if (graceMs === 0) {
      this.finish(key, rec);
      return;
    }
    const list = this.retiring.get(key) ?? [];
    this.retiring.set(key, list);
    while (list.length >= MAX_RETIRING_PER_SLOT) {
      const oldest = list.shift()!;
      clearTimeout(oldest.timer);
      this.finish(key, oldest.rec);
    }
    const timer = setTimeout(() => {
      const i = list.findIndex((r) => r.rec === rec);
      if (i >= 0) list.splice(i, 1);
      if (!list.length && this.retiring.get(key) === list) this.retiring.delete(key);
      this.finish(key, rec);
    }, graceMs);
    timer.unref();
    list.push({ rec, timer });
  }

  private finish(key: string, rec: PairRecord): void {
    const final = this.hub.remove(rec.pairId);
    if (!final) return;
    const f = this.finished.get(key);
    if (!f) {
      this.finished.set(key, { vring: rec.vring, kind: rec.kind, pairs: 1, final: { ...final, transitBuckets: [...final.transitBuckets] } });
      return;
    }
    f.pairs++;
    f.final.read += final.read;
    f.final.written += final.written;
    f.final.notifications += final.notifications;
    f.final.writeErrors += final.writeErrors;
    f.final.transitSumNs += final.transitSumNs;
    final.transitBuckets.forEach((n, i) => (f.final.transitBuckets[i] = (f.final.transitBuckets[i] ?? 0) + n));
  }
}
