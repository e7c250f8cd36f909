/**
 * `--relay-cpu auto` (the default): put the relay thread on the CPU of the backend's busy-polling
 * thread, when the backend has one (a DPDK lcore: pinned to one CPU, ~100% busy).
 *
 * Why: a polling backend signals a call from that CPU. Measured on this 2-vCPU machine
 * (bench/notify.js, QEMU guest ping through testpmd): with the relay thread left to the
 * scheduler, the call's wake-up often lands on the other CPU, behind the TCG vCPU thread, and the
 * guest's ping RTT grows by 1.2-1.4x; with the relay next to the polling lcore the wake-up
 * preempts the poller at once, and the RTT is within 1.07x of a direct connection. Backends
 * without such a thread (qemu-storage-daemon, virtiofsd) leave the relay where the scheduler
 * puts it. Reading /proc is policy, so it lives here; the addon only moves the thread.
 */
import * as fs from 'node:fs';

export interface PollingThread {
  pid: number;
  tid: number;
  name: string;
  cpu: number;
  /** share of one CPU used over the sample */
  busy: number;
}

/** "0-2,5" -> [0, 1, 2, 5] */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.trim().split(',').filter(Boolean)) {
    const [a, b] = part.split('-').map(Number);
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

interface ThreadSample {
  tid: number;
  name: string;
  cpus: number[];
  ticks: number;
}

/** utime + stime (fields 14 and 15 of /proc/PID/task/TID/stat; the name may hold spaces and parentheses). */
export function statTicks(stat: string): { name: string; ticks: number } {
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  const rest = stat.slice(close + 2).split(' ');
  // rest[0] is field 3 (state): utime is field 14, stime field 15
  return { name: stat.slice(open + 1, close), ticks: Number(rest[11]) + Number(rest[12]) };
}

function sample(pid: number): ThreadSample[] {
  const out: ThreadSample[] = [];
  let tids: string[];
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const t of tids) {
    try {
      const { name, ticks } = statTicks(fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8'));
      const allowed = fs.readFileSync(`/proc/${pid}/task/${t}/status`, 'utf8').match(/^Cpus_allowed_list:\s*(\S+)/m)?.[1];
      out.push({ tid: Number(t), name, cpus: allowed ? parseCpuList(allowed) : [], ticks });
    } catch {
      /* the thread ended meanwhile */
    }
  }
  return out;
}

const TICKS_PER_S = 100; // USER_HZ on Linux

/** The busiest thread of `pid` that is pinned to a single CPU and used most of it over `sampleMs`. */
export async function findPollingThread(pid: number, sampleMs = 300, minBusy = 0.8): Promise<PollingThread | undefined> {
  const before = new Map(sample(pid).map((t) => [t.tid, t]));
  await new Promise((r) => setTimeout(r, sampleMs).unref());
  let best: PollingThread | undefined;
  for (const t of sample(pid)) {
    const b = before.get(t.tid);
    if (!b || t.cpus.length !== 1) continue;
    const busy = (t.ticks - b.ticks) / TICKS_PER_S / (sampleMs / 1000);
    if (busy >= minBusy && (!best || busy > best.busy)) best = { pid, tid: t.tid, name: t.name, cpu: t.cpus[0], busy };
  }
  return best;
}
