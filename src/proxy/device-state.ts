/**
 * The device-state pipe of a migration (SET_DEVICE_STATE_FD), interposed. The back-end gets a
 * pipe of the proxy's in place of the front-end's, and the proxy copies between the two,
 * counting the bytes (and keeping the first `keepBytes` of them for the recording).
 *
 * Save: the back-end writes its state into our pipe, we copy it into the front-end's write end.
 * Load: we read the front-end's read end and copy into our pipe, which the back-end reads.
 * The copy is a stream with back-pressure: a slow reader slows the writer as the direct pipe
 * would, and nothing is held beyond one chunk. End of file on one side closes the other, which
 * is how both peers know the transfer is over.
 */
import * as net from 'node:net';
import { native } from '../native';

export type StateDirection = 'save' | 'load';

export interface StateTransfer {
  direction: StateDirection;
  startNs: bigint;
  endNs: bigint;
  bytes: number;
  /** how the copy failed, when it did (the peers then see the pipe end early) */
  error?: string;
  /** the bytes kept (at most keepBytes), when asked for */
  data?: Buffer;
  /** more bytes went through than were kept */
  truncated?: boolean;
  /** the copy began this late (a fault rule's hold) */
  heldMs?: number;
}

export class DeviceStatePipe {
  /** The fd to pass the back-end in place of the front-end's (the channel that sends it closes our copy). */
  readonly backendFd: number;
  private readonly src: net.Socket;
  private readonly dst: net.Socket;
  private readonly startNs = native.monotonicNs();
  private bytes = 0;
  private readonly kept: Buffer[] = [];
  private keptBytes = 0;
  private done = false;
  private holdTimer?: NodeJS.Timeout;

  /**
   * `frontendFd`: the pipe end the front-end sent (owned from now on). `onEnd` runs once, when
   * the transfer has ended (end of file, an error, or close()). `holdMs`: read nothing for this
   * long (a fault rule's hold): the writer fills the pipe and waits, the reader waits.
   */
  constructor(
    readonly direction: StateDirection,
    frontendFd: number,
    private readonly keepBytes: number,
    private readonly onEnd: (t: StateTransfer) => void,
    private readonly holdMs = 0,
  ) {
    const [r, w] = native.pipe();
    this.backendFd = direction === 'save' ? w : r;
    const [from, to] = direction === 'save' ? [r, frontendFd] : [frontendFd, w];
    this.src = new net.Socket({ fd: from, readable: true, writable: false });
    this.dst = new net.Socket({ fd: to, readable: false, writable: true });
    this.src.on('data', (chunk: Buffer) => this.carry(chunk));
    this.dst.on('drain', () => this.src.resume());
    this.src.on('end', () => this.flushThenFinish());
    this.src.on('error', (err) => this.finish(`reading the ${direction === 'save' ? "back-end's" : "front-end's"} end: ${err.message}`));
    this.dst.on('error', (err) => this.finish(`writing to the ${direction === 'save' ? "front-end's" : "back-end's"} end: ${err.message}`));
    if (holdMs > 0) {
      this.src.pause();
      this.holdTimer = setTimeout(() => {
        this.holdTimer = undefined;
        if (!this.done) this.src.resume();
      }, holdMs);
    }
  }

  private carry(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.keptBytes < this.keepBytes) {
      const part = chunk.subarray(0, this.keepBytes - this.keptBytes);
      this.kept.push(Buffer.from(part));
      this.keptBytes += part.length;
    }
    if (!this.dst.write(chunk)) this.src.pause();
  }

  /** End of file from the writer: once what we hold is written, close the reader's end (its end of file). */
  private flushThenFinish(): void {
    if (this.dst.writableLength === 0) this.finish();
    else this.dst.once('drain', () => this.finish());
  }

  private finish(error?: string): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.holdTimer);
    this.src.destroy();
    this.dst.destroy();
    this.onEnd({
      direction: this.direction,
      startNs: this.startNs,
      endNs: native.monotonicNs(),
      bytes: this.bytes,
      ...(this.holdMs > 0 ? { heldMs: this.holdMs } : {}),
      ...(error ? { error } : {}),
      ...(this.keepBytes > 0 ? { data: Buffer.concat(this.kept), ...(this.bytes > this.keptBytes ? { truncated: true } : {}) } : {}),
    });
  }

  /** The session ends: stop copying (both peers see their ends close). */
  close(): void {
    this.finish(this.done ? undefined : 'the session ended during the transfer');
  }
}
