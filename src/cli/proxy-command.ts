/** `vhostscope proxy`: run the transparent proxy daemon until SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { chooseFormat, createLogger } from '../log/logger';
import { eventRecord } from '../log/format';
import { DEFAULT_MAX_PENDING, DEFAULT_MAX_SESSIONS, ProxyDaemon } from '../proxy/daemon';
import type { FrontendPosition } from '../events/status';
import type { DeviceType } from '../protocol';
import { boundHeapGrowth } from './daemon-heap';
import { DIALECT_HELP, parseDialect } from './dialect-option';
import { modeOption, numberOption, sizeOption } from './numbers';
import type { Logger } from 'pino';
import * as path from 'node:path';
import * as os from 'node:os';
import type { Registry } from 'prom-client';
import { flightOptions, logPin, logSweep, type FlightCliOptions } from './proxy-flight';
import { loadProxyConfig, type ProxyConfig } from './proxy-config';
import { socketOwner } from './owner-option';
import { cutDirectConnections, detachPath, moveAside, movedPath, originalSocket, restore, socketAt, type Attached } from '../proxy/attach';
import { DEVICE_HELP } from './device-option';
import { DeviceTracker } from '../events/device-tracker';
import type { ProxyEvent } from '../events/events';
import { DEFAULT_NICE, DEFAULT_SPIN_US } from '../proxy/relay-hub';
import { Recorder } from '../recording/recorder';
import { MAX_FRAME } from '../recording/frames';
import { Injector, parseInjectSpec } from '../proxy/inject';
import { Checker } from '../analysis/checker';
import { findingLine } from './check-command';
import { FaultRuleSet, loadRulesFile, parseFaultSpec } from '../faults';
import { ControlServer } from '../control/server';
import { defaultControlPath } from '../control/protocol';
import type { RingsMode } from '../proxy/ring-tracker';
import { DaemonMetrics, createRegistry } from '../control/metrics';
import { isLoopback, parseMetricsAddress, startMetricsServer } from '../control/metrics-server';

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
  allowUid: string[];
  maxSessions: string;
  maxPending: string;
  fault: string[];
  rules?: string;
  control: string | false;
  rings?: boolean | string;
  recordDeviceState?: boolean | string;
  dialect?: string;
  metrics?: string;
}

export function registerProxy(program: Command): void {
  const cmd = program
    .command('proxy')
    .description('sit between a vhost-user frontend and backend, forward everything, log every message')
    .option('--listen <path>', 'unix socket to listen on (the connecting peer uses this path)')
    .option('--connect <path>', 'unix socket to connect to (the listening peer\'s path)')
    .option('--config <file>', 'many devices in one daemon: a JSON file of options and "devices" [{name, listen, connect, ...}] (docs/proxy-config.md); SIGHUP re-reads its fault rules');
  addProxyOptions(cmd).action((o: ProxyCliOptions, c: Command) => {
    const { global, devices, config } = resolveDevices(o, c);
    return runProxy(global, devices, config);
  });
  const attach = program
    .command('attach')
    .description('take over a listening peer\'s socket path without touching either peer: its socket is moved aside, vhostscope listens at the path (same owner, group, mode) and forwards to it; SIGINT/SIGTERM put it back (docs: README "Insert into a running system")')
    .argument('<path>', 'the socket a peer (QEMU server, DPDK/OVS vhost, virtiofsd, ...) listens on');
  attach.option('--reconnect', 'also end the connections the peer accepted before (shutting down its end of each, with pidfd_getfd: root), so that peers that reconnect (QEMU reconnect=N, OVS dpdkvhostuserclient, DPDK virtio-user server mode) come back through vhostscope');
  addProxyOptions(attach).action((p: string, o: ProxyCliOptions) => runProxy(o, [{ name: path.basename(p).replace(/\.sock$/, ''), o: { ...o, listen: p, connect: movedPath(p) }, attach: true }]));
  program
    .command('detach')
    .description('put back the socket an attach moved aside (after vhostscope attach was killed; a running attach detaches itself on SIGINT/SIGTERM)')
    .argument('<path>', 'the path given to attach')
    .action((p: string) => void process.stdout.write(detachPath(p) + '\n'));
}

/** The options `proxy` and `attach` share: everything but where to listen and connect. */
function addProxyOptions(cmd: Command): Command {
  return cmd
    .option('--frontend <where>', 'which side is the frontend: listen, connect, or auto (whoever speaks first)', 'auto')
    .option('--json', 'JSON lines on stdout (default when stdout is not a terminal)')
    .option('--pretty', 'human-readable lines (default on a terminal)')
    .option('--device <type>', DEVICE_HELP)
    .option('--connect-timeout <ms>', 'keep retrying the connect side this long per accepted peer', '30000')
    .option('--mode <octal>', 'permissions of the listening socket file', '600')
    .option('--owner <user>', 'owner of the listening socket file (name or uid; with --group and --mode 660, a non-root QEMU can connect without a world-writable socket)')
    .option('--group <group>', 'group of the listening socket file (name or gid)')
    .option('--no-interpose', 'forward the peers\' own eventfds: zero data-path cost, no notification timing')
    .option('--keep-features', 'keep HOST_NOTIFIER and INBAND_NOTIFICATIONS offered while interposing (their notifications bypass the eventfds)')
    .option('--stats-interval <seconds>', 'print per-vring notification stats this often (0: only at session end)', '10')
    .option('--relay-spin-us <us>', 'after a notification the relay thread keeps polling this long before sleeping (lower latency, more CPU)', String(DEFAULT_SPIN_US))
    .option('--record <path>', 'record every session: a file, or a directory (ending in /) for one file per session')
    .option('--keep <size>', 'flight recorder (with --record DIR/): keep at most this much, deleting the oldest unpinned segments, e.g. 2GiB')
    .option('--keep-for <duration>', 'flight recorder: delete unpinned segments older than this, e.g. 7d')
    .option('--pin-before <duration>', 'a pin (error finding, session error, fault rule firing, `vhostscope mark`, SIGUSR1) keeps the recording from this long before it', '60s')
    .option('--pin-after <duration>', '... to this long after it', '10s')
    .option('--pin-for <duration>', 'a pin is let go this long after its window (then --keep and --keep-for decide)', '30d')
    .option('--segment-size <size>', 'flight recorder: begin a session\'s next segment file at this size (default: --keep/16, at most 64MiB)')
    .option('--segment-for <duration>', 'flight recorder: ... or at this age', '10m')
    .option('--relay-nice <n>', 'niceness of the relay thread (negative: ahead of busy peers; needs root)', String(DEFAULT_NICE))
    .option('--relay-cpu <n|auto|none>', 'pin the relay thread to CPU n; auto: on the one CPU both peers are confined to, or next to the backend\'s busy-polling thread (a DPDK lcore), else where the scheduler puts it; none: leave it to the scheduler', 'auto')
    .option('--relay-threads <n|auto>', 'relay threads sessions shard over (a session stays on one); auto: one per CPU this process may use', '1')
    .option('--inject <spec>', 'send CHANNEL:REQUEST to the frontend MS ms after that channel appears, e.g. backend:CONFIG_CHANGE_MSG@2000 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--allow-uid <uid>', 'only accept peers running as this uid (repeatable; SO_PEERCRED)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--max-sessions <n>', 'sessions served at once, per device; more connections are refused (logged)', String(DEFAULT_MAX_SESSIONS))
    .option('--max-pending <n>', 'accepted peers waiting for the connect side at once, per device; more are refused', String(DEFAULT_MAX_PENDING))
    .option('--fault <rule>', 'a fault rule, e.g. "drop SET_VRING_KICK vring=0", "delay SET_MEM_TABLE ms=500", "preset virtio-vhost-user" (repeatable; see docs/fault-injection.md)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--rules <file>', 'fault rules from a JSON file (schema: docs/fault-rules.schema.json)')
    .option('--control <path>', 'control socket for `vhostscope status|tail|rules` (default: <listen>.ctl)')
    .option('--no-control', 'no control socket')
    .option('--dialect <family>', DIALECT_HELP)
    .option('--rings [what]', 'map guest memory read-only and snapshot each vring at every relayed kick and call: ring state and descriptor chains; --rings=headers also decodes the first bytes of each buffer (net, blk, fs: use --device)')
    .option('--record-device-state [size]', 'keep the bytes of each device-state transfer (SET_DEVICE_STATE_FD) in the recording, up to SIZE each (default and most: 15MiB, one record); they are counted either way')
    .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; see docs/metrics.md)')
    .option('--check', 'run the protocol checks live and log every finding (see `vhostscope check --rules`)')
    .option('--log-notifications', 'one log line per relayed kick/call/err (many lines under load)')
    .option('--log-rings', 'one log line per vring snapshot (--rings; recorded either way, `tail --rings` shows them live)');
}

/** A transfer's bytes go into one recording record, which a reader takes up to MAX_FRAME. */
const MAX_DEVICE_STATE_KEEP = MAX_FRAME - (1 << 20);

function deviceStateKeep(v: true | string): number {
  if (v === true) return MAX_DEVICE_STATE_KEEP;
  const n = sizeOption('--record-device-state', v);
  if (n > MAX_DEVICE_STATE_KEEP) throw new Error(`--record-device-state ${v}: at most ${MAX_DEVICE_STATE_KEEP >> 20}MiB (a recording record holds up to ${MAX_FRAME >> 20} MiB)`);
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
interface DeviceRun {
  name: string;
  o: ProxyCliOptions;
  /** `vhostscope attach`: o.listen is a listening peer's path, to be moved aside to o.connect */
  attach?: boolean;
}

/** What every device of the process shares. */
interface Shared {
  logger: Logger;
  recorder: Recorder | undefined;
  checker: Checker | undefined;
  injector: Injector | undefined;
  devices: DeviceTracker;
  registry: Registry | undefined;
  faults: FaultRuleSet;
  sessionIds: () => number;
  /** several devices: each log record names its device */
  named: boolean;
}

/** A running device: its daemon and control socket. */
interface DeviceRuntime {
  name: string;
  daemon: ProxyDaemon;
  control: ControlServer | undefined;
  /** attach: where the peer's socket is, to be put back at stop */
  attached?: Attached;
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
  return { global: g, config, devices: config.devices.map((d) => ({ name: d.name, o: { ...g, ...d.options, listen: d.listen, connect: d.connect } as ProxyCliOptions })) };
}

/** A device's daemon options, every number checked before anything is opened or started. */
function daemonNumbers(o: ProxyCliOptions) {
  if (!['listen', 'connect', 'auto'].includes(o.frontend)) throw new Error(`--frontend must be listen, connect or auto, not ${o.frontend}`);
  return {
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
    ...(o.device ? { device: o.device } : {}),
    ...(o.recordDeviceState ? { keepDeviceState: deviceStateKeep(o.recordDeviceState) } : {}),
  };
}

/**
 * The rules that come from files (--rules, and a config's "fault" and "rules", top-level and
 * per device, a device's scoped to it): SIGHUP re-reads them.
 */
function fileRules(global: ProxyCliOptions, config: ProxyConfig | undefined) {
  const specs = (o: Record<string, unknown>): string[] => (o.fault as string[] | undefined) ?? [];
  return [
    ...(global.rules ? loadRulesFile(global.rules) : []),
    ...(config ? specs(config.options).flatMap(parseFaultSpec) : []),
    ...(config?.devices ?? []).flatMap((d) => specs(d.options).flatMap(parseFaultSpec).map((r) => ({ ...r, device: r.device ?? d.name }))),
  ];
}

export async function runProxy(global: ProxyCliOptions, runs: DeviceRun[], config?: ProxyConfig): Promise<void> {
  boundHeapGrowth(); // a daemon that runs for days: its heap near twice its live data (daemon-heap.ts)
  const checked = runs.map((r) => ({ ...r, numbers: daemonNumbers(r.o) }));
  const metricsAt = global.metrics !== undefined ? parseMetricsAddress(global.metrics) : undefined;
  const flight = flightOptions(global);
  const injections = global.inject.map(parseInjectSpec);
  const initialFileRules = fileRules(global, config);
  const format = chooseFormat(global, Boolean(process.stdout.isTTY));
  const { logger, flush, dropped: logDropped } = createLogger(format);
  // metrics first: an address in use is a startup error, before any socket or recording exists
  const registry = metricsAt ? createRegistry(logDropped) : undefined;
  const metricsServer = registry && metricsAt ? await startMetricsServer(registry, metricsAt, (err) => logger.error({ event: 'notice', msg: `metrics: ${err.message}` })) : undefined;
  if (metricsAt) logger.info({ event: 'notice', msg: `metrics at http://${metricsAt.host.includes(':') ? `[${metricsAt.host}]` : metricsAt.host}:${metricsAt.port}/metrics` });
  if (metricsAt && !isLoopback(metricsAt.host)) logger.warn({ event: 'notice', msg: `metrics are served to other hosts (${metricsAt.host}) without authentication, and their labels name every device's socket paths; put a firewall or an authenticating proxy in front, or bind 127.0.0.1` });
  const recorder = global.record
    ? new Recorder(global.record, {
        onError: (file, err, opening) => logger.error({ event: 'notice', msg: opening ? `could not create recording ${file}: ${err.message}; ${opening}` : file.endsWith('.vhsrec') ? `recording ${file} stopped at its last whole frame: ${err.message}; forwarding goes on` : `could not write ${file}: ${err.message}; the pins hold in memory and forwarding goes on` }),
        ...(flight ? { flight: { ...flight, onSweep: (r) => logSweep(logger, r), onPin: (p) => logPin(logger, p) } } : {}),
      })
    : undefined;
  if (recorder?.files.length) logger.info({ event: 'notice', msg: `recording to ${recorder.files[0]}` });
  const faults = new FaultRuleSet([...initialFileRules, ...global.fault.flatMap(parseFaultSpec)]);
  let fileRuleIds = faults.list().slice(0, initialFileRules.length).map((r) => r.id);
  let nextSession = 1;
  const shared: Shared = {
    logger,
    recorder,
    checker: global.check ? new Checker() : undefined,
    injector: undefined,
    devices: new DeviceTracker(),
    registry,
    faults,
    sessionIds: () => nextSession++,
    named: config !== undefined,
  };
  const running: DeviceRuntime[] = [];
  if (injections.length) {
    shared.injector = new Injector(injections, (id) => running.flatMap((d) => d.daemon.activeSessions).find((x) => x.id === id), (spec, session, sent) =>
      logger[sent ? 'info' : 'warn']({ event: 'notice', session, msg: sent ? `injected ${spec.channel}:${spec.name}` : `could not inject ${spec.channel}:${spec.name}: the ${spec.channel} channel is gone` }),
    );
  }
  const stop = (sig: string): void => {
    logger.info({ event: 'notice', msg: `${sig}: closing every session` });
    shared.injector?.stop();
    metricsServer?.close();
    for (const d of running) {
      d.control?.close();
      // attach: the peer's socket goes back over ours first, so the path never lacks a listener
      if (d.attached) restoreAttached(logger, d.attached);
      d.daemon.stop(`daemon received ${sig}`);
    }
    void (recorder?.close() ?? Promise.resolve()).then(() => {
      flush();
      process.exit(0);
    });
  };
  // SIGUSR1: "something just went wrong", from a script or a person who saw it
  process.on('SIGUSR1', () => {
    logger.warn({ event: 'mark', msg: 'mark: SIGUSR1' });
    recorder?.pin('SIGUSR1');
  });
  // SIGHUP: re-read the rules files (--rules, the config's "fault" and "rules"); all or nothing
  process.on('SIGHUP', () => {
    try {
      const fresh = config ? loadProxyConfig(config.file, config.known) : undefined;
      const rules = fileRules(fresh ? ({ ...global, rules: (fresh.options.rules as string | undefined) ?? global.rules } as ProxyCliOptions) : global, fresh);
      const { removed, added } = faults.replace(fileRuleIds, rules);
      fileRuleIds = added.map((e) => e.id);
      logger.warn({ event: 'notice', msg: `SIGHUP: fault rules reloaded: removed ${removed.map((e) => e.id).join(', ') || 'none'}; active from files: ${added.map((e) => `${e.id}: ${e.text}`).join('; ') || 'none'}` });
    } catch (err) {
      logger.error({ event: 'notice', msg: `SIGHUP: the rules were not reloaded, the old ones stay: ${(err as Error).message}` });
    }
  });
  // Before any socket exists: a signal that comes as soon as a peer can see the daemon listening
  // must find its handler (without one, the default action would end the daemon at once).
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  for (const r of checked) running.push(startDevice(r.name, r.o, r.numbers, shared, r.attach ?? false));
  for (const r of faults.list()) logger.warn({ event: 'notice', rule: r.id, msg: `fault rule ${r.id}: ${r.text}` });
}

/** Starts one device's daemon and control socket; its events go through the shared services. */
function restoreAttached(logger: Logger, a: Attached): void {
  try {
    logger.info({ event: 'notice', msg: `detached: ${restore(a)}` });
  } catch (err) {
    logger.error({ event: 'notice', msg: `could not put the peer's socket back at ${a.path}: ${(err as Error).message}; run "vhostscope detach ${a.path}"` });
  }
}

/** The device's control socket (status, tail, rules, mark), unless --no-control. */
function startControl(o: ProxyCliOptions, daemon: ProxyDaemon, shared: Shared, logger: Logger): ControlServer | undefined {
  if (o.control === false) return undefined;
  const { recorder, faults } = shared;
  const controlPath = o.control === undefined || (o.control as unknown) === true ? defaultControlPath(o.listen) : o.control;
  const control = new ControlServer(controlPath, {
    status: (device) => daemon.status(device ?? o.device ?? 'generic'),
    rules: faults,
    onRulesChanged: (what) => logger.warn({ event: 'notice', msg: what }),
    mark: (text) => {
      logger.warn({ event: 'mark', msg: `mark: ${text}` });
      const p = recorder?.pin(`mark: ${text}`);
      return p ? { pinned: { id: p.id, fromMs: p.fromMs, toMs: p.toMs } } : {};
    },
  });
  logger.info({ event: 'notice', msg: `control socket ${controlPath} (vhostscope status|tail|rules --control ${controlPath})` });
  return control;
}

function startDevice(name: string, o: ProxyCliOptions, numbers: ReturnType<typeof daemonNumbers>, shared: Shared, attach: boolean): DeviceRuntime {
  const { recorder, checker, devices, faults } = shared;
  const logger = shared.named ? shared.logger.child({ dev: name }) : shared.logger;
  const late: { daemon?: ProxyDaemon } = {};
  const metrics = shared.registry
    ? new DaemonMetrics(shared.registry, o.listen, {
        relay: () => late.daemon?.relayStats(),
        ...(recorder ? { recording: () => recorder.figures() } : {}),
        pausedChannels: () => late.daemon?.pausedChannels() ?? 0,
      })
    : undefined;
  let control: ControlServer | undefined;
  const emit = (e: ProxyEvent): void => {
    // one inference of each session's device, for the log's feature names and the recording
    const guess = 'session' in e ? devices.observe(e) : undefined;
    recorder?.onEvent(e);
    if (guess && 'session' in e) recorder?.onDevice(e.session, e.ts, guess);
    if (guess && !o.device && 'session' in e) late.daemon?.setSessionDevice(e.session, guess.device);
    shared.injector?.onEvent(e);
    control?.onEvent(e);
    if ('session' in e && (o.device ? e.type === 'session-start' : guess)) control?.setDevice(e.session, o.device ?? guess!.device);
    metrics?.onEvent(e);
    for (const f of checker?.onEvent(e) ?? []) {
      metrics?.onFinding(f.rule.id, f.rule.severity);
      if (f.rule.severity === 'error') recorder?.pin(`check ${f.rule.id} (${f.rule.name})`, f.session);
      logger.warn({ event: 'finding', session: f.session, id: f.rule.id, rule: f.rule.name, severity: f.rule.severity, section: f.rule.section, at: f.at, detail: f.detail, msg: findingLine(f).trim() });
    }
    // per-notification and per-snapshot events are the high-rate ones: recorded, logged only on request
    if (e.type === 'notification' && !o.logNotifications) return;
    if (e.type === 'ring' && !o.logRings) return;
    if (guess && !o.device && 'session' in e) logger.info({ event: 'device', session: e.session, device: guess.device, reason: guess.reason, msg: `session ${e.session} carries a ${guess.device} device (from ${guess.reason})` });
    const device = o.device ?? ('session' in e ? devices.guess(e.session)?.device : undefined) ?? 'generic';
    if (e.type === 'notice') return void logger.warn(eventRecord(e, device));
    const rec = eventRecord(e, device);
    const bad = e.type === 'session-end' && e.reason.startsWith('bad input');
    const warn = (e.type === 'message' && e.findings.length > 0) || e.type === 'fault' || (e.type === 'device-state' && e.error !== undefined);
    if (bad) logger.error(rec);
    else if (warn) logger.warn(rec);
    else logger.info(rec);
  };
  const daemon = new ProxyDaemon({
    listenPath: o.listen,
    connectPath: o.connect,
    frontend: o.frontend,
    ...numbers,
    interpose: o.interpose,
    keepFeatures: Boolean(o.keepFeatures),
    faults,
    name,
    sessionIds: shared.sessionIds,
    ...(attach ? { unlinkOnStop: false } : {}),
    emit,
    notice: (level, msg, fields) => logger[level]({ event: 'notice', ...fields, msg }),
  });
  late.daemon = daemon;
  let attached: Attached | undefined;
  if (attach) {
    attached = moveAside(o.listen);
    try {
      daemon.start(originalSocket(attached));
      attached.ours = socketAt(o.listen);
      control = startControl(o, daemon, shared, logger);
    } catch (err) {
      // nothing may fail after the move and leave the path without its peer
      control?.close();
      daemon.stop('attach failed');
      try {
        restore(attached);
      } catch (restoreErr) {
        throw new Error(`${(err as Error).message}; and the peer's socket could not be put back: ${(restoreErr as Error).message}; run "vhostscope detach ${o.listen}"`);
      }
      throw err;
    }
    const direct = attached.direct.size;
    logger.warn({ event: 'notice', msg: `attached to ${o.listen}: the peer's socket is now ${attached.moved}; new connections come through vhostscope${direct ? `, the ${direct} made before ${o.reconnect ? 'are being ended so that their peers reconnect through it' : 'stay direct (--reconnect ends them)'}` : ''}; SIGINT/SIGTERM (or "vhostscope detach ${o.listen}" after a crash) put it back` });
    if (o.reconnect) {
      for (const c of cutDirectConnections(attached)) {
        if (c.error) logger.error({ event: 'notice', msg: `could not end the direct connection (pid ${c.pid} fd ${c.fd}): ${c.error}` });
        else logger.warn({ event: 'notice', pid: c.pid, msg: `ended the direct connection held by pid ${c.pid} (fd ${c.fd}); its peer may reconnect through vhostscope` });
      }
    }
  } else {
    daemon.start();
    control = startControl(o, daemon, shared, logger);
  }
  logger.info({
    event: 'notice',
    msg: `listening on ${o.listen}, connecting to ${o.connect}; frontend=${o.frontend}; ${o.interpose ? 'interposing vring eventfds' : 'passing vring eventfds through'}`,
  });
  return { name, daemon, control, ...(attached ? { attached } : {}) };
}
