/**
 * The soak: `vhostscope proxy` (its own process) carrying many concurrent sessions between
 * synthetic peers in this process, under everything that makes a long-running daemon grow or
 * fall over, while its fd count and RSS are sampled:
 *
 * - every session does a handshake with a memfd memory table and interposed kick/call eventfds,
 *   and the daemon snapshots its rings (--rings=headers) and records to a flight-recorder
 *   directory that rotates (--keep, --segment-size);
 * - notification floods: every tick each frontend kicks both vrings and each backend calls them;
 * - MSI-X churn: every tick each frontend re-sends SET_VRING_CALL with a new eventfd (as QEMU
 *   does when the guest masks and unmasks a vector): thousands per second over all sessions;
 * - request/reply traffic: a GET_FEATURES round trip per session per tick;
 * - a backend that stops reading for the middle third of the run while its frontend sends bulk
 *   (back-pressure must hold it in the frontend, not in the daemon);
 * - session churn: one session is closed and a new one opened every few seconds;
 * - a Prometheus scrape of the daemon at every sample.
 *
 * At the end: every control message reached the other side and the recording, every relay pair
 * wrote what it read, and the fd count and RSS did not grow. bench/soak.js runs it for 30
 * minutes; test/e2e/soak.test.ts runs a short one in CI.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { native, type Channel } from '../src/native';
import { encodeMessage, Request } from '../src/protocol';
import { listSegments } from '../src/recording/flight';
import { readRecording } from '../src/recording/reader';
import type { SessionEndRecord } from '../src/recording/records';
import { freePort, sleep } from '../src/demo/process';
import { startProxy } from './proxy-process';
import { frontendHandshake, syntheticBackend, u64, type BackendConn } from './synthetic-peers';

export interface SoakOptions {
  workDir: string;
  seconds: number;
  sessions: number;
  /** ms between ticks (each tick: kicks, calls, a round trip and a SET_VRING_CALL per session) */
  tickMs?: number;
  /** ms between daemon samples */
  sampleMs?: number;
  /** ms between closing one session and opening a new one (0: no churn) */
  churnMs?: number;
  /** flight recorder bound (must keep everything: the check counts every recorded message) */
  keep?: string;
  log?: (line: string) => void;
  /** node options for the daemon, e.g. ['--cpu-prof', '--cpu-prof-dir=DIR'] to profile it */
  daemonNodeArgs?: string[];
}

export interface SoakSample {
  t: number;
  fds: number;
  rssMiB: number;
  scrapeBytes: number;
  /** from the daemon's own metrics: V8 heap committed and used, memory outside it (MiB) */
  heapTotalMiB: number;
  heapUsedMiB: number;
  /** glibc's heap (vhostscope_malloc_bytes): in use, and free but resident until trimmed */
  mallocInUseMiB: number;
  mallocFreeMiB: number;
  externalMiB: number;
  /** how old the scraped figures were (0: fresh; else the daemon's loop was busy for that long) */
  staleMs: number;
}

export interface SoakResult {
  ok: boolean;
  problems: string[];
  samples: SoakSample[];
  lines: string[];
  figures: Record<string, number>;
}

/** SET_CONFIG with a 256-byte config: bulk traffic for the stalled session (no reply asked) */
const BULK = encodeMessage(Request.SET_CONFIG, 1, Buffer.alloc(12 + 256));

interface SoakSession {
  fe: Channel;
  be: BackendConn;
  kicks: number[];
  /** the frontend's copies of its first call eventfds */
  calls: number[];
  sent: number;
  repliesExpected: number;
  replies: number;
  open: boolean;
  /** chosen for replacement: it sends nothing more, and is closed once all it sent has arrived */
  draining?: number;
}

function fdCount(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

/**
 * One Prometheus scrape by curl (10 s timeout): the text ('' when it failed), curl's own time
 * for it, and how old the figures were when the daemon's loop was too busy to refresh them
 * (x-vhostscope-stale-ms; 0 when fresh).
 */
function scrape(port: number): Promise<{ text: string; seconds: number; staleMs: number }> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '-m', '10', '-D', '-', '-w', '\n%{time_total}', `http://127.0.0.1:${port}/metrics`], { maxBuffer: 64 << 20 }, (err, stdout) => {
      const cut = stdout.lastIndexOf('\n');
      const seconds = Number(stdout.slice(cut + 1)) || 10;
      const headEnd = stdout.indexOf('\r\n\r\n');
      const head = headEnd >= 0 ? stdout.slice(0, headEnd) : '';
      const staleMs = Number(/^x-vhostscope-stale-ms:\s*(\d+)/im.exec(head)?.[1] ?? 0);
      resolve({ text: err || headEnd < 0 ? '' : stdout.slice(headEnd + 4, cut), seconds, staleMs });
    });
  });
}

function rssMiB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return -1;
  }
}

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

export async function runSoak(o: SoakOptions): Promise<SoakResult> {
  const log = o.log ?? (() => undefined);
  const lines: string[] = [];
  const say = (l: string): void => {
    lines.push(l);
    log(l);
  };
  const tickMs = o.tickMs ?? 10;
  const fe = path.join(o.workDir, 'fe.sock');
  const be = path.join(o.workDir, 'be.sock');
  const recDir = path.join(o.workDir, 'rec');
  const metricsPort = await freePort();

  // the backend side: answers what needs an answer, keeps only the current eventfds
  const conns: BackendConn[] = [];
  const backend = syntheticBackend(native.listenUnix(be, 256, 0o600), (c) => conns.push(c));

  const proxy = await startProxy({
    listen: fe,
    connect: be,
    args: [
      '--record',
      `${recDir}/`,
      '--keep',
      o.keep ?? '16GiB',
      '--segment-size',
      '1MiB',
      '--rings=headers',
      '--stats-interval',
      '0',
      '--metrics',
      `127.0.0.1:${metricsPort}`,
    ],
    logFile: path.join(o.workDir, 'proxy.log'),
    timeoutMs: (o.seconds + 300) * 1000,
    ...(o.daemonNodeArgs ? { nodeArgs: o.daemonNodeArgs } : {}),
  });

  const sessions: SoakSession[] = [];
  const open = async (): Promise<SoakSession> => {
    const before = conns.length;
    const s: SoakSession = {
      fe: undefined as unknown as Channel,
      be: undefined as unknown as BackendConn,
      kicks: [],
      calls: [],
      sent: 0,
      repliesExpected: 0,
      replies: 0,
      open: true,
    };
    s.fe = new native.Channel(
      native.connectUnix(fe),
      65536,
      () => s.replies++,
      () => undefined,
    );
    s.fe.start();
    const send = (m: Buffer, fds: number[] = [], reply = false): void => {
      s.fe.send(m, fds);
      s.sent++;
      if (reply) s.repliesExpected++;
    };
    const hs = frontendHandshake(2);
    s.kicks = hs.kicks;
    s.calls = hs.calls;
    send(hs.messages[0]!.msg, hs.messages[0]!.fds, hs.messages[0]!.reply);
    // the backend connection of this session: sessions are opened one at a time
    if (!(await until(() => conns.length > before, 10_000))) throw new Error('soak: the daemon did not connect a session to the backend');
    s.be = conns[conns.length - 1]!;
    for (const m of hs.messages.slice(1)) send(m.msg, m.fds, m.reply);
    sessions.push(s);
    return s;
  };
  const close = (s: SoakSession): void => {
    s.open = false;
    s.fe.close();
    for (const k of [...s.kicks, ...s.calls]) native.close(k);
  };

  for (let i = 0; i < o.sessions; i++) await open();
  await sleep(1000);
  const stalled = sessions[0]!;
  const samples: SoakSample[] = [];
  let maxScrapeS = 0;
  const t0 = Date.now();
  let kicksSent = 0;
  let callsSent = 0;
  let churned = 0;
  /** victims whose messages did not all arrive within 60 s (a problem) */
  let stuck = 0;
  let bulk = 0;
  let lastSample = 0;
  let lastChurn = t0;
  let tick = 0;
  let pausedAt = -1;
  while (Date.now() - t0 < o.seconds * 1000) {
    const phase = (Date.now() - t0) / (o.seconds * 1000);
    // the middle third: the stalled session's backend stops reading; its frontend pushes bulk
    if (phase >= 1 / 3 && phase < 2 / 3 && !stalled.be.paused) {
      stalled.be.ch.pause();
      stalled.be.paused = true;
      pausedAt = Date.now();
    } else if (phase >= 2 / 3 && stalled.be.paused) {
      stalled.be.ch.start();
      stalled.be.paused = false;
    }
    for (const s of sessions) {
      if (!s.open || s.draining !== undefined) continue;
      for (const k of s.kicks) {
        native.eventfdWrite(k, 1);
        kicksSent++;
      }
      // a request that takes a reply once the last one was answered: a front-end waits for its
      // reply (QEMU blocks on it) and never has two outstanding on the main channel; an open loop
      // here measured the machine, not the daemon (2 vCPUs shared with this driver fell 60 s behind)
      if (s.replies === s.repliesExpected) {
        s.fe.send(encodeMessage(Request.GET_FEATURES, 1));
        s.sent++;
        s.repliesExpected++;
      }
      // (not while the daemon has not taken what this frontend sent: an eventfd queued with a
      // message stays open in this process until it is sent, and a real QEMU would be blocked)
      if (!s.be.paused && s.fe.queuedBytes === 0) {
        s.fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(tick % 2)), [native.eventfd(0)]);
        s.sent++;
      }
      if (!s.be.paused) {
        for (const c of s.be.calls.values()) {
          native.eventfdWrite(c, 1);
          callsSent++;
        }
      }
    }
    if (stalled.be.paused) {
      for (let i = 0; i < 100 && stalled.fe.queuedBytes < 4 << 20; i++) {
        stalled.fe.send(BULK);
        stalled.sent++;
        bulk++;
      }
    }
    // session churn: a victim stops sending, and once everything it sent has arrived (never
    // cut short: the accounting stays exact) it is closed and a new session takes its place
    if (o.churnMs && Date.now() - lastChurn >= o.churnMs) {
      lastChurn = Date.now();
      const victim = sessions.find((s) => s.open && s.draining === undefined && s !== stalled);
      if (victim) victim.draining = Date.now();
    }
    for (const v of sessions.filter((s) => s.open && s.draining !== undefined)) {
      if (v.fe.queuedBytes === 0 && v.replies === v.repliesExpected && v.be.got === v.sent) {
        close(v);
        await open();
        churned++;
      } else if (Date.now() - v.draining! > 60_000) {
        stuck++;
        if (stuck <= 3)
          say(
            `stuck: a replaced session after 60 s: frontend queue ${v.fe.queuedBytes} B, replies ${v.replies} of ${v.repliesExpected}, backend got ${v.be.got} of ${v.sent}`,
          );
        close(v);
      }
    }
    tick++;
    if (Date.now() - lastSample >= (o.sampleMs ?? 10_000)) {
      lastSample = Date.now();
      // scraped by curl, as Prometheus would (10 s timeout): a timer in this process, which drives
      // 64 sessions and is itself saturated, would time out a reply that had long arrived
      const { text, seconds, staleMs } = await scrape(metricsPort);
      if (seconds > maxScrapeS) maxScrapeS = seconds;
      const metric = (name: string): number => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN) / 2 ** 20;
      const s: SoakSample = {
        t: Math.round((Date.now() - t0) / 1000),
        fds: fdCount(proxy.pid),
        rssMiB: rssMiB(proxy.pid),
        scrapeBytes: text.length || -1,
        heapTotalMiB: metric('nodejs_heap_size_total_bytes'),
        heapUsedMiB: metric('nodejs_heap_size_used_bytes'),
        externalMiB: metric('nodejs_external_memory_bytes'),
        mallocInUseMiB: metric('vhostscope_malloc_bytes{state="in_use"}'),
        mallocFreeMiB: metric('vhostscope_malloc_bytes{state="free"}'),
        staleMs,
      };
      samples.push(s);
      say(
        `t=${s.t}s daemon fds=${s.fds} rss=${s.rssMiB.toFixed(1)} MiB (V8 heap ${s.heapUsedMiB.toFixed(0)}/${s.heapTotalMiB.toFixed(0)} MiB, external ${s.externalMiB.toFixed(0)} MiB, malloc ${s.mallocInUseMiB.toFixed(0)} in use + ${s.mallocFreeMiB.toFixed(0)} free MiB) metrics=${s.scrapeBytes} B${staleMs ? ` (stale ${staleMs} ms: the daemon's loop was busy)` : ''}; kicks ${kicksSent}, calls ${callsSent}, bulk ${bulk}${stalled.be.paused ? ` (backend of one session stalled ${Math.round((Date.now() - pausedAt) / 1000)} s, its frontend holds ${stalled.fe.queuedBytes} B)` : ''}, sessions churned ${churned}`,
      );
    }
    await sleep(tickMs);
  }
  if (stalled.be.paused) stalled.be.ch.start();

  // drain: every message to its backend, every reply back
  const live = sessions.filter((s) => s.open);
  const delivered = await until(() => live.every((s) => s.fe.queuedBytes === 0 && s.replies === s.repliesExpected && s.be.got === s.sent), 60_000);
  const sent = sessions.reduce((n, s) => n + s.sent, 0);
  const replies = sessions.reduce((n, s) => n + s.replies, 0);
  const expected = sessions.reduce((n, s) => n + s.repliesExpected, 0);
  const got = sessions.reduce((n, s) => n + s.be.got, 0);
  for (const s of live) close(s);
  await sleep(1000);
  proxy.kill('SIGTERM');
  const rc = await proxy.waitExit(60_000);
  backend.close();

  // the recording: every segment of every session
  let recorded = 0;
  let torn = 0;
  const ends: SessionEndRecord[] = [];
  const segments = listSegments(recDir);
  for (const seg of segments) {
    const scan = readRecording(seg.file);
    if (scan.torn) torn++;
    for (const r of scan.records) {
      if (r.type === 'message') recorded++;
      else if (r.type === 'session-end') ends.push(r);
    }
  }
  const kicksRelayed = ends.reduce((n, e) => n + e.relayPairs.filter((p) => p.kind === 'kick').reduce((m, p) => m + p.written, 0), 0);
  const pairsOk = ends.every((e) => e.relayPairs.every((p) => p.read === p.written));
  const warm = samples.filter((s) => s.t >= Math.min(30, o.seconds / 4));
  const half = Math.floor(warm.length / 2);
  const first = warm.slice(0, half);
  const second = warm.slice(half);
  const max = (xs: number[]): number => Math.max(...xs);
  const median = (xs: number[]): number => {
    const v = [...xs].sort((x, y) => x - y);
    return v.length % 2 ? v[v.length >> 1]! : (v[v.length / 2 - 1]! + v[v.length / 2]!) / 2;
  };
  // growth: medians of the two halves (single samples swing with MSI-X churn and GC);
  // the bound: what the design allows per session (2 sockets, kick pairs, 17 call pairs per
  // vring: the current one and up to 16 retiring, a memory dup, a recording file)
  const fdGrowth = first.length && second.length ? median(second.map((s) => s.fds)) - median(first.map((s) => s.fds)) : 0;
  const rssGrowth = first.length && second.length ? median(second.map((s) => s.rssMiB)) - median(first.map((s) => s.rssMiB)) : 0;
  const fdBound = o.sessions * (2 + 2 * 2 + 2 * 17 * 2 + 2) + 200;
  const fdMax = samples.length ? max(samples.map((s) => s.fds)) : 0;
  const figures = {
    sessions: o.sessions,
    churned,
    sent,
    got,
    replies,
    expected,
    recorded,
    torn,
    segments: segments.length,
    kicksSent,
    kicksRelayed,
    callsSent,
    bulk,
    fdGrowth,
    fdMax,
    fdBound,
    rssGrowthMiB: rssGrowth,
    maxScrapeS,
    staleScrapes: samples.filter((x) => x.staleMs > 0).length,
    exit: rc ?? -1,
  };
  say(`--- ${o.sessions} sessions for ${o.seconds} s, ${churned} replaced; ${segments.length} segment files`);
  say(
    `messages: frontends sent ${sent}, backends got ${got}; replies ${replies} of ${expected}; recorded ${recorded} (expected ${sent + expected}); torn segments ${torn}`,
  );
  say(`kicks: written ${kicksSent}, relayed ${kicksRelayed}; calls written ${callsSent}; relay pairs read == written in every session: ${pairsOk}`);
  const halves = (f: (s: SoakSample) => number, d = 0): string =>
    first.length && second.length
      ? `median ${median(first.map(f)).toFixed(d)} -> ${median(second.map(f)).toFixed(d)}, max ${max(first.map(f)).toFixed(d)} -> ${max(second.map(f)).toFixed(d)}`
      : '-';
  const stale = samples.filter((x) => x.staleMs > 0);
  say(
    `metrics scrapes answered with stale figures (the daemon's loop busy > 2 s): ${stale.length} of ${samples.length}${stale.length ? `, at t=${stale.map((x) => `${x.t}s (${(x.staleMs / 1000).toFixed(1)} s)`).join(', ')}` : ''}`,
  );
  say(
    `daemon fds (first half -> second half): ${halves((s) => s.fds)} (bound ${fdBound}); RSS MiB: ${halves((s) => s.rssMiB, 1)}; slowest metrics scrape ${maxScrapeS.toFixed(2)} s`,
  );
  const problems: string[] = [];
  if (!delivered) problems.push('not every message or reply arrived within 60 s of the end');
  if (stuck) problems.push(`${stuck} replaced sessions did not receive all they were sent within 60 s`);
  if (got !== sent) problems.push(`backends got ${got} of ${sent} messages`);
  if (replies !== expected) problems.push(`frontends got ${replies} of ${expected} replies`);
  if (recorded !== sent + expected) problems.push(`the recording holds ${recorded} messages, not ${sent + expected}`);
  if (torn) problems.push(`${torn} torn segment files`);
  if (ends.length !== sessions.length) problems.push(`${ends.length} session ends recorded for ${sessions.length} sessions`);
  if (kicksRelayed !== kicksSent) problems.push(`relayed ${kicksRelayed} of ${kicksSent} kicks`);
  if (!pairsOk) problems.push('a relay pair wrote less than it read');
  if (samples.some((s) => s.scrapeBytes <= 0)) problems.push('a metrics scrape failed');
  if (fdGrowth > 8 + fdBound * 0.05) problems.push(`the daemon's fd count grew by ${fdGrowth} (medians of the two halves)`);
  if (fdMax > fdBound) problems.push(`the daemon held ${fdMax} fds, more than the ${fdBound} its design allows for ${o.sessions} sessions`);
  if (rssGrowth > 48) problems.push(`the daemon's RSS grew by ${rssGrowth.toFixed(1)} MiB (medians of the two halves)`);
  if (rc !== 0) problems.push(`the daemon exited with ${rc}`);
  say(problems.length ? `SOAK FAILED: ${problems.join('; ')}` : 'SOAK OK');
  return { ok: problems.length === 0, problems, samples, lines, figures };
}
