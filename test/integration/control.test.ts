/**
 * The control socket of a daemon run as a user runs it: `vhostscope status`, `tail` and
 * `rules add|list|remove` as separate processes, changing what a live session does; bad
 * requests get an error and never hurt the daemon; rules are recorded with the session.
 */
import { execFile, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI, startProxy } from '../../lab/proxy-process';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import { tmpDir, until } from '../helpers';
import { reply, scriptedBackend } from '../peers';

const run = promisify(execFile);
const cli = async (...args: string[]): Promise<string> => (await run(process.execPath, [CLI, ...args])).stdout;

describe('control socket', () => {
  it('status, tail and rules against a live session', async () => {
    const dir = tmpDir('control');
    const fe = path.join(dir, 'fe.sock');
    const be = path.join(dir, 'be.sock');
    const ctl = `${fe}.ctl`;
    const file = path.join(dir, 'r.vhsrec');
    const got: number[] = [];
    const backend = scriptedBackend(be, (g, conn) => {
      got.push(g.code);
      if (g.code === Request.GET_FEATURES) conn.send(reply(g.code, Buffer.alloc(8)));
    });
    const proxy = await startProxy({
      listen: fe,
      connect: be,
      args: ['--record', file, '--fault', 'delay GET_FEATURES ms=1'],
      logFile: path.join(dir, 'proxy.log'),
    });
    const replies: Buffer[] = [];
    const front = new native.Channel(
      native.connectUnix(fe),
      65536,
      (m) => replies.push(m),
      () => {},
    );
    front.start();
    try {
      await until(() => fs.existsSync(ctl), 5000, 'the control socket'); // made just after the listening socket
      expect(fs.statSync(ctl).mode & 0o777).toBe(0o600);
      front.send(encodeMessage(Request.SET_OWNER, 1));
      front.send(encodeMessage(Request.GET_FEATURES, 1));
      await until(() => replies.length === 1, 5000, 'GET_FEATURES reply');

      // tail: a separate process following the live log
      const tail = spawn(process.execPath, [CLI, 'tail', '--control', ctl, '--json']);
      let tailed = '';
      tail.stdout.on('data', (d: Buffer) => (tailed += d.toString()));
      await new Promise((r) => setTimeout(r, 500));

      const status = JSON.parse(await cli('status', '--control', ctl, '--json'));
      expect(status.sessions).toHaveLength(1);
      expect(status.sessions[0]).toMatchObject({ session: 1, frontend: 'listen', messages: { 'F>B': 2, 'B>F': 1 } });
      expect(status.rules).toEqual([expect.objectContaining({ id: '1', text: 'delay GET_FEATURES ms=1', applied: 1 })]);
      const human = await cli('status', '--control', fe); // the listen path works too
      expect(human).toMatch(/session 1: frontend on the listen side; channels main; messages F>B 2 B>F 1/);
      expect(human).toMatch(/1 +delay GET_FEATURES ms=1 +\(applied 1\)/);

      expect(await cli('rules', 'add', '--control', ctl, 'drop SET_OWNER id=no-owner')).toBe('added rule no-owner: drop SET_OWNER\n');
      await expect(cli('rules', 'add', '--control', ctl, 'drop SET_OWNR')).rejects.toThrow(
        /SET_OWNR is not a request of the main channel \(did you mean SET_OWNER\?\)/,
      );
      front.send(encodeMessage(Request.SET_OWNER, 1));
      front.send(encodeMessage(Request.GET_FEATURES, 1));
      await until(() => replies.length === 2, 5000, 'second GET_FEATURES reply');
      expect(got).toEqual([Request.SET_OWNER, Request.GET_FEATURES, Request.GET_FEATURES]); // the second SET_OWNER was dropped
      expect(await cli('rules', 'list', '--control', ctl)).toMatch(/no-owner drop SET_OWNER +\(applied 1\)/);
      expect(await cli('rules', 'remove', '--control', ctl, 'no-owner')).toBe('removed rule no-owner: drop SET_OWNER (applied 1)\n');
      await expect(cli('rules', 'remove', '--control', ctl, 'nope')).rejects.toThrow(/no rule with id nope/);

      // garbage on the control socket: an error line, and the daemon carries on
      const answer = await new Promise<string>((resolve) => {
        const s = net.createConnection({ path: ctl }, () => s.write('{"cmd": "explode"}\n'));
        let b = '';
        s.on('data', (d) => (b += d.toString()));
        s.on('close', () => resolve(b));
      });
      expect(JSON.parse(answer)).toMatchObject({ ok: false, error: expect.stringMatching(/unknown command "explode"/) });

      await until(() => tailed.includes('"request":"SET_OWNER"') && tailed.includes('"event":"fault"'), 5000, 'the tail to show the live messages');
      const lines = tailed
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      expect(lines.find((l) => l.event === 'fault')).toMatchObject({ rule: 'no-owner', action: 'drop', detail: 'F>B SET_OWNER dropped' });
      tail.kill();
    } finally {
      front.close();
      proxy.kill('SIGTERM');
      await proxy.waitExit(10_000);
      backend.close();
    }
    expect(fs.existsSync(ctl)).toBe(false); // removed on SIGTERM
    // the recording has what the rules did, in order with the messages (a dropped message at the time it arrived)
    const events = recordingEvents(readRecording(file).records);
    const trail = events
      .filter((e) => e.type === 'fault' || e.type === 'message')
      .map((e) =>
        e.type === 'fault' ? `fault ${e.rule} ${e.action}` : `${e.decoded.name}${e.decoded.reply ? ' reply' : ''}${e.undelivered ? ` (${e.undelivered})` : ''}`,
      );
    expect(trail).toEqual([
      'SET_OWNER',
      'fault 1 delay',
      'GET_FEATURES',
      'GET_FEATURES reply',
      'SET_OWNER (dropped)',
      'fault no-owner drop',
      'fault 1 delay',
      'GET_FEATURES',
      'GET_FEATURES reply',
    ]);
  }, 60_000);
});
