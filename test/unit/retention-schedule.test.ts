/**
 * When the flight recorder's sweeps run (src/recording/retention-schedule.ts), on a fake clock:
 * one at once, one a minute, one soon after a rotation or a session's end but never closer to the
 * last than nine times its duration, requests in between merged into one, and a waiting one run
 * at stop.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RetentionSchedule } from '../../src/recording/retention-schedule';

describe('retention schedule', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** a schedule whose sweeps take `tookMs` of the fake clock each; `runs`: when each began */
  const schedule = (tookMs: number): { s: RetentionSchedule; runs: number[] } => {
    const runs: number[] = [];
    const s = new RetentionSchedule(() => {
      runs.push(Date.now() - 1_000_000);
      vi.setSystemTime(Date.now() + tookMs);
    });
    return { s, runs };
  };

  it('sweeps at once, then every minute', () => {
    const { s, runs } = schedule(0);
    expect(runs).toEqual([0]);
    vi.advanceTimersByTime(59_999);
    expect(runs).toEqual([0]);
    vi.advanceTimersByTime(1);
    expect(runs).toEqual([0, 60_000]);
    s.stop();
    vi.advanceTimersByTime(120_000);
    expect(runs).toEqual([0, 60_000]); // stopped: no more
  });

  it('runs a requested sweep at once when the last is a second old, else when it is', () => {
    const { s, runs } = schedule(0);
    vi.advanceTimersByTime(1000);
    s.soon(); // exactly a second after the last began
    expect(runs).toEqual([0, 1000]);
    vi.advanceTimersByTime(400);
    s.soon();
    s.soon(); // merged into the one waiting
    expect(runs).toEqual([0, 1000]);
    vi.advanceTimersByTime(599);
    expect(runs).toEqual([0, 1000]);
    vi.advanceTimersByTime(1);
    expect(runs).toEqual([0, 1000, 2000]);
    vi.advanceTimersByTime(5000);
    expect(runs).toEqual([0, 1000, 2000]); // a request runs once
    s.stop();
  });

  it('waits nine times as long as the last sweep took before the next requested one', () => {
    const { s, runs } = schedule(500); // each sweep takes 500 ms: the next may begin 4500 ms after it began
    expect(runs).toEqual([0]);
    s.soon();
    vi.advanceTimersByTime(3999); // the clock is at 500 + 3999 = 4499
    expect(runs).toEqual([0]);
    vi.advanceTimersByTime(1);
    expect(runs).toEqual([0, 4500]);
    s.stop();
  });

  it('at stop, runs the sweep that was waiting, once', () => {
    const { s, runs } = schedule(0);
    s.soon();
    expect(runs).toEqual([0]);
    s.stop();
    expect(runs).toEqual([0, 0]);
    vi.advanceTimersByTime(10_000);
    expect(runs).toEqual([0, 0]);
    s.stop();
    expect(runs).toEqual([0, 0]); // nothing waited the second time
  });

  it('spaces the next sweep by the duration of one that threw', () => {
    const runs: number[] = [];
    let took = 300;
    const s = new RetentionSchedule(() => {
      runs.push(Date.now() - 1_000_000);
      vi.setSystemTime(Date.now() + took);
      if (took === 600) throw new Error('disk gone');
    });
    vi.advanceTimersByTime(2400); // 2700 ms after the first began (9 x 300)
    took = 600;
    expect(() => s.soon()).toThrow('disk gone');
    expect(runs).toEqual([0, 2700]);
    took = 0;
    s.soon(); // 9 x 600 after the one that threw began: at 8100
    vi.advanceTimersByTime(4799);
    expect(runs).toEqual([0, 2700]);
    vi.advanceTimersByTime(1);
    expect(runs).toEqual([0, 2700, 8100]);
    s.stop();
  });
});
