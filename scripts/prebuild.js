#!/usr/bin/env node
// `npm pack` (prepack): builds the addon and places it in prebuilds/<platform>-<arch>, which the
// package ships and scripts/install-native.js uses instead of compiling on the user's machine.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js')], { stdio: 'inherit', cwd: root });
if (r.status !== 0) process.exit(r.status ?? 1);
const dir = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
fs.mkdirSync(dir, { recursive: true });
fs.copyFileSync(path.join(root, 'build', 'Release', 'vhostscope_native.node'), path.join(dir, 'vhostscope_native.node'));
console.log(`prebuild: ${path.relative(root, dir)}/vhostscope_native.node`);
