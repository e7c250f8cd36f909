/**
 * What a ProxyService is built from: every option checked and typed, declared once. The CLI
 * turns a command line (or a --config file) into these; tests and the demo build them directly.
 */
import type { DaemonOptions } from '../proxy/daemon';
import type { InjectSpec } from '../proxy/inject';
import type { FaultRule } from '../faults';
import type { FlightOptions } from '../recording/recorder';
import type { DeviceType } from '../protocol';
import type { MetricsAddress } from '../control/metrics-server';

/** The engine's defaults and spec parsers the command line needs, so that it never reaches into the engine itself. */
export { DEFAULT_MAX_PENDING, DEFAULT_MAX_SESSIONS } from '../proxy/daemon';
export { DEFAULT_NICE, DEFAULT_SPIN_US } from '../proxy/relay-hub';
export type { RingsMode } from '../proxy/ring-tracker';
export { parseInjectSpec } from '../proxy/inject';
export { detachPath, movedPath } from '../proxy/attach';

/** A device's daemon settings: DaemonOptions without what the service itself wires. */
export type DaemonSettings = Omit<DaemonOptions, 'listenPath' | 'connectPath' | 'emit' | 'notice' | 'faults' | 'name' | 'sessionIds' | 'unlinkOnStop'>;

/** One device of the service: a listen/connect pair and how it is served. */
export interface DeviceConfig {
  /** names the device in the log (when there are several), in rules (`device=`) and metrics */
  name: string;
  listen: string;
  connect: string;
  /** `attach`: `listen` is a listening peer's socket, moved aside to `connect` while we serve */
  attach?: boolean;
  /** attach: also end the connections the peer accepted before, so that they come back through us */
  reconnect?: boolean;
  daemon: DaemonSettings;
  /** --device: what every session carries (else inferred per session) */
  device?: DeviceType;
  /** log each relayed notification and each ring snapshot (they are recorded either way) */
  logNotifications?: boolean;
  logRings?: boolean;
  /** the control socket's path, or false for none */
  control: string | false;
}

export interface ServiceOptions {
  devices: DeviceConfig[];
  /** record every session: a file, or a directory (ending in /) for one file per session */
  record?: string;
  /** flight recorder (with a directory): retention and pins */
  flight?: Omit<FlightOptions, 'onSweep' | 'onPin'>;
  /** run the protocol checks live; an error finding pins the recording */
  check?: boolean;
  /** alarm (log, metric, pin) when a due reply is this late and still not there; 0 or absent: off */
  replyWatchdogMs?: number;
  /** alarm when a device has had no working session this long after its back-end ended one; 0 or absent: off */
  reconnectWatchdogMs?: number;
  injections?: InjectSpec[];
  /** rules that came from files: replaced as a whole by reloadRules() */
  fileRules?: FaultRule[];
  /** rules given on their own (--fault): they stay across reloads */
  rules?: FaultRule[];
  /** each log line names its device (default: when there are several) */
  named?: boolean;
  /** serve Prometheus metrics here */
  metrics?: MetricsAddress;
}
