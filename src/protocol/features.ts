/**
 * Feature bits by name (reference §5): vhost-user protocol features (GET/SET_PROTOCOL_FEATURES)
 * and virtio feature bits (GET/SET_FEATURES). Device-specific virtio bits (0-23, 50-63) depend on
 * the device type, which vhost-user never transmits: pass it when known.
 */

/** vhost-user protocol feature bits. Legacy names in comments. */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  MTU: 4, // QEMU: NET_MTU
  BACKEND_REQ: 5, // SLAVE_REQ
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  BACKEND_SEND_FD: 10, // SLAVE_SEND_FD
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
  XEN_MMAP: 17,
  SHARED_OBJECT: 18,
  DEVICE_STATE: 19,
  GET_VRING_BASE_INFLIGHT: 20,
  GPA_ADDRESSES: 21,
  SHMEM: 22,
  /** GET_VRING_BASE_SKIP_DRAIN (request 45); negotiable only with GET_VRING_BASE_INFLIGHT and INFLIGHT_SHMFD */
  GET_VRING_BASE_SKIP_DRAIN: 23,
} as const;
export type ProtocolFeatureName = keyof typeof ProtocolFeature;

/** Virtio feature bits that mean the same for every device type, plus vhost's own. */
export const VirtioFeature = {
  NOTIFY_ON_EMPTY: 24,
  LOG_ALL: 26, // VHOST_F_LOG_ALL: dirty logging (migration)
  ANY_LAYOUT: 27,
  RING_INDIRECT_DESC: 28,
  RING_EVENT_IDX: 29,
  PROTOCOL_FEATURES: 30, // VHOST_USER_F_PROTOCOL_FEATURES, never offered to guests
  VERSION_1: 32,
  ACCESS_PLATFORM: 33, // IOMMU_PLATFORM
  RING_PACKED: 34,
  IN_ORDER: 35,
  ORDER_PLATFORM: 36,
  SR_IOV: 37,
  NOTIFICATION_DATA: 38,
  NOTIF_CONFIG_DATA: 39,
  RING_RESET: 40,
  ADMIN_VQ: 41,
} as const;

export const DEVICE_TYPES = [
  'net',
  'blk',
  'fs',
  'scsi',
  'gpu',
  'vsock',
  'input',
  'gpio',
  'i2c',
  'rng',
  'sound',
  'scmi',
  'can',
  'console',
  'crypto',
  'generic',
] as const;
export type DeviceType = (typeof DEVICE_TYPES)[number];

/** Device-specific feature bits per device type (virtio spec device chapters). */
export const DeviceFeatures: Record<DeviceType, Record<string, number>> = {
  net: {
    CSUM: 0,
    GUEST_CSUM: 1,
    CTRL_GUEST_OFFLOADS: 2,
    MTU: 3,
    MAC: 5,
    GSO: 6,
    GUEST_TSO4: 7,
    GUEST_TSO6: 8,
    GUEST_ECN: 9,
    GUEST_UFO: 10,
    HOST_TSO4: 11,
    HOST_TSO6: 12,
    HOST_ECN: 13,
    HOST_UFO: 14,
    MRG_RXBUF: 15,
    STATUS: 16,
    CTRL_VQ: 17,
    CTRL_RX: 18,
    CTRL_VLAN: 19,
    CTRL_RX_EXTRA: 20,
    GUEST_ANNOUNCE: 21,
    MQ: 22,
    CTRL_MAC_ADDR: 23,
    NOTF_COAL: 53,
    VQ_NOTF_COAL: 52,
    GUEST_USO4: 54,
    GUEST_USO6: 55,
    HOST_USO: 56,
    HASH_REPORT: 57,
    GUEST_HDRLEN: 59,
    RSS: 60,
    RSC_EXT: 61,
    STANDBY: 62,
    SPEED_DUPLEX: 63,
  },
  blk: {
    SIZE_MAX: 1,
    SEG_MAX: 2,
    GEOMETRY: 4,
    RO: 5,
    BLK_SIZE: 6,
    FLUSH: 9,
    TOPOLOGY: 10,
    CONFIG_WCE: 11,
    MQ: 12,
    DISCARD: 13,
    WRITE_ZEROES: 14,
    LIFETIME: 15,
    SECURE_ERASE: 16,
    ZONED: 17,
  },
  fs: { NOTIFICATION: 0 },
  scsi: { INOUT: 0, HOTPLUG: 1, CHANGE: 2, T10_PI: 3 },
  gpu: { VIRGL: 0, EDID: 1, RESOURCE_UUID: 2, RESOURCE_BLOB: 3, CONTEXT_INIT: 4 },
  vsock: { SEQPACKET: 1 },
  input: {},
  gpio: { IRQ: 0 },
  i2c: { ZERO_LENGTH_REQUEST: 0 },
  rng: {},
  sound: { CTLS: 0 },
  scmi: { P2A_CHANNELS: 0, SHARED_MEMORY: 1 },
  can: { CAN_CLASSIC: 0, CAN_FD: 1, LATE_TX_ACK: 2, RTR_FRAMES: 3 },
  console: { SIZE: 0, MULTIPORT: 1, EMERG_WRITE: 2 },
  crypto: { REVISION_1: 0, CIPHER_STATELESS_MODE: 1, HASH_STATELESS_MODE: 2, MAC_STATELESS_MODE: 3, AEAD_STATELESS_MODE: 4, AKCIPHER_STATELESS_MODE: 5 },
  generic: {},
};

/** Virtio device status byte (SET/GET_STATUS). */
export const DeviceStatus = {
  ACKNOWLEDGE: 1,
  DRIVER: 2,
  DRIVER_OK: 4,
  FEATURES_OK: 8,
  NEEDS_RESET: 0x40,
  FAILED: 0x80,
} as const;

/** Names of the set bits of a 64-bit word; unnamed bits come out as "bitN". */
export function bitNames(value: bigint, names: Record<string, number>): string[] {
  const byBit = new Map<number, string>();
  for (const [name, bit] of Object.entries(names)) byBit.set(bit, name);
  const out: string[] = [];
  for (let bit = 0; bit < 64; bit++) {
    if ((value >> BigInt(bit)) & 1n) out.push(byBit.get(bit) ?? `bit${bit}`);
  }
  return out;
}

export function protocolFeatureNames(value: bigint): string[] {
  return bitNames(value, ProtocolFeature);
}

export function virtioFeatureNames(value: bigint, device: DeviceType = 'generic'): string[] {
  return bitNames(value, { ...DeviceFeatures[device], ...VirtioFeature });
}

export function statusNames(value: number): string[] {
  return Object.entries(DeviceStatus)
    .filter(([, mask]) => (value & mask) !== 0)
    .map(([name]) => name);
}

export function hasBit(value: bigint | undefined, bit: number): boolean {
  return value !== undefined && ((value >> BigInt(bit)) & 1n) === 1n;
}
