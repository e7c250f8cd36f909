/**
 * One proxied connection: the peer that connected to our listening socket and the peer we
 * connected to, plus the second channels the front-end hands over (sub-channels.ts). A message's
 * path: handle() checks its header and size against its channel's rules (a fatal finding ends the
 * session), the fault rules (if any) take it, deliver() runs the interpositions its sender, reply
 * and request select (interpositions.ts: the relay's eventfds, our socketpair, masked bits) and
 * forwards it with its fds, in order; then it is decoded and reported as an event. Decoding
 * comes after forwarding: QEMU waits for replies synchronously, so the proxy's own work must not
 * sit in front of it.
 */
import { native, type Channel, type ChannelEnd } from '../native';
import {
  applyMainMessage,
  decodeMessage,
  requestName,
  type Finding,
  decoders,
  HEADER_SIZE,
  messageIsReply,
  isReplyExpected,
  protocolFeatureNames,
  channelRules,
  newNegotiation,
  parseHeader,
  validateHeader,
  validateMessage,
  type ChannelKind,
  type Negotiation,
  type Side,
  virtioFeatureNames,
  type DeviceType,
  type Dialect,
} from '../protocol';
import {
  relayPairSummary,
  type Direction,
  type FdDescription,
  type MessageEvent,
  type PeerIdentity,
  type ProxyEvent,
  type SessionEndEvent,
} from '../events/events';
import type { FrontendPosition, Position, SessionStatus } from '../events/status';
import { closeFds, describeFds, peerIdentity } from '../events/fds';
import { Interposer } from './interposer';
import { NoticeBudget } from './notice-budget';
import { BackPressure, type PressureChange } from './backpressure';
import { NotificationStats, type NotificationKind } from '../events/notification-stats';
import type { RelayHub } from './relay-hub';
import { FaultRunner, type FaultHost, type PendingMessage } from './fault-runner';
import type { FaultRuleSet } from '../faults';
import { RingTracker, type RingsMode } from './ring-tracker';
import { InterpositionTable, mainInterpositions, type Interposition, type Outgoing } from './interpositions';
import { DeviceStatePipe, type StateTransfer } from './device-state';
import { DirtyLogReader, type DirtyLogResult } from './dirty-log-reader';
import { SubChannels, type SubChannelHost, type SubChannelKind } from './sub-channels';

/**
 * Device-state transfers the proxy copies at once per session. A migration has one (QEMU ends a
 * transfer before it begins the next); each may keep up to --record-device-state bytes.
 */
const MAX_STATE_TRANSFERS = 2;

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
  private readonly counts = { 'F>B': 0, 'B>F': 0 };
  private fdsForwarded = 0;
  private readonly interposer: Interposer | undefined;
  private readonly stats: NotificationStats;
  private statsTimer: NodeJS.Timeout | undefined;
  private readonly faults: FaultRunner | undefined;
  private readonly peers: Record<Position, PeerIdentity | undefined>;
  private readonly rings: RingTracker | undefined;
  /** --rings: the migration's dirty log, read while it lasts */
  private readonly dirtyLog: DirtyLogReader | undefined;
  /** what the proxy does to main-channel messages on their way (interpositions.ts) */
  private readonly interpositions: InterpositionTable;
  /** device-state transfers going through the proxy's pipes now */
  private readonly statePipes = new Set<DeviceStatePipe>();
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
      this.stats = new NotificationStats(native.monotonicNs(), opts.device);
      if (opts.relay) {
        this.interposer = new Interposer(
          opts.relay,
          this.guarded('a relayed notification', (vring: number, kind: NotificationKind, e: { ts: bigint; count: number }) => {
            this.stats.record(vring, kind, e.ts);
            opts.emit({ type: 'notification', ts: e.ts, session: this.id, vring, kind, count: e.count });
            this.faults?.onNotification(kind, vring);
          }),
          (why) => this.notice(why),
        );
      }
      if (opts.statsIntervalMs) {
        this.statsTimer = setInterval(
          this.guarded('the stats timer', () => this.emitStats()),
          opts.statsIntervalMs,
        );
        this.statsTimer.unref();
      }
      if (opts.faults) this.faults = new FaultRunner(opts.faults, this.faultHost(), requestName, opts.deviceName);
      if (opts.rings && opts.relay) {
        const notice = this.guarded('a ring notice', (msg: string) => this.notice(msg));
        this.dirtyLog = new DirtyLogReader(
          this.guarded('the end of a dirty log', (r: DirtyLogResult) => {
            const { endNs, ...figures } = r;
            opts.emit({ type: 'dirty-log', ts: endNs, session: this.id, ...figures });
          }),
          notice,
        );
        this.rings = new RingTracker(
          opts.relay,
          opts.rings,
          this.guarded('a ring snapshot', (vring, snapshot, raw) => {
            this.dirtyLog?.onSnapshot(vring, snapshot);
            opts.emit({ type: 'ring', ts: snapshot.ts, session: this.id, vring, snapshot, raw });
          }),
          notice,
        );
      }
      this.interpositions = new InterpositionTable(
        mainInterpositions({
          interposer: this.interposer,
          rings: this.rings,
          dirtyLog: this.dirtyLog,
          subs: this.subs,
          keepFeatures: Boolean(opts.keepFeatures),
          notice: (msg) => this.notice(msg),
          deviceState: (o) => this.interposeDeviceState(o),
          ringBase: (vring, base, now) => opts.emit({ type: 'ring', ts: now.snapshot.ts, session: this.id, vring, snapshot: now.snapshot, raw: now.raw, base }),
        }),
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
        interpose: this.interposer !== undefined,
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

  /** per channel, the fds it held for an unfinished message at the last check and since when */
  private readonly held = new Map<Channel, { fds: number; sinceMs: number }>();

  /**
   * Ends the session if a peer has held fds in an unfinished message for `timeoutMs`: each
   * session may hold up to 64 for as long as it likes otherwise, and a thousand sessions doing
   * so fill the daemon's fd table. A real peer sends a message's bytes with its fds at once.
   * Called by the daemon every few seconds.
   */
  checkHeldFds(nowMs: number, timeoutMs: number): void {
    if (this.closed) return;
    const channels: [Channel, string][] = [...this.legs].map(([pos, ch]) => [ch, `the ${this.frontendAt ? this.sideOf(pos) : `peer on the ${pos} side`}`]);
    channels.push(...this.subs.channels());
    for (const [ch, who] of channels) {
      const fds = ch.heldFds;
      const h = this.held.get(ch);
      if (!fds) {
        this.held.delete(ch);
        continue;
      }
      if (!h || fds < h.fds) {
        this.held.set(ch, { fds, sinceMs: nowMs }); // a new message (fewer held than before: the last one completed)
        continue;
      }
      h.fds = fds;
      if (nowMs - h.sinceMs >= timeoutMs) {
        this.close(
          `${who} has held ${fds} fd${fds > 1 ? 's' : ''} in an unfinished message for ${Math.round((nowMs - h.sinceMs) / 1000)} s; a peer sends a message's bytes with its fds`,
          'proxy',
        );
        return;
      }
    }
  }

  /** Relay pairs this session holds now (current and in their grace period). */
  get livePairs(): number {
    return this.interposer?.livePairs ?? 0;
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
      this.guarded(`a message from the ${pos} side`, (msg: Buffer, fds: number[], ts: bigint) => this.onMessage(pos, msg, fds, ts)),
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
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.interposer?.teardownAll();
    this.rings?.close();
    for (const p of [...this.statePipes]) p.close();
    closeFds(this.faults?.dispose() ?? []);
  }

  private sideOf(pos: Position): Side {
    return pos === this.frontendAt ? 'frontend' : 'backend';
  }

  private onMessage(from: Position, raw: Buffer, fds: number[], ts: bigint): void {
    if (this.closed) {
      closeFds(fds);
      return;
    }
    // The frontend always speaks first (reference §6): that fixes the roles for this session.
    if (this.frontendAt === undefined) this.frontendAt = from;
    this.handle('main', this.sideOf(from), this.legs.get(other(from))!, raw, fds, ts, `${from} side`);
  }

  /** Validates, then hands the message to the fault rules (if any) or straight to deliver(). */
  private handle(channel: ChannelKind, sender: Side, to: Channel, raw: Buffer, fds: number[], ts: bigint, where: string): void {
    const findings = validateMessage(raw, { channel, sender, fdCount: fds.length, negotiation: this.negotiation, dialect: this.opts.dialect });
    const fatal = findings.find((f) => f.severity === 'fatal');
    if (fatal) {
      closeFds(fds);
      this.close(`bad input from the ${sender} (${where}): ${fatal.message}; header ${raw.subarray(0, HEADER_SIZE).toString('hex')}`, sender);
      return;
    }
    const h = parseHeader(raw);
    const m: PendingMessage = {
      channel,
      sender,
      raw,
      received: raw,
      fds,
      ts,
      findings,
      request: h.request,
      flags: h.flags,
      reply: messageIsReply(channel, h.flags, sender),
      to,
      faults: [],
      masked: [],
    };
    if (this.faults) this.faults.submit(m);
    else this.deliver(m);
  }

  /** Interposes (the table's handlers for this message, in order), forwards, then reports one message. */
  private deliver(m: PendingMessage): void {
    if (this.closed) {
      closeFds(m.fds);
      return;
    }
    const { channel, sender, fds, findings, to, request } = m;
    const fdInfo = describeFds(fds);
    const o: Outgoing = { request, fds, out: m.raw, outFds: fds, extra: {}, masked: m.masked };
    const stages = channel === 'main' ? this.interpositions.for(sender, m.reply, request) : [];
    let stage: Interposition | undefined;
    try {
      for (stage of stages) stage.before?.(o);
    } catch (err) {
      // a handler that replaced the fds owns the received ones; what it made for the peer is ours to close
      if (!(err as { fdsTaken?: boolean }).fdsTaken) closeFds(o.outFds !== fds ? o.outFds : fds);
      this.close(`cannot interpose ${requestName(channel, request)} (${stage?.name}): ${(err as Error).message}`, 'proxy');
      return;
    }
    if (o.out !== m.received) {
      o.extra.received = m.received;
      o.extra.masked = m.masked;
    }
    try {
      const nFds = o.outFds.length;
      const queued = to.send(o.out, o.outFds); // the channel owns the fds now and closes its copies once sent
      const receiver = sender === 'frontend' ? 'backend' : 'frontend';
      this.pressure.afterSend(this.channelTo(channel, sender), to, queued, channel === 'main' ? receiver : `${receiver} (${channel} channel)`, nFds);
    } catch (err) {
      const receiver = sender === 'frontend' ? 'backend' : 'frontend';
      // a peer that has gone is a peer that closed the connection, not a failure of the proxy
      if (channel === 'main' && peerGone(err))
        this.close(`the ${receiver} closed the connection (found forwarding ${requestName(channel, request)} to it)`, receiver);
      else this.close(`forwarding to the ${receiver} (${channel} channel) failed: ${(err as Error).message}`, 'proxy');
      return;
    }
    this.fdsForwarded += o.outFds.length;
    if (channel === 'main') applyMainMessage(this.negotiation, request, m.flags, o.out.subarray(HEADER_SIZE));
    for (const st of stages) st.after?.(o);
    if (m.faults.length) o.extra.faults = m.faults;
    let ts = m.ts;
    if (m.heldNs !== undefined) {
      o.extra.heldNs = m.heldNs;
      ts = native.monotonicNs();
    }
    this.emitMessage(channel, sender, o.out, fdInfo, findings, ts, o.extra);
  }

  /**
   * What the proxy does to main-channel messages, by sender and request: each interposition a
   * named handler (see InterpositionTable). Built once the session's parts exist.
   */
  /**
   * SET_DEVICE_STATE_FD with a pipe: the back-end gets a pipe of ours and the proxy copies the
   * state through, counting it (and keeping it for the recording with --record-device-state).
   * A pipe the proxy cannot make leaves the front-end's to go through as it came.
   */
  private interposeDeviceState(o: Outgoing): void {
    if (o.fds.length !== 1 || native.fdInfo(o.fds[0]).kind !== 'pipe') return;
    const { direction } = decoders.deviceState(o.out.subarray(HEADER_SIZE));
    if (direction !== 'save' && direction !== 'load') return;
    if (this.statePipes.size >= MAX_STATE_TRANSFERS) {
      this.notice(`${this.statePipes.size} device-state transfers are already open in this session: this pipe goes through as it came (not counted)`);
      return;
    }
    let pipe: DeviceStatePipe;
    try {
      const end = (t: StateTransfer): void => {
        this.statePipes.delete(pipe);
        this.opts.emit({
          type: 'device-state',
          ts: t.endNs,
          session: this.id,
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
        this.opts.keepDeviceState ?? 0,
        this.guarded('the end of a device-state transfer', end),
        this.faults?.stateHoldMs(direction) ?? 0,
      );
    } catch (err) {
      this.notice(`the device-state pipe goes through as it came (not counted): ${(err as Error).message}`);
      return;
    }
    this.statePipes.add(pipe);
    o.outFds = [pipe.backendFd];
    o.extra.interposed = true;
  }

  /** The FaultRunner's view of this session: the I/O it may ask for. */
  private faultHost(): FaultHost {
    return {
      negotiation: this.negotiation,
      now: () => native.monotonicNs(),
      // held and delayed messages are delivered from the fault runner's timers: guarded too
      deliver: this.guarded('delivering a held message', (m: PendingMessage) => this.deliver(m)),
      discard: (m, how) => {
        const fdInfo = describeFds(m.fds);
        closeFds(m.fds);
        this.emitMessage(m.channel, m.sender, m.received, fdInfo, m.findings, m.ts, { faults: m.faults, undelivered: how });
      },
      answer: (m, reply, faults) => {
        const back = this.channelTo(m.channel, m.sender);
        if (!back || this.closed) return;
        try {
          back.send(reply);
        } catch (err) {
          this.close(`answering the ${m.sender} (${m.channel} channel) failed: ${(err as Error).message}`, 'proxy');
          return;
        }
        this.emitMessage(m.channel, m.sender === 'frontend' ? 'backend' : 'frontend', reply, [], [], native.monotonicNs(), { injected: true, faults });
      },
      injectNotification: (kind, vring) => {
        if (!this.interposer) return 'the session does not interpose eventfds (--no-interpose)';
        return this.interposer.inject(kind, vring);
      },
      injected: (kind, vring) => this.opts.emit({ type: 'notification', ts: native.monotonicNs(), session: this.id, vring, kind, count: 1, injected: true }),
      disconnect: (side, reason) => this.close(reason, 'proxy', side),
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

  private emitMessage(
    channel: ChannelKind,
    sender: Side,
    raw: Buffer,
    fds: FdDescription[],
    findings: Finding[],
    ts: bigint,
    extra: Partial<MessageEvent>,
  ): void {
    const dir: Direction = sender === 'frontend' ? 'F>B' : 'B>F';
    this.counts[dir]++;
    const decoded = decodeMessage(channel, raw, sender, { negotiation: this.negotiation, dialect: this.opts.dialect });
    this.opts.emit({
      type: 'message',
      ts,
      session: this.id,
      channel,
      sender,
      dir,
      raw,
      decoded,
      fds,
      findings,
      ...(decoded.reply ? {} : { replyExpected: isReplyExpected(channel, decoded.request, decoded.flags, this.negotiation, this.opts.dialect) }),
      ...extra,
    });
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
      handle: (channel, sender, to, raw, fds, ts, where) => this.handle(channel, sender, to, raw, fds, ts, where),
      absorbed: (kind, raw, fds, ts) => {
        closeFds(fds);
        this.emitMessage(
          kind,
          'frontend',
          raw,
          describeFds(fds),
          validateMessage(raw, { channel: kind, sender: 'frontend', fdCount: fds.length, negotiation: this.negotiation, dialect: this.opts.dialect }),
          ts,
          { absorbed: true },
        );
      },
      injected: (kind, raw) => this.emitMessage(kind, 'backend', raw, [], [], native.monotonicNs(), { injected: true }),
      ended: (kind, reason) => this.opts.emit({ type: 'channel-end', ts: native.monotonicNs(), session: this.id, channel: kind, reason }),
      broken: (kind, side, end) =>
        this.close(`bad input from the ${side} (${kind} channel): ${this.describeEnd(end, kind)}; header ${end.header.toString('hex') || '(none)'}`, side),
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
    const pairs = this.interposer?.pairs() ?? [];
    return {
      session: this.id,
      frontend: this.frontendAt ?? 'not yet known',
      channels: ['main', ...this.subs.kinds],
      messages: { ...this.counts },
      fdsForwarded: this.fdsForwarded,
      backpressure: this.pressure.snapshot(),
      features: {
        offered: hex(n.offeredFeatures),
        acked: hex(n.ackedFeatures),
        ackedNames: n.ackedFeatures !== undefined ? virtioFeatureNames(n.ackedFeatures, device) : undefined,
        protocolInUse: n.protocolFeatures !== undefined ? protocolFeatureNames(n.protocolFeatures) : undefined,
      },
      vrings: this.notificationStats(),
      relayPairs: pairs.filter((p) => !p.final).map(relayPairSummary),
      ...(this.faults ? { faults: this.faults.snapshot() } : {}),
    };
  }

  /** The interposed channels this session has now. */
  get subChannels(): SubChannelKind[] {
    return this.subs.kinds;
  }

  private emitStats(): void {
    this.opts.relay?.drain();
    this.opts.emit({ type: 'stats', ts: native.monotonicNs(), session: this.id, vrings: this.stats.snapshot(native.monotonicNs()) });
  }

  /** The device the session carries, once known (net: its receive queues' kicks are not paired with calls). */
  setDevice(device: DeviceType): void {
    this.stats.setDevice(device);
  }

  /** Per-vring notification figures so far. */
  notificationStats(): ReturnType<NotificationStats['snapshot']> {
    this.opts.relay?.drain();
    return this.stats.snapshot(native.monotonicNs());
  }

  private onEnd(pos: Position, end: ChannelEnd | null): void {
    if (this.closed) return;
    const by = this.frontendAt ? this.sideOf(pos) : pos;
    const who = this.frontendAt ? by : `peer on the ${pos} side`;
    if (end === null || closedUnderUs(end)) {
      this.close(`the ${who} closed the connection${end ? ` (${end.message} while forwarding to it)` : ''}`, by);
      return;
    }
    this.close(`bad input from the ${who}: ${this.describeEnd(end)}; header ${end.header.toString('hex') || '(none)'}`, by);
  }

  private describeEnd(end: ChannelEnd, channel: ChannelKind = 'main'): string {
    // An oversized header is usually not vhost-user at all: say what else is wrong with it first.
    const headerFault =
      end.code === 'OVERSIZE' ? validateHeader(end.header, channel).find((f) => f.rule !== 'header-oversize' && f.severity === 'fatal') : undefined;
    if (end.code === 'EOF_MID_MESSAGE')
      return `EOF in the middle of a message (${end.header.length}/12 header bytes, ${end.payloadReceived}/${end.payloadExpected} payload bytes)`;
    if (end.code === 'OVERSIZE')
      return `${headerFault ? `${headerFault.message}; ` : ''}header announces a payload larger than ${channelRules(channel).maxPayload} bytes`;
    return end.message;
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
    if (this.statsTimer) clearInterval(this.statsTimer);
    this.interposer?.teardownAll();
    this.rings?.close();
    this.dirtyLog?.close();
    const pairs = this.interposer?.pairs() ?? [];
    try {
      this.opts.emit({
        type: 'session-end',
        ts: native.monotonicNs(),
        session: this.id,
        reason,
        ...(by ? { by } : {}),
        messages: { ...this.counts },
        fdsForwarded: this.fdsForwarded,
        vrings: this.stats.snapshot(native.monotonicNs()),
        relayPairs: pairs.map(relayPairSummary),
      });
    } finally {
      this.opts.onClosed(this); // the daemon forgets the session even if reporting its end failed
    }
  }
}

/**
 * A channel ended because the peer closed its end while we still wrote to it (queued messages
 * flushed into EPIPE or ECONNRESET): a peer that went away, not one that sent bad input.
 */
export function closedUnderUs(end: ChannelEnd): boolean {
  return (end.code === 'EWRITE' || end.code === 'EREAD') && (end.errno === 32 || end.errno === 104);
}

/** A send failed because the peer closed its end (EPIPE, ECONNRESET). */
function peerGone(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException;
  return e.code === 'EPIPE' || e.code === 'ECONNRESET' || /\((EPIPE|ECONNRESET)\)$/.test(e.message ?? '');
}
