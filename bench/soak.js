#!/usr/bin/env node
/**
 * Soak: `vhostscope proxy --record` (its own process) with N concurrent sessions between
 * synthetic peers that do a real handshake (memfd memory table, interposed kick/call eventfds)
 * and then flood notifications and request/reply messages for the whole run. Every 10 s it prints
 * the daemon's fd count and RSS; at the end it checks that fd count and RSS stayed flat, that
 * every message reached the other side and the recording, and that every session's relay pairs
 * saw the same counts on both sides.
 * With --real, one of the sessions is a real DPDK pair (testpmd virtio-user txonly through the
 * daemon to testpmd vhost) carrying traffic for the whole run; its packet counts must match.
 *   node bench/soak.js [seconds=600] [sessions=64] [--real]
 */
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { native } = require('../dist/native');
const { encodeMessage, Request } = require('../dist/protocol');
const { sleep } = require('../dist/lab/process');
const { startProxy } = require('../dist/lab/proxy-process');
const { readRecording } = require('../dist/recording/reader');

const args = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const REAL = process.argv.includes('--real');
const SECONDS = Number(args[0] ?? 600);
const N = Number(args[1] ?? 64) - (REAL ? 1 : 0);
const { Testpmd } = require('../dist/lab/testpmd');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-soak-'));
const fe = path.join(dir, 'fe.sock');
const be = path.join(dir, 'be.sock');
const rec = path.join(dir, 'soak.vhsrec');
const u64 = (v) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };

// the synthetic backend: answers what needs an answer, keeps the eventfds it gets. A connection
// that opens with SET_OWNER is the real DPDK frontend: it is spliced to the real testpmd backend.
const backendFds = [];
let backendGot = 0;
const realBe = path.join(dir, 'real-be.sock');
function splice(fromCh, first, firstFds) {
  const to = new native.Channel(native.connectUnix(realBe), 65536, (m, fds) => fromCh.send(m, fds), () => fromCh.close());
  to.start();
  to.send(first, firstFds);
  return to;
}
const beListener = new native.Listener(native.listenUnix(be, 128, 0o600), (_e, fd) => {
  if (fd === null) return;
  let real;
  const ch = new native.Channel(fd, 65536, (m, fds) => {
    if (real) return real.send(m, fds);
    if (m.readUInt32LE(0) === Request.SET_OWNER) { real = splice(ch, m, fds); return; }
    backendGot++;
    const code = m.readUInt32LE(0);
    for (const f of fds) backendFds.push(f);
    if (code === Request.GET_FEATURES) ch.send(encodeMessage(code, 5, u64((1n << 30n) | (1n << 32n))));
    else if (code === Request.GET_PROTOCOL_FEATURES) ch.send(encodeMessage(code, 5, u64(1n << 3n)));
    else if ((m.readUInt32LE(4) & 8) !== 0) ch.send(encodeMessage(code, 5, u64(0)));
  }, () => {});
  ch.start();
});

function fdCount(pid) { try { return fs.readdirSync(`/proc/${pid}/fd`).length; } catch { return -1; } }
function rssMb(pid) { try { return Number(fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024; } catch { return -1; } }

(async () => {
  const proxy = await startProxy({ listen: fe, connect: be, args: ['--record', rec, '--stats-interval', '0'], logFile: path.join(dir, 'proxy.log'), timeoutMs: (SECONDS + 120) * 1000 });
  let realPair;
  if (REAL) {
    const beTp = new Testpmd({ name: 'real-be', workDir: dir, mainLcore: 0, forwardMode: 'rxonly', vdev: `net_vhost0,iface=${realBe},queues=1`, timeoutMs: (SECONDS + 120) * 1000 });
    await beTp.peer.waitForLog(/binding succeeded/, 30000);
    const feTp = new Testpmd({ name: 'real-fe', workDir: dir, mainLcore: 1, forwardMode: 'txonly', vdev: `net_virtio_user0,path=${fe},queues=1`, timeoutMs: (SECONDS + 120) * 1000 });
    await beTp.peer.waitForLog(/virtio is now ready for processing/, 60000);
    await feTp.peer.waitForLog(/testpmd> /, 60000);
    await beTp.start();
    await feTp.start();
    realPair = { beTp, feTp };
    console.log('real DPDK pair: traffic flowing through the daemon');
  }
  const sessions = [];
  for (let i = 0; i < N; i++) {
    let replies = 0;
    const ch = new native.Channel(native.connectUnix(fe), 65536, () => replies++, () => {});
    ch.start();
    const kicks = [], calls = [];
    ch.send(encodeMessage(Request.GET_FEATURES, 1));
    ch.send(encodeMessage(Request.GET_PROTOCOL_FEATURES, 1));
    ch.send(encodeMessage(Request.SET_PROTOCOL_FEATURES, 1, u64(1n << 3n)));
    const mem = Buffer.concat([Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]), u64(0), u64(1 << 20), u64(0x7f0000000000n), u64(0)]);
    ch.send(encodeMessage(Request.SET_MEM_TABLE, 9, mem), [native.memfdCreate('soak', 1 << 20)]);
    for (let v = 0; v < 2; v++) {
      const k = native.eventfd(0); kicks.push(native.dup(k));
      ch.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(v)), [k]);
      const c = native.eventfd(0); calls.push(native.dup(c));
      ch.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(v)), [c]);
      ch.send(encodeMessage(Request.SET_VRING_ENABLE, 1, Buffer.from([v, 0, 0, 0, 1, 0, 0, 0])));
    }
    sessions.push({ ch, kicks, calls, replies: () => replies, sent: 3 + 1 + 6, expectedReplies: 3 });
  }
  await sleep(2000);
  const samples = [];
  const t0 = Date.now();
  let kicksSent = 0, ticks = 0;
  while (Date.now() - t0 < SECONDS * 1000) {
    // flood: each session kicks both vrings and sends a GET_FEATURES round trip, 100 times a second
    for (const s of sessions) {
      for (const k of s.kicks) { native.eventfdWrite(k, 1); kicksSent++; }
      s.ch.send(encodeMessage(Request.GET_FEATURES, 1));
      s.sent++;
      s.expectedReplies++;
    }
    ticks++;
    if (ticks % 1000 === 0) {
      const s = { t: Math.round((Date.now() - t0) / 1000), fds: fdCount(proxy.pid), rss: rssMb(proxy.pid) };
      samples.push(s);
      console.log(`t=${s.t}s daemon fds=${s.fds} rss=${s.rss.toFixed(1)} MiB, kicks sent ${kicksSent}, backend got ${backendGot} messages`);
    }
    await sleep(10);
  }
  let realOk = true;
  if (realPair) {
    const f = await realPair.feTp.stopForwarding();
    await sleep(1000);
    const b = await realPair.beTp.stopForwarding();
    realOk = b.rx === f.tx && f.tx > 1000000;
    console.log(`real DPDK pair: frontend sent ${f.tx}, backend received ${b.rx} packets: ${realOk ? 'all crossed' : 'MISMATCH'}`);
    await realPair.feTp.quit();
    await realPair.beTp.quit();
  }
  await sleep(2000);
  const replies = sessions.reduce((n, s) => n + s.replies(), 0);
  const expected = sessions.reduce((n, s) => n + s.expectedReplies, 0);
  const sent = sessions.reduce((n, s) => n + s.sent, 0);
  for (const s of sessions) s.ch.close();
  await sleep(1000);
  proxy.kill('SIGTERM');
  await proxy.waitExit(30000);
  const scan = readRecording(rec);
  const msgs = scan.records.filter((r) => r.type === 'message').length;
  const ends = scan.records.filter((r) => r.type === 'session-end');
  const pairsOk = ends.every((e) => e.relayPairs.every((p) => p.read === p.written));
  const kicksRelayed = ends.reduce((n, e) => n + e.relayPairs.filter((p) => p.kind === 'kick').reduce((m, p) => m + p.written, 0), 0);
  const notifRecorded = scan.records.filter((r) => r.type === 'notify').reduce((n, r) => n + r.dt.length, 0);
  const dropped = ends.reduce((n, e) => n + e.droppedNotifications, 0);
  const half = samples.slice(Math.floor(samples.length / 2));
  console.log(`--- ${N} sessions, ${SECONDS} s`);
  console.log(`daemon fds: first ${samples[0]?.fds}, last ${samples.at(-1)?.fds}, second half min ${Math.min(...half.map((s) => s.fds))} max ${Math.max(...half.map((s) => s.fds))}`);
  console.log(`daemon RSS: first ${samples[0]?.rss.toFixed(1)} MiB, second half min ${Math.min(...half.map((s) => s.rss)).toFixed(1)} max ${Math.max(...half.map((s) => s.rss)).toFixed(1)} MiB, last ${samples.at(-1)?.rss.toFixed(1)} MiB`);
  console.log(`messages: sent ${sent} + replies expected ${expected}; frontends got ${replies} replies; backend got ${backendGot}; recording holds ${msgs} messages (${sent + expected} expected), torn: ${scan.torn ? scan.torn.reason : 'no'}`);
  console.log(`kicks: written ${kicksSent}, relayed (sum of counts) ${kicksRelayed}; notification events recorded ${notifRecorded}, dropped ${dropped}; relay pairs read == written in every session: ${pairsOk}`);
  // the real pair's own messages and kicks are in the recording too: count the synthetic ones
  const firstCode = (id) => scan.records.find((r) => r.type === 'message' && r.session === id)?.raw.readUInt32LE(0);
  const synthetic = new Set(ends.filter((e) => firstCode(e.session) === Request.GET_FEATURES).map((e) => e.session));
  const synthMsgs = scan.records.filter((r) => r.type === 'message' && synthetic.has(r.session)).length;
  const synthKicks = ends.filter((e) => synthetic.has(e.session)).reduce((n, e) => n + e.relayPairs.filter((p) => p.kind === 'kick').reduce((m, p) => m + p.written, 0), 0);
  console.log(`synthetic sessions: ${synthetic.size}, their recorded messages ${synthMsgs}, their relayed kicks ${synthKicks}`);
  const ok = realOk && replies === expected && backendGot === sent && synthMsgs === sent + expected && !scan.torn && pairsOk && synthKicks === kicksSent && ends.length === N + (REAL ? 1 : 0);
  console.log(ok ? 'SOAK OK' : 'SOAK FAILED');
  beListener.close();
  for (const f of backendFds) native.close(f);
  process.exit(ok ? 0 : 1);
})().catch((e) => { console.error(e); process.exit(1); });
