/**
 * The options `proxy` and `attach` take, declared once, and their translation into a checked,
 * typed ServiceOptions (a --config file's devices included).
 */
import type { Command } from 'commander';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FrontendPosition } from '../events/status';
import type { DeviceType } from '../protocol';
import { MAX_FRAME } from '../recording/frames';
import { CHAOS_PROFILES, loadRulesFile, parseFaultSpec, type FaultRule } from '../faults';
import { defaultControlPath } from '../control/protocol';
import { parseMetricsAddress } from '../control/metrics-server';
import {
  DEFAULT_MAX_PENDING,
  DEFAULT_MAX_SESSIONS,
  DEFAULT_NICE,
  DEFAULT_SPIN_US,
  parseInjectSpec,
  type DaemonSettings,
  type DeviceConfig,
  type RingsMode,
  type ServiceOptions,
} from '../service/options';
import { deviceOption, dialectOption, jsonOption, parseDevice, parseDialect } from './options';
import { modeOption, numberOption, sizeOption } from './numbers';
import { socketOwner } from './owner-option';
import { flightOptions, type FlightCliOptions } from './proxy-flight';
import { loadProxyConfig, type ProxyConfig } from './proxy-config';

export interface ProxyCliOptions extends FlightCliOptions {
  listen: string;
  connect: string;
  config?: string;
  /** attach --reconnect */
  reconnect?: boolean;
  frontend: FrontendPosition;
  json?: boolean;
  pretty?: boolean;
  device?: DeviceType;
  connectTimeout: string;
  mode: string;
  owner?: string;
  group?: string;
  interpose: boolean;
  observe?: boolean;
  observePriority: string;
  keepFeatures?: boolean;
  statsInterval: string;
  logNotifications?: boolean;
  logRings?: boolean;
  relaySpinUs: string;
  relayNice: string;
  relayCpu?: string;
  relayThreads: string;
  inject: string[];
  check?: boolean;
  replyWatchdog: string;
  reconnectWatchdog: string;
  allowUid: string[];
  maxSessions: string;
  maxPending: string;
  fault: string[];
  chaos?: string;
  rules?: string;
  control: string | false;
  rings?: boolean | string;
  recordDeviceState?: boolean | string;
  dialect?: string;
  metrics?: string;
}

/** The options `proxy` and `attach` share: everything but where to listen and connect. */
export function addProxyOptions(cmd: Command): Command {
  return cmd
    .option('--frontend <where>', 'which side is the frontend: listen, connect, or auto (whoever speaks first)', 'auto')
    .addOption(jsonOption('JSON lines on stdout (default when stdout is not a terminal)'))
    .option('--pretty', 'human-readable lines (default on a terminal)')
    .addOption(deviceOption('infer'))
    .option('--connect-timeout <ms>', 'keep retrying the connect side this long per accepted peer', '30000')
    .option('--mode <octal>', 'permissions of the listening socket file', '600')
    .option(
      '--owner <user>',
      'owner of the listening socket file (name or uid; with --group and --mode 660, a non-root QEMU can connect without a world-writable socket)',
    )
    .option('--group <group>', 'group of the listening socket file (name or gid)')
    .option('--no-interpose', "forward the peers' own eventfds: zero data-path cost, no notification timing")
    .option('--observe', "time notifications by watching the peers' own eventfds (io_uring) instead of relaying them: off their path; bursts coalesce")
    .option(
      '--observe-priority <p>',
      'the observer thread: realtime (SCHED_FIFO 1 where allowed, given up under a flood), normal, or auto (realtime with --rings, whose request latencies need its stamps)',
      'auto',
    )
    .option('--keep-features', 'keep HOST_NOTIFIER and INBAND_NOTIFICATIONS offered while interposing (their notifications bypass the eventfds)')
    .option('--stats-interval <seconds>', 'print per-vring notification stats this often (0: only at session end)', '10')
    .option(
      '--relay-spin-us <us>',
      'after a notification the relay thread keeps polling this long before sleeping (lower latency, more CPU)',
      String(DEFAULT_SPIN_US),
    )
    .option('--record <path>', 'record every session: a file, or a directory (ending in /) for one file per session')
    .option('--keep <size>', 'flight recorder (with --record DIR/): keep at most this much, deleting the oldest unpinned segments, e.g. 2GiB')
    .option('--keep-for <duration>', 'flight recorder: delete unpinned segments older than this, e.g. 7d')
    .option(
      '--pin-before <duration>',
      'a pin (error finding, session error, fault rule firing, `vhostscope mark`, SIGUSR1) keeps the recording from this long before it',
      '60s',
    )
    .option('--pin-after <duration>', '... to this long after it', '10s')
    .option('--pin-for <duration>', 'a pin is let go this long after its window (then --keep and --keep-for decide)', '30d')
    .option('--segment-size <size>', "flight recorder: begin a session's next segment file at this size (default: --keep/16, at most 64MiB)")
    .option('--segment-for <duration>', 'flight recorder: ... or at this age', '10m')
    .option('--relay-nice <n>', 'niceness of the relay thread (negative: ahead of busy peers; needs root)', String(DEFAULT_NICE))
    .option(
      '--relay-cpu <n|auto|none>',
      "pin the relay thread to CPU n; auto: on the one CPU both peers are confined to, or next to the backend's busy-polling thread (a DPDK lcore), else where the scheduler puts it; none: leave it to the scheduler",
      'auto',
    )
    .option('--relay-threads <n|auto>', 'relay threads sessions shard over (a session stays on one); auto: one per CPU this process may use', '1')
    .option(
      '--inject <spec>',
      'send CHANNEL:REQUEST to the frontend MS ms after that channel appears, e.g. backend:CONFIG_CHANGE_MSG@2000 (repeatable)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option('--allow-uid <uid>', 'only accept peers running as this uid (repeatable; SO_PEERCRED)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--max-sessions <n>', 'sessions served at once, per device; more connections are refused (logged)', String(DEFAULT_MAX_SESSIONS))
    .option('--max-pending <n>', 'accepted peers waiting for the connect side at once, per device; more are refused', String(DEFAULT_MAX_PENDING))
    .option(
      '--fault <rule>',
      'a fault rule, e.g. "drop SET_VRING_KICK vring=0", "delay SET_MEM_TABLE ms=500", "preset virtio-vhost-user" (repeatable; see docs/fault-injection.md)',
      (v: string, acc: string[]) => [...acc, v],
      [] as string[],
    )
    .option(
      '--chaos <seed[:profile]>',
      `perturb what the spec leaves free, the same way for the same seed (profiles: ${Object.keys(CHAOS_PROFILES).join(', ')}; default all; docs/fault-injection.md)`,
    )
    .option('--rules <file>', 'fault rules from a JSON file (schema: docs/fault-rules.schema.json)')
    .option('--control <path>', 'control socket for `vhostscope status|tail|rules` (default: <listen>.ctl)')
    .option('--no-control', 'no control socket')
    .addOption(dialectOption())
    .option(
      '--rings [what]',
      'map guest memory read-only and snapshot each vring at every relayed kick and call: ring state and descriptor chains; --rings=headers also decodes the first bytes of each buffer (net, blk, fs: use --device)',
    )
    .option(
      '--record-device-state [size]',
      'keep the bytes of each device-state transfer (SET_DEVICE_STATE_FD) in the recording, up to SIZE each (default and most: 15MiB, one record); they are counted either way',
    )
    .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; see docs/metrics.md)')
    .option('--check', 'run the protocol checks live and log every finding (see `vhostscope check --rules`)')
    .option('--reply-watchdog <ms>', 'warn, count and pin when a due reply is this late and still missing (0: off)', '5000')
    .option('--reconnect-watchdog <s>', 'warn, count and pin when a device has had no working session this long after its back-end ended one (0: off)', '30')
    .option('--log-notifications', 'one log line per relayed kick/call/err (many lines under load)')
    .option('--log-rings', 'one log line per vring snapshot (--rings; recorded either way, `tail --rings` shows them live)');
}

/** A transfer's bytes go into one recording record, which a reader takes up to MAX_FRAME. */
const MAX_DEVICE_STATE_KEEP = MAX_FRAME - (1 << 20);

function deviceStateKeep(v: true | string): number {
  if (v === true) return MAX_DEVICE_STATE_KEEP;
  const n = sizeOption('--record-device-state', v);
  if (n > MAX_DEVICE_STATE_KEEP)
    throw new Error(`--record-device-state ${v}: at most ${MAX_DEVICE_STATE_KEEP >> 20}MiB (a recording record holds up to ${MAX_FRAME >> 20} MiB)`);
  return n;
}

function parseRelayThreads(v: string): number {
  if (v === 'auto') return os.availableParallelism(); // the CPUs of this process's affinity mask
  return numberOption('--relay-threads', v, { min: 1, max: 256, integer: true });
}

function parseRelayCpu(v: string): number | 'auto' {
  if (v === 'auto') return 'auto';
  if (!/^\d+$/.test(v)) throw new Error(`--relay-cpu ${v}: a CPU number, auto or none`);
  return Number(v);
}

function parseRings(v: boolean | string): RingsMode {
  if (v === true || v === 'ring' || v === 'rings') return 'ring';
  if (v === 'headers') return 'headers';
  throw new Error(`--rings=${v}: give --rings (ring state and descriptors) or --rings=headers (also the buffers' first bytes)`);
}

/** One device of the daemon: its listen/connect pair and the options that apply to it. */
export interface DeviceRun {
  name: string;
  o: ProxyCliOptions;
  /** `vhostscope attach`: o.listen is a listening peer's path, to be moved aside to o.connect */
  attach?: boolean;
}

/** The command line's options by long name, and whether each is repeatable (for --config). */
export function knownOptions(cmd: Command): Map<string, boolean> {
  return new Map(cmd.options.filter((opt) => opt.long).map((opt) => [opt.long!.slice(2).replace(/^no-/, ''), Array.isArray(opt.defaultValue)]));
}

/** The devices to run: --listen/--connect, or every device of --config (command line over file over defaults). */
export function resolveDevices(o: ProxyCliOptions, cmd: Command): { global: ProxyCliOptions; devices: DeviceRun[]; config?: ProxyConfig } {
  if (!o.config) {
    if (!o.listen || !o.connect) throw new Error('give --listen and --connect (one device), or --config FILE (many)');
    return { global: o, devices: [{ name: path.basename(o.listen).replace(/\.sock$/, ''), o }] };
  }
  if (o.listen || o.connect) throw new Error('--listen and --connect belong to each device of --config: give one or the other');
  const config = loadProxyConfig(o.config, knownOptions(cmd));
  const global = { ...o } as unknown as Record<string, unknown>;
  // the file's "fault" rules add to --fault (and SIGHUP re-reads them); any other option: command line first
  for (const [key, v] of Object.entries(config.options)) if (key !== 'fault' && cmd.getOptionValueSource(key) !== 'cli') global[key] = v;
  const g = global as unknown as ProxyCliOptions;
  return {
    global: g,
    config,
    devices: config.devices.map((d) => ({ name: d.name, o: { ...g, ...d.options, listen: d.listen, connect: d.connect } as ProxyCliOptions })),
  };
}

/** A device's daemon settings, every number checked before anything is opened or started. */
function daemonSettings(o: ProxyCliOptions): DaemonSettings {
  if (!['listen', 'connect', 'auto'].includes(o.frontend)) throw new Error(`--frontend must be listen, connect or auto, not ${o.frontend}`);
  if (!['realtime', 'normal', 'auto'].includes(o.observePriority))
    throw new Error(`--observe-priority must be realtime, normal or auto, not ${o.observePriority}`);
  return {
    frontend: o.frontend,
    interpose: o.interpose,
    observe: Boolean(o.observe),
    observeRealtime: o.observePriority === 'auto' ? Boolean(o.rings) : o.observePriority === 'realtime',
    keepFeatures: Boolean(o.keepFeatures),
    connectTimeoutMs: numberOption('--connect-timeout', o.connectTimeout, { min: 0, integer: true }),
    socketMode: modeOption('--mode', o.mode),
    ...(o.owner !== undefined || o.group !== undefined ? { socketOwner: socketOwner(o.owner, o.group) } : {}),
    relaySpinUs: numberOption('--relay-spin-us', o.relaySpinUs, { min: 0, max: 1_000_000, integer: true }),
    ...(o.allowUid.length ? { allowUids: o.allowUid.map((u) => numberOption('--allow-uid', u, { min: 0, integer: true })) } : {}),
    maxSessions: numberOption('--max-sessions', o.maxSessions ?? String(DEFAULT_MAX_SESSIONS), { min: 1, integer: true }),
    maxPending: numberOption('--max-pending', o.maxPending ?? String(DEFAULT_MAX_PENDING), { min: 1, integer: true }),
    relayNice: numberOption('--relay-nice', o.relayNice, { min: -20, max: 19, integer: true }),
    ...(o.relayCpu !== undefined && o.relayCpu !== 'none' ? { relayCpu: parseRelayCpu(o.relayCpu) } : {}),
    relayThreads: parseRelayThreads(o.relayThreads ?? '1'),
    statsIntervalMs: numberOption('--stats-interval', o.statsInterval, { min: 0 }) * 1000,
    ...(o.rings ? { rings: parseRings(o.rings) } : {}),
    ...(o.dialect ? { dialect: parseDialect(o.dialect) } : {}),
    ...(o.device ? { device: parseDevice(o.device) } : {}),
    ...(o.recordDeviceState ? { keepDeviceState: deviceStateKeep(o.recordDeviceState) } : {}),
  };
}

/**
 * The rules that come from files (--rules, and a config's "fault" and "rules", top-level and
 * per device, a device's scoped to it): SIGHUP re-reads them.
 */
export function fileRules(global: ProxyCliOptions, config: ProxyConfig | undefined): FaultRule[] {
  const specs = (o: Record<string, unknown>): string[] => (o.fault as string[] | undefined) ?? [];
  return [
    ...(global.rules ? loadRulesFile(global.rules) : []),
    ...(config ? specs(config.options).flatMap(parseFaultSpec) : []),
    ...(config?.devices ?? []).flatMap((d) =>
      specs(d.options)
        .flatMap(parseFaultSpec)
        .map((r) => ({ ...r, device: r.device ?? d.name })),
    ),
  ];
}

/** One device as the service takes it. */
function deviceConfig(r: DeviceRun): DeviceConfig {
  const o = r.o;
  return {
    name: r.name,
    listen: o.listen,
    connect: o.connect,
    ...(r.attach ? { attach: true } : {}),
    ...(o.reconnect ? { reconnect: true } : {}),
    daemon: daemonSettings(o),
    ...(o.device ? { device: o.device } : {}),
    logNotifications: Boolean(o.logNotifications),
    logRings: Boolean(o.logRings),
    control: o.control === false ? false : o.control === undefined || (o.control as unknown) === true ? defaultControlPath(o.listen) : o.control,
  };
}

/** The service a command line describes: everything parsed and checked before anything opens. */
export function serviceOptions(global: ProxyCliOptions, runs: DeviceRun[], config?: ProxyConfig): ServiceOptions {
  const flight = flightOptions(global);
  return {
    devices: runs.map(deviceConfig),
    ...(global.record ? { record: global.record } : {}),
    ...(flight ? { flight } : {}),
    check: Boolean(global.check),
    replyWatchdogMs: numberOption('--reply-watchdog', global.replyWatchdog, { min: 0, max: 2147483647, integer: true }),
    reconnectWatchdogMs: numberOption('--reconnect-watchdog', global.reconnectWatchdog, { min: 0, max: 2147483 }) * 1000,
    injections: global.inject.map(parseInjectSpec),
    fileRules: fileRules(global, config),
    rules: [...global.fault, ...(global.chaos !== undefined ? [chaosSpec(global.chaos)] : [])].flatMap(parseFaultSpec),
    named: config !== undefined,
    ...(global.metrics !== undefined ? { metrics: parseMetricsAddress(global.metrics) } : {}),
  };
}

/** `--chaos SEED[:PROFILE]` as the chaos rule's short syntax. */
export function chaosSpec(v: string): string {
  const m = /^(\d+)(?::([a-z]+))?$/.exec(v);
  if (!m) throw new Error(`--chaos: SEED[:PROFILE], e.g. 42 or 42:enable (got ${JSON.stringify(v)})`);
  return `chaos seed=${m[1]}${m[2] ? ` profile=${m[2]}` : ''}`;
}
