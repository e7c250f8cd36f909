/**
 * Daemon-wide caps: a flood of connections is refused at --max-sessions and --max-pending, told
 * in one line (not one per connection), and serving resumes once sessions end.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { ProxyDaemon } from '../../src/proxy/daemon';
import { openFds, tmpDir, until } from '../helpers';

function connect(sock: string): { ch: Channel; ended: () => boolean } {
  let ended = false;
  const ch = new native.Channel(
    native.connectUnix(sock),
    65536,
    () => {},
    () => (ended = true),
  );
  ch.start();
  return { ch, ended: () => ended };
}

describe('daemon-wide caps', () => {
  it('--max-sessions: connections beyond it are closed, told once; a session that ends makes room', async () => {
    const dir = tmpDir('caps');
    const before = openFds();
    const accepted: number[] = [];
    const backend = new native.Listener(native.listenUnix(path.join(dir, 'be.sock'), 64, 0o600), (_e, fd) => fd !== null && accepted.push(fd));
    const notices: string[] = [];
    const d = new ProxyDaemon({
      listenPath: path.join(dir, 'fe.sock'),
      connectPath: path.join(dir, 'be.sock'),
      maxSessions: 3,
      emit: () => {},
      notice: (_l, m) => notices.push(m),
    });
    d.start();
    const fe = path.join(dir, 'fe.sock');
    const served = [connect(fe), connect(fe), connect(fe)];
    await until(() => d.status().sessions.length === 3, 5000, 'three sessions');
    const refused = Array.from({ length: 20 }, () => connect(fe));
    await until(() => refused.every((r) => r.ended()), 5000, 'the refused connections to be closed');
    expect(d.status().sessions).toHaveLength(3);
    expect(served.some((s) => s.ended())).toBe(false);
    // one line for the flood, not twenty
    expect(notices.filter((m) => /^refused \d+ connections? on .*fe\.sock: 3 sessions are open \(--max-sessions 3\)$/.test(m))).toHaveLength(1);
    // room again
    served[0].ch.close();
    await until(() => d.status().sessions.length === 2, 5000, 'the session to end');
    const again = connect(fe);
    await until(() => d.status().sessions.length === 3, 5000, 'a new session');
    expect(again.ended()).toBe(false);
    for (const c of [...served.slice(1), again, ...refused]) c.ch.close();
    d.stop();
    backend.close();
    for (const fd of accepted) native.close(fd);
    await until(() => openFds() === before, 5000, 'no leaked fd');
  });

  it('--max-pending: with the backend down, peers beyond it are closed at once instead of retrying', async () => {
    const dir = tmpDir('caps-pending');
    const before = openFds();
    const notices: string[] = [];
    const d = new ProxyDaemon({
      listenPath: path.join(dir, 'fe.sock'),
      connectPath: path.join(dir, 'nobody.sock'),
      maxPending: 2,
      emit: () => {},
      notice: (_l, m) => notices.push(m),
    });
    d.start();
    const fe = path.join(dir, 'fe.sock');
    const waiting = [connect(fe), connect(fe)];
    await until(() => d.status().pendingConnects === 2, 5000, 'two pending connects');
    const refused = Array.from({ length: 5 }, () => connect(fe));
    await until(() => refused.every((r) => r.ended()), 5000, 'the refused connections to be closed');
    expect(d.status().pendingConnects).toBe(2);
    expect(waiting.some((w) => w.ended())).toBe(false);
    expect(notices.join('\n')).toMatch(/refused \d+ connections? on .*fe\.sock: 2 connections are already waiting for .*nobody\.sock \(--max-pending 2\)/);
    for (const c of [...waiting, ...refused]) c.ch.close();
    d.stop();
    await until(() => openFds() === before, 5000, 'no leaked fd');
  });
});
