/**
 * Peers killed with SIGKILL at random points of the handshake and of the data phase, through a
 * recording `vhostscope proxy` (its own process): real testpmd pairs, the frontend and the
 * backend killed in turn. After every kill the daemon must still run and close the session; at
 * the end its fd count must be back where it started and the recording must be whole, with a
 * start and an end for every session and the messages its end counted.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { readRecording } from '../src/recording/reader';
import { sleep } from '../src/demo/process';
import { startProxy } from './proxy-process';
import { Testpmd } from '../src/demo/testpmd';

export interface CrashOptions {
  workDir: string;
  iterations: number;
  seed?: number;
  /** the latest kill point, ms after the frontend starts (handshake ~0.5-1 s, then traffic) */
  maxDelayMs?: number;
  log?: (line: string) => void;
}

export interface CrashResult {
  iterations: number;
  sessions: number;
  killed: { frontend: number; backend: number };
  fds: { before: number; after: number };
  problems: string[];
}

function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** what the process's fds point at, for a leak report */
function fdTargets(pid: number): string[] {
  return fs.readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return fs.readlinkSync(`/proc/${pid}/fd/${fd}`).replace(/\[\d+\]$/, '[…]');
    } catch {
      return '?';
    }
  });
}

export async function runCrashIterations(o: CrashOptions): Promise<CrashResult> {
  fs.mkdirSync(o.workDir, { recursive: true });
  let seed = o.seed ?? 1;
  const rand = (): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed / 0x7fffffff;
  };
  const fe = path.join(o.workDir, 'fe.sock');
  const be = path.join(o.workDir, 'be.sock');
  const rec = path.join(o.workDir, 'crash.vhsrec');
  const logFile = path.join(o.workDir, 'proxy.log');
  const problems: string[] = [];
  const killed = { frontend: 0, backend: 0 };
  const startBackend = async (i: number): Promise<Testpmd> => {
    fs.rmSync(be, { force: true });
    const t = new Testpmd({ name: `be${i}`, workDir: o.workDir, mainLcore: 0, forwardMode: 'rxonly', vdev: `net_vhost0,iface=${be},queues=1` });
    await t.peer.waitForLog(/binding succeeded/, 30_000);
    t.cmd('start');
    return t;
  };
  let backend = await startBackend(0);
  const proxy = await startProxy({ listen: fe, connect: be, args: ['--record', rec, '--connect-timeout', '5000'], logFile, timeoutMs: 3_600_000 });
  await sleep(300);
  const before = fdCount(proxy.pid);
  const targetsBefore = fdTargets(proxy.pid);
  const events = (kind: string): number => (fs.readFileSync(logFile, 'utf8').match(new RegExp(`"event":"${kind}"`, 'g')) ?? []).length;
  try {
    for (let i = 0; i < o.iterations; i++) {
      const victim = i % 2 === 0 ? 'frontend' : 'backend';
      const delay = Math.floor(rand() * (o.maxDelayMs ?? 2500));
      const front = new Testpmd({ name: `fe${i}`, workDir: o.workDir, mainLcore: 1, forwardMode: 'txonly', vdev: `net_virtio_user0,path=${fe},queues=1` });
      const t0 = Date.now();
      // start traffic as soon as the prompt is there, unless the kill comes first
      void front.peer
        .waitForLog(/testpmd> /, 10_000)
        .then(() => front.cmd('start'))
        .catch(() => {});
      await sleep(delay);
      (victim === 'frontend' ? front : backend).peer.kill('SIGKILL');
      killed[victim]++;
      // the daemon must close the session on both sides: every started session ends
      const end = Date.now() + 15_000;
      while (events('session-end') < events('session-start')) {
        if (Date.now() > end) {
          problems.push(`iteration ${i}: a session did not end after the ${victim} was killed at ${delay} ms`);
          break;
        }
        await sleep(50);
      }
      if (!proxy.alive) {
        problems.push(`iteration ${i}: the daemon died (${JSON.stringify(proxy.status)})`);
        break;
      }
      await front.peer.stop(2000);
      if (victim === 'backend') {
        await backend.peer.stop(2000);
        backend = await startBackend(i + 1);
      }
      o.log?.(
        `iteration ${i + 1}/${o.iterations}: killed the ${victim} ${delay} ms after the frontend started (${Date.now() - t0} ms), sessions ${events('session-start')}, daemon fds ${fdCount(proxy.pid)}`,
      );
    }
    await sleep(500);
    const after = fdCount(proxy.pid);
    if (after !== before) {
      const extra = [...fdTargets(proxy.pid)];
      for (const t of targetsBefore) extra.splice(extra.indexOf(t), extra.indexOf(t) >= 0 ? 1 : 0);
      problems.push(`the daemon's fd count went from ${before} to ${after}: ${extra.join(', ')}`);
    }
    const sessions = events('session-start');
    proxy.kill('SIGTERM');
    await proxy.waitExit(20_000);
    const scan = readRecording(rec);
    if (scan.torn) problems.push(`recording torn: ${scan.torn.reason}`);
    const starts = scan.records.filter((r) => r.type === 'session-start').length;
    const ends = scan.records.filter((r) => r.type === 'session-end');
    if (starts !== sessions || ends.length !== sessions) problems.push(`recording: ${starts} starts and ${ends.length} ends for ${sessions} sessions`);
    for (const e of ends) {
      const n = scan.records.filter((r) => r.type === 'message' && r.session === e.session).length;
      if (n !== e.messages['F>B'] + e.messages['B>F'])
        problems.push(`session ${e.session}: ${n} messages recorded, its end counted ${e.messages['F>B'] + e.messages['B>F']}`);
    }
    return { iterations: o.iterations, sessions, killed, fds: { before, after }, problems };
  } finally {
    await backend.peer.stop(2000);
    await proxy.stop(2000);
  }
}
