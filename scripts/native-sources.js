// What the native addon is built from, as one hash: build-native.js stamps build/Release with it
// and the test run (test/global-setup.ts) rebuilds when the stamp does not match, so no test ever
// loads an addon older than native/.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const STAMP = path.join(root, 'build', 'Release', 'vhostscope_native.sources');

function sourcesHash() {
  const files = [
    'binding.gyp',
    ...fs
      .readdirSync(path.join(root, 'native'))
      .filter((f) => /\.(cc|h)$/.test(f))
      .sort()
      .map((f) => `native/${f}`),
  ];
  const h = crypto.createHash('sha256');
  for (const f of files)
    h.update(`${f}\0`)
      .update(fs.readFileSync(path.join(root, f)))
      .update('\0');
  return h.digest('hex');
}

/** undefined when build/Release holds an addon built from the current sources, else why not */
function staleReason() {
  if (!fs.existsSync(path.join(root, 'build', 'Release', 'vhostscope_native.node'))) return 'build/Release has no addon';
  if (!fs.existsSync(STAMP)) return 'build/Release has no sources stamp';
  return fs.readFileSync(STAMP, 'utf8').trim() === sourcesHash() ? undefined : 'native/ changed since build/Release was built';
}

module.exports = { STAMP, sourcesHash, staleReason };
