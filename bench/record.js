#!/usr/bin/env node
/**
 * Recording throughput: notification events/s through the Recorder (batching, delta encoding,
 * framing, asynchronous writes), bytes per notification event on disk, and the process RSS
 * while recording; compared in the same run with a direct path that appends the relay's raw
 * 16-byte events to a file (less work: no framing, no CRC, no batching). Runs alternate, medians
 * and spread are printed. Targets, checked (exit 1 when missed): >= 1 M events/s, <= 16
 * bytes/event, every event read back, RSS flat (the second half's peak within 32 MiB of the
 * first sample).
 *   node --expose-gc bench/record.js [millions=20] [runs=3]   (--expose-gc: also report the live heap after GC)
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Recorder } = require('../dist/recording/recorder');
const { readRecording } = require('../dist/recording/reader');

const { median, spread, roundOrder, Targets } = require('./lib');

const millions = Number(process.argv[2] ?? 20);
const runs = Number(process.argv[3] ?? 3);
const N = millions * 1e6;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-bench-record-'));
const mib = (b) => (b / 1048576).toFixed(1);

async function recorder() {
  const file = path.join(dir, 'r.vhsrec');
  fs.rmSync(file, { force: true }); // the Recorder appends to an existing file
  const rec = new Recorder(file);
  let ts = 1_000_000_000n;
  rec.onEvent({ type: 'session-start', ts, session: 1, listenPath: '/l', connectPath: '/c', frontend: 'auto', interpose: true, peers: {} });
  const rss = [];
  const heap = [];
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    ts += BigInt(1500 + (i % 13) * 37); // ~1.5-2 µs apart, like a busy relay
    rec.onEvent({ type: 'notification', ts, session: 1, vring: i & 1, kind: i & 1 ? 'call' : 'kick', count: 1 });
    if (i % 1_000_000 === 999_999) {
      if (global.gc) global.gc();
      rss.push(process.memoryUsage().rss);
      heap.push(process.memoryUsage().heapUsed);
      await new Promise((r) => setImmediate(r)); // let the asynchronous writes run, as in the daemon
    }
  }
  rec.onEvent({ type: 'session-end', ts, session: 1, reason: 'bench', messages: { 'F>B': 0, 'B>F': 0 }, fdsForwarded: 0, vrings: [], relayPairs: [] });
  await rec.close();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const size = fs.statSync(file).size;
  const scan = readRecording(file);
  const notified = scan.records.filter((r) => r.type === 'notify').reduce((n, r) => n + r.dt.length, 0);
  const dropped = scan.records.filter((r) => r.type === 'dropped').reduce((n, r) => n + r.notifications, 0);
  return { rate: N / secs, bytesPerEvent: size / N, rss, heap, notified, dropped, secs };
}

async function direct() {
  const file = path.join(dir, 'raw.bin');
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(16 * 65536);
  let ts = 1_000_000_000n;
  const t0 = process.hrtime.bigint();
  let off = 0;
  const writes = [];
  for (let i = 0; i < N; i++) {
    ts += BigInt(1500 + (i % 13) * 37);
    chunk.writeBigUInt64LE(ts, off);
    chunk.writeUInt32LE(i & 1, off + 8);
    chunk.writeUInt32LE(1, off + 12);
    off += 16;
    if (off === chunk.length) {
      writes.push(new Promise((r) => fs.write(fd, Buffer.from(chunk), r)));
      off = 0;
      if (writes.length > 8) await writes.shift();
    }
  }
  await Promise.all(writes);
  fs.closeSync(fd);
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  return { rate: N / secs, bytesPerEvent: fs.statSync(file).size / N };
}

(async () => {
  const results = { direct: [], recorder: [] };
  for (let i = 0; i < runs; i++) {
    for (const v of roundOrder(['direct', 'recorder'], i)) {
      const r = v === 'direct' ? await direct() : await recorder();
      results[v].push(r);
      if (v === 'direct') console.log(`  direct   ${(r.rate / 1e6).toFixed(2)} M events/s, ${r.bytesPerEvent.toFixed(1)} bytes/event`);
      else
        console.log(
          `  recorder ${(r.rate / 1e6).toFixed(2)} M events/s (${r.secs.toFixed(1)} s), ${r.bytesPerEvent.toFixed(2)} bytes/event, ${r.notified} read back, ${r.dropped} dropped, RSS first ${mib(r.rss[0])} MiB, last ${mib(r.rss.at(-1))} MiB`,
        );
    }
  }
  const d = results.direct,
    r = results.recorder;
  const rate = (xs) => xs.map((x) => x.rate / 1e6);
  console.log(`# ${runs} alternating runs of ${millions} M notification events`);
  console.log(`direct (raw 16-byte events, no framing): median ${median(rate(d)).toFixed(2)} M events/s [${spread(rate(d))}]`);
  console.log(
    `recorder: median ${median(rate(r)).toFixed(2)} M events/s [${spread(rate(r))}], ${median(r.map((x) => x.bytesPerEvent)).toFixed(2)} bytes/event on disk`,
  );
  const growth = r.map((x) => Math.max(...x.rss.slice(Math.floor(x.rss.length / 2))) - x.rss[0]);
  console.log(
    `recorder RSS growth while recording (second half's peak minus the first sample): median ${mib(median(growth))} MiB [${mib(Math.min(...growth))}-${mib(Math.max(...growth))}]`,
  );
  const heaps = r.filter((x) => x.heap[0] !== undefined);
  if (heaps.length) console.log(`live JS heap after GC: max ${mib(Math.max(...heaps.flatMap((x) => x.heap)))} MiB`);
  console.log(`ratio recorder/direct (medians): ${(median(rate(r)) / median(rate(d))).toFixed(2)}`);
  const t = new Targets();
  t.check('recorder M events/s (median)', median(rate(r)), '>=', 1);
  t.check('bytes per event on disk (median)', median(r.map((x) => x.bytesPerEvent)), '<=', 16);
  t.check('RSS growth MiB (median)', median(growth) / 1048576, '<=', 32);
  for (const x of r) if (x.notified + x.dropped !== N) t.loss(`recorder: ${x.notified} read back + ${x.dropped} dropped of ${N}`);
  t.finish();
  fs.rmSync(dir, { recursive: true, force: true });
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
