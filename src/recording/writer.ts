/**
 * Appends records to a recording file without ever blocking forwarding: frames are buffered in
 * memory and written asynchronously, one write in flight at a time. Control records are never
 * dropped; when more than `maxPendingBytes` wait for the disk, notification batches are dropped
 * and counted instead (the recording says how many). An existing file is scanned first and cut
 * back to its last complete frame, so nothing is ever appended after a torn frame.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { encodeFrame, tailScan } from './frames';
import { FORMAT_NAME, FORMAT_VERSION, type HeaderRecord, type HostFacts, type RecordingRecord } from './records';

export interface WriterOptions {
  /** flush buffered frames this often (ms) */
  flushMs?: number;
  /** beyond this many bytes waiting for the disk, notification batches are dropped */
  maxPendingBytes?: number;
  argv?: string[];
  /** a new file only (a directory's segment files, named for their session and time): O_EXCL */
  exclusive?: boolean;
}

export function hostFacts(monotonicNs: bigint): HostFacts {
  return {
    byteOrder: os.endianness(),
    kernel: `${os.type()} ${os.release()} ${os.version()}`,
    arch: os.arch(),
    hostname: os.hostname(),
    node: process.version,
    vhostscope: (require('../../package.json') as { version: string }).version,
    clock: 'CLOCK_MONOTONIC',
    monotonicNs,
    wallClockMs: Date.now(),
  };
}

/** What a write of `n` bytes left of `bufs`: the buffers after them, the first one cut. */
export function unwritten(bufs: Buffer[], n: number): Buffer[] {
  let i = 0;
  while (i < bufs.length && n >= bufs[i].length) n -= bufs[i++].length;
  if (i === bufs.length) return [];
  return [bufs[i].subarray(n), ...bufs.slice(i + 1)];
}

/**
 * One timer per flush interval for every open writer: a timer each would be 20 callbacks a
 * second per session on the main loop (200 000 a second with 10 000 sessions).
 */
class FlushClock {
  private readonly writers = new Set<RecordingWriter>();
  private timer: NodeJS.Timeout | undefined;
  constructor(private readonly ms: number) {}
  add(w: RecordingWriter): void {
    this.writers.add(w);
    if (this.timer) return;
    this.timer = setInterval(() => {
      for (const x of this.writers) x.flush();
    }, this.ms);
    this.timer.unref();
  }
  delete(w: RecordingWriter): void {
    this.writers.delete(w);
    if (this.writers.size || !this.timer) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
const clocks = new Map<number, FlushClock>();
function clockOf(ms: number): FlushClock {
  let c = clocks.get(ms);
  if (!c) clocks.set(ms, (c = new FlushClock(ms)));
  return c;
}

export class RecordingWriter {
  private fd: number;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private inFlight = false;
  private closed = false;
  private readonly clock: FlushClock;
  private failed: Error | undefined;
  /** notification events dropped because the disk fell behind */
  droppedNotifications = 0;
  /** vring snapshots dropped because the disk fell behind */
  droppedRings = 0;
  bytesWritten = 0;
  /** records not queued because the file had already failed */
  droppedAfterFailure = 0;
  /** file size after the last fully written chunk: always a frame boundary */
  private wholeBytes = 0;
  /** set when the file existed and ended in a torn frame that was cut off */
  readonly recovered: { tornBytes: number; reason: string } | undefined;

  constructor(
    readonly path: string,
    private readonly opts: WriterOptions = {},
  ) {
    // Opened first, never following a symlink (Node adds O_CLOEXEC); everything after works on
    // the fd: a link at the path cannot get root to cut or append to another file.
    this.fd = fs.openSync(
      path,
      fs.constants.O_RDWR | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW | (opts.exclusive ? fs.constants.O_EXCL : 0),
      0o600,
    );
    let tornInfo: { tornBytes: number; reason: string } | undefined;
    try {
      const st = fs.fstatSync(this.fd);
      if (!st.isFile()) throw new Error(`${path} is not a regular file`);
      // appending to another user's file would hand them what the daemon records (and a file they may swap)
      const me = process.geteuid?.() ?? st.uid;
      if (st.uid !== me) throw new Error(`${path} belongs to uid ${st.uid}, not to this daemon (uid ${me}); refusing to append to it`);
      const scan = tailScan(this.fd); // bounded memory, whatever the file's size
      if (scan.torn) {
        fs.ftruncateSync(this.fd, scan.goodBytes);
        tornInfo = { tornBytes: scan.torn.bytes, reason: scan.torn.reason };
      }
    } catch (err) {
      fs.closeSync(this.fd);
      throw err;
    }
    this.recovered = tornInfo;
    this.bytesWritten = this.wholeBytes = fs.fstatSync(this.fd).size;
    this.clock = clockOf(opts.flushMs ?? 50);
    this.clock.add(this);
  }

  /** Starts a segment: the header record (and a note of what a crash cut off, if anything). */
  writeHeader(monotonicNs: bigint, part?: HeaderRecord['part']): void {
    this.write({
      type: 'header',
      format: FORMAT_NAME,
      version: FORMAT_VERSION,
      host: hostFacts(monotonicNs),
      argv: this.opts.argv ?? process.argv,
      ...(part ? { part } : {}),
    });
    if (this.recovered) this.write({ type: 'recovered', ts: monotonicNs, ...this.recovered });
  }

  /**
   * Queues a record. Returns false if it was dropped: only notification batches and vring
   * snapshots ever are (both high-rate, both counted), never a control record, unless the file
   * has failed: then nothing is queued any more (what would wait for a disk that said no
   * would grow for the rest of the daemon's life).
   */
  write(r: RecordingRecord): boolean {
    if (this.closed) return false;
    if (this.failed) {
      this.droppedAfterFailure++;
      return false;
    }
    if ((r.type === 'notify' || r.type === 'ring') && this.pendingBytes > (this.opts.maxPendingBytes ?? 64 << 20)) {
      if (r.type === 'notify') this.droppedNotifications += r.dt.length;
      else this.droppedRings++;
      return false;
    }
    const f = encodeFrame(r);
    this.pending.push(f);
    this.pendingBytes += f.length;
    if (this.pendingBytes >= 256 << 10) this.flush();
    return true;
  }

  get queuedBytes(): number {
    return this.pendingBytes;
  }

  get error(): Error | undefined {
    return this.failed;
  }

  /**
   * Starts an asynchronous write of everything queued (no-op while one is in flight), as one
   * writev of the queued frames: joining them first cost a fresh buffer of 256 KiB or more per
   * flush and session, above glibc's mmap threshold and then, once glibc raised it, carved
   * from and returned to its heap (fragmentation the 30-minute soak measured).
   */
  flush(): void {
    if (this.inFlight || this.pending.length === 0 || this.failed) return;
    const chunk = this.pending;
    this.pending = [];
    this.inFlight = true;
    fs.writev(this.fd, chunk, (err, n) => {
      this.inFlight = false;
      if (err) {
        this.fail(err);
        if (this.closed) this.finishSync();
        return;
      }
      this.bytesWritten += n;
      this.pendingBytes -= n;
      const rest = unwritten(chunk, n);
      if (rest.length) {
        // the rest goes first next time: frames stay whole and in order
        // (concat, not unshift(...rest): a short write can leave more frames than a call takes arguments)
        this.pending = rest.concat(this.pending);
      } else {
        this.wholeBytes = this.bytesWritten; // a chunk (or a chunk's rest) ends on a frame boundary
      }
      if (this.closed) this.finishSync();
      else if (this.pendingBytes >= 256 << 10) this.flush();
    });
  }

  /**
   * A failed write (disk full) must not stop forwarding: the recording stops where it is,
   * cut back to its last whole frame, and says why in the error.
   */
  private fail(err: Error): void {
    this.failed = err;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      fs.ftruncateSync(this.fd, this.wholeBytes); // never leave a torn frame behind
      this.bytesWritten = this.wholeBytes;
    } catch {
      /* the reader still stops at the torn frame */
    }
  }

  /** where the recording ends for sure: the size of its whole frames */
  get committedBytes(): number {
    return this.wholeBytes;
  }

  /**
   * Writes everything still queued and closes the file (SIGINT/SIGTERM, session end). Resolves
   * once the data is in the file: a write already in flight finishes first, then the rest is
   * written synchronously after it, so frames stay in order.
   */
  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.clock.delete(this);
      if (!this.inFlight) this.finishSync();
    }
    return this.done;
  }

  private resolveDone: () => void = () => {};
  private readonly done = new Promise<void>((r) => (this.resolveDone = r));

  private finishSync(): void {
    if (this.fd < 0) return;
    if (!this.failed) {
      try {
        for (const b of this.pending) {
          fs.writeSync(this.fd, b);
          this.bytesWritten += b.length;
        }
        this.wholeBytes = this.bytesWritten;
      } catch (err) {
        this.fail(err as Error);
      }
    }
    this.pending = [];
    this.pendingBytes = 0;
    fs.closeSync(this.fd);
    this.fd = -1;
    this.resolveDone();
  }
}
