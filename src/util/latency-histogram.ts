/**
 * A latency histogram of fixed size, in the JS heap: log-linear buckets (each power of two of
 * nanoseconds split into 32 equal steps, so a percentile is within 1/32 ≈ 3 % of the true
 * value), exact count, min and max.
 *
 * Why not node:perf_hooks createHistogram: its HDR histogram lives in native memory that V8
 * does not see (about 110 KiB per histogram at 1 ns–60 s, 3 figures). One per vring of every
 * session made the daemon's RSS creep under session churn, because nothing told the collector
 * that the small JS objects of ended sessions held that much. This one is 10 KiB the collector
 * counts.
 */
const SUB_BITS = 5;
const SUB = 1 << SUB_BITS;
/** powers of two covered: 2^0 … 2^42 ns (73 minutes); longer values land in the last bucket */
const POWERS = 43;

function bucketOf(ns: number): number {
  if (ns < SUB) return Math.max(0, Math.floor(ns));
  const p = Math.floor(Math.log2(ns));
  if (p >= POWERS) return SUB * (POWERS - SUB_BITS + 1) - 1;
  const step = 2 ** (p - SUB_BITS);
  // bucket index: the linear region [0, SUB) first, then SUB steps per power from 2^SUB_BITS
  return SUB + (p - SUB_BITS) * SUB + Math.floor((ns - 2 ** p) / step);
}

/** the lowest value of bucket i (ns) */
function lowOf(i: number): number {
  if (i < SUB) return i;
  const p = Math.floor((i - SUB) / SUB) + SUB_BITS;
  return 2 ** p + ((i - SUB) % SUB) * 2 ** (p - SUB_BITS);
}

export class LatencyHistogram {
  private readonly counts = new Float64Array(SUB * (POWERS - SUB_BITS + 1));
  count = 0;
  min = Infinity;
  max = 0;

  /** records one latency in nanoseconds (negative values count as 0) */
  record(ns: number): void {
    const v = ns > 0 ? ns : 0;
    this.counts[bucketOf(v)]++;
    this.count++;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  /** the value at percentile p (0–100) in ns: the middle of its bucket, clamped to [min, max] */
  percentile(p: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil((p / 100) * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) {
        if (i === this.counts.length - 1) return this.max; // the open-ended top bucket
        // below 32 ns a bucket is one integer nanosecond: exact
        const mid = i < SUB ? i : (lowOf(i) + lowOf(i + 1)) / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }
}
