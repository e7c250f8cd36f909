/**
 * One session's failure stays in that session: an exception thrown while the proxy handles a
 * message, a notification or a session start (here: by the event sink, the daemon's one
 * callback into the outside world) ends that session, logged with its id, and never the
 * daemon or its other sessions. Without the guard, an exception inside an addon callback is
 * fatal to the whole process (this test's worker with it).
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import type { MessageEvent, ProxyEvent, SessionEndEvent } from '../../src/events/events';
import { openFds, tmpDir, until } from '../helpers';
import { reply, scriptedBackend, scriptedFrontend, u64, type ScriptedBackend } from '../peers';

/** Answers GET_FEATURES, closes every fd it gets. */
const echoBackend = (sock: string): ScriptedBackend =>
  scriptedBackend(sock, (g, conn) => {
    for (const f of g.fds) native.close(f);
    if (g.code === Request.GET_FEATURES) conn.send(reply(g.code, u64(1n << 32n)));
  });

const frontend = (sock: string, got: Buffer[]): Channel => scriptedFrontend(sock, (g) => got.push(g.msg)).ch;

/** A daemon whose event sink throws for `poisoned(e)`; the other events are kept. */
function daemonWith(dir: string, poisoned: (e: ProxyEvent) => boolean, interpose = false) {
  const events: ProxyEvent[] = [];
  const notices: string[] = [];
  const d = new ProxyDaemon({
    listenPath: path.join(dir, 'fe.sock'),
    connectPath: path.join(dir, 'be.sock'),
    interpose,
    emit: (e) => {
      if (poisoned(e)) throw new Error(`sink failed on ${e.type}`);
      events.push(e);
    },
    notice: (_l, m) => notices.push(m),
  });
  d.start();
  return { d, events, notices };
}

describe('a failure in one session stays in it', () => {
  it('an exception while handling a message ends that session only, with its id; the next session forwards', async () => {
    const dir = tmpDir('iso-msg');
    const before = openFds();
    const be = echoBackend(path.join(dir, 'be.sock'));
    // session 1's first message (a callback from the addon's Channel) makes the sink throw
    const { d, events } = daemonWith(dir, (e) => e.type === 'message' && e.session === 1);
    const got1: Buffer[] = [];
    const got2: Buffer[] = [];
    const fe1 = frontend(path.join(dir, 'fe.sock'), got1);
    fe1.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => events.some((e) => e.type === 'session-end' && e.session === 1), 5000, 'session 1 to end');
    const end = events.find((e): e is SessionEndEvent => e.type === 'session-end' && e.session === 1)!;
    expect(end.reason).toBe('internal error in a message from the listen side: sink failed on message');
    expect(end.by).toBe('proxy');
    const fe2 = frontend(path.join(dir, 'fe.sock'), got2);
    fe2.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => got2.length === 1, 5000, 'session 2 to forward');
    expect(d.activeSessions.map((s) => s.id)).toEqual([2]);
    fe1.close();
    fe2.close();
    d.stop();
    be.close();
    await until(() => openFds() === before, 5000, 'every fd closed');
  });

  it('an exception while a session starts closes both its fds and the daemon goes on', async () => {
    const dir = tmpDir('iso-start');
    const before = openFds();
    const be = echoBackend(path.join(dir, 'be.sock'));
    const { d, events, notices } = daemonWith(dir, (e) => e.type === 'session-start' && e.session === 1);
    const got1: Buffer[] = [];
    const fe1 = frontend(path.join(dir, 'fe.sock'), got1);
    await until(() => notices.some((n) => n.startsWith('session 1 could not start')), 5000, 'the notice');
    expect(notices.find((n) => n.startsWith('session 1'))).toBe('session 1 could not start: sink failed on session-start; its connections are closed');
    // the proxy's ends are closed: the backend and the frontend both see EOF
    await until(() => be.conns.length === 1, 5000);
    const got2: Buffer[] = [];
    const fe2 = frontend(path.join(dir, 'fe.sock'), got2);
    fe2.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => got2.length === 1, 5000, 'session 2 to forward');
    expect(events.filter((e) => e.type === 'session-start').map((e) => e.session)).toEqual([2]);
    fe1.close();
    fe2.close();
    d.stop();
    be.close();
    await until(() => openFds() === before, 5000, 'every fd closed');
  });

  it('an exception while a relayed notification is reported ends that session only', async () => {
    const dir = tmpDir('iso-notify');
    const be = echoBackend(path.join(dir, 'be.sock'));
    const { d, events } = daemonWith(dir, (e) => e.type === 'notification' && e.session === 1, true);
    const got1: Buffer[] = [];
    const fe1 = frontend(path.join(dir, 'fe.sock'), got1);
    const kick = native.eventfd(0);
    fe1.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(0n)), [native.dup(kick)]);
    await until(() => events.some((e) => e.type === 'message' && e.session === 1 && e.decoded.name === 'SET_VRING_KICK'), 5000, 'the kick fd to be interposed');
    native.eventfdWrite(kick, 1); // relayed on the relay thread, reported from the drain timer
    await until(() => events.some((e) => e.type === 'session-end' && e.session === 1), 5000, 'session 1 to end');
    expect((events.find((e) => e.type === 'session-end') as SessionEndEvent).reason).toBe(
      'internal error in a relayed notification: sink failed on notification',
    );
    const got2: Buffer[] = [];
    const fe2 = frontend(path.join(dir, 'fe.sock'), got2);
    fe2.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => got2.length === 1, 5000, 'session 2 to forward');
    native.close(kick);
    fe1.close();
    fe2.close();
    d.stop();
    be.close();
  });
});

describe('a pair the relay cannot take', () => {
  it('SET_VRING_KICK with a memfd instead of an eventfd goes through untouched, with a notice; the session goes on and nothing leaks', async () => {
    const dir = tmpDir('iso-addpair');
    const before = openFds();
    const be = echoBackend(path.join(dir, 'be.sock'));
    const { d, events } = daemonWith(dir, () => false, true);
    const got: Buffer[] = [];
    const fe = frontend(path.join(dir, 'fe.sock'), got);
    fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(0n)), [native.memfdCreate('not-an-eventfd', 4096)]);
    fe.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => got.length === 1, 5000, 'the session to forward after it');
    expect(events.filter((e) => e.type === 'notice').map((e) => (e as { msg: string }).msg)).toContainEqual(
      'SET_VRING_KICK vring 0 carries a memfd, not an eventfd: forwarded as it came, not interposed (its notifications are neither relayed nor timed)',
    );
    const kick = events.find((e): e is MessageEvent => e.type === 'message' && e.decoded.request === Request.SET_VRING_KICK)!;
    expect(kick.interposed).toBeFalsy();
    expect(events.some((e) => e.type === 'session-end')).toBe(false);
    fe.close();
    await until(() => events.some((e) => e.type === 'session-end'), 5000, 'the session to end');
    d.stop();
    be.close();
    await until(() => openFds() === before, 5000, 'every fd closed');
  });
});

describe('MSI-X churn', () => {
  /** A daemon and a backend that takes each call fd, signals it once and closes it, as a real one would. */
  async function churn(dir: string, messages: number, batch: number) {
    const chans: Channel[] = [];
    let calls = 0;
    const l = new native.Listener(native.listenUnix(path.join(dir, 'be.sock'), 4, 0o600), (_e, fd) => {
      if (fd === null) return;
      const ch = new native.Channel(
        fd,
        65536,
        (_m, fds) => {
          for (const f of fds) {
            native.eventfdWrite(f, 1);
            native.close(f);
            calls++;
          }
        },
        () => {},
      );
      ch.start();
      chans.push(ch);
    });
    const { d, events } = daemonWith(dir, () => false, true);
    const fe = frontend(path.join(dir, 'fe.sock'), []);
    const before = openFds();
    let peakPairs = 0;
    let peakFds = 0;
    for (let i = 0; i < messages; i += batch) {
      for (let k = 0; k < batch; k++) fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(0n)), [native.eventfd(0)]); // the channel owns the fd
      await until(() => calls === i + batch, 10_000, `${i + batch} calls to arrive`);
      peakPairs = Math.max(peakPairs, d.activeSessions[0].livePairs);
      peakFds = Math.max(peakFds, openFds() - before);
    }
    fe.close();
    await until(() => events.some((e) => e.type === 'session-end'), 5000);
    const end = events.find((e): e is SessionEndEvent => e.type === 'session-end')!;
    d.stop();
    l.close();
    for (const c of chans) c.close();
    return { peakPairs, peakFds, calls0: end.relayPairs.filter((p) => p.kind === 'call' && p.vring === 0) };
  }

  it('a burst of 5000 re-sent SET_VRING_CALLs holds a bounded number of relay pairs and fds', async () => {
    const before = openFds();
    const r = await churn(tmpDir('churn-burst'), 5000, 500);
    // one current pair and at most 16 in their grace period, whatever the churn
    expect(r.peakPairs).toBeLessThanOrEqual(17);
    expect(r.peakFds).toBeLessThan(2 * 17 + 20);
    // finished pairs are one record per slot, not one per re-send
    expect(r.calls0).toHaveLength(1);
    await until(() => openFds() === before, 5000, 'every fd closed');
  }, 60_000);

  it('a backend that keeps up loses no call across 2000 re-sends, and the counts survive in one record', async () => {
    const r = await churn(tmpDir('churn-paced'), 2000, 4);
    expect(r.calls0.reduce((n, p) => n + p.read, 0)).toBe(2000);
    expect(r.calls0.reduce((n, p) => n + p.written, 0)).toBe(2000);
  }, 60_000);
});
