/**
 * The proxy daemon: listens on one path, and for every peer that connects there, connects to
 * the other path and runs a ProxySession between the two. It tracks every session and every
 * pending connect, so that stop() closes everything and removes its socket file.
 */
import * as fs from 'node:fs';
import { native, type Listener, type RelayStats } from '../native';
import { closeFds } from '../events/fds';
import type { ProxyEvent } from '../events/events';
import { ProxySession } from './session';
import type { DaemonStatus, FrontendPosition } from '../events/status';
import { listenOn, type SocketOwner } from '../native/socket-path';
import { DEFAULT_NICE, DEFAULT_SPIN_US, type RelayHub } from './relay-hub';
import { RelayPool } from './relay-pool';
import type { FaultRuleSet } from '../faults';
import type { RingsMode } from './ring-tracker';
import { chooseRelayCpu } from './relay-placement';
import type { DeviceType, Dialect } from '../protocol';

export interface DaemonOptions {
  listenPath: string;
  connectPath: string;
  frontend?: FrontendPosition;
  /** how long to keep retrying the connect side for one accepted peer (the backend may be restarting) */
  connectTimeoutMs?: number;
  /** mode of the listening socket file */
  socketMode?: number;
  /** owner and group of the listening socket file (default: the daemon's) */
  socketOwner?: SocketOwner;
  emit: (e: ProxyEvent) => void;
  /** interpose vring eventfds on a native relay thread (default true) */
  interpose?: boolean;
  /** watch the peers' own eventfds instead of interposing them (needs `interpose`) */
  observe?: boolean;
  /** the observer thread at SCHED_FIFO 1 where allowed (default true; the CLI's --observe-priority decides) */
  observeRealtime?: boolean;
  /** relay thread polling time after each notification (µs; default DEFAULT_SPIN_US) */
  relaySpinUs?: number;
  /** relay thread niceness (default DEFAULT_NICE) */
  relayNice?: number;
  /**
   * pin the relay thread to this CPU; 'auto': where the peers' threads say (relay-placement.ts:
   * their one shared CPU, or next to the backend's busy-polling thread); undefined: the scheduler chooses
   */
  relayCpu?: number | 'auto';
  /** relay threads sessions shard over (default 1) */
  relayThreads?: number;
  /** keep HOST_NOTIFIER / INBAND_NOTIFICATIONS offered while interposing */
  keepFeatures?: boolean;
  /** bytes of each device-state transfer to keep for the recording (0 or undefined: count only) */
  keepDeviceState?: number;
  /** at most this many sessions at once, pending connects included (default DEFAULT_MAX_SESSIONS); more are refused */
  maxSessions?: number;
  /** at most this many accepted peers waiting for the connect side (default DEFAULT_MAX_PENDING); more are refused */
  maxPending?: number;
  /** a session whose peer holds fds in an unfinished message this long is ended (default HELD_FDS_TIMEOUT_MS) */
  heldFdsTimeoutMs?: number;
  /** only peers with these uids may connect to the listening socket (SO_PEERCRED); others are refused */
  allowUids?: number[];
  /** periodic per-vring stats events (0 or undefined: only at session end) */
  statsIntervalMs?: number;
  /** snapshot vrings at every relayed kick and call (needs interposition) */
  rings?: RingsMode;
  /** decode implementation-specific request codes as this family's (--dialect) */
  dialect?: Dialect;
  /** --device: what every session carries (otherwise inferred later: setSessionDevice) */
  device?: DeviceType;
  /** fault rules applied to every session (rules may be added and removed while it runs) */
  faults?: FaultRuleSet;
  /** the device's name (`--config`; else the listen socket's file name): rules with `device=` name it */
  name?: string;
  /**
   * Session ids: daemons of one process (`proxy --config` with several devices) share one
   * allocator, so an id names one session in the log, the recording and the metrics. Default:
   * this daemon's own, from 1.
   */
  sessionIds?: () => number;
  /** remove the listening socket file at stop (default true; false when attach restores a peer's socket there) */
  unlinkOnStop?: boolean;
  /** daemon-level notices (accept errors, connect retries given up) */
  notice?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;
}

const RETRY_MS = 100;
export const DEFAULT_MAX_SESSIONS = 1024;
export const DEFAULT_MAX_PENDING = 64;
export const HELD_FDS_TIMEOUT_MS = 30_000;
/** a refusal at a cap is said at most this often (with how many were refused since) */
const REFUSAL_NOTICE_MS = 10_000;
/** the backend's roles are known after the first message; its poller is busy once it forwards */
const PLACEMENT_DELAY_MS = 1000;
const PLACEMENT_ATTEMPTS = 5;

export class ProxyDaemon {
  private listener: Listener | undefined;
  private readonly sessions = new Set<ProxySession>();
  private readonly pending = new Map<number, NodeJS.Timeout>(); // accepted fd -> retry timer
  private nextId = 1;
  private stopped = false;
  private readonly relay: RelayPool | undefined;
  private readonly startedAt = Date.now();
  /** relay threads already placed by --relay-cpu auto */
  private readonly placed = new Set<number>();
  private readonly placeTimers = new Set<NodeJS.Timeout>();
  private heldFdsTimer: NodeJS.Timeout | undefined;
  /** connections refused at a cap since the last notice, and when that was */
  private refused = 0;
  private refusalToldMs = 0;

  constructor(private readonly opts: DaemonOptions) {
    if (opts.rings && opts.interpose === false)
      throw new Error('--rings needs the interposed eventfds: it snapshots the rings when the relay passes a kick or call (drop --no-interpose)');
    if (opts.observe && opts.interpose === false) throw new Error('--observe watches the eventfds from the relay thread: it cannot go with --no-interpose');
    if (opts.interpose !== false)
      this.relay = new RelayPool(
        opts.relayThreads ?? 1,
        opts.relaySpinUs ?? DEFAULT_SPIN_US,
        opts.relayNice ?? DEFAULT_NICE,
        typeof opts.relayCpu === 'number' ? opts.relayCpu : -1,
        opts.observe ?? false,
        opts.observeRealtime ?? true,
      );
  }

  /** The relay threads' own figures, summed (CPU time, relayed notifications, dropped events). */
  relayStats(): RelayStats | undefined {
    return this.relay?.stats();
  }

  /** Each relay thread's figures and the sessions it serves. */
  relayThreads(): { stats: RelayStats | undefined; sessions: number }[] {
    if (!this.relay) return [];
    const load = this.relay.load();
    return this.relay.threadStats().map((stats, i) => ({ stats, sessions: load[i] }));
  }

  /**
   * Listens (the socket created with `socket`'s mode and owner, or --mode's and ours: attach
   * passes the moved peer socket's) and starts the relay.
   */
  start(socket?: { mode: number; owner: SocketOwner }): void {
    const fd = listenOn(this.opts.listenPath, socket?.mode ?? this.opts.socketMode ?? 0o600, socket?.owner ?? this.opts.socketOwner);
    this.relay?.start();
    const timeout = this.opts.heldFdsTimeoutMs ?? HELD_FDS_TIMEOUT_MS;
    this.heldFdsTimer = setInterval(
      () => {
        const now = Date.now();
        for (const s of [...this.sessions]) s.checkHeldFds(now, timeout);
      },
      Math.min(5000, Math.max(50, timeout / 4)),
    );
    this.heldFdsTimer.unref();
    this.listener = new native.Listener(fd, (err, conn) => {
      if (err) return this.onAcceptError(err);
      if (this.acceptBackoffMs) {
        this.notice('info', 'accepting again');
        this.acceptBackoffMs = 0;
      }
      if (conn !== null) this.onAccepted(conn);
    });
  }

  /** How long accepting is paused after running out of fds (0: not paused). */
  private acceptBackoffMs = 0;

  /**
   * accept() failed. Out of fds (EMFILE, ENFILE) or memory, the listening socket stays readable:
   * polling it again at once would spin a CPU. Pause, and try again after a growing delay
   * (0.1 s to 2 s); the connection waits in the backlog. Said once per episode, not per try.
   */
  private onAcceptError(err: NodeJS.ErrnoException): void {
    if (!['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM'].includes(err.code ?? '')) {
      this.notice('error', `accept failed: ${err.message}`);
      return;
    }
    if (!this.acceptBackoffMs) this.notice('error', `accept failed: ${err.message}; pausing new connections until fds are free (sessions go on)`);
    this.acceptBackoffMs = Math.min(2000, Math.max(100, this.acceptBackoffMs * 2));
    this.listener?.pause();
    // kept referenced: with the listener paused, this timer may be what keeps the loop alive
    this.resumeTimer = setTimeout(() => this.listener?.resume(), this.acceptBackoffMs);
  }

  private resumeTimer: NodeJS.Timeout | undefined;

  /** Sessions, relay and rules as `vhostscope status` shows them (JSON-safe). */
  status(device: DeviceType = 'generic'): DaemonStatus {
    return {
      pid: process.pid,
      listen: this.opts.listenPath,
      connect: this.opts.connectPath,
      uptimeS: Math.round((Date.now() - this.startedAt) / 100) / 10,
      interpose: this.relay !== undefined,
      ...(this.relay && this.opts.observe ? { observe: true } : {}),
      pendingConnects: this.pending.size,
      sessions: [...this.sessions].map((s) => s.status(device)),
      ...(this.relay
        ? {
            relay: this.relay.stats(),
            relayThreads: this.relayThreads().map((t) => ({
              sessions: t.sessions,
              threadCpuNs: t.stats?.threadCpuNs ?? 0,
              notifications: t.stats?.notifications ?? 0,
            })),
          }
        : {}),
      rules: this.opts.faults?.list() ?? [],
    };
  }

  /** Channels paused by back-pressure now, over every session. */
  /** Tells a session which device it carries (inferred or --device). */
  setSessionDevice(session: number, device: DeviceType): void {
    for (const s of this.sessions) if (s.id === session) s.setDevice(device);
  }

  pausedChannels(): number {
    let n = 0;
    for (const s of this.sessions) n += s.pausedChannels;
    return n;
  }

  get activeSessions(): readonly ProxySession[] {
    return [...this.sessions];
  }

  private notice(level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>): void {
    this.opts.notice?.(level, msg, fields);
  }

  private onAccepted(acceptedFd: number): void {
    if (this.stopped) {
      native.close(acceptedFd);
      return;
    }
    if (this.opts.allowUids?.length) {
      let cred: { pid: number; uid: number } | undefined;
      try {
        cred = native.peerCred(acceptedFd);
      } catch {
        /* no credentials: refused below */
      }
      if (!cred || !this.opts.allowUids.includes(cred.uid)) {
        this.notice(
          'warn',
          `refused a connection on ${this.opts.listenPath} from ${cred ? `pid ${cred.pid} uid ${cred.uid}` : 'a peer without credentials'}: --allow-uid ${this.opts.allowUids.join(',')}`,
          cred ? { pid: cred.pid, uid: cred.uid } : {},
        );
        native.close(acceptedFd);
        return;
      }
    }
    const cap = this.atCap();
    if (cap) {
      native.close(acceptedFd);
      this.refused++;
      if (Date.now() - this.refusalToldMs >= REFUSAL_NOTICE_MS) {
        this.notice('warn', `refused ${this.refused} connection${this.refused > 1 ? 's' : ''} on ${this.opts.listenPath}: ${cap}`, { refused: this.refused });
        this.refused = 0;
        this.refusalToldMs = Date.now();
      }
      return;
    }
    const deadline = Date.now() + (this.opts.connectTimeoutMs ?? 30_000);
    let warned = false;
    const attempt = (): void => {
      this.pending.delete(acceptedFd);
      if (this.stopped) return;
      let connFd: number;
      try {
        connFd = native.connectUnix(this.opts.connectPath);
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (Date.now() >= deadline) {
          this.notice('error', `could not connect to ${this.opts.connectPath}: ${e.message}; closing the accepted connection`);
          closeFds([acceptedFd]);
          return;
        }
        if (!warned) {
          warned = true;
          this.notice('warn', `connect to ${this.opts.connectPath} failed (${e.code}); retrying`);
        }
        this.pending.set(acceptedFd, setTimeout(attempt, RETRY_MS));
        return;
      }
      const id = this.opts.sessionIds ? this.opts.sessionIds() : this.nextId++;
      let session: ProxySession;
      const relay = this.relay?.assign();
      try {
        session = new ProxySession(
          {
            id,
            listenPath: this.opts.listenPath,
            connectPath: this.opts.connectPath,
            frontend: this.opts.frontend ?? 'auto',
            emit: this.opts.emit,
            onClosed: (s) => {
              this.sessions.delete(s);
              relay?.release();
            },
            ...(relay ? { relay: relay.hub } : {}),
            keepFeatures: this.opts.keepFeatures ?? false,
            statsIntervalMs: this.opts.statsIntervalMs ?? 0,
            ...(this.opts.faults ? { faults: this.opts.faults } : {}),
            ...(this.opts.name !== undefined ? { deviceName: this.opts.name } : {}),
            ...(this.opts.rings ? { rings: this.opts.rings } : {}),
            ...(this.opts.dialect ? { dialect: this.opts.dialect } : {}),
            ...(this.opts.device ? { device: this.opts.device } : {}),
            ...(this.opts.keepDeviceState ? { keepDeviceState: this.opts.keepDeviceState } : {}),
          },
          acceptedFd,
          connFd,
        );
      } catch (err) {
        relay?.release();
        // the session closed its fds; the daemon and its other sessions go on
        this.notice('error', `session ${id} could not start: ${(err as Error).message}; its connections are closed`, { session: id });
        return;
      }
      if (!session.isClosed) this.sessions.add(session);
      else relay?.release();
      if (this.opts.relayCpu === 'auto' && relay && !this.placed.has(relay.thread)) this.placeRelay(session, relay.thread, relay.hub);
    };
    attempt();
  }

  /** Why a new connection is refused now (a cap is reached), or undefined. */
  private atCap(): string | undefined {
    const maxSessions = this.opts.maxSessions ?? DEFAULT_MAX_SESSIONS;
    const maxPending = this.opts.maxPending ?? DEFAULT_MAX_PENDING;
    if (this.pending.size >= maxPending)
      return `${this.pending.size} connections are already waiting for ${this.opts.connectPath} (--max-pending ${maxPending})`;
    if (this.sessions.size + this.pending.size >= maxSessions)
      return `${this.sessions.size + this.pending.size} sessions are open (--max-sessions ${maxSessions})`;
    return undefined;
  }

  /**
   * --relay-cpu auto: once the session's roles are known, choose the relay's CPU from the peers'
   * threads (once per relay thread: it serves every session it is given).
   */
  private placeRelay(session: ProxySession, thread: number, hub: RelayHub, attempt = 0): void {
    // a back-end polls once it forwards, and a busy machine may hide its poller for a moment:
    // looked for again, 1, 2, 4, 8 and 16 s apart, while the session lives
    const timer = setTimeout(
      () => {
        this.placeTimers.delete(timer);
        const be = session.backendPeer;
        if (this.stopped || this.placed.has(thread) || session.isClosed) return;
        if (!be) return this.retryPlacement(session, thread, hub, attempt);
        void chooseRelayCpu({ backendPid: be.pid, frontendPid: session.frontendPeer?.pid }).then((p) => {
          if (this.stopped || this.placed.has(thread)) return;
          if (!p || !hub.setCpu(p.cpu, p.yieldWhileSpinning)) return this.retryPlacement(session, thread, hub, attempt);
          this.placed.add(thread);
          const which = this.relay && this.relay.threads > 1 ? `relay thread ${thread}` : 'relay thread';
          const where = p.cpu < 0 ? 'left to the scheduler' : `moved to CPU ${p.cpu}`;
          this.notice('info', `${which} ${where}, ${p.reason} (--relay-cpu N or none to choose)`, { relayCpu: p.cpu, relayThread: thread });
        });
      },
      attempt === 0 ? PLACEMENT_DELAY_MS : PLACEMENT_DELAY_MS << attempt,
    );
    timer.unref();
    this.placeTimers.add(timer);
  }

  private retryPlacement(session: ProxySession, thread: number, hub: RelayHub, attempt: number): void {
    if (attempt < PLACEMENT_ATTEMPTS - 1) this.placeRelay(session, thread, hub, attempt + 1);
  }

  /** Closes every session and pending connection, the listener, and removes the socket file. */
  stop(reason = 'daemon stopping'): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.resumeTimer);
    clearInterval(this.heldFdsTimer);
    this.listener?.close();
    this.listener = undefined;
    for (const [fd, timer] of this.pending) {
      clearTimeout(timer);
      native.close(fd);
    }
    this.pending.clear();
    for (const t of this.placeTimers) clearTimeout(t);
    for (const s of [...this.sessions]) s.close(reason, 'proxy');
    this.relay?.stop();
    if (this.opts.unlinkOnStop === false) return;
    try {
      fs.unlinkSync(this.opts.listenPath);
    } catch {
      /* already gone */
    }
  }
}
