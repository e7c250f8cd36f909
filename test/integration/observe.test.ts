/**
 * The relay's observer (--observe): a peer's eventfd watched, never read. Every write it sees is
 * recorded even when its consumer reads the count first, which epoll cannot promise (it polls
 * the fd again before reporting it, and finds the count gone).
 */
import { spawn } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { native, type Relay } from '../../src/native';
import { ProxyDaemon } from '../../src/proxy/daemon';
import { Interposer } from '../../src/proxy/interposer';
import { RelayHub } from '../../src/proxy/relay-hub';
import { openFds, until } from '../helpers';
import { relayEvents, type RelayEv } from '../relay-events';

const started: Relay[] = [];
function newRelay(): Relay {
  const r = new native.Relay(1024);
  started.push(r);
  return r;
}
afterEach(() => {
  for (const r of started.splice(0)) r.stop();
});

const drain = relayEvents;

describe('Relay.addWatch', () => {
  it('records each write to a watched eventfd that its consumer has already read, and leaves every count to the consumer', async () => {
    const before = openFds();
    const relay = newRelay();
    const efd = native.eventfd(0);
    const id = relay.addWatch(native.dup(efd));
    const seen: RelayEv[] = [];
    let consumed = 0n;
    for (let i = 0; i < 50; i++) {
      const t0 = native.monotonicNs();
      native.eventfdWrite(efd, 2);
      consumed += native.eventfdRead(efd) ?? 0n; // the consumer, before the observer can look
      await until(() => seen.push(...drain(relay)) > i, 2000, `write ${i + 1} seen`);
      expect(seen[i].ts).toBeGreaterThanOrEqual(t0);
    }
    expect(consumed).toBe(100n); // the observer took nothing
    expect(seen).toHaveLength(50);
    expect(seen.every((e) => e.pair === id && e.count === 1)).toBe(true);
    expect(relay.pairStats(id)).toMatchObject({ notifications: 50, read: 0, written: 0, writeErrors: 0 });
    expect(relay.stats()).toMatchObject({ notifications: 50, pairs: 1 });
    expect(relay.removePair(id)).toMatchObject({ notifications: 50 });
    native.eventfdWrite(efd, 1);
    await new Promise((r) => setTimeout(r, 50));
    expect(drain(relay)).toEqual([]); // removed: no longer watched
    relay.stop();
    native.close(efd);
    expect(openFds()).toBe(before);
  });

  it('watches many fds at once, and stop() closes those still watched', async () => {
    const before = openFds();
    const relay = newRelay();
    const fds = Array.from({ length: 40 }, () => native.eventfd(0));
    const ids = fds.map((fd) => relay.addWatch(native.dup(fd)));
    fds.forEach((fd) => native.eventfdWrite(fd, 1));
    const seen = new Set<number>();
    const all = (): boolean => {
      for (const e of drain(relay)) seen.add(e.pair);
      return seen.size === ids.length;
    };
    await until(all, 2000, 'every fd seen');
    relay.stop();
    expect(() => relay.addWatch(native.dup(fds[0]))).toThrow(/ESHUTDOWN/);
    fds.forEach((fd) => native.close(fd));
    expect(openFds()).toBe(before);
  });

  it('lives beside relayed pairs in one id space', async () => {
    const relay = newRelay();
    const [src, dst, watched] = [native.eventfd(0), native.eventfd(0), native.eventfd(0)];
    const pair = relay.addPair(native.dup(src), native.dup(dst));
    const watch = relay.addWatch(native.dup(watched));
    expect(watch).not.toBe(pair);
    native.eventfdWrite(src, 1);
    native.eventfdWrite(watched, 1);
    await until(() => native.eventfdRead(dst) !== null, 2000, 'the relayed count');
    expect(native.eventfdRead(watched)).toBe(1n);
    await until(() => relay.stats().notifications === 2, 2000, 'both recorded');
    expect(new Set(drain(relay).map((e) => e.pair))).toEqual(new Set([pair, watch]));
    [src, dst, watched].forEach((fd) => native.close(fd));
  });

  it('runs the observer at real-time priority where it may, and gives that up for good when a peer floods its eventfd', async () => {
    const relay = newRelay();
    const efd = native.eventfd(0);
    const id = relay.addWatch(native.dup(efd));
    expect(relay.stats().observerRealtime).toBe(process.getuid?.() === 0); // CI runs as root
    // writers that never stop: more wake-ups than a second's worth of block I/O would cause in
    // 100 ms. Two processes beside this one's loop: one writer alone was seen to leave the
    // observer just under its quarter of a CPU (its wake-ups coalesce), and the test to fail.
    const flooders = [0, 1].map(() =>
      spawn(process.execPath, ['-e', "const fs = require('fs'); const b = Buffer.alloc(8); b[0] = 1; for (;;) fs.writeSync(3, b);"], {
        stdio: ['ignore', 'ignore', 'inherit', efd],
      }),
    );
    try {
      const end = Date.now() + 10_000;
      while (relay.stats().observerRealtime && Date.now() < end) {
        for (let i = 0; i < 20_000; i++) native.eventfdWrite(efd, 1);
        await new Promise((r) => setTimeout(r, 1));
      }
    } finally {
      for (const f of flooders) f.kill('SIGKILL');
    }
    expect(relay.stats().observerRealtime).toBe(false);
    // still watching, at normal priority
    const before = relay.pairStats(id)!.notifications;
    native.eventfdRead(efd);
    await new Promise((r) => setTimeout(r, 20));
    native.eventfdWrite(efd, 1);
    await until(() => relay.pairStats(id)!.notifications > before, 2000, 'a write seen after the flood');
    native.close(efd);
  });

  it('keeps the observer at normal priority when told to (--observe-priority normal)', async () => {
    const relay = new native.Relay(1024, 0, 0, -1, false);
    started.push(relay);
    const efd = native.eventfd(0);
    const id = relay.addWatch(native.dup(efd));
    native.eventfdWrite(efd, 1);
    await until(() => relay.pairStats(id)!.notifications === 1, 2000, 'the write seen');
    expect(relay.stats().observerRealtime).toBe(false);
    native.close(efd);
  });

  it('is refused with --no-interpose: there would be no relay thread to watch from', () => {
    const opts = { listenPath: '/nonexistent/l', connectPath: '/nonexistent/c', emit: () => {}, observe: true, interpose: false };
    expect(() => new ProxyDaemon(opts)).toThrow(/--observe .* --no-interpose/);
  });

  // last in this file: the kernel's refusal is remembered for the module's life
  it('a kernel that refuses io_uring: the session interposes instead, and says so once', () => {
    const before = openFds();
    const hub = new RelayHub(0, 0, -1, true);
    hub.watch = (fd: number) => {
      native.close(fd); // as the relay does when it cannot watch
      throw Object.assign(new Error('io_uring_setup failed: Operation not permitted (EPERM)'), { syscall: 'io_uring_setup', code: 'EPERM' });
    };
    const told: string[] = [];
    const interposer = new Interposer(
      hub,
      () => {},
      (why) => told.push(why),
    );
    const [kick, call] = [native.eventfd(0), native.eventfd(0)];
    const [kickIds, callIds] = [native.fdInfo(kick).eventfdId, native.fdInfo(call).eventfdId];
    const [kickOut] = interposer.interpose('kick', 0, false, [kick]);
    const [callOut] = interposer.interpose('call', 0, false, [call]);
    // the proxy's own eventfds go to the far peer: interposed, as without --observe
    expect(native.fdInfo(kickOut).eventfdId).not.toBe(kickIds);
    expect(native.fdInfo(callOut).eventfdId).not.toBe(callIds);
    expect(interposer.pairs().every((p) => !p.observed)).toBe(true);
    expect(told).toEqual([
      expect.stringMatching(/^--observe: the kernel refuses io_uring \(io_uring_setup failed: .*\): this session's eventfds are interposed instead$/),
    ]);
    interposer.teardownAll();
    hub.stop();
    native.close(kickOut);
    native.close(callOut);
    expect(openFds()).toBe(before);
  });
});
