/** The interposition table (src/proxy/interpositions.ts): handlers chosen by sender, direction and request, in table order; the real table of a session. */
import { describe, expect, it } from 'vitest';
import { encodeMessage, newNegotiation, ProtocolFeature, Request } from '../../src/protocol';
import type { PendingMessage } from '../../src/proxy/pending-message';
import { InterpositionTable, mainInterpositions, type Interposition, type SessionParts } from '../../src/proxy/interpositions';
import type { Interposer } from '../../src/proxy/interposer';
import type { RingTracker } from '../../src/proxy/ring-tracker';
import type { DirtyLogReader } from '../../src/proxy/dirty-log-reader';
import type { InflightReader } from '../../src/proxy/inflight-reader';
import type { SubChannels } from '../../src/proxy/sub-channels';

describe('InterpositionTable', () => {
  const h = (name: string, sender: 'frontend' | 'backend', reply: boolean, requests?: number[]): Interposition => ({
    name,
    sender,
    reply,
    ...(requests ? { requests } : {}),
  });
  const table = new InterpositionTable([
    h('eventfd interposer', 'frontend', false, [Request.SET_VRING_KICK, Request.SET_VRING_CALL]),
    h('ring tracker', 'frontend', false),
    h('feature mask', 'backend', true, [Request.GET_PROTOCOL_FEATURES]),
    h('relay stop', 'backend', true, [Request.GET_VRING_BASE]),
  ]);
  const names = (sender: 'frontend' | 'backend', reply: boolean, request: number): string[] => table.for(sender, reply, request).map((x) => x.name);

  it('runs the handlers a message matches, in table order, and only those', () => {
    expect(names('frontend', false, Request.SET_VRING_CALL)).toEqual(['eventfd interposer', 'ring tracker']);
    expect(names('frontend', false, Request.SET_MEM_TABLE)).toEqual(['ring tracker']);
    expect(names('backend', true, Request.GET_PROTOCOL_FEATURES)).toEqual(['feature mask']);
    // the same code in the other direction (a request, or from the other peer) matches nothing
    expect(names('frontend', true, Request.GET_PROTOCOL_FEATURES)).toEqual([]);
    expect(names('backend', false, Request.GET_VRING_BASE)).toEqual([]);
    expect(table.for('frontend', false, Request.SET_VRING_CALL)).toBe(table.for('frontend', false, Request.SET_VRING_CALL));
  });
});

describe("the main channel's table, as a session builds it", () => {
  // the rows only hold on to their parts; choosing them never calls into one
  const parts = (o: { interpose: boolean; rings: boolean; keepFeatures?: boolean }): SessionParts => ({
    interposer: o.interpose ? ({} as Interposer) : undefined,
    rings: o.rings ? ({} as RingTracker) : undefined,
    dirtyLog: o.rings ? ({} as DirtyLogReader) : undefined,
    inflight: o.rings ? ({} as InflightReader) : undefined,
    subs: {} as SubChannels,
    keepFeatures: o.keepFeatures ?? false,
    notice: () => undefined,
    deviceState: () => undefined,
    ringBase: () => undefined,
    negotiation: newNegotiation(),
  });
  const names = (p: SessionParts) => {
    const t = new InterpositionTable(mainInterpositions(p));
    return (sender: 'frontend' | 'backend', reply: boolean, request: number): string[] => t.for(sender, reply, request).map((x) => x.name);
  };

  it('with --rings: every row, each on the messages it serves', () => {
    const n = names(parts({ interpose: true, rings: true }));
    for (const r of [Request.SET_VRING_KICK, Request.SET_VRING_CALL, Request.SET_VRING_ERR])
      expect(n('frontend', false, r)).toEqual(['eventfd interposer', 'ring tracker']);
    expect(n('frontend', false, Request.SET_BACKEND_REQ_FD)).toEqual(['sub-channel', 'ring tracker']);
    expect(n('frontend', false, Request.GPU_SET_SOCKET)).toEqual(['sub-channel', 'ring tracker']);
    expect(n('frontend', false, Request.SET_DEVICE_STATE_FD)).toEqual(['device-state pipe', 'ring tracker']);
    expect(n('frontend', false, Request.SET_LOG_BASE)).toEqual(['dirty log reader', 'ring tracker']);
    expect(n('frontend', false, Request.SET_VRING_ADDR)).toEqual(['dirty log reader', 'ring tracker']);
    expect(n('frontend', false, Request.SET_MEM_TABLE)).toEqual(['ring tracker']);
    expect(n('frontend', false, Request.SET_INFLIGHT_FD)).toEqual(['inflight region reader', 'ring tracker']);
    expect(n('frontend', false, Request.RESET_OWNER)).toEqual(['ring tracker', 'relay teardown']);
    expect(n('backend', true, Request.GET_PROTOCOL_FEATURES)).toEqual(['notification-feature mask']);
    // the stopped ring: the dirty log read first, then the snapshot, and the relay stops once the answer is on its way
    expect(n('backend', true, Request.GET_VRING_BASE)).toEqual(['dirty log sample', 'ring base snapshot', 'relay stop']);
    expect(n('backend', true, Request.GET_VRING_BASE_SKIP_DRAIN)).toEqual(['dirty log sample', 'ring base snapshot', 'relay stop']);
    expect(n('backend', true, Request.GET_FEATURES)).toEqual([]);
    expect(n('backend', false, Request.GET_VRING_BASE)).toEqual([]);
  });

  it('without --rings, with --keep-features, and with --no-interpose', () => {
    const plain = names(parts({ interpose: true, rings: false }));
    expect(plain('frontend', false, Request.SET_VRING_CALL)).toEqual(['eventfd interposer']);
    expect(plain('frontend', false, Request.SET_MEM_TABLE)).toEqual([]);
    expect(plain('frontend', false, Request.SET_INFLIGHT_FD)).toEqual([]);
    expect(plain('backend', true, Request.GET_VRING_BASE)).toEqual(['relay stop']);
    expect(names(parts({ interpose: true, rings: false, keepFeatures: true }))('backend', true, Request.GET_PROTOCOL_FEATURES)).toEqual([]);
    // --no-interpose: the peers' own eventfds go through; second channels and device state still do not
    const passthrough = names(parts({ interpose: false, rings: false }));
    expect(passthrough('frontend', false, Request.SET_VRING_CALL)).toEqual([]);
    expect(passthrough('backend', true, Request.GET_PROTOCOL_FEATURES)).toEqual([]);
    expect(passthrough('frontend', false, Request.SET_BACKEND_REQ_FD)).toEqual(['sub-channel']);
    expect(passthrough('frontend', false, Request.SET_DEVICE_STATE_FD)).toEqual(['device-state pipe']);
    expect(passthrough('frontend', false, Request.RESET_OWNER)).toEqual([]);
  });
});

describe('a stop that does not drain (GET_VRING_BASE_SKIP_DRAIN, 2026)', () => {
  it('stops the relay of its vring once its feature is in use, and not when 45 means something else', () => {
    const stopped: number[] = [];
    const negotiation = newNegotiation();
    const p: SessionParts = {
      interposer: { stopVring: (v: number) => stopped.push(v) } as unknown as Interposer,
      rings: undefined,
      dirtyLog: undefined,
      inflight: undefined,
      subs: {} as SubChannels,
      keepFeatures: false,
      notice: () => undefined,
      deviceState: () => undefined,
      ringBase: () => undefined,
      negotiation,
    };
    const t = new InterpositionTable(mainInterpositions(p));
    const answer = (request: number, vring: number): void => {
      const raw = encodeMessage(request, 5, Buffer.from([vring, 0, 0, 0, 9, 0, 0, 0]));
      for (const row of t.for('backend', true, request)) row.after?.({ request, raw } as PendingMessage);
    };
    answer(Request.GET_VRING_BASE_SKIP_DRAIN, 1); // crosvm 2023's RESTORE answered: no vring stops
    expect(stopped).toEqual([]);
    negotiation.protocolFeatures = 1n << BigInt(ProtocolFeature.GET_VRING_BASE_SKIP_DRAIN);
    answer(Request.GET_VRING_BASE_SKIP_DRAIN, 1);
    answer(Request.GET_VRING_BASE, 2);
    expect(stopped).toEqual([1, 2]);
  });
});
