/**
 * The daemon's control socket (`vhostscope status | tail | rules`). It tracks its connections,
 * so that close() ends every tail and removes the socket file; a client that sends garbage gets
 * an error line and is closed, never more. Mode 0600 like the proxy's own socket.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import { parseFaultSpec, type FaultRule, type FaultRuleSet } from '../faults';
import { eventFilter } from '../log/filter';
import { eventRecord } from '../log/format';
import type { DaemonStatus } from '../events/status';
import type { ProxyEvent } from '../events/events';
import { listenOn } from '../native/socket-path';
import { native } from '../native';
import type { DeviceType } from '../protocol';
import { LiveRequests } from './live-requests';
import type { ControlReply, ControlRequest, MarkResult } from './protocol';

export interface ControlDeps {
  status(device?: DeviceType): DaemonStatus;
  /** undefined: the daemon runs without fault rules support? (always present here) */
  rules: FaultRuleSet;
  /** called for every rule change, so the daemon can log it */
  onRulesChanged?: (what: string) => void;
  /** `vhostscope mark`: log the text and pin the recording around now */
  mark?: (text: string) => MarkResult;
}

const MAX_REQUEST_BYTES = 1 << 20;
/** a tail that cannot keep up is dropped rather than buffering without bound */
const MAX_TAIL_BACKLOG = 8 << 20;

export class ControlServer {
  private readonly server: net.Server;
  private readonly conns = new Set<net.Socket>();
  private readonly tails = new Set<(e: ProxyEvent) => void>();
  private readonly requests = new LiveRequests();
  private closed = false;

  constructor(
    readonly path: string,
    private readonly deps: ControlDeps,
  ) {
    const fd = listenOn(path, 0o600);
    this.server = net.createServer((sock) => this.onConnection(sock));
    this.server.on('error', () => undefined);
    try {
      this.server.listen({ fd });
    } catch (err) {
      native.close(fd);
      throw err;
    }
  }

  /** Every proxy event goes through here (to the tails). */
  onEvent(e: ProxyEvent): void {
    this.requests.onEvent(e);
    for (const t of this.tails) t(e);
  }

  /** The device a session carries, once known: names its requests' operations. */
  setDevice(session: number, device: DeviceType): void {
    this.requests.setDevice(session, device);
  }

  private onConnection(sock: net.Socket): void {
    if (this.closed) return void sock.destroy();
    this.conns.add(sock);
    sock.on('close', () => this.conns.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = '';
    sock.setEncoding('utf8'); // a character split across chunks stays whole (a mark's text)
    const onData = (chunk: string): void => {
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES) return this.fail(sock, 'request too long');
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      sock.off('data', onData);
      let req: ControlRequest;
      try {
        req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
      } catch (err) {
        return this.fail(sock, `not JSON: ${(err as Error).message}`);
      }
      this.handle(sock, req);
    };
    sock.on('data', onData);
  }

  private send(sock: net.Socket, reply: ControlReply | Record<string, unknown>): boolean {
    return sock.write(JSON.stringify(reply) + '\n');
  }

  private fail(sock: net.Socket, error: string): void {
    this.send(sock, { ok: false, error });
    sock.end();
  }

  private handle(sock: net.Socket, req: ControlRequest): void {
    try {
      switch (req?.cmd) {
        case 'status':
          this.send(sock, { ok: true, result: this.deps.status(req.device) });
          return void sock.end();
        case 'requests':
          this.send(sock, { ok: true, result: this.requests.snapshot(native.monotonicNs()) });
          return void sock.end();
        case 'rules-list':
          this.send(sock, { ok: true, result: this.deps.rules.list() });
          return void sock.end();
        case 'rules-add': {
          // all or nothing: every rule is validated before any becomes active
          const rules: FaultRule[] = [...(req.specs ?? []).flatMap((s) => parseFaultSpec(String(s))), ...(req.rules ?? [])];
          if (!rules.length) return this.fail(sock, 'no rules given');
          const added: string[] = [];
          try {
            for (const r of rules) added.push(this.deps.rules.add(r).id);
          } catch (err) {
            for (const id of added) this.deps.rules.remove(id);
            throw err;
          }
          const list = this.deps.rules.list().filter((r) => added.includes(r.id));
          this.deps.onRulesChanged?.(`rules added over the control socket: ${list.map((r) => `${r.id}: ${r.text}`).join('; ')}`);
          this.send(sock, { ok: true, result: list });
          return void sock.end();
        }
        case 'rules-remove': {
          const removed = (req.ids ?? []).map((id) => this.deps.rules.remove(String(id)));
          const missing = (req.ids ?? []).filter((_id, i) => !removed[i]);
          const gone = removed.filter((r) => r !== undefined);
          if (gone.length) this.deps.onRulesChanged?.(`rules removed over the control socket: ${gone.map((r) => `${r.id}: ${r.text}`).join('; ')}`);
          if (missing.length)
            this.send(sock, {
              ok: false,
              error: `no rule with id ${missing.join(', ')}${gone.length ? ` (removed ${gone.map((r) => r.id).join(', ')})` : ''}`,
            });
          else this.send(sock, { ok: true, result: gone.map((r) => ({ id: r.id, text: r.text, applied: r.applied })) });
          return void sock.end();
        }
        case 'tail':
          return this.tail(sock, req);
        case 'mark': {
          const text = String(req.text ?? '').slice(0, 1000);
          if (!this.deps.mark) return this.fail(sock, 'this daemon takes no marks');
          this.send(sock, { ok: true, result: this.deps.mark(text) });
          return void sock.end();
        }
        default:
          return this.fail(
            sock,
            `unknown command ${JSON.stringify((req as { cmd?: unknown })?.cmd)} (status, requests, tail, rules-list, rules-add, rules-remove, mark)`,
          );
      }
    } catch (err) {
      this.fail(sock, (err as Error).message);
    }
  }

  private tail(sock: net.Socket, req: Extract<ControlRequest, { cmd: 'tail' }>): void {
    const keep = eventFilter(req.filter ?? {}, 0n);
    const device = req.device ?? 'generic';
    const fn = (e: ProxyEvent): void => {
      if (!keep(e)) return;
      if (sock.writableLength > MAX_TAIL_BACKLOG) {
        this.fail(sock, 'tail fell behind by more than 8 MiB: closed');
        this.tails.delete(fn);
        return;
      }
      this.send(sock, eventRecord(e, device));
    };
    this.tails.add(fn);
    sock.on('close', () => this.tails.delete(fn));
    this.send(sock, { ok: true, result: { tailing: true } });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.tails.clear();
    for (const c of this.conns) c.destroy();
    this.server.close();
    try {
      fs.unlinkSync(this.path);
    } catch {
      /* gone already */
    }
  }
}
