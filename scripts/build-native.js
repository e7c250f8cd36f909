#!/usr/bin/env node
// Builds the native addon with node-gyp against the running Node's own headers.
// Why: node-gyp otherwise downloads a headers tarball, and these machines reach no
// download site. The system Node ships its headers under <prefix>/include/node.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const prefix = path.resolve(path.dirname(process.execPath), '..');
const args = ['rebuild'];
if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${prefix}`);

const candidates = [process.env.npm_config_node_gyp, path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].filter(
  Boolean,
);
const gyp = candidates.find((p) => fs.existsSync(p));
if (!gyp) {
  console.error('build-native: node-gyp not found (looked in: ' + candidates.join(', ') + ')');
  process.exit(1);
}
const { STAMP, sourcesHash } = require('./native-sources');
const hash = sourcesHash(); // of the sources as this build reads them
const r = spawnSync(process.execPath, [gyp, ...args], { stdio: 'inherit', cwd: path.resolve(__dirname, '..') });
if (r.status === 0) fs.writeFileSync(STAMP, `${hash}\n`);
process.exit(r.status ?? 1);
