/** The native relay thread: counts relayed, events timestamped and batched, fds owned and closed. */
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native, type Relay } from '../../src/native';
import { RelayHub } from '../../src/proxy/relay-hub';
import { openFds, until } from '../helpers';
import { relayEvents } from '../relay-events';

// A test that fails before its own relay.stop() must not leave the relay thread running: it
// would keep the worker process alive, and the run would hang instead of failing.
const started: Relay[] = [];
function newRelay(...args: ConstructorParameters<typeof native.Relay>): Relay {
  const r = new native.Relay(...args);
  started.push(r);
  return r;
}
afterEach(() => {
  for (const r of started.splice(0)) r.stop(); // stop() again is a no-op
});

const events = relayEvents;

describe('Relay', () => {
  it('relays counts from source to destination and records timestamped events', async () => {
    const before = openFds();
    const relay = newRelay(1024);
    const src = native.eventfd(0);
    const dst = native.eventfd(0);
    const srcW = native.dup(src);
    const dstR = native.dup(dst);
    const id = relay.addPair(src, dst);
    const t0 = native.monotonicNs();
    native.eventfdWrite(srcW, 3);
    let got: bigint | null = null;
    await until(() => (got = native.eventfdRead(dstR)) !== null, 2000, 'the relayed count');
    expect(got).toBe(3n);
    const ev = events(relay);
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ pair: id, count: 3 });
    expect(ev[0].ts).toBeGreaterThanOrEqual(t0);
    const st = relay.pairStats(id)!;
    expect(st).toMatchObject({ read: 3, written: 3, notifications: 1, writeErrors: 0 });
    // the one pick-up was timed, in this pair's histogram as in the relay's
    expect(st.transitBuckets.reduce((a, b) => a + b, 0)).toBe(1);
    expect(st.transitSumNs).toBeGreaterThan(0);
    expect(relay.stats().transitBuckets.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
    expect(relay.drain(Buffer.alloc(16))).toBe(0);
    // a count still pending when the pair is removed is not lost: either the relay read it before
    // the removal and wrote it on (then it is at the destination), or it is still in the source
    // for whoever reads that next; never both, never neither
    const id2 = relay.addPair(native.dup(srcW), native.dup(dstR));
    relay.removePair(id);
    native.eventfdWrite(srcW, 1);
    const final = relay.removePair(id2);
    const written = final?.written ?? 0;
    const atDestination = Number(native.eventfdRead(dstR) ?? 0n);
    const leftInSource = Number(native.eventfdRead(srcW) ?? 0n);
    expect(atDestination).toBe(written);
    expect(written + leftInSource).toBe(1);
    expect(relay.stats()).toMatchObject({ pairs: 0, droppedEvents: 0 });
    relay.stop();
    native.close(srcW);
    native.close(dstR);
    expect(openFds()).toBe(before);
  });

  it('keeps relaying while the JS thread is blocked: timestamps come from the relay thread', async () => {
    const relay = newRelay(1024);
    const src = native.eventfd(0);
    const dst = native.eventfd(0);
    const dstR = native.dup(dst);
    relay.addPair(native.dup(src), dst);
    // a child process kicks 50 ms from now, while this thread spins for 400 ms
    const addon = path.resolve(__dirname, '..', '..', 'build', 'Release', 'vhostscope_native.node');
    const child = spawn(
      process.execPath,
      ['-e', `const n=require(${JSON.stringify(addon)});setTimeout(()=>{const t=n.monotonicNs();n.eventfdWrite(3,1);console.log(String(t));},50)`],
      { stdio: ['ignore', 'pipe', 'inherit', src] },
    );
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    await new Promise((r) => setTimeout(r, 20)); // let the child start before blocking
    const spinUntil = Date.now() + 1500;
    while (Date.now() < spinUntil && native.eventfdRead(dstR) === null) {
      /* the JS thread is busy; the relay is not */
    }
    const jsFreeTs = native.monotonicNs();
    const relayedBeforeJsWasFree = Date.now() < spinUntil;
    await new Promise((r) => child.on('exit', r));
    const kickTs = BigInt(out.trim());
    const ev = events(relay);
    expect(relayedBeforeJsWasFree).toBe(true);
    expect(ev).toHaveLength(1);
    // stamped between the kick and the moment JS could first have looked: by the relay thread,
    // not when JS drained the event (no bound on how fast: the machine may be busy)
    expect(ev[0].ts).toBeGreaterThanOrEqual(kickTs);
    expect(ev[0].ts).toBeLessThanOrEqual(jsFreeTs);
    relay.stop();
    native.close(src);
    native.close(dstR);
  });

  it('under a flood loses no count: the burst tail written at its end adds up with the first count', async () => {
    const relay = newRelay(1 << 17);
    const src = native.eventfd(0);
    const dst = native.eventfd(0);
    const dstR = native.dup(dst);
    const id = relay.addPair(native.dup(src), dst);
    const N = 100000;
    const addon = path.resolve(__dirname, '..', '..', 'build', 'Release', 'vhostscope_native.node');
    const child = spawn(process.execPath, ['-e', `const n=require(${JSON.stringify(addon)});for(let i=0;i<${N};i++)n.eventfdWrite(3,1)`], {
      stdio: ['ignore', 'ignore', 'inherit', src],
    });
    let delivered = 0n;
    let wakeups = 0;
    const ev: ReturnType<typeof events> = [];
    const exited = new Promise((r) => child.on('exit', r));
    await until(
      () => {
        ev.push(...events(relay, 4096)); // as the hub does (the ring holds more than N anyway)
        const c = native.eventfdRead(dstR);
        if (c !== null) {
          delivered += c;
          wakeups++;
        }
        return delivered === BigInt(N);
      },
      20000,
      'every count of the flood',
    );
    await exited;
    ev.push(...events(relay));
    expect(relay.stats().droppedEvents).toBe(0);
    const stats = relay.pairStats(id);
    expect(stats).toMatchObject({ read: N, written: N, writeErrors: 0 });
    expect(ev.reduce((a, e) => a + e.count, 0)).toBe(N);
    expect(ev.length).toBe(stats?.notifications);
    expect(wakeups).toBeLessThanOrEqual(ev.length);
    relay.stop();
    native.close(src);
    native.close(dstR);
  });

  it("drains into the caller's buffer as many events as fit, oldest first, the rest at the next call", async () => {
    const relay = newRelay(1024);
    const src = native.eventfd(0);
    const dst = native.eventfd(0);
    const dstR = native.dup(dst);
    const id = relay.addPair(native.dup(src), dst);
    for (let i = 1; i <= 5; i++) {
      native.eventfdWrite(src, i); // one at a time: each is its own event
      await until(() => native.eventfdRead(dstR) !== null, 2000, `relayed count ${i}`);
    }
    const two = Buffer.alloc(2 * 16 + 7); // a buffer's odd tail is never written
    const got: number[] = [];
    const ts: bigint[] = [];
    for (const expected of [2, 2, 1, 0]) {
      two.fill(0xee);
      expect(relay.drain(two)).toBe(expected);
      for (let off = 0; off < expected * 16; off += 16) {
        expect(two.readUInt32LE(off + 8)).toBe(id);
        ts.push(two.readBigUInt64LE(off));
        got.push(two.readUInt32LE(off + 12));
      }
      expect(two.subarray(expected * 16).every((b) => b === 0xee)).toBe(true);
    }
    expect(got).toEqual([1, 2, 3, 4, 5]);
    expect([...ts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(ts);
    expect(() => relay.drain(undefined as unknown as Buffer)).toThrow(/drain\(into: Buffer\)/);
    relay.stop();
    native.close(src);
    native.close(dstR);
  });

  it('RelayHub: a listener that drains again (ending a session) gets its own buffer, so no event is lost or delivered twice', () => {
    const hub = new RelayHub(0);
    const src = native.eventfd(0);
    const dst = native.eventfd(0);
    const dstR = native.dup(dst);
    const t0 = native.monotonicNs();
    const counts = new Set<number>();
    let events = 0;
    let removed = false;
    const other = hub.add(native.eventfd(0), native.eventfd(0), () => undefined);
    hub.add(native.dup(src), dst, (e) => {
      events++;
      counts.add(e.count);
      expect(e.ts).toBeGreaterThanOrEqual(t0);
      if (!removed) {
        removed = true;
        hub.remove(other); // drains again, from inside the outer drain's delivery
      }
    });
    const N = 5000; // more than one batch of the hub's buffer (4096 events)
    for (let i = 1; i <= N; i++) {
      native.eventfdWrite(src, i); // each event tells which it is by its count
      while (native.eventfdRead(dstR) === null) {
        /* one pick-up per write: each is its own event */
      }
    }
    hub.drain();
    expect(removed).toBe(true);
    expect(events).toBe(N);
    expect(counts.size).toBe(N); // none twice (and so none lost)
    hub.stop();
    native.close(src);
    native.close(dstR);
  });

  it('relays while spinning politely on one CPU (setCpu with yieldWhileSpinning), and after moving back', async () => {
    const relay = newRelay(1024, 200_000); // a long spin: most writes land while it polls
    const src = native.eventfd(0);
    const dst = native.eventfd(0);
    const dstR = native.dup(dst);
    const id = relay.addPair(native.dup(src), dst);
    expect(relay.setCpu(0, true)).toBe(true);
    for (let i = 0; i < 200; i++) {
      native.eventfdWrite(src, 1);
      await until(() => native.eventfdRead(dstR) !== null, 2000, `relayed count ${i}`);
    }
    expect(relay.setCpu(-1)).toBe(true);
    native.eventfdWrite(src, 5);
    let got: bigint | null = null;
    await until(() => (got = native.eventfdRead(dstR)) !== null, 2000, 'the count after moving back');
    expect(got).toBe(5n);
    expect(relay.pairStats(id)).toMatchObject({ read: 205, written: 205, writeErrors: 0 });
    expect(relay.setCpu(1 << 20)).toBe(false); // beyond any CPU set
    relay.stop();
    expect(relay.setCpu(0)).toBe(false);
    native.close(src);
    native.close(dstR);
  });

  it('counts relay thread CPU time and stops cleanly with pairs still registered', () => {
    const before = openFds();
    const relay = newRelay(16);
    for (let i = 0; i < 4; i++) relay.addPair(native.eventfd(0), native.eventfd(0));
    expect(relay.stats().pairs).toBe(4);
    expect(relay.stats().threadCpuNs).toBeGreaterThanOrEqual(0);
    relay.stop();
    relay.stop();
    expect(openFds()).toBe(before);
    expect(() => relay.addPair(native.eventfd(0), native.eventfd(0))).toThrow(/ESHUTDOWN/);
    expect(openFds()).toBe(before);
  });

  it('never blocks on a blocking source that is empty: removing its pair returns (in a child: a block would hang this process)', async () => {
    // A peer's eventfd may be blocking, and the peer may read it too: epoll can say readable and
    // the count be gone when the relay reads. removePair relays what is pending, on the JS thread:
    // with nothing pending, a read without a poll first would wait there for good.
    const script = `
      const { native } = require(${JSON.stringify(path.resolve(__dirname, '../../dist/native'))});
      const relay = new native.Relay(16);
      const src = native.eventfd(0);
      native.setNonblocking(src, false); // blocking, and empty
      const id = relay.addPair(src, native.eventfd(0));
      relay.removePair(id);
      relay.stop();
      process.stdout.write('done');
    `;
    const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const t = setTimeout(() => {
        child.kill('SIGKILL');
        resolve(null);
      }, 10_000);
      child.on('exit', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    expect(out).toBe('done');
    expect(code).toBe(0);
  });
});
