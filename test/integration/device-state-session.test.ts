/**
 * SET_DEVICE_STATE_FD through a session: a pipe is interposed (the back-end gets the proxy's,
 * the bytes it writes reach the front-end's and are counted in a device-state event); any other
 * fd goes through as it came. Real peers: test/e2e/migration.test.ts (QEMU 10, the Rust virtiofsd).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { FaultRuleSet, parseFaultSpec } from '../../src/faults';
import { ProxyDaemon } from '../../src/proxy/daemon';
import type { DeviceStateEvent, FaultEvent, MessageEvent, ProxyEvent } from '../../src/events/events';
import { openFds, readAll, tmpDir, until } from '../helpers';
import { scriptedBackend } from '../peers';

const u32s = (...v: number[]): Buffer =>
  Buffer.concat(
    v.map((x) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(x);
      return b;
    }),
  );

/** A back-end that keeps the fds it is sent. */
/** Keeps every fd it gets. */
function backend(sock: string): { fds: number[]; close: () => void } {
  const fds: number[] = [];
  const b = scriptedBackend(sock, (g) => fds.push(...g.fds));
  return { fds, close: () => b.close() };
}

describe('SET_DEVICE_STATE_FD through a session', () => {
  it("save: the back-end writes into the proxy's pipe, the front-end reads it whole, the bytes are counted and kept", async () => {
    const dir = tmpDir('devstate');
    const before = openFds();
    const be = backend(path.join(dir, 'be.sock'));
    const events: ProxyEvent[] = [];
    const d = new ProxyDaemon({
      listenPath: path.join(dir, 'fe.sock'),
      connectPath: path.join(dir, 'be.sock'),
      interpose: false,
      keepDeviceState: 4,
      emit: (e) => events.push(e),
      notice: () => {},
    });
    d.start();
    const fe = new native.Channel(
      native.connectUnix(path.join(dir, 'fe.sock')),
      65536,
      () => {},
      () => {},
    );
    fe.start();
    const [feRead, feWrite] = native.pipe();
    fe.send(encodeMessage(Request.SET_DEVICE_STATE_FD, 1, u32s(0, 0)), [feWrite]); // direction save
    // an fd that is not a pipe goes through untouched
    const efd = native.eventfd(0);
    fe.send(encodeMessage(Request.SET_DEVICE_STATE_FD, 1, u32s(1, 0)), [efd]);
    await until(() => be.fds.length === 2, 5000, 'both fds at the back-end');
    expect(native.fdInfo(be.fds[0]).kind).toBe('pipe');
    expect(native.fdInfo(be.fds[1]).kind).toBe('eventfd');
    const reading = readAll(feRead);
    fs.writeSync(be.fds[0], 'saved state');
    fs.closeSync(be.fds[0]);
    expect((await reading).toString()).toBe('saved state');
    await until(() => events.some((e) => e.type === 'device-state'), 5000, 'the device-state event');
    const t = events.find((e): e is DeviceStateEvent => e.type === 'device-state')!;
    expect(t).toMatchObject({ session: 1, direction: 'save', bytes: 11, truncated: true });
    expect(t.data!.toString()).toBe('save');
    const sent = events.filter((e): e is MessageEvent => e.type === 'message' && e.decoded.name === 'SET_DEVICE_STATE_FD');
    expect(sent.map((m) => [m.fds[0]?.kind, m.interposed ?? false])).toEqual([
      ['pipe', true],
      ['eventfd', false],
    ]);
    expect(events.filter((e) => e.type === 'device-state')).toHaveLength(1);
    native.close(be.fds[1]); // (the front-end's copies went with its send)
    fe.close();
    d.stop();
    be.close();
    await until(() => openFds() === before, 5000, 'every fd closed');
  });

  it("hold-state: the save's bytes wait in the proxy's pipe as long as the rule says; a load it does not name goes at once", async () => {
    const dir = tmpDir('devstate-hold');
    const before = openFds();
    const be = backend(path.join(dir, 'be.sock'));
    const events: ProxyEvent[] = [];
    const faults = new FaultRuleSet(parseFaultSpec('hold-state save ms=400 id=slow-save'));
    const d = new ProxyDaemon({
      listenPath: path.join(dir, 'fe.sock'),
      connectPath: path.join(dir, 'be.sock'),
      interpose: false,
      faults,
      emit: (e) => events.push(e),
      notice: () => {},
    });
    d.start();
    const fe = new native.Channel(
      native.connectUnix(path.join(dir, 'fe.sock')),
      65536,
      () => {},
      () => {},
    );
    fe.start();
    const transfer = async (direction: 0 | 1): Promise<{ ms: number; got: string }> => {
      const [r, w] = native.pipe();
      fe.send(encodeMessage(Request.SET_DEVICE_STATE_FD, 1, u32s(direction, 0)), [direction === 0 ? w : r]);
      const n = be.fds.length;
      await until(() => be.fds.length === n + 1, 5000, 'the pipe at the back-end');
      const beFd = be.fds[n];
      const t0 = Date.now();
      // save: the back-end writes, the front-end reads; load: the other way round
      const reading = readAll(direction === 0 ? r : beFd);
      fs.writeSync(direction === 0 ? beFd : w, 'state');
      fs.closeSync(direction === 0 ? beFd : w);
      const got = (await reading).toString();
      return { ms: Date.now() - t0, got };
    };
    const save = await transfer(0);
    expect(save.got).toBe('state');
    expect(save.ms).toBeGreaterThanOrEqual(380); // never sooner than the hold (timers do not fire early)
    const load = await transfer(1);
    expect(load.got).toBe('state');
    await until(() => events.filter((e) => e.type === 'device-state').length === 2, 5000, 'both transfers reported');
    const [s, l] = events.filter((e): e is DeviceStateEvent => e.type === 'device-state');
    expect([s.direction, s.heldMs, s.bytes]).toEqual(['save', 400, 5]);
    expect([l.direction, l.heldMs, l.bytes]).toEqual(['load', undefined, 5]);
    expect(events.filter((e): e is FaultEvent => e.type === 'fault').map((f) => [f.rule, f.action, f.detail])).toEqual([
      ['slow-save', 'hold-state', 'the device-state save pipe held 400 ms before its bytes are copied on'],
    ]);
    fe.close();
    d.stop();
    be.close();
    await until(() => openFds() === before, 5000, 'every fd closed');
  });

  it('copies at most two transfers at once per session: a third pipe goes through as it came, with one notice', async () => {
    const dir = tmpDir('devstate-cap');
    const before = openFds();
    const be = backend(path.join(dir, 'be.sock'));
    const events: ProxyEvent[] = [];
    const d = new ProxyDaemon({
      listenPath: path.join(dir, 'fe.sock'),
      connectPath: path.join(dir, 'be.sock'),
      interpose: false,
      keepDeviceState: 1 << 20,
      emit: (e) => events.push(e),
      notice: () => {},
    });
    d.start();
    const fe = new native.Channel(
      native.connectUnix(path.join(dir, 'fe.sock')),
      65536,
      () => {},
      () => {},
    );
    fe.start();
    const readEnds: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [r, w] = native.pipe();
      readEnds.push(r);
      fe.send(encodeMessage(Request.SET_DEVICE_STATE_FD, 1, u32s(0, 0)), [w]); // save, never finished
    }
    await until(() => be.fds.length === 3, 5000, 'three fds at the back-end');
    const sent = events.filter((e): e is MessageEvent => e.type === 'message' && e.decoded.name === 'SET_DEVICE_STATE_FD');
    expect(sent.map((m) => m.interposed ?? false)).toEqual([true, true, false]);
    expect(
      events.filter((e) => e.type === 'notice' && /2 device-state transfers are already open in this session: this pipe goes through as it came/.test(e.msg)),
    ).toHaveLength(1);
    for (const fd of [...be.fds, ...readEnds]) native.close(fd);
    fe.close();
    d.stop();
    be.close();
    await until(() => openFds() === before, 5000, 'every fd closed');
  });
});
