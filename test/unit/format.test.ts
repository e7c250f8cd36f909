/**
 * What `show` and the live log print of each payload layout, word for word: feature words by
 * name, sizes in their unit, addresses in hex, GPU messages summarised. One row per layout.
 */
import { describe, expect, it } from 'vitest';
import { BackendRequest, decodeMessage, encodeMessage, formatPayload, Request, toJsonSafe, type ChannelKind, type Side } from '../../src/protocol';
import { memTable, region, u32s, u64, vringAddr } from '../sessions';

/** The message `code` (flags, payload) on `channel` from `sender`, decoded and formatted. */
const fmt = (channel: ChannelKind, code: number, flags: number, payload: Buffer, sender: Side, device?: 'net' | 'blk'): string =>
  formatPayload(decodeMessage(channel, encodeMessage(code, flags, payload), sender), device);

const gpu = (code: number, payload: Buffer, sender: Side = 'backend'): string => fmt('gpu', code, sender === 'backend' ? 0 : 4, payload, sender);

const edid = (): Buffer => {
  const e = Buffer.alloc(128);
  e.writeUInt16BE(0x34ac, 8); // "MEL": three 5-bit letters
  return Buffer.concat([Buffer.alloc(24), u32s(128, 0), e]);
};

const ROWS: [string, () => string, string][] = [
  ['none', () => fmt('main', Request.GET_FEATURES, 1, Buffer.alloc(0), 'frontend'), ''],
  ['u64', () => fmt('main', Request.GET_QUEUE_NUM, 5, u64(4n), 'backend'), 'value=4'],
  ['u64 (MTU)', () => fmt('main', Request.NET_SET_MTU, 1, u64(1500n), 'frontend'), 'mtu=1500'],
  ['ack', () => fmt('main', Request.SET_MEM_TABLE, 5, u64(0n), 'backend'), 'ack=0'],
  [
    'features (net)',
    () => fmt('main', Request.SET_FEATURES, 1, u64((1n << 32n) | (1n << 30n) | (1n << 5n)), 'frontend', 'net'),
    '0x140000020 (MAC|PROTOCOL_FEATURES|VERSION_1)',
  ],
  ['features (generic)', () => fmt('main', Request.SET_FEATURES, 1, u64((1n << 32n) | (1n << 29n)), 'frontend'), '0x120000000 (RING_EVENT_IDX|VERSION_1)'],
  ['protocol features', () => fmt('main', Request.GET_PROTOCOL_FEATURES, 5, u64(0x8009n), 'backend'), '0x8009 (MQ|REPLY_ACK|CONFIGURE_MEM_SLOTS)'],
  ['status', () => fmt('main', Request.SET_STATUS, 1, u64(0xfn), 'frontend'), 'status=0xf (ACKNOWLEDGE|DRIVER|DRIVER_OK|FEATURES_OK)'],
  ['status reset', () => fmt('main', Request.SET_STATUS, 1, u64(0n), 'frontend'), 'status=0x0 (reset)'],
  ['mac', () => fmt('main', Request.SEND_RARP, 1, Buffer.from([0x52, 0x54, 0, 0x12, 0x34, 0x0a, 0, 0]), 'frontend'), 'mac=52:54:00:12:34:0a'],
  ['vring state', () => fmt('main', Request.SET_VRING_NUM, 1, u32s(1, 256), 'frontend'), 'vring=1 num=256'],
  ['vring fd', () => fmt('main', Request.SET_VRING_KICK, 1, u64(2n), 'frontend'), 'vring=2'],
  ['vring fd NOFD', () => fmt('main', Request.SET_VRING_CALL, 1, u64(0x101n), 'frontend'), 'vring=1 NOFD'],
  [
    'vring addr',
    () => fmt('main', Request.SET_VRING_ADDR, 1, vringAddr(0, 0x7f0000001000n, 0x7f0000003000n, 0x7f0000002000n), 'frontend'),
    'vring=0 flags=0x0 desc=0x7f0000001000 used=0x7f0000003000 avail=0x7f0000002000 log=0x0',
  ],
  [
    'memory table',
    () =>
      fmt('main', Request.SET_MEM_TABLE, 1, memTable(region(0n, 0x40000000n, 0x7f0000000000n), region(0x100000000n, 0x100000n, 0x7f8000000000n)), 'frontend'),
    'nregions=2 [gpa=0x0 size=1GiB uaddr=0x7f0000000000 off=0x0] [gpa=0x100000000 size=1MiB uaddr=0x7f8000000000 off=0x0]',
  ],
  [
    'memory region',
    () => fmt('main', Request.ADD_MEM_REG, 1, Buffer.concat([u64(0n), region(0xc0000n, 0x1800n, 0x7f0000000000n)]), 'frontend'),
    '[gpa=0xc0000 size=6KiB uaddr=0x7f0000000000 off=0x0]',
  ],
  ['log', () => fmt('main', Request.SET_LOG_BASE, 1, Buffer.concat([u64(0x2000n), u64(0x10n)]), 'frontend'), 'mmap_size=8KiB mmap_offset=0x10'],
  ['log, size only', () => fmt('main', Request.SET_LOG_BASE, 5, u64(0x300n), 'backend'), 'mmap_size=0x300'],
  [
    'inflight',
    () => fmt('main', Request.SET_INFLIGHT_FD, 1, Buffer.concat([u64(0x5000n), u64(0n), Buffer.from([2, 0, 128, 0, 0, 0, 0, 0])]), 'frontend'),
    'mmap_size=20KiB mmap_offset=0x0 num_queues=2 queue_size=128',
  ],
  [
    'config',
    () => fmt('main', Request.GET_CONFIG, 5, Buffer.concat([u32s(0, 40, 0), Buffer.alloc(40, 0xab)]), 'backend'),
    'offset=0 size=40 flags=0 data=abababababababababababababababababababababababababababababababab…',
  ],
  [
    'config, short',
    () => fmt('main', Request.SET_CONFIG, 1, Buffer.concat([u32s(8, 2, 1), Buffer.from([1, 2])]), 'frontend'),
    'offset=8 size=2 flags=1 data=0102',
  ],
  [
    'iotlb',
    () =>
      fmt('main', Request.IOTLB_MSG, 1, Buffer.concat([u64(0x1000n), u64(0x2000n), u64(0x7f0000000000n), Buffer.from([3, 2, 0, 0, 0, 0, 0, 0])]), 'frontend'),
    'iova=0x1000 size=0x2000 uaddr=0x7f0000000000 perm=3 type=2',
  ],
  ['device state', () => fmt('main', Request.SET_DEVICE_STATE_FD, 1, u32s(1, 0), 'frontend'), 'direction=load phase=0'],
  [
    'device state answer',
    () => fmt('main', Request.SET_DEVICE_STATE_FD, 5, u64(0x100n), 'backend'),
    "value=256 (ok, no fd: the back-end uses the front-end's pipe)",
  ],
  ['device state answer, own fd', () => fmt('main', Request.SET_DEVICE_STATE_FD, 5, u64(0n), 'backend'), 'value=0 (ok, the back-end returns its own fd)'],
  ['check device state', () => fmt('main', Request.CHECK_DEVICE_STATE, 5, u64(3n), 'backend'), 'value=3 (error 3)'],
  [
    'uuid',
    () => fmt('backend', BackendRequest.SHARED_OBJECT_ADD, 1, Buffer.from('00112233445566778899aabbccddeeff', 'hex'), 'backend'),
    'uuid=00112233-4455-6677-8899-aabbccddeeff',
  ],
  [
    'mmap request',
    () =>
      fmt(
        'backend',
        BackendRequest.SHMEM_MAP,
        1,
        Buffer.concat([Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]), u64(0x1000n), u64(0x2000n), u64(0x3000n), u64(1n)]),
        'backend',
      ),
    'shmid=2 fd_offset=0x1000 shm_offset=0x2000 len=0x3000 rw',
  ],
  [
    'vring area',
    () => fmt('backend', BackendRequest.VRING_HOST_NOTIFIER_MSG, 1, Buffer.concat([u64(1n), u64(0x1000n), u64(0x2000n)]), 'backend'),
    'vring=1 size=0x1000 offset=0x2000',
  ],
  ['gpu protocol features', () => gpu(2, u64(3n)), '0x3 (EDID|DMABUF2)'],
  [
    'gpu display info',
    () => gpu(3, Buffer.concat([Buffer.alloc(24), u32s(0, 0, 1280, 800, 1, 0), u32s(10, 20, 640, 480, 1, 0)]), 'frontend'),
    'scanout0=1280x800+0+0 scanout1=640x480+10+20',
  ],
  ['gpu no display', () => gpu(3, Buffer.alloc(24 + 16 * 24), 'frontend'), 'no display enabled'],
  ['gpu scanout id', () => gpu(11, u32s(1)), 'scanout=1'],
  ['gpu edid', () => gpu(11, edid(), 'frontend'), 'edid 128 bytes vendor=MEL'],
  ['gpu cursor pos', () => gpu(4, u32s(0, 100, 200)), 'scanout=0 x=100 y=200'],
  ['gpu cursor update', () => gpu(6, Buffer.concat([u32s(0, 1, 2, 3, 4), Buffer.alloc(64 * 64 * 4)])), 'scanout=0 x=1 y=2 hot=3,4 image 16384 bytes'],
  ['gpu scanout', () => gpu(7, u32s(0, 1024, 768)), 'scanout=0 1024x768'],
  ['gpu update', () => gpu(8, Buffer.concat([u32s(0, 1, 2, 3, 4), Buffer.alloc(3 * 4 * 4, 0x7f)])), 'scanout=0 rect=3x4+1+2 pixels=48 bytes first=#7f7f7f7f'],
  ['gpu rect', () => gpu(10, u32s(1, 5, 6, 7, 8)), 'scanout=1 rect=7x8+5+6'],
  [
    'gpu dmabuf scanout',
    () => gpu(9, u32s(0, 0, 0, 1024, 768, 1024, 768, 4096, 0, 0x34325258)),
    'scanout=0 rect=1024x768+0+0 buffer=1024x768 stride=4096 fourcc=XR24',
  ],
  [
    'gpu dmabuf scanout2',
    () => gpu(12, Buffer.concat([u32s(0, 0, 0, 1024, 768, 1024, 768, 4096, 0, 0x12), u64(0x0100000000000001n)])),
    'scanout=0 rect=1024x768+0+0 buffer=1024x768 stride=4096 fourcc=0x12 modifier=0x100000000000001',
  ],
  ['opaque', () => fmt('main', 1003, 1, Buffer.alloc(12), 'frontend'), '12 bytes'],
  [
    'config, exactly 32 bytes',
    () => fmt('main', Request.SET_CONFIG, 1, Buffer.concat([u32s(0, 32, 0), Buffer.alloc(32, 1)]), 'frontend'),
    `offset=0 size=32 flags=0 data=${'01'.repeat(32)}`,
  ],
  [
    'sizes not a whole unit, and zero',
    () => fmt('main', Request.SET_LOG_BASE, 1, Buffer.concat([u64(0x600n), u64(0n)]), 'frontend'),
    'mmap_size=0x600 mmap_offset=0x0',
  ],
  ['size zero', () => fmt('main', Request.SET_LOG_BASE, 5, u64(0n), 'backend'), 'mmap_size=0x0'],
  ['crypto session', () => fmt('main', Request.CREATE_CRYPTO_SESSION, 1, Buffer.concat([u64(3n), Buffer.alloc(8)]), 'frontend'), 'op_code=3 (16 bytes)'],
  [
    'shmem config',
    () => fmt('main', Request.GET_SHMEM_CONFIG, 5, Buffer.concat([u32s(2, 0), u64(0x100000n), u64(0n), u64(0x1001n)]), 'backend'),
    'nregions=2 shm0=1MiB shm2=0x1001',
  ],
  [
    'mmap request, read-only',
    () => fmt('backend', BackendRequest.SHMEM_MAP, 1, Buffer.concat([Buffer.alloc(8), u64(0n), u64(0n), u64(0x1000n), u64(2n)]), 'backend'),
    'shmid=0 fd_offset=0x0 shm_offset=0x0 len=0x1000 ro',
  ],
  [
    'vring area NOFD',
    () => fmt('backend', BackendRequest.VRING_HOST_NOTIFIER_MSG, 1, Buffer.concat([u64(0x101n), u64(0n), u64(0n)]), 'backend'),
    'vring=1 NOFD size=0x0 offset=0x0',
  ],
  ['gpu edid without a vendor', () => gpu(11, Buffer.concat([Buffer.alloc(24), u32s(16, 0), Buffer.alloc(16)]), 'frontend'), 'edid 16 bytes'],
  ['gpu update without pixels', () => gpu(8, u32s(0, 1, 2, 3, 4)), 'scanout=0 rect=3x4+1+2 pixels=0 bytes'],
  [
    'gpu update, pixels not recorded',
    () =>
      formatPayload(decodeMessage('gpu', Buffer.concat([encodeMessage(8, 0, u32s(0, 1, 2, 3, 4)).subarray(0, 8), u32s(68), u32s(0, 1, 2, 3, 4)]), 'backend')),
    'scanout=0 rect=3x4+1+2 pixels=48 bytes (pixels not recorded)',
  ],
];

describe('payload summaries', () => {
  it.each(ROWS)('%s', (_, make, want) => {
    expect(make()).toBe(want);
  });
});

describe('payloads as JSON', () => {
  it('bigints and buffers as hex, feature words with their names', () => {
    const decoded = (channel: ChannelKind, code: number, flags: number, payload: Buffer, sender: Side) =>
      decodeMessage(channel, encodeMessage(code, flags, payload), sender);
    expect(toJsonSafe(decoded('main', Request.SET_FEATURES, 1, u64((1n << 32n) | (1n << 5n)), 'frontend'), 'net')).toEqual({
      features: '0x100000020',
      names: ['MAC', 'VERSION_1'],
    });
    expect(toJsonSafe(decoded('main', Request.SET_PROTOCOL_FEATURES, 1, u64(9n), 'frontend'))).toEqual({ protocolFeatures: '0x9', names: ['MQ', 'REPLY_ACK'] });
    expect(toJsonSafe(decoded('gpu', 2, 0, u64(1n), 'backend'))).toEqual({ gpuProtocolFeatures: '0x1', names: ['EDID'] });
    expect(toJsonSafe(decoded('main', Request.SET_CONFIG, 1, Buffer.concat([u32s(8, 2, 1), Buffer.from([1, 2])]), 'frontend'))).toEqual({
      offset: 8,
      size: 2,
      flags: 1,
      data: '0102',
    });
    expect(toJsonSafe(decoded('main', Request.SET_MEM_TABLE, 1, memTable(region(0n, 0x1000n, 0x7f00n)), 'frontend'))).toEqual({
      nregions: 1,
      regions: [{ guestPhysAddr: '0x0', memorySize: '0x1000', userspaceAddr: '0x7f00', mmapOffset: '0x0' }],
    });
  });
});
