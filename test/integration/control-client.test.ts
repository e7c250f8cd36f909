/**
 * The control client against a daemon that answers oddly: a line that is not JSON is an error
 * that names the socket (it threw from a data handler, a stack trace), and a character split
 * across two chunks arrives whole.
 */
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client';
import { tmpDir } from '../helpers';

function server(answer: (sock: net.Socket) => void): Promise<{ path: string; close: () => void }> {
  const p = path.join(tmpDir('ctl-client'), 'd.ctl');
  const s = net.createServer((sock) => sock.once('data', () => answer(sock)));
  return new Promise((resolve) => s.listen(p, () => resolve({ path: p, close: () => s.close() })));
}

describe('control client', () => {
  it('an answer that is not JSON is an error naming the socket', async () => {
    const s = await server((sock) => sock.end('<html>\n'));
    await expect(controlRequest(s.path, { cmd: 'status' })).rejects.toThrow(`${s.path}: the daemon answered something that is not JSON: "<html>"`);
    s.close();
  });

  it('a character split across chunks arrives whole', async () => {
    const line = Buffer.from(JSON.stringify({ ok: true, result: 'vm-é-1' }) + '\n');
    const cut = line.indexOf(Buffer.from('é')) + 1; // inside the two bytes of é
    const s = await server((sock) => {
      sock.write(line.subarray(0, cut));
      setTimeout(() => sock.end(line.subarray(cut)), 50);
    });
    await expect(controlRequest(s.path, { cmd: 'status' })).resolves.toBe('vm-é-1');
    s.close();
  });
});
