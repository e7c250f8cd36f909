/**
 * One proxied connection: the peer that connected to our listening socket and the peer we
 * connected to, plus the second channels the front-end hands over (sub-channels.ts). The session
 * owns the connection's parts and its life: it builds them, learns which side is the front-end
 * (the one that speaks first), hands each message to its path (message-path.ts: validate, fault
 * rules, interpose, forward, report), and closes everything once, whatever ends it.
 */
import { native, type Channel, type ChannelEnd } from '../native';
import {
  requestName,
  protocolFeatureNames,
  channelRules,
  SessionRings,
  newNegotiation,
  type ChannelKind,
  type Negotiation,
  type Side,
  virtioFeatureNames,
  type DeviceType,
  type Dialect,
} from '../protocol';
import type { PeerIdentity, ProxyEvent, SessionEndEvent } from '../events/events';
import type { FrontendPosition, Position, SessionStatus } from '../events/status';
import { closeFds, peerIdentity } from '../events/fds';
import { DataPath } from './data-path';
import { NoticeBudget } from './notice-budget';
import { BackPressure, type PressureChange } from './backpressure';
import type { RelayHub } from './relay-hub';
import { FaultRunner, type FaultEffects, type FaultOutcome } from './fault-runner';
import type { PendingMessage } from './pending-message';
import type { FaultRuleSet } from '../faults';
import type { RingsMode } from './ring-tracker';
import { InterpositionTable, mainInterpositions } from './interpositions';
import { DeviceStateTransfers } from './device-state-transfers';
import { HeldFdWatch } from './held-fds';
import { closedUnderUs, describeEnd } from './channel-end';
import { MessagePath, type PathHost } from './message-path';
import { SubChannels, type SubChannelHost, type SubChannelKind } from './sub-channels';

export interface SessionOptions {
  id: number;
  listenPath: string;
  connectPath: string;
  frontend: FrontendPosition;
  emit: (e: ProxyEvent) => void;
  onClosed: (s: ProxySession) => void;
  /** interpose vring eventfds through this relay; undefined = pass them through */
  relay?: RelayHub;
  /** keep HOST_NOTIFIER / INBAND_NOTIFICATIONS offered even while interposing */
  keepFeatures?: boolean;
  /** emit a stats event this often (0: only at session end) */
  statsIntervalMs?: number;
  /** fault rules to apply (shared by the daemon's sessions; may change while the session runs) */
  faults?: FaultRuleSet;
  /** the name of the device this session is on (fault rules with `device=` apply only to theirs) */
  deviceName?: string;
  /** snapshot the vrings at every relayed kick and call (needs `relay`) */
  rings?: RingsMode;
  /** decode codes whose meaning differs between implementations as this family's (--dialect) */
  dialect?: Dialect;
  /** the device, when the user said (--device): net receive queues are not paired kick→call */
  device?: DeviceType;
  /** bytes of each device-state transfer to keep for the recording (--record-device-state); 0: count only */
  keepDeviceState?: number;
}

const other = (p: Position): Position => (p === 'listen' ? 'connect' : 'listen');

export type { SubChannelKind } from './sub-channels';

export class ProxySession {
  readonly id: number;
  readonly negotiation: Negotiation = newNegotiation();
  private readonly legs = new Map<Position, Channel>();
  /** the back-end request channel and the GPU socket, once interposed */
  private readonly subs: SubChannels;
  private frontendAt: Position | undefined;
  private closed = false;
  /** validate, fault rules, interpose, forward, report */
  private readonly path: MessagePath;
  /** relayed notifications, ring snapshots, the dirty log and their figures */
  private readonly dataPath: DataPath;
  private readonly faults: FaultRunner | undefined;
  private readonly peers: Record<Position, PeerIdentity | undefined>;
  /** device-state transfers going through the proxy's pipes now */
  private readonly deviceState: DeviceStateTransfers;
  /** each ring's spec state, for status and top */
  private readonly rings = new SessionRings(this.negotiation);
  /** peers that hold fds in an unfinished message */
  private readonly heldFds = new HeldFdWatch();
  /** pauses a sender while the peer it sends to is not reading */
  private readonly notices = new NoticeBudget();
  private readonly pressure = new BackPressure(this.guarded('back-pressure', (c: PressureChange) => this.emitPressure(c)));

  /** Channels of this session paused now because the peer they forward to is not reading. */
  get pausedChannels(): number {
    return this.pressure.snapshot().pausedNow;
  }

  constructor(
    private readonly opts: SessionOptions,
    listenFd: number,
    connectFd: number,
  ) {
    this.id = opts.id;
    this.subs = new SubChannels(this.subChannelHost());
    // Exception-safe: whatever fails below, every fd and Channel this session was given or made
    // is closed before the error reaches the daemon (which logs it and goes on). An fd passed
    // to a Channel is the Channel's from then on, even if its constructor throws.
    const unowned = new Set([listenFd, connectFd]);
    try {
      if (opts.frontend !== 'auto') this.frontendAt = opts.frontend;
      this.dataPath = new DataPath(
        {
          session: this.id,
          emit: opts.emit,
          relay: opts.relay,
          rings: opts.rings,
          device: opts.device,
          statsIntervalMs: opts.statsIntervalMs,
          negotiation: this.negotiation,
        },
        {
          guarded: (where, fn) => this.guarded(where, fn),
          notice: (msg) => this.notice(msg),
          notified: (kind, vring) => this.faults?.onNotification(kind, vring),
        },
      );
      if (opts.faults)
        this.faults = new FaultRunner(
          opts.faults,
          this.faultEffects(),
          this.guarded('a message the fault rules passed on', (m: PendingMessage, outcome: FaultOutcome) => this.path.settle(m, outcome)),
          requestName,
          opts.deviceName,
        );
      this.deviceState = new DeviceStateTransfers({
        keepBytes: opts.keepDeviceState ?? 0,
        ended: (e) => opts.emit({ type: 'device-state', session: this.id, ...e }),
        notice: (msg) => this.notice(msg),
        holdMs: (direction) => this.faults?.stateHoldMs(direction) ?? 0,
        guarded: (where, fn) => this.guarded(where, fn),
      });
      const interpositions = new InterpositionTable(
        mainInterpositions({
          interposer: this.dataPath.interposer,
          rings: this.dataPath.rings,
          dirtyLog: this.dataPath.dirtyLog,
          inflight: this.dataPath.inflight,
          subs: this.subs,
          keepFeatures: Boolean(opts.keepFeatures),
          negotiation: this.negotiation,
          notice: (msg) => this.notice(msg),
          deviceState: (o) => this.deviceState.interpose(o),
          ringBase: (vring, base, now) => this.dataPath.ringBase(vring, base, now),
        }),
      );
      this.path = new MessagePath(
        {
          session: this.id,
          emit: (e) => {
            if (e.type === 'message') this.rings.apply(e);
            opts.emit(e);
          },
          negotiation: this.negotiation,
          dialect: opts.dialect,
          pressure: this.pressure,
          interpositions,
          faults: this.faults,
        },
        this.pathHost(),
      );
      const peers = { listen: peerIdentity(listenFd), connect: peerIdentity(connectFd) };
      this.peers = peers;
      unowned.delete(listenFd);
      this.legs.set('listen', this.makeLeg('listen', listenFd));
      unowned.delete(connectFd);
      this.legs.set('connect', this.makeLeg('connect', connectFd));
      opts.emit({
        type: 'session-start',
        ts: native.monotonicNs(),
        session: this.id,
        listenPath: opts.listenPath,
        connectPath: opts.connectPath,
        frontend: opts.frontend,
        interpose: this.dataPath.interposer !== undefined,
        ...(opts.relay?.observe ? { observe: true as const } : {}),
        peers,
      });
      for (const leg of this.legs.values()) leg.start();
    } catch (err) {
      closeFds([...unowned]);
      for (const leg of this.legs.values()) leg.close();
      this.legs.clear();
      this.closed = true;
      this.disposeParts();
      throw err;
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Ends the session if a peer has held fds in an unfinished message for `timeoutMs` (held-fds.ts).
   * Called by the daemon every few seconds.
   */
  checkHeldFds(nowMs: number, timeoutMs: number): void {
    if (this.closed) return;
    const channels: [Channel, string][] = [...this.legs].map(([pos, ch]) => [ch, `the ${this.frontendAt ? this.sideOf(pos) : `peer on the ${pos} side`}`]);
    channels.push(...this.subs.channels());
    const reason = this.heldFds.check(channels, nowMs, timeoutMs);
    if (reason) this.close(reason, 'proxy');
  }

  /** Relay pairs this session holds now (current and in their grace period). */
  get livePairs(): number {
    return this.dataPath.livePairs;
  }

  /** The backend's process (SO_PEERCRED), once the roles are known. */
  get backendPeer(): PeerIdentity | undefined {
    return this.frontendAt ? this.peers[other(this.frontendAt)] : undefined;
  }

  /** The frontend's process (SO_PEERCRED), once the roles are known. */
  get frontendPeer(): PeerIdentity | undefined {
    return this.frontendAt ? this.peers[this.frontendAt] : undefined;
  }

  /** Where the frontend is, once known (forced, or from who spoke first). */
  get frontendPosition(): Position | undefined {
    return this.frontendAt;
  }

  private makeLeg(pos: Position, fd: number): Channel {
    const leg: Channel = new native.Channel(
      fd,
      channelRules('main').maxPayload,
      this.guarded(`a message from the ${pos} side`, (msg: Buffer, fds: number[], ts: bigint, fdsAt: number) => this.onMessage(pos, msg, fds, ts, fdsAt)),
      this.guarded(`the end of the ${pos} side`, (end: ChannelEnd | null) => this.onEnd(pos, end)),
      this.guarded(`the drain of the ${pos} side`, () => this.pressure.drained(leg)),
    );
    return leg;
  }

  private emitPressure(c: PressureChange): void {
    const msg = c.paused
      ? `back-pressure: the ${c.label} is not reading (${c.queued} bytes${c.fds ? ` and up to ${c.fds} fds` : ''} queued to it); the proxy stops reading the other peer until it does`
      : `back-pressure released: the ${c.label} read what was queued; forwarding resumes`;
    this.notice(msg);
  }

  /** A notice of this session, within its budget (a peer decides how often most of them happen). */
  private notice(msg: string): void {
    const said = this.notices.take(msg);
    if (said !== undefined) this.opts.emit({ type: 'notice', ts: native.monotonicNs(), session: this.id, msg: said });
  }

  /**
   * `fn` as a callback for the addon or a timer: an exception in it ends this session, with
   * its id and where it happened, and never reaches the addon (where it would be fatal to the
   * daemon and every other session) or the event loop.
   */
  private guarded<A extends unknown[]>(where: string, fn: (...a: A) => void): (...a: A) => void {
    return (...a: A) => {
      try {
        fn(...a);
      } catch (err) {
        this.fail(where, err);
      }
    };
  }

  private fail(where: string, err: unknown): void {
    const what = `internal error in ${where}: ${err instanceof Error ? err.message : String(err)}`;
    try {
      if (!this.closed) this.close(what, 'proxy');
      else this.opts.emit({ type: 'notice', ts: native.monotonicNs(), session: this.id, msg: what });
    } catch {
      /* the event sink itself throws: the session is closed regardless (close() runs onClosed) */
    }
  }

  /** Timers and trackers the constructor made, for a constructor that fails half-way. */
  private disposeParts(): void {
    this.dataPath?.close();
    this.deviceState?.closeAll();
    closeFds(this.faults?.dispose() ?? []);
  }

  private sideOf(pos: Position): Side {
    return pos === this.frontendAt ? 'frontend' : 'backend';
  }

  private onMessage(from: Position, raw: Buffer, fds: number[], ts: bigint, fdsAt: number): void {
    if (this.closed) {
      closeFds(fds);
      return;
    }
    // The frontend always speaks first (reference §6): that fixes the roles for this session.
    if (this.frontendAt === undefined) this.frontendAt = from;
    this.path.handle('main', this.sideOf(from), this.legs.get(other(from))!, raw, fds, ts, `${from} side`, fdsAt);
  }

  /** What a fault rule may do to this session besides deciding a message's fate. */
  private faultEffects(): FaultEffects {
    return {
      negotiation: this.negotiation,
      now: () => native.monotonicNs(),
      injectNotification: (kind, vring) => this.dataPath.inject(kind, vring),
      injected: (kind, vring) => this.opts.emit({ type: 'notification', ts: native.monotonicNs(), session: this.id, vring, kind, count: 1, injected: true }),
      disconnect: (side, reason) => this.close(reason, 'proxy', side),
      sendRest: (m) => this.path.sendRest(m),
      fault: (rule, action, detail) =>
        this.opts.emit({ type: 'fault', ts: native.monotonicNs(), session: this.id, rule: rule.id, text: rule.text, action, detail }),
    };
  }

  /** The channel on which `side` sent on `channel` (to answer it there). */
  private channelTo(channel: ChannelKind, side: Side): Channel | undefined {
    if (channel === 'main') {
      const pos = side === 'frontend' ? this.frontendAt : this.frontendAt && other(this.frontendAt);
      return pos ? this.legs.get(pos) : undefined;
    }
    return this.subs.channelOf(channel, side);
  }

  /** What the message path asks of this session. */
  private pathHost(): PathHost {
    const session = this;
    return {
      get closed() {
        return session.closed;
      },
      close: (reason, by, first) => this.close(reason, by, first),
      channelTo: (channel, side) => this.channelTo(channel, side),
    };
  }

  /** What the sub-channels ask of this session. */
  private subChannelHost(): SubChannelHost {
    const session = this;
    return {
      negotiation: this.negotiation,
      get pressure() {
        return session.pressure;
      },
      get closed() {
        return session.closed;
      },
      guarded: (where, fn) => this.guarded(where, fn),
      handle: (channel, sender, to, raw, fds, ts, where, fdsAt) => this.path.handle(channel, sender, to, raw, fds, ts, where, fdsAt),
      absorbed: (kind, raw, fds, ts) => this.path.absorbed(kind, 'frontend', raw, fds, ts),
      injected: (kind, raw) => this.path.report(kind, 'backend', raw, [], [], native.monotonicNs(), { injected: true }),
      ended: (kind, reason) => this.opts.emit({ type: 'channel-end', ts: native.monotonicNs(), session: this.id, channel: kind, reason }),
      broken: (kind, side, end) =>
        this.close(`bad input from the ${side} (${kind} channel): ${describeEnd(end, kind)}; header ${end.header.toString('hex') || '(none)'}`, side),
    };
  }

  /**
   * Sends a request of the proxy's own to the frontend over an interposed channel, as if the
   * backend had sent it (e.g. CONFIG_CHANGE_MSG); the frontend's reply is absorbed.
   * Returns false when the session has no such channel.
   */
  inject(kind: SubChannelKind, request: number, payload: Buffer = Buffer.alloc(0)): boolean {
    return this.subs.inject(kind, request, payload);
  }

  /** What `vhostscope status` shows about this session (JSON-safe). */
  status(device: DeviceType = 'generic'): SessionStatus {
    const n = this.negotiation;
    const hex = (v?: bigint): string | undefined => (v === undefined ? undefined : `0x${v.toString(16)}`);
    return {
      session: this.id,
      frontend: this.frontendAt ?? 'not yet known',
      channels: ['main', ...this.subs.kinds],
      messages: { ...this.path.counts },
      fdsForwarded: this.path.fdsForwarded,
      backpressure: this.pressure.snapshot(),
      features: {
        offered: hex(n.offeredFeatures),
        acked: hex(n.ackedFeatures),
        ackedNames: n.ackedFeatures !== undefined ? virtioFeatureNames(n.ackedFeatures, device) : undefined,
        protocolInUse: n.protocolFeatures !== undefined ? protocolFeatureNames(n.protocolFeatures) : undefined,
      },
      vrings: this.notificationStats(),
      ringStates: [...this.rings.rings].sort((a, b) => a[0] - b[0]).map(([vring, s]) => ({ vring, ...s })),
      relayPairs: this.dataPath.pairs(false),
      ...(this.faults ? { faults: this.faults.snapshot() } : {}),
    };
  }

  /** The interposed channels this session has now. */
  get subChannels(): SubChannelKind[] {
    return this.subs.kinds;
  }

  /** The device the session carries, once known (net: its receive queues' kicks are not paired with calls). */
  setDevice(device: DeviceType): void {
    this.dataPath.setDevice(device);
  }

  /** Per-vring notification figures so far. */
  notificationStats(): ReturnType<DataPath['figures']> {
    return this.dataPath.figures();
  }

  private onEnd(pos: Position, end: ChannelEnd | null): void {
    if (this.closed) return;
    const by = this.frontendAt ? this.sideOf(pos) : pos;
    const who = this.frontendAt ? by : `peer on the ${pos} side`;
    if (end === null || closedUnderUs(end)) {
      this.close(`the ${who} closed the connection${end ? ` (${end.message} while forwarding to it)` : ''}`, by);
      return;
    }
    this.close(`bad input from the ${who}: ${describeEnd(end)}; header ${end.header.toString('hex') || '(none)'}`, by);
  }

  /**
   * Closes both sides (and every fd the session still holds) and reports the end once.
   * `first`: the side to close first (a fault rule's disconnect), so that it sees EOF before
   * the other does.
   */
  close(reason: string, by?: SessionEndEvent['by'], first?: Side): void {
    if (this.closed) return;
    this.closed = true;
    const firstPos = first && this.frontendAt ? (first === 'frontend' ? this.frontendAt : other(this.frontendAt)) : undefined;
    if (firstPos) this.legs.get(firstPos)!.close();
    for (const leg of this.legs.values()) leg.close();
    closeFds(this.faults?.dispose() ?? []);
    this.subs.closeAll();
    this.dataPath.close();
    try {
      this.opts.emit({
        type: 'session-end',
        ts: native.monotonicNs(),
        session: this.id,
        reason,
        ...(by ? { by } : {}),
        messages: { ...this.path.counts },
        fdsForwarded: this.path.fdsForwarded,
        vrings: this.dataPath.figures(false),
        relayPairs: this.dataPath.pairs(true),
      });
    } finally {
      this.opts.onClosed(this); // the daemon forgets the session even if reporting its end failed
    }
  }
}
