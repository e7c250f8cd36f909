/** Comparing two recordings' request latency (src/analysis/latency-diff.ts). */
import { describe, expect, it } from 'vitest';
import { latencyDiff, mannWhitney } from '../../src/analysis/latency-diff';
import type { CompletedRequest } from '../../src/rings/requests';

let seed = 11;
const rnd = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
/** log-normal-ish latencies around `medianUs`, with a heavy tail */
const sample = (n: number, medianUs: number): number[] =>
  Array.from({ length: n }, () => medianUs * 1000 * Math.exp((rnd() - 0.5) * 0.8) * (rnd() < 0.02 ? 20 : 1));
const reqs = (op: string, ns: number[]): CompletedRequest[] =>
  ns.map((latencyNs, head) => ({
    vring: 0,
    head,
    op,
    submittedNs: 0n,
    completedNs: BigInt(Math.round(latencyNs)),
    notifiedNs: 0n,
    latencyNs,
    uncertaintyNs: 0,
    completionUncertaintyNs: 0,
  }));

describe('latencyDiff', () => {
  it('finds 4 KiB reads 30 % slower, and no difference between two draws of one distribution', () => {
    const a = [...reqs('read ≤4K', sample(300, 100)), ...reqs('write ≤4K', sample(300, 200))];
    const b = [...reqs('read ≤4K', sample(300, 130)), ...reqs('write ≤4K', sample(300, 200))];
    const [read, write] = latencyDiff(a, b);
    expect(read).toMatchObject({ op: 'read ≤4K', nA: 300, nB: 300, verdict: 'slower' });
    expect(read.p50ShiftPct!).toBeGreaterThan(20);
    expect(read.p50ShiftPct!).toBeLessThan(40);
    expect(read.pValue!).toBeLessThan(1e-6);
    expect(read.probBSlower!).toBeGreaterThan(0.6);
    expect(write.verdict).toBe('same');
    expect(write.pValue!).toBeGreaterThan(0.01);
  });

  it('says when there is too little to test, and what only one side has', () => {
    const rows = latencyDiff(reqs('flush', [1, 2, 3]), [...reqs('flush', [4, 5, 6]), ...reqs('discard', [1])]);
    expect(rows.map((r) => [r.op, r.verdict])).toEqual([
      ['discard', 'only in B'],
      ['flush', 'too few'],
    ]);
  });

  it('computes U with ties as the textbook does', () => {
    // every b above every a: P(B slower) = 1; identical samples: 0.5 and p = 1
    expect(mannWhitney([1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16]).probBSlower).toBe(1);
    expect(mannWhitney([1, 2, 3, 4, 5, 6, 7, 8], [9, 10, 11, 12, 13, 14, 15, 16]).pValue).toBeLessThan(0.001);
    const same = mannWhitney([5, 5, 5, 5, 5, 5, 5, 5], [5, 5, 5, 5, 5, 5, 5, 5]);
    expect(same).toEqual({ probBSlower: 0.5, pValue: 1 });
    // a known case: a=[1,2,3,4,5,6,7,8], b=[3,5,7,9,11,13,15,17]: U_B = 2.5 + 4.5 + 6.5 + 5 × 8 = 53.5 of 64; z = 21 / 9.50 (tie-corrected σ), p ≈ 0.027
    const t = mannWhitney([1, 2, 3, 4, 5, 6, 7, 8], [3, 5, 7, 9, 11, 13, 15, 17]);
    expect(t.probBSlower).toBeCloseTo(53.5 / 64, 6);
    expect(t.pValue).toBeGreaterThan(0.02);
    expect(t.pValue).toBeLessThan(0.05);
  });
});
