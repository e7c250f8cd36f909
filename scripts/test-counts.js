#!/usr/bin/env node
// Reads vitest's JSON report and prints "PASSED FAILED SKIPPED". A file that failed without a
// failed test (it did not load, or its beforeAll threw) counts each of its tests as failed, or
// one failure when it declared none: a broken file never shows as passed or merely skipped.
'use strict';
const fs = require('node:fs');

const report = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of report.testResults ?? []) {
  const tests = file.assertionResults ?? [];
  const fileBroken = file.status === 'failed' && !tests.some((t) => t.status === 'failed');
  if (fileBroken) {
    failed += Math.max(1, tests.filter((t) => t.status !== 'passed').length);
    passed += tests.filter((t) => t.status === 'passed').length;
    continue;
  }
  for (const t of tests) {
    if (t.status === 'passed') passed++;
    else if (t.status === 'failed') failed++;
    else skipped++; // skipped, pending, todo
  }
}
console.log(`${passed} ${failed} ${skipped}`);
