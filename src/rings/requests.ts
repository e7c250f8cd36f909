/**
 * Per-request latency from vring snapshots (--rings). Pure.
 *
 * A request is a descriptor chain: it is *submitted* when the driver puts its head on the avail
 * ring and *completed* when the device's used element for that head reaches the driver with a
 * call. Snapshots are taken at every relayed kick and call, so neither moment is seen exactly:
 *
 * - submitted: the first snapshot whose avail index covers the chain (split rings; packed rings:
 *   the kick that lists it). It was made available after the snapshot before that one, so the
 *   gap between the two is the figure's uncertainty (small when the driver kicks for every
 *   request, as wide as the idle time before it when notifications are suppressed);
 * - completed: the first snapshot whose used index covers the used element (split rings), else
 *   the call that lists it. Snapshots are stamped with the notification's pick-up time and read
 *   just after it was forwarded (within readUs): a device that answers while its kick is being
 *   forwarded is done in the submitting snapshot already, and its latency is that read's bound.
 *   It finished after the snapshot before, which bounds it from below: a driver that polls and
 *   sends no notifications for a while (SeaBIOS) leaves a wide bracket, kept as the uncertainty;
 * - notified: the call whose snapshot lists the used element (what the driver is woken for), so
 *   `notifyNs` = notified − completed is the time the completion waited to be told (a polling
 *   driver such as SeaBIOS does not wait for it at all).
 *
 * Chains are matched by head id (unique among the chains a driver has outstanding), which holds
 * for in-order and out-of-order devices and with event-idx alike. A chain never completed is
 * outstanding, with its age, and never a latency. A used element whose submission no snapshot
 * listed (the chain was made available before --rings started, or a truncated snapshot left it
 * out) is counted as unmatched.
 */
import type { DeviceType } from '../protocol';
import { decodeBuffer } from './headers';
import { indicesRead, type RingEntry, type RingSnapshot } from './snapshot';

export interface CompletedRequest {
  vring: number;
  head: number;
  /** e.g. "read ≤4K", "write ≤64K", "flush", "FUSE LOOKUP", "tx", "rx fill" */
  op: string;
  submittedNs: bigint;
  /** the device had made it used by then: the first snapshot whose used index covers it (split), else the call */
  completedNs: bigint;
  /** the call that reported it to the driver (a request found done when its idle ring stopped, with no call: completedNs) */
  notifiedNs: bigint;
  /** completed − submitted: the device's part, as far as snapshots resolve it */
  latencyNs: number;
  /** how long before `submittedNs` the chain may have been made available */
  uncertaintyNs: number;
  /** how long before `completedNs` the device may have finished (no snapshot in between saw it) */
  completionUncertaintyNs: number;
  /** split rings: completed → the call (how long the driver waited to be told) */
  notifyNs?: number;
  /** done before the submitting snapshot finished reading the ring: latencyNs is that read's bound */
  belowResolution?: boolean;
  /**
   * first seen done by a snapshot other than the device's call (a kick, the ring's stop), more
   * than UNBOUNDED_BRACKET_NS after the last one that saw it pending: it was done somewhere in
   * that bracket (a driver that polled for it, asking for no call), so latencyNs is only a bound
   */
  unbounded?: boolean;
}

/** A completion bracket this wide, not closed by a call, says nothing about the request's latency. */
export const UNBOUNDED_BRACKET_NS = 1_000_000;

export interface OutstandingRequest {
  vring: number;
  head: number;
  op: string;
  submittedNs: bigint;
}

interface Pending {
  head: number;
  op: string;
  submittedNs: bigint;
  uncertaintyNs: number;
}

const HISTORY = 512;
/** pending submissions kept per head (see observe): what bounds a ring's outstanding requests */
const MAX_PER_HEAD = 2;
const u16 = (x: number): number => x & 0xffff;

class RingState {
  /**
   * Per head, oldest first: a driver reuses a head as soon as it has seen it used, which can be
   * before the call that reports the first use reaches the proxy, so one call may list the same
   * head twice (first the old chain, then the new one).
   */
  readonly outstanding = new Map<number, Pending[]>();
  /** outstanding when the ring was stopped (GET_VRING_BASE): completed by the calls that follow, or abandoned at the next kick */
  stopped = new Map<number, Pending[]>();
  /** the GET_VRING_BASE snapshot of a ring stopped with every chain used, and the snapshot time before it */
  stoppedIdle: { base: RingSnapshot; prevTs: bigint | undefined } | undefined;
  /** stopped by GET_VRING_BASE: the next kick starts the ring's positions afresh */
  restarting = false;
  lastTs: bigint | undefined;
  /** split rings: recent snapshots' avail and used indices, oldest first */
  readonly seen: { avail: number; used: number; ts: bigint; readUs: number; kind: RingSnapshot['kind'] }[] = [];
  /** split rings: used elements the used index has shown, and those a call listed */
  lastUsed: number | undefined;
  usedSeen = 0;
  usedListed = 0;
  /**
   * Split rings: chains a call listed used before any kick listed them (made available without a
   * kick, event idx, and picked up by a device that polls while busy): the next kick that lists
   * the head at a position the call had already seen available completes them. Per head, oldest first.
   */
  readonly early = new Map<number, EarlyCompletion[]>();
}

interface EarlyCompletion {
  /** the call that listed it, and the avail index that call saw */
  notifiedNs: bigint;
  availAtCall: number;
  /** when the used index first covered it, and the snapshot before that */
  usedNs: bigint;
  usedBefore?: bigint;
}

/** the pending chains of this head, oldest first (a new, empty queue if none) */
function queueOf(m: Map<number, Pending[]>, head: number): Pending[] {
  let q = m.get(head);
  if (!q) m.set(head, (q = []));
  return q;
}

/** the oldest pending chain with this head, removed */
function shift(m: Map<number, Pending[]>, head: number): Pending | undefined {
  const q = m.get(head);
  const p = q?.shift();
  if (q && q.length === 0) m.delete(head);
  return p;
}

/** blk size classes: what a user compares ("4 KiB reads got slower") */
function sizeClass(bytes: number): string {
  if (bytes <= 0) return '0';
  for (const [limit, name] of [
    [4096, '4K'],
    [16384, '16K'],
    [65536, '64K'],
    [262144, '256K'],
    [1048576, '1M'],
  ] as const)
    if (bytes <= limit) return `≤${name}`;
  return '>1M';
}

const BLK_OPS: Record<string, string> = {
  'IN (read)': 'read',
  'OUT (write)': 'write',
  FLUSH: 'flush',
  DISCARD: 'discard',
  WRITE_ZEROES: 'write-zeroes',
  GET_ID: 'get-id',
  SECURE_ERASE: 'secure-erase',
};

/** The device operation a submitted chain is, as far as the snapshot tells. */
export function operationOf(device: DeviceType, vring: number, e: RingEntry): string {
  if (device === 'net') return vring % 2 === 0 ? 'rx fill' : 'tx';
  const h = decodeBuffer(e, { device, vring, kind: 'kick' });
  if (h?.blk) {
    const op = BLK_OPS[h.blk.type] ?? h.blk.type;
    return op === 'read' || op === 'write' ? `${op} ${sizeClass(h.blk.dataLen)}` : op;
  }
  if (h?.fuse) return `FUSE ${h.fuse.opcode}`;
  return device === 'fs' && vring === 0 ? 'hiprio' : 'request';
}

/** Index a (16-bit) position first passed: the first recorded snapshot whose index went past it. */
function firstPassed(
  seen: RingState['seen'],
  key: 'avail' | 'used',
  pos: number,
  upTo: bigint,
): { ts: bigint; readUs: number; kind: RingSnapshot['kind']; before?: bigint } | undefined {
  for (let i = 0; i < seen.length; i++) {
    const s = seen[i];
    if (s.ts > upTo) break;
    // s[key] has passed pos when pos lies in the window of 32768 positions behind it
    if (u16(s[key] - pos - 1) < 0x8000) return { ts: s.ts, readUs: s.readUs, kind: s.kind, ...(i > 0 ? { before: seen[i - 1].ts } : {}) };
  }
  return undefined;
}

export class RequestTracker {
  private readonly rings = new Map<number, RingState>();
  /** used elements whose submission was never seen */
  unmatched = 0;
  /** snapshots that held more chains than they could list: some requests are missing */
  truncated = 0;
  /** chains outstanding when their ring was stopped (GET_VRING_BASE) and not reported before it ran again */
  abandoned = 0;

  constructor(private device: DeviceType) {}

  /** The device, once inferred: names the operations of requests submitted from now on. */
  setDevice(device: DeviceType): void {
    this.device = device;
  }

  private ring(vring: number): RingState {
    let r = this.rings.get(vring);
    if (!r) this.rings.set(vring, (r = new RingState()));
    return r;
  }

  /** Takes the next snapshot of `vring` (in time order); returns the requests it completed. */
  observe(vring: number, s: RingSnapshot): CompletedRequest[] {
    const r = this.ring(vring);
    const prevTs = r.lastTs;
    r.lastTs = s.ts;
    // a chain that could not be followed still has its head and the ring its indices
    if (!indicesRead(s)) return [];
    if (s.truncated) this.truncated++;
    const done: CompletedRequest[] = [];
    if (s.kind === 'base') {
      for (const [head, ps] of r.outstanding) r.stopped.set(head, [...(r.stopped.get(head) ?? []), ...ps]);
      r.outstanding.clear();
      r.restarting = true;
      // stopped idle (every chain made available is used): nothing was in flight
      r.stoppedIdle = !s.packed && !s.truncated && s.availIdx === s.usedIdx ? { base: s, prevTs } : undefined;
    } else if (s.kind === 'kick' && r.restarting) {
      // the ring runs again, from the base the frontend set (indices of a new ring, or the same
      // ring's restarted): the stopped ring's positions say nothing about it. Until this kick they
      // still do: a call after GET_VRING_BASE reads the old ring and completes what was in flight
      // (or done long before: a polling driver's requests, seen used at their own kick). What no
      // call listed is done if the ring stopped idle (a polling driver such as SeaBIOS asks for no
      // call, and the ring may be reset before one reads it), bounded by the snapshots before it;
      // else it is abandoned.
      r.restarting = false;
      const idle = r.stoppedIdle;
      for (const ps of r.stopped.values()) {
        if (idle) for (const p of ps) done.push(this.completed(r, vring, p, u16(idle.base.usedIdx - 1), idle.base, idle.prevTs, { notified: false }));
        else this.abandoned += ps.length;
      }
      r.stoppedIdle = undefined;
      r.seen.length = 0;
      r.lastUsed = undefined;
      r.stopped.clear();
      r.early.clear();
    }
    if (!s.packed) {
      if (r.lastUsed !== undefined) r.usedSeen += u16(s.usedIdx - r.lastUsed);
      r.lastUsed = s.usedIdx;
      if (s.kind === 'call') r.usedListed += s.entries.length;
      r.seen.push({ avail: s.availIdx, used: s.usedIdx, ts: s.ts, readUs: s.readUs, kind: s.kind });
      if (r.seen.length > HISTORY) r.seen.splice(0, r.seen.length - HISTORY);
    }
    if (s.kind === 'base') return done;
    if (s.kind === 'kick') {
      s.entries.forEach((e, i) => {
        let submittedNs = s.ts;
        let uncertaintyNs = prevTs !== undefined ? Number(s.ts - prevTs) : 0;
        if (!s.packed && !s.truncated) {
          // the chain's avail position; an earlier snapshot (a call's) may have seen it already
          const first = firstPassed(r.seen, 'avail', u16(s.availIdx - s.entries.length + i), s.ts);
          if (first) {
            submittedNs = first.ts;
            uncertaintyNs = first.before !== undefined ? Number(first.ts - first.before) : uncertaintyNs;
          }
        }
        const op = operationOf(this.device, vring, e);
        const early = !s.packed && !s.truncated ? this.takeEarly(r, e.head, u16(s.availIdx - s.entries.length + i)) : undefined;
        if (early) {
          // completed before this kick listed it: the call that reported it bounds it
          const completedNs = early.usedNs > submittedNs ? early.usedNs : submittedNs;
          const doneAfter = early.usedBefore !== undefined && early.usedBefore > submittedNs ? early.usedBefore : submittedNs;
          done.push({
            vring,
            head: e.head,
            op,
            submittedNs,
            completedNs,
            notifiedNs: early.notifiedNs,
            latencyNs: Number(completedNs - submittedNs),
            uncertaintyNs,
            completionUncertaintyNs: Number(completedNs - doneAfter),
            notifyNs: Number(early.notifiedNs - completedNs),
          });
          return;
        }
        const q = queueOf(r.outstanding, e.head);
        q.push({ head: e.head, op, submittedNs, uncertaintyNs });
        // a head is outstanding once, twice while its reuse overtakes the call of its first use;
        // more is a driver listing heads it never gets back (or garbage): bounded, counted
        if (q.length > MAX_PER_HEAD) {
          q.shift();
          this.abandoned++;
        }
      });
    } else {
      s.entries.forEach((e, i) => {
        const p = shift(r.outstanding, e.head) ?? shift(r.stopped, e.head);
        if (!p) {
          this.unmatched++;
          if (!s.packed && !s.truncated) this.keepEarly(r, e.head, s, u16(s.usedIdx - s.entries.length + i));
          return;
        }
        done.push(this.completed(r, vring, p, u16(s.usedIdx - s.entries.length + i), s, prevTs, { notified: true }));
      });
      // with nothing outstanding, older positions are of no more use (the last two still bracket
      // a chain made available now and listed by a later kick)
      if (!s.packed && r.outstanding.size === 0 && r.stopped.size === 0 && r.seen.length > 2) r.seen.splice(0, r.seen.length - 2);
    }
    return done;
  }

  /**
   * A request found done by snapshot `s`, whose used element sits at `usedPos`: done at the latest
   * when the used index first covered it (split rings), else at `s`; after the last snapshot that
   * did not show it used, or its submission. `notified`: `s` is the call that told the driver.
   */
  private completed(
    r: RingState,
    vring: number,
    p: Pending,
    usedPos: number,
    s: RingSnapshot,
    prevTs: bigint | undefined,
    o: { notified: boolean },
  ): CompletedRequest {
    let completedNs = s.ts;
    let doneAfter = prevTs !== undefined && prevTs > p.submittedNs ? prevTs : p.submittedNs;
    let seenBy = s.kind;
    let belowResolution = false;
    if (!s.packed && !s.truncated) {
      const used = firstPassed(r.seen, 'used', usedPos, s.ts);
      if (used && used.ts > p.submittedNs) {
        completedNs = used.ts;
        seenBy = used.kind;
        doneAfter = used.before !== undefined && used.before > p.submittedNs ? used.before : p.submittedNs;
      } else if (used && used.readUs > 0) {
        // used already in the snapshot that saw it submitted, read readUs after the pick-up
        const bound = p.submittedNs + BigInt(used.readUs) * 1000n;
        completedNs = bound < s.ts ? bound : s.ts;
        doneAfter = p.submittedNs;
        belowResolution = true;
      }
      // (else a recording from before readUs was kept: only the call bounds it)
    }
    return {
      vring,
      head: p.head,
      op: p.op,
      submittedNs: p.submittedNs,
      completedNs,
      notifiedNs: o.notified ? s.ts : completedNs,
      latencyNs: Number(completedNs - p.submittedNs),
      uncertaintyNs: p.uncertaintyNs,
      completionUncertaintyNs: Number(completedNs - doneAfter),
      ...(!s.packed && o.notified ? { notifyNs: Number(s.ts - completedNs) } : {}),
      ...(belowResolution ? { belowResolution } : {}),
      ...(seenBy !== 'call' && completedNs - doneAfter > UNBOUNDED_BRACKET_NS ? { unbounded: true } : {}),
    };
  }

  /** A used element whose chain no kick has listed yet: kept (a few per head) for the kick that will. */
  private keepEarly(r: RingState, head: number, s: RingSnapshot, usedPos: number): void {
    const used = firstPassed(r.seen, 'used', usedPos, s.ts);
    const q = r.early.get(head) ?? [];
    q.push({ notifiedNs: s.ts, availAtCall: s.availIdx, usedNs: used?.ts ?? s.ts, ...(used?.before !== undefined ? { usedBefore: used.before } : {}) });
    if (q.length > MAX_PER_HEAD) q.shift();
    r.early.set(head, q);
  }

  /** The early completion of `head` that the chain at avail position `pos` is, if the call that reported it had seen `pos` available. */
  private takeEarly(r: RingState, head: number, pos: number): EarlyCompletion | undefined {
    const q = r.early.get(head);
    if (!q?.length) return undefined;
    const i = q.findIndex((c) => u16(c.availAtCall - pos - 1) < 0x8000);
    if (i < 0) return undefined;
    const [c] = q.splice(i, 1);
    if (!q.length) r.early.delete(head);
    this.unmatched--;
    return c;
  }

  /**
   * Split rings: used elements no call listed, per vring. The snapshots name a completed chain
   * only in the call that reports it; a driver that takes completions without interrupts (Linux
   * virtio-net frees transmitted buffers on its next transmit) leaves its used elements to be
   * counted here, and those requests outstanding.
   */
  usedWithoutCall(): Map<number, number> {
    const out = new Map<number, number>();
    for (const [vring, r] of this.rings) if (r.usedSeen > r.usedListed) out.set(vring, r.usedSeen - r.usedListed);
    return out;
  }

  /** Chains submitted and not completed, oldest first. */
  outstanding(): OutstandingRequest[] {
    const out: OutstandingRequest[] = [];
    for (const [vring, r] of this.rings) {
      for (const ps of [...r.outstanding.values(), ...r.stopped.values()])
        for (const p of ps) out.push({ vring, head: p.head, op: p.op, submittedNs: p.submittedNs });
    }
    return out.sort((a, b) => (a.submittedNs < b.submittedNs ? -1 : a.submittedNs > b.submittedNs ? 1 : 0));
  }
}
