/**
 * The metrics endpoint answers from its own thread: a scrape while the forwarding loop is busy
 * gets the last figures, marked stale, instead of waiting for the loop (src/control/metrics-server.ts).
 */
import { spawn } from 'node:child_process';
import { Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { isLoopback, parseMetricsAddress, startMetricsServer } from '../../src/control/metrics-server';
import { freePort } from '../../src/demo/process';

/** curl in its own process, so that it runs while this thread is blocked: headers, body, seconds taken */
function scrape(port: number): Promise<{ head: string; body: string; seconds: number }> {
  return new Promise((resolve, reject) => {
    const c = spawn('curl', ['-s', '-D', '-', '-w', '\n%{time_total}', `http://127.0.0.1:${port}/metrics`]);
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', reject);
    c.on('exit', () => {
      const [head, rest] = out.split('\r\n\r\n');
      const i = rest.lastIndexOf('\n');
      resolve({ head, body: rest.slice(0, i), seconds: Number(rest.slice(i + 1)) });
    });
  });
}

/** This thread does nothing for `ms` (as a saturated forwarding loop answers nothing). */
const block = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

describe('the metrics address', () => {
  it(':PORT is loopback (no authentication, labels naming socket paths); every address must be asked for', () => {
    expect(parseMetricsAddress(':9464')).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(parseMetricsAddress('0.0.0.0:9464')).toEqual({ host: '0.0.0.0', port: 9464 });
    expect(parseMetricsAddress('[::1]:1')).toEqual({ host: '::1', port: 1 });
    expect(() => parseMetricsAddress('9464')).toThrow(/give HOST:PORT/);
    expect(() => parseMetricsAddress(':65536')).toThrow(/give HOST:PORT/);
    expect([':9464', '127.0.0.2:1', '[::1]:1', 'localhost:1'].map((a) => isLoopback(parseMetricsAddress(a).host))).toEqual([true, true, true, true]);
    expect(['0.0.0.0:1', '[::]:1', '10.0.0.1:1'].map((a) => isLoopback(parseMetricsAddress(a).host))).toEqual([false, false, false]);
  });
});

describe('metrics endpoint', () => {
  it('answers fresh figures, and the last ones marked stale while the forwarding thread is busy', async () => {
    const registry = new Registry();
    const g = new Gauge({ name: 'vhostscope_test_value', help: 'test', registers: [registry] });
    g.set(1);
    const port = await freePort();
    const errors: Error[] = [];
    const server = await startMetricsServer(registry, { host: '127.0.0.1', port }, (e) => errors.push(e), 200);
    try {
      const fresh = await scrape(port);
      expect(fresh.head).toMatch(/^HTTP\/1\.1 200/);
      expect(fresh.head).not.toMatch(/x-vhostscope-stale-ms/i);
      expect(fresh.body).toContain('vhostscope_test_value 1');
      g.set(2);
      const pending = scrape(port);
      block(1500);
      const stale = await pending;
      // answered while this thread was blocked, with what the previous scrape got
      expect(stale.seconds).toBeLessThan(1.4);
      expect(stale.head).toMatch(/^HTTP\/1\.1 200/);
      expect(stale.head).toMatch(/x-vhostscope-stale-ms: \d+/i);
      expect(stale.body).toContain('vhostscope_test_value 1');
      // the late figures were kept: once the thread is free, scrapes are fresh again
      expect((await scrape(port)).body).toContain('vhostscope_test_value 2');
      expect(errors).toEqual([]);
    } finally {
      server.close();
    }
  });

  it('says what is wrong when the address is taken', async () => {
    const port = await freePort();
    const first = await startMetricsServer(new Registry(), { host: '127.0.0.1', port }, () => undefined);
    try {
      await expect(startMetricsServer(new Registry(), { host: '127.0.0.1', port }, () => undefined)).rejects.toThrow(
        `--metrics 127.0.0.1:${port}: the address is in use`,
      );
    } finally {
      first.close();
    }
  });
});
