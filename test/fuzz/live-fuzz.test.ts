/**
 * The live daemon fuzzed from both sides for a minute (bench/live-fuzz.js runs the hour): it
 * never dies, always answers its control socket within 2 s, logs no internal error and nothing
 * but JSON, keeps its fds and memory flat, and ends within 2 s of SIGTERM.
 */
import { describe, expect, it } from 'vitest';
import { runLiveFuzz } from '../../lab/live-fuzz';
import { tmpDir } from '../helpers';

describe('the live daemon, fuzzed from both sides', () => {
  it('60 s of mutated real sessions: no crash, no hang, no internal error, fds and memory flat', async () => {
    const seed = Number(process.env.VHS_FUZZ_SEED ?? Date.now() % 100000);
    const r = await runLiveFuzz({ seconds: 60, seed, workDir: tmpDir('live-fuzz') });
    const summary = `seed ${seed}: ${r.cases} cases (${r.casesPerSecond.toFixed(1)}/s); fds ${JSON.stringify(r.fds)}; RSS kB ${JSON.stringify(r.rssKb)}; endings ${JSON.stringify(r.endings)}`;
    console.log(summary);
    expect(r.crashed, summary).toBe(false);
    expect(r.hangs, summary).toBe(0);
    expect(r.internalErrors, summary).toEqual([]);
    expect(r.strayLines, summary).toEqual([]);
    expect(r.cases).toBeGreaterThan(300);
    expect(r.fds.end - r.fds.afterWarmup, summary).toBeLessThanOrEqual(8);
    expect((r.rssKb.end - r.rssKb.afterWarmup) / 1024, summary).toBeLessThan(64);
    expect(r.exit).toMatchObject({ code: 0 });
    expect(r.exit.ms).toBeLessThan(2000);
  }, 120_000);
});
