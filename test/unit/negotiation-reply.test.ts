/**
 * The protocol's small pure rules at their edges: what a main-channel message changes in the
 * negotiation (and what it must not), which feature a request's gate asks for, which replies
 * stop a ring, when a reply is due on which channel, the reply the proxy makes up on a peer's
 * behalf (fault rules' answer and filter), clearing feature bits, and header helpers.
 */
import { describe, expect, it } from 'vitest';
import {
  applyMainMessage,
  clearPayloadBits,
  encodeMessage,
  FLAG_NEED_REPLY,
  flagsToString,
  gateOpen,
  HEADER_SIZE,
  isReplyExpected,
  newNegotiation,
  parseHeader,
  ProtocolFeature,
  Request,
  stopsVring,
  synthesizeReply,
  VirtioFeature,
  type Negotiation,
} from '../../src/protocol';

const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
const REPLY = 0x5;
const with_ = (o: Partial<Negotiation>): Negotiation => ({ ...newNegotiation(), ...o });
const replyAck = with_({ protocolFeatures: 1n << BigInt(ProtocolFeature.REPLY_ACK) });

describe('negotiation', () => {
  it('starts with nothing negotiated and postcopy not listening', () => {
    expect(newNegotiation()).toEqual({ postcopyListening: false });
  });

  it('takes what was offered from the replies to GET_FEATURES and GET_PROTOCOL_FEATURES only, and only whole words', () => {
    const n = newNegotiation();
    applyMainMessage(n, Request.GET_QUEUE_NUM, REPLY, u64(7n)); // another reply with a u64: nothing
    applyMainMessage(n, Request.GET_FEATURES, REPLY, Buffer.alloc(7)); // short: nothing
    applyMainMessage(n, Request.GET_PROTOCOL_FEATURES, REPLY, Buffer.alloc(4));
    expect(n).toStrictEqual({ postcopyListening: false });
    applyMainMessage(n, Request.GET_FEATURES, REPLY, u64(0x11n));
    applyMainMessage(n, Request.GET_PROTOCOL_FEATURES, REPLY, u64(0x22n));
    expect(n).toStrictEqual({ postcopyListening: false, offeredFeatures: 0x11n, offeredProtocolFeatures: 0x22n });
    // a short reply after them, and a reply never sets what the front-end acks, whatever its code
    applyMainMessage(n, Request.GET_FEATURES, REPLY, Buffer.alloc(2));
    applyMainMessage(n, Request.GET_PROTOCOL_FEATURES, REPLY, Buffer.alloc(2));
    applyMainMessage(n, Request.SET_FEATURES, REPLY, u64(0x33n));
    applyMainMessage(n, Request.SET_PROTOCOL_FEATURES, REPLY, u64(0x44n));
    applyMainMessage(n, Request.GET_QUEUE_NUM, REPLY, u64(0x55n));
    expect(n).toStrictEqual({ postcopyListening: false, offeredFeatures: 0x11n, offeredProtocolFeatures: 0x22n });
  });

  it('takes what the front-end set from whole words, and follows postcopy listening', () => {
    const n = newNegotiation();
    applyMainMessage(n, Request.SET_FEATURES, 1, Buffer.alloc(4));
    applyMainMessage(n, Request.SET_PROTOCOL_FEATURES, 1, Buffer.alloc(0));
    expect(n).toStrictEqual({ postcopyListening: false });
    applyMainMessage(n, Request.SET_FEATURES, 1, u64(0x55n));
    applyMainMessage(n, Request.SET_PROTOCOL_FEATURES, 1, u64(0x66n));
    applyMainMessage(n, Request.SET_FEATURES, 1, Buffer.alloc(4)); // a short one after: nothing changes
    applyMainMessage(n, Request.SET_PROTOCOL_FEATURES, 1, Buffer.alloc(4));
    expect([n.ackedFeatures, n.protocolFeatures]).toEqual([0x55n, 0x66n]);
    applyMainMessage(n, Request.GET_FEATURES, 1, u64(0x77n)); // a request, not its reply
    expect(n.offeredFeatures).toBeUndefined();
    applyMainMessage(n, Request.POSTCOPY_LISTEN, 1, Buffer.alloc(0));
    expect(n.postcopyListening).toBe(true);
    applyMainMessage(n, Request.SET_VRING_NUM, 1, u64(1n));
    expect(n.postcopyListening).toBe(true);
    applyMainMessage(n, Request.POSTCOPY_END, 1, Buffer.alloc(0));
    expect(n.postcopyListening).toBe(false);
  });

  it("opens a request's gate by a protocol feature or a virtio feature; unknown until negotiated unless told to assume none", () => {
    expect(gateOpen(newNegotiation(), 'REPLY_ACK')).toBeUndefined();
    expect(gateOpen(newNegotiation(), 'REPLY_ACK', true)).toBe(false);
    expect(gateOpen(replyAck, 'REPLY_ACK')).toBe(true);
    expect(gateOpen(replyAck, 'LOG_SHMFD')).toBe(false);
    expect(gateOpen(replyAck, 'LOG_ALL')).toBeUndefined(); // virtio features not set yet
    expect(gateOpen(replyAck, 'LOG_ALL', true)).toBe(false);
    const logAll = with_({ ackedFeatures: 1n << BigInt(VirtioFeature.LOG_ALL) });
    expect(gateOpen(logAll, 'LOG_ALL')).toBe(true);
    expect(gateOpen(logAll, 'RING_EVENT_IDX')).toBe(false);
    expect(gateOpen(logAll, 'GPU_EDID', true)).toBeUndefined(); // neither kind of feature
  });

  it('stops a ring at GET_VRING_BASE, and at its skip-drain form only once that feature is in use', () => {
    expect(stopsVring(newNegotiation(), Request.GET_VRING_BASE)).toBe(true);
    expect(stopsVring(newNegotiation(), Request.GET_VRING_BASE_SKIP_DRAIN)).toBe(false);
    expect(stopsVring(with_({ protocolFeatures: 1n << BigInt(ProtocolFeature.GET_VRING_BASE_SKIP_DRAIN) }), Request.GET_VRING_BASE_SKIP_DRAIN)).toBe(true);
    expect(stopsVring(with_({ protocolFeatures: 1n << BigInt(ProtocolFeature.GET_VRING_BASE_SKIP_DRAIN) }), Request.SET_VRING_BASE)).toBe(false);
  });
});

describe('replies', () => {
  it('the main-channel-only rules do not apply to the same codes on the back-end channel', () => {
    const logShm = with_({ protocolFeatures: 1n << BigInt(ProtocolFeature.LOG_SHMFD), postcopyListening: true });
    expect(isReplyExpected('main', Request.SET_LOG_BASE, 1, logShm)).toBe(true);
    expect(isReplyExpected('backend', Request.SET_LOG_BASE, 1, logShm)).toBe(false); // 6: SHARED_OBJECT_ADD there
    expect(isReplyExpected('main', Request.SET_MEM_TABLE, 1, logShm)).toBe(true);
    expect(isReplyExpected('main', Request.ADD_MEM_REG, 1, logShm)).toBe(true);
    expect(isReplyExpected('main', Request.SET_VRING_NUM, 1, logShm)).toBe(false); // postcopy changes only the memory tables
    expect(isReplyExpected('backend', Request.SET_MEM_TABLE, 1, logShm)).toBe(false); // 5: VRING_ERR there
  });

  it('makes up a u64 (0 by default) for a request that always has one, or an ack for NEED_REPLY with REPLY_ACK', () => {
    expect(synthesizeReply('main', Request.GET_FEATURES, 1, Buffer.alloc(0), newNegotiation(), 5n)).toEqual(
      encodeMessage(Request.GET_FEATURES, REPLY, u64(5n)),
    );
    expect(synthesizeReply('main', Request.GET_FEATURES, 1, Buffer.alloc(0), newNegotiation(), -1n)).toEqual(
      encodeMessage(Request.GET_FEATURES, REPLY, u64((1n << 64n) - 1n)),
    );
    expect(synthesizeReply('main', Request.SET_VRING_NUM, 1 | FLAG_NEED_REPLY, u64(1n), replyAck)).toEqual(
      encodeMessage(Request.SET_VRING_NUM, REPLY, u64(0n)),
    );
    expect(synthesizeReply('main', Request.SET_VRING_NUM, 1 | FLAG_NEED_REPLY, u64(1n), newNegotiation())).toBeUndefined(); // no REPLY_ACK: no reply
    expect(synthesizeReply('main', Request.SET_VRING_NUM, 1, u64(1n), replyAck)).toBeUndefined();
  });

  it("answers GET_VRING_BASE with the request's ring and the value, GET_CONFIG with the request's header and zeroed contents", () => {
    const state = Buffer.alloc(8);
    state.writeUInt32LE(3, 0);
    state.writeUInt32LE(99, 4);
    expect(synthesizeReply('main', Request.GET_VRING_BASE, 1, state, newNegotiation(), 17n)).toEqual(
      encodeMessage(Request.GET_VRING_BASE, REPLY, Buffer.from([3, 0, 0, 0, 17, 0, 0, 0])),
    );
    expect(synthesizeReply('main', Request.GET_VRING_BASE, 1, Buffer.alloc(4), newNegotiation())?.length).toBe(HEADER_SIZE + 8);
    expect(synthesizeReply('main', Request.GET_VRING_BASE, 1, Buffer.alloc(3), newNegotiation())).toBeUndefined(); // no ring to name
    const config = Buffer.alloc(12 + 6, 0xaa);
    const reply = synthesizeReply('main', Request.GET_CONFIG, 1, config, newNegotiation());
    expect(reply).toEqual(encodeMessage(Request.GET_CONFIG, REPLY, Buffer.concat([Buffer.alloc(12, 0xaa), Buffer.alloc(6)])));
    expect(synthesizeReply('main', Request.GET_CONFIG, 1, Buffer.alloc(12), newNegotiation())?.length).toBe(HEADER_SIZE + 12);
    expect(synthesizeReply('main', Request.GET_CONFIG, 1, Buffer.alloc(11), newNegotiation())).toBeUndefined();
  });

  it('makes up no reply that carries an fd or a layout of its own', () => {
    expect(synthesizeReply('main', Request.GET_INFLIGHT_FD, 1, Buffer.alloc(24), newNegotiation())).toBeUndefined();
    expect(synthesizeReply('main', Request.SET_MEM_TABLE, 1, Buffer.alloc(8), with_({ postcopyListening: true }))).toBeUndefined();
  });
});

describe('header helpers', () => {
  it('clears feature bits in a copy, saying what was set and what it cleared; nothing to clear is no copy', () => {
    const m = encodeMessage(Request.GET_FEATURES, REPLY, u64(0b1011n));
    expect(clearPayloadBits(m, 0b0110n)).toEqual({ message: encodeMessage(Request.GET_FEATURES, REPLY, u64(0b1001n)), before: 0b1011n, cleared: 0b0010n });
    expect(m.readBigUInt64LE(HEADER_SIZE)).toBe(0b1011n); // the original untouched
    expect(clearPayloadBits(m, 0b0100n)).toBeUndefined();
    expect(clearPayloadBits(m.subarray(0, HEADER_SIZE + 7), 0b1n)).toBeUndefined(); // no whole word
    expect(clearPayloadBits(encodeMessage(Request.GET_FEATURES, REPLY, u64(1n)), 1n)?.message.readBigUInt64LE(HEADER_SIZE)).toBe(0n);
  });

  it('refuses a header shorter than 12 bytes, and renders flags of the main channel by default', () => {
    expect(() => parseHeader(Buffer.alloc(11))).toThrow(new RangeError('header needs 12 bytes, got 11'));
    expect(parseHeader(Buffer.alloc(12))).toEqual({ request: 0, flags: 0, size: 0 });
    expect(flagsToString(0x1)).toBe('v1');
    expect(flagsToString(0x1 | 0x4 | 0x8 | 0x10)).toBe('v1|REPLY|NEED_REPLY|reserved=0x10');
    expect(flagsToString(0x4, 'gpu')).toBe('REPLY');
    expect(flagsToString(0x1, 'gpu')).toBe('reserved=0x1');
    expect(flagsToString(0, 'gpu')).toBe('0');
  });
});
