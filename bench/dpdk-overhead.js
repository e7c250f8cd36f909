#!/usr/bin/env node
/**
 * Proxy overhead on real DPDK peers: handshake-to-ready time and testpmd Mpps, direct and
 * through `vhostscope proxy` (its own process, JSON log to a file), alternating runs in the
 * same session and comparing medians (this 2-vCPU machine is noisy). Prints ratios.
 * Targets: Mpps ratio >= 0.98, handshake ratio <= 1.05.
 *   node bench/dpdk-overhead.js [runs-per-variant=5] [seconds=3] [mode=txonly]
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const path = require('node:path');
const os = require('node:os');
const fs = require('node:fs');
const { runDpdkScenario } = require('../dist/demo/dpdk-scenario');
const { startProxy } = require('../lab/proxy-process');

const runs = Number(process.argv[2] ?? 5);
const seconds = Number(process.argv[3] ?? 3);
const mode = process.argv[4] ?? 'txonly';
const { median, roundOrder, Targets } = require('./lib');

async function once(proxied, i) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `vhs-bench-${proxied ? 'proxy' : 'direct'}-${i}-`));
  let proxy;
  try {
    const r = await runDpdkScenario({
      workDir: work,
      mode,
      durationS: seconds,
      proxy: proxied
        ? async (listen, connect) => {
            proxy = await startProxy({ listen, connect, logFile: path.join(work, 'proxy.log') });
          }
        : undefined,
    });
    if (r.problems.length) throw new Error(r.problems.join('; '));
    return r;
  } finally {
    if (proxy) await proxy.stop();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

(async () => {
  const res = { direct: [], proxy: [] };
  for (let i = 0; i < runs; i++) {
    for (const v of roundOrder(['direct', 'proxy'], i)) {
      const r = await once(v === 'proxy', i);
      res[v].push(r);
      console.log(`run ${i + 1}/${runs} ${v.padEnd(6)}: ${(r.rxPps / 1e6).toFixed(2)} Mpps, handshake ${r.handshakeMs} ms`);
    }
  }
  const mpps = (v) => median(res[v].map((r) => r.rxPps / 1e6));
  const hs = (v) => median(res[v].map((r) => r.handshakeMs));
  console.log(
    `median Mpps      : direct ${mpps('direct').toFixed(2)}  proxied ${mpps('proxy').toFixed(2)}  ratio ${(mpps('proxy') / mpps('direct')).toFixed(3)} (target >= 0.98)`,
  );
  console.log(`median handshake : direct ${hs('direct')} ms  proxied ${hs('proxy')} ms  ratio ${(hs('proxy') / hs('direct')).toFixed(3)} (target <= 1.05)`);
  const t = new Targets();
  t.check('Mpps ratio proxied/direct', mpps('proxy') / mpps('direct'), '>=', 0.98);
  t.check('handshake time ratio proxied/direct', hs('proxy') / hs('direct'), '<=', 1.05);
  t.finish();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
