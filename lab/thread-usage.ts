/**
 * Where CPU time goes, thread by thread, over a window: the evidence for a data-plane cost
 * (bench/dpdk-threads.js). For each thread of the processes watched: CPU time used, time spent
 * runnable but waiting for a CPU (schedstat: what other threads took from it), context switches
 * (voluntary: it slept; involuntary: it was preempted), and the CPUs it ran on when sampled.
 */
import * as fs from 'node:fs';

export interface ThreadSample {
  pid: number;
  tid: number;
  name: string;
  /** ns on a CPU (schedstat field 1) */
  runNs: number;
  /** ns runnable and waiting for a CPU (schedstat field 2) */
  waitNs: number;
  voluntary: number;
  involuntary: number;
  /** the CPU it last ran on (stat field 39) */
  cpu: number;
}

export interface ThreadUsage {
  pid: number;
  tid: number;
  name: string;
  runMs: number;
  waitMs: number;
  voluntary: number;
  involuntary: number;
  /** CPUs it was seen on, one entry per sample */
  cpus: Set<number>;
}

function readThread(pid: number, tid: number): ThreadSample | undefined {
  try {
    const dir = `/proc/${pid}/task/${tid}`;
    const stat = fs.readFileSync(`${dir}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const name = stat.slice(stat.indexOf('(') + 1, close);
    const fields = stat.slice(close + 2).split(' '); // fields[0] is field 3 (state)
    const [runNs, waitNs] = fs.readFileSync(`${dir}/schedstat`, 'utf8').trim().split(' ').map(Number);
    const status = fs.readFileSync(`${dir}/status`, 'utf8');
    const num = (key: string): number => Number(status.match(new RegExp(`^${key}:\\s*(\\d+)`, 'm'))?.[1] ?? 0);
    return {
      pid,
      tid,
      name,
      runNs,
      waitNs,
      voluntary: num('voluntary_ctxt_switches'),
      involuntary: num('nonvoluntary_ctxt_switches'),
      cpu: Number(fields[36]),
    };
  } catch {
    return undefined; // the thread ended
  }
}

/** Every thread of these processes, now. */
export function sampleThreads(pids: number[]): ThreadSample[] {
  const out: ThreadSample[] = [];
  for (const pid of pids) {
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const t of tids) {
      const s = readThread(pid, Number(t));
      if (s) out.push(s);
    }
  }
  return out;
}

/**
 * Samples the threads every `everyMs` until stop() and returns, per thread, what it used between
 * the first and the last sample (threads born in between count from zero).
 */
export function watchThreads(pids: number[], everyMs = 50): { stop(): ThreadUsage[] } {
  const first = new Map<number, ThreadSample>();
  const last = new Map<number, ThreadSample>();
  const cpus = new Map<number, Set<number>>();
  const take = (): void => {
    for (const s of sampleThreads(pids)) {
      if (!first.has(s.tid)) first.set(s.tid, { ...s, runNs: 0, waitNs: 0, voluntary: 0, involuntary: 0 }); // born in the window
      last.set(s.tid, s);
      (cpus.get(s.tid) ?? cpus.set(s.tid, new Set()).get(s.tid)!).add(s.cpu);
    }
  };
  // the threads present at the start count from their state then
  for (const s of sampleThreads(pids)) {
    first.set(s.tid, s);
    last.set(s.tid, s);
    cpus.set(s.tid, new Set([s.cpu]));
  }
  const timer = setInterval(take, everyMs);
  return {
    stop(): ThreadUsage[] {
      clearInterval(timer);
      take();
      return [...last.values()].map((b) => {
        const a = first.get(b.tid)!;
        return {
          pid: b.pid,
          tid: b.tid,
          name: b.name,
          runMs: (b.runNs - a.runNs) / 1e6,
          waitMs: (b.waitNs - a.waitNs) / 1e6,
          voluntary: b.voluntary - a.voluntary,
          involuntary: b.involuntary - a.involuntary,
          cpus: cpus.get(b.tid) ?? new Set(),
        };
      });
    },
  };
}

export interface CpuTimes {
  /** ms per state since boot, per CPU: user+nice, system, irq+softirq, idle+iowait, steal */
  cpus: { user: number; system: number; irq: number; idle: number; steal: number }[];
}

/** /proc/stat per CPU, in ms. */
export function cpuTimes(): CpuTimes {
  const tick = 10; // USER_HZ is 100 on Linux
  const cpus = fs
    .readFileSync('/proc/stat', 'utf8')
    .split('\n')
    .filter((l) => /^cpu\d+ /.test(l))
    .map((l) => {
      const [user, nice, system, idle, iowait, irq, softirq, steal] = l.split(/\s+/).slice(1).map(Number);
      return { user: (user + nice) * tick, system: system * tick, irq: (irq + softirq) * tick, idle: (idle + iowait) * tick, steal: steal * tick };
    });
  return { cpus };
}

/** What each CPU did between two cpuTimes() readings, in ms. */
export function cpuDelta(a: CpuTimes, b: CpuTimes): CpuTimes['cpus'] {
  return b.cpus.map((c, i) => {
    const p = a.cpus[i]!;
    return { user: c.user - p.user, system: c.system - p.system, irq: c.irq - p.irq, idle: c.idle - p.idle, steal: c.steal - p.steal };
  });
}
