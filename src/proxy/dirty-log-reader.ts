/**
 * `--rings`: reads the dirty log a migration's front-end hands the back-end (SET_LOG_BASE's
 * memfd) while the session lives, and says how many page marks the back-end made, per vring
 * (src/rings/dirty-log.ts counts). The log's fd is dup()ed before the message is forwarded and
 * read with pread(2) (fs.readSync at an offset): a front-end that shrinks or seals the file makes
 * a read come back short or fail, which is reported, and can never fault the daemon the way a
 * mapping would.
 */
import * as fs from 'node:fs';
import { native } from '../native';
import { notMemory } from '../events/fds';
import { decoders, HEADER_SIZE, MAX_VRINGS, Request } from '../protocol';
import { DirtyLogCounter, type DirtyLogFigures } from '../rings/dirty-log';
import type { RingSnapshot } from '../rings/snapshot';

/** a log this large is not read: one bit per 4 KiB page, so 16 MiB covers 512 GiB of guest memory */
export const MAX_LOG_BYTES = 16 << 20;
/** often enough to see a mark between two of QEMU's syncs (one per migration iteration, 100s of ms apart) */
const SAMPLE_MS = 20;
/**
 * A sample may take this share of the daemon's loop at most: after one that took t ms, the next
 * waits 1/SAMPLE_DUTY x t (a 16 MiB log read and counted every 20 ms would hold the loop
 * that forwards every session's messages).
 */
const SAMPLE_DUTY = 0.1;

export interface DirtyLogResult extends DirtyLogFigures {
  startNs: bigint;
  endNs: bigint;
  bytes: number;
  /** why reading stopped early (the figures stand for what was read until then) */
  error?: string;
}

interface Reading {
  fd: number;
  offset: number;
  buf: Buffer;
  counter: DirtyLogCounter;
  startNs: bigint;
  timer: NodeJS.Timeout;
  /** no sample before this (Date.now() ms): the duty-cycle bound */
  nextAtMs: number;
  error?: string;
}

export class DirtyLogReader {
  private current: Reading | undefined;
  /** per vring: SET_VRING_NUM and SET_VRING_ADDR's log_guest_addr, for the logs to come */
  private readonly vrings = new Map<number, { index: number; num?: number; logAddr?: bigint }>();
  private closed = false;

  constructor(
    private readonly onResult: (r: DirtyLogResult) => void,
    private readonly onProblem: (msg: string) => void,
  ) {}

  /** A front-end request about to be forwarded (its fds still ours to dup). */
  beforeForward(request: number, raw: Buffer, fds: number[]): void {
    if (this.closed) return;
    const p = raw.subarray(HEADER_SIZE);
    if (request === Request.SET_LOG_BASE) return this.start(p, fds);
    if (request !== Request.SET_VRING_NUM && request !== Request.SET_VRING_ADDR) return;
    let v: { index: number; num?: number; logAddr?: bigint } | undefined;
    if (request === Request.SET_VRING_NUM) {
      const s = decoders.vringState(p);
      if ((v = this.vring(s.index as number))) v.num = s.num as number;
    } else {
      const a = decoders.vringAddr(p);
      if ((v = this.vring(a.index as number))) v.logAddr = a.logGuestAddr as bigint;
    }
    if (v) this.describeRing(v);
  }

  private vring(i: number): { index: number; num?: number; logAddr?: bigint } | undefined {
    if (i >= MAX_VRINGS) return undefined; // (the ring tracker says so, with --rings; the log counts it as other)
    let v = this.vrings.get(i);
    if (!v) this.vrings.set(i, (v = { index: i }));
    return v;
  }

  /** The counter learns one vring's used ring (the one that changed: all of them per message was quadratic). */
  private describeRing(v: { index: number; num?: number; logAddr?: bigint }): void {
    if (this.current && v.num !== undefined && v.logAddr !== undefined) this.current.counter.usedRing(v.index, v.logAddr, v.num);
  }

  private describeRings(): void {
    for (const v of this.vrings.values()) this.describeRing(v);
  }

  private start(p: Buffer, fds: number[]): void {
    this.finish();
    if (fds.length !== 1) return;
    const log = decoders.log(p);
    const bytes = Number(log.mmapSize as bigint);
    if (bytes > MAX_LOG_BYTES) return this.onProblem(`the dirty log (${bytes} bytes) is larger than ${MAX_LOG_BYTES >> 20} MiB: not read`);
    if (bytes <= 0) return;
    const what = notMemory(fds[0]!);
    if (what) return this.onProblem(`the dirty log is ${what}, not a memfd: not read`);
    const fd = native.dup(fds[0]!);
    this.current = {
      fd,
      offset: Number((log.mmapOffset as bigint | undefined) ?? 0n),
      buf: Buffer.alloc(bytes),
      counter: new DirtyLogCounter(bytes),
      startNs: native.monotonicNs(),
      timer: setInterval(() => {
        if (Date.now() >= (this.current?.nextAtMs ?? 0)) this.sample();
      }, SAMPLE_MS),
      nextAtMs: 0,
    };
    this.current.timer.unref();
    this.describeRings();
  }

  /** A call snapshot of a vring (`--rings`): the buffers the back-end filled. */
  onSnapshot(vring: number, s: RingSnapshot): void {
    this.current?.counter.completed(vring, s);
  }

  /** Read the log now (a ring stops: GET_VRING_BASE's answer, before the front-end syncs). */
  sample(): void {
    const r = this.current;
    if (!r || r.error) return;
    try {
      const t0 = Date.now();
      const n = fs.readSync(r.fd, r.buf, 0, r.buf.length, r.offset);
      r.counter.sample(r.buf.subarray(0, n));
      r.nextAtMs = Date.now() + (Date.now() - t0) / SAMPLE_DUTY;
      if (n < r.buf.length) this.stop(r, `the log file is shorter than SET_LOG_BASE said (${n} of ${r.buf.length} bytes read)`);
    } catch (err) {
      this.stop(r, `reading the log failed: ${(err as Error).message}`);
    }
  }

  private stop(r: Reading, error: string): void {
    r.error = error;
    clearInterval(r.timer);
    this.onProblem(`dirty log: ${error}; the figures stand for what was read until now`);
  }

  /** The log ends (replaced, or the session ends): one last read, then the figures. */
  private finish(): void {
    const r = this.current;
    if (!r) return;
    this.sample();
    this.current = undefined;
    clearInterval(r.timer);
    native.close(r.fd);
    this.onResult({ ...r.counter.figures(), startNs: r.startNs, endNs: native.monotonicNs(), bytes: r.counter.bytes, ...(r.error ? { error: r.error } : {}) });
  }

  close(): void {
    if (this.closed) return;
    this.finish();
    this.closed = true;
  }
}
