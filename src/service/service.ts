/**
 * The proxy as a service: the devices' daemons and what they share (recorder, checker, fault
 * rules, injector, device tracker, metrics endpoint, session ids), started and stopped as one.
 * `vhostscope proxy`, `attach` and `demo` run one; so can a test or a bench, with the same wiring.
 */
import type { Logger } from 'pino';
import { DeviceTracker } from '../events/device-tracker';
import { Checker } from '../analysis/checker';
import { Injector } from '../proxy/inject';
import { FaultRuleSet, type FaultRule } from '../faults';
import { Recorder } from '../recording/recorder';
import type { Pin } from '../recording/flight';
import { createRegistry } from '../control/metrics';
import { isLoopback, startMetricsServer } from '../control/metrics-server';
import { logPin, logSweep } from './flight-log';
import { markAndPin, restoreAttached, startDevice, type RunningDevice, type SharedParts } from './device';
import type { ServiceOptions } from './options';

export class ProxyService {
  readonly running: RunningDevice[] = [];
  private shared: SharedParts | undefined;
  private metricsServer: { close(): void } | undefined;
  /** the ids of the rules that came from files: reloadRules() replaces them */
  private fileRuleIds: string[] = [];
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly opts: ServiceOptions,
    private readonly logger: Logger,
    /** counts log lines dropped for a slow output (a metric) */
    private readonly logDropped?: () => number,
  ) {}

  /**
   * Opens everything in the order that keeps a failure clean: the metrics address first (in use:
   * a startup error before any socket or recording exists), then the recording, then each device.
   */
  async start(): Promise<void> {
    const { opts, logger } = this;
    const at = opts.metrics;
    const registry = at ? createRegistry(this.logDropped) : undefined;
    if (registry && at) {
      this.metricsServer = await startMetricsServer(registry, at, (err) => logger.error({ event: 'notice', msg: `metrics: ${err.message}` }));
      logger.info({ event: 'notice', msg: `metrics at http://${at.host.includes(':') ? `[${at.host}]` : at.host}:${at.port}/metrics` });
      if (!isLoopback(at.host))
        logger.warn({
          event: 'notice',
          msg: `metrics are served to other hosts (${at.host}) without authentication, and their labels name every device's socket paths; put a firewall or an authenticating proxy in front, or bind 127.0.0.1`,
        });
    }
    const recorder = opts.record ? this.startRecorder(opts.record) : undefined;
    const faults = new FaultRuleSet([...(opts.fileRules ?? []), ...(opts.rules ?? [])]);
    this.fileRuleIds = faults
      .list()
      .slice(0, opts.fileRules?.length ?? 0)
      .map((r) => r.id);
    let nextSession = 1;
    const shared: SharedParts = {
      logger,
      recorder,
      checker: opts.check ? new Checker() : undefined,
      injector: undefined,
      devices: new DeviceTracker(),
      registry,
      faults,
      sessionIds: () => nextSession++,
      named: opts.named ?? opts.devices.length > 1,
      replyWatchdogMs: opts.replyWatchdogMs ?? 0,
      reconnectWatchdogMs: opts.reconnectWatchdogMs ?? 0,
    };
    this.shared = shared;
    if (opts.injections?.length) {
      shared.injector = new Injector(
        opts.injections,
        (id) => this.running.flatMap((d) => d.daemon.activeSessions).find((x) => x.id === id),
        (spec, session, sent) =>
          logger[sent ? 'info' : 'warn']({
            event: 'notice',
            session,
            msg: sent ? `injected ${spec.channel}:${spec.name}` : `could not inject ${spec.channel}:${spec.name}: the ${spec.channel} channel is gone`,
          }),
      );
    }
    for (const d of opts.devices) this.running.push(startDevice(d, shared));
    for (const r of faults.list()) logger.warn({ event: 'notice', rule: r.id, msg: `fault rule ${r.id}: ${r.text}` });
  }

  private startRecorder(target: string): Recorder {
    const { logger } = this;
    const flight = this.opts.flight;
    const recorder = new Recorder(target, {
      onError: (file, err, opening) =>
        logger.error({
          event: 'notice',
          msg: opening
            ? `could not create recording ${file}: ${err.message}; ${opening}`
            : file.endsWith('.vhsrec')
              ? `recording ${file} stopped at its last whole frame: ${err.message}; forwarding goes on`
              : `could not write ${file}: ${err.message}; the pins hold in memory and forwarding goes on`,
        }),
      ...(flight ? { flight: { ...flight, onSweep: (r) => logSweep(logger, r), onPin: (p) => logPin(logger, p) } } : {}),
    });
    if (recorder.files.length) logger.info({ event: 'notice', msg: `recording to ${recorder.files[0]}` });
    return recorder;
  }

  get recorder(): Recorder | undefined {
    return this.shared?.recorder;
  }

  get faults(): FaultRuleSet | undefined {
    return this.shared?.faults;
  }

  /** "Something just went wrong here": a mark in the log, and a pin on the recording. */
  mark(text: string, pinReason?: string): Pin | undefined {
    return markAndPin(this.logger, this.shared?.recorder, text, pinReason);
  }

  /** Replaces the rules that came from files with these, all at once; rules given on their own stay. */
  reloadRules(rules: FaultRule[]): { removed: string[]; added: { id: string; text: string }[] } {
    const faults = this.shared?.faults;
    if (!faults) throw new Error('the service has not started');
    const { removed, added } = faults.replace(this.fileRuleIds, rules);
    this.fileRuleIds = added.map((e) => e.id);
    return { removed: removed.map((e) => e.id), added: added.map((e) => ({ id: e.id, text: e.text })) };
  }

  /** Closes every session and socket (an attached peer's socket goes back first), then the recording. */
  stop(reason: string): Promise<void> {
    this.stopping ??= this.doStop(reason);
    return this.stopping;
  }

  private async doStop(reason: string): Promise<void> {
    this.shared?.injector?.stop();
    this.metricsServer?.close();
    for (const d of this.running) {
      d.control?.close();
      d.watchdog?.close();
      d.reconnectWatchdog?.close();
      clearInterval(d.checkTimer);
      // attach: the peer's socket goes back over ours first, so the path never lacks a listener
      if (d.attached) restoreAttached(this.logger, d.attached);
      d.daemon.stop(reason);
    }
    await this.shared?.recorder?.close();
  }
}
