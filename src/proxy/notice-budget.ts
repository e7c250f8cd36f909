/**
 * How many notices one session may log: a burst, then a steady rate. A peer decides how often
 * the conditions behind most notices happen (a vring index out of range in every message, a
 * region too many, a pipe where an eventfd goes); without a budget each one would be a log
 * line, a metric and a record, as fast as the peer can send.
 */
export const NOTICE_BURST = 100;
export const NOTICES_PER_SECOND = 10;

export class NoticeBudget {
  private tokens = NOTICE_BURST;
  private lastMs: number;
  /** notices not said since the last one that was */
  private suppressed = 0;

  constructor(private readonly now: () => number = Date.now) {
    this.lastMs = now();
  }

  /** The text to log for `msg` now (with a count of what was left out before it), or undefined: over budget. */
  take(msg: string): string | undefined {
    const t = this.now();
    this.tokens = Math.min(NOTICE_BURST, this.tokens + ((t - this.lastMs) * NOTICES_PER_SECOND) / 1000);
    this.lastMs = t;
    if (this.tokens < 1) {
      this.suppressed++;
      return undefined;
    }
    this.tokens--;
    if (!this.suppressed) return msg;
    const n = this.suppressed;
    this.suppressed = 0;
    return `${msg} (${n} earlier notice${n > 1 ? 's' : ''} of this session not logged: more than ${NOTICES_PER_SECOND} a second)`;
  }
}
