/**
 * The message validator's findings word for word at their edges: fds per message, replies and
 * requests from the wrong side, flags on the GPU channel, NEED_REPLY without REPLY_ACK, empty
 * replies, payload sizes, and the fds each layout carries (one per region, none with NOFD).
 */
import { describe, expect, it } from 'vitest';
import { encodeHeader, encodeMessage, newNegotiation, Request, validateMessage, type MessageContext } from '../../src/protocol';

const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
const ctx = (o: Partial<MessageContext> = {}): MessageContext => ({ channel: 'main', sender: 'frontend', fdCount: 0, negotiation: newNegotiation(), ...o });
const rules = (m: Buffer, c: Partial<MessageContext> = {}): string[] => validateMessage(m, ctx(c)).map((f) => `${f.severity} ${f.rule}: ${f.message}`);

describe('validateMessage at its edges', () => {
  it('eight fds are the most a message carries; more is fatal and nothing else is judged', () => {
    expect(rules(encodeMessage(Request.SET_MEM_TABLE, 1, Buffer.concat([u64(8n), Buffer.alloc(8 * 32)])), { fdCount: 8 })).toEqual([]);
    expect(rules(encodeMessage(999, 0x5), { fdCount: 9 })).toEqual(['fatal too-many-fds: 9 fds, no message carries more than 8']);
  });

  it("tells fds that came after the header's first byte, and only when there were fds", () => {
    const kick = encodeMessage(Request.SET_VRING_KICK, 0x1, u64(0n));
    expect(rules(kick, { fdCount: 1, fdsAt: 12 })).toEqual([
      "warning fds-after-header: the fd of SET_VRING_KICK came with byte 12 of the message, not with its header's first byte",
    ]);
    expect(rules(encodeMessage(Request.SET_MEM_TABLE, 0x1, Buffer.concat([u64(2n), Buffer.alloc(64)])), { fdCount: 2, fdsAt: 5 })).toEqual([
      "warning fds-after-header: the 2 fds of SET_MEM_TABLE came with byte 5 of the message, not with its header's first byte",
    ]);
    expect(rules(kick, { fdCount: 1, fdsAt: 0 })).toEqual([]);
    expect(rules(encodeMessage(Request.SET_VRING_KICK, 0x1, u64(0x100n)), { fdCount: 0, fdsAt: 12 })).toEqual([]);
  });

  it('says who sent a reply or a request from the wrong side', () => {
    expect(rules(encodeMessage(Request.GET_FEATURES, 0x5), { sender: 'frontend' })).toContain(
      'warning reply-from-requester: the frontend sent a message with REPLY set on the main channel',
    );
    expect(rules(encodeMessage(Request.GET_FEATURES, 0x1), { sender: 'backend' })).toContain(
      'warning request-from-responder: the backend sent a request on the main channel, where requests come from the frontend',
    );
  });

  it('on the GPU channel, a request with flags and a reply without exactly the reply flag', () => {
    const update = (flags: number) => Buffer.concat([encodeHeader({ request: 3, flags, size: 0 })]); // GPU_GET_DISPLAY_INFO
    expect(rules(update(0), { channel: 'gpu', sender: 'backend' })).toEqual([]);
    expect(rules(update(0x1), { channel: 'gpu', sender: 'backend' })).toContain(
      'warning request-flags: GPU_GET_DISPLAY_INFO request with flags 0x1, requests carry 0x0 on the gpu channel (the front-end ignores them)',
    );
    const info = (flags: number) => encodeHeader({ request: 3, flags, size: 0 }); // its reply, empty here
    expect(rules(info(0x4), { channel: 'gpu', sender: 'frontend' })).toEqual([]);
    expect(rules(info(0x5), { channel: 'gpu', sender: 'frontend' })).toContain(
      'warning reply-flags: reply flags 0x5, QEMU accepts only 0x4 on the gpu channel',
    );
  });

  it('NEED_REPLY is told only once the protocol features are known and lack REPLY_ACK', () => {
    const m = encodeMessage(Request.SET_VRING_NUM, 0x1 | 0x8, Buffer.alloc(8));
    expect(rules(m)).toEqual([]);
    expect(rules(m, { negotiation: { ...newNegotiation(), protocolFeatures: 0n } })).toEqual([
      'warning need-reply-without-reply-ack: NEED_REPLY set but REPLY_ACK is not negotiated',
    ]);
    expect(rules(m, { negotiation: { ...newNegotiation(), protocolFeatures: 1n << 3n } })).toEqual([]);
  });

  it('an empty reply is allowed; an empty request of a sized kind is not; sizes are named', () => {
    expect(rules(encodeMessage(Request.GET_CONFIG, 0x5), { sender: 'backend' })).toEqual([]);
    expect(rules(encodeMessage(Request.SET_VRING_NUM, 0x1))).toEqual(['warning payload-size: SET_VRING_NUM payload is 0 bytes, expected 8']);
    expect(rules(encodeMessage(Request.GET_FEATURES, 0x5, Buffer.alloc(4)), { sender: 'backend' })).toEqual([
      'warning payload-size: GET_FEATURES reply payload is 4 bytes, expected 8',
    ]);
    expect(rules(encodeMessage(Request.SET_MEM_TABLE, 0x1, Buffer.concat([u64(1n), Buffer.alloc(20)])), { fdCount: 1 })).toEqual([
      'warning payload-size: SET_MEM_TABLE payload is 28 bytes, expected 40 or 48',
    ]);
  });

  it('fds: one per memory region (at most 8), one per vring fd unless NOFD, ranges named', () => {
    const table = (n: number) => encodeMessage(Request.SET_MEM_TABLE, 0x1, Buffer.concat([u64(BigInt(n)), Buffer.alloc(32 * n)]));
    expect(rules(table(2), { fdCount: 1 })).toEqual(['warning fd-count: SET_MEM_TABLE carries 1 fds, expected 2']);
    expect(rules(table(2), { fdCount: 2 })).toEqual([]);
    expect(rules(encodeMessage(Request.SET_VRING_KICK, 0x1, u64(0x100n)), { fdCount: 1 })).toEqual([
      'warning fd-count: SET_VRING_KICK carries 1 fds, expected 0',
    ]);
    expect(rules(encodeMessage(Request.SET_VRING_KICK, 0x1, u64(1n)), { fdCount: 0 })).toEqual(['warning fd-count: SET_VRING_KICK carries 0 fds, expected 1']);
    // the back-end's host notifier: an fd to map, none with NOFD
    const notifier = (v: bigint) => encodeMessage(3, 0x1, Buffer.concat([u64(v), u64(0x1000n), u64(0n)]));
    expect(rules(notifier(0x100n), { channel: 'backend', sender: 'backend', fdCount: 1 })).toEqual([
      'warning fd-count: VRING_HOST_NOTIFIER_MSG carries 1 fds, expected 0',
    ]);
    expect(rules(notifier(0n), { channel: 'backend', sender: 'backend', fdCount: 0 })).toEqual([
      'warning fd-count: VRING_HOST_NOTIFIER_MSG carries 0 fds, expected 1',
    ]);
    expect(rules(encodeMessage(Request.SET_LOG_BASE, 0x1, Buffer.alloc(16)), { fdCount: 2 })).toEqual([
      'warning fd-count: SET_LOG_BASE carries 2 fds, expected 0..1',
    ]);
    expect(rules(encodeMessage(Request.GET_INFLIGHT_FD, 0x5, Buffer.alloc(24)), { sender: 'backend', fdCount: 2 })).toEqual([
      'warning fd-count: GET_INFLIGHT_FD reply carries 2 fds, expected 0..1',
    ]);
    // a memory table too short to say its count: no fd expected
    expect(rules(encodeMessage(Request.SET_MEM_TABLE, 0x1, Buffer.alloc(3)), { fdCount: 1 })).toContain(
      'warning fd-count: SET_MEM_TABLE carries 1 fds, expected 0',
    );
  });
});
