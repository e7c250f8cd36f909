/**
 * The daemon as a user runs it, recording: the file is readable while being written, a SIGKILL
 * of the daemon leaves every complete frame readable, and a restarted daemon appends a new
 * segment without ever writing after a torn frame.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Peer } from '../../src/demo/process';
import { startProxy } from '../../lab/proxy-process';
import { native, type Channel } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { readRecording } from '../../src/recording/reader';
import { tmpDir, until } from '../helpers';
import { answering, scriptedBackend } from '../peers';

describe('proxy --record', () => {
  it('is readable while written, survives SIGKILL, and a restart appends a new segment', async () => {
    const dir = tmpDir('cli-rec');
    const fe = path.join(dir, 'fe.sock');
    const be = path.join(dir, 'be.sock');
    const file = path.join(dir, 'r.vhsrec');
    const backend = scriptedBackend(be, answering({ [Request.GET_FEATURES]: Buffer.alloc(8) }));
    const start = (): Promise<Peer> => startProxy({ listen: fe, connect: be, args: ['--record', file], logFile: path.join(dir, `proxy-${Date.now()}.log`) });
    const talk = async (n: number): Promise<Channel> => {
      const replies: Buffer[] = [];
      const ch = new native.Channel(
        native.connectUnix(fe),
        65536,
        (m) => replies.push(m),
        () => {},
      );
      ch.start();
      for (let i = 0; i < n; i++) ch.send(encodeMessage(Request.GET_FEATURES, 1));
      await until(() => replies.length === n, 5000, 'replies');
      return ch;
    };

    let p = await start();
    const c1 = await talk(50);
    // readable while the daemon runs: frames appear within the flush interval
    await until(() => readRecording(file).records.filter((r) => r.type === 'message').length === 100, 5000, 'recorded messages');
    expect(readRecording(file).torn).toBeUndefined();
    p.kill('SIGKILL');
    await p.waitExit(5000);
    c1.close();
    const afterKill = readRecording(file);
    expect(afterKill.records.filter((r) => r.type === 'message')).toHaveLength(100);
    expect(afterKill.records.some((r) => r.type === 'session-end')).toBe(false); // it died: no end

    // simulate the worst case of a kill: half a frame at the end
    fs.appendFileSync(file, Buffer.from([40, 0, 0, 0, 1, 2, 3, 4, 5]));
    expect(readRecording(file).torn).toBeDefined();
    fs.rmSync(fe, { force: true });
    p = await start();
    const c2 = await talk(3);
    c2.close();
    await until(() => readRecording(file).records.some((r) => r.type === 'session-end'), 5000, 'session end');
    p.kill('SIGTERM');
    expect(await p.waitExit(10_000)).toBe(0);
    const final = readRecording(file);
    expect(final.torn).toBeUndefined();
    const types = final.records.map((r) => r.type);
    expect(types.filter((t) => t === 'header')).toHaveLength(2);
    expect(final.records.find((r) => r.type === 'recovered')).toMatchObject({ tornBytes: 9 });
    expect(final.records.filter((r) => r.type === 'message')).toHaveLength(106);
    expect(final.records.at(-1)).toMatchObject({ type: 'session-end', reason: 'the frontend closed the connection' });
    backend.close();
  }, 60_000);
});
