#!/usr/bin/env node
// After `stryker run`: the mutation score of each part the test plan names (src/protocol,
// src/recording, src/faults, src/replay, the checker), from Stryker's JSON report. Score =
// killed (or timed out) / every valid mutant, the uncovered ones included (Stryker's "total").
// Exits 1 when a part is under the bar (85 %, or VHS_MUTATION_BAR).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const report = JSON.parse(fs.readFileSync(process.argv[2] ?? path.join(__dirname, '..', 'reports', 'mutation', 'mutation.json'), 'utf8'));
const bar = Number(process.env.VHS_MUTATION_BAR ?? 85);
const PARTS = [
  ['src/protocol', (f) => f.startsWith('src/protocol/')],
  ['src/recording', (f) => f.startsWith('src/recording/')],
  ['src/faults', (f) => f.startsWith('src/faults/')],
  ['src/replay', (f) => f.startsWith('src/replay/')],
  ['checker', (f) => f === 'src/analysis/checker.ts' || f === 'src/analysis/rules.ts' || f.startsWith('src/analysis/check/')],
];
let failed = 0;
for (const [name, inPart] of PARTS) {
  const c = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, other: 0 };
  let files = 0;
  for (const [file, v] of Object.entries(report.files)) {
    if (!inPart(path.relative(process.cwd(), path.resolve(file)).split(path.sep).join('/'))) continue;
    files++;
    for (const m of v.mutants) c[m.status in c ? m.status : 'other']++;
  }
  if (!files) continue; // not mutated in this run (stryker run --mutate ...)
  const detected = c.Killed + c.Timeout;
  const valid = detected + c.Survived + c.NoCoverage;
  const score = valid ? (100 * detected) / valid : 100;
  const ok = score >= bar;
  if (!ok) failed++;
  console.log(
    `${ok ? 'ok  ' : 'LOW '} ${name.padEnd(14)} ${score.toFixed(2).padStart(6)} %  (${detected} detected, ${c.Survived} survived, ${c.NoCoverage} not covered, ${c.other} errors/ignored; ${files} files)`,
  );
}
if (failed) {
  console.log(`${failed} part(s) under ${bar} %`);
  process.exitCode = 1;
}
