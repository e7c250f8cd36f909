/** Real peers killed with SIGKILL at random points through the daemon (bench/crash.js runs 100). */
import { describe, expect, it } from 'vitest';
import { runCrashIterations } from '../../lab/crash';
import { tmpDir } from '../helpers';

describe('peers killed at random points', () => {
  it('the daemon survives, closes each session, frees every fd, and the recording stays whole', async () => {
    const r = await runCrashIterations({ workDir: tmpDir('crash'), iterations: 8, seed: 7 });
    expect(r.problems).toEqual([]);
    expect(r.killed).toEqual({ frontend: 4, backend: 4 });
    expect(r.sessions).toBeGreaterThanOrEqual(4);
    expect(r.fds.after).toBe(r.fds.before);
  }, 240_000);
});
