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
 *   node bench/blk.js [runs-per-variant=8] [requests=20000] [variants=direct,proxy,passthrough,rings,record] [workloads=read1,read32,write1,write32]
 * variants: direct | proxy | passthrough (--no-interpose) | rings (--rings=headers) | record (--record)
 *           | observe (--observe) | observe-rings (--observe --rings=headers) | observe-record (--observe --record)
 *           | "proxy:ARGS" with extra daemon arguments separated by spaces
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Peer, waitForSocket } = require('../dist/demo/process');
const { fromRelease } = require('../dist/demo/release');
const { debian13Missing } = require('../dist/demo/debian13');
const { startProxy } = require('../lab/proxy-process');
const { watchThreads } = require('../lab/thread-usage');

const runs = Number(process.argv[2] ?? 8);
const requests = Number(process.argv[3] ?? 20000);
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
};
/** variants that read the rings: their target is 0.05 lower */
const readsRings = (v) => argsOf(v).some((a) => a.startsWith('--rings'));
/** a variant's daemon arguments: one of ARGS, or "proxy:ARGS" with extra arguments separated by spaces */
const argsOf = (v) => (v.startsWith('proxy:') ? v.slice(6).split(' ').filter(Boolean) : ARGS[v]);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length ? (s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2) : 0;
};

const missing = debian13Missing();
if (missing) {
  console.error(`bench/blk.js needs the Debian 13 root (libblkio, qemu-storage-daemon 10): ${missing}`);
  process.exit(2);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-blk-bench-'));
const img = path.join(work, 'disk.raw');
fs.writeFileSync(img, Buffer.alloc(0));
fs.truncateSync(img, 256 << 20);
const be = path.join(work, 'qsd.sock');

/** One qemu-img bench run against `sock`: IOPS, and per process CPU and context switches. */
async function benchOnce(sock, workload, daemonPid) {
  const write = workload.startsWith('write');
  const depth = Number(workload.replace(/^\D+/, ''));
  const run = fromRelease('debian13', [work], 'qemu-img', [
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
  const q = new Peer(run.cmd, run.args, { name: 'qemu-img', logFile: path.join(work, 'qemu-img.log'), env: run.env, timeoutMs: 600_000 });
  const pids = { 'qemu-img': q.pid, qsd, ...(daemonPid ? { daemon: daemonPid } : {}) };
  const watch = watchThreads(Object.values(pids), 100);
  const rc = await q.waitExit(600_000);
  const usage = watch.stop();
  const log = fs.readFileSync(path.join(work, 'qemu-img.log'), 'utf8');
  const m = /Run completed in ([\d.]+) seconds/.exec(log);
  if (rc !== 0 || !m) throw new Error(`qemu-img bench failed (exit ${rc}): ${log.slice(-500)}`);
  const perProc = {};
  for (const [name, pid] of Object.entries(pids)) {
    const ts = usage.filter((u) => u.pid === pid);
    perProc[name] = {
      cpuUs: (ts.reduce((a, t) => a + t.runMs, 0) * 1000) / requests,
      cs: ts.reduce((a, t) => a + t.voluntary + t.involuntary, 0) / requests,
    };
  }
  return { iops: requests / Number(m[1]), perProc };
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
          if (v !== 'direct') {
            sock = path.join(work, `fe-${v.replace(/[^a-z0-9]/gi, '_')}.sock`);
            const args = argsOf(v).map((a) => (a === 'REC' ? path.join(work, `${v}-${i}.vhsrec`) : a));
            proxy = await startProxy({
              listen: sock,
              connect: be,
              args: [...args, '--no-control'],
              logFile: path.join(work, `proxy-${v.replace(/[^a-z0-9]/gi, '_')}.log`),
            });
          }
          try {
            res[v].push(await benchOnce(sock, workload, proxy?.pid));
          } finally {
            if (proxy) await proxy.stop();
          }
          console.log(`${workload} run ${i + 1}/${runs} ${v.padEnd(12)} ${res[v].at(-1).iops.toFixed(0)} IOPS`);
        }
      }
      const base = median(res.direct?.map((r) => r.iops) ?? []);
      console.log(`\n## ${workload} (4 KiB, ${requests} requests, ${runs} runs per variant, alternating)`);
      console.log(
        'variant'.padEnd(12) +
          'IOPS med'.padStart(10) +
          'min'.padStart(8) +
          'max'.padStart(8) +
          'ratio'.padStart(7) +
          ' us/req' +
          '  per request: CPU us and context switches (qemu-img | daemon | qsd)',
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
            `  ${proc('qemu-img')} | ${proc('daemon')} | ${proc('qsd')}`,
        );
        const target = readsRings(v) ? TARGET - 0.05 : TARGET;
        if (v !== 'direct' && base && ratio < target) {
          failed++;
          console.log(`NOT MET: ${workload} ${v} at ${ratio.toFixed(3)} of direct (target ${target.toFixed(2)})`);
        }
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
