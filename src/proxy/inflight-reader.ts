/**
 * `--rings`: reads the inflight region (INFLIGHT_SHMFD) the front-end hands the back-end with
 * SET_INFLIGHT_FD: once as handed over (after a reconnect: what the new back-end must resubmit)
 * and once more as the session leaves it (what was in flight when it ended). The fd is dup()ed
 * before the message is forwarded and read with pread(2), as the dirty log is: a memfd only, and
 * a file shrunk by a peer makes a read come back short, never fault the daemon.
 */
import * as fs from 'node:fs';
import { native } from '../native';
import { notMemory } from '../events/fds';
import type { InflightEvent } from '../events/events';
import { decoders, hasBit, HEADER_SIZE, VirtioFeature, type Negotiation } from '../protocol';
import { readInflightSplit } from '../rings/inflight';

/** a region this large is not read (QEMU sizes one for 1024 queues of 1024 descriptors under 17 MiB) */
export const MAX_INFLIGHT_BYTES = 32 << 20;
/**
 * SET_INFLIGHT_FDs read as they are handed over, per session (QEMU sends one per device start);
 * after that only the session's end is read: a front-end repeating it cannot make the daemon
 * read 32 MiB per message.
 */
export const MAX_HANDED_READS = 16;

/** One reading of the region: the event the session emits, but for its time and session. */
export type InflightReading = Omit<InflightEvent, 'type' | 'ts' | 'session'>;

interface Region {
  fd: number;
  offset: number;
  mmapSize: number;
  numQueues: number;
  queueSize: number;
}

export class InflightReader {
  private current: Region | undefined;
  private handed = 0;

  constructor(
    private readonly negotiation: Negotiation,
    private readonly onReading: (r: InflightReading) => void,
    private readonly onProblem: (msg: string) => void,
  ) {}

  /** SET_INFLIGHT_FD about to be forwarded (its fd still ours to dup). */
  beforeForward(raw: Buffer, fds: number[]): void {
    this.release();
    if (fds.length !== 1) return;
    const p = decoders.inflight(raw.subarray(HEADER_SIZE));
    const region: Omit<Region, 'fd'> = {
      mmapSize: Number(p.mmapSize as bigint),
      offset: Number(p.mmapOffset as bigint),
      numQueues: p.numQueues as number,
      queueSize: p.queueSize as number,
    };
    if (hasBit(this.negotiation.ackedFeatures, VirtioFeature.RING_PACKED))
      return this.onProblem('inflight region: packed rings lay it out otherwise; not read');
    if (region.mmapSize <= 0 || region.numQueues <= 0) return;
    if (region.mmapSize > MAX_INFLIGHT_BYTES)
      return this.onProblem(`inflight region: ${region.mmapSize} bytes, more than ${MAX_INFLIGHT_BYTES >> 20} MiB; not read`);
    const what = notMemory(fds[0]!);
    if (what) return this.onProblem(`inflight region: ${what}, not a memfd; not read`);
    this.current = { ...region, fd: native.dup(fds[0]!) };
    if (++this.handed <= MAX_HANDED_READS) this.read(this.current, 'SET_INFLIGHT_FD');
    else if (this.handed === MAX_HANDED_READS + 1)
      this.onProblem(`inflight region: more than ${MAX_HANDED_READS} SET_INFLIGHT_FD in this session; from now on read only at its end`);
  }

  private read(r: Region, when: InflightReading['when']): void {
    const { mmapSize, numQueues, queueSize } = r;
    // what a short file does not hold reads as zero (a fresh region), and the reading says so
    const buf = Buffer.alloc(mmapSize);
    let error: string | undefined;
    try {
      const n = fs.readSync(r.fd, buf, 0, mmapSize, r.offset);
      if (n < mmapSize) error = `the file holds ${n} of the ${mmapSize} bytes SET_INFLIGHT_FD gave`;
    } catch (err) {
      this.onReading({ when, mmapSize, numQueues, queueSize, queues: [], error: `reading it failed: ${(err as Error).message}` });
      return;
    }
    this.onReading({ when, mmapSize, numQueues, queueSize, queues: readInflightSplit(buf, numQueues, queueSize), ...(error ? { error } : {}) });
  }

  private release(): void {
    if (!this.current) return;
    native.close(this.current.fd);
    this.current = undefined;
  }

  /** The session ends: the region as it leaves it, then the fd goes. */
  close(): void {
    if (this.current) this.read(this.current, 'session end');
    this.release();
  }
}
