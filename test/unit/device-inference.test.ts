/** Naming the virtio device a session carries, without --device (src/protocol/device-inference.ts, src/events/device-tracker.ts). */
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, guessFromCommandLine, guessFromConfigSize, Request, virtioFeatureNames } from '../../src/protocol';
import { DeviceTracker } from '../../src/events/device-tracker';
import type { ProxyEvent } from '../../src/events/events';

const start = (cmdlines: Record<'listen' | 'connect', [string, string]>): ProxyEvent => ({
  type: 'session-start',
  ts: 1n,
  session: 1,
  listenPath: '/l',
  connectPath: '/c',
  frontend: 'auto',
  interpose: true,
  peers: {
    listen: { pid: 1, uid: 0, exe: cmdlines.listen[0], cmdline: cmdlines.listen[1] },
    connect: { pid: 2, uid: 0, exe: cmdlines.connect[0], cmdline: cmdlines.connect[1] },
  },
});
const msg = (raw: Buffer, dir: 'F>B' | 'B>F' = 'F>B'): ProxyEvent => ({
  type: 'message',
  ts: 2n,
  session: 1,
  channel: 'main',
  sender: dir === 'F>B' ? 'frontend' : 'backend',
  dir,
  raw,
  decoded: decodeMessage('main', raw),
  fds: [],
  findings: [],
});

describe('device inference', () => {
  it("reads QEMU's -device and -netdev, DPDK vdevs and backend executables", () => {
    expect(
      guessFromCommandLine(
        'frontend',
        '/usr/bin/qemu-system-x86_64 -machine q35 -chardev socket,id=c0,path=/s -device vhost-user-blk-pci,chardev=c0',
        '/usr/bin/qemu-system-x86_64',
      )?.device,
    ).toBe('blk');
    expect(guessFromCommandLine('frontend', 'qemu-system-x86_64 -netdev vhost-user,id=n0,chardev=c0 -device virtio-net-pci,netdev=n0', undefined)?.device).toBe(
      'net',
    );
    expect(guessFromCommandLine('frontend', 'qemu-system-x86_64 -device vhost-user-snd-pci,chardev=c0', undefined)?.device).toBe('sound');
    // QEMU's vhost-user crypto backend object ends in "vhost-user,id=": not a net device
    expect(
      guessFromCommandLine('frontend', 'qemu-system-x86_64 -object cryptodev-vhost-user,id=cd0,chardev=c0 -device virtio-crypto-pci,cryptodev=cd0', undefined),
    ).toEqual({ device: 'crypto', reason: "the frontend's command line (cryptodev-vhost-user)", strength: 2 });
    expect(guessFromCommandLine('backend', 'dpdk-testpmd -l 0,1 --vdev net_vhost0,iface=/s', '/usr/bin/dpdk-testpmd')?.device).toBe('net');
    expect(guessFromCommandLine('backend', '/usr/libexec/virtiofsd --socket-path=/s', '/usr/libexec/virtiofsd')).toEqual({
      device: 'fs',
      reason: "the backend's executable (virtiofsd)",
      strength: 2,
    });
    expect(guessFromCommandLine('backend', 'vhost-device-vsock --guest-cid 3', '/usr/bin/vhost-device-vsock')?.device).toBe('vsock');
    expect(guessFromCommandLine('backend', 'some-daemon --x', '/opt/some-daemon')).toBeUndefined();
    expect(guessFromConfigSize(16)?.device).toBe('gpu');
    expect(guessFromConfigSize(23)).toBeUndefined();
  });
  it('keeps the strongest evidence: a command line, then GPU_SET_SOCKET; a weaker config size does not override', () => {
    const t = new DeviceTracker();
    expect(
      t.observe(
        start({
          listen: ['/usr/bin/qemu-system-x86_64', 'qemu-system-x86_64 -device vhost-user-gpu-pci,chardev=c0'],
          connect: ['/usr/lib/qemu/vhost-user-gpu', 'vhost-user-gpu --socket-path=/s'],
        }),
      )?.device,
    ).toBe('gpu');
    // GPU_SET_SOCKET: stronger evidence of the same device, no change reported
    expect(t.observe(msg(encodeMessage(Request.GPU_SET_SOCKET, 1)))).toBeUndefined();
    expect(t.guess(1)?.reason).toBe('GPU_SET_SOCKET');
    const cfg = Buffer.alloc(12 + 40);
    cfg.writeUInt32LE(40, 4);
    expect(t.observe(msg(encodeMessage(Request.GET_CONFIG, 5, cfg), 'B>F'))).toBeUndefined();
    expect(t.guess(1)?.device).toBe('gpu');
  });
  it('falls back to the config size when nothing else tells', () => {
    const t = new DeviceTracker();
    expect(t.observe(start({ listen: ['/opt/vmm', 'vmm'], connect: ['/opt/be', 'be'] }))).toBeUndefined();
    const cfg = Buffer.alloc(12 + 8);
    cfg.writeUInt32LE(8, 4);
    expect(t.observe(msg(encodeMessage(Request.GET_CONFIG, 5, cfg), 'B>F'))).toEqual({
      device: 'vsock',
      reason: 'the device config size, 8 bytes (GET_CONFIG)',
      strength: 1,
    });
  });
  it("names the new devices' feature bits", () => {
    expect(virtioFeatureNames(1n | (1n << 32n), 'gpio')).toEqual(['IRQ', 'VERSION_1']);
    expect(virtioFeatureNames(3n, 'can')).toEqual(['CAN_CLASSIC', 'CAN_FD']);
    expect(virtioFeatureNames(2n, 'console')).toEqual(['MULTIPORT']);
  });
});
