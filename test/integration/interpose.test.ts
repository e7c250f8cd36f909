/**
 * Eventfd interposition with fake peers on real sockets: the proxy forwards eventfds of its
 * own, the native relay copies counts both ways, pairs are replaced and torn down as the
 * protocol says, the bypassing features are masked, and no fd is left behind.
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon, type DaemonOptions } from '../../src/proxy/daemon';
import { allowedCpus } from '../../src/proxy/relay-placement';
import type { MessageEvent, NotificationEvent, ProxyEvent, SessionEndEvent, SessionStartEvent } from '../../src/events/events';
import { checkEvents } from '../../src/analysis/checker';
import { openFds, tmpDir, until } from '../helpers';
import { answering, scriptedBackend, scriptedFrontend, u64, type Got } from '../peers';

interface Rig {
  fe: Channel;
  feGot: Got[];
  beGot: Got[];
  be: () => Channel;
  events: ProxyEvent[];
  daemon: ProxyDaemon;
  done: () => void;
}

async function rig(opts: Partial<DaemonOptions> = {}): Promise<Rig> {
  const dir = tmpDir('interpose');
  const listenPath = path.join(dir, 'fe.sock');
  const backendPath = path.join(dir, 'be.sock');
  const backend = scriptedBackend(
    backendPath,
    answering({
      [Request.GET_PROTOCOL_FEATURES]: u64((1n << 3n) | (1n << 11n) | (1n << 14n)),
      [Request.GET_VRING_BASE]: Buffer.from([0, 0, 0, 0, 7, 0, 0, 0]),
      [Request.GET_FEATURES]: u64(1n << 30n),
    }),
  );
  const events: ProxyEvent[] = [];
  const daemon = new ProxyDaemon({ listenPath, connectPath: backendPath, emit: (e) => events.push(e), ...opts });
  daemon.start();
  const frontend = scriptedFrontend(listenPath);
  const be = await backend.connected();
  return {
    fe: frontend.ch,
    feGot: frontend.got,
    beGot: be.got,
    events,
    daemon,
    be: () => be.ch,
    done: () => {
      frontend.close();
      daemon.stop();
      backend.close();
      for (const m of [...be.got, ...frontend.got]) for (const fd of m.fds) native.close(fd);
    },
  };
}

const id = (fd: number): number | undefined => native.fdInfo(fd).eventfdId;

/** The front-end sends vring 0's kick and call eventfds: its own ends (kick to write, call to read) and what the back-end got. */
async function kickAndCall(r: Rig): Promise<{ kickW: number; callR: number; kickB: number; callB: number }> {
  const before = r.beGot.length;
  const [kick, call] = [native.eventfd(0), native.eventfd(0)];
  const [kickW, callR] = [native.dup(kick), native.dup(call)];
  r.fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(0n)), [kick]);
  r.fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(0n)), [call]);
  await until(() => r.beGot.length === before + 2);
  return { kickW, callR, kickB: r.beGot[before].fds[0], callB: r.beGot[before + 1].fds[0] };
}
const messages = (r: Rig): MessageEvent[] => r.events.filter((e): e is MessageEvent => e.type === 'message');

describe('eventfd interposition', () => {
  it('forwards its own eventfds and relays kicks and calls between the pairs', async () => {
    const before = openFds();
    const r = await rig();
    expect((r.events[0] as SessionStartEvent).interpose).toBe(true);

    // masking: HOST_NOTIFIER and INBAND_NOTIFICATIONS leave the reply
    r.fe.send(encodeMessage(Request.GET_PROTOCOL_FEATURES, 1));
    await until(() => r.feGot.length === 1);
    expect(r.feGot[0].msg.readBigUInt64LE(12)).toBe(1n << 3n);
    expect(messages(r).find((m) => m.masked)?.masked).toEqual(['HOST_NOTIFIER', 'INBAND_NOTIFICATIONS']);

    const { kickW, callR, kickB, callB } = await kickAndCall(r);
    expect(r.beGot).toHaveLength(3);
    expect(id(kickB)).not.toBe(id(kickW)); // the backend got the proxy's eventfd, not the frontend's
    expect(id(callB)).not.toBe(id(callR));
    expect(messages(r).filter((m) => m.interposed)).toHaveLength(2);

    native.eventfdWrite(kickW, 1); // the frontend kicks
    let n: bigint | null = null;
    await until(() => (n = native.eventfdRead(kickB)) !== null);
    expect(n).toBe(1n);
    native.eventfdWrite(callB, 1); // the backend calls
    await until(() => (n = native.eventfdRead(callR)) !== null);
    expect(n).toBe(1n);

    // a re-sent SET_VRING_CALL replaces the pair; the old one keeps relaying for a grace period
    const call2 = native.eventfd(0);
    const call2R = native.dup(call2);
    r.fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(0n)), [call2]);
    await until(() => r.beGot.length === 4);
    const call2B = r.beGot[3].fds[0];
    native.eventfdWrite(call2B, 2);
    await until(() => (n = native.eventfdRead(call2R)) !== null);
    expect(n).toBe(2n);
    native.eventfdWrite(callB, 5);
    await until(() => (n = native.eventfdRead(callR)) !== null);
    expect(n).toBe(5n);

    // NOFD goes through unchanged with no fd
    r.fe.send(encodeMessage(Request.SET_VRING_ERR, 1, u64(0x100n)));
    await until(() => r.beGot.length === 5);
    expect(r.beGot[4].fds).toEqual([]);
    expect(r.beGot[4].msg.readBigUInt64LE(12)).toBe(0x100n);

    // the ring's spec state as status (and top) show it: started by its kick fd, enabled without PROTOCOL_FEATURES
    expect(r.daemon.activeSessions[0].status().ringStates).toEqual([{ vring: 0, started: true, enabled: true }]);
    const stats = r.daemon.activeSessions[0].notificationStats();
    expect(stats).toEqual([expect.objectContaining({ vring: 0, kicks: 1, calls: 3 })]);
    expect(stats[0].latencyUs?.count).toBe(1);

    // GET_VRING_BASE answered: the vring's pairs are gone, kicks no longer reach the backend
    r.fe.send(encodeMessage(Request.GET_VRING_BASE, 1, Buffer.alloc(8)));
    await until(() => r.feGot.length === 2);
    native.eventfdWrite(kickW, 1);
    await new Promise((res) => setTimeout(res, 50));
    expect(native.eventfdRead(kickB)).toBeNull();

    r.fe.close();
    await until(() => r.events.some((e) => e.type === 'session-end'));
    const end = r.events.find((e): e is SessionEndEvent => e.type === 'session-end')!;
    // finished pairs are summed per vring slot (the call pair and its replacement: 6 + 2)
    expect(end.relayPairs.map((p) => `${p.kind}${p.vring}:${p.read}/${p.written}`)).toEqual(['kick0:1/1', 'call0:8/8']);
    expect(end.vrings[0]).toMatchObject({ kicks: 1, calls: 3 });
    // the count the back-end wrote on the replaced fd says so (check's VU039 reads it)
    const calls = r.events.filter((e) => e.type === 'notification' && e.kind === 'call') as NotificationEvent[];
    expect(calls.map((e) => `${e.count}${e.replaced ? ' on the replaced fd' : ''}`)).toEqual(['1', '2', '5 on the replaced fd']);
    r.done();
    for (const fd of [kickW, callR, call2R]) native.close(fd);
    expect(openFds()).toBe(before);
  });

  it('a call on the replaced fd after the back-end answered a later request: check names the lost interrupt (VU039)', async () => {
    const r = await rig();
    const call = native.eventfd(0);
    const callR = native.dup(call);
    r.fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(0n)), [call]);
    const call2 = native.eventfd(0);
    const call2R = native.dup(call2);
    r.fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(0n)), [call2]);
    await until(() => r.beGot.length === 2);
    const oldB = r.beGot[0].fds[0];
    r.fe.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => r.feGot.length === 1);
    // the back-end has read both SET_VRING_CALLs (it answered the request after them), and still signals the old fd
    await new Promise((res) => setTimeout(res, 60));
    native.eventfdWrite(oldB, 1);
    let n: bigint | null = null;
    await until(() => (n = native.eventfdRead(callR)) !== null);
    expect(n).toBe(1n); // relayed in the grace period, where the front-end no longer listens
    r.fe.close();
    await until(() => r.events.some((e) => e.type === 'session-end'));
    const lost = checkEvents(r.events).filter((f) => f.rule.id === 'VU039');
    expect(lost.map((f) => f.detail)).toEqual([
      expect.stringMatching(
        /^vring 0: the back-end signalled the call fd that SET_VRING_CALL \(message #1\) replaced, \d+\.\d ms after it answered a later request$/,
      ),
    ]);
    r.done();
    for (const fd of [callR, call2R]) native.close(fd);
  });

  it('forwards every fd of a message, in order: SET_MEM_TABLE with three regions', async () => {
    const before = openFds();
    const r = await rig();
    const sizes = [1 << 20, 2 << 20, 3 << 20];
    const payload = Buffer.alloc(8 + 32 * sizes.length);
    payload.writeUInt32LE(sizes.length, 0);
    let gpa = 0n;
    sizes.forEach((size, i) => {
      payload.writeBigUInt64LE(gpa, 8 + 32 * i);
      payload.writeBigUInt64LE(BigInt(size), 16 + 32 * i);
      payload.writeBigUInt64LE(0x7f0000000000n + gpa, 24 + 32 * i);
      gpa += BigInt(size);
    });
    const regions = sizes.map((size, i) => native.memfdCreate(`region${i}`, size));
    r.fe.send(encodeMessage(Request.SET_MEM_TABLE, 1, payload), regions);
    await until(() => r.beGot.length === 1);
    expect(r.beGot[0].fds.map((fd) => native.fdInfo(fd))).toEqual(
      sizes.map((size, i) => expect.objectContaining({ kind: 'memfd', memfdName: `region${i}`, size })),
    );
    expect(messages(r)[0].fds.map((f) => f.slot)).toEqual([0, 1, 2]);
    r.done();
    expect(openFds()).toBe(before);
  });

  it('relays an err eventfd from the back-end to the front-end, never the other way', async () => {
    const before = openFds();
    const r = await rig();
    const err = native.eventfd(0);
    const errR = native.dup(err); // the front-end's end: it waits for the back-end's error signal
    r.fe.send(encodeMessage(Request.SET_VRING_ERR, 1, u64(1n)), [err]);
    await until(() => r.beGot.length === 1);
    const errB = r.beGot[0].fds[0];
    expect(id(errB)).not.toBe(id(errR));
    expect(messages(r).filter((m) => m.interposed)).toHaveLength(1);
    native.eventfdWrite(errB, 3); // the back-end signals an error on vring 1
    let n: bigint | null = null;
    await until(() => (n = native.eventfdRead(errR)) !== null);
    expect(n).toBe(3n);
    await until(() => r.daemon.activeSessions[0].notificationStats().some((v) => v.errs === 1));
    expect(r.daemon.activeSessions[0].notificationStats()).toEqual([expect.objectContaining({ vring: 1, errs: 1, kicks: 0, calls: 0 })]);
    r.fe.close();
    await until(() => r.events.some((e) => e.type === 'session-end'));
    r.done();
    native.close(errR);
    expect(openFds()).toBe(before);
  });

  it("--observe passes the peers' own eventfds, times each kick and call without taking a count, and still tells a call on a replaced fd (VU039)", async () => {
    const before = openFds();
    const r = await rig({ observe: true });
    expect(r.events[0]).toMatchObject({ type: 'session-start', interpose: true, observe: true });
    const { kickW, callR, kickB, callB } = await kickAndCall(r);
    expect(id(kickB)).toBe(id(kickW)); // the back-end got the front-end's own eventfds
    expect(id(callB)).toBe(id(callR));
    expect(messages(r).filter((m) => m.interposed)).toHaveLength(0);
    const notifications = () => r.events.filter((e): e is NotificationEvent => e.type === 'notification');
    const seen = (n: number): boolean => {
      r.daemon.activeSessions[0].notificationStats(); // takes in what the relay holds
      return notifications().length === n;
    };
    for (let i = 1; i <= 3; i++) {
      native.eventfdWrite(kickW, 2);
      expect(native.eventfdRead(kickB)).toBe(2n); // the back-end reads the whole count at once
      native.eventfdWrite(callB, 1);
      expect(native.eventfdRead(callR)).toBe(1n);
      await until(() => seen(2 * i), 2000, `round ${i} seen`);
    }
    expect(notifications().map((e) => e.kind)).toEqual(['kick', 'call', 'kick', 'call', 'kick', 'call']);
    // the front-end swaps its call fd, answers a later request, and the back-end still signals the old one
    const call2 = native.eventfd(0);
    const call2R = native.dup(call2);
    r.fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(0n)), [call2]);
    r.fe.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => r.feGot.length === 1 && r.beGot.length === 4);
    await new Promise((res) => setTimeout(res, 60));
    native.eventfdWrite(callB, 1);
    expect(native.eventfdRead(callR)).toBe(1n); // straight to the old fd: nothing relays it
    await until(() => seen(7), 2000, 'the late call seen');
    expect(notifications()[6]).toMatchObject({ kind: 'call', replaced: true });
    r.fe.close();
    await until(() => r.events.some((e) => e.type === 'session-end'));
    expect(checkEvents(r.events).filter((f) => f.rule.id === 'VU039')).toHaveLength(1);
    const end = r.events.find((e): e is SessionEndEvent => e.type === 'session-end')!;
    expect(end.vrings[0]).toMatchObject({ kicks: 3, calls: 4 });
    r.done();
    for (const fd of [kickW, callR, call2R]) native.close(fd);
    await until(() => openFds() === before);
  });

  it("--no-interpose passes the peers' own eventfds and leaves the features alone", async () => {
    const before = openFds();
    const r = await rig({ interpose: false });
    expect((r.events[0] as SessionStartEvent).interpose).toBe(false);
    r.fe.send(encodeMessage(Request.GET_PROTOCOL_FEATURES, 1));
    const kick = native.eventfd(0);
    const kickW = native.dup(kick);
    r.fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(0n)), [kick]);
    await until(() => r.beGot.length === 2 && r.feGot.length === 1);
    expect(r.feGot[0].msg.readBigUInt64LE(12)).toBe((1n << 3n) | (1n << 11n) | (1n << 14n));
    expect(id(r.beGot[1].fds[0])).toBe(id(kickW));
    r.done();
    native.close(kickW);
    await until(() => openFds() === before);
  });

  it('--relay-cpu auto puts the relay on the one CPU both peers and the daemon are confined to, and says so', async () => {
    // both fake peers and the daemon are this process: confine all its threads to one CPU
    const before = allowedCpus(process.pid).join(',');
    const cpu = os.cpus().length - 1;
    execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(process.pid)], { stdio: 'ignore' });
    try {
      const notices: { msg: string; fields?: Record<string, unknown> }[] = [];
      const r = await rig({ relayCpu: 'auto', notice: (_l, msg, fields) => notices.push({ msg, fields }) });
      r.fe.send(encodeMessage(Request.GET_PROTOCOL_FEATURES, 1)); // the roles are known now
      await until(() => notices.some((n) => n.fields?.relayCpu !== undefined), 5000, 'the placement notice');
      const n = notices.find((x) => x.fields?.relayCpu !== undefined)!;
      expect(n.fields?.relayCpu).toBe(cpu);
      expect(n.msg).toContain(
        `relay thread moved to CPU ${cpu}, both peers may run only on CPU ${cpu} (pids ${process.pid}, ${process.pid}), and so may this daemon`,
      );
      r.done();
    } finally {
      execFileSync('taskset', ['-a', '-p', '-c', before, String(process.pid)], { stdio: 'ignore' });
    }
  });

  it('RESET_OWNER tears every pair down', async () => {
    const before = openFds();
    const r = await rig();
    const kick = native.eventfd(0);
    const kickW = native.dup(kick);
    r.fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(1n)), [kick]);
    r.fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(1n)), [native.eventfd(0)]);
    await until(() => r.beGot.length === 2);
    r.fe.send(encodeMessage(Request.RESET_OWNER, 1));
    await until(() => r.beGot.length === 3);
    expect(r.daemon.relayStats()?.pairs).toBe(0);
    native.eventfdWrite(kickW, 1);
    await new Promise((res) => setTimeout(res, 30));
    expect(native.eventfdRead(r.beGot[0].fds[0])).toBeNull();
    r.done();
    native.close(kickW);
    expect(openFds()).toBe(before);
  });

  it('--keep-features keeps HOST_NOTIFIER and INBAND_NOTIFICATIONS while interposing', async () => {
    const r = await rig({ keepFeatures: true });
    r.fe.send(encodeMessage(Request.GET_PROTOCOL_FEATURES, 1));
    await until(() => r.feGot.length === 1);
    expect(r.feGot[0].msg.readBigUInt64LE(12)).toBe((1n << 3n) | (1n << 11n) | (1n << 14n));
    r.done();
  });
});
