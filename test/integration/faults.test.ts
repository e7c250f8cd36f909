/**
 * Fault rules applied by a real daemon between fake peers on real sockets: what each action
 * does on the wire, in which order, which events say so, and that no fd is left behind.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultRuleSet, parseFaultSpec } from '../../src/faults';
import { native, type Channel } from '../../src/native';
import { encodeMessage, HEADER_SIZE, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import type { FaultEvent, MessageEvent, ProxyEvent, SessionEndEvent } from '../../src/events/events';
import { openFds, tmpDir, until } from '../helpers';
import { reply, scriptedBackend, scriptedFrontend, u64, type PeerScript } from '../peers';

const vringState = (index: number, num: number): Buffer => {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(index, 0);
  b.writeUInt32LE(num, 4);
  return b;
};
const OFFERED_PROTOCOL = 0x10cbfn; // testpmd's: MQ|LOG_SHMFD|RARP|REPLY_ACK|MTU|BACKEND_REQ|...|STATUS

/** A backend that answers what a backend must answer (it remembers everything it got). */
const fakeBackend: PeerScript = (g, conn) => {
  if (g.code === Request.GET_FEATURES) conn.send(reply(g.code, u64((1n << 32n) | (1n << 30n))));
  if (g.code === Request.GET_PROTOCOL_FEATURES) conn.send(reply(g.code, u64(OFFERED_PROTOCOL)));
  if (g.code === Request.GET_VRING_BASE) conn.send(reply(g.code, vringState(g.payload.readUInt32LE(0), 42)));
  else if (g.code === Request.GET_CONFIG) conn.send(reply(g.code, g.payload));
  else if (g.flags & 8 && ![Request.GET_FEATURES, Request.GET_PROTOCOL_FEATURES, Request.GET_VRING_BASE].includes(g.code)) conn.send(reply(g.code, u64(0n))); // REPLY_ACK
};

async function setup(specs: string[], interpose = true, name?: string) {
  const dir = tmpDir('faults');
  const listenPath = path.join(dir, 'fe.sock');
  const backendPath = path.join(dir, 'be.sock');
  const backend = scriptedBackend(backendPath, fakeBackend);
  const events: ProxyEvent[] = [];
  const rules = new FaultRuleSet(specs.flatMap(parseFaultSpec));
  const daemon = new ProxyDaemon({ listenPath, connectPath: backendPath, interpose, faults: rules, ...(name ? { name } : {}), emit: (e) => events.push(e) });
  daemon.start();
  const frontend = scriptedFrontend(listenPath);
  await backend.connected();
  const { got } = backend;
  const done = (): void => {
    frontend.close();
    daemon.stop();
    backend.close();
    for (const m of [...got, ...frontend.got]) for (const fd of m.fds) native.close(fd);
  };
  const faults = (): FaultEvent[] => events.filter((e): e is FaultEvent => e.type === 'fault');
  const messages = (): MessageEvent[] => events.filter((e): e is MessageEvent => e.type === 'message');
  const beEnded = {
    get v() {
      return backend.conns[0]!.ended;
    },
  };
  const feEnded = {
    get v() {
      return frontend.ended;
    },
  };
  return { fe: frontend.ch, got, replies: frontend.got, events, faults, messages, rules, daemon, done, beEnded, feEnded, listenPath };
}

let cleanup: (() => void) | undefined;
afterEach(() => {
  cleanup?.();
  cleanup = undefined;
});

describe('fault rules between fake peers', () => {
  it('drop: the message and its fds never reach the backend; nothing leaks', async () => {
    const before = openFds();
    const t = await setup(['drop SET_VRING_ERR vring=1'], false);
    cleanup = t.done;
    for (const idx of [0, 1]) {
      const efd = native.eventfd(0);
      t.fe.send(encodeMessage(Request.SET_VRING_ERR, 1, u64(BigInt(idx))), [efd]);
    }
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    await until(() => t.got.some((g) => g.code === Request.SET_OWNER), 5000, 'SET_OWNER');
    expect(t.got.map((g) => g.code)).toEqual([Request.SET_VRING_ERR, Request.SET_OWNER]);
    expect(t.got[0].payload.readUInt32LE(0)).toBe(0);
    const dropped = t.messages().find((m) => m.undelivered);
    expect(dropped).toMatchObject({ undelivered: 'dropped', faults: ['1'] });
    expect(t.faults()).toEqual([expect.objectContaining({ rule: '1', action: 'drop', detail: 'F>B SET_VRING_ERR(vring 1) dropped with its 1 fd(s)' })]);
    t.done();
    cleanup = undefined;
    await until(() => openFds() === before, 3000, `fds back to ${before} (now ${openFds()})`);
  });

  it('nth=2 drops the second match of each session, counted per session', async () => {
    const t = await setup(['drop SET_VRING_ERR nth=2'], false);
    cleanup = t.done;
    const sendErrs = (fe: Channel): void => {
      for (const idx of [0, 1, 2]) fe.send(encodeMessage(Request.SET_VRING_ERR, 1, u64(BigInt(idx) | 0x100n)));
      fe.send(encodeMessage(Request.SET_OWNER, 1));
    };
    const errsSeen = (): number[] => t.got.filter((g) => g.code === Request.SET_VRING_ERR).map((g) => g.payload.readUInt32LE(0) & 0xff);
    sendErrs(t.fe);
    await until(() => t.got.some((g) => g.code === Request.SET_OWNER), 5000, 'SET_OWNER');
    expect(errsSeen()).toEqual([0, 2]);
    // a second session counts from one again
    const fe2 = new native.Channel(
      native.connectUnix(t.listenPath),
      65536,
      () => {},
      () => {},
    );
    fe2.start();
    try {
      sendErrs(fe2);
      await until(() => t.got.filter((g) => g.code === Request.SET_OWNER).length === 2, 5000, 'the second SET_OWNER');
      expect(errsSeen()).toEqual([0, 2, 0, 2]);
      expect(t.faults().map((f) => `${f.session} ${f.detail}`)).toEqual(['1 F>B SET_VRING_ERR(vring 1) dropped', '2 F>B SET_VRING_ERR(vring 1) dropped']);
    } finally {
      fe2.close();
    }
  });

  it('bits= matches a message only when all of the bits are set', async () => {
    const t = await setup(['drop SET_STATUS bits=ACKNOWLEDGE|DRIVER'], false);
    cleanup = t.done;
    for (const status of [1n, 2n, 3n, 7n, 4n]) t.fe.send(encodeMessage(Request.SET_STATUS, 1, u64(status)));
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    await until(() => t.got.some((g) => g.code === Request.SET_OWNER), 5000, 'SET_OWNER');
    // ACKNOWLEDGE (1) alone or DRIVER (2) alone pass; 3 and 7 hold both and are dropped
    expect(t.got.filter((g) => g.code === Request.SET_STATUS).map((g) => Number(g.payload.readBigUInt64LE(0)))).toEqual([1, 2, 4]);
    expect(t.faults()).toHaveLength(2);
  });

  it('a session that ends while messages are held or delayed closes their fds', async () => {
    const before = openFds();
    const t = await setup(['hold SET_VRING_CALL vring=0 until=SET_OWNER max=60000', 'delay SET_VRING_ERR ms=60000'], false);
    t.fe.send(encodeMessage(Request.SET_VRING_CALL, 1, u64(0n)), [native.eventfd(0)]);
    t.fe.send(encodeMessage(Request.SET_VRING_ERR, 1, u64(0n)), [native.eventfd(0)]);
    await until(() => t.faults().length === 2, 5000, 'hold and delay');
    expect(t.daemon.status().sessions[0].faults).toEqual({ held: ['F>B SET_VRING_CALL(vring 0) (rule 1)'], queued: 1 });
    t.fe.close();
    await until(() => t.events.some((e) => e.type === 'session-end'), 5000, 'the session end');
    t.done();
    await until(() => openFds() === before, 3000, `fds back to ${before} (now ${openFds()})`);
    expect(t.got).toEqual([]);
  });

  it("answer: the proxy replies in the backend's place", async () => {
    const t = await setup(['answer GET_VRING_BASE value=7']);
    cleanup = t.done;
    t.fe.send(encodeMessage(Request.GET_VRING_BASE, 1, vringState(1, 0)));
    await until(() => t.replies.length === 1, 5000, 'the reply');
    expect(t.replies[0]).toMatchObject({ code: Request.GET_VRING_BASE, flags: 5 });
    expect([t.replies[0].payload.readUInt32LE(0), t.replies[0].payload.readUInt32LE(4)]).toEqual([1, 7]);
    expect(t.got).toEqual([]);
    const m = t.messages();
    expect(m.map((x) => [x.dir, x.decoded.name, x.undelivered, x.injected])).toEqual([
      ['F>B', 'GET_VRING_BASE', 'answered', undefined],
      ['B>F', 'GET_VRING_BASE', undefined, true],
    ]);
  });

  it('delay: the message and everything behind it on that stream arrive late, in order', async () => {
    const t = await setup(['delay SET_OWNER ms=300']);
    cleanup = t.done;
    const sent = Date.now();
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    t.fe.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => t.replies.length === 1, 5000, 'GET_FEATURES reply');
    expect(t.got.map((g) => g.code)).toEqual([Request.SET_OWNER, Request.GET_FEATURES]);
    expect(t.got[0].at - sent).toBeGreaterThanOrEqual(290);
    const owner = t.messages().find((m) => m.decoded.name === 'SET_OWNER')!;
    expect(Number(owner.heldNs) / 1e6).toBeGreaterThanOrEqual(290);
  });

  it('hold until a message: later messages overtake it', async () => {
    const t = await setup(['hold SET_VRING_ENABLE vring=0 until=SET_VRING_NUM:1']);
    cleanup = t.done;
    t.fe.send(encodeMessage(Request.SET_VRING_ENABLE, 1, vringState(0, 1)));
    t.fe.send(encodeMessage(Request.SET_VRING_ENABLE, 1, vringState(1, 1)));
    t.fe.send(encodeMessage(Request.SET_VRING_NUM, 1, vringState(1, 256)));
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    await until(() => t.got.length === 4, 5000, 'four messages');
    expect(t.got.map((g) => [g.code, g.payload.length ? g.payload.readUInt32LE(0) : 0])).toEqual([
      [Request.SET_VRING_ENABLE, 1],
      [Request.SET_VRING_NUM, 1],
      [Request.SET_VRING_ENABLE, 0],
      [Request.SET_OWNER, 0],
    ]);
    expect(t.faults().map((f) => f.detail)).toEqual([
      expect.stringMatching(/^F>B SET_VRING_ENABLE\(vring 0\) held until SET_VRING_NUM has passed/),
      expect.stringMatching(/^F>B SET_VRING_ENABLE\(vring 0\) released after F>B SET_VRING_NUM\(vring 1\)/),
    ]);
  });

  it('hold gives up after max ms and says so', async () => {
    const t = await setup(['hold SET_OWNER until=GET_FEATURES max=200']);
    cleanup = t.done;
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    await until(() => t.got.length === 1, 5000, 'SET_OWNER after the timeout');
    expect(t.faults()[1].detail).toMatch(/not released by GET_FEATURES within 200 ms: forwarded now/);
  });

  it('hold SET_VRING_ENABLE while injecting a kick: the backend sees the kick first', async () => {
    const t = await setup(['hold SET_VRING_ENABLE vring=0 until=kick:0', 'inject kick:0 after=SET_VRING_ENABLE:0']);
    cleanup = t.done;
    const kick = native.eventfd(0);
    t.fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(0n)), [native.dup(kick)]);
    await until(() => t.got.length === 1, 5000, 'SET_VRING_KICK');
    const backendKick = t.got[0].fds[0];
    t.fe.send(encodeMessage(Request.SET_VRING_ENABLE, 1, vringState(0, 1)));
    await until(() => t.got.length === 2, 5000, 'SET_VRING_ENABLE');
    expect(native.eventfdRead(backendKick)).toBe(1n); // the injected kick was there before the enable
    const order = t.events
      .filter((e) => e.type !== 'session-start')
      .map((e) =>
        e.type === 'fault'
          ? `fault:${e.action}`
          : e.type === 'notification'
            ? `${e.kind}${e.injected ? ' (injected)' : ''}`
            : e.type === 'message'
              ? e.decoded.name
              : e.type,
      );
    expect(order).toEqual(['SET_VRING_KICK', 'fault:hold', 'fault:inject', 'kick (injected)', 'fault:hold', 'SET_VRING_ENABLE']);
    native.close(kick);
  });

  it('chaos enable: SET_VRING_ENABLE(1) waits for its vring to be kicked, and the backend sees the kick first', async () => {
    const t = await setup(['chaos seed=7 profile=enable']);
    cleanup = t.done;
    const kick = native.eventfd(0);
    const kickW = native.dup(kick);
    t.fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(0n)), [kick]);
    await until(() => t.got.length === 1, 5000, 'SET_VRING_KICK');
    const backendKick = t.got[0].fds[0];
    t.fe.send(encodeMessage(Request.SET_VRING_ENABLE, 1, vringState(0, 0))); // a disable is left alone
    t.fe.send(encodeMessage(Request.SET_VRING_ENABLE, 1, vringState(0, 1)));
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    await until(() => t.got.length === 3, 5000, 'the disable and SET_OWNER');
    expect(t.got.map((g) => g.code)).toEqual([Request.SET_VRING_KICK, Request.SET_VRING_ENABLE, Request.SET_OWNER]);
    native.eventfdWrite(kickW, 1); // the driver kicks: the enable follows it
    await until(() => t.got.length === 4, 5000, 'SET_VRING_ENABLE(1)');
    expect(t.got[3].payload.readUInt32LE(4)).toBe(1);
    expect(native.eventfdRead(backendKick)).toBe(1n);
    expect(t.faults().map((f) => `${f.action} ${f.text}: ${f.detail}`)).toEqual([
      expect.stringMatching(/^chaos chaos seed=7 profile=enable: F>B SET_VRING_ENABLE\(vring 0\) held until a kick on vring 0 has passed \(at most 30000 ms\)/),
      expect.stringMatching(/^chaos chaos seed=7 profile=enable: F>B SET_VRING_ENABLE\(vring 0\) released after a kick on vring 0 \(held \d+\.\d ms\)$/),
    ]);
    native.close(kickW);
  });

  it('chaos delays: the same seed perturbs the same messages the same way, another seed otherwise, order kept', async () => {
    const run = async (seed: number): Promise<string[]> => {
      const t = await setup([`chaos seed=${seed} profile=delays max=15`]);
      try {
        for (let i = 0; i < 12; i++) t.fe.send(encodeMessage(Request.SET_VRING_NUM, 1, vringState(i, 256)));
        t.fe.send(encodeMessage(Request.GET_FEATURES, 1));
        await until(() => t.replies.length === 1, 5000, 'GET_FEATURES reply');
        // a stream stays in order whatever is delayed
        expect(t.got.map((g) => (g.code === Request.SET_VRING_NUM ? g.payload.readUInt32LE(0) : 'F'))).toEqual([
          ...Array.from({ length: 12 }, (_, i) => i),
          'F',
        ]);
        return t.faults().map((f) => f.detail);
      } finally {
        t.done();
      }
    };
    const a = await run(42);
    expect(a.length).toBeGreaterThan(0);
    for (const d of a)
      expect(d).toMatch(/^(F>B SET_VRING_NUM\(vring \d+\)|F>B GET_FEATURES|B>F GET_FEATURES reply) delayed by ([1-9]|1[0-5]) ms \((message|reply) late\)$/);
    expect(await run(42)).toEqual(a);
    expect(await run(43)).not.toEqual(a);
  });

  it('chaos split: each cut message reaches the backend whole, in order, its fds with its first part; the seed decides the cuts', async () => {
    const run = async (): Promise<string[]> => {
      const t = await setup(['chaos seed=5 profile=split max=10'], false);
      try {
        for (let i = 0; i < 8; i++) {
          t.fe.send(encodeMessage(Request.SET_VRING_NUM, 1, vringState(i, 256)));
          t.fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(BigInt(i))), [native.eventfd(0)]);
        }
        await until(() => t.got.length === 16, 5000, 'every message');
        expect(t.got.map((g) => `${g.code} ${g.payload.readUInt32LE(0)}`)).toEqual(
          Array.from({ length: 8 }, (_, i) => [`${Request.SET_VRING_NUM} ${i}`, `${Request.SET_VRING_KICK} ${i}`]).flat(),
        );
        // the fd rides with the first part, as the 2026 text wants: the reader saw it at byte 0
        for (const g of t.got.filter((x) => x.code === Request.SET_VRING_KICK)) expect([g.fds.length, g.fdsAt]).toEqual([1, 0]);
        return t.faults().map((f) => f.detail);
      } finally {
        t.done();
      }
    };
    const cuts = await run();
    expect(cuts.length).toBeGreaterThan(2);
    for (const d of cuts)
      expect(d).toMatch(/^F>B SET_VRING_(NUM|KICK)\(vring \d\) split in two writes: ([1-9]|1\d) of 20 bytes, the rest ([1-9]|10) ms later$/);
    expect(await run()).toEqual(cuts);
  });

  it('inject without interposition reports why it could not', async () => {
    const t = await setup(['inject call:0 after=SET_OWNER'], false);
    cleanup = t.done;
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    await until(() => t.faults().length === 1, 5000, 'the fault event');
    expect(t.faults()[0].detail).toMatch(/could not inject a call on vring 0 after F>B SET_OWNER: the session does not interpose eventfds/);
  });

  it('mask REPLY_ACK both ways: offered without it, acked without it', async () => {
    const t = await setup(['mask protocol:REPLY_ACK']);
    cleanup = t.done;
    t.fe.send(encodeMessage(Request.GET_PROTOCOL_FEATURES, 1));
    await until(() => t.replies.length === 1, 5000, 'the reply');
    const offered = t.replies[0].payload.readBigUInt64LE(0);
    expect(offered & 8n).toBe(0n);
    t.fe.send(encodeMessage(Request.SET_PROTOCOL_FEATURES, 1, u64(OFFERED_PROTOCOL)));
    await until(() => t.got.length === 2, 5000, 'SET_PROTOCOL_FEATURES');
    expect(t.got[1].payload.readBigUInt64LE(0) & 8n).toBe(0n);
    const masked = t.messages().filter((m) => m.masked?.includes('REPLY_ACK'));
    expect(masked.map((m) => m.dir)).toEqual(['B>F', 'F>B']);
    expect(masked[0].received!.readBigUInt64LE(HEADER_SIZE) & 8n).toBe(8n); // what the backend really said
  });

  it('disconnect the backend after a message: the session ends on both sides, naming the rule', async () => {
    const t = await setup(['disconnect backend after=SET_STATUS:DRIVER_OK limit=1']);
    cleanup = t.done;
    t.fe.send(encodeMessage(Request.SET_STATUS, 1, u64(0xbn)));
    t.fe.send(encodeMessage(Request.SET_STATUS, 1, u64(0xfn)));
    await until(() => t.beEnded.v && t.feEnded.v, 5000, 'both sides closed');
    expect(t.got.map((g) => g.payload.readBigUInt64LE(0))).toEqual([0xbn, 0xfn]);
    const end = t.events.find((e): e is SessionEndEvent => e.type === 'session-end')!;
    expect(end.reason).toBe('fault rule 1 (disconnect backend after=SET_STATUS:DRIVER_OK limit=1): disconnected the backend after F>B SET_STATUS');
    expect(end.by).toBe('proxy');
    expect(t.rules.list()[0].applied).toBe(1);
  });

  it("device= scopes a rule to the sessions of that device: a migration's destination alone", async () => {
    const specs = ['disconnect backend after=SET_STATUS:DRIVER_OK device=dst', 'delay SET_STATUS ms=1 id=src-only device=src'];
    const src = await setup(specs, true, 'src');
    const dst = await setup(specs, true, 'dst');
    cleanup = () => {
      src.done();
      dst.done();
    };
    for (const t of [src, dst]) t.fe.send(encodeMessage(Request.SET_STATUS, 1, u64(0xfn)));
    await until(() => dst.beEnded.v && dst.feEnded.v, 5000, 'the destination ended by its rule');
    await until(() => src.got.length === 1, 5000, 'the source forwarded SET_STATUS');
    expect(src.faults().map((f) => [f.rule, f.action])).toEqual([['src-only', 'delay']]);
    expect(dst.faults().map((f) => [f.rule, f.action])).toEqual([['1', 'disconnect']]);
    expect(src.beEnded.v || src.feEnded.v).toBe(false);
  });

  it('the virtio-vhost-user preset: only the 15 requests pass, the rest are answered or dropped', async () => {
    const t = await setup(['preset virtio-vhost-user']);
    cleanup = t.done;
    t.fe.send(encodeMessage(Request.GET_PROTOCOL_FEATURES, 1));
    await until(() => t.replies.length === 1, 5000, 'GET_PROTOCOL_FEATURES');
    expect(t.replies[0].payload.readBigUInt64LE(0)).toBe(0x9n); // MQ|REPLY_ACK
    t.fe.send(encodeMessage(Request.SET_PROTOCOL_FEATURES, 1, u64(0x9n)));
    const cfg = Buffer.alloc(12 + 8);
    cfg.writeUInt32LE(0, 0);
    cfg.writeUInt32LE(8, 4);
    cfg.fill(0xaa, 12);
    t.fe.send(encodeMessage(Request.GET_CONFIG, 1, cfg));
    t.fe.send(encodeMessage(Request.SET_VRING_ERR, 1, u64(0x100n)));
    t.fe.send(encodeMessage(Request.SET_OWNER, 9));
    await until(() => t.replies.length === 3, 5000, 'GET_CONFIG and SET_OWNER answers');
    expect(t.got.map((g) => g.code)).toEqual([Request.GET_PROTOCOL_FEATURES, Request.SET_PROTOCOL_FEATURES, Request.SET_OWNER]);
    expect(t.replies[1].code).toBe(Request.GET_CONFIG);
    expect(t.replies[1].payload.subarray(12).equals(Buffer.alloc(8))).toBe(true);
    expect(
      t
        .faults()
        .filter((f) => f.action === 'filter')
        .map((f) => f.detail),
    ).toEqual(['F>B GET_CONFIG not forwarded; the proxy answered it (value 0)', 'F>B SET_VRING_ERR(vring 0) not forwarded (no reply due)']);
  });

  it('rules added while a session runs apply from its next message', async () => {
    const t = await setup([]);
    cleanup = t.done;
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    await until(() => t.got.length === 1, 5000, 'SET_OWNER');
    t.rules.add(parseFaultSpec('drop SET_OWNER')[0]);
    t.fe.send(encodeMessage(Request.SET_OWNER, 1));
    t.fe.send(encodeMessage(Request.GET_FEATURES, 1));
    await until(() => t.replies.length === 1, 5000, 'GET_FEATURES');
    expect(t.got.map((g) => g.code)).toEqual([Request.SET_OWNER, Request.GET_FEATURES]);
    expect(t.daemon.status().rules).toEqual([expect.objectContaining({ id: '1', text: 'drop SET_OWNER', applied: 1 })]);
  });
});
