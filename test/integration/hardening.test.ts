/**
 * Permissions and a full disk: --allow-uid refuses other users' peers; a recording on a disk
 * that fills up stops at its last whole frame while forwarding goes on.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import type { ProxyEvent } from '../../src/events/events';
import { Recorder } from '../../src/recording/recorder';
import { readRecording } from '../../src/recording/reader';
import { openFds, tmpDir, until } from '../helpers';
import { answering, scriptedBackend, type ScriptedBackend } from '../peers';

const echoBackend = (sock: string): ScriptedBackend => scriptedBackend(sock, answering({ [Request.GET_CONFIG]: (g) => g.payload }));

describe('permissions', () => {
  it('--allow-uid refuses a peer of another uid, logs who it was, and leaks nothing', async () => {
    const dir = tmpDir('uid');
    const before = openFds();
    const be = echoBackend(path.join(dir, 'be.sock'));
    const notices: string[] = [];
    const events: ProxyEvent[] = [];
    const d = new ProxyDaemon({
      listenPath: path.join(dir, 'fe.sock'),
      connectPath: path.join(dir, 'be.sock'),
      allowUids: [4242],
      emit: (e) => events.push(e),
      notice: (_l, m) => notices.push(m),
    });
    d.start();
    expect(fs.statSync(path.join(dir, 'fe.sock')).mode & 0o777).toBe(0o600);
    let ended = false;
    const ch = new native.Channel(
      native.connectUnix(path.join(dir, 'fe.sock')),
      65536,
      () => {},
      () => (ended = true),
    );
    ch.start();
    await until(() => ended, 5000, 'the refusal');
    ch.close();
    expect(notices[0]).toMatch(new RegExp(`refused a connection on .*fe\\.sock from pid ${process.pid} uid ${process.getuid!()}: --allow-uid 4242`));
    expect(events).toEqual([]);
    d.stop();
    be.close();
    expect(openFds()).toBe(before);
  });
});

const tmpfs = tmpDir('tmpfs');
const tmpfsFlight = tmpDir('tmpfs-flight');
afterAll(() => {
  for (const m of [tmpfs, tmpfsFlight]) {
    try {
      execFileSync('umount', [m]);
    } catch {
      /* not mounted */
    }
  }
});

describe('disk full while recording', () => {
  it('forwarding goes on; the recording ends at its last whole frame and says why', async () => {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', tmpfs]);
    const dir = tmpDir('full');
    const be = echoBackend(path.join(dir, 'be.sock'));
    const file = path.join(tmpfs, 'r.vhsrec');
    const errors: string[] = [];
    const rec = new Recorder(file, { onError: (_f, e) => errors.push(e.message), flushMs: 5 });
    const d = new ProxyDaemon({ listenPath: path.join(dir, 'fe.sock'), connectPath: path.join(dir, 'be.sock'), emit: (e) => rec.onEvent(e) });
    d.start();
    let replies = 0;
    const ch = new native.Channel(
      native.connectUnix(path.join(dir, 'fe.sock')),
      65536,
      () => replies++,
      () => {},
    );
    ch.start();
    const cfg = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.alloc(256, 0x5a)]);
    for (let i = 0; i < 400; i++) {
      ch.send(encodeMessage(Request.GET_CONFIG, 1, cfg));
      await until(() => replies === i + 1, 5000, `reply ${i}`);
    }
    expect(replies).toBe(400); // every message still went through
    await until(() => errors.length > 0, 5000, 'the recording to report the full disk');
    expect(errors[0]).toMatch(/ENOSPC|no space/i);
    ch.close();
    d.stop();
    await rec.close();
    be.close();
    const scan = readRecording(file);
    expect(scan.torn).toBeUndefined(); // cut back to the last whole frame
    const msgs = scan.records.filter((r) => r.type === 'message').length;
    expect(msgs).toBeGreaterThan(10);
    expect(msgs).toBeLessThan(800);
  });
});

describe('flight recorder on a full disk', () => {
  it('queues nothing after the failure, pins and rotates without throwing, and new sessions are forwarded unrecorded', async () => {
    // 32 KiB and 8 inodes: the data runs out first, then the names
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=32k,nr_inodes=8,mode=0700', 'tmpfs', tmpfsFlight]);
    const dir = tmpDir('full-flight');
    const be = echoBackend(path.join(dir, 'be.sock'));
    const target = path.join(tmpfsFlight, 'rec') + '/';
    const errors: string[] = [];
    const rec = new Recorder(target, {
      onError: (f, e, opening) => errors.push(`${path.basename(f)}: ${e.message}${opening ? ` (${opening})` : ''}`),
      flushMs: 5,
      flight: { segmentBytes: 8 << 10, segmentMs: 3_600_000, keepBytes: 1 << 30, pinBeforeMs: 1000, pinAfterMs: 1000 },
    });
    const d = new ProxyDaemon({ listenPath: path.join(dir, 'fe.sock'), connectPath: path.join(dir, 'be.sock'), emit: (e) => rec.onEvent(e) });
    d.start();
    const cfg = Buffer.concat([Buffer.from([0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0]), Buffer.alloc(1024, 0x5a)]);
    const session = async (n: number): Promise<void> => {
      let replies = 0;
      const ch = new native.Channel(
        native.connectUnix(path.join(dir, 'fe.sock')),
        65536,
        () => replies++,
        () => {},
      );
      ch.start();
      for (let i = 0; i < n; i++) {
        ch.send(encodeMessage(Request.GET_CONFIG, 1, cfg));
        await until(() => replies === i + 1, 5000, `reply ${i}`);
        if (i % 50 === 0) rec.pin(`trigger ${i}`); // a pin on a full disk: held in memory, never thrown
      }
      ch.close();
    };
    // the first session fills the disk, rotating through segments, then goes on for as long again
    await session(100);
    await until(() => errors.some((e) => /ENOSPC/.test(e)), 5000, 'the full disk reported');
    await session(400);
    // nothing waits in memory for a disk that said no
    expect(rec.figures().queuedBytes).toBe(0);
    // no inode left: a new session's file cannot be created; the session is forwarded anyway
    for (let i = 0; ; i++) {
      try {
        fs.writeFileSync(path.join(tmpfsFlight, `inode-${i}`), '');
      } catch {
        break;
      }
    }
    const before = errors.length;
    await session(20);
    expect(errors.slice(before).join('\n')).toMatch(/-s\d+\.vhsrec: ENOSPC.*\(the session is forwarded without a recording\)/);
    d.stop();
    await rec.close();
    be.close();
    for (const f of fs.readdirSync(target).filter((n) => n.endsWith('.vhsrec'))) expect(readRecording(path.join(target, f)).torn).toBeUndefined();
  });
});

describe('the listening socket path', () => {
  it('replaces a stale socket, refuses one in use, a regular file and a symlink', async () => {
    const { listenOn } = await import('../../src/native/socket-path');
    const dir = tmpDir('sockpath');
    const p = path.join(dir, 'l.sock');
    // stale: a socket file nobody listens on any more
    const stale = native.listenUnix(p, 1, 0o600);
    native.close(stale);
    const fd = listenOn(p, 0o600);
    expect(fs.statSync(p).isSocket()).toBe(true);
    // in use
    expect(() => listenOn(p, 0o600)).toThrow(/is in use: something is listening on it/);
    native.close(fd);
    // a regular file and a symlink (even to a stale socket) are never touched
    const file = path.join(dir, 'file');
    fs.writeFileSync(file, 'keep me');
    expect(() => listenOn(file, 0o600)).toThrow(/exists and is not a socket; refusing to replace it/);
    expect(fs.readFileSync(file, 'utf8')).toBe('keep me');
    const link = path.join(dir, 'link.sock');
    fs.symlinkSync(p, link);
    expect(() => listenOn(link, 0o600)).toThrow(/not a socket/);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
  });
});
