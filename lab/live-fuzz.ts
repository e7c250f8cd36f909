/**
 * A live daemon fuzzed from both sides: this process is the front-end that connects to it and
 * the back-end it connects to. Each case replays one session of a real recording
 * (recordings/*.vhsrec) with mutations: header and payload bits, sizes, request codes, messages
 * cut short or split across writes, fds added, dropped or of the wrong kind (pipes, sockets,
 * memfds, files where eventfds go), replies mangled, a back-end channel written with mutated
 * messages, connections dropped mid-message. Between cases it checks that the daemon lives,
 * answers its control socket within 2 s, and that its fds and memory stay flat.
 * Used by bench/live-fuzz.js (an hour) and test/fuzz/live-fuzz.test.ts (a minute).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { controlRequest } from '../src/control/client';
import { native, type Channel } from '../src/native';
import { FLAG_NEED_REPLY, FLAG_REPLY, HEADER_SIZE, Request } from '../src/protocol';
import { readRecording } from '../src/recording/reader';
import type { MessageRecord } from '../src/recording/records';
import { startProxy } from './proxy-process';
import type { Peer } from '../src/demo/process';

export interface LiveFuzzOptions {
  seconds: number;
  seed: number;
  workDir: string;
  /** the recordings whose sessions are mutated (default: the repository's recordings/) */
  recordings?: string[];
  /** extra daemon options */
  daemonArgs?: string[];
  /** called after every health check */
  onCheck?: (c: HealthCheck) => void;
}

export interface HealthCheck {
  cases: number;
  fds: number;
  rssKb: number;
  statusMs: number;
}

export interface LiveFuzzResult {
  cases: number;
  casesPerSecond: number;
  /** the daemon died */
  crashed: boolean;
  /** health checks whose status request took more than 2 s (or never came) */
  hangs: number;
  /** "internal error" lines: an exception in a session's code (each one a bug) */
  internalErrors: string[];
  /** lines of the daemon's log that are not JSON (a crash's stack, a native abort) */
  strayLines: string[];
  fds: { afterWarmup: number; end: number; max: number };
  rssKb: { afterWarmup: number; end: number; max: number };
  /** how the daemon ended at SIGTERM */
  exit: { code: number | null; ms: number };
  /** session-end reasons by their first words, how often */
  endings: Record<string, number>;
  checks: HealthCheck[];
}

/** One recorded session: its main-channel messages and its back-end channel's, in order. */
interface SessionCorpus {
  main: MessageRecord[];
  backendChannel: MessageRecord[];
}

const ROOT = path.resolve(__dirname, '..');

function loadCorpus(files: string[]): { sessions: SessionCorpus[]; replies: Map<number, Buffer[]> } {
  const sessions: SessionCorpus[] = [];
  const replies = new Map<number, Buffer[]>();
  for (const file of files) {
    const bySession = new Map<number, SessionCorpus>();
    for (const r of readRecording(file).records) {
      if (r.type !== 'message') continue;
      let s = bySession.get(r.session);
      if (!s) bySession.set(r.session, (s = { main: [], backendChannel: [] }));
      if (r.channel === 'main') s.main.push(r);
      else if (r.channel === 'backend') s.backendChannel.push(r);
      if (r.channel === 'main' && r.dir === 'B>F' && r.raw.length >= HEADER_SIZE) {
        const code = r.raw.readUInt32LE(0);
        const list = replies.get(code) ?? [];
        if (list.length < 8) list.push(r.raw);
        replies.set(code, list);
      }
    }
    sessions.push(...[...bySession.values()].filter((s) => s.main.length > 0));
  }
  return { sessions, replies };
}

/** xorshift32: the same seed, the same cases. */
class Rng {
  constructor(private s: number) {
    if (!this.s) this.s = 1;
  }
  next(): number {
    this.s ^= this.s << 13;
    this.s ^= this.s >>> 17;
    this.s ^= this.s << 5;
    return (this.s >>> 0) / 0x100000000;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

const FD_KINDS = ['eventfd', 'memfd', 'memfd-sealed', 'pipe-read', 'pipe-write', 'socket', 'file'] as const;

/** Makes an fd of a kind; the other ends it needs stay in `keep` until the case ends. */
function makeFd(kind: (typeof FD_KINDS)[number], keep: number[], scratch: string): number {
  switch (kind) {
    case 'eventfd':
      return native.eventfd(0);
    case 'memfd':
      return native.memfdCreate('fuzz', 64 * 1024, false);
    case 'memfd-sealed':
      return native.memfdCreate('fuzz', 64 * 1024, true);
    case 'pipe-read':
    case 'pipe-write': {
      const [r, w] = native.pipe();
      keep.push(kind === 'pipe-read' ? w : r);
      return kind === 'pipe-read' ? r : w;
    }
    case 'socket': {
      const [a, b] = native.socketpair();
      keep.push(b);
      return a;
    }
    case 'file':
      return fs.openSync(scratch, 'r');
  }
}

/** The fds a message goes with: as recorded (eventfds for eventfds), or mutated. */
function fdsFor(r: MessageRecord, rng: Rng, mutate: boolean, keep: number[], scratch: string): number[] {
  const kinds: (typeof FD_KINDS)[number][] = r.fds.map((f) =>
    f.kind === 'memfd' ? 'memfd-sealed' : f.kind === 'socket' ? 'socket' : f.kind === 'pipe' ? 'pipe-write' : 'eventfd',
  );
  if (mutate) {
    const roll = rng.int(4);
    if (roll === 0 && kinds.length) kinds.pop();
    else if (roll === 1) for (let i = rng.int(10) + 1; i > 0; i--) kinds.push(FD_KINDS[rng.int(FD_KINDS.length)]);
    else if (roll === 2 && kinds.length) kinds[rng.int(kinds.length)] = FD_KINDS[rng.int(FD_KINDS.length)];
  }
  return kinds.map((k) => makeFd(k, keep, scratch));
}

/** A message's bytes, mutated: bits, the size field, the request code, cut or extended. */
function mutateBytes(raw: Buffer, rng: Rng): Buffer {
  let b: Buffer = Buffer.from(raw);
  switch (rng.int(7)) {
    case 0: // a few flipped bits anywhere
      for (let i = rng.int(4) + 1; i > 0; i--) b[rng.int(b.length)] ^= 1 << rng.int(8);
      break;
    case 1: // the size field: off by a little, or wild
      b.writeUInt32LE(rng.chance(0.5) ? Math.max(0, b.readUInt32LE(8) + rng.int(17) - 8) : rng.int(0x100000000), 8);
      break;
    case 2: // another request code, known or not
      b.writeUInt32LE(rng.chance(0.7) ? rng.int(60) : rng.int(0x100000000), 0);
      break;
    case 3: // flags: version, reply and need-reply bits, reserved bits
      b.writeUInt32LE((b.readUInt32LE(4) ^ (1 << rng.int(32))) >>> 0, 4);
      break;
    case 4: // payload cut short (the header still announcing it whole)
      b = b.subarray(0, HEADER_SIZE + rng.int(Math.max(1, b.length - HEADER_SIZE)));
      break;
    case 5: // payload longer than announced (the rest is read as the next header)
      b = Buffer.concat([b, Buffer.from(Array.from({ length: rng.int(24) + 1 }, () => rng.int(256)))]);
      break;
    default: // payload bytes: indices, addresses, sizes
      for (let i = rng.int(8) + 1; i > 0 && b.length > HEADER_SIZE; i--) b[HEADER_SIZE + rng.int(b.length - HEADER_SIZE)] = rng.int(256);
  }
  return b;
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function send(ch: Channel, bytes: Buffer, fds: number[]): boolean {
  try {
    ch.send(bytes, fds); // it owns the fds, sent or not (closing them again here closed others')
    return true;
  } catch {
    return false;
  }
}

function procFds(pid: number): number {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

function procRssKb(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? -1);
  } catch {
    return -1;
  }
}

/**
 * Each non-empty line of a file, read a chunk at a time: an hour's daemon log is gigabytes, more
 * than one string can hold.
 */
function forEachLine(file: string, fn: (line: string) => void): void {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return;
  }
  try {
    const chunk = Buffer.alloc(1 << 20);
    const utf8 = new StringDecoder('utf8'); // a character cut by a chunk's end is kept for the next
    let rest = '';
    for (let n: number; (n = fs.readSync(fd, chunk, 0, chunk.length, null)) > 0; ) {
      const lines = (rest + utf8.write(chunk.subarray(0, n))).split('\n');
      rest = lines.pop()!;
      for (const l of lines) if (l) fn(l);
    }
    if (rest) fn(rest);
  } finally {
    fs.closeSync(fd);
  }
}

export async function runLiveFuzz(o: LiveFuzzOptions): Promise<LiveFuzzResult> {
  const files =
    o.recordings ??
    fs
      .readdirSync(path.join(ROOT, 'recordings'))
      .filter((f) => f.endsWith('.vhsrec'))
      .map((f) => path.join(ROOT, 'recordings', f));
  const corpus = loadCorpus(files);
  if (!corpus.sessions.length) throw new Error(`no sessions in ${files.join(', ')}`);
  const rng = new Rng(o.seed);
  const fe = path.join(o.workDir, 'fe.sock');
  const be = path.join(o.workDir, 'be.sock');
  const scratch = path.join(o.workDir, 'a-file');
  fs.writeFileSync(scratch, 'not an eventfd\n');
  const logFile = path.join(o.workDir, 'daemon.log');

  // the back-end: answers what wants an answer (mangled at times), writes the back-end channel
  const beConns = new Set<{ ch: Channel; keep: number[] }>();
  const backend = new native.Listener(native.listenUnix(be, 64, 0o600), (_e, fd) => {
    if (fd === null) return;
    const conn = { ch: undefined as unknown as Channel, keep: [] as number[] };
    conn.ch = new native.Channel(
      fd,
      1 << 28,
      (m, fds) => {
        const code = m.readUInt32LE(0);
        for (const f of fds) {
          // the back-end channel's socket: write mutated recorded back-end requests into it
          if (code === Request.SET_BACKEND_REQ_FD && native.fdInfo(f).kind === 'socket') {
            const session = corpus.sessions[rng.int(corpus.sessions.length)];
            let sub: Channel;
            try {
              sub = new native.Channel(
                f,
                1 << 20,
                () => {},
                () => {},
              ); // (it owns f even when it throws)
            } catch {
              continue;
            }
            sub.start();
            for (const r of session.backendChannel.slice(0, 8)) send(sub, rng.chance(0.5) ? mutateBytes(r.raw, rng) : r.raw, []);
            if (rng.chance(0.3)) send(sub, Buffer.from(Array.from({ length: rng.int(40) }, () => rng.int(256))), []);
            setTimeout(() => sub.close(), rng.int(50));
          } else native.close(f);
        }
        const wants = (m.readUInt32LE(4) & FLAG_NEED_REPLY) !== 0 || corpus.replies.has(code);
        if (wants && !rng.chance(0.05)) {
          const options = corpus.replies.get(code);
          let reply: Buffer = options
            ? Buffer.from(options[rng.int(options.length)])
            : Buffer.concat([m.subarray(0, 4), Buffer.from([FLAG_REPLY | 1, 0, 0, 0, 8, 0, 0, 0]), Buffer.alloc(8)]);
          if (rng.chance(0.2)) reply = mutateBytes(reply, rng);
          send(conn.ch, reply, rng.chance(0.05) ? [makeFd(FD_KINDS[rng.int(FD_KINDS.length)], conn.keep, scratch)] : []);
        }
      },
      () => {
        beConns.delete(conn);
        conn.ch.close();
        for (const k of conn.keep) if (k >= 0) native.close(k);
      },
    );
    conn.ch.start();
    beConns.add(conn);
  });

  let daemon: Peer | undefined;
  const endings: Record<string, number> = {};
  const checks: HealthCheck[] = [];
  let hangs = 0;
  let cases = 0;
  let crashed = false;
  const started = Date.now();
  const deadline = started + o.seconds * 1000;
  let warm: HealthCheck | undefined;
  let result: LiveFuzzResult | undefined;
  try {
    daemon = await startProxy({
      listen: fe,
      connect: be,
      logFile,
      timeoutMs: (o.seconds + 120) * 1000,
      args: [
        '--rings=headers',
        '--record',
        path.join(o.workDir, 'rec') + '/',
        '--keep',
        '64MiB',
        '--check',
        '--stats-interval',
        '0',
        '--connect-timeout',
        '500',
        ...(o.daemonArgs ?? []),
      ],
    });
    const pid = daemon.pid;
    const check = async (): Promise<void> => {
      const t0 = Date.now();
      try {
        await controlRequest(`${fe}.ctl`, { cmd: 'status' }, undefined, 2000);
      } catch {
        hangs++;
      }
      const c = { cases, fds: procFds(pid), rssKb: procRssKb(pid), statusMs: Date.now() - t0 };
      checks.push(c);
      o.onCheck?.(c);
    };
    while (Date.now() < deadline) {
      await oneCase(corpus, rng, fe, scratch);
      cases++;
      if (!daemon.alive) {
        crashed = true;
        break;
      }
      if (cases % 100 === 0) {
        await check();
        // memory and fds are judged from the first check after 10 % of the time: caches warm
        if (!warm && Date.now() - started > o.seconds * 100) warm = checks.at(-1);
      }
    }
    await sleep(500); // the last sessions end
    if (daemon.alive) await check();
  } finally {
    const t0 = Date.now();
    if (daemon?.alive) daemon.kill('SIGTERM');
    const code = daemon ? await daemon.waitExit(10_000).catch(() => null) : null;
    const exitMs = Date.now() - t0;
    backend.close();
    for (const c of beConns) c.ch.close();
    const internalErrors: string[] = [];
    const strayLines: string[] = [];
    forEachLine(logFile, (l) => {
      let rec: { msg?: string; event?: string; reason?: string };
      try {
        rec = JSON.parse(l) as typeof rec;
      } catch {
        strayLines.push(l);
        return;
      }
      const text = rec.reason ?? rec.msg ?? '';
      if (/internal error/.test(text)) internalErrors.push(text);
      if (rec.event === 'session-end' && rec.reason) {
        const key = rec.reason.split(/[:(]/)[0].replace(/\d+/g, 'N').trim().slice(0, 60);
        endings[key] = (endings[key] ?? 0) + 1;
      }
    });
    const last = checks.at(-1);
    const first = warm ?? checks[0];
    result = {
      cases,
      casesPerSecond: cases / ((Date.now() - started) / 1000),
      crashed,
      hangs,
      internalErrors,
      strayLines,
      fds: { afterWarmup: first?.fds ?? -1, end: last?.fds ?? -1, max: Math.max(...checks.map((c) => c.fds)) },
      rssKb: { afterWarmup: first?.rssKb ?? -1, end: last?.rssKb ?? -1, max: Math.max(...checks.map((c) => c.rssKb)) },
      exit: { code, ms: exitMs },
      endings,
      checks,
    };
  }
  return result;
}

/** One session: the recorded front-end's messages, mutated, against the daemon. */
async function oneCase(corpus: ReturnType<typeof loadCorpus>, rng: Rng, fe: string, scratch: string): Promise<void> {
  const session = corpus.sessions[rng.int(corpus.sessions.length)];
  const keep: number[] = [];
  let ended = false;
  let ch: Channel;
  try {
    ch = new native.Channel(
      native.connectUnix(fe),
      1 << 28,
      (_m, fds) => fds.forEach((f) => native.close(f)),
      () => (ended = true),
    );
  } catch {
    await sleep(5); // refused or backlog full: the daemon is busy with what came before
    return;
  }
  ch.start();
  const rate = [0, 0.05, 0.2, 0.6][rng.int(4)]; // clean sessions too: they reach the deeper states
  const upTo = rng.chance(0.3) ? rng.int(session.main.length) + 1 : session.main.length;
  for (const r of session.main.slice(0, upTo)) {
    if (ended) break;
    if (r.dir !== 'F>B' || r.injected) continue;
    const mutate = rng.chance(rate);
    const bytes = mutate ? mutateBytes(r.raw, rng) : r.raw;
    const fds = fdsFor(r, rng, mutate && rng.chance(0.5), keep, scratch);
    if (mutate && rng.chance(0.2) && bytes.length > 1) {
      // split across writes: the fds with the first part, a pause, the rest
      const cut = 1 + rng.int(bytes.length - 1);
      if (!send(ch, bytes.subarray(0, cut), fds)) break;
      await sleep(rng.int(3));
      if (!send(ch, bytes.subarray(cut), [])) break;
    } else if (!send(ch, bytes, fds)) break;
    if (rng.chance(0.3)) await tick();
  }
  if (rng.chance(0.1)) send(ch, Buffer.from(Array.from({ length: rng.int(30) + 1 }, () => rng.int(256))), []); // a last torn message
  await sleep(rng.chance(0.2) ? rng.int(30) : 1);
  ch.close();
  for (const k of keep) native.close(k);
}
