/**
 * End to end: a real Prometheus server (Debian's `prometheus`) scrapes `proxy --metrics` while
 * the daemon carries a real DPDK session (testpmd virtio-user <-> proxy <-> testpmd vhost);
 * what Prometheus answers to queries matches what the daemon logged and recorded itself.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDpdkScenario } from '../../src/demo/dpdk-scenario';
import { Peer, freePort, sleep, tail } from '../../src/demo/process';
import { tmpDir } from '../helpers';
import { ProxyProcess, sessionEnd } from './harness/proxy';

interface Sample {
  metric: Record<string, string>;
  value: [number, string];
}

class Prometheus {
  readonly peer: Peer;
  constructor(
    readonly work: string,
    readonly port: number,
    target: string,
  ) {
    const config = path.join(work, 'prometheus.yml');
    fs.writeFileSync(
      config,
      `global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: vhostscope\n    static_configs:\n      - targets: ['${target}']\n`,
    );
    this.peer = new Peer(
      'prometheus',
      [`--config.file=${config}`, `--storage.tsdb.path=${path.join(work, 'tsdb')}`, `--web.listen-address=127.0.0.1:${port}`],
      { name: 'prometheus', logFile: path.join(work, 'prometheus.log'), timeoutMs: 120_000 },
    );
  }

  async query(q: string): Promise<Sample[]> {
    const res = await fetch(`http://127.0.0.1:${this.port}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { status: string; data: { result: Sample[] }; error?: string };
    if (body.status !== 'success') throw new Error(`${q}: ${body.error}`);
    return body.data.result;
  }

  /** Polls until `q` has a sample that `ok` accepts (Prometheus scrapes every second). */
  async waitFor(q: string, ok: (s: Sample[]) => boolean, timeoutMs = 30_000): Promise<Sample[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let got: Sample[] = [];
      try {
        got = await this.query(q);
        if (ok(got)) return got;
      } catch {
        /* not up yet */
      }
      if (!this.peer.alive) throw new Error(`prometheus exited (${JSON.stringify(this.peer.status)}) while waiting for ${q}; log:\n${tail(this.peer.log())}`);
      if (Date.now() > deadline)
        throw new Error(`prometheus: ${q} gave ${JSON.stringify(got)}; log:\n${tail(fs.readFileSync(path.join(this.work, 'prometheus.log'), 'utf8'))}`);
      await sleep(250);
    }
  }
}

const value = (s: Sample[]): number => (s[0] ? Number(s[0].value[1]) : NaN);

describe('Prometheus scraping proxy --metrics with a DPDK session', () => {
  it("answers queries with the daemon's own counts", async () => {
    const work = tmpDir('metrics');
    const metricsPort = await freePort();
    const prom = new Prometheus(work, await freePort(), `127.0.0.1:${metricsPort}`);
    const proxy = new ProxyProcess(work, ['--metrics', `127.0.0.1:${metricsPort}`]);
    try {
      await prom.waitFor('up', () => true); // Prometheus answers
      const r = await runDpdkScenario({
        workDir: work,
        mode: 'loop',
        durationS: 3,
        proxy: proxy.starter,
      });
      expect(r.problems).toEqual([]);
      // the session has ended; wait for a scrape that saw it end
      await prom.waitFor('vhostscope_sessions_ended_total', (s) => value(s) === 1);
      const msgs = proxy.messages();
      const byRequest = new Map<string, number>();
      for (const m of msgs) byRequest.set(`${m.request} ${m.dir}`, (byRequest.get(`${m.request} ${m.dir}`) ?? 0) + 1);
      const prometheus = new Map(
        (await prom.query('sum by (request, direction) (vhostscope_messages_total)')).map((s) => [
          `${s.metric.request} ${s.metric.direction}`,
          Number(s.value[1]),
        ]),
      );
      expect(prometheus).toEqual(byRequest);
      expect(byRequest.get('SET_VRING_KICK F>B')).toBe(2);
      expect(value(await prom.query('vhostscope_sessions_started_total'))).toBe(1);
      expect(value(await prom.query('vhostscope_sessions_active'))).toBe(0);
      expect(value(await prom.query('sum(vhostscope_findings_total)'))).toBeNaN(); // real peers: nothing flagged, no series
      // every relayed notification, by the relay thread's count and by the session's own figures
      const { vrings } = sessionEnd(proxy);
      const notified = vrings.reduce((n, v) => n + v.kicks + v.calls + v.errs, 0);
      expect(notified).toBeGreaterThan(0);
      expect(value(await prom.query('vhostscope_relay_notifications_total'))).toBe(notified);
      expect(value(await prom.query('vhostscope_relay_transit_seconds_count'))).toBeGreaterThan(0);
      // while the session lived, its slot (1) had per-vring series; they ended with it
      const perSlot = await prom.query('max by (vring, kind) (max_over_time(vhostscope_notifications_total{slot="1"}[5m]))');
      expect(perSlot.length).toBeGreaterThan(0);
      for (const s of perSlot) {
        const v = vrings.find((x) => String(x.vring) === s.metric.vring)!;
        expect(Number(s.value[1])).toBeLessThanOrEqual(s.metric.kind === 'kick' ? v.kicks : s.metric.kind === 'call' ? v.calls : v.errs);
      }
      expect(await prom.query('vhostscope_notifications_total')).toEqual([]); // gone with the session
      // recording bytes: what the file holds once the daemon flushed it
      expect(value(await prom.query('vhostscope_recording_bytes_total'))).toBeGreaterThan(1000);
      expect(value(await prom.query('process_open_fds'))).toBeGreaterThan(3);
      expect(value(await prom.query('process_resident_memory_bytes'))).toBeGreaterThan(10e6);
    } finally {
      prom.peer.kill('SIGTERM');
      await prom.peer.waitExit(10_000);
      expect(await proxy.stop()).toBe(0);
    }
  }, 120_000);
});
