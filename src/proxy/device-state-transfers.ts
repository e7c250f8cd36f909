/**
 * A session's device-state transfers (SET_DEVICE_STATE_FD with a pipe): the back-end gets a pipe
 * of ours and the proxy copies the state through, counting it (and keeping it for the recording
 * with --record-device-state). A pipe the proxy cannot make, or one over the limit, goes through
 * as it came.
 */
import { native } from '../native';
import { decoders, HEADER_SIZE } from '../protocol';
import type { DeviceStateEvent } from '../events/events';
import { DeviceStatePipe, type StateDirection, type StateTransfer } from './device-state';
import type { PendingMessage } from './pending-message';

/**
 * Device-state transfers the proxy copies at once per session. A migration has one (QEMU ends a
 * transfer before it begins the next); each may keep up to --record-device-state bytes.
 */
const MAX_STATE_TRANSFERS = 2;

export interface TransferHooks {
  /** bytes of each transfer to keep for the recording; 0: count only */
  keepBytes: number;
  /** a transfer ended: report it */
  ended(e: Omit<DeviceStateEvent, 'type' | 'session'>): void;
  notice(msg: string): void;
  /** how long a fault rule holds this transfer's bytes before they are copied on */
  holdMs(direction: StateDirection): number;
  /** `fn` guarded as the session guards its callbacks */
  guarded<A extends unknown[]>(where: string, fn: (...a: A) => void): (...a: A) => void;
}

export class DeviceStateTransfers {
  /** device-state transfers going through the proxy's pipes now */
  private readonly pipes = new Set<DeviceStatePipe>();

  constructor(private readonly hooks: TransferHooks) {}

  /** The interposition of SET_DEVICE_STATE_FD: swaps the front-end's pipe for one of ours. */
  interpose(o: PendingMessage): void {
    if (o.fds.length !== 1 || native.fdInfo(o.fds[0]).kind !== 'pipe') return;
    const { direction } = decoders.deviceState(o.raw.subarray(HEADER_SIZE));
    if (direction !== 'save' && direction !== 'load') return;
    if (this.pipes.size >= MAX_STATE_TRANSFERS) {
      this.hooks.notice(`${this.pipes.size} device-state transfers are already open in this session: this pipe goes through as it came (not counted)`);
      return;
    }
    let pipe: DeviceStatePipe;
    try {
      const end = (t: StateTransfer): void => {
        this.pipes.delete(pipe);
        this.hooks.ended({
          ts: t.endNs,
          direction: t.direction,
          startNs: t.startNs,
          bytes: t.bytes,
          ...(t.error ? { error: t.error } : {}),
          ...(t.data ? { data: t.data } : {}),
          ...(t.truncated ? { truncated: true } : {}),
          ...(t.heldMs ? { heldMs: t.heldMs } : {}),
        });
      };
      pipe = new DeviceStatePipe(
        direction,
        o.fds[0],
        this.hooks.keepBytes,
        this.hooks.guarded('the end of a device-state transfer', end),
        this.hooks.holdMs(direction),
      );
    } catch (err) {
      this.hooks.notice(`the device-state pipe goes through as it came (not counted): ${(err as Error).message}`);
      return;
    }
    this.pipes.add(pipe);
    o.outFds = [pipe.backendFd];
    o.extra.interposed = true;
  }

  /** The session is over: close every pipe still copying. */
  closeAll(): void {
    for (const p of [...this.pipes]) p.close();
  }
}
