/**
 * What a recording's records become (recordingEvents), record by record: every optional field
 * present and absent, the time order, and each malformed record refused with the frame, its type
 * and what is wrong, word for word. Records are built by hand, as a damaged or foreign file has them.
 */
import { describe, expect, it } from 'vitest';
import { encodeMessage, Request } from '../../src/protocol';
import { recordingEvents } from '../../src/recording/reader';
import type { RecordingRecord } from '../../src/recording/records';
import { u64 } from '../sessions';

const rec = (r: Record<string, unknown>): RecordingRecord => r as unknown as RecordingRecord;
const start = rec({ type: 'session-start', ts: 1n, session: 1, listen: '/l', connect: '/c', frontend: 'auto', interpose: true, peers: {} });
const msg = (o: Record<string, unknown> = {}): RecordingRecord =>
  rec({ type: 'message', ts: 10n, session: 1, channel: 'main', dir: 'F>B', raw: encodeMessage(Request.SET_OWNER, 1), fds: [], ...o });
const events = (...records: RecordingRecord[]) => recordingEvents(records, { notifications: true });
const only = (r: RecordingRecord) => events(start, r)[1];

describe('recording records', () => {
  it('a message: the optional marks only when set, the masked bits named, the reply expectation on requests only', () => {
    const plain = only(msg());
    expect(plain).toMatchObject({ type: 'message', ts: 10n, session: 1, channel: 'main', sender: 'frontend', dir: 'F>B', fds: [], replyExpected: false });
    for (const k of ['interposed', 'injected', 'absorbed', 'received', 'masked', 'faults', 'undelivered', 'heldNs']) expect(plain).not.toHaveProperty(k);
    const marked = only(msg({ interposed: true, injected: true, absorbed: true, faults: [1, 'b'], undelivered: 'answered', heldNs: 5n }));
    expect(marked).toMatchObject({ interposed: true, injected: true, absorbed: true, faults: ['1', 'b'], undelivered: 'answered', heldNs: 5n });
    expect(only(msg({ undelivered: 'dropped' }))).toMatchObject({ undelivered: 'dropped' });
    expect(only(msg({ undelivered: 'lost' }))).not.toHaveProperty('undelivered');
    expect(only(msg({ heldNs: 5 }))).not.toHaveProperty('heldNs');
    // a GET_FEATURES reply the proxy changed: forwarded as sent on, received kept, the cleared virtio bits named
    const offered = encodeMessage(Request.GET_FEATURES, 5, u64((1n << 32n) | (1n << 29n)));
    const forwarded = encodeMessage(Request.GET_FEATURES, 5, u64(1n << 32n));
    const masked = only(msg({ dir: 'B>F', raw: offered, forwarded }));
    expect(masked).toMatchObject({ sender: 'backend', raw: forwarded, received: offered, masked: ['RING_EVENT_IDX'] });
    expect(masked).not.toHaveProperty('replyExpected');
    // on the protocol word, protocol names
    const p = only(
      msg({
        dir: 'B>F',
        raw: encodeMessage(Request.GET_PROTOCOL_FEATURES, 5, u64(0x808n)),
        forwarded: encodeMessage(Request.GET_PROTOCOL_FEATURES, 5, u64(8n)),
      }),
    );
    expect(p).toMatchObject({ masked: ['HOST_NOTIFIER'] });
  });

  it('a message the proxy kept from the far side changes nothing of the negotiation', () => {
    const ack = (o: Record<string, unknown>) => msg({ raw: encodeMessage(Request.SET_PROTOCOL_FEATURES, 1, u64(8n)), ...o });
    const withAck = events(start, ack({}), msg({ ts: 11n, raw: encodeMessage(Request.SET_OWNER, 9) }))[2];
    expect(withAck).toMatchObject({ replyExpected: true }); // NEED_REPLY with REPLY_ACK in use
    const dropped = events(start, ack({ undelivered: 'dropped' }), msg({ ts: 11n, raw: encodeMessage(Request.SET_OWNER, 9) }))[2];
    expect(dropped).toMatchObject({ replyExpected: false });
  });

  it('the other records, with and without their optional fields', () => {
    expect(only(rec({ type: 'fault', ts: 5n, session: 1, rule: 3, text: 'drop X', action: 'drop', detail: 'd' }))).toEqual({
      type: 'fault',
      ts: 5n,
      session: 1,
      rule: '3',
      text: 'drop X',
      action: 'drop',
      detail: 'd',
    });
    const state = { type: 'device-state', ts: 9n, session: 1, direction: 'save', bytes: 4 };
    expect(only(rec(state))).toEqual({ type: 'device-state', ts: 9n, session: 1, direction: 'save', startNs: 9n, bytes: 4 });
    expect(only(rec({ ...state, startNs: 2n, error: 'e', data: Buffer.from('ab'), truncated: true, heldMs: 7 }))).toEqual({
      type: 'device-state',
      ts: 9n,
      session: 1,
      direction: 'save',
      startNs: 2n,
      bytes: 4,
      error: 'e',
      data: Buffer.from('ab'),
      truncated: true,
      heldMs: 7,
    });
    expect(only(rec({ ...state, truncated: 1, heldMs: '7', error: 3, data: 'ab' }))).toEqual({
      type: 'device-state',
      ts: 9n,
      session: 1,
      direction: 'save',
      startNs: 9n,
      bytes: 4,
    });
    const dirty = {
      type: 'dirty-log',
      ts: 8n,
      session: 1,
      bytes: 1,
      samples: 2,
      marks: 3,
      pages: 4,
      other: 5,
      vrings: [{ vring: '0', usedRing: 1, buffers: 2 }],
    };
    expect(only(rec(dirty))).toEqual({ ...dirty, startNs: 8n, vrings: [{ vring: 0, usedRing: 1, buffers: 2 }] });
    expect(only(rec({ ...dirty, startNs: 3n, error: 'x' }))).toMatchObject({ startNs: 3n, error: 'x' });
    expect(only(rec({ ...dirty, error: 4 }))).not.toHaveProperty('error');
    expect(only(rec({ type: 'notify-injected', ts: 4n, session: 1, vring: 2, kind: 'call' }))).toEqual({
      type: 'notification',
      ts: 4n,
      session: 1,
      vring: 2,
      kind: 'call',
      count: 1,
      injected: true,
    });
    const end = { type: 'session-end', ts: 99n, session: 1, reason: 'r', messages: { 'F>B': 1, 'B>F': 0 }, fdsForwarded: 0, vrings: [], relayPairs: [] };
    expect(only(rec(end))).toEqual({
      type: 'session-end',
      ts: 99n,
      session: 1,
      reason: 'r',
      messages: { 'F>B': 1, 'B>F': 0 },
      fdsForwarded: 0,
      vrings: [],
      relayPairs: [],
    });
    expect(only(rec({ ...end, by: 'backend' }))).toMatchObject({ by: 'backend' });
    // records of kinds the reader does not know are skipped
    expect(events(start, rec({ type: 'device', ts: 3n, session: 1, device: 'net', reason: 'x' }), rec({ type: 'from-the-future' }))).toHaveLength(1);
  });

  it('notifications come out only when asked for, and everything in time order (ties in record order)', () => {
    const batch = rec({ type: 'notify', session: 1, ts0: 20n, dt: [0, 5], vk: [1, 4], c: [1, 2] });
    const injected = rec({ type: 'notify-injected', ts: 22n, session: 1, vring: 0, kind: 'kick' });
    expect(recordingEvents([start, batch, injected]).map((e) => e.type)).toEqual(['session-start']);
    const all = events(msg({ ts: 30n }), start, batch, injected, msg({ ts: 20n, raw: encodeMessage(Request.GET_FEATURES, 1) }));
    expect(all.map((e) => `${e.ts} ${e.type}${e.type === 'message' ? ` ${e.decoded.name}` : ''}`)).toEqual([
      '1 session-start',
      '20 notification',
      '20 message GET_FEATURES',
      '22 notification',
      '25 notification',
      '30 message SET_OWNER',
    ]);
  });

  const BAD: [string, Record<string, unknown>, string][] = [
    ['session-start without a ts', { type: 'session-start', session: 1 }, 'session-start): not a valid record: ts or session missing'],
    ['session-start without a session', { type: 'session-start', ts: 1n }, 'session-start): not a valid record: ts or session missing'],
    ['a message whose raw is short', { ...msgFields(), raw: Buffer.alloc(4) }, 'message): not a valid record: raw is not a message'],
    ['a message whose raw is not bytes', { ...msgFields(), raw: 'x' }, 'message): not a valid record: raw is not a message'],
    ['a message whose forwarded is short', { ...msgFields(), forwarded: Buffer.alloc(11) }, 'message): not a valid record: forwarded is not a message'],
    ['a message whose forwarded is not bytes', { ...msgFields(), forwarded: 'x' }, 'message): not a valid record: forwarded is not a message'],
    ['a message without a ts', { ...msgFields(), ts: 1 }, 'message): not a valid record: ts, session, channel, direction or fds missing'],
    ['a message without a session', { ...msgFields(), session: '1' }, 'message): not a valid record: ts, session, channel, direction or fds missing'],
    ['a message without fds', { ...msgFields(), fds: undefined }, 'message): not a valid record: ts, session, channel, direction or fds missing'],
    ['a message on no channel', { ...msgFields(), channel: 'side' }, 'message): not a valid record: ts, session, channel, direction or fds missing'],
    ['a message in no direction', { ...msgFields(), dir: 'F<B' }, 'message): not a valid record: ts, session, channel, direction or fds missing'],
    ['a fault without a detail', { type: 'fault', ts: 1n, session: 1 }, 'fault): not a valid record: ts, session or detail missing'],
    ['a fault without a ts', { type: 'fault', session: 1, detail: 'd' }, 'fault): not a valid record: ts, session or detail missing'],
    ['a fault without a session', { type: 'fault', ts: 1n, detail: 'd' }, 'fault): not a valid record: ts, session or detail missing'],
    [
      'a device state in no direction',
      { type: 'device-state', ts: 1n, session: 1, bytes: 1, direction: 'x' },
      'device-state): not a valid record: ts, session, bytes or direction missing',
    ],
    [
      'a device state without bytes',
      { type: 'device-state', ts: 1n, session: 1, direction: 'load' },
      'device-state): not a valid record: ts, session, bytes or direction missing',
    ],
    [
      'a device state without a ts',
      { type: 'device-state', session: 1, bytes: 1, direction: 'load' },
      'device-state): not a valid record: ts, session, bytes or direction missing',
    ],
    [
      'a device state without a session',
      { type: 'device-state', ts: 1n, bytes: 1, direction: 'load' },
      'device-state): not a valid record: ts, session, bytes or direction missing',
    ],
    [
      'a dirty log without its counts',
      { type: 'dirty-log', ts: 1n, session: 1, bytes: 1, samples: 1, marks: 1, pages: 1, vrings: [] },
      'dirty-log): not a valid record: ts, session, counts or vrings missing',
    ],
    [
      'a dirty log without vrings',
      { type: 'dirty-log', ts: 1n, session: 1, bytes: 1, samples: 1, marks: 1, pages: 1, other: 1 },
      'dirty-log): not a valid record: ts, session, counts or vrings missing',
    ],
    [
      'a dirty log without a ts',
      { type: 'dirty-log', session: 1, bytes: 1, samples: 1, marks: 1, pages: 1, other: 1, vrings: [] },
      'dirty-log): not a valid record: ts, session, counts or vrings missing',
    ],
    [
      'a dirty log without a session',
      { type: 'dirty-log', ts: 1n, bytes: 1, samples: 1, marks: 1, pages: 1, other: 1, vrings: [] },
      'dirty-log): not a valid record: ts, session, counts or vrings missing',
    ],
    ['a ring without bytes', { type: 'ring', session: 1, vring: 0 }, 'ring): not a valid record: raw, session or vring missing'],
    ['a ring without a session', { type: 'ring', raw: Buffer.alloc(40), vring: 0 }, 'ring): not a valid record: raw, session or vring missing'],
    ['a ring without a vring', { type: 'ring', raw: Buffer.alloc(40), session: 1 }, 'ring): not a valid record: raw, session or vring missing'],
    [
      'an injected notification without a vring',
      { type: 'notify-injected', ts: 1n, session: 1 },
      'notify-injected): not a valid record: ts, session or vring missing',
    ],
    [
      'an injected notification without a ts',
      { type: 'notify-injected', session: 1, vring: 0 },
      'notify-injected): not a valid record: ts, session or vring missing',
    ],
    [
      'an injected notification without a session',
      { type: 'notify-injected', ts: 1n, vring: 0 },
      'notify-injected): not a valid record: ts, session or vring missing',
    ],
    ['a batch without ts0', { type: 'notify', session: 1, dt: [], vk: [], c: [] }, 'notify): not a valid record: notification columns malformed'],
    ['a batch without counts', { type: 'notify', session: 1, ts0: 1n, dt: [], vk: [] }, 'notify): not a valid record: notification columns malformed'],
    ['a batch without vring columns', { type: 'notify', session: 1, ts0: 1n, dt: [], c: [] }, 'notify): not a valid record: notification columns malformed'],
    ['a batch without time deltas', { type: 'notify', session: 1, ts0: 1n, vk: [], c: [] }, 'notify): not a valid record: notification columns malformed'],
    [
      'a batch with columns of other lengths',
      { type: 'notify', session: 1, ts0: 1n, dt: [1], vk: [], c: [1] },
      'notify): not a valid record: notification columns malformed',
    ],
    [
      'a batch with fewer counts',
      { type: 'notify', session: 1, ts0: 1n, dt: [1], vk: [1], c: [] },
      'notify): not a valid record: notification columns malformed',
    ],
    [
      'a batch going back in time',
      { type: 'notify', session: 1, ts0: 1n, dt: [-1], vk: [1], c: [1] },
      'notify): not a valid record: notification columns malformed',
    ],
    [
      'a batch with one delta going back among good ones',
      { type: 'notify', session: 1, ts0: 1n, dt: [1, -1, 2], vk: [1, 1, 1], c: [1, 1, 1] },
      'notify): not a valid record: notification columns malformed',
    ],
    [
      'a batch with a fractional delta',
      { type: 'notify', session: 1, ts0: 1n, dt: [0.5], vk: [1], c: [1] },
      'notify): not a valid record: notification columns malformed',
    ],
    [
      'a session end without counts',
      { type: 'session-end', ts: 1n, session: 1, messages: null },
      'session-end): not a valid record: ts, session or counts missing',
    ],
    [
      'a session end with counts of the wrong kind',
      { type: 'session-end', ts: 1n, session: 1, messages: 3 },
      'session-end): not a valid record: ts, session or counts missing',
    ],
    ['a session end without a ts', { type: 'session-end', session: 1, messages: {} }, 'session-end): not a valid record: ts, session or counts missing'],
    ['a session end without a session', { type: 'session-end', ts: 1n, messages: {} }, 'session-end): not a valid record: ts, session or counts missing'],
  ];

  it.each(BAD)('refuses %s, naming the frame and its type', (_, r, message) => {
    expect(() => events(start, rec(r))).toThrow(`frame 1 (${message}`);
  });

  it('puts a hundred events recorded out of order in time order, ties in record order', () => {
    // a batch drained late: its notifications interleave with messages recorded after it
    const batch = rec({ type: 'notify', session: 1, ts0: 10n, dt: [0, ...Array(99).fill(1)], vk: Array(100).fill(4), c: Array(100).fill(1) });
    const later = Array.from({ length: 12 }, (_, i) => msg({ ts: BigInt(105 - i * 9) }));
    const all = events(start, batch, ...later);
    const ts = all.map((e) => e.ts);
    expect(ts).toEqual([...ts].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    // at each tie the batch's notification (recorded first) comes before the message
    for (let i = 1; i < all.length; i++) if (all[i]!.ts === all[i - 1]!.ts) expect([all[i - 1]!.type, all[i]!.type]).toEqual(['notification', 'message']);
    expect(all).toHaveLength(113);
  });

  it('takes a forwarded header without payload, messages on every channel, and a back-end channel message leaves the negotiation alone', () => {
    expect(only(msg({ forwarded: encodeMessage(Request.SET_OWNER, 1) }))).toMatchObject({ raw: encodeMessage(Request.SET_OWNER, 1), masked: [] });
    expect(only(msg({ channel: 'gpu', dir: 'B>F', raw: encodeMessage(3, 0) }))).toMatchObject({ channel: 'gpu' });
    expect(only(msg({ channel: 'backend', dir: 'B>F', raw: encodeMessage(2, 1) }))).toMatchObject({ channel: 'backend' });
    // 16 on the back-end channel is not SET_PROTOCOL_FEATURES: REPLY_ACK is still not in use after it
    const after = events(
      start,
      msg({ channel: 'backend', dir: 'B>F', raw: encodeMessage(16, 1, u64(8n)) }),
      msg({ ts: 11n, raw: encodeMessage(Request.SET_OWNER, 9) }),
    )[2];
    expect(after).toMatchObject({ replyExpected: false });
  });

  it('names masked bits by the word they were cleared from: virtio for SET_FEATURES, protocol on the back-end channel', () => {
    const acked = only(
      msg({ raw: encodeMessage(Request.SET_FEATURES, 1, u64((1n << 32n) | (1n << 29n))), forwarded: encodeMessage(Request.SET_FEATURES, 1, u64(1n << 32n)) }),
    );
    expect(acked).toMatchObject({ masked: ['RING_EVENT_IDX'] });
    // code 1 on the back-end channel is IOTLB_MSG, not GET_FEATURES
    const backend = only(msg({ channel: 'backend', dir: 'B>F', raw: encodeMessage(1, 1, u64(8n)), forwarded: encodeMessage(1, 1, u64(0n)) }));
    expect(backend).toMatchObject({ masked: ['REPLY_ACK'] });
    // too short to carry a word: nothing named, nothing read past the end
    const short = only(msg({ raw: encodeMessage(Request.SET_FEATURES, 1, Buffer.alloc(4)), forwarded: encodeMessage(Request.SET_FEATURES, 1, u64(0n)) }));
    expect(short).toMatchObject({ masked: [] });
    expect(only(msg({ raw: encodeMessage(Request.SET_FEATURES, 1, u64(1n)), forwarded: encodeMessage(Request.SET_FEATURES, 1) }))).toMatchObject({
      masked: [],
    });
  });

  it('a record without a type is named as such', () => {
    expect(() => recordingEvents([start, rec({ type: 'message' }), null as unknown as RecordingRecord])).toThrow(
      'frame 1 (message): not a valid record: raw is not a message',
    );
    expect(() => recordingEvents([null as unknown as RecordingRecord])).toThrow(/^frame 0 \(no type\): not a valid record: /);
  });
});

function msgFields(): Record<string, unknown> {
  return { type: 'message', ts: 10n, session: 1, channel: 'main', dir: 'F>B', raw: encodeMessage(Request.SET_OWNER, 1), fds: [] };
}
