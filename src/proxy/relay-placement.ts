/**
 * `--relay-cpu auto` (the default): choose the relay thread's CPU from what the peers' threads
 * are allowed to run on and do, read from /proc once the session's roles are known.
 *
 * The rule behind both cases: on a virtual machine whose idle vCPUs halt, waking a thread on an
 * idle CPU costs tens of µs, waking one on a busy CPU a context switch. The relay should sleep
 * where the consumers of its writes run.
 *  1. Both peers confined to one and the same CPU (taskset on both): the relay stays off it,
 *     left to the scheduler, when the daemon may run elsewhere; polling there after each
 *     notification it picks up the next without a context switch on the peers' CPU. Measured
 *     on this machine type (bench/notify.js, eventfd ping-pong, both peers on CPU 0, 2 vCPUs):
 *     ~37 µs a round trip left to the scheduler, 41-43 µs pinned to CPU 0 (yielding or not),
 *     ~35 µs for an ideal relay that never sleeps on CPU 0. (An earlier machine type measured
 *     the other way round, 16 µs pinned against 35-45: its idle vCPUs were slow to wake.) When
 *     the daemon itself may run only on that CPU, the relay shares it and its polling yields to
 *     the peers it wakes.
 *  2. The backend has a busy-polling thread (a DPDK lcore: pinned to one CPU, ~100% busy): the
 *     relay goes next to it. A polling backend signals a call from that CPU. Measured (QEMU
 *     guest ping through testpmd): left to the scheduler the call's wake-up often lands on the
 *     other CPU, behind the TCG vCPU thread, and the RTT grows by 1.2-1.4x; next to the poller
 *     the wake-up preempts it at once, within 1.07x of a direct connection.
 * Otherwise (peers free to move: qemu-storage-daemon, virtiofsd, unpinned processes) the relay
 * stays where the scheduler puts it. Reading /proc is policy, so it lives here; the addon only
 * moves the thread.
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

/** The CPUs any thread of `pid` may run on (its threads' Cpus_allowed_list, merged); empty if unknown. */
export function allowedCpus(pid: number): number[] {
  const cpus = new Set<number>();
  for (const t of sample(pid)) for (const c of t.cpus) cpus.add(c);
  return [...cpus].sort((a, b) => a - b);
}

export interface RelayPlacement {
  /** -1: left to the scheduler (said in the log, with the reason) */
  cpu: number;
  /** the relay shares the CPU with the peers it wakes: its polling yields to them (Relay.setCpu) */
  yieldWhileSpinning: boolean;
  /** why, for the log line */
  reason: string;
}

/** Where the relay thread should run for these peers (relay-placement.ts's header), or undefined: anywhere. */
export async function chooseRelayCpu(peers: { frontendPid?: number; backendPid?: number }, sampleMs = 300): Promise<RelayPlacement | undefined> {
  const pids = [peers.frontendPid, peers.backendPid].filter((p): p is number => p !== undefined && p > 0);
  if (pids.length === 2) {
    const sets = pids.map(allowedCpus);
    const union = new Set(sets.flat());
    if (sets.every((s) => s.length > 0) && union.size === 1) {
      const cpu = sets[0][0];
      const peersOn = `both peers may run only on CPU ${cpu} (pids ${pids.join(', ')})`;
      if (allowedCpus(process.pid).some((c) => c !== cpu))
        return {
          cpu: -1,
          yieldWhileSpinning: false,
          reason: `${peersOn}: polling on another CPU, the relay picks up their notifications without a context switch on theirs`,
        };
      return { cpu, yieldWhileSpinning: true, reason: `${peersOn}, and so may this daemon: the relay's polling yields to the peers it wakes` };
    }
  }
  if (peers.backendPid === undefined) return undefined;
  const t = await findPollingThread(peers.backendPid, sampleMs);
  if (!t) return undefined;
  return {
    cpu: t.cpu,
    yieldWhileSpinning: false,
    reason: `next to the backend's polling thread ${t.name} (pid ${t.pid}, tid ${t.tid}, ${Math.round(t.busy * 100)}% busy): a call then preempts the poller instead of waiting for another CPU`,
  };
}
