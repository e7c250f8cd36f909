/**
 * The short soak in CI (bench/soak.js runs the 30-minute one): 16 sessions for 30 s under
 * notification floods, MSI-X churn, --rings=headers, a rotating flight recording, a backend that
 * stops reading, session churn and metrics scrapes (lab/soak.ts). Every control message is
 * delivered and recorded; the daemon's fds stay within what its design holds for 16 sessions and
 * its RSS grows by less than 48 MiB between the two halves. Half a minute cannot show a slow leak:
 * bench/soak.js's 30 minutes is the test of that.
 */
import { describe, expect, it } from 'vitest';
import { runSoak } from '../../lab/soak';
import { tmpDir } from '../helpers';

describe('soak', () => {
  it("16 sessions for 30 s: nothing lost, fds within the design's bound, RSS growth bounded", async () => {
    const r = await runSoak({ workDir: tmpDir('soak'), seconds: 30, sessions: 16, sampleMs: 2500, churnMs: 2500, log: (l) => console.log(l) });
    expect(r.problems).toEqual([]);
    expect(r.figures.churned).toBeGreaterThanOrEqual(5);
    expect(r.figures.bulk).toBeGreaterThan(1000); // the stalled session pushed until back-pressure held it
    expect(r.figures.segments).toBeGreaterThan(r.figures.sessions!); // the recording rotated
    expect(r.samples.length).toBeGreaterThanOrEqual(8);
  }, 240_000);
});
