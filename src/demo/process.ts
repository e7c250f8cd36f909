/**
 * Running real peer programs (testpmd, QEMU, ...) for the demo, the benchmarks and the
 * end-to-end tests: each in its own process group, output to a log file, bounded in time,
 * and killed as a group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';

export interface PeerOptions {
  name: string;
  logFile: string;
  /** hard limit: the group is killed after this long */
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** keep a pipe on stdin (testpmd reads its prompt from it; EOF makes it quit) */
  stdinPipe?: boolean;
  /** the working directory (DPDK's vhost_blk sample listens in its own) */
  cwd?: string;
}

/**
 * With VHS_PEER_REGISTRY=DIR (the test run sets it), each running peer leaves DIR/<pid> naming
 * its command while it runs: the run's global teardown ends the process groups of any a killed
 * or timed-out test left behind (test/global-setup.ts).
 */
/**
 * When a process began (clock ticks since boot, /proc/PID/stat's 22nd field): with the pid, it
 * names one process for good, where a pid alone is soon another's.
 */
export function processStart(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return undefined;
  }
}

function register(pid: number | undefined, cmd: string, args: string[]): string | undefined {
  const dir = process.env.VHS_PEER_REGISTRY;
  if (!dir || !pid) return undefined;
  try {
    fs.mkdirSync(dir, { recursive: true });
    const file = `${dir}/${pid}`;
    fs.writeFileSync(file, JSON.stringify({ pid, cmd, args: args.slice(0, 8), start: processStart(pid) }));
    return file;
  } catch {
    return undefined; // the registry is a safety net, never a reason for a peer not to run
  }
}

export class Peer {
  readonly child: ChildProcess;
  private exitCode: number | null | undefined = undefined;
  private exitSignal: NodeJS.Signals | null = null;
  private readonly exited: Promise<void>;
  private readonly timer: NodeJS.Timeout;

  constructor(
    readonly cmd: string,
    readonly args: string[],
    readonly opts: PeerOptions,
  ) {
    const out = fs.openSync(opts.logFile, 'w');
    this.child = spawn(cmd, args, {
      detached: true, // own process group: kill() reaches everything it started
      stdio: [opts.stdinPipe ? 'pipe' : 'ignore', out, out],
      env: opts.env ?? process.env,
      ...(opts.cwd ? { cwd: opts.cwd } : {}),
    });
    fs.closeSync(out);
    const registered = register(this.child.pid, cmd, args);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => {
        this.exitCode = code;
        this.exitSignal = signal;
        if (registered) fs.rmSync(registered, { force: true });
        resolve();
      });
      this.child.once('error', () => {
        this.exitCode = -1;
        resolve();
      });
    });
    this.timer = setTimeout(() => this.kill('SIGKILL'), opts.timeoutMs ?? 300_000);
    this.timer.unref();
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  get status(): { code: number | null | undefined; signal: NodeJS.Signals | null } {
    return { code: this.exitCode, signal: this.exitSignal };
  }

  log(): string {
    try {
      return fs.readFileSync(this.opts.logFile, 'latin1');
    } catch {
      return '';
    }
  }

  write(line: string): void {
    this.child.stdin?.write(line + '\n');
  }

  /** Waits until the log matches `re`; fails if the process exits first or time runs out. */
  async waitForLog(re: RegExp, timeoutMs: number, pollMs = 100): Promise<RegExpMatchArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = this.log().match(re);
      if (m) return m;
      if (!this.alive)
        throw new Error(`${this.opts.name} exited (${JSON.stringify(this.status)}) before ${re} appeared in ${this.opts.logFile}\n${tail(this.log())}`);
      if (Date.now() > end) throw new Error(`${re} did not appear in ${this.opts.logFile} within ${timeoutMs} ms\n${tail(this.log())}`);
      await sleep(pollMs);
    }
  }

  /** Waits for the process to exit by itself; returns its exit code (null when killed by a signal). */
  async waitExit(timeoutMs: number): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    const t = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    // the timer goes with the wait: left running it would hold a bench's process open for timeoutMs
    const r = await Promise.race([this.exited.then(() => 'exited' as const), t]).finally(() => clearTimeout(timer));
    if (r === 'timeout') throw new Error(`${this.opts.name} did not exit within ${timeoutMs} ms\n${tail(this.log())}`);
    return this.exitCode ?? null;
  }

  kill(signal: NodeJS.Signals = 'SIGTERM'): void {
    if (!this.alive || !this.child.pid) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      /* already gone */
    }
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves when the process has exited. */
  async stop(graceMs = 5000): Promise<void> {
    clearTimeout(this.timer);
    if (!this.alive) return;
    this.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), graceMs)));
    const r = await Promise.race([this.exited.then(() => true as const), grace]).finally(() => clearTimeout(timer));
    if (!r) {
      this.kill('SIGKILL');
      await this.exited;
    }
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A TCP port free on 127.0.0.1 now (for a metrics endpoint or a Prometheus server). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

export function tail(s: string, lines = 25): string {
  return s.split('\n').slice(-lines).join('\n');
}

/** Waits until a unix socket file exists. */
export async function waitForSocket(path: string, timeoutMs: number, mustLive?: Peer): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (fs.statSync(path).isSocket()) return;
    } catch {
      /* not yet */
    }
    if (mustLive && !mustLive.alive) throw new Error(`${mustLive.opts.name} exited before ${path} appeared\n${tail(mustLive.log())}`);
    if (Date.now() > end) throw new Error(`socket ${path} did not appear within ${timeoutMs} ms`);
    await sleep(50);
  }
}
