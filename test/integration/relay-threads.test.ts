/**
 * --relay-threads: sessions shard over relay threads (a session's pairs all on one), every
 * thread relays, the daemon's relay figures are the threads' sum, a session that ends frees its
 * place, and no fd is left behind.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { ProxyDaemon } from '../../src/proxy/daemon';
import { sumRelayStats } from '../../src/proxy/relay-pool';
import { frontendHandshake, syntheticBackend, type BackendConn } from '../../lab/synthetic-peers';
import { openFds, tmpDir, until } from '../helpers';

describe('relay threads', () => {
  it('shards sessions over the threads, relays on each, and sums their figures', async () => {
    const before = openFds();
    const dir = tmpDir('relay-threads');
    const listenPath = path.join(dir, 'fe.sock');
    const conns: BackendConn[] = [];
    const backend = syntheticBackend(native.listenUnix(path.join(dir, 'be.sock'), 8, 0o600), (c) => conns.push(c));
    const daemon = new ProxyDaemon({ listenPath, connectPath: path.join(dir, 'be.sock'), relayThreads: 2, emit: () => undefined });
    daemon.start();
    const fronts: { ch: Channel; kicks: number[]; calls: number[]; sent: number }[] = [];
    try {
      for (let i = 0; i < 3; i++) {
        const hs = frontendHandshake(2);
        const ch = new native.Channel(
          native.connectUnix(listenPath),
          65536,
          () => undefined,
          () => undefined,
        );
        ch.start();
        for (const m of hs.messages) ch.send(m.msg, m.fds);
        fronts.push({ ch, kicks: hs.kicks, calls: hs.calls, sent: hs.messages.length });
        await until(() => conns.length === i + 1 && conns[i]!.got === hs.messages.length);
      }
      // the fewest sessions first: 0, 1, then 0 again
      expect(daemon.status().relayThreads!.map((t) => t.sessions)).toEqual([2, 1]);

      // every session's kicks reach its backend, whichever thread relays them
      fronts.forEach((f, i) => f.kicks.forEach((k, v) => native.eventfdWrite(k, i * 10 + v + 1)));
      const got = new Map<string, bigint>();
      await until(() => {
        conns.forEach((c, i) =>
          c.kicks.forEach((fd, v) => {
            const n = native.eventfdRead(fd);
            if (n !== null) got.set(`${i}/${v}`, (got.get(`${i}/${v}`) ?? 0n) + BigInt(n));
          }),
        );
        return got.size === 6;
      });
      expect(Object.fromEntries(got)).toEqual({ '0/0': 1n, '0/1': 2n, '1/0': 11n, '1/1': 12n, '2/0': 21n, '2/1': 22n });
      const threads = daemon.relayThreads();
      expect(threads.every((t) => (t.stats?.notifications ?? 0) > 0)).toBe(true);
      expect(daemon.relayStats()!.notifications).toBe(threads.reduce((n, t) => n + t.stats!.notifications, 0));
      expect(daemon.relayStats()!.pairs).toBe(12); // 3 sessions x 2 vrings x kick and call

      // a session that ends frees its place: the next goes to the thread it left
      fronts[0]!.ch.close();
      await until(() => daemon.status().sessions.length === 2);
      expect(daemon.status().relayThreads!.map((t) => t.sessions)).toEqual([1, 1]);
    } finally {
      for (const f of fronts) f.ch.close();
      daemon.stop();
      backend.close();
      for (const f of fronts) for (const fd of [...f.kicks, ...f.calls]) native.close(fd);
    }
    await until(() => openFds() === before, 5000, 'every fd closed');
  });

  it('sums relay figures bucket by bucket', () => {
    const one = {
      threadCpuNs: 5,
      notifications: 2,
      droppedEvents: 0,
      pairs: 1,
      niceApplied: true,
      droppedSnapshots: 1,
      observerRealtime: false,
      transitBuckets: [1, 2],
      transitSumNs: 10,
    };
    const two = { ...one, notifications: 3, niceApplied: false, observerRealtime: true, transitBuckets: [0, 1, 4], transitSumNs: 7 };
    expect(sumRelayStats([one, two])).toEqual({
      threadCpuNs: 10,
      notifications: 5,
      droppedEvents: 0,
      pairs: 2,
      niceApplied: false,
      droppedSnapshots: 2,
      observerRealtime: true, // one thread's observer is
      transitBuckets: [1, 3, 4],
      transitSumNs: 17,
    });
    expect(sumRelayStats([])).toBeUndefined();
  });
});
