#!/usr/bin/env node
/**
 * Where a proxied DPDK run loses packets per second: every thread of both testpmds, the daemon and
 * this bench, sampled over each measurement window (/proc/PID/task/TID/{stat,schedstat,status}):
 * CPU time, time runnable but waiting for a CPU, voluntary and involuntary context switches, CPUs
 * seen. Variants alternate in one process; per thread the medians over the runs are printed.
 *   node bench/dpdk-threads.js [runs-per-variant=4] [seconds=3] [variants=direct,proxy]
 * variants: direct | proxy (defaults) | passthrough (--no-interpose) | rings (--rings=headers)
 *           | "proxy:ARGS" with extra daemon arguments separated by spaces
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const path = require('node:path');
const os = require('node:os');
const fs = require('node:fs');
const { runDpdkScenario } = require('../dist/demo/dpdk-scenario');
const { startProxy } = require('../lab/proxy-process');
const { watchThreads, cpuTimes, cpuDelta } = require('../lab/thread-usage');

const runs = Number(process.argv[2] ?? 4);
const seconds = Number(process.argv[3] ?? 3);
const variantNames = (process.argv[4] ?? 'direct,proxy').split(',');
const ARGS = { direct: undefined, proxy: [], passthrough: ['--no-interpose'], rings: ['--rings=headers'] };
const argsOf = (v) => (v.startsWith('proxy:') ? v.slice(6).split(' ').filter(Boolean) : ARGS[v]);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length ? (s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2) : 0;
};

/** testpmd's and node's thread names, with the process they belong to */
function label(proc, name) {
  return `${proc}:${name}`;
}

async function once(variant, i) {
  const extra = argsOf(variant);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `vhs-threads-${i}-`));
  let proxy, watch, pids;
  try {
    const r = await runDpdkScenario({
      workDir: work,
      mode: 'txonly',
      durationS: seconds,
      proxy: extra
        ? async (listen, connect) => {
            proxy = await startProxy({ listen, connect, args: extra, logFile: path.join(work, 'proxy.log') });
          }
        : undefined,
      onWindow: (phase, p) => {
        if (phase === 'start') {
          pids = { fe: p.frontend, be: p.backend, daemon: proxy?.pid, bench: process.pid };
          // sampled 5 times a second: /proc reads cost this process CPU the lcores would miss
          watch = watchThreads(Object.values(pids).filter(Boolean), 200);
          cpu0 = cpuTimes();
        } else {
          usage = watch.stop();
          cpu = cpuDelta(cpu0, cpuTimes());
        }
      },
    });
    if (r.problems.length) throw new Error(r.problems.join('; '));
    const procOf = Object.fromEntries(Object.entries(pids).map(([k, v]) => [v, k]));
    return { mpps: r.rxPps / 1e6, cpu, threads: usage.map((u) => ({ ...u, key: label(procOf[u.pid], u.name) })) };
  } finally {
    if (proxy) await proxy.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}
let usage, cpu0, cpu;

(async () => {
  const res = Object.fromEntries(variantNames.map((v) => [v, []]));
  for (let i = 0; i < runs; i++) {
    const order = i % 2 ? [...variantNames].reverse() : variantNames;
    for (const v of order) {
      const r = await once(v, i);
      res[v].push(r);
      const lc = r.threads.filter((t) => t.runMs > seconds * 500); // the polling lcores
      console.log(
        `run ${i + 1}/${runs} ${v.padEnd(12)} ${r.mpps.toFixed(2)} Mpps; polling lcores: ${lc.map((t) => `${t.key} cpu${[...t.cpus].join('/')} ran ${t.runMs.toFixed(0)} ms waited ${t.waitMs.toFixed(1)} ms, ${t.involuntary} preemptions`).join('; ')}; steal ${r.cpu.map((c, n) => `cpu${n} ${c.steal} ms`).join(', ')}`,
      );
    }
  }
  for (const v of variantNames) {
    const mp = res[v].map((r) => r.mpps);
    console.log(
      `\n## ${v}: Mpps median ${median(mp).toFixed(2)} (min ${Math.min(...mp).toFixed(2)}, max ${Math.max(...mp).toFixed(2)}), window ${seconds * 1000} ms`,
    );
    const keys = [...new Set(res[v].flatMap((r) => r.threads.map((t) => t.key)))].sort();
    console.log('thread'.padEnd(34) + 'run ms'.padStart(9) + 'wait ms'.padStart(9) + 'vol cs'.padStart(9) + 'invol cs'.padStart(9) + '  cpus');
    for (const k of keys) {
      const ts = res[v].map((r) => r.threads.filter((t) => t.key === k));
      const sum = (f) => median(ts.map((xs) => xs.reduce((a, t) => a + f(t), 0)));
      const run = sum((t) => t.runMs),
        wait = sum((t) => t.waitMs),
        vol = sum((t) => t.voluntary),
        invol = sum((t) => t.involuntary);
      if (run < 0.5 && invol === 0 && wait < 0.5) continue;
      const cpus = [...new Set(ts.flat().flatMap((t) => [...t.cpus]))].sort().join(',');
      console.log(
        k.slice(0, 33).padEnd(34) +
          run.toFixed(1).padStart(9) +
          wait.toFixed(1).padStart(9) +
          String(vol).padStart(9) +
          String(invol).padStart(9) +
          '  ' +
          cpus,
      );
    }
  }
  console.log('\n## CPU time by state per window (medians, ms): user / system / irq / idle / steal (the hypervisor ran something else)');
  for (const v of variantNames)
    console.log(
      `${v.padEnd(12)} ` +
        res[v][0].cpu
          .map((_, n) => `cpu${n} ` + ['user', 'system', 'irq', 'idle', 'steal'].map((k) => median(res[v].map((r) => r.cpu[n][k]))).join(' / '))
          .join('   '),
    );
  const base = median(res[variantNames[0]].map((r) => r.mpps));
  for (const v of variantNames.slice(1)) console.log(`ratio ${v}/${variantNames[0]}: ${(median(res[v].map((r) => r.mpps)) / base).toFixed(3)}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
