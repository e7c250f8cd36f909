/** The spec's ring states (started/stopped x enabled/disabled), followed from the main channel. */
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, Request, SessionRings } from '../../src/protocol';
import type { ProxyEvent } from '../../src/events/events';
import { finalRingStates, ringStateText, ringTransitions } from '../../src/analysis/ring-states';

const u64 = (v: bigint): Buffer => Buffer.from(new BigUint64Array([v]).buffer);
const u32s = (...v: number[]): Buffer => Buffer.from(new Uint32Array(v).buffer);

function session(steps: [sender: 'frontend' | 'backend', code: number, payload: Buffer, extra?: Record<string, unknown>][]): ProxyEvent[] {
  let ts = 0n;
  const out: ProxyEvent[] = [{ type: 'session-start', ts, session: 1, listenPath: '', connectPath: '', frontend: 'auto', interpose: true, peers: {} }];
  for (const [sender, code, payload, extra] of steps) {
    const raw = encodeMessage(code, sender === 'frontend' ? 1 : 5, payload);
    ts += 1000n;
    out.push({
      type: 'message',
      ts,
      session: 1,
      channel: 'main',
      sender,
      dir: sender === 'frontend' ? 'F>B' : 'B>F',
      raw,
      decoded: decodeMessage('main', raw, sender),
      fds: [],
      findings: [],
      ...extra,
    } as ProxyEvent);
  }
  return out;
}

const PF = 1n << 30n;
const line = (e: ProxyEvent[]) => ringTransitions(e).map((t) => `${t.vring} ${ringStateText(t)} (${t.why})`);

describe('ring states', () => {
  it('with PROTOCOL_FEATURES: a kick fd starts a ring disabled; enable, stop, disable', () => {
    const e = session([
      ['frontend', Request.SET_FEATURES, u64(PF)],
      ['frontend', Request.SET_VRING_KICK, u64(0n)],
      ['frontend', Request.SET_VRING_KICK, u64(1n)],
      ['frontend', Request.SET_VRING_ENABLE, u32s(0, 1)],
      ['frontend', Request.GET_VRING_BASE, u32s(0, 0)],
      ['backend', Request.GET_VRING_BASE, u32s(0, 7)],
      ['frontend', Request.SET_VRING_ENABLE, u32s(0, 0)],
    ]);
    expect(line(e)).toEqual([
      '0 started, disabled (SET_VRING_KICK)',
      '1 started, disabled (SET_VRING_KICK)',
      '0 started, enabled (SET_VRING_ENABLE(1))',
      '0 stopped, enabled (GET_VRING_BASE reply)',
      '0 stopped, disabled (SET_VRING_ENABLE(0))',
    ]);
    expect([...finalRingStates(ringTransitions(e), 1).values()].map((t) => `${t.vring} ${ringStateText(t)}`)).toEqual([
      '0 stopped, disabled',
      '1 started, disabled',
    ]);
  });

  it('without PROTOCOL_FEATURES a ring is enabled from the start; RESET_OWNER stops every ring', () => {
    const e = session([
      ['frontend', Request.SET_FEATURES, u64(1n << 32n)],
      ['frontend', Request.SET_VRING_KICK, u64(0n)],
      ['frontend', Request.SET_VRING_KICK, u64(1n)],
      ['frontend', Request.RESET_OWNER, Buffer.alloc(0)],
    ]);
    expect(line(e)).toEqual([
      '0 started, enabled (SET_VRING_KICK)',
      '1 started, enabled (SET_VRING_KICK)',
      '0 stopped, enabled (RESET_OWNER)',
      '1 stopped, enabled (RESET_OWNER)',
    ]);
  });

  it('a message the back-end never received changes nothing; a repeated state is no transition', () => {
    const e = session([
      ['frontend', Request.SET_FEATURES, u64(PF)],
      ['frontend', Request.SET_VRING_KICK, u64(0n), { undelivered: 'dropped' }],
      ['frontend', Request.SET_VRING_ENABLE, u32s(0, 0)],
      ['frontend', Request.SET_VRING_KICK, u64(0n)],
      ['frontend', Request.SET_VRING_KICK, u64(0n)],
    ]);
    expect(line(e)).toEqual(['0 started, disabled (SET_VRING_KICK)']);
  });
});

describe('ring states: what does not change them', () => {
  /** one session's messages applied to SessionRings, one line per change */
  const apply = (steps: Parameters<typeof session>[0]): string[] => line(session(steps));

  it('a message the back-end never got, another channel, the wrong sender or a request without its reply change nothing', () => {
    expect(
      apply([
        ['frontend', Request.SET_VRING_KICK, u64(0n), { undelivered: 'dropped' }],
        ['frontend', Request.SET_VRING_KICK, u64(1n), { channel: 'backend' }],
        ['backend', Request.SET_VRING_KICK, u64(2n)], // not the front-end's
        ['backend', Request.SET_VRING_ENABLE, u32s(3, 1)],
        // a request (not a reply) from the back-end on the main channel
        ['backend', Request.SET_VRING_KICK, u64(6n), { decoded: decodeMessage('main', encodeMessage(Request.SET_VRING_KICK, 1, u64(6n))) }],
        ['frontend', Request.SET_VRING_KICK, u64(4n)],
        ['frontend', Request.GET_VRING_BASE, u32s(4, 0)], // the request alone does not stop it
        ['frontend', Request.GET_VRING_BASE, u32s(4, 0), { decoded: decodeMessage('main', encodeMessage(Request.GET_VRING_BASE, 5, u32s(4, 0))) }], // a reply, from the front-end
        ['frontend', Request.SET_VRING_NUM, u32s(4, 256)],
      ]),
    ).toEqual(['4 started, enabled (SET_VRING_KICK)']);
  });

  it('counts vrings 0 to 1023 only', () => {
    expect(
      apply([
        ['frontend', Request.SET_FEATURES, u64(PF)],
        ['frontend', Request.SET_VRING_ENABLE, u32s(1023, 1)],
        ['frontend', Request.SET_VRING_ENABLE, u32s(1024, 1)],
      ]),
    ).toEqual(['1023 stopped, enabled (SET_VRING_ENABLE(1))']);
  });

  it('the device is suspended only once a ring started and every ring stopped', () => {
    const rings = new SessionRings();
    const feed = (steps: Parameters<typeof session>[0]) => {
      for (const e of session(steps).slice(1)) rings.apply(e as never);
    };
    feed([['frontend', Request.SET_VRING_ENABLE, u32s(0, 1)]]);
    expect(rings.suspended).toBe(false); // enabled, never started
    feed([
      ['frontend', Request.SET_VRING_KICK, u64(0n)],
      ['frontend', Request.SET_VRING_KICK, u64(1n)],
    ]);
    expect(rings.suspended).toBe(false);
    feed([['backend', Request.GET_VRING_BASE, u32s(0, 5)]]);
    expect(rings.suspended).toBe(false); // ring 1 still started
    feed([['frontend', Request.RESET_DEVICE, Buffer.alloc(0)]]);
    expect(rings.suspended).toBe(true);
  });
});
