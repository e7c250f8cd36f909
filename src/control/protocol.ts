/**
 * The control socket's protocol: newline-delimited JSON over a unix stream socket, one request
 * per connection. A reply is one line `{ "ok": true, "result": … }` or `{ "ok": false, "error": … }`;
 * `tail` then streams one line per event (the log's JSON records) until the client hangs up.
 */
import type { FaultRule } from '../faults';
import type { EventFilterOptions } from '../log/filter';
import type { DeviceType } from '../protocol';

export type ControlRequest =
  | { cmd: 'status'; device?: DeviceType }
  /** per-request latency per session and operation so far (--rings), for `vhostscope top` */
  | { cmd: 'requests' }
  | { cmd: 'tail'; filter?: EventFilterOptions; device?: DeviceType }
  | { cmd: 'rules-list' }
  /** rules in the short syntax (--fault) and/or as data (a rules file's entries) */
  | { cmd: 'rules-add'; specs?: string[]; rules?: FaultRule[] }
  | { cmd: 'rules-remove'; ids: string[] }
  /** a note in the log, and a pin of the recording around now (flight recorder) */
  | { cmd: 'mark'; text: string };

/** What `mark` answers: the pin that keeps the window, if the daemon has a flight recorder. */
export interface MarkResult {
  pinned?: { id: number; fromMs: number; toMs: number };
}

export type ControlReply = { ok: true; result: unknown } | { ok: false; error: string };

/** `<listen path>.ctl` unless the user chose another path. */
export const defaultControlPath = (listenPath: string): string => `${listenPath}.ctl`;
