#!/usr/bin/env node
// `npm pack` (prepack): builds the addon and places it in prebuilds/<platform>-<arch>, which the
// package ships and scripts/install-native.js uses instead of compiling on the user's machine.
// With a cross compiler for arm64 (Debian: g++-aarch64-linux-gnu) it also builds
// prebuilds/linux-arm64, in a scratch copy of the sources so build/ stays this machine's.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const prefix = path.resolve(path.dirname(process.execPath), '..');
const gyp = path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');

function place(file, arch) {
  const dir = path.join(root, 'prebuilds', `linux-${arch}`);
  fs.mkdirSync(dir, { recursive: true });
  fs.copyFileSync(file, path.join(dir, 'vhostscope_native.node'));
  console.log(`prebuild: prebuilds/linux-${arch}/vhostscope_native.node`);
}

const cross = 'aarch64-linux-gnu-g++';
if (process.arch !== 'arm64' && spawnSync('which', [cross]).status === 0 && fs.existsSync(gyp)) {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'vhostscope-arm64-'));
  fs.cpSync(path.join(root, 'native'), path.join(scratch, 'native'), { recursive: true });
  fs.copyFileSync(path.join(root, 'binding.gyp'), path.join(scratch, 'binding.gyp'));
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(scratch, 'node_modules'));
  const env = { ...process.env, CC: 'aarch64-linux-gnu-gcc', CXX: cross, LINK: cross, AR: 'aarch64-linux-gnu-ar' };
  const r = spawnSync(process.execPath, [gyp, 'rebuild', '--arch=arm64', `--nodedir=${prefix}`], { stdio: 'inherit', cwd: scratch, env });
  if (r.status !== 0) process.exit(r.status ?? 1);
  place(path.join(scratch, 'build', 'Release', 'vhostscope_native.node'), 'arm64');
  fs.rmSync(scratch, { recursive: true, force: true });
} else if (process.arch !== 'arm64') console.log(`prebuild: no ${cross}: no linux-arm64 prebuild`);

const r = spawnSync(process.execPath, [path.join(__dirname, 'build-native.js')], { stdio: 'inherit', cwd: root });
if (r.status !== 0) process.exit(r.status ?? 1);
place(path.join(root, 'build', 'Release', 'vhostscope_native.node'), process.arch);
