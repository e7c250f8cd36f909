/** `vhostscope proxy --check`: findings are logged live, with the rule id and the message. */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { startProxy } from '../../lab/proxy-process';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { tmpDir, until } from '../helpers';
import { scriptedBackend } from '../peers';

describe('proxy --check', () => {
  it('logs a finding as the bad reply passes', async () => {
    const dir = tmpDir('cli-check');
    const fe = path.join(dir, 'fe.sock');
    const be = path.join(dir, 'be.sock');
    // replies with NEED_REPLY set: QEMU would drop the connection (VU001)
    const backend = scriptedBackend(be, (_g, conn) => conn.send(encodeMessage(Request.GET_FEATURES, 0xd, Buffer.alloc(8))));
    const p = await startProxy({ listen: fe, connect: be, args: ['--check'], logFile: path.join(dir, 'proxy.log') });
    try {
      let got = 0;
      const ch = new native.Channel(
        native.connectUnix(fe),
        65536,
        () => got++,
        () => {},
      );
      ch.start();
      ch.send(encodeMessage(Request.GET_FEATURES, 1));
      await until(() => got === 1);
      await until(() => p.log().includes('"event":"finding"'), 5000, 'the finding');
      const finding = p
        .log()
        .split('\n')
        .filter((l) => l.includes('"event":"finding"'))
        .map((l) => JSON.parse(l))[0];
      expect(finding).toMatchObject({ id: 'VU001', rule: 'reply-flags', severity: 'error', at: 'B>F GET_FEATURES reply' });
      ch.close();
    } finally {
      await p.stop();
      backend.close();
    }
  });
});
