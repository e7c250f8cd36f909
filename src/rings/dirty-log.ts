/**
 * Reading a migration's dirty log (SET_LOG_BASE): one bit per 4 KiB page of guest physical
 * memory, set by the back-end for every page it writes while LOG_ALL is on (its used rings and
 * the buffers it fills). The front-end reads and clears the bits at every sync (QEMU's
 * vhost_log_sync), so the log only ever shows what was marked since the last sync: the proxy
 * samples it, and a page counts as marked again when its bit is set now and was clear in the
 * previous sample. Marks set and cleared between two samples are not seen: the figures are a
 * lower bound, and say how many samples they come from.
 *
 * Each mark is put down to a vring: its used ring (the log_guest_addr of SET_VRING_ADDR, sized by
 * SET_VRING_NUM), or a device-writable buffer of a chain the back-end completed on it since the
 * previous sample (from the relay's call snapshots, `--rings`); anything else is "other".
 */
import { DIRTY_LOG_PAGE as LOG_PAGE } from '../protocol';
import { VRING_DESC_F_WRITE, type RingSnapshot } from './snapshot';

export interface DirtyLogFigures {
  /** samples taken, and the first and last one's times */
  samples: number;
  /** page marks seen (a page marked again after a sync cleared it counts again) */
  marks: number;
  /** distinct pages ever seen marked */
  pages: number;
  /** marks per vring: on its used ring, on buffers it completed */
  vrings: { vring: number; usedRing: number; buffers: number }[];
  /** marks on no page the proxy knew a vring wrote */
  other: number;
}

/**
 * Marks put down to a vring per sample, at most; the rest are counted, as "other". The bits are
 * the back-end's (and, through forged lengths, the guest's): a log full of them must cost a
 * sample a bounded amount of work on the daemon's loop.
 */
export const MAX_CLASSIFIED_MARKS = 1 << 16;
/** pages remembered as written by completed chains between two samples, at most */
export const MAX_WRITTEN_PAGES = 1 << 16;

/** set bits in a byte */
const POPCOUNT = Uint8Array.from({ length: 256 }, (_, i) => {
  let n = 0;
  for (let b = i; b; b &= b - 1) n++;
  return n;
});

export class DirtyLogCounter {
  private prev: Buffer;
  private readonly seen: Uint8Array;
  private samples = 0;
  private marks = 0;
  private pages = 0;
  private other = 0;
  private readonly perVring = new Map<number, { usedRing: number; buffers: number }>();
  /** per vring: the used ring's first page and page count */
  private readonly usedRings = new Map<number, { first: number; count: number }>();
  /** pages written by completed chains since the previous sample: page -> vring */
  private written = new Map<number, number>();

  constructor(readonly bytes: number) {
    this.prev = Buffer.alloc(bytes);
    this.seen = new Uint8Array(bytes);
  }

  /** SET_VRING_ADDR's log_guest_addr and the ring size: a split used ring is 6 + 8*num bytes. */
  usedRing(vring: number, gpa: bigint, num: number): void {
    const end = gpa + 6n + 8n * BigInt(num);
    const first = gpa / LOG_PAGE;
    const last = (end - 1n) / LOG_PAGE;
    if (first > BigInt(this.bytes * 8)) return; // beyond what the log covers
    this.usedRings.set(vring, { first: Number(first), count: Number(last - first + 1n) });
  }

  /** A call snapshot: the device-writable buffers of the chains it shows completed. */
  completed(vring: number, s: RingSnapshot): void {
    if (s.kind !== 'call') return;
    const logPages = this.bytes * 8;
    for (const e of s.entries) {
      let left = e.usedLen ?? Infinity;
      for (const d of e.descs) {
        if (!(d.flags & VRING_DESC_F_WRITE) || left <= 0) continue;
        const len = Math.min(d.len, left);
        left -= len;
        if (len === 0) continue;
        const first = d.addr / LOG_PAGE;
        if (first >= BigInt(logPages)) continue;
        const last = Math.min(Number((d.addr + BigInt(len) - 1n) / LOG_PAGE), logPages - 1);
        for (let p = Number(first); p <= last && this.written.size < MAX_WRITTEN_PAGES; p++) this.written.set(p, vring);
      }
    }
  }

  /** One read of the whole log. */
  sample(log: Buffer): void {
    this.samples++;
    const n = Math.min(log.length, this.bytes);
    let budget = MAX_CLASSIFIED_MARKS;
    for (let i = 0; i < n; i++) {
      const fresh = log[i]! & ~this.prev[i]!;
      if (!fresh) continue;
      const unseen = fresh & ~this.seen[i]!;
      if (unseen) {
        this.pages += POPCOUNT[unseen]!;
        this.seen[i] |= fresh;
      }
      const count = POPCOUNT[fresh]!;
      this.marks += count;
      if (budget < count) {
        this.other += count; // past the budget: counted, not put down to a vring
        continue;
      }
      budget -= count;
      for (let bit = 0; bit < 8; bit++) if (fresh & (1 << bit)) this.classify(i * 8 + bit);
    }
    log.copy(this.prev, 0, 0, n);
    this.written = new Map();
  }

  private classify(page: number): void {
    for (const [vring, r] of this.usedRings) {
      if (page >= r.first && page < r.first + r.count) return void this.vringFigures(vring).usedRing++;
    }
    const vring = this.written.get(page);
    if (vring !== undefined) this.vringFigures(vring).buffers++;
    else this.other++;
  }

  private vringFigures(vring: number): { usedRing: number; buffers: number } {
    let f = this.perVring.get(vring);
    if (!f) this.perVring.set(vring, (f = { usedRing: 0, buffers: 0 }));
    return f;
  }

  figures(): DirtyLogFigures {
    return {
      samples: this.samples,
      marks: this.marks,
      pages: this.pages,
      vrings: [...this.perVring].sort(([a], [b]) => a - b).map(([vring, f]) => ({ vring, ...f })),
      other: this.other,
    };
  }
}
