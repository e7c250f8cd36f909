/**
 * `proxy --reconnect-watchdog S` (field cases C7, C8): after the back-end ends a session, a
 * device with no working session for S seconds is told, counted and pinned once; a session that
 * works again is told too; a session the front-end ended (a VM going away) is no alarm.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startProxy } from '../../lab/proxy-process';
import { encodeMessage, Request } from '../../src/protocol';
import { tmpDir, until } from '../helpers';
import { scriptedBackend, scriptedFrontend } from '../peers';

describe('proxy --reconnect-watchdog', () => {
  it('tells a device left without a working session after its back-end ended one, and when one works again', async () => {
    const dir = tmpDir('reconnect');
    const fe = path.join(dir, 'fe.sock');
    const be = path.join(dir, 'be.sock');
    const backend = scriptedBackend(be);
    const p = await startProxy({ listen: fe, connect: be, args: ['--reconnect-watchdog', '1'], logFile: path.join(dir, 'proxy.log') });
    const lines = (event: string) =>
      p
        .log()
        .split('\n')
        .filter((l) => l.includes(`"event":"${event}"`))
        .map((l) => JSON.parse(l) as { msg: string; downMs: number });
    const fronts = [scriptedFrontend(fe)];
    try {
      fronts[0].send(encodeMessage(Request.SET_OWNER, 1));
      const first = await backend.connected();
      await until(() => first.got.length === 1, 5000, 'SET_OWNER');
      first.ch.close(); // the back-end goes away; the front-end does not come back (yet)
      await until(() => lines('no-reconnect').length === 1, 5000, 'the alarm');
      expect(lines('no-reconnect')[0].msg).toMatch(
        /^.*fe\.sock: no working session for 1\.\d s since the back-end ended the last one \(the backend closed the connection\): the front-end has not reconnected, or the back-end is not back \(field cases C7, C8\)$/,
      );
      await new Promise((r) => setTimeout(r, 1500));
      expect(lines('no-reconnect')).toHaveLength(1); // once
      // the front-end comes back: told, and the watchdog is quiet again
      fronts.push(scriptedFrontend(fe));
      fronts[1].send(encodeMessage(Request.SET_OWNER, 1));
      await until(() => lines('reconnected').length === 1, 5000, 'the return');
      expect(lines('reconnected')[0].msg).toMatch(/fe\.sock: a session works again after \d+\.\d s without one$/);
      // the front-end ends this one: a VM going away is no alarm
      await backend.connected(2);
      fronts[1].close();
      await new Promise((r) => setTimeout(r, 2000));
      expect(lines('no-reconnect')).toHaveLength(1);
    } finally {
      for (const f of fronts) f.close();
      await p.stop();
      backend.close();
    }
  });
});
