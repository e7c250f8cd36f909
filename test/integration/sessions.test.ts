/**
 * Session bookkeeping with fake peers: concurrent sessions stay apart, fds cross unchanged
 * and the proxy keeps no copy, one side closing ends only its own session, and stop() closes
 * everything and removes the socket file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import type { ProxyEvent, SessionEndEvent } from '../../src/events/events';
import { openFds, tmpDir, until } from '../helpers';
import { reply, scriptedBackend, scriptedFrontend, u64, type ScriptedFrontend } from '../peers';

const dir = tmpDir('sessions');
const listenPath = path.join(dir, 'fe.sock');
const backendPath = path.join(dir, 'be.sock');

// each backend connection answers GET_FEATURES with its own number
const backend = scriptedBackend(backendPath, (g, conn) => g.code === Request.GET_FEATURES && conn.send(reply(g.code, u64(conn.n))));
const backendConns = backend.conns;
const events: ProxyEvent[] = [];
// --no-interpose: this test checks that a forwarded fd is the peer's own kernel object
const daemon = new ProxyDaemon({ listenPath, connectPath: backendPath, interpose: false, emit: (e) => events.push(e) });
const baseline = openFds();
daemon.start();

afterAll(() => {
  daemon.stop();
  backend.close();
});

const frontend = (): ScriptedFrontend => scriptedFrontend(listenPath);

describe('proxy sessions', () => {
  it('keeps concurrent sessions apart and forwards fds unchanged without keeping a copy', async () => {
    const fes = [frontend(), frontend(), frontend()];
    await until(() => backendConns.length === 3, 5000, 'three backend connections');
    const efd = native.eventfd(0);
    const mine = native.dup(efd);
    fes[1].ch.send(encodeMessage(13, 1, Buffer.alloc(8)), [efd]);
    for (const f of fes) f.ch.send(encodeMessage(1, 1));
    await until(() => fes.every((f) => f.got.length === 1), 5000, 'three replies');
    const answers = fes.map((f) => Number(f.got[0].payload.readBigUInt64LE(0)));
    expect(new Set(answers).size).toBe(3); // every frontend got its own backend's answer
    const withFd = backendConns.flatMap((c) => c.got).filter((g) => g.fds.length === 1);
    expect(withFd).toHaveLength(1);
    native.eventfdWrite(withFd[0].fds[0], 7);
    expect(native.eventfdRead(mine)).toBe(7n); // the same kernel object arrived
    expect(native.fdInfo(withFd[0].fds[0]).eventfdId).toBe(native.fdInfo(mine).eventfdId);
    native.close(withFd[0].fds[0]);
    native.close(mine);
    expect(daemon.activeSessions).toHaveLength(3);

    // the backend of one session goes away: only that session ends, its frontend is closed
    const victim = backendConns[0];
    victim.ch.close();
    victim.ended = true; // close() reports nothing to its own owner
    await until(() => events.some((e) => e.type === 'session-end'), 5000, 'session end');
    const end = events.find((e): e is SessionEndEvent => e.type === 'session-end')!;
    expect(end.reason).toBe('the backend closed the connection');
    const victimFe = fes[answers.indexOf(1)];
    await until(() => victimFe.ended, 5000, 'victim frontend closed');
    expect(fes.filter((f) => f.ended)).toHaveLength(1);
    expect(daemon.activeSessions).toHaveLength(2);

    // stop(): every session closed on both sides, socket file removed, no fd left behind
    daemon.stop();
    await until(() => fes.every((f) => f.ended) && backendConns.every((c) => c.ended), 5000, 'all closed');
    expect(fs.existsSync(listenPath)).toBe(false);
    for (const f of fes) f.ch.close();
    for (const c of backendConns) c.ch.close();
    expect(openFds()).toBe(baseline + 0);
  });
});
