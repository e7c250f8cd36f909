/**
 * Runs `vhostscope proxy` as its own process (exactly as a user does), with the JSON log in a
 * file, and reads that log back for assertions.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'vitest';
import { requestLatency } from '../../../src/analysis/request-latency';
import type { StatsJson } from '../../../src/views/stats';
import { Peer, waitForSocket } from '../../../src/demo/process';
import { CLI, startProxy } from '../../../lab/proxy-process';
import { readRecording, recordingEvents } from '../../../src/recording/reader';
import { decodeBuffer, type BufferHeader } from '../../../src/rings/headers';
import type { DeviceType } from '../../../src/protocol';

export { CLI };

export interface LogRecord {
  event?: string;
  session?: number;
  dir?: string;
  request?: string;
  flags?: string;
  size?: number;
  fds?: string[];
  fdInfo?: { kind: string; size?: number; memfdName?: string }[];
  summary?: string;
  payload?: Record<string, unknown>;
  findings?: { rule: string }[];
  channel?: string;
  injected?: boolean;
  absorbed?: boolean;
  interposed?: boolean;
  reason?: string;
  level?: number;
  msg?: string;
  [k: string]: unknown;
}

export class ProxyProcess {
  peer: Peer | undefined;
  readonly logFile: string;
  readonly recordFile: string;

  /**
   * @param saveAs with VHS_SAVE_RECORDINGS=DIR in the environment, the session's recording is
   *   kept as DIR/<saveAs>.vhsrec once the proxy has stopped (scripts/make-recordings.sh)
   */
  /**
   * @param allowedErrors error-level log lines the test provokes on purpose (matched on msg);
   *   any other, any line outside the JSON log (a crash, a warning of node's) and any exit status
   *   but 0 fail the test at stop()
   */
  constructor(
    readonly workDir: string,
    readonly extraArgs: string[] = [],
    readonly saveAs?: string,
    readonly allowedErrors: readonly RegExp[] = [],
  ) {
    this.logFile = path.join(workDir, 'proxy.log');
    this.recordFile = path.join(workDir, 'session.vhsrec');
  }

  /** A ProxyStarter for the lab scenarios. */
  starter = async (listen: string, connect: string): Promise<void> => {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} missing: run "npm run build" (tsc) first`);
    this.peer = await startProxy({ listen, connect, args: ['--record', this.recordFile, ...this.extraArgs], logFile: this.logFile });
  };

  /**
   * One daemon for several devices (`proxy --config`, one recording file for all of them, one
   * session-id counter): resolves once every device's socket listens.
   */
  async startConfig(devices: { name: string; listen: string; connect: string; fault?: string[] }[]): Promise<void> {
    if (!fs.existsSync(CLI)) throw new Error(`${CLI} missing: run "npm run build" (tsc) first`);
    const config = path.join(this.workDir, 'vhostscope.json');
    fs.writeFileSync(config, JSON.stringify({ record: this.recordFile, devices }, null, 2));
    this.peer = new Peer(process.execPath, [CLI, 'proxy', '--config', config, '--json', ...this.extraArgs], {
      name: 'proxy',
      logFile: this.logFile,
      timeoutMs: 600_000,
    });
    for (const d of devices) await waitForSocket(d.listen, 20_000, this.peer);
  }

  records(): LogRecord[] {
    const text = fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
    return text
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as LogRecord);
  }

  messages(): LogRecord[] {
    return this.records().filter((r) => r.event === 'message');
  }

  /**
   * What the daemon said that no test should have to read past: error-level log lines other than
   * the allowed ones, and anything outside its JSON log.
   */
  problems(): string[] {
    const text = fs.existsSync(this.logFile) ? fs.readFileSync(this.logFile, 'utf8') : '';
    const out: string[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      if (!line.startsWith('{')) {
        out.push(`not a log record: ${line}`);
        continue;
      }
      const r = JSON.parse(line) as LogRecord;
      if ((r.level ?? 0) >= 50 && !this.allowedErrors.some((re) => re.test(String(r.msg ?? r.reason ?? '')))) out.push(`error: ${r.msg ?? r.reason ?? line}`);
    }
    return out;
  }

  /**
   * SIGTERM: the daemon closes every session and removes its socket. Its exit status must be 0
   * and its log free of unexpected errors: checked here (softly, so that an earlier failure of
   * the test is still the one reported first), whoever calls stop().
   */
  async stop(): Promise<number | null> {
    if (!this.peer) return null;
    const peer = this.peer;
    this.peer = undefined;
    peer.kill('SIGTERM');
    const rc = await peer.waitExit(10_000);
    const dir = process.env.VHS_SAVE_RECORDINGS;
    if (dir && this.saveAs && fs.existsSync(this.recordFile)) fs.copyFileSync(this.recordFile, path.join(dir, `${this.saveAs}.vhsrec`));
    expect.soft({ exit: rc, signal: peer.status.signal }, `the daemon's exit (${this.logFile})`).toEqual({ exit: 0, signal: null });
    expect.soft(this.problems(), `the daemon's log (${this.logFile})`).toEqual([]);
    return rc;
  }
}

export interface VringFigures {
  vring: number;
  kicks: number;
  calls: number;
  errs: number;
  latencyUs?: { count: number; p50: number; p99: number; max: number };
  unpaired?: number;
}

/** Checks of the interposed relay at session end: both sides of every pair saw the same counts. */
export function sessionEnd(
  proxy: ProxyProcess,
  session = 1,
): { vrings: VringFigures[]; relayPairs: { vring: number; kind: string; read: number; written: number }[]; reason: string } {
  const end = proxy.records().find((r) => r.event === 'session-end' && r.session === session);
  if (!end) throw new Error(`no session-end for session ${session} in ${proxy.logFile}`);
  return end as never;
}

export function vring(proxy: ProxyProcess, index: number, session = 1): VringFigures {
  return sessionEnd(proxy, session).vrings.find((v) => v.vring === index) ?? { vring: index, kicks: 0, calls: 0, errs: 0 };
}

/**
 * The recording agrees with the live log: the same messages in the same order, every one a
 * known request that validates, and the notifications the session end counted.
 */
export function checkRecording(proxy: ProxyProcess, allowedRules: readonly string[] = []): { messages: number; notifications: number } {
  const scan = readRecording(proxy.recordFile);
  if (scan.torn) throw new Error(`recording torn: ${scan.torn.reason}`);
  const events = recordingEvents(scan.records, { notifications: true });
  const recorded = events.filter((e) => e.type === 'message');
  const logged = proxy.messages();
  const problems: string[] = [];
  if (recorded.length !== logged.length) problems.push(`recording has ${recorded.length} messages, the log ${logged.length}`);
  recorded.forEach((m, i) => {
    if (m.type !== 'message') return;
    if (!m.decoded.known) problems.push(`#${i} unknown request ${m.decoded.request}`);
    if (m.findings.some((f) => !allowedRules.includes(f.rule))) problems.push(`#${i} ${m.decoded.name}: ${m.findings.map((f) => f.rule).join(',')}`);
    if (logged[i] && logged[i].request !== m.decoded.name) problems.push(`#${i}: recording ${m.decoded.name}, log ${logged[i].request}`);
  });
  const notifications = events.filter((e) => e.type === 'notification').length;
  const ends = proxy.records().filter((r) => r.event === 'session-end');
  const counted = ends.flatMap((e) => (e.vrings as VringFigures[]) ?? []).reduce((n, v) => n + v.kicks + v.calls + v.errs, 0);
  if (notifications !== counted) problems.push(`recording has ${notifications} notifications, the session ends counted ${counted}`);
  if (problems.length) throw new Error(`recording ${proxy.recordFile} disagrees with the log:\n${problems.join('\n')}`);
  return { messages: recorded.length, notifications };
}

/** Every decoded buffer header in the recording's ring snapshots (proxy --rings=headers). */
export function ringHeaders(proxy: ProxyProcess, device: DeviceType): { session: number; vring: number; kind: string; header: BufferHeader }[] {
  const events = recordingEvents(readRecording(proxy.recordFile).records);
  const out: { session: number; vring: number; kind: string; header: BufferHeader }[] = [];
  for (const e of events) {
    if (e.type !== 'ring') continue;
    for (const entry of e.snapshot.entries) {
      const header = decodeBuffer(entry, { device, vring: e.vring, kind: e.snapshot.kind });
      if (header) out.push({ session: e.session, vring: e.vring, kind: e.snapshot.kind, header });
    }
  }
  return out;
}

/** The ring snapshots of kind "base" with the GET_VRING_BASE answer next to the indices read from the ring. */
export function ringBases(proxy: ProxyProcess): { vring: number; base?: number; availIdx: number; usedIdx: number; error?: string }[] {
  return recordingEvents(readRecording(proxy.recordFile).records)
    .filter((e) => e.type === 'ring' && e.snapshot.kind === 'base')
    .map((e) =>
      e.type === 'ring'
        ? { vring: e.vring, base: e.base, availIdx: e.snapshot.availIdx, usedIdx: e.snapshot.usedIdx, ...(e.snapshot.error ? { error: e.snapshot.error } : {}) }
        : (undefined as never),
    );
}

/** `vhostscope stats --json` of the session's recording, run as a user runs it. */
export function statsJsonOf(proxy: ProxyProcess): StatsJson {
  return JSON.parse(execFileSync(process.execPath, [CLI, 'stats', '--json', proxy.recordFile], { encoding: 'utf8' })) as StatsJson;
}

/**
 * Per-request latency checked against what the snapshots list: every chain a kick submitted on
 * `vring` as `op` completed exactly once (the guest ended cleanly), no latency is negative or
 * longer than the session, and the notification figure never pairs across an idle gap.
 */
export function expectRequestsAccountedFor(proxy: ProxyProcess, device: DeviceType, vring: number, ops: Record<string, (h: BufferHeader) => boolean>): void {
  const stats = statsJsonOf(proxy).sessions[0];
  const req = stats.requests!;
  expect(req.method).toBe('rings');
  const headers = ringHeaders(proxy, device).filter((h) => h.vring === vring && h.kind === 'kick');
  const events = recordingEvents(readRecording(proxy.recordFile).records);
  const sessionUs = Number(events.at(-1)!.ts - events[0].ts) / 1000;
  for (const [op, isOp] of Object.entries(ops)) {
    const submitted = headers.filter((h) => isOp(h.header)).length;
    const completed = req.operations.filter((o) => o.vring === vring && o.op.startsWith(op)).reduce((n, o) => n + o.count, 0);
    expect(submitted, `${op} submitted`).toBeGreaterThan(0);
    expect(completed, `${op}: completed requests vs chains the kicks listed`).toBe(submitted);
  }
  for (const o of req.operations) {
    expect(o.latencyUs.p50).toBeGreaterThanOrEqual(0);
    expect(o.latencyUs.max, `${o.op} max`).toBeLessThan(sessionUs);
    expect(o.latencyUs.p50).toBeLessThanOrEqual(o.latencyUs.p99);
  }
  expect(req.outstanding.filter((o) => o.vring === vring)).toEqual([]);
  // no request of a guest's boot takes a second: one whose figure says so was polled for (SeaBIOS),
  // its completion seen only by a later snapshot, and it is kept out of the percentiles
  for (const r of requestLatency(readRecording(proxy.recordFile).records)[0].requests) {
    if (r.latencyNs > 1e9) expect(r.unbounded, `${r.op} head ${r.head}: ${r.latencyNs} ns`).toBe(true);
  }
  for (const o of req.operations) expect(o.latencyUs.max, `${o.op}: the slowest request with a latency`).toBeLessThan(1e6);
  for (const v of stats.notifications) if (v.latencyUs) expect(v.latencyUs.max, `vring ${v.vring} kick→next call`).toBeLessThanOrEqual(1e6);
  // vhostscope's own time, shown apart: one timed pick-up per burst the relay read, so at least
  // one and never more than the notifications it relayed
  const relayed = stats.notifications.find((v) => v.vring === vring)!;
  const transit = (stats.relayTransit ?? []).filter((t) => t.vring === vring);
  expect(transit.map((t) => t.kind).sort()).toEqual(['call', 'kick']);
  for (const t of transit) {
    expect(t.count, `${t.kind} transits`).toBeGreaterThan(0);
    expect(t.count, `${t.kind} transits`).toBeLessThanOrEqual(t.kind === 'kick' ? relayed.kicks : relayed.calls);
    expect(t.p50Ns).toBeLessThanOrEqual(t.p99Ns);
    expect(t.p99Ns).toBeLessThanOrEqual(t.maxNs);
    expect(t.meanNs).toBeLessThanOrEqual(t.maxNs);
  }
}

/** `vhostscope check --json` on a recording: the findings' ids and details (check exits 1 when it finds any). */
export function checkFindings(file: string): { id: string; detail: string }[] {
  const r = spawnSync(process.execPath, [CLI, 'check', '--json', file], { encoding: 'utf8' });
  if (r.status !== 0 && r.status !== 1) throw new Error(`vhostscope check exited ${r.status}: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { id: string; detail: string });
}
