/**
 * Out of fds: when accept() fails with EMFILE the listening socket stays readable; the daemon
 * must pause instead of spinning, keep its sessions forwarding, say so once, and accept again
 * once fds are free. The daemon runs as its own process under a low RLIMIT_NOFILE (prlimit).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI } from '../../lab/proxy-process';
import { Peer, sleep, waitForSocket } from '../../src/demo/process';
import { native, type Channel } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { tmpDir, until } from '../helpers';
import { reply, scriptedBackend } from '../peers';

/** user+system CPU seconds of a process so far (/proc/PID/stat, clock ticks of 1/100 s). */
function cpuSeconds(pid: number): number {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

describe('fd exhaustion', () => {
  it('pauses accepting instead of spinning, keeps sessions going, and accepts again once fds are free', async () => {
    const dir = tmpDir('emfile');
    const be = path.join(dir, 'be.sock');
    const fe = path.join(dir, 'fe.sock');
    // answers every request with its own payload
    const backend = scriptedBackend(be, (g, conn) => conn.send(reply(g.code, g.payload)), { backlog: 128 });
    const log = path.join(dir, 'proxy.log');
    const proxy = new Peer('prlimit', ['--nofile=64:64', process.execPath, CLI, 'proxy', '--listen', fe, '--connect', be, '--json', '--no-control'], {
      name: 'proxy',
      logFile: log,
      timeoutMs: 120_000,
    });
    const clients: Channel[] = [];
    const replies = new Map<Channel, number>();
    const client = (): Channel => {
      const ch: Channel = new native.Channel(
        native.connectUnix(fe),
        65536,
        () => replies.set(ch, (replies.get(ch) ?? 0) + 1),
        () => {},
      );
      ch.start();
      ch.send(encodeMessage(Request.GET_CONFIG, 1, Buffer.alloc(12)));
      return ch;
    };
    try {
      await waitForSocket(fe, 20_000, proxy);
      for (let i = 0; i < 60; i++) clients.push(client());
      await until(() => proxy.log().includes('pausing new connections'), 20_000, 'the daemon to run out of fds');
      const served = () => clients.filter((c) => replies.has(c)).length;
      await until(() => served() > 0, 10_000, 'the sessions that fit to be served');
      // paused, not spinning: well under a CPU over two seconds (a spinning loop takes all of one)
      const c0 = cpuSeconds(proxy.pid);
      await sleep(2000);
      expect(cpuSeconds(proxy.pid) - c0).toBeLessThan(1.0);
      // the sessions it has keep forwarding
      const live = clients.find((c) => replies.has(c))!;
      const before = replies.get(live)!;
      live.send(encodeMessage(Request.GET_CONFIG, 1, Buffer.alloc(12)));
      await until(() => replies.get(live)! > before, 5000, 'a live session to forward');
      expect(proxy.log().match(/pausing new connections/g)).toHaveLength(1);
      // free the fds (the connections still in the backlog are accepted and end at once): a new one is served
      for (const c of clients) c.close();
      const late = client();
      clients.push(late);
      await until(() => replies.has(late), 20_000, 'a new connection once fds are free');
      expect(proxy.log()).toMatch(/accepting again/);
      expect(proxy.alive).toBe(true);
    } finally {
      for (const c of clients) c.close();
      await proxy.stop();
      backend.close();
    }
  }, 90_000);
});
