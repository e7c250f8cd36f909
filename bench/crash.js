#!/usr/bin/env node
/** Either peer SIGKILLed at random points, N iterations (default 100): see lab/crash.ts. */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { runCrashIterations } = require('../lab/crash');
const n = Number(process.argv[2] ?? 100);
(async () => {
  const r = await runCrashIterations({
    workDir: fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-crash-')),
    iterations: n,
    seed: Number(process.argv[3] ?? 1),
    log: (l) => console.log(l),
  });
  console.log(
    `${r.iterations} iterations, ${r.sessions} sessions, killed frontend ${r.killed.frontend}x backend ${r.killed.backend}x; daemon fds ${r.fds.before} -> ${r.fds.after}`,
  );
  console.log(
    r.problems.length
      ? `PROBLEMS:\n${r.problems.join('\n')}`
      : 'CRASH OK: the daemon survived every kill, closed every session, freed every fd, and the recording is whole',
  );
  process.exit(r.problems.length ? 1 : 0);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
