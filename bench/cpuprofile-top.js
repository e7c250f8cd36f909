#!/usr/bin/env node
/**
 * Where a node --cpu-prof profile spent its time: self time per function, optionally only
 * between two points of the run (seconds from its start), with the busiest stacks.
 *   node bench/cpuprofile-top.js FILE.cpuprofile [from-s] [to-s] [top=25]
 */
'use strict';
const fs = require('node:fs');

const [file, fromS, toS, topN = '25'] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/cpuprofile-top.js FILE.cpuprofile [from-s] [to-s] [top]');
  process.exit(2);
}
const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
const nodes = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const name = (n) => `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`;

const from = fromS === undefined ? -Infinity : Number(fromS) * 1e6;
const to = toS === undefined ? Infinity : Number(toS) * 1e6;
const self = new Map();
const stacks = new Map();
let t = 0;
let total = 0;
for (let i = 0; i < prof.samples.length; i++) {
  t += prof.timeDeltas[i];
  if (t < from || t > to) continue;
  const dt = prof.timeDeltas[i + 1] ?? 0;
  const n = nodes.get(prof.samples[i]);
  total += dt;
  self.set(n.id, (self.get(n.id) ?? 0) + dt);
  // the stack, innermost last, without node's internals at the bottom
  const frames = [];
  for (let id = n.id; id !== undefined; id = parent.get(id)) frames.push(nodes.get(id));
  const key =
    frames
      .reverse()
      .filter((f) => f.callFrame.url.includes('/dist/'))
      .slice(-4)
      .map(name)
      .join(' > ') || name(n);
  stacks.set(key, (stacks.get(key) ?? 0) + dt);
}
const byName = new Map();
for (const [id, us] of self) byName.set(name(nodes.get(id)), (byName.get(name(nodes.get(id))) ?? 0) + us);
const ms = (us) => (us / 1000).toFixed(0).padStart(8);
console.log(
  `${(total / 1e6).toFixed(1)} s of samples${fromS !== undefined ? ` between ${fromS} s and ${toS ?? 'the end'}` : ''} (run: ${((prof.endTime - prof.startTime) / 1e6).toFixed(1)} s)`,
);
console.log('self ms   function');
for (const [k, us] of [...byName].sort((a, b) => b[1] - a[1]).slice(0, Number(topN))) console.log(`${ms(us)}  ${k}`);
console.log('\nbusiest stacks (vhostscope frames, innermost last)');
for (const [k, us] of [...stacks].sort((a, b) => b[1] - a[1]).slice(0, 12)) console.log(`${ms(us)}  ${k}`);
