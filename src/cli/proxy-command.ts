/** `vhostscope proxy`: run the transparent proxy daemon until SIGINT/SIGTERM. */
import type { Command } from 'commander';
import { chooseFormat, createLogger } from '../log/logger';
import { bytesText, eventRecord } from '../log/format';
import { ProxyDaemon } from '../proxy/daemon';
import type { FrontendPosition } from '../proxy/session';
import type { DeviceType } from '../protocol';
import { DIALECT_HELP, parseDialect } from './dialect-option';
import { durationOption, modeOption, numberOption, sizeOption } from './numbers';
import type { Logger } from 'pino';
import type { FlightOptions } from '../recording/recorder';
import type { Pin, SweepResult } from '../recording/flight';
import { DEVICE_HELP } from './device-option';
import { DeviceTracker } from '../proxy/device-tracker';
import type { ProxyEvent } from '../proxy/events';
import { DEFAULT_NICE, DEFAULT_SPIN_US } from '../proxy/relay-hub';
import { Recorder } from '../recording/recorder';
import { Injector, parseInjectSpec } from '../proxy/inject';
import { Checker } from '../analysis/checker';
import { findingLine } from './check-command';
import { FaultRuleSet, loadRulesFile, parseFaultSpec } from '../faults';
import { ControlServer } from '../control/server';
import { defaultControlPath } from '../control/protocol';
import type { RingsMode } from '../proxy/ring-tracker';
import type { Server } from 'node:http';
import { DaemonMetrics, createRegistry } from '../control/metrics';
import { parseMetricsAddress, startMetricsServer } from '../control/metrics-server';

export interface ProxyCliOptions {
  listen: string;
  connect: string;
  frontend: FrontendPosition;
  json?: boolean;
  pretty?: boolean;
  device?: DeviceType;
  connectTimeout: string;
  mode: string;
  interpose: boolean;
  keepFeatures?: boolean;
  statsInterval: string;
  logNotifications?: boolean;
  logRings?: boolean;
  relaySpinUs: string;
  relayNice: string;
  relayCpu?: string;
  record?: string;
  inject: string[];
  check?: boolean;
  allowUid: string[];
  fault: string[];
  rules?: string;
  control: string | false;
  rings?: boolean | string;
  dialect?: string;
  metrics?: string;
  keep?: string;
  keepFor?: string;
  pinBefore: string;
  pinAfter: string;
  segmentSize?: string;
  segmentFor: string;
}

export function registerProxy(program: Command): void {
  program
    .command('proxy')
    .description('sit between a vhost-user frontend and backend, forward everything, log every message')
    .requiredOption('--listen <path>', 'unix socket to listen on (the connecting peer uses this path)')
    .requiredOption('--connect <path>', 'unix socket to connect to (the listening peer\'s path)')
    .option('--frontend <where>', 'which side is the frontend: listen, connect, or auto (whoever speaks first)', 'auto')
    .option('--json', 'JSON lines on stdout (default when stdout is not a terminal)')
    .option('--pretty', 'human-readable lines (default on a terminal)')
    .option('--device <type>', DEVICE_HELP)
    .option('--connect-timeout <ms>', 'keep retrying the connect side this long per accepted peer', '30000')
    .option('--mode <octal>', 'permissions of the listening socket file', '600')
    .option('--no-interpose', 'forward the peers\' own eventfds: zero data-path cost, no notification timing')
    .option('--keep-features', 'keep HOST_NOTIFIER and INBAND_NOTIFICATIONS offered while interposing (their notifications bypass the eventfds)')
    .option('--stats-interval <seconds>', 'print per-vring notification stats this often (0: only at session end)', '10')
    .option('--relay-spin-us <us>', 'after a notification the relay thread keeps polling this long before sleeping (lower latency, more CPU)', String(DEFAULT_SPIN_US))
    .option('--record <path>', 'record every session: a file, or a directory (ending in /) for one file per session')
    .option('--keep <size>', 'flight recorder (with --record DIR/): keep at most this much, deleting the oldest unpinned segments, e.g. 2GiB')
    .option('--keep-for <duration>', 'flight recorder: delete unpinned segments older than this, e.g. 7d')
    .option('--pin-before <duration>', 'a pin (error finding, session error, fault rule firing, `vhostscope mark`, SIGUSR1) keeps the recording from this long before it', '60s')
    .option('--pin-after <duration>', '... to this long after it', '10s')
    .option('--segment-size <size>', 'flight recorder: begin a session\'s next segment file at this size (default: --keep/16, at most 64MiB)')
    .option('--segment-for <duration>', 'flight recorder: ... or at this age', '10m')
    .option('--relay-nice <n>', 'niceness of the relay thread (negative: ahead of busy peers; needs root)', String(DEFAULT_NICE))
    .option('--relay-cpu <n|auto|none>', 'pin the relay thread to CPU n; auto: on the one CPU both peers are confined to, or next to the backend\'s busy-polling thread (a DPDK lcore), else where the scheduler puts it; none: leave it to the scheduler', 'auto')
    .option('--inject <spec>', 'send CHANNEL:REQUEST to the frontend MS ms after that channel appears, e.g. backend:CONFIG_CHANGE_MSG@2000 (repeatable)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--allow-uid <uid>', 'only accept peers running as this uid (repeatable; SO_PEERCRED)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--fault <rule>', 'a fault rule, e.g. "drop SET_VRING_KICK vring=0", "delay SET_MEM_TABLE ms=500", "preset virtio-vhost-user" (repeatable; see docs/fault-injection.md)', (v: string, acc: string[]) => [...acc, v], [] as string[])
    .option('--rules <file>', 'fault rules from a JSON file (schema: docs/fault-rules.schema.json)')
    .option('--control <path>', 'control socket for `vhostscope status|tail|rules` (default: <listen>.ctl)')
    .option('--no-control', 'no control socket')
    .option('--dialect <family>', DIALECT_HELP)
    .option('--rings [what]', 'map guest memory read-only and snapshot each vring at every relayed kick and call: ring state and descriptor chains; --rings=headers also decodes the first bytes of each buffer (net, blk, fs: use --device)')
    .option('--metrics <host:port>', 'serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9464; see README "Metrics")')
    .option('--check', 'run the protocol checks live and log every finding (see `vhostscope check --rules`)')
    .option('--log-notifications', 'one log line per relayed kick/call/err (many lines under load)')
    .option('--log-rings', 'one log line per vring snapshot (--rings; recorded either way, `tail --rings` shows them live)')
    .action((o: ProxyCliOptions) => runProxy(o));
}

function parseRelayCpu(v: string): number | 'auto' {
  if (v === 'auto') return 'auto';
  if (!/^\d+$/.test(v)) throw new Error(`--relay-cpu ${v}: a CPU number, auto or none`);
  return Number(v);
}

/** --keep, --keep-for and the pin and segment options, checked; undefined without --keep/--keep-for. */
function flightOptions(o: ProxyCliOptions): Omit<FlightOptions, 'onSweep' | 'onPin'> | undefined {
  const keepBytes = o.keep !== undefined ? sizeOption('--keep', o.keep) : undefined;
  const keepMs = o.keepFor !== undefined ? durationOption('--keep-for', o.keepFor, { min: 1000 }) : undefined;
  if (keepBytes === undefined && keepMs === undefined) {
    if (o.segmentSize !== undefined) throw new Error('--segment-size rotates a flight recording: give --keep or --keep-for too');
    return undefined;
  }
  if (!o.record) throw new Error('--keep and --keep-for bound a recording directory: give --record DIR/ too');
  const segmentBytes = o.segmentSize !== undefined ? sizeOption('--segment-size', o.segmentSize) : Math.max(1 << 20, Math.min(64 << 20, Math.floor((keepBytes ?? Infinity) / 16)));
  return {
    ...(keepBytes !== undefined ? { keepBytes } : {}),
    ...(keepMs !== undefined ? { keepMs } : {}),
    segmentBytes,
    segmentMs: durationOption('--segment-for', o.segmentFor, { min: 1000 }),
    pinBeforeMs: durationOption('--pin-before', o.pinBefore),
    pinAfterMs: durationOption('--pin-after', o.pinAfter),
  };
}

function logSweep(logger: Logger, r: SweepResult): void {
  if (r.deleted.length) logger.info({ event: 'notice', msg: `retention: deleted ${r.deleted.length} segment file(s) (${bytesText(r.deleted.reduce((n, s) => n + s.bytes, 0))}), the oldest from ${new Date(r.deleted[0]!.startMs).toISOString()}; ${bytesText(r.bytes)} kept` });
  for (const p of r.released) logger.warn({ event: 'notice', msg: `retention: pinned segments alone exceed --keep; released pin ${p.id} (${p.reason}, ${new Date(p.atMs).toISOString()})` });
}

/** A pin is logged when made, not each time a burst of the same trigger extends it. */
const loggedPins = new Set<number>();
function logPin(logger: Logger, p: Pin): void {
  if (loggedPins.has(p.id)) return;
  loggedPins.add(p.id);
  if (loggedPins.size > 1000) loggedPins.delete(loggedPins.values().next().value!);
  logger.warn({ event: 'notice', pin: p.id, msg: `pinned the recording ${new Date(p.fromMs).toISOString()} to ${new Date(p.toMs).toISOString()}${p.session ? ` of ${p.session}` : ''}: ${p.reason}` });
}

function parseRings(v: boolean | string): RingsMode {
  if (v === true || v === 'ring' || v === 'rings') return 'ring';
  if (v === 'headers') return 'headers';
  throw new Error(`--rings=${v}: give --rings (ring state and descriptors) or --rings=headers (also the buffers' first bytes)`);
}

export async function runProxy(o: ProxyCliOptions): Promise<void> {
  if (!['listen', 'connect', 'auto'].includes(o.frontend)) throw new Error(`--frontend must be listen, connect or auto, not ${o.frontend}`);
  // every number checked before anything is opened or started
  const numbers = {
    connectTimeoutMs: numberOption('--connect-timeout', o.connectTimeout, { min: 0, integer: true }),
    socketMode: modeOption('--mode', o.mode),
    relaySpinUs: numberOption('--relay-spin-us', o.relaySpinUs, { min: 0, max: 1_000_000, integer: true }),
    ...(o.allowUid.length ? { allowUids: o.allowUid.map((u) => numberOption('--allow-uid', u, { min: 0, integer: true })) } : {}),
    relayNice: numberOption('--relay-nice', o.relayNice, { min: -20, max: 19, integer: true }),
    ...(o.relayCpu !== undefined && o.relayCpu !== 'none' ? { relayCpu: parseRelayCpu(o.relayCpu) } : {}),
    statsIntervalMs: numberOption('--stats-interval', o.statsInterval, { min: 0 }) * 1000,
  };
  const metricsAt = o.metrics !== undefined ? parseMetricsAddress(o.metrics) : undefined;
  const flight = flightOptions(o);
  const format = chooseFormat(o, Boolean(process.stdout.isTTY));
  const { logger, flush } = createLogger(format);
  // metrics first: an address in use is a startup error, before any socket or recording exists
  let metrics: DaemonMetrics | undefined;
  let metricsServer: Server | undefined;
  const late: { daemon?: ProxyDaemon; recorder?: Recorder } = {};
  if (metricsAt) {
    const registry = createRegistry();
    metrics = new DaemonMetrics(registry, o.listen, {
      relay: () => late.daemon?.relayStats(),
      ...(o.record ? { recording: () => late.recorder?.figures() ?? { bytes: 0, droppedNotifications: 0, droppedRings: 0 } } : {}),
      pausedChannels: () => late.daemon?.pausedChannels() ?? 0,
    });
    metricsServer = await startMetricsServer(registry, metricsAt, (err) => logger.error({ event: 'notice', msg: `metrics: ${err.message}` }));
    logger.info({ event: 'notice', msg: `metrics at http://${metricsAt.host.includes(':') ? `[${metricsAt.host}]` : metricsAt.host}:${metricsAt.port}/metrics` });
  }
  const recorder = o.record
    ? new Recorder(o.record, {
        onError: (file, err) => logger.error({ event: 'notice', msg: `recording ${file} stopped at its last whole frame: ${err.message}; forwarding goes on` }),
        ...(flight ? { flight: { ...flight, onSweep: (r) => logSweep(logger, r), onPin: (p) => logPin(logger, p) } } : {}),
      })
    : undefined;
  if (recorder?.files.length) logger.info({ event: 'notice', msg: `recording to ${recorder.files[0]}` });
  const injections = o.inject.map(parseInjectSpec);
  const faults = new FaultRuleSet([...(o.rules ? loadRulesFile(o.rules) : []), ...o.fault.flatMap(parseFaultSpec)]);
  let control: ControlServer | undefined;
  let injector: Injector | undefined;
  const checker = o.check ? new Checker() : undefined;
  const devices = new DeviceTracker();
  const emit = (e: ProxyEvent): void => {
    // one inference of each session's device, for the log's feature names and the recording
    const guess = 'session' in e ? devices.observe(e) : undefined;
    recorder?.onEvent(e);
    if (guess && 'session' in e) recorder?.onDevice(e.session, e.ts, guess);
    injector?.onEvent(e);
    control?.onEvent(e);
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
    const warn = (e.type === 'message' && e.findings.length > 0) || e.type === 'fault';
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
    ...(o.rings ? { rings: parseRings(o.rings) } : {}),
    ...(o.dialect ? { dialect: parseDialect(o.dialect) } : {}),
    emit,
    notice: (level, msg, fields) => logger[level]({ event: 'notice', ...fields, msg }),
  });
  late.daemon = daemon;
  late.recorder = recorder;
  if (injections.length) {
    injector = new Injector(injections, (id) => daemon.activeSessions.find((x) => x.id === id), (spec, session, sent) =>
      logger[sent ? 'info' : 'warn']({ event: 'notice', session, msg: sent ? `injected ${spec.channel}:${spec.name}` : `could not inject ${spec.channel}:${spec.name}: the ${spec.channel} channel is gone` }),
    );
  }
  daemon.start();
  if (o.control !== false) {
    const controlPath = o.control === undefined || (o.control as unknown) === true ? defaultControlPath(o.listen) : o.control;
    control = new ControlServer(controlPath, {
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
  }
  for (const r of faults.list()) logger.warn({ event: 'notice', rule: r.id, msg: `fault rule ${r.id}: ${r.text}` });
  logger.info({
    event: 'notice',
    msg: `listening on ${o.listen}, connecting to ${o.connect}; frontend=${o.frontend}; ${o.interpose ? 'interposing vring eventfds' : 'passing vring eventfds through'}; log format ${format}`,
  });
  const stop = (sig: string): void => {
    logger.info({ event: 'notice', msg: `${sig}: closing every session` });
    injector?.stop();
    control?.close();
    metricsServer?.close();
    daemon.stop(`daemon received ${sig}`);
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
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}
