#!/usr/bin/env node
// `npm install`: use the prebuilt addon shipped in prebuilds/<platform>-<arch> when it loads
// here; otherwise build it from source (scripts/build-native.js: node-gyp against the running
// Node's own headers). A checkout without prebuilds always builds.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const prebuilt = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`, 'vhostscope_native.node');
if (fs.existsSync(prebuilt)) {
  // load it in a child: a prebuild that does not fit (libc, CPU) must not fail the install
  const r = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(prebuilt)})`], { stdio: 'pipe', encoding: 'utf8' });
  if (r.status === 0) {
    console.log(`vhostscope: using the prebuilt addon ${path.relative(root, prebuilt)}`);
    process.exit(0);
  }
  console.log(`vhostscope: the prebuilt addon does not load here (${(r.stderr || '').trim().split('\n').pop()}); building from source`);
}
const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js')], { stdio: 'inherit', cwd: root });
process.exit(r.status ?? 1);
