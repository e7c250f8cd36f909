#!/usr/bin/env node
/**
 * What the flight recorder costs the data path: testpmd Mpps (virtio-user txonly -> vhost) direct,
 * and through one `vhostscope proxy --config` daemon that records to a flight-recorder directory
 * (--keep 32MiB --segment-size 2MiB --rings=headers) while a second device of the same daemon
 * carries a synthetic session flooded with kicks (up to 1 M/s from a writer process), so that
 * segments rotate and retention deletes continuously. The same flood without vhostscope (a process
 * reading the eventfd, as a backend would) is the baseline of the flooded variant: on 2 vCPUs that
 * both testpmds poll, the flood's writer takes CPU from them whoever consumes it. Variants
 * alternate; medians and spread are reported, with the flood rate reached and the segments
 * retention deleted. Target (the proxy's): Mpps ratio >= 0.98 against the same load direct.
 *   node bench/flight.js [runs-per-variant=3] [seconds=5] [flood-per-second=1000000]
 */
'use strict';
require('tsx/cjs'); // the lab is TypeScript, run from source; the product is measured as built (dist/)
const { median, roundOrder, Targets } = require('./lib');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { runDpdkScenario } = require('../dist/demo/dpdk-scenario');
const { Peer, waitForSocket, sleep } = require('../dist/demo/process');
const { CLI } = require('../lab/proxy-process');
const { native } = require('../dist/native');
const { encodeMessage, Request } = require('../dist/protocol');

const runs = Number(process.argv[2] ?? 3);
const seconds = Number(process.argv[3] ?? 5);
const floodRate = Number(process.argv[4] ?? 1e6);
const u64 = (v) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
};

/** The synthetic flooded device: a backend in this process, a frontend whose kicks a child process writes. */
async function startFlood(work) {
  const beSock = path.join(work, 'flood-be.sock');
  const backend = new native.Listener(native.listenUnix(beSock, 4, 0o600), (_e, fd) => {
    if (fd === null) return;
    const ch = new native.Channel(
      fd,
      65536,
      (m, fds) => {
        for (const f of fds) native.close(f);
        const code = m.readUInt32LE(0);
        if (code === Request.GET_FEATURES || code === Request.GET_PROTOCOL_FEATURES) ch.send(encodeMessage(code, 5, u64(0)));
      },
      () => {},
    );
    ch.start();
  });
  return { beSock, backend };
}

/**
 * The flood: a writer process kicks an eventfd as fast as it can (at most floodRate/s). Through
 * vhostscope (feSock given) the eventfd is the synthetic session's kick fd, relayed and recorded;
 * directly (no feSock) a consumer process reads it, as a backend would, so that the flood's own
 * CPU cost on this machine is in the baseline too.
 */
async function flood(feSock) {
  const kick = native.eventfd(0);
  const mine = native.dup(kick);
  let fe, consumer;
  if (feSock) {
    fe = new native.Channel(
      native.connectUnix(feSock),
      65536,
      () => {},
      () => {},
    );
    fe.start();
    fe.send(encodeMessage(Request.GET_FEATURES, 1));
    fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(0)), [kick]);
    fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(0)), [native.eventfd(0)]);
  } else {
    // sleeps in poll() until the eventfd is readable, then reads it: a backend's kick handler
    consumer = spawn(
      'python3',
      [
        '-c',
        [
          'import os, select',
          'p = select.poll(); p.register(3, select.POLLIN)',
          'while True:',
          '    p.poll()',
          '    try: os.read(3, 8)',
          '    except BlockingIOError: pass',
        ].join('\n'),
      ],
      { stdio: ['ignore', 'ignore', 'inherit', kick] },
    );
    native.close(kick);
  }
  await sleep(300);
  // the writer: as fast as it can, at most floodRate per second, counts on stdout when killed
  const child = spawn(
    process.execPath,
    [
      '-e',
      `
    const fs = require('fs'); const one = Buffer.alloc(8); one.writeBigUInt64LE(1n);
    let n = 0; const t0 = Date.now();
    process.on('SIGTERM', () => { process.stdout.write(String(n) + ' ' + (Date.now() - t0)); process.exit(0); });
    (function burst() {
      for (let i = 0; i < 1000; i++) { fs.writeSync(3, one); n++; }
      if (n > (Date.now() - t0) * ${floodRate / 1000}) setTimeout(burst, 1); else setImmediate(burst);
    })();`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit', mine] },
  );
  native.close(mine);
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  return {
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      fe?.close();
      consumer?.kill('SIGKILL');
      const [n, ms] = out.split(' ').map(Number);
      return n / (ms / 1000);
    },
  };
}

async function once(variant, i) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), `vhs-flight-${variant}-${i}-`));
  let daemon, fl, floodHandle;
  let floodPerS = 0;
  try {
    if (variant === 'direct+flood') floodHandle = await flood();
    const r = await runDpdkScenario({
      workDir: work,
      mode: 'txonly',
      durationS: seconds,
      proxy: variant.startsWith('direct')
        ? undefined
        : async (listen, connect) => {
            fl = await startFlood(work);
            const config = path.join(work, 'proxy.json');
            fs.writeFileSync(
              config,
              JSON.stringify({
                record: path.join(work, 'rec') + '/',
                keep: '8MiB',
                'segment-size': '1MiB',
                rings: 'headers',
                'stats-interval': 0,
                devices: [
                  { name: 'dpdk', listen, connect },
                  { name: 'flood', listen: path.join(work, 'flood.sock'), connect: fl.beSock },
                ],
              }),
            );
            daemon = new Peer(process.execPath, [CLI, 'proxy', '--config', config, '--json'], {
              name: 'proxy',
              logFile: path.join(work, 'proxy.log'),
              timeoutMs: 300_000,
            });
            await waitForSocket(listen, 20_000, daemon);
            await waitForSocket(path.join(work, 'flood.sock'), 20_000, daemon); // the devices start one after the other
            if (variant === 'flight+flood') floodHandle = await flood(path.join(work, 'flood.sock'));
          },
    });
    if (r.problems.length) throw new Error(r.problems.join('; '));
    if (floodHandle) floodPerS = await floodHandle.stop();
    let deleted = 0;
    if (daemon) {
      daemon.kill('SIGTERM');
      await daemon.waitExit(30_000);
      for (const l of fs.readFileSync(path.join(work, 'proxy.log'), 'utf8').split('\n')) {
        const m = /retention: deleted (\d+) segment/.exec(l);
        if (m) deleted += Number(m[1]);
      }
    }
    return { mpps: r.rxPps / 1e6, floodPerS, deleted };
  } finally {
    fl?.backend.close();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

(async () => {
  const variants = ['direct', 'flight', 'direct+flood', 'flight+flood'];
  const res = Object.fromEntries(variants.map((v) => [v, []]));
  for (let i = 0; i < runs; i++) {
    for (const v of roundOrder(variants, i)) {
      const r = await once(v, i);
      res[v].push(r);
      console.log(
        `run ${i + 1}/${runs} ${v.padEnd(12)}: ${r.mpps.toFixed(2)} Mpps${v.endsWith('+flood') ? `, flood ${(r.floodPerS / 1e6).toFixed(2)} M kicks/s written${r.deleted || v === 'flight+flood' ? `, retention deleted ${r.deleted} segments` : ''}` : ''}`,
      );
    }
  }
  // each proxied variant against the direct run with the same load
  const baseline = { flight: 'direct', 'flight+flood': 'direct+flood', 'direct+flood': 'direct' };
  for (const v of variants) {
    const xs = res[v].map((r) => r.mpps);
    const b = baseline[v];
    const ratio = b
      ? `, ratio to ${b} ${(median(xs) / median(res[b].map((r) => r.mpps))).toFixed(3)}${v.startsWith('flight') ? ' (target >= 0.98)' : ' (what the flood itself costs here)'}`
      : '';
    console.log(`${v.padEnd(12)}: median ${median(xs).toFixed(2)} Mpps (spread ${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})${ratio}`);
  }
  for (const v of ['direct+flood', 'flight+flood']) {
    const f = res[v];
    console.log(
      `${v} flood: median ${(median(f.map((r) => r.floodPerS)) / 1e6).toFixed(2)} M kicks/s written${v === 'flight+flood' ? `; retention deleted ${median(f.map((r) => r.deleted))} segments per run (median)` : ''}`,
    );
  }
  // the flooded pair's ratio compares unequal loads (the direct flood's consumer is a small poll
  // loop, the proxied one the daemon): it is reported, not a target
  const t = new Targets();
  const ratio = (v, b) => median(res[v].map((r) => r.mpps)) / median(res[b].map((r) => r.mpps));
  t.check('Mpps ratio flight/direct', ratio('flight', 'direct'), '>=', 0.98);
  t.finish();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
