/**
 * When the flight recorder's retention sweeps run: every minute (the age bound of a quiet
 * daemon), and soon after a rotation or a session's end, but never closer together than the
 * sweep's own cost allows. A sweep lists and stats the whole directory on the event loop; with
 * tens of thousands of segments that takes long enough to matter, so the next one waits nine
 * times as long as the last took: retention holds at most a tenth of the loop however big the
 * directory grows (the directory may pass its bound by what is written in that time).
 */

/** retention also runs this often, for the age bound of a quiet daemon */
const SWEEP_MS = 60_000;
/** the least time between two sweeps */
const SWEEP_MIN_INTERVAL_MS = 1000;
const SWEEP_SPACING = 9;

/** The time a sweep must wait after the last one began, given how long that one took. */
export function sweepIntervalMs(lastTookMs: number): number {
  return Math.max(SWEEP_MIN_INTERVAL_MS, SWEEP_SPACING * lastTookMs);
}

export class RetentionSchedule {
  private readonly periodic: NodeJS.Timeout;
  private soonTimer: NodeJS.Timeout | undefined;
  private lastStartMs = 0;
  private lastTookMs = 0;

  /** Runs `sweep` now (what an earlier daemon left over its bounds), then on schedule. */
  constructor(private readonly sweep: () => void) {
    this.periodic = setInterval(() => this.run(), SWEEP_MS);
    this.periodic.unref();
    this.run();
  }

  private run(): void {
    this.lastStartMs = Date.now();
    try {
      this.sweep();
    } finally {
      this.lastTookMs = Date.now() - this.lastStartMs;
    }
  }

  /** A sweep now, or, if the last one began within sweepIntervalMs, once that interval is over. */
  soon(): void {
    if (this.soonTimer) return;
    const wait = this.lastStartMs + sweepIntervalMs(this.lastTookMs) - Date.now();
    if (wait <= 0) return this.run();
    this.soonTimer = setTimeout(() => {
      this.soonTimer = undefined;
      this.run();
    }, wait);
    this.soonTimer.unref();
  }

  /** Stops the schedule; a sweep that was waiting runs now (while the caller still protects what it must). */
  stop(): void {
    clearInterval(this.periodic);
    if (!this.soonTimer) return;
    clearTimeout(this.soonTimer);
    this.soonTimer = undefined;
    this.run();
  }
}
