import { describe, expect, it } from 'vitest';
import { NOTICE_BURST, NOTICES_PER_SECOND, NoticeBudget } from '../../src/proxy/notice-budget';

describe("a session's notice budget", () => {
  it('says a burst, then a steady rate, and the next notice said counts what was left out', () => {
    let now = 1000;
    const b = new NoticeBudget(() => now);
    const said: string[] = [];
    for (let i = 0; i < 1000; i++) {
      const s = b.take(`n${i}`);
      if (s !== undefined) said.push(s);
    }
    expect(said).toHaveLength(NOTICE_BURST);
    expect(said.at(-1)).toBe(`n${NOTICE_BURST - 1}`);
    now += 1000; // a second later: that second's share
    const next: string[] = [];
    for (let i = 0; i < 100; i++) {
      const s = b.take(`m${i}`);
      if (s !== undefined) next.push(s);
    }
    expect(next).toHaveLength(NOTICES_PER_SECOND);
    expect(next[0]).toBe(`m0 (${1000 - NOTICE_BURST} earlier notices of this session not logged: more than ${NOTICES_PER_SECOND} a second)`);
    expect(next[1]).toBe('m1');
    // a quiet session gets its whole burst back, and no more
    now += 3_600_000;
    let n = 0;
    while (b.take('x') !== undefined) n++;
    expect(n).toBe(NOTICE_BURST);
  });
});
