#!/usr/bin/env node
/**
 * The live daemon fuzzed from both sides (lab/live-fuzz.ts) for an hour by default:
 * mutated real sessions as the front-end, a back-end that answers and mangles, fds of every
 * kind. Targets: no crash, no hang (status within 2 s), no internal error, nothing but JSON in
 * the daemon's log, fds and RSS flat after warm-up, SIGTERM within 2 s. Prints cases per second
 * and how the sessions ended (what the daemon found).
 *   node bench/live-fuzz.js [seconds=3600] [seed=1]
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { runLiveFuzz } = require('../lab/live-fuzz');
const { Targets } = require('./lib');

const [seconds = '3600', seed = '1'] = process.argv.slice(2);
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-live-fuzz-'));
console.log(`live fuzz: ${seconds} s, seed ${seed}, work dir ${workDir}`);
let lastPrint = 0;
runLiveFuzz({
  seconds: Number(seconds),
  seed: Number(seed),
  workDir,
  onCheck: (c) => {
    if (Date.now() - lastPrint < 60_000) return;
    lastPrint = Date.now();
    console.log(`  ${c.cases} cases, daemon fds ${c.fds}, RSS ${(c.rssKb / 1024).toFixed(1)} MiB, status in ${c.statusMs} ms`);
  },
})
  .then((r) => {
    console.log(`cases: ${r.cases} (${r.casesPerSecond.toFixed(1)}/s)`);
    console.log(`daemon fds after warm-up ${r.fds.afterWarmup}, at the end ${r.fds.end}, most ${r.fds.max}`);
    console.log(
      `daemon RSS after warm-up ${(r.rssKb.afterWarmup / 1024).toFixed(1)} MiB, at the end ${(r.rssKb.end / 1024).toFixed(1)} MiB, most ${(r.rssKb.max / 1024).toFixed(1)} MiB`,
    );
    console.log(`SIGTERM: exit ${r.exit.code} after ${r.exit.ms} ms`);
    console.log('how sessions ended:');
    for (const [k, n] of Object.entries(r.endings).sort((a, b) => b[1] - a[1])) console.log(`  ${String(n).padStart(7)}  ${k}`);
    for (const e of r.internalErrors.slice(0, 20)) console.log(`INTERNAL ERROR: ${e}`);
    for (const l of r.strayLines.slice(0, 20)) console.log(`NOT JSON: ${l}`);
    const t = new Targets();
    t.check('crashes', r.crashed ? 1 : 0, '<=', 0);
    t.check('hangs (status over 2 s)', r.hangs, '<=', 0);
    t.check('internal errors', r.internalErrors.length, '<=', 0);
    t.check('log lines that are not JSON', r.strayLines.length, '<=', 0);
    t.check('fds at the end over after warm-up', r.fds.end - r.fds.afterWarmup, '<=', 8);
    t.check('RSS growth after warm-up (MiB)', (r.rssKb.end - r.rssKb.afterWarmup) / 1024, '<=', 64);
    t.check('SIGTERM to exit (ms)', r.exit.ms, '<=', 2000);
    t.check('exit code', r.exit.code ?? 1, '<=', 0);
    t.finish();
  })
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
