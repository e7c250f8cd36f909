/**
 * Interposes the vring eventfds of one session. For SET_VRING_KICK/CALL/ERR the proxy makes
 * an eventfd of its own, forwards that one, and has the native relay copy counts between the
 * peer's fd and ours: kick (frontend writes its fd → relay → our fd the backend reads), call
 * and err (backend writes our fd → relay → the frontend's fd).
 */
import { native, type RelayPairStats } from '../native';
import type { NotificationKind } from './notification-stats';
import type { RelayEvent, RelayHub } from './relay-hub';

/** How long a replaced pair keeps relaying: the far peer may use the old fd until it has read the new message. */
const REPLACED_PAIR_GRACE_MS = 1000;

export interface PairRecord {
  vring: number;
  kind: NotificationKind;
  pairId: number;
  /** the fd the relay writes to (owned by the relay; open while the pair is current) */
  dst: number;
  /** final counts, once the pair is gone */
  final?: RelayPairStats;
}

export class Interposer {
  private readonly current = new Map<string, PairRecord>();
  private readonly retiring = new Map<number, NodeJS.Timeout>();
  readonly history: PairRecord[] = [];

  constructor(
    private readonly hub: RelayHub,
    private readonly onNotification: (vring: number, kind: NotificationKind, e: RelayEvent) => void,
  ) {}

  /**
   * For a SET_VRING_KICK/CALL/ERR carrying `fds`: returns the fds to forward instead.
   * NOFD, or an fd count other than one, is forwarded unchanged and ends any pair of that slot.
   */
  interpose(kind: NotificationKind, vring: number, nofd: boolean, fds: number[]): number[] {
    const key = `${kind}:${vring}`;
    const old = this.current.get(key);
    if (nofd || fds.length !== 1) {
      if (old) this.retire(key, old, 0);
      return fds;
    }
    const peerFd = fds[0];
    const ours = native.eventfd(0);
    const kept = native.dup(ours); // `ours` goes to the far peer; the relay keeps `kept`
    const [src, dst] = kind === 'kick' ? [peerFd, kept] : [kept, peerFd];
    const rec: PairRecord = { vring, kind, pairId: 0, dst };
    try {
      rec.pairId = this.hub.add(src, dst, (e) => this.onNotification(vring, kind, e));
    } catch (err) {
      // the relay took both fds and closed them (the peer's among them: an fd it cannot poll,
      // such as a memfd); `ours` was never handed out. The caller must not close the peer's fd.
      native.close(ours);
      throw Object.assign(err as Error, { fdsTaken: true });
    }
    this.current.set(key, rec);
    this.history.push(rec);
    if (old) this.retire(key, old, REPLACED_PAIR_GRACE_MS);
    return [ours];
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
    for (const [id, timer] of this.retiring) {
      clearTimeout(timer);
      this.finish(id);
    }
    this.retiring.clear();
  }

  /** Live and finished pairs with their counts (read from the source, written to the destination). */
  pairs(): (PairRecord & { stats: RelayPairStats | null })[] {
    return this.history.map((r) => ({ ...r, stats: r.final ?? this.hub.pairStats(r.pairId) }));
  }

  private retire(key: string, rec: PairRecord, graceMs: number): void {
    if (this.current.get(key) === rec) this.current.delete(key);
    if (graceMs === 0) {
      this.finish(rec.pairId);
      return;
    }
    const t = setTimeout(() => {
      this.retiring.delete(rec.pairId);
      this.finish(rec.pairId);
    }, graceMs);
    t.unref();
    this.retiring.set(rec.pairId, t);
  }

  private finish(pairId: number): void {
    const rec = this.history.find((r) => r.pairId === pairId);
    const final = this.hub.remove(pairId);
    if (rec && final) rec.final = final;
  }
}
