/**
 * Two recordings' per-request latency compared per vring and operation: the shift of p50 and p99
 * and a Mann–Whitney U test (rank-based: latency is skewed and heavy-tailed, so a t-test on means
 * would be led by a few outliers; the U test asks whether a request from B tends to take longer
 * than one from A). Pure.
 */
import type { CompletedRequest } from '../rings/requests';
import { LatencyHistogram } from '../util/latency-histogram';

export interface OperationShift {
  vring: number;
  op: string;
  nA: number;
  nB: number;
  p50A: number;
  p50B: number;
  p99A: number;
  p99B: number;
  /** (B − A) / A of p50 and p99, in % (undefined when A has none) */
  p50ShiftPct?: number;
  p99ShiftPct?: number;
  /** P(a request of B takes longer than one of A), ties counting half: 0.5 = no difference */
  probBSlower?: number;
  /** two-sided p-value of the Mann–Whitney U test (normal approximation with tie correction) */
  pValue?: number;
  /** 'slower' / 'faster' when p < alpha, 'same' when not, 'too few' with fewer than 8 on a side */
  verdict: 'slower' | 'faster' | 'same' | 'too few' | 'only in A' | 'only in B';
}

/** standard normal CDF (Abramowitz & Stegun 7.1.26 for erf, |error| < 1.5e-7) */
function phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf = 1 - ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t * Math.exp(-x * x);
  return z >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

/** Mann–Whitney U of B against A: P(B > A) and the two-sided p-value. */
export function mannWhitney(a: number[], b: number[]): { probBSlower: number; pValue: number } {
  const all = [...a.map((v) => ({ v, b: false })), ...b.map((v) => ({ v, b: true }))].sort((x, y) => x.v - y.v);
  const n = all.length;
  let rankSumB = 0;
  let tieTerm = 0;
  for (let i = 0; i < n; ) {
    let j = i;
    while (j + 1 < n && all[j + 1].v === all[i].v) j++;
    const rank = (i + j) / 2 + 1; // average rank of the tie group
    for (let k = i; k <= j; k++) if (all[k].b) rankSumB += rank;
    const t = j - i + 1;
    tieTerm += t * t * t - t;
    i = j + 1;
  }
  const nA = a.length;
  const nB = b.length;
  const uB = rankSumB - (nB * (nB + 1)) / 2; // pairs (a, b) with b > a, ties half
  const mean = (nA * nB) / 2;
  const sigma = Math.sqrt(((nA * nB) / 12) * (n + 1 - tieTerm / (n * (n - 1))));
  const pValue = sigma > 0 ? Math.min(1, 2 * (1 - phi((Math.abs(uB - mean) - 0.5) / sigma))) : 1;
  return { probBSlower: uB / (nA * nB), pValue };
}

const us = (ns: number): number => Math.round(ns / 10) / 100;
const pct = (a: number, b: number): number | undefined => (a > 0 ? Math.round(((b - a) / a) * 1000) / 10 : undefined);

/** Per vring and operation, A against B. */
export function latencyDiff(a: CompletedRequest[], b: CompletedRequest[], alpha = 0.01): OperationShift[] {
  const group = (rs: CompletedRequest[]): Map<string, CompletedRequest[]> => {
    const m = new Map<string, CompletedRequest[]>();
    for (const r of rs) {
      const k = `${r.vring}\u0000${r.op}`;
      if (!m.has(k)) m.set(k, []);
      m.get(k)!.push(r);
    }
    return m;
  };
  const ga = group(a);
  const gb = group(b);
  const keys = [...new Set([...ga.keys(), ...gb.keys()])];
  return keys
    .map((k): OperationShift => {
      const ra = ga.get(k) ?? [];
      const rb = gb.get(k) ?? [];
      const [vring, op] = [Number(k.split('\u0000')[0]), k.split('\u0000')[1]];
      const ha = new LatencyHistogram();
      const hb = new LatencyHistogram();
      for (const r of ra) ha.record(r.latencyNs);
      for (const r of rb) hb.record(r.latencyNs);
      const base = {
        vring,
        op,
        nA: ra.length,
        nB: rb.length,
        p50A: us(ha.percentile(50)),
        p50B: us(hb.percentile(50)),
        p99A: us(ha.percentile(99)),
        p99B: us(hb.percentile(99)),
      };
      if (!rb.length) return { ...base, verdict: 'only in A' };
      if (!ra.length) return { ...base, verdict: 'only in B' };
      const shifts = { p50ShiftPct: pct(base.p50A, base.p50B), p99ShiftPct: pct(base.p99A, base.p99B) };
      if (ra.length < 8 || rb.length < 8) return { ...base, ...shifts, verdict: 'too few' };
      const t = mannWhitney(
        ra.map((r) => r.latencyNs),
        rb.map((r) => r.latencyNs),
      );
      const verdict = t.pValue >= alpha ? 'same' : t.probBSlower > 0.5 ? 'slower' : 'faster';
      return { ...base, ...shifts, probBSlower: Math.round(t.probBSlower * 1000) / 1000, pValue: t.pValue, verdict };
    })
    .sort((x, y) => x.vring - y.vring || x.op.localeCompare(y.op));
}
