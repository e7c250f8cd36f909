#!/usr/bin/env node
/**
 * Scale: the daemon (its own process) carrying S sessions x V vrings between synthetic peers,
 * every kick eventfd flooded at once by one C writer and drained by one C reader (epoll), for each
 * S in 1, 4, 16, 64 and V in 1, 4, 16, with 1 relay thread and with --relay-threads 2. Per case:
 * notifications the relay picked up per second, relay CPU per notification, the relay's own
 * p99 transit (its histogram, daemon status), daemon RSS per session and per vring, and that the
 * reader got every count the writer wrote. Then one real DPDK pair with 4 queues, direct and
 * proxied (alternating, medians). Per-notification cost should stay flat as the work grows; the
 * synthetic table has no direct baseline (it compares the daemon with itself across sizes).
 * Exits 1 when any count or packet is lost.
 *   node bench/scale.js [seconds=3] [sessions=1,4,16,64] [vrings=1,4,16] [threads=1,2] [dpdk-runs=3]
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { native } = require('../dist/native');
const { startProxy } = require('../lab/proxy-process');
const { frontendHandshake, syntheticBackend } = require('../lab/synthetic-peers');
const { controlRequest } = require('../dist/control/client');
const { transitPercentiles } = require('../dist/analysis/relay-transit');
const { runDpdkScenario } = require('../dist/demo/dpdk-scenario');

const seconds = Number(process.argv[2] ?? 3);
const list = (i, d) =>
  (process.argv[i] ?? d)
    .split(',')
    .map(Number)
    .filter((n) => n > 0);
const sessionCounts = list(3, '1,4,16,64');
const vringCounts = list(4, '1,4,16');
const threadCounts = list(5, '1,2');
const dpdkRuns = Number(process.argv[6] ?? 3);
const bin = path.join(os.tmpdir(), 'vhostscope-pingpong');
execFileSync('cc', ['-O2', '-o', bin, path.join(__dirname, 'notify', 'pingpong.c')]);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const { median, spread, roundOrder, Targets } = require('./lib');
const targets = new Targets();
const rssKiB = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`scale: ${what} within ${ms} ms`);
    await sleep(20);
  }
}

function spawnC(args, fds) {
  const c = spawn(bin, args, { stdio: ['ignore', 'pipe', 'inherit', ...fds] });
  let out = '';
  c.stdout.on('data', (d) => (out += d));
  return new Promise((resolve, reject) =>
    c.on('exit', (code) => (code === 0 ? resolve(out.trim().split(' ').map(Number)) : reject(new Error(`${args[0]} exited ${code}`)))),
  );
}

async function oneCase(S, V, T) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-scale-'));
  const fe = path.join(work, 'fe.sock'),
    be = path.join(work, 'be.sock');
  const conns = [];
  const backend = syntheticBackend(native.listenUnix(be, 256, 0o600), (c) => conns.push(c));
  // the relay left to the scheduler: both synthetic peers are this process and its two C children
  const proxy = await startProxy({
    listen: fe,
    connect: be,
    args: ['--stats-interval', '0', '--relay-threads', String(T), '--relay-cpu', 'none'],
    logFile: path.join(work, 'proxy.log'),
  });
  const status = () => controlRequest(`${fe}.ctl`, { cmd: 'status' });
  const fronts = [];
  try {
    await sleep(500);
    const rss0 = rssKiB(proxy.pid);
    let expected = 0;
    for (let i = 0; i < S; i++) {
      const hs = frontendHandshake(V);
      const ch = new native.Channel(
        native.connectUnix(fe),
        65536,
        () => undefined,
        () => undefined,
      );
      ch.start();
      for (const m of hs.messages) ch.send(m.msg, m.fds);
      expected += hs.messages.length;
      fronts.push({ ch, kicks: hs.kicks, calls: hs.calls });
    }
    await until(() => conns.length === S && conns.reduce((n, c) => n + c.got, 0) === expected, 30_000, `${S} sessions set up`);
    await sleep(1000);
    const rss1 = rssKiB(proxy.pid);
    const a = await status();
    const kicksIn = fronts.flatMap((f) => f.kicks);
    const kicksOut = conns.flatMap((c) => [...c.kicks.values()]);
    const sink = spawnC(['msink', String(kicksOut.length), '1'], kicksOut);
    await sleep(100);
    const [writes, floodNs] = await spawnC(['mflood', String(kicksIn.length), String(seconds)], kicksIn);
    const [reads, total] = await sink;
    const b = await status();
    const n = b.relay.notifications - a.relay.notifications;
    const cpuNs = b.relay.threadCpuNs - a.relay.threadCpuNs;
    const buckets = b.relay.transitBuckets.map((x, i) => x - (a.relay.transitBuckets[i] ?? 0));
    const tr = transitPercentiles(buckets, b.relay.transitSumNs - a.relay.transitSumNs);
    const perThread = b.relayThreads.map((t, i) => ({ sessions: t.sessions, cpuMs: (t.threadCpuNs - a.relayThreads[i].threadCpuNs) / 1e6 }));
    return {
      S,
      V,
      T,
      writes,
      total,
      lost: writes - total,
      reads,
      notifPerS: n / (floodNs / 1e9),
      writesPerS: writes / (floodNs / 1e9),
      cpuPerNotifNs: n ? cpuNs / n : 0,
      p99Us: tr ? tr.p99Ns / 1000 : 0,
      rssPerSessionKiB: (rss1 - rss0) / S,
      rssPerVringKiB: (rss1 - rss0) / (S * V),
      perThread,
    };
  } finally {
    for (const f of fronts) {
      f.ch.close();
      for (const fd of [...f.kicks, ...f.calls]) native.close(fd);
    }
    await proxy.stop();
    backend.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

(async () => {
  console.log(
    `# synthetic sessions, every kick flooded for ${seconds} s (one C writer over all of them, one C reader), relay left to the scheduler; ${os.availableParallelism()} CPUs`,
  );
  console.log(
    'relay threads  sessions  vrings   written/s  relayed/s   relay ns/notif  p99 transit us  counts lost  RSS KiB/session  KiB/vring  thread CPU ms (sessions)',
  );
  const rows = [];
  for (const V of vringCounts)
    for (const S of sessionCounts)
      for (const T of threadCounts) {
        const r = await oneCase(S, V, T);
        rows.push(r);
        console.log(
          `${String(T).padStart(13)}  ${String(S).padStart(8)}  ${String(V).padStart(6)}  ${Math.round(r.writesPerS).toString().padStart(10)}  ${Math.round(r.notifPerS).toString().padStart(9)}  ${r.cpuPerNotifNs.toFixed(0).padStart(15)}  ${r.p99Us.toFixed(1).padStart(14)}  ${String(r.lost).padStart(11)}  ${r.rssPerSessionKiB.toFixed(0).padStart(15)}  ${r.rssPerVringKiB.toFixed(0).padStart(9)}  ${r.perThread.map((t) => `${t.cpuMs.toFixed(0)} (${t.sessions})`).join(', ')}`,
        );
      }
  const lost = rows.filter((r) => r.lost !== 0);
  console.log(lost.length ? `COUNTS LOST in ${lost.length} cases` : 'every count written was read at the other end, in every case');
  for (const r of lost) targets.loss(`${r.S} sessions x ${r.V} vrings, ${r.T} relay thread(s): ${r.lost} of ${r.writes} counts`);
  for (const T of threadCounts) {
    const c = rows.filter((r) => r.T === T).map((r) => r.cpuPerNotifNs);
    console.log(
      `relay CPU per notification with ${T} thread(s): min ${Math.min(...c).toFixed(0)} ns, median ${median(c).toFixed(0)} ns, max ${Math.max(...c).toFixed(0)} ns over ${c.length} cases`,
    );
  }
  if (threadCounts.length > 1) {
    const big = rows.filter((r) => r.S === Math.max(...sessionCounts) && r.V === Math.max(...vringCounts));
    console.log(`largest case (${big[0].S} x ${big[0].V}): relayed/s ${big.map((r) => `${r.T} thread(s) ${Math.round(r.notifPerS)}`).join(', ')}`);
  }

  if (dpdkRuns > 0) {
    console.log(`# real DPDK pair, queues=4 on both testpmds (txonly, one forwarding lcore each), ${dpdkRuns} alternating runs`);
    const m = { direct: [], proxied: [] };
    for (let i = 0; i < dpdkRuns; i++)
      for (const v of roundOrder(['direct', 'proxied'], i)) {
        const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-scale-dpdk-'));
        let proxy;
        try {
          const r = await runDpdkScenario({
            workDir: work,
            mode: 'txonly',
            durationS: seconds,
            queues: 4,
            proxy:
              v === 'direct'
                ? undefined
                : async (listen, connect) => {
                    proxy = await startProxy({ listen, connect, logFile: path.join(work, 'proxy.log') });
                  },
          });
          if (r.problems.length) targets.loss(`DPDK ${v}: ${r.problems.join('; ')}`);
          m[v].push(r.rxPps / 1e6);
          console.log(`  ${v.padEnd(8)} ${(r.rxPps / 1e6).toFixed(2)} Mpps`);
        } finally {
          if (proxy) await proxy.stop();
          fs.rmSync(work, { recursive: true, force: true });
        }
      }
    console.log(
      `DPDK 4 queues: direct ${median(m.direct).toFixed(2)} Mpps [${spread(m.direct)}], proxied ${median(m.proxied).toFixed(2)} [${spread(m.proxied)}], ratio ${(median(m.proxied) / median(m.direct)).toFixed(3)}`,
    );
  }
  targets.finish(); // the synthetic table states no target (it shows how cost grows); a lost count fails it
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
