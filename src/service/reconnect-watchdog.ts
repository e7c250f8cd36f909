/**
 * The reconnect watchdog (field cases C7, C8: a reconnect abandoned for good). When the back-end
 * ends a session (it closed, crashed or broke the protocol) the front-end is expected back, as
 * QEMU's reconnect=N does; a device that then has no working session (one that got as far as a
 * message) within `thresholdMs` raises an alarm once, and says so when a session works again.
 * A session the front-end ended is a VM going away: nothing is expected after it.
 */
import { endedByBackend, type ProxyEvent } from '../events/events';

export interface DeviceDown {
  /** how long the device has been without a working session */
  downMs: number;
  /** why the last session ended */
  reason: string;
}

export class ReconnectWatchdog {
  private readonly working = new Set<number>();
  private down?: { sinceMs: number; reason: string; alarmed: boolean };
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly thresholdMs: number,
    private readonly alarm: (d: DeviceDown) => void,
    private readonly back: (d: DeviceDown) => void,
    private readonly now: () => number = Date.now,
    checkEveryMs = Math.max(100, Math.min(1000, thresholdMs / 4)),
  ) {
    this.timer = setInterval(() => this.check(), checkEveryMs);
    this.timer.unref();
  }

  onEvent(e: ProxyEvent): void {
    if (e.type === 'message' && !this.working.has(e.session)) {
      this.working.add(e.session);
      if (this.down?.alarmed) this.back({ downMs: this.now() - this.down.sinceMs, reason: this.down.reason });
      this.down = undefined;
    }
    if (e.type !== 'session-end') return;
    this.working.delete(e.session);
    if (this.working.size === 0 && endedByBackend(e)) this.down ??= { sinceMs: this.now(), reason: e.reason, alarmed: false };
  }

  /** Raises the alarm once the device has been down longer than the threshold; the timer calls it. */
  check(): void {
    if (!this.down || this.down.alarmed || this.now() - this.down.sinceMs < this.thresholdMs) return;
    this.down.alarmed = true;
    this.alarm({ downMs: this.now() - this.down.sinceMs, reason: this.down.reason });
  }

  close(): void {
    clearInterval(this.timer);
  }
}
