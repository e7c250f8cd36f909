#!/usr/bin/env node
/**
 * Block I/O through the relay, for an interrupt-driven device: libblkio (`qemu-img bench` through
 * QEMU 10's virtio-blk-vhost-user driver, no VM) against qemu-storage-daemon 10, 4 KiB reads and
 * writes at queue depth 1 and 32. Every request pays the relay twice (kick and call) on its
 * critical path, which DPDK's polling never shows.
 *
 * Variants alternate within each workload (direct first on odd runs, last on even ones); per
 * variant the median IOPS and spread, the mean time per request, and per process (qemu-img, the
 * daemon, qemu-storage-daemon) CPU time and context switches per request, medians over the runs.
 * Target: every proxied variant at IOPS ratio >= TARGET (default 0.95) of direct, per workload;
 * the bench exits 1 when one misses it.
 *   node bench/blk.js [runs-per-variant=8] [requests=20000 at depth 1, 8x that at depth 32] [variants=direct,proxy,passthrough,rings,record] [workloads=read1,read32,write1,write32]
 * workloads: readN | writeN (qemu-img bench at depth N) | latread | latwrite (bench/blk/blkio-lat.c,
 *            depth 1, each request timed by the front-end: p50 and p99 per variant)
 * variants: direct | proxy | passthrough (--no-interpose) | rings (--rings=headers) | record (--record)
 *           | observe (--observe) | observe-rings (--observe --rings=headers) | observe-record (--observe --record)
 *           | rings-record, observe-rings-record (--rings=headers --record, and stats on the recording)
 *           | floor-observe (--no-interpose, and bench/blk/observe-floor.cc: the least an observer costs)
 *           | "proxy:ARGS" with extra daemon arguments separated by spaces
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const { execFileSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Peer, waitForSocket } = require('../dist/demo/process');
const { fromRelease } = require('../dist/demo/release');
const { rootMissing } = require('../dist/demo/roots');
const { CLI, startProxy } = require('../lab/proxy-process');
const { watchThreads } = require('../lab/thread-usage');

const runs = Number(process.argv[2] ?? 8);
const requests = Number(process.argv[3] ?? 20000);
/** a run at depth 32 is this many times longer: at ~100k IOPS a short run measures the session's set-up */
const DEEP_FACTOR = 8;
const requestsOf = (workload) => (Number(workload.replace(/^\D+/, '')) > 1 ? requests * DEEP_FACTOR : requests);
const variants = (process.argv[4] ?? 'direct,proxy,passthrough,rings,record').split(',');
const workloads = (process.argv[5] ?? 'read1,read32,write1,write32').split(',');
const TARGET = Number(process.env.VHS_BLK_TARGET ?? 0.95);
const ARGS = {
  proxy: [],
  passthrough: ['--no-interpose'],
  rings: ['--rings=headers', '--device', 'blk'],
  record: ['--record', 'REC'],
  observe: ['--observe'],
  'observe-rings': ['--observe', '--rings=headers', '--device', 'blk'],
  'observe-record': ['--observe', '--record', 'REC'],
  // the floor of observing: --no-interpose, and bench/blk/observe-floor.cc watching the eventfds
  'floor-observe': ['--no-interpose'],
  // per-request latency as vhostscope reports it (stats on the recording), beside the front-end's
  'rings-record': ['--rings=headers', '--device', 'blk', '--record', 'REC'],
  'observe-rings-record': ['--observe', '--rings=headers', '--device', 'blk', '--record', 'REC'],
};
/** variants that read the rings: their target is 0.05 lower */
const readsRings = (v) => (argsOf(v) ?? []).some((a) => a.startsWith('--rings'));
/** a variant's daemon arguments: one of ARGS, or "proxy:ARGS" with extra arguments separated by spaces */
const argsOf = (v) => (v.startsWith('proxy:') ? v.slice(6).split(' ').filter(Boolean) : ARGS[v]);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length ? (s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2) : 0;
};

const missing = rootMissing('debian13');
if (missing) {
  console.error(`bench/blk.js needs the Debian 13 root (libblkio, qemu-storage-daemon 10): ${missing}`);
  process.exit(2);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-blk-bench-'));
const img = path.join(work, 'disk.raw');
fs.writeFileSync(img, Buffer.alloc(0));
fs.truncateSync(img, 256 << 20);
const be = path.join(work, 'qsd.sock');
const floorBin = path.join(work, 'observe-floor');
// built with the relay's own io_uring poll (native/poll_ring.cc): the floor differs from --observe in nothing but vhostscope
const nativeDir = path.join(__dirname, '..', 'native');
if (variants.includes('floor-observe'))
  execFileSync('c++', [
    '-O2',
    '-std=c++17',
    `-I${nativeDir}`,
    '-o',
    floorBin,
    path.join(__dirname, 'blk', 'observe-floor.cc'),
    path.join(nativeDir, 'poll_ring.cc'),
  ]);
// the lat* workloads' front-end, built in the Debian 13 root against its libblkio
const latBin = path.join(work, 'blkio-lat');
if (workloads.some((w) => w.startsWith('lat'))) {
  fs.copyFileSync(path.join(__dirname, 'blk', 'blkio-lat.c'), `${latBin}.c`);
  const cc = fromRelease('debian13', [work], 'gcc', ['-O2', '-o', latBin, `${latBin}.c`, '-lblkio']);
  execFileSync(cc.cmd, cc.args, { env: cc.env, stdio: 'inherit' });
}

/** `vhostscope stats --json` of a recording made with --rings: per-request latency p50 and p99 (µs) of one operation */
function statsLatency(rec, op) {
  const out = execFileSync(process.execPath, [CLI, 'stats', '--json', rec], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const ops = JSON.parse(out)
    .sessions.flatMap((s) => s.requests?.operations ?? [])
    .filter((o) => o.op.startsWith(op));
  if (!ops.length) return undefined;
  const main = ops.reduce((a, b) => (b.count > a.count ? b : a));
  return { p50: main.latencyUs.p50, p99: main.latencyUs.p99 };
}

/**
 * One run against `sock`: qemu-img bench (readN, writeN) or bench/blk/blkio-lat.c (latread,
 * latwrite: depth 1, each request timed by the front-end). IOPS, latency where the front-end
 * times requests, and per process CPU and context switches.
 */
async function benchOnce(sock, workload, daemonPid, variant) {
  const requests = requestsOf(workload);
  const lat = workload.startsWith('lat');
  const write = workload.includes('write');
  const depth = Number(workload.replace(/^\D+/, ''));
  const run = lat
    ? fromRelease('debian13', [work], latBin, [sock, write ? 'write' : 'read', String(requests)])
    : fromRelease('debian13', [work], 'qemu-img', [
        'bench',
        '--image-opts',
        `driver=virtio-blk-vhost-user,path=${sock},cache.direct=on`,
        '-c',
        String(requests),
        '-d',
        String(depth),
        '-s',
        '4096',
        '-S',
        '4096',
        ...(write ? ['-w'] : []),
      ]);
  const q = new Peer(run.cmd, run.args, { name: 'frontend', logFile: path.join(work, 'frontend.log'), env: run.env, timeoutMs: 600_000 });
  const floor = variant === 'floor-observe' ? spawn(floorBin, [String(q.pid), String(qsd)], { stdio: ['ignore', 'pipe', 'inherit'] }) : undefined;
  const floorOut = floor
    ? new Promise((resolve) => {
        let out = '';
        floor.stdout.on('data', (b) => (out += b));
        floor.on('exit', () => resolve(out.trim()));
      })
    : undefined;
  const pids = { frontend: q.pid, qsd, ...(daemonPid ? { daemon: daemonPid } : {}), ...(floor ? { observer: floor.pid } : {}) };
  const watch = watchThreads(Object.values(pids), 100);
  const rc = await q.waitExit(600_000);
  const usage = watch.stop();
  if (floorOut) {
    const [fds, wakeups] = (await floorOut).split(' ').map(Number);
    if (!(fds >= 2 && wakeups > 0)) throw new Error(`observe-floor saw ${fds} shared eventfds and ${wakeups} wake-ups`);
  }
  const log = fs.readFileSync(path.join(work, 'frontend.log'), 'utf8');
  let iops;
  let latency;
  if (lat) {
    const m = /^(\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(log);
    if (rc !== 0 || !m) throw new Error(`blkio-lat failed (exit ${rc}): ${log.slice(-500)}`);
    iops = Number(m[1]) / (Number(m[5]) / 1e9);
    latency = { p50: Number(m[2]) / 1000, p99: Number(m[3]) / 1000 };
  } else {
    const m = /Run completed in ([\d.]+) seconds/.exec(log);
    if (rc !== 0 || !m) throw new Error(`qemu-img bench failed (exit ${rc}): ${log.slice(-500)}`);
    iops = requests / Number(m[1]);
  }
  const perProc = {};
  const perThread = {};
  for (const [name, pid] of Object.entries(pids)) {
    const ts = usage.filter((u) => u.pid === pid);
    perProc[name] = {
      cpuUs: (ts.reduce((a, t) => a + t.runMs, 0) * 1000) / requests,
      cs: ts.reduce((a, t) => a + t.voluntary + t.involuntary, 0) / requests,
    };
    // threads of one name summed (qsd's and the daemon's worker pools)
    for (const t of ts) {
      const key = `${name}/${t.name}`;
      const p = (perThread[key] ??= { cpuUs: 0, cs: 0, waitUs: 0 });
      p.cpuUs += (t.runMs * 1000) / requests;
      p.waitUs += (t.waitMs * 1000) / requests;
      p.cs += (t.voluntary + t.involuntary) / requests;
    }
  }
  return { iops, latency, perProc, perThread };
}

let qsd;
(async () => {
  const run = fromRelease('debian13', [work], 'qemu-storage-daemon', [
    '--blockdev',
    `driver=file,node-name=file0,filename=${img},cache.direct=on,aio=threads`,
    '--blockdev',
    'driver=raw,node-name=disk0,file=file0',
    '--export',
    `type=vhost-user-blk,id=e0,node-name=disk0,addr.type=unix,addr.path=${be},writable=on,num-queues=1`,
  ]);
  const server = new Peer(run.cmd, run.args, { name: 'qsd', logFile: path.join(work, 'qsd.log'), env: run.env, timeoutMs: 3_600_000 });
  qsd = server.pid;
  let failed = 0;
  try {
    await waitForSocket(be, 20_000, server);
    for (const workload of workloads) {
      const res = Object.fromEntries(variants.map((v) => [v, []]));
      for (let i = 0; i < runs; i++) {
        const order = i % 2 ? [...variants].reverse() : variants;
        for (const v of order) {
          let proxy;
          let sock = be;
          const rec = path.join(work, `${v.replace(/[^a-z0-9]/gi, '_')}-${i}.vhsrec`);
          if (v !== 'direct') {
            sock = path.join(work, `fe-${v.replace(/[^a-z0-9]/gi, '_')}.sock`);
            const args = argsOf(v).map((a) => (a === 'REC' ? rec : a));
            proxy = await startProxy({
              listen: sock,
              connect: be,
              args: [...args, '--no-control'],
              logFile: path.join(work, `proxy-${v.replace(/[^a-z0-9]/gi, '_')}.log`),
              // VHS_BLK_CPU_PROF=DIR: a node --cpu-prof profile of each daemon (bench/cpuprofile-top.js reads it)
              ...(process.env.VHS_BLK_CPU_PROF ? { nodeArgs: ['--cpu-prof', '--cpu-prof-dir', process.env.VHS_BLK_CPU_PROF] } : {}),
            });
          }
          try {
            res[v].push(await benchOnce(sock, workload, proxy?.pid, v));
          } finally {
            if (proxy) await proxy.stop();
          }
          // what vhostscope says of the same requests, from the recording's ring snapshots
          const r = res[v].at(-1);
          if (r.latency && argsOf(v)?.includes('REC') && readsRings(v)) r.stats = statsLatency(rec, workload.includes('write') ? 'write' : 'read');
          fs.rmSync(rec, { force: true });
          console.log(`${workload} run ${i + 1}/${runs} ${v.padEnd(12)} ${res[v].at(-1).iops.toFixed(0)} IOPS`);
        }
      }
      const base = median(res.direct?.map((r) => r.iops) ?? []);
      console.log(`\n## ${workload} (4 KiB, ${requestsOf(workload)} requests, ${runs} runs per variant, alternating)`);
      console.log(
        'variant'.padEnd(12) +
          'IOPS med'.padStart(10) +
          'min'.padStart(8) +
          'max'.padStart(8) +
          'ratio'.padStart(7) +
          ' us/req' +
          '  per request: CPU us and context switches (front-end | daemon | qsd)',
      );
      for (const v of variants) {
        const iops = res[v].map((r) => r.iops);
        const med = median(iops);
        const ratio = base ? med / base : NaN;
        const proc = (name) => {
          const xs = res[v].map((r) => r.perProc[name]).filter(Boolean);
          return xs.length ? `${median(xs.map((x) => x.cpuUs)).toFixed(1)} us ${median(xs.map((x) => x.cs)).toFixed(2)} cs` : '-';
        };
        console.log(
          v.padEnd(12) +
            med.toFixed(0).padStart(10) +
            Math.min(...iops)
              .toFixed(0)
              .padStart(8) +
            Math.max(...iops)
              .toFixed(0)
              .padStart(8) +
            ratio.toFixed(3).padStart(7) +
            ` ${(1e6 / med).toFixed(1).padStart(6)}` +
            `  ${proc('frontend')} | ${proc('daemon')} | ${proc('qsd')}${v === 'floor-observe' ? ` | observer ${proc('observer')}` : ''}`,
        );
        const timed = res[v].filter((r) => r.latency);
        if (timed.length) {
          const pct = (xs) => `p50 ${median(xs.map((x) => x.p50)).toFixed(1)} p99 ${median(xs.map((x) => x.p99)).toFixed(1)} us`;
          const seen = timed.filter((r) => r.stats);
          const off = seen.length ? median(seen.map((r) => r.stats.p50 / r.latency.p50)) * 100 - 100 : 0;
          const vs = seen.length ? `; vhostscope stats: ${pct(seen.map((r) => r.stats))} (p50 ${off.toFixed(1)} % off the front-end's)` : '';
          console.log(`${''.padEnd(12)} latency as the front-end timed it: ${pct(timed.map((r) => r.latency))}${vs}`);
        }
        const target = readsRings(v) ? TARGET - 0.05 : TARGET;
        // an observing variant without --rings may instead be within 1.1x of the floor of observing, where that ran
        const floor =
          res['floor-observe']?.length && (argsOf(v) ?? []).includes('--observe') && !readsRings(v) ? median(res['floor-observe'].map((r) => r.iops)) : 0;
        if (v === 'direct' || v === 'floor-observe' || !base || ratio >= target) continue;
        if (floor && med >= floor / 1.1) {
          console.log(
            `${''.padEnd(12)} under ${target.toFixed(2)} of direct, and ${(floor / med).toFixed(3)}x the floor of observing (target 1.1x): met there`,
          );
          continue;
        }
        failed++;
        console.log(
          `NOT MET: ${workload} ${v} at ${ratio.toFixed(3)} of direct (target ${target.toFixed(2)}${floor ? `; ${(floor / med).toFixed(3)}x the floor, target 1.1x` : ''})`,
        );
      }
      console.log('per thread and request (medians; threads under 0.5 us of CPU left out): CPU us, waiting for a CPU us, context switches');
      for (const v of variants) {
        const keys = [...new Set(res[v].flatMap((r) => Object.keys(r.perThread)))];
        const cells = keys
          .map((k) => {
            const xs = res[v].map((r) => r.perThread[k] ?? { cpuUs: 0, cs: 0, waitUs: 0 });
            return { k, cpu: median(xs.map((x) => x.cpuUs)), wait: median(xs.map((x) => x.waitUs)), cs: median(xs.map((x) => x.cs)) };
          })
          .filter((c) => c.cpu >= 0.5)
          .sort((a, b) => b.cpu - a.cpu)
          .map((c) => `${c.k} ${c.cpu.toFixed(1)}/${c.wait.toFixed(1)}/${c.cs.toFixed(2)}`);
        console.log(`  ${v.padEnd(12)} ${cells.join(' | ')}`);
      }
    }
  } finally {
    await server.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
  if (failed) {
    console.log(`\n${failed} variant(s) under target`);
    process.exitCode = 1;
  }
})().catch((e) => {
  console.error(e);
  process.exit(2);
});
