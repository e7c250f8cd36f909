/**
 * Payload layouts of the vhost-user-gpu socket (docs/interop/vhost-user-gpu.rst, QEMU's
 * hw/display/vhost-user-gpu.c) and their decoders. Pixel data is summarised (size, the first
 * pixel), never copied into a decoded record: a full-screen GPU_UPDATE is megabytes.
 */
import { GPU_BYTES_PER_PIXEL, GPU_UPDATE_HEADER } from './channels';
import { bitNames } from './features';

/** GPU protocol features (GPU_GET/SET_PROTOCOL_FEATURES), QEMU's VHOST_USER_GPU_PROTOCOL_F_*. */
export const GpuProtocolFeature = {
  /** GPU_GET_EDID exists */
  EDID: 0,
  /** GPU_DMABUF_SCANOUT2 (with a format modifier) exists */
  DMABUF2: 1,
} as const;

export const gpuProtocolFeatureNames = (v: bigint): string[] => bitNames(v, GpuProtocolFeature);

export type GpuPayloadKind =
  | 'gpuProtocolFeatures'
  | 'gpuDisplayInfo'
  | 'gpuScanoutId'
  | 'gpuEdid'
  | 'gpuCursorPos'
  | 'gpuCursorUpdate'
  | 'gpuScanout'
  | 'gpuUpdate'
  | 'gpuRect'
  | 'gpuDmabufScanout';

/** struct virtio_gpu_ctrl_hdr: type, flags, fence_id, ctx_id, ring_idx, padding. */
const CTRL_HDR = 24;
/** VIRTIO_GPU_MAX_SCANOUTS display modes of 24 bytes each follow the header. */
const MAX_SCANOUTS = 16;
const CURSOR_PIXELS = 64 * 64;

export const GPU_PAYLOAD_SIZES: Record<GpuPayloadKind, readonly number[] | undefined> = {
  gpuProtocolFeatures: [8],
  gpuDisplayInfo: [CTRL_HDR + MAX_SCANOUTS * 24],
  gpuScanoutId: [4],
  gpuEdid: [CTRL_HDR + 8 + 1024],
  gpuCursorPos: [12],
  gpuCursorUpdate: [12 + 8 + CURSOR_PIXELS * 4],
  gpuScanout: [12],
  gpuUpdate: undefined, // 20 + width * height * 4
  gpuRect: [GPU_UPDATE_HEADER],
  // VhostUserGpuDMABUFScanout, and DMABUF_SCANOUT2's with a u64 modifier
  gpuDmabufScanout: [40, 48],
};

const u32 = (p: Buffer, off: number): number => (p.length >= off + 4 ? p.readUInt32LE(off) : 0);
const u64 = (p: Buffer, off: number): bigint => (p.length >= off + 8 ? p.readBigUInt64LE(off) : 0n);

const rect = (p: Buffer, off: number) => ({ x: u32(p, off), y: u32(p, off + 4), width: u32(p, off + 8), height: u32(p, off + 12) });

/** The size a GPU_UPDATE's payload must have for the rectangle it announces. */
export function expectedUpdateSize(p: Buffer): number[] {
  return [GPU_UPDATE_HEADER + u32(p, 12) * u32(p, 16) * GPU_BYTES_PER_PIXEL];
}

export const gpuDecoders: Record<GpuPayloadKind, (p: Buffer) => Record<string, unknown>> = {
  gpuProtocolFeatures: (p) => ({ gpuProtocolFeatures: u64(p, 0) }),
  gpuDisplayInfo: (p) => {
    const displays: { scanout: number; x: number; y: number; width: number; height: number; flags: number }[] = [];
    for (let i = 0; i < MAX_SCANOUTS && CTRL_HDR + (i + 1) * 24 <= p.length; i++) {
      const off = CTRL_HDR + i * 24;
      if (u32(p, off + 16)) displays.push({ scanout: i, ...rect(p, off), flags: u32(p, off + 20) });
    }
    return { type: u32(p, 0), displays };
  },
  gpuScanoutId: (p) => ({ scanoutId: u32(p, 0) }),
  gpuEdid: (p) => {
    const size = u32(p, CTRL_HDR);
    const edid = p.subarray(CTRL_HDR + 8, CTRL_HDR + 8 + Math.min(size, 1024));
    // bytes 8-9: the manufacturer id, three 5-bit letters (EDID 1.3 §3.4)
    const id = edid.length >= 10 ? edid.readUInt16BE(8) : 0;
    const vendor = id ? [10, 5, 0].map((s) => String.fromCharCode(64 + ((id >> s) & 31))).join('') : '';
    return { type: u32(p, 0), size, vendor };
  },
  gpuCursorPos: (p) => ({ scanoutId: u32(p, 0), x: u32(p, 4), y: u32(p, 8) }),
  gpuCursorUpdate: (p) => ({ scanoutId: u32(p, 0), x: u32(p, 4), y: u32(p, 8), hotX: u32(p, 12), hotY: u32(p, 16), pixelBytes: Math.max(0, p.length - 20) }),
  gpuScanout: (p) => ({ scanoutId: u32(p, 0), width: u32(p, 4), height: u32(p, 8) }),
  gpuUpdate: (p) => ({
    scanoutId: u32(p, 0),
    ...rect(p, 4),
    pixelBytes: Math.max(0, p.length - GPU_UPDATE_HEADER),
    ...(p.length >= GPU_UPDATE_HEADER + 4 ? { firstPixel: u32(p, GPU_UPDATE_HEADER) } : {}),
  }),
  gpuRect: (p) => ({ scanoutId: u32(p, 0), ...rect(p, 4) }),
  gpuDmabufScanout: (p) => ({
    scanoutId: u32(p, 0),
    ...rect(p, 4),
    fdWidth: u32(p, 20),
    fdHeight: u32(p, 24),
    stride: u32(p, 28),
    flags: u32(p, 32),
    fourcc: u32(p, 36),
    ...(p.length >= 48 ? { modifier: u64(p, 40) } : {}),
  }),
};
