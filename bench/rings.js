#!/usr/bin/env node
/**
 * What --rings costs the data path, against a direct connection in the same run (alternating
 * runs, medians): DPDK testpmd Mpps (virtio-user <-> vhost; both poll, so a ring is snapshot
 * about once) and QEMU guest ping RTT (a snapshot at every kick and call, headers decoded).
 * Variants: direct, proxy (interposed), proxy --rings=headers, in an order that rotates each
 * round (bench/lib.js). Prints medians, spreads and ratios to direct; exits 1 when a run loses
 * packets, pings or I/O.
 *   node bench/rings.js [dpdk-runs=3] [ping-rounds=2] [pings=40]
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const path = require('node:path');
const os = require('node:os');
const fs = require('node:fs');
const { runDpdkScenario } = require('../dist/demo/dpdk-scenario');
const { runQemuPing } = require('../lab/qemu-net');
const { startProxy } = require('../lab/proxy-process');
const { runQemuBlkLatency } = require('../lab/qemu-blk');

const dpdkRuns = Number(process.argv[2] ?? 3);
const pingRounds = Number(process.argv[3] ?? 2);
const pings = Number(process.argv[4] ?? 40);
const blkRounds = Number(process.argv[5] ?? 2);
const ios = Number(process.argv[6] ?? 500);
const { median, roundOrder, Targets } = require('./lib');
const targets = new Targets();
const VARIANTS = { direct: undefined, proxy: [], 'proxy --rings=headers': ['--rings=headers', '--device', 'net'] };
const BLK_VARIANTS = { direct: undefined, proxy: [], 'proxy --rings=headers': ['--rings=headers', '--device', 'blk'] };
const spread = (xs, d = 0) => `${Math.min(...xs).toFixed(d)}-${Math.max(...xs).toFixed(d)}`;

async function dpdk(args) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-bench-rings-'));
  let proxy;
  try {
    const r = await runDpdkScenario({
      workDir: work,
      mode: 'txonly',
      durationS: 3,
      proxy: args
        ? async (listen, connect) => {
            proxy = await startProxy({ listen, connect, args, logFile: path.join(work, 'proxy.log') });
          }
        : undefined,
    });
    if (r.problems.length) targets.loss(`DPDK ${args ? args.join(' ') || 'proxy' : 'direct'}: ${r.problems.join('; ')}`);
    return r.rxPps / 1e6;
  } finally {
    if (proxy) await proxy.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

(async () => {
  const mpps = Object.fromEntries(Object.keys(VARIANTS).map((v) => [v, []]));
  for (let i = 0; i < dpdkRuns; i++) for (const v of roundOrder(Object.keys(VARIANTS), i)) mpps[v].push(await dpdk(VARIANTS[v]));
  if (dpdkRuns)
    console.log(
      `# DPDK txonly Mpps, ${dpdkRuns} alternating runs: ${Object.entries(mpps)
        .map(([v, xs]) => `${v} ${median(xs).toFixed(2)} [${spread(xs, 2)}]`)
        .join('; ')}`,
    );
  if (dpdkRuns) for (const v of Object.keys(VARIANTS).slice(1)) console.log(`Mpps ratio ${v} / direct: ${(median(mpps[v]) / median(mpps.direct)).toFixed(3)}`);
  const rtt = Object.fromEntries(Object.keys(VARIANTS).map((v) => [v, []]));
  for (let i = 0; i < pingRounds; i++) {
    for (const v of roundOrder(Object.keys(VARIANTS), i)) {
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-bench-rings-ping-'));
      const r = await runQemuPing({ workDir: work, pings, interval: 0.1, proxyArgs: VARIANTS[v] });
      if (r.replied < pings * 0.9) targets.loss(`${v}: only ${r.replied}/${r.sent} ping replies`);
      rtt[v].push(...r.rttMs);
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  if (pingRounds)
    console.log(
      `# QEMU guest ping RTT p50, ${pingRounds} alternating rounds of ${pings}: ${Object.entries(rtt)
        .map(([v, xs]) => `${v} ${median(xs).toFixed(3)} ms [${spread(xs, 3)}]`)
        .join('; ')}`,
    );
  if (pingRounds)
    for (const v of Object.keys(VARIANTS).slice(1)) console.log(`ping RTT ratio ${v} / direct: ${(median(rtt[v]) / median(rtt.direct)).toFixed(2)}`);
  const blk = Object.fromEntries(Object.keys(BLK_VARIANTS).map((v) => [v, { read: [], write: [] }]));
  for (let i = 0; i < blkRounds; i++) {
    for (const v of roundOrder(Object.keys(BLK_VARIANTS), i)) {
      const work = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-bench-rings-blk-'));
      const passes = await runQemuBlkLatency({ workDir: work, ios, passes: 3, proxyArgs: BLK_VARIANTS[v] });
      for (const p of passes) {
        if (p.reads < ios || p.writes < ios) targets.loss(`${v}: a pass completed ${p.reads} reads and ${p.writes} writes of ${ios}`);
        blk[v].read.push(p.readUs);
        blk[v].write.push(p.writeUs);
      }
      fs.rmSync(work, { recursive: true, force: true });
    }
  }
  for (const op of blkRounds ? ['read', 'write'] : []) {
    console.log(
      `# QEMU guest 4 KiB direct ${op} latency (queue depth 1, mean per pass of ${ios}), ${blkRounds} alternating rounds x 3 passes: ${Object.entries(blk)
        .map(([v, r]) => `${v} ${median(r[op]).toFixed(0)} µs [${spread(r[op])}]`)
        .join('; ')}`,
    );
    for (const v of Object.keys(BLK_VARIANTS).slice(1))
      console.log(`blk ${op} latency ratio ${v} / direct: ${(median(blk[v][op]) / median(blk.direct[op])).toFixed(2)}`);
  }
  targets.finish(); // no ratio target here: it reports; lost packets, pings or I/O fail it
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
