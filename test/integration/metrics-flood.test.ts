/**
 * Security review finding 9, attempted: a local user opens thousands of connections to
 * `proxy --metrics` and leaves them idle. They share the daemon's fd table (at its end, accept
 * would fail for the peers' sessions): the endpoint holds a bounded number at once, drops the
 * rest as they come, and answers a scrape once the flood is gone.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_CONNECTIONS } from '../../src/control/metrics-server';
import { freePort } from '../../src/demo/process';
import { startProxy } from '../../lab/proxy-process';
import { tmpDir, until } from '../helpers';

const fdsOf = (pid: number): number => fs.readdirSync(`/proc/${pid}/fd`).length;

/** a scrape (curl, its own process) answered 200 */
function scrapeAnswered(port: number): boolean {
  try {
    return (
      execFileSync('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${port}/metrics`], { encoding: 'utf8', timeout: 5000 }) === '200'
    );
  } catch {
    return false;
  }
}

describe('the metrics endpoint under a connection flood', () => {
  it('10 000 idle connections: the daemon holds at most its bound of them, and scrapes work again after', async () => {
    const dir = tmpDir('metrics-flood');
    const port = await freePort();
    const proxy = await startProxy({
      listen: path.join(dir, 'fe.sock'),
      connect: path.join(dir, 'be.sock'),
      args: ['--metrics', `127.0.0.1:${port}`, '--no-control'],
      logFile: path.join(dir, 'proxy.log'),
    });
    const sockets: net.Socket[] = [];
    try {
      await until(() => scrapeAnswered(port), 20_000, 'the endpoint');
      const before = fdsOf(proxy.pid);
      let opened = 0;
      for (let i = 0; i < 10_000; i++) {
        const s = net.connect(port, '127.0.0.1', () => opened++);
        s.on('error', () => undefined); // the ones dropped are reset
        sockets.push(s);
      }
      await until(() => opened + sockets.filter((s) => s.destroyed).length >= 10_000, 30_000, 'the connections to be made or refused');
      await new Promise((r) => setTimeout(r, 500));
      const during = fdsOf(proxy.pid);
      expect(during - before, `daemon fds ${before} -> ${during}`).toBeLessThanOrEqual(MAX_CONNECTIONS + 8);
      expect(proxy.alive).toBe(true);
      for (const s of sockets) s.destroy();
      await until(() => scrapeAnswered(port), 20_000, 'a scrape after the flood');
    } finally {
      for (const s of sockets) s.destroy();
      proxy.kill('SIGTERM');
      expect(await proxy.waitExit(10_000)).toBe(0);
    }
  }, 90_000);
});
