/**
 * Small protocol tables and helpers at their edges: GPU payloads (display slots, the EDID's
 * vendor, a GPU_UPDATE's first pixel), which device a peer's command line names, requests by
 * their current and legacy names, header findings word for word, and feature-bit names.
 */
import { u32s } from '../sessions';
import { describe, expect, it } from 'vitest';
import {
  bitNames,
  decoders,
  GPU_UPDATE_HEADER,
  guessFromCommandLine,
  guessFromConfigSize,
  guessFromGpuSocket,
  requestByName,
  strongerGuess,
  validateHeader,
  encodeHeader,
  virtioFeatureNames,
  VirtioFeature,
  GPU_MAX_PAYLOAD,
  MAX_PAYLOAD,
  regionHolds,
} from '../../src/protocol';

describe('GPU payloads at their edges', () => {
  it('lists the enabled displays of the 16 whole slots, with their flags', () => {
    const slot = (enabled: number, flags: number, x: number) => u32s(x, 0, 640, 480, enabled, flags);
    const slots = Array.from({ length: 17 }, (_, i) => slot(i % 2 ? 0 : 1, i, i));
    const info = decoders.gpuDisplayInfo(Buffer.concat([u32s(0x1101, 0, 0, 0, 0, 0), ...slots])) as {
      type: number;
      displays: { scanout: number; flags: number }[];
    };
    expect(info.type).toBe(0x1101);
    expect(info.displays.map((d) => d.scanout)).toEqual([0, 2, 4, 6, 8, 10, 12, 14]); // slot 16 is past the 16 scanouts
    expect(info.displays[1]).toEqual({ scanout: 2, x: 2, y: 0, width: 640, height: 480, flags: 2 });
    const cut = Buffer.concat([u32s(0x1101, 0, 0, 0, 0, 0), slot(1, 0, 0), slot(1, 0, 1).subarray(0, 23)]);
    expect((decoders.gpuDisplayInfo(cut) as { displays: unknown[] }).displays).toHaveLength(1);
  });

  it("reads the EDID's vendor from its first 1024 bytes as announced, or none", () => {
    const edid = (size: number, bytes: Buffer) => Buffer.concat([u32s(0x1104, 0, 0, 0, 0, 0), u32s(size, 0), bytes]);
    const vendorBytes = Buffer.alloc(16);
    vendorBytes.writeUInt16BE((('R'.charCodeAt(0) - 64) << 10) | (('H'.charCodeAt(0) - 64) << 5) | ('T'.charCodeAt(0) - 64), 8);
    expect(decoders.gpuEdid(edid(128, vendorBytes))).toEqual({ type: 0x1104, size: 128, vendor: 'RHT' });
    expect(decoders.gpuEdid(edid(9, vendorBytes))).toEqual({ type: 0x1104, size: 9, vendor: '' }); // the id is bytes 8-9
    expect(decoders.gpuEdid(edid(10, vendorBytes))).toMatchObject({ vendor: 'RHT' });
    expect(decoders.gpuEdid(edid(128, Buffer.alloc(16)))).toMatchObject({ vendor: '' });
  });

  it("gives a GPU_UPDATE's first pixel from 4 bytes of pixels on, and reads short fields as 0", () => {
    const head = u32s(1, 2, 3, 4, 5);
    expect(decoders.gpuUpdate(Buffer.concat([head, Buffer.alloc(3)]))).toEqual({ scanoutId: 1, x: 2, y: 3, width: 4, height: 5, pixelBytes: 3 });
    expect(decoders.gpuUpdate(Buffer.concat([head, u32s(0xff00ff00)]))).toMatchObject({ pixelBytes: 4, firstPixel: 0xff00ff00 });
    expect(GPU_UPDATE_HEADER).toBe(20);
    expect(decoders.gpuProtocolFeatures(Buffer.alloc(7, 1))).toEqual({ gpuProtocolFeatures: 0n });
    expect(decoders.gpuProtocolFeatures(Buffer.alloc(8, 1))).toEqual({ gpuProtocolFeatures: 0x0101010101010101n });
    expect(decoders.gpuScanout(u32s(1, 2).subarray(0, 7))).toEqual({ scanoutId: 1, width: 0, height: 0 });
  });
});

describe('which device a peer is', () => {
  it("names a QEMU device from QEMU's command line, a DPDK vdev, or the executable", () => {
    expect(
      guessFromCommandLine('peer on the listen side', '/usr/bin/qemu-system-x86_64 -chardev socket,id=c -device vhost-user-blk-pci,chardev=c', undefined),
    ).toEqual({
      device: 'blk',
      reason: "the peer on the listen side's command line (vhost-user-blk)",
      strength: 2,
    });
    // the executable says qemu-system even when argv[0] does not
    expect(guessFromCommandLine('x', 'qemu -device vhost-user-fs-pci', '/usr/bin/qemu-system-aarch64')).toMatchObject({ device: 'fs' });
    // not QEMU: its arguments name no QEMU device
    expect(guessFromCommandLine('x', '/usr/bin/my-tool -device vhost-user-blk-pci', undefined)).toBeUndefined();
    expect(guessFromCommandLine('x', 'dpdk-testpmd --vdev net_virtio_user0,path=/s', '/usr/bin/other')).toEqual({
      device: 'net',
      reason: "the x's command line (a DPDK net vdev)",
      strength: 2,
    });
    expect(guessFromCommandLine('x', '/usr/libexec/virtiofsd --socket-path=/s', undefined)).toEqual({
      device: 'fs',
      reason: "the x's executable (virtiofsd)",
      strength: 2,
    });
    expect(guessFromCommandLine('x', undefined, '/usr/bin/qemu-storage-daemon')).toEqual({
      device: 'blk',
      reason: "the x's executable (qemu-storage-daemon)",
      strength: 2,
    });
    expect(guessFromCommandLine('x', undefined, undefined)).toBeUndefined();
  });

  it('keeps the stronger guess, the earlier on a tie', () => {
    const a = guessFromConfigSize(57)!;
    const b = guessFromConfigSize(40)!;
    expect(a).toEqual({ device: 'blk', reason: 'the device config size, 57 bytes (GET_CONFIG)', strength: 1 });
    expect(strongerGuess(a, b)).toBe(a);
    expect(strongerGuess(a, guessFromGpuSocket())).toEqual(guessFromGpuSocket());
    expect(strongerGuess(guessFromGpuSocket(), a)).toEqual(guessFromGpuSocket());
    expect(strongerGuess(a, undefined)).toBe(a);
    expect(strongerGuess(undefined, b)).toBe(b);
    expect(guessFromConfigSize(13)).toBeUndefined();
  });
});

describe('names, headers and bits', () => {
  it("finds a request by any spelling of its name: VHOST_USER_, the back-end channel's BACKEND_/SLAVE_, legacy names", () => {
    expect(requestByName('backend', 'VHOST_USER_BACKEND_IOTLB_MSG')?.code).toBe(1);
    expect(requestByName('backend', 'vhost_user_slave_config_change_msg')?.code).toBe(2);
    expect(requestByName('backend', 'IOTLB_MSG')?.code).toBe(1);
    expect(requestByName('main', 'VHOST_USER_SET_SLAVE_REQ_FD')?.code).toBe(21);
    expect(requestByName('main', 'set_backend_req_fd')?.code).toBe(21);
    expect(requestByName('main', 'BACKEND_IOTLB_MSG')).toBeUndefined(); // a back-end request's name means nothing on the main channel
    expect(requestByName('main', 'SET_MEM_TABLES')).toBeUndefined();
  });

  it('header findings name what is wrong, in the words of each channel', () => {
    const f = (flags: number, size: number, channel: 'main' | 'gpu' = 'main') =>
      validateHeader(encodeHeader({ request: 1, flags, size }), channel).map((x) => x.message);
    expect(f(1, MAX_PAYLOAD)).toEqual([]);
    expect(f(1, MAX_PAYLOAD + 1)).toEqual([`payload size ${MAX_PAYLOAD + 1} exceeds ${MAX_PAYLOAD}`]);
    expect(f(0x11, 0)).toEqual(['reserved flag bits set: flags 0x11']);
    expect(f(0x2, 0)).toEqual(['version 2 in flags 0x2, expected 1']);
    expect(f(0, GPU_MAX_PAYLOAD + 1, 'gpu')).toEqual([`payload size ${GPU_MAX_PAYLOAD + 1} exceeds ${GPU_MAX_PAYLOAD} (a GPU_UPDATE of an 8192x8192 scanout)`]);
  });

  it('names bits 0 to 63 only, unnamed ones as bitN, by the generic device unless told', () => {
    expect(bitNames((1n << 63n) | (1n << 64n) | 1n, { A: 0 })).toEqual(['A', 'bit63']);
    expect(virtioFeatureNames(1n << BigInt(VirtioFeature.LOG_ALL))).toEqual(['LOG_ALL']);
    expect(virtioFeatureNames(1n, 'net')).toEqual(['CSUM']);
    expect(virtioFeatureNames(1n)).toEqual(['bit0']);
  });
});

describe('a memory region at its edges', () => {
  it('holds a range that ends at its last byte, in either address space, and nothing past it', () => {
    const r = { guestPhysAddr: 0x1000n, memorySize: 0x1000n, userspaceAddr: 0x7f0000000000n, mmapOffset: 0n };
    expect([regionHolds(r, 0x1000n), regionHolds(r, 0x1fffn), regionHolds(r, 0x2000n), regionHolds(r, 0xfffn)]).toEqual([true, true, false, false]);
    expect([regionHolds(r, 0x1f00n, 0x100n), regionHolds(r, 0x1f00n, 0x101n)]).toEqual([true, false]);
    expect([regionHolds(r, 0x7f0000000fffn, 1n, 'uaddr'), regionHolds(r, 0x7f0000001000n, 1n, 'uaddr'), regionHolds(r, 0x1000n, 1n, 'uaddr')]).toEqual([
      true,
      false,
      false,
    ]);
  });
});
