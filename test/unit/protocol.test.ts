import { describe, expect, it } from 'vitest';
import {
  BACKEND_REQUESTS,
  decodeMessage,
  decoders,
  encodeMessage,
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  flagsToString,
  formatPayload,
  GPU_MAX_PAYLOAD,
  GPU_REQUESTS,
  isReplyExpected,
  MAIN_REQUESTS,
  newNegotiation,
  parseHeader,
  ProtocolFeature,
  protocolFeatureNames,
  Request,
  requestByName,
  requestName,
  statusNames,
  validateMessage,
  virtioFeatureNames,
  type MessageContext,
} from '../../src/protocol';

const u64 = (v: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(v);
  return b;
};
const u32s = (...v: number[]): Buffer =>
  Buffer.concat(
    v.map((x) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(x);
      return b;
    }),
  );
const u64s = (...v: bigint[]): Buffer => Buffer.concat(v.map(u64));

describe('request tables', () => {
  it('define every main-channel code 1..45 exactly once', () => {
    expect(MAIN_REQUESTS.map((r) => r.code)).toEqual(Array.from({ length: 45 }, (_, i) => i + 1));
    expect(new Set(MAIN_REQUESTS.map((r) => r.name)).size).toBe(45);
    for (const r of MAIN_REQUESTS) expect(r.doc.length).toBeGreaterThan(10);
  });
  it('define every backend-channel code 1..10 and crosvm 1002..1007', () => {
    expect(BACKEND_REQUESTS.map((r) => r.code)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 1002, 1003, 1004, 1005, 1006, 1007]);
    expect(GPU_REQUESTS.map((r) => r.code)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  });
  it('resolve legacy names', () => {
    expect(requestByName('main', 'SET_SLAVE_REQ_FD')?.code).toBe(21);
    expect(requestByName('main', 'VHOST_USER_SET_SLAVE_REQ_FD')?.code).toBe(21);
    expect(requestByName('main', 'set_mem_table')?.code).toBe(5);
    expect(requestByName('backend', 'SLAVE_IOTLB_MSG')?.code).toBe(1);
    expect(requestByName('backend', 'VHOST_USER_BACKEND_CONFIG_CHANGE_MSG')?.code).toBe(2);
    expect(requestName('main', 99)).toBe('UNKNOWN_99');
    expect(requestName('backend', 1006)).toBe('CROSVM_GPU_MAP');
    expect(Request.GET_SHMEM_CONFIG).toBe(44);
  });
});

describe('feature bits', () => {
  it('name every protocol feature 0..23', () => {
    expect(Object.values(ProtocolFeature)).toEqual(Array.from({ length: 24 }, (_, i) => i));
    expect(protocolFeatureNames(0x8f2bn)).toEqual([
      'MQ',
      'LOG_SHMFD',
      'REPLY_ACK',
      'BACKEND_REQ',
      'PAGEFAULT',
      'CONFIG',
      'BACKEND_SEND_FD',
      'HOST_NOTIFIER',
      'CONFIGURE_MEM_SLOTS',
    ]);
    expect(protocolFeatureNames(1n << 40n)).toEqual(['bit40']);
  });
  it('name virtio bits, device bits only for a known device', () => {
    expect(virtioFeatureNames(0x140000046n)).toEqual(['bit1', 'bit2', 'bit6', 'PROTOCOL_FEATURES', 'VERSION_1']);
    expect(virtioFeatureNames((1n << 15n) | (1n << 34n), 'net')).toEqual(['MRG_RXBUF', 'RING_PACKED']);
    expect(virtioFeatureNames(1n << 9n, 'blk')).toEqual(['FLUSH']);
  });
  it('name device status bits', () => {
    expect(statusNames(0xf)).toEqual(['ACKNOWLEDGE', 'DRIVER', 'DRIVER_OK', 'FEATURES_OK']);
    expect(statusNames(0)).toEqual([]);
  });
});

describe('header', () => {
  it('round-trips and renders flags', () => {
    const m = encodeMessage(5, 1 | FLAG_NEED_REPLY, Buffer.alloc(40));
    expect(parseHeader(m)).toEqual({ request: 5, flags: 9, size: 40 });
    expect(flagsToString(9)).toBe('v1|NEED_REPLY');
    expect(flagsToString(5)).toBe('v1|REPLY');
    expect(flagsToString(0x105)).toBe('v1|REPLY|reserved=0x100');
  });
});

describe('payload decoders (hand-built fixtures)', () => {
  it('memory table with two regions and their fds', () => {
    const p = Buffer.concat([u32s(2, 0), u64s(0n, 0x80000000n, 0x7f0000000000n, 0n), u64s(0x100000000n, 0x40000000n, 0x7f0080000000n, 0x80000000n)]);
    const d = decodeMessage('main', encodeMessage(5, 1, p));
    expect(d.name).toBe('SET_MEM_TABLE');
    expect(d.payload).toEqual({
      nregions: 2,
      regions: [
        { guestPhysAddr: 0n, memorySize: 0x80000000n, userspaceAddr: 0x7f0000000000n, mmapOffset: 0n },
        { guestPhysAddr: 0x100000000n, memorySize: 0x40000000n, userspaceAddr: 0x7f0080000000n, mmapOffset: 0x80000000n },
      ],
    });
  });
  it('memory table with XEN_MMAP regions (40 bytes each)', () => {
    const p = Buffer.concat([u32s(1, 0), u64s(0x1000n, 0x2000n, 0x3000n, 0n), u32s(0x101, 7)]);
    const d = decoders.memTable(p);
    expect((d.regions as unknown[])[0]).toMatchObject({ guestPhysAddr: 0x1000n, xenMmapFlags: 0x101, domid: 7 });
  });
  it('single region (ADD_MEM_REG)', () => {
    const p = Buffer.concat([u64(0n), u64s(0n, 0x10000000n, 0x7f6bbbfff000n, 0n)]);
    expect(decoders.memRegion(p)).toEqual({ region: { guestPhysAddr: 0n, memorySize: 0x10000000n, userspaceAddr: 0x7f6bbbfff000n, mmapOffset: 0n } });
  });
  it('vring address: used comes before avail', () => {
    const p = Buffer.concat([u32s(1, 1), u64s(0x1000n, 0x3000n, 0x2000n, 0x4000n)]);
    expect(decoders.vringAddr(p)).toEqual({ index: 1, flags: 1, log: true, desc: 0x1000n, used: 0x3000n, avail: 0x2000n, logGuestAddr: 0x4000n });
  });
  it('vring fd word with NOFD', () => {
    expect(decoders.vringFd(u64(0x103n))).toEqual({ index: 3, nofd: true });
    expect(decoders.vringFd(u64(2n))).toEqual({ index: 2, nofd: false });
  });
  it('vring state, config, inflight, log, iotlb', () => {
    expect(decoders.vringState(u32s(0, 256))).toEqual({ index: 0, num: 256 });
    const cfg = decoders.config(Buffer.concat([u32s(0, 4, 1), Buffer.from([1, 2, 3, 4])]));
    expect(cfg).toMatchObject({ offset: 0, size: 4, flags: 1 });
    expect((cfg.data as Buffer).toString('hex')).toBe('01020304');
    const infl = Buffer.concat([u64s(0x2000n, 0x100n), Buffer.from([2, 0, 128, 0, 0, 0, 0, 0])]);
    expect(decoders.inflight(infl)).toEqual({ mmapSize: 0x2000n, mmapOffset: 0x100n, numQueues: 2, queueSize: 128 });
    expect(decoders.log(u64s(0x8000n, 0x10n))).toEqual({ mmapSize: 0x8000n, mmapOffset: 0x10n });
    const iotlb = Buffer.concat([u64s(0x1000n, 0x2000n, 0x7f00n), Buffer.from([3, 2, 0, 0, 0, 0, 0, 0])]);
    expect(decoders.iotlb(iotlb)).toEqual({ iova: 0x1000n, size: 0x2000n, uaddr: 0x7f00n, perm: 3, type: 2 });
  });
  it('device state, uuid, shmem config, mmap request, vring area, crypto, mac', () => {
    expect(decoders.deviceState(u32s(1, 0))).toEqual({ direction: 'load', phase: 0 });
    expect(decoders.uuid(Buffer.from('00112233445566778899aabbccddeeff', 'hex'))).toEqual({ uuid: '00112233-4455-6677-8899-aabbccddeeff' });
    const shm = Buffer.alloc(2056);
    shm.writeUInt32LE(1, 0);
    shm.writeBigUInt64LE(0x100000n, 8 + 3 * 8);
    expect(decoders.shmemConfig(shm)).toEqual({ nregions: 1, sizes: [{ shmid: 3, size: 0x100000n }] });
    const mm = Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), u64s(0x10n, 0x20n, 0x1000n, 1n)]);
    expect(decoders.mmapRequest(mm)).toEqual({ shmid: 2, fdOffset: 0x10n, shmOffset: 0x20n, len: 0x1000n, flags: 1n, writable: true });
    expect(decoders.vringArea(u64s(0x101n, 0x1000n, 0x2000n))).toEqual({ index: 1, nofd: true, size: 0x1000n, offset: 0x2000n });
    expect(decoders.cryptoSession(Buffer.alloc(600))).toEqual({ opCode: 0n, length: 600 });
    expect(decoders.mac(u64(0x563412005452n))).toEqual({ mac: '52:54:00:12:34:56' });
  });
  it('decodes replies by size: ack, empty GET_CONFIG failure, postcopy table echo', () => {
    expect(decodeMessage('main', encodeMessage(5, 5, u64(0n))).layout).toBe('ack');
    expect(decodeMessage('main', encodeMessage(24, 5)).layout).toBe('none');
    expect(decodeMessage('main', encodeMessage(5, 5, Buffer.concat([u32s(1, 0), u64s(0n, 1n, 2n, 3n)]))).layout).toBe('memTable');
    expect(decodeMessage('main', encodeMessage(1, 5, u64(0x40000000n))).payload).toEqual({ features: 0x40000000n });
  });
  it('reads the device-state answers (Rust virtiofsd 1.13 answers 0x100: no fd of its own)', () => {
    expect(formatPayload(decodeMessage('main', encodeMessage(Request.SET_DEVICE_STATE_FD, 5, u64(0x100n))))).toBe(
      "value=256 (ok, no fd: the back-end uses the front-end's pipe)",
    );
    expect(formatPayload(decodeMessage('main', encodeMessage(Request.SET_DEVICE_STATE_FD, 5, u64(0n))))).toBe('value=0 (ok, the back-end returns its own fd)');
    expect(formatPayload(decodeMessage('main', encodeMessage(Request.CHECK_DEVICE_STATE, 5, u64(5n))))).toBe('value=5 (error 5)');
  });
});

describe('reply expected (reference §1.4)', () => {
  const acked = { ...newNegotiation(), protocolFeatures: 1n << 3n };
  it('always for GET_* and friends', () => {
    for (const c of [1, 11, 15, 17, 24, 36, 40, 44]) expect(isReplyExpected('main', c, 1, newNegotiation())).toBe(true);
    expect(isReplyExpected('backend', 8, 1, newNegotiation())).toBe(true);
  });
  it('NEED_REPLY only counts with REPLY_ACK negotiated', () => {
    expect(isReplyExpected('main', 5, 1 | FLAG_NEED_REPLY, newNegotiation())).toBe(false);
    expect(isReplyExpected('main', 5, 1 | FLAG_NEED_REPLY, acked)).toBe(true);
    expect(isReplyExpected('main', 5, 1, acked)).toBe(false);
    expect(isReplyExpected('backend', 2, 1 | FLAG_NEED_REPLY, acked)).toBe(true);
  });
  it('SET_LOG_BASE with LOG_SHMFD, memory tables while postcopy listens', () => {
    expect(isReplyExpected('main', 6, 1, { ...newNegotiation(), protocolFeatures: 1n << 1n })).toBe(true);
    expect(isReplyExpected('main', 6, 1, newNegotiation())).toBe(false);
    expect(isReplyExpected('main', 37, 1, { ...newNegotiation(), postcopyListening: true })).toBe(true);
  });
});

describe('validator', () => {
  const ctx = (o: Partial<MessageContext> = {}): MessageContext => ({ channel: 'main', sender: 'frontend', fdCount: 0, negotiation: newNegotiation(), ...o });
  const rules = (m: Buffer, c = ctx()): string[] => validateMessage(m, c).map((f) => `${f.severity}:${f.rule}`);
  it('accepts well-formed messages', () => {
    expect(rules(encodeMessage(1, 1))).toEqual([]);
    expect(rules(encodeMessage(12, 1, u64(0n)), ctx({ fdCount: 1 }))).toEqual([]);
    expect(rules(encodeMessage(12, 1, u64(0x100n)))).toEqual([]);
    expect(rules(encodeMessage(1, 5, u64(0n)), ctx({ sender: 'backend' }))).toEqual([]);
  });
  it('rejects what is not vhost-user as fatal', () => {
    expect(rules(encodeMessage(1, 2))).toEqual(['fatal:header-version']);
    expect(rules(encodeMessage(1, 0x11))).toEqual(['fatal:header-reserved-flags']);
    const big = Buffer.from('010000000100000000000100', 'hex'); // size 65536+? no: 0x10000 = 65536
    big.writeUInt32LE(65537, 8);
    expect(rules(big)).toEqual(['fatal:header-oversize']);
    expect(rules(encodeMessage(5, 1, Buffer.concat([u32s(0, 0)])), ctx({ fdCount: 9 }))).toEqual(['fatal:too-many-fds']);
  });
  it('warns on deviations that are forwarded', () => {
    expect(rules(encodeMessage(77, 1))).toEqual(['warning:unknown-request']);
    expect(rules(encodeMessage(2, 1, Buffer.alloc(4)))).toEqual(['warning:payload-size']);
    expect(rules(encodeMessage(12, 1, u64(0n)))).toEqual(['warning:fd-count']);
    expect(rules(encodeMessage(5, 1, Buffer.concat([u32s(2, 0), Buffer.alloc(64)])), ctx({ fdCount: 1 }))).toEqual(['warning:fd-count']);
    expect(rules(encodeMessage(1, 5 | FLAG_NEED_REPLY, u64(0n)), ctx({ sender: 'backend' }))).toEqual(['warning:reply-flags']);
    expect(rules(encodeMessage(1, 1 | FLAG_REPLY, u64(0n)))).toEqual(['warning:reply-from-requester']);
    expect(rules(encodeMessage(3, 1 | FLAG_NEED_REPLY), ctx({ negotiation: { ...newNegotiation(), protocolFeatures: 0n } }))).toEqual([
      'warning:need-reply-without-reply-ack',
    ]);
  });
});

describe('per-channel rules: the GPU socket (vhost-user-gpu.rst)', () => {
  const gpu = (sender: 'frontend' | 'backend', fdCount = 0): MessageContext => ({ channel: 'gpu', sender, fdCount, negotiation: newNegotiation() });
  const gpuRules = (m: Buffer, c: MessageContext) => validateMessage(m, c).map((f) => `${f.severity}:${f.rule}`);
  it('takes requests with flags 0 and replies with 0x4, which the main channel would reject', () => {
    expect(gpuRules(encodeMessage(1, 0), gpu('backend'))).toEqual([]);
    expect(gpuRules(encodeMessage(1, 4, u64(3n)), gpu('frontend'))).toEqual([]);
    expect(gpuRules(encodeMessage(1, 0), { ...gpu('frontend'), channel: 'main' })).toEqual(['fatal:header-version']);
    expect(flagsToString(0, 'gpu')).toBe('0');
    expect(flagsToString(4, 'gpu')).toBe('REPLY');
    expect(flagsToString(5, 'gpu')).toBe('REPLY|reserved=0x1');
  });
  it('goes by direction, as QEMU does: a request with stray flags is a request, flagged and forwarded', () => {
    const update = encodeMessage(8, 5, Buffer.concat([u32s(0, 0), u32s(0, 1), Buffer.alloc(4 + 4)]));
    update.writeUInt32LE(1, 12 + 12); // width 1
    update.writeUInt32LE(1, 12 + 16); // height 1
    expect(decodeMessage('gpu', update, 'backend').reply).toBe(false);
    expect(decodeMessage('gpu', update, 'backend').name).toBe('GPU_UPDATE');
    expect(gpuRules(update, gpu('backend'))).toEqual(['warning:request-flags']);
    expect(gpuRules(encodeMessage(3, 0), gpu('frontend'))).toEqual(['warning:reply-flags']);
  });
  it('sizes payloads by layout, up to a whole 8192x8192 update; more is fatal', () => {
    const rect = (w: number, h: number, pixels: number) => Buffer.concat([u32s(0, 0), u32s(0, w), u32s(h, 0).subarray(0, 4), Buffer.alloc(pixels)]);
    expect(gpuRules(encodeMessage(8, 0, rect(2, 2, 16)), gpu('backend'))).toEqual([]);
    expect(gpuRules(encodeMessage(8, 0, rect(2, 2, 12)), gpu('backend'))).toEqual(['warning:payload-size']);
    expect(gpuRules(encodeMessage(7, 0, Buffer.alloc(12)), gpu('backend'))).toEqual([]);
    expect(gpuRules(encodeMessage(6, 0, Buffer.alloc(16404)), gpu('backend'))).toEqual([]);
    expect(gpuRules(encodeMessage(9, 0, Buffer.alloc(40)), gpu('backend', 1))).toEqual([]);
    expect(gpuRules(encodeMessage(12, 0, Buffer.alloc(48)), gpu('backend', 1))).toEqual([]);
    const h = encodeMessage(8, 0);
    h.writeUInt32LE(GPU_MAX_PAYLOAD, 8);
    expect(gpuRules(h, gpu('backend')).filter((r) => r.startsWith('fatal'))).toEqual([]);
    h.writeUInt32LE(GPU_MAX_PAYLOAD + 1, 8);
    expect(gpuRules(h, gpu('backend'))).toEqual(['fatal:header-oversize']);
  });
  it('expects replies where QEMU sends them: never by NEED_REPLY, always for the four GET-like requests', () => {
    const n = { ...newNegotiation(), protocolFeatures: 1n << BigInt(ProtocolFeature.REPLY_ACK) };
    expect([1, 3, 10, 11].map((c) => isReplyExpected('gpu', c, 0, n))).toEqual([true, true, true, true]);
    expect(isReplyExpected('gpu', 8, FLAG_NEED_REPLY, n)).toBe(false);
  });
});

describe('dialects: codes whose meaning depends on the implementation', () => {
  const neg = (...bits: number[]) => ({ ...newNegotiation(), protocolFeatures: bits.reduce((v, b) => v | (1n << BigInt(b)), 0n) });
  const ctx = (): MessageContext => ({ channel: 'main', sender: 'frontend', fdCount: 0, negotiation: neg() });
  it('44 is GET_SHMEM_CONFIG once SHMEM is negotiated, and ambiguous before', () => {
    const m = encodeMessage(44, 1);
    expect(decodeMessage('main', m, 'frontend', { negotiation: neg(ProtocolFeature.SHMEM) })).toMatchObject({ name: 'GET_SHMEM_CONFIG' });
    expect(decodeMessage('main', m, 'frontend', { negotiation: neg(ProtocolFeature.SHMEM) }).ambiguous).toBeUndefined();
    const d = decodeMessage('main', m, 'frontend', { negotiation: neg() });
    expect(d.name).toBe('GET_SHMEM_CONFIG');
    expect(d.ambiguous).toEqual(['GET_SHMEM_CONFIG (standard)', 'SNAPSHOT (crosvm-2023)', 'GET_VRING_BASE_SKIP_DRAIN (yandex)']);
  });
  it("44 with a vring state is yc-libvhost-server's GET_VRING_BASE_SKIP_DRAIN", () => {
    const d = decodeMessage('main', encodeMessage(44, 1, u32s(1, 0)), 'frontend', { negotiation: neg() });
    expect(d).toMatchObject({ name: 'GET_VRING_BASE_SKIP_DRAIN', dialect: 'yandex', layout: 'vringState' });
    expect(validateMessage(encodeMessage(44, 1, u32s(1, 0)), ctx())).toEqual([]);
  });
  it("41 is GET_SHARED_OBJECT with SHARED_OBJECT, else ambiguous with crosvm's GET_SHARED_MEMORY_REGIONS; --dialect decides", () => {
    const m = encodeMessage(41, 1, Buffer.alloc(16));
    expect(decodeMessage('main', m, 'frontend', { negotiation: neg(ProtocolFeature.SHARED_OBJECT) }).ambiguous).toBeUndefined();
    expect(decodeMessage('main', m, 'frontend', { negotiation: neg() }).ambiguous).toContain('GET_SHARED_MEMORY_REGIONS (crosvm-2023)');
    expect(decodeMessage('main', encodeMessage(41, 1), 'frontend', { negotiation: neg(), dialect: 'crosvm-2023' })).toMatchObject({
      name: 'GET_SHARED_MEMORY_REGIONS',
      dialect: 'crosvm-2023',
    });
    // the standard meaning wins over --dialect once its feature is negotiated
    expect(decodeMessage('main', m, 'frontend', { negotiation: neg(ProtocolFeature.SHARED_OBJECT), dialect: 'crosvm-2023' }).name).toBe('GET_SHARED_OBJECT');
  });
  it('45 is GET_VRING_BASE_SKIP_DRAIN (2026) once its feature is negotiated or with a vring state; crosvm 2023 RESTORE otherwise told apart', () => {
    const stop = encodeMessage(45, 1, u32s(1, 0));
    const skip = decodeMessage('main', stop, 'frontend', { negotiation: neg(ProtocolFeature.GET_VRING_BASE_SKIP_DRAIN) });
    expect(skip).toMatchObject({ name: 'GET_VRING_BASE_SKIP_DRAIN', layout: 'vringState', payload: { index: 1, num: 0 } });
    expect(skip.ambiguous).toBeUndefined();
    expect(skip.dialect).toBeUndefined();
    // a vring state decides it without the feature; RESTORE's serialized state does not look like one
    const byPayload = decodeMessage('main', stop, 'frontend', { negotiation: neg() });
    expect([byPayload.name, byPayload.dialect, byPayload.ambiguous]).toEqual(['GET_VRING_BASE_SKIP_DRAIN', undefined, undefined]);
    expect(decodeMessage('main', encodeMessage(45, 1, Buffer.alloc(64)), 'frontend', { negotiation: neg() }).ambiguous).toEqual([
      'GET_VRING_BASE_SKIP_DRAIN (standard)',
      'RESTORE (crosvm-2023)',
    ]);
    expect(decodeMessage('main', encodeMessage(45, 1, Buffer.alloc(64)), 'frontend', { negotiation: neg(), dialect: 'crosvm-2023' }).name).toBe('RESTORE');
    // its reply is mandatory, as GET_VRING_BASE's
    const n = neg(ProtocolFeature.GET_VRING_BASE_SKIP_DRAIN);
    expect(isReplyExpected('main', 45, 1, n)).toBe(true);
    expect(protocolFeatureNames(1n << 23n)).toEqual(['GET_VRING_BASE_SKIP_DRAIN']);
  });
  it("crosvm's pre-2025 codes have one meaning: front-end 1004, back-end 1000 and 1001", () => {
    expect(decodeMessage('main', encodeMessage(1004, 1))).toMatchObject({ name: 'GET_SHARED_MEMORY_REGIONS', dialect: 'crosvm-2024', known: true });
    expect(decodeMessage('backend', encodeMessage(1000, 1, Buffer.alloc(40)))).toMatchObject({ name: 'SHMEM_MAP', dialect: 'crosvm-2024' });
    expect(decodeMessage('backend', encodeMessage(1001, 1, Buffer.alloc(40)))).toMatchObject({ name: 'SHMEM_UNMAP', dialect: 'crosvm-2024' });
    expect(decodeMessage('backend', encodeMessage(1006, 1)).name).toBe('CROSVM_GPU_MAP');
    expect(validateMessage(encodeMessage(1004, 1), ctx()).map((f) => f.rule)).toEqual([]);
    expect(isReplyExpected('main', 1004, 1, newNegotiation())).toBe(true);
  });
});
