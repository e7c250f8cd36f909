#!/usr/bin/env node
/**
 * Soak (lab/soak.ts): `vhostscope proxy` with N concurrent synthetic sessions under
 * notification floods, MSI-X churn (SET_VRING_CALL re-sent every tick by every session),
 * --rings=headers, a rotating flight recording, a backend that stops reading for the middle
 * third, session churn and Prometheus scrapes. Prints the daemon's fd count and RSS as it goes;
 * at the end checks that both stayed flat and that every control message was delivered and
 * recorded. Exit status 0 when it all held.
 *   node bench/soak.js [seconds=1800] [sessions=64] [tick-ms=10] [--profile]
 * --profile: the daemon runs with node --cpu-prof; its profile is left in the work dir.
 * --node=FLAG (repeatable): a node/V8 flag for the daemon, e.g. --node=--max-semi-space-size=64
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { runSoak } = require('../lab/soak');

const profile = process.argv.includes('--profile');
const nodeFlags = process.argv.filter((a) => a.startsWith('--node=')).map((a) => a.slice('--node='.length));
const [seconds = '1800', sessions = '64', tickMs = '10'] = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-soak-'));
console.log(
  `soak: ${sessions} sessions for ${seconds} s, a tick every ${tickMs} ms${nodeFlags.length ? `, daemon flags ${nodeFlags.join(' ')}` : ''}; work dir ${workDir}`,
);
runSoak({
  workDir,
  seconds: Number(seconds),
  sessions: Number(sessions),
  tickMs: Number(tickMs),
  sampleMs: 10_000,
  churnMs: 5_000,
  log: (l) => console.log(l),
  daemonNodeArgs: [...nodeFlags, ...(profile ? ['--cpu-prof', `--cpu-prof-dir=${path.join(workDir, 'profile')}`] : [])],
})
  .then((r) => {
    console.log(JSON.stringify(r.figures));
    process.exit(r.ok ? 0 : 1);
  })
  .catch((err) => {
    console.error(err);
    process.exit(1);
  });
