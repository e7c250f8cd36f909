/**
 * `proxy --reply-watchdog MS`: a due reply that has not come is told while it is still awaited
 * (with the request, who waits and who owes it), counted in the metrics, and its late arrival
 * told too; a flight recording is pinned around it.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startProxy } from '../../lab/proxy-process';
import { encodeMessage, Request } from '../../src/protocol';
import { tmpDir, until } from '../helpers';
import { scriptedBackend, scriptedFrontend, reply } from '../peers';

describe('proxy --reply-watchdog', () => {
  it('tells an overdue reply as it waits, counts and pins it, and tells when it came', async () => {
    const dir = tmpDir('watchdog');
    const fe = path.join(dir, 'fe.sock');
    const be = path.join(dir, 'be.sock');
    const rec = path.join(dir, 'rec') + '/';
    const backend = scriptedBackend(be); // answers nothing until told
    const port = await new Promise<number>((resolve) => {
      const srv = net.createServer().listen(0, '127.0.0.1', () => {
        const a = srv.address() as net.AddressInfo;
        srv.close(() => resolve(a.port));
      });
    });
    const p = await startProxy({
      listen: fe,
      connect: be,
      args: ['--reply-watchdog', '300', '--record', rec, '--keep', '64MiB', '--metrics', `127.0.0.1:${port}`],
      logFile: path.join(dir, 'proxy.log'),
    });
    const front = scriptedFrontend(fe);
    const overdue = () =>
      p
        .log()
        .split('\n')
        .filter((l) => l.includes('"event":"reply-overdue"'))
        .map((l) => JSON.parse(l) as { msg: string; session: number; request: string; waiting: string });
    try {
      front.send(encodeMessage(Request.GET_VRING_BASE, 1, Buffer.alloc(8)));
      const conn = await backend.connected();
      await until(() => overdue().length === 1, 5000, 'the alarm');
      const [alarm] = overdue();
      expect(alarm).toMatchObject({ session: 1, request: 'GET_VRING_BASE', waiting: 'frontend' });
      expect(alarm!.msg).toMatch(/^session 1: the frontend has waited 0\.\d s for the backend's reply to GET_VRING_BASE$/);
      // pinned: the flight recorder keeps the window around it
      await until(() => fs.existsSync(path.join(rec, 'pins.jsonl')), 5000, 'the pin');
      expect(fs.readFileSync(path.join(rec, 'pins.jsonl'), 'utf8')).toContain('reply overdue: GET_VRING_BASE');
      // counted: as a finding of the live watchdog
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(metrics).toMatch(/^vhostscope_findings_total\{[^}]*rule="reply-overdue",severity="warning"\} 1$/m);
      // the answer, late
      conn.send(reply(Request.GET_VRING_BASE, Buffer.alloc(8)));
      await until(() => front.got.length === 1 && overdue().length === 2, 5000, 'the late answer');
      expect(overdue()[1]!.msg).toMatch(/^session 1: the backend answered GET_VRING_BASE after \d+\.\d s$/);
      // in time: nothing more
      front.send(encodeMessage(Request.GET_FEATURES, 1));
      await until(() => conn.got.length === 2);
      conn.send(reply(Request.GET_FEATURES, Buffer.alloc(8)));
      await new Promise((r) => setTimeout(r, 600));
      expect(overdue()).toHaveLength(2);
    } finally {
      front.close();
      await p.stop();
      backend.close();
    }
  });
});
