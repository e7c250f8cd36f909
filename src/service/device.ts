/**
 * One device of a ProxyService: its daemon, its control socket, its metrics, and the fan-out of
 * its events to the subscribers every device shares (device tracker, recorder, injector, checker,
 * log). With `attach`, the peer's socket is moved aside first and put back at stop.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ProxyEvent } from '../events/events';
import type { DeviceTracker } from '../events/device-tracker';
import type { Checker, CheckFinding } from '../analysis/checker';
import type { Injector } from '../proxy/inject';
import type { FaultRuleSet } from '../faults';
import type { Recorder } from '../recording/recorder';
import type { Pin } from '../recording/flight';
import { ProxyDaemon } from '../proxy/daemon';
import { cutDirectConnections, moveAside, originalSocket, restore, socketAt, type Attached } from '../proxy/attach';
import { ControlServer } from '../control/server';
import { DaemonMetrics } from '../control/metrics';
import { findingLine } from '../analysis/finding-line';
import { logEvent } from './event-log';
import { ReplyWatchdog, type OverdueReply } from './reply-watchdog';
import { ReconnectWatchdog } from './reconnect-watchdog';
import { native } from '../native';

/** How often the live check looks for what is overdue without an event (a kick never served). */
const CHECK_TICK_MS = 1000;
import type { DeviceConfig } from './options';

/** What every device of the service shares. */
export interface SharedParts {
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
  /** ms after which a due reply still missing raises an alarm (0: no watchdog) */
  replyWatchdogMs: number;
  /** ms a device may go without a working session after its back-end ended one (0: no watchdog) */
  reconnectWatchdogMs: number;
}

/** A running device: its daemon and control socket. */
export interface RunningDevice {
  config: DeviceConfig;
  daemon: ProxyDaemon;
  control: ControlServer | undefined;
  /** attach: where the peer's socket is, to be put back at stop */
  attached?: Attached;
  logger: Logger;
  watchdog?: ReplyWatchdog;
  reconnectWatchdog?: ReconnectWatchdog;
  /** the live check's clock: what is overdue though no event came (a kick never served) */
  checkTimer?: NodeJS.Timeout;
}

/** Puts an attached peer's socket back at its path, or says how to. */
export function restoreAttached(logger: Logger, a: Attached): void {
  try {
    logger.info({ event: 'notice', msg: `detached: ${restore(a)}` });
  } catch (err) {
    logger.error({ event: 'notice', msg: `could not put the peer's socket back at ${a.path}: ${(err as Error).message}; run "vhostscope detach ${a.path}"` });
  }
}

/** "Something just went wrong here" (`vhostscope mark`, SIGUSR1): a line in the log, and a pin on the recording. */
export function markAndPin(logger: Logger, recorder: Recorder | undefined, text: string, pinReason = `mark: ${text}`): Pin | undefined {
  logger.warn({ event: 'mark', msg: `mark: ${text}` });
  return recorder?.pin(pinReason);
}

/** The device's control socket (status, tail, rules, mark), unless it has none. */
function startControl(c: DeviceConfig, daemon: ProxyDaemon, shared: SharedParts, logger: Logger): ControlServer | undefined {
  if (c.control === false) return undefined;
  const { recorder, faults } = shared;
  const control = new ControlServer(c.control, {
    status: (device) => daemon.status(device ?? c.device ?? 'generic'),
    rules: faults,
    onRulesChanged: (what) => logger.warn({ event: 'notice', msg: what }),
    mark: (text) => {
      const p = markAndPin(logger, recorder, text);
      return p ? { pinned: { id: p.id, fromMs: p.fromMs, toMs: p.toMs } } : {};
    },
  });
  logger.info({ event: 'notice', msg: `control socket ${c.control} (vhostscope status|tail|rules --control ${c.control})` });
  return control;
}

/** Starts one device's daemon and control socket; its events go to the shared subscribers. */
export function startDevice(c: DeviceConfig, shared: SharedParts): RunningDevice {
  const { recorder, checker, devices, faults } = shared;
  const logger = shared.named ? shared.logger.child({ dev: c.name }) : shared.logger;
  const late: { daemon?: ProxyDaemon } = {};
  const metrics = shared.registry
    ? new DaemonMetrics(shared.registry, c.listen, {
        relay: () => late.daemon?.relayStats(),
        ...(recorder ? { recording: () => recorder.figures() } : {}),
        pausedChannels: () => late.daemon?.pausedChannels() ?? 0,
      })
    : undefined;
  let control: ControlServer | undefined;
  const watchdog = shared.replyWatchdogMs > 0 ? replyWatchdog(shared.replyWatchdogMs, logger, recorder, metrics) : undefined;
  const reconnectWatchdog = shared.reconnectWatchdogMs > 0 ? reconnectAlarm(shared.reconnectWatchdogMs, c.listen, logger, recorder, metrics) : undefined;
  /** Each finding of the live check: a line, a metric, and a pin for an error. */
  const report = (findings: CheckFinding[]): void => {
    for (const f of findings) {
      metrics?.onFinding(f.rule.id, f.rule.severity);
      if (f.rule.severity === 'error') recorder?.pin(`check ${f.rule.id} (${f.rule.name})`, f.session);
      logger.warn({
        event: 'finding',
        session: f.session,
        id: f.rule.id,
        rule: f.rule.name,
        severity: f.rule.severity,
        section: f.rule.section,
        at: f.at,
        detail: f.detail,
        msg: findingLine(f).trim(),
      });
    }
  };
  const emit = (e: ProxyEvent): void => {
    // one inference of each session's device, for the log's feature names and the recording
    const guess = 'session' in e ? devices.observe(e) : undefined;
    recorder?.onEvent(e);
    if (guess && 'session' in e) recorder?.onDevice(e.session, e.ts, guess);
    if (guess && !c.device && 'session' in e) late.daemon?.setSessionDevice(e.session, guess.device);
    shared.injector?.onEvent(e);
    control?.onEvent(e);
    if ('session' in e && (c.device ? e.type === 'session-start' : guess)) control?.setDevice(e.session, c.device ?? guess!.device);
    metrics?.onEvent(e);
    watchdog?.onEvent(e);
    reconnectWatchdog?.onEvent(e);
    report(checker?.onEvent(e) ?? []);
    const device = c.device ?? ('session' in e ? devices.guess(e.session)?.device : undefined) ?? 'generic';
    logEvent(logger, e, device, c.device ? undefined : guess, c);
  };
  const daemon = new ProxyDaemon({
    listenPath: c.listen,
    connectPath: c.connect,
    ...c.daemon,
    faults,
    name: c.name,
    sessionIds: shared.sessionIds,
    ...(c.attach ? { unlinkOnStop: false } : {}),
    emit,
    notice: (level, msg, fields) => logger[level]({ event: 'notice', ...fields, msg }),
  });
  late.daemon = daemon;
  const checkTimer = checker
    ? setInterval(() => report(checker.tick(native.monotonicNs(), new Set(daemon.activeSessions.map((x) => x.id)))), CHECK_TICK_MS).unref()
    : undefined;
  let attached: Attached | undefined;
  if (c.attach) {
    attached = moveAside(c.listen);
    try {
      daemon.start(originalSocket(attached));
      attached.ours = socketAt(c.listen);
      control = startControl(c, daemon, shared, logger);
    } catch (err) {
      // nothing may fail after the move and leave the path without its peer
      control?.close();
      daemon.stop('attach failed');
      try {
        restore(attached);
      } catch (restoreErr) {
        throw new Error(
          `${(err as Error).message}; and the peer's socket could not be put back: ${(restoreErr as Error).message}; run "vhostscope detach ${c.listen}"`,
        );
      }
      throw err;
    }
    const direct = attached.direct.size;
    logger.warn({
      event: 'notice',
      msg: `attached to ${c.listen}: the peer's socket is now ${attached.moved}; new connections come through vhostscope${direct ? `, the ${direct} made before ${c.reconnect ? 'are being ended so that their peers reconnect through it' : 'stay direct (--reconnect ends them)'}` : ''}; SIGINT/SIGTERM (or "vhostscope detach ${c.listen}" after a crash) put it back`,
    });
    if (c.reconnect) {
      for (const x of cutDirectConnections(attached)) {
        if (x.error) logger.error({ event: 'notice', msg: `could not end the direct connection (pid ${x.pid} fd ${x.fd}): ${x.error}` });
        else
          logger.warn({
            event: 'notice',
            pid: x.pid,
            msg: `ended the direct connection held by pid ${x.pid} (fd ${x.fd}); its peer may reconnect through vhostscope`,
          });
      }
    }
  } else {
    daemon.start();
    control = startControl(c, daemon, shared, logger);
  }
  const interpose = c.daemon.interpose ?? true;
  logger.info({
    event: 'notice',
    msg: `listening on ${c.listen}, connecting to ${c.connect}; frontend=${c.daemon.frontend ?? 'auto'}; ${interpose ? 'interposing vring eventfds' : 'passing vring eventfds through'}`,
  });
  return {
    config: c,
    daemon,
    control,
    logger,
    ...(attached ? { attached } : {}),
    ...(watchdog ? { watchdog } : {}),
    ...(checkTimer ? { checkTimer } : {}),
    ...(reconnectWatchdog ? { reconnectWatchdog } : {}),
  };
}

/** The device's reply watchdog: a line, a metric (as a finding, rule reply-overdue) and a pin for each overdue reply. */
function replyWatchdog(ms: number, logger: Logger, recorder: Recorder | undefined, metrics: DaemonMetrics | undefined): ReplyWatchdog {
  const where = (o: OverdueReply): string => `${o.request}${o.channel === 'main' ? '' : ` (${o.channel} channel)`}`;
  return new ReplyWatchdog(
    ms,
    (o) => {
      const both = o.alsoWaiting;
      metrics?.onFinding(both ? 'both-sides-blocked' : 'reply-overdue', both ? 'error' : 'warning');
      recorder?.pin(`${both ? 'both sides blocked' : 'reply overdue'}: ${where(o)}`, o.session);
      logger.warn({
        event: both ? 'both-sides-blocked' : 'reply-overdue',
        session: o.session,
        channel: o.channel,
        request: o.request,
        waiting: o.waiting,
        msg:
          `session ${o.session}: the ${o.waiting} has waited ${(o.waitedMs / 1000).toFixed(1)} s for the ${o.owing}'s reply to ${where(o)}` +
          (both
            ? `, while the ${o.owing} waits for the reply to ${both.request}${both.channel === 'main' ? '' : ` (${both.channel} channel)`}: both sides are blocked`
            : ''),
      });
    },
    (o) =>
      logger.warn({
        event: 'reply-overdue',
        session: o.session,
        channel: o.channel,
        request: o.request,
        msg: `session ${o.session}: the ${o.owing} answered ${where(o)} after ${(o.waitedMs / 1000).toFixed(1)} s`,
      }),
  );
}

/** The device's reconnect watchdog: a line, a metric (as a finding, rule no-reconnect) and a pin when the device stays down. */
function reconnectAlarm(ms: number, listen: string, logger: Logger, recorder: Recorder | undefined, metrics: DaemonMetrics | undefined): ReconnectWatchdog {
  return new ReconnectWatchdog(
    ms,
    (d) => {
      metrics?.onFinding('no-reconnect', 'warning');
      recorder?.pin('no reconnect');
      logger.warn({
        event: 'no-reconnect',
        downMs: d.downMs,
        msg: `${listen}: no working session for ${(d.downMs / 1000).toFixed(1)} s since the back-end ended the last one (${d.reason}): the front-end has not reconnected, or the back-end is not back (field cases C7, C8)`,
      });
    },
    (d) => logger.info({ event: 'reconnected', downMs: d.downMs, msg: `${listen}: a session works again after ${(d.downMs / 1000).toFixed(1)} s without one` }),
  );
}
