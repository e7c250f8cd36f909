/**
 * Which virtio device a session carries, inferred from what the session shows, since
 * vhost-user never says: the peers' command lines and executables, GPU_SET_SOCKET, the size
 * of the device config space (GET_CONFIG). Each inference keeps its reason; the strongest
 * evidence seen so far wins. `--device` overrides all of it.
 */
import type { DeviceType } from './features';

export interface DeviceGuess {
  device: DeviceType;
  reason: string;
  /** how sure: a request only one device sends (3) > a peer's command line (2) > config size (1) */
  strength: number;
}

/** QEMU -device names (vhost-user-X-pci, -device ...,chardev=) and what they are. */
const QEMU_DEVICES: [RegExp, DeviceType][] = [
  [/vhost-user-blk/, 'blk'],
  [/vhost-user-fs/, 'fs'],
  [/vhost-user-gpu|vhost-user-vga/, 'gpu'],
  [/vhost-user-vsock/, 'vsock'],
  [/vhost-user-input/, 'input'],
  [/vhost-user-gpio/, 'gpio'],
  [/vhost-user-i2c/, 'i2c'],
  [/vhost-user-rng/, 'rng'],
  [/vhost-user-snd/, 'sound'],
  [/vhost-user-scmi/, 'scmi'],
  [/vhost-user-scsi/, 'scsi'],
  [/vhost-user-can/, 'can'],
  [/cryptodev-vhost-user|virtio-crypto/, 'crypto'],
  // not the tail of another backend's name (cryptodev-vhost-user,id=)
  [/-netdev[ =]\S*vhost-user|netdev=vhost-user|(?<![\w-])vhost-user,id=/, 'net'],
];

/** Backend executables (and frontends that are only ever one device) by their file name. */
const EXECUTABLES: [RegExp, DeviceType][] = [
  [/virtiofsd$/, 'fs'],
  [/qemu-storage-daemon$/, 'blk'],
  [/vhost-user-gpu$/, 'gpu'],
  [/vhost-user-blk$/, 'blk'],
  [/vhost-user-scsi$/, 'scsi'],
  [/vhost-user-input$/, 'input'],
  [/passt$|pasta$/, 'net'],
  [/dpdk-testpmd$|testpmd$|ovs-vswitchd(-dpdk)?$/, 'net'],
  [/vhost-device-vsock$/, 'vsock'],
  [/vhost-device-gpio$/, 'gpio'],
  [/vhost-device-i2c$/, 'i2c'],
  [/vhost-device-rng$/, 'rng'],
  [/vhost-device-sound$/, 'sound'],
  [/vhost-device-scmi$/, 'scmi'],
  [/vhost-device-can$/, 'can'],
  [/vhost-device-console$/, 'console'],
  [/vhost-device-gpu$/, 'gpu'],
  [/vhost-device-scsi$/, 'scsi'],
  [/vhost-device-input$/, 'input'],
];

/** Config space sizes that only one device has (virtio spec, as QEMU and the backends size them). */
const CONFIG_SIZES: Record<number, DeviceType> = { 8: 'vsock', 16: 'gpu', 40: 'fs', 57: 'blk', 60: 'blk' };

export function guessFromCommandLine(who: string, cmdline: string | undefined, exe: string | undefined): DeviceGuess | undefined {
  const base = (exe ?? cmdline?.split(' ')[0] ?? '').split('/').pop() ?? '';
  if (cmdline && /qemu-system/.test(base + cmdline.split(' ')[0])) {
    const hit = QEMU_DEVICES.find(([re]) => re.test(cmdline));
    if (hit) return { device: hit[1], reason: `the ${who}'s command line (${cmdline.match(hit[0])![0]})`, strength: 2 };
  }
  if (cmdline && /net_vhost|net_virtio_user/.test(cmdline)) return { device: 'net', reason: `the ${who}'s command line (a DPDK net vdev)`, strength: 2 };
  const exeHit = EXECUTABLES.find(([re]) => re.test(base));
  if (exeHit) return { device: exeHit[1], reason: `the ${who}'s executable (${base})`, strength: 2 };
  return undefined;
}

export function guessFromGpuSocket(): DeviceGuess {
  return { device: 'gpu', reason: 'GPU_SET_SOCKET', strength: 3 };
}

export function guessFromConfigSize(size: number): DeviceGuess | undefined {
  const d = CONFIG_SIZES[size];
  return d ? { device: d, reason: `the device config size, ${size} bytes (GET_CONFIG)`, strength: 1 } : undefined;
}

/** The stronger of two guesses (the earlier one on a tie). */
export function strongerGuess(a: DeviceGuess | undefined, b: DeviceGuess | undefined): DeviceGuess | undefined {
  if (!a) return b;
  if (!b) return a;
  return b.strength > a.strength ? b : a;
}
