/**
 * Short human renderings of decoded payloads, for the live log and `show`: feature words by
 * name, addresses in hex, regions with their sizes. JSON output uses `toJsonSafe` instead.
 */
import type { DecodedMessage } from './decode';
import { protocolFeatureNames, statusNames, virtioFeatureNames, type DeviceType } from './features';
import { gpuProtocolFeatureNames } from './gpu-payloads';
import { deviceStateResult, NOFD_MASK, type MemoryRegion } from './payloads';

const hex = (v: bigint | number): string => `0x${v.toString(16)}`;

function size(v: bigint): string {
  const units: [bigint, string][] = [
    [1n << 30n, 'GiB'],
    [1n << 20n, 'MiB'],
    [1n << 10n, 'KiB'],
  ];
  for (const [u, name] of units) if (v >= u && v % u === 0n) return `${v / u}${name}`;
  return hex(v);
}

function region(r: MemoryRegion): string {
  return `gpa=${hex(r.guestPhysAddr)} size=${size(r.memorySize)} uaddr=${hex(r.userspaceAddr)} off=${hex(r.mmapOffset)}`;
}

/** A DRM fourcc as its four letters ("XR24"), or hex when it is not printable. */
function fourcc(v: number): string {
  const s = String.fromCharCode(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >>> 24) & 0xff);
  return /^[\x20-\x7e]{4}$/.test(s) ? s : hex(v);
}

/** SET_DEVICE_STATE_FD / CHECK_DEVICE_STATE answers: the result, and whose pipe the transfer uses. */
function deviceStateAnswer(name: string, v: bigint): string {
  if (name === 'CHECK_DEVICE_STATE') return `value=${v} (${deviceStateResult(v)})`;
  return `value=${v} (${deviceStateResult(v)}, ${v & BigInt(NOFD_MASK) ? "no fd: the back-end uses the front-end's pipe" : 'the back-end returns its own fd'})`;
}

export function formatPayload(m: DecodedMessage, device: DeviceType = 'generic'): string {
  const p = m.payload as Record<string, never>;
  switch (m.layout) {
    case 'none':
      return '';
    case 'u64':
      if (m.name === 'SET_DEVICE_STATE_FD' || m.name === 'CHECK_DEVICE_STATE') return deviceStateAnswer(m.name, BigInt(p.value));
      return `${m.name === 'NET_SET_MTU' ? 'mtu' : 'value'}=${p.value}`;
    case 'ack':
      return `ack=${p.ack}`;
    case 'features':
      return `${hex(p.features)} (${virtioFeatureNames(p.features, device).join('|')})`;
    case 'protocolFeatures':
      return `${hex(p.protocolFeatures)} (${protocolFeatureNames(p.protocolFeatures).join('|')})`;
    case 'status':
      return `status=${hex(p.status)} (${statusNames(p.status).join('|') || 'reset'})`;
    case 'mac':
      return `mac=${p.mac}`;
    case 'vringState':
      return `vring=${p.index} num=${p.num}`;
    case 'vringFd':
      return `vring=${p.index}${p.nofd ? ' NOFD' : ''}`;
    case 'vringAddr':
      return `vring=${p.index} flags=${hex(p.flags)} desc=${hex(p.desc)} used=${hex(p.used)} avail=${hex(p.avail)} log=${hex(p.logGuestAddr)}`;
    case 'memTable':
      return `nregions=${p.nregions} ${(p.regions as MemoryRegion[]).map((r) => `[${region(r)}]`).join(' ')}`;
    case 'memRegion':
      return `[${region(p.region)}]`;
    case 'log':
      return `mmap_size=${size(p.mmapSize)}${p.mmapOffset !== undefined ? ` mmap_offset=${hex(p.mmapOffset)}` : ''}`;
    case 'inflight':
      return `mmap_size=${size(p.mmapSize)} mmap_offset=${hex(p.mmapOffset)} num_queues=${p.numQueues} queue_size=${p.queueSize}`;
    case 'config': {
      const data = p.data as Buffer;
      return `offset=${p.offset} size=${p.size} flags=${p.flags} data=${data.subarray(0, 32).toString('hex')}${data.length > 32 ? '…' : ''}`;
    }
    case 'iotlb':
      return `iova=${hex(p.iova)} size=${hex(p.size)} uaddr=${hex(p.uaddr)} perm=${p.perm} type=${p.type}`;
    case 'cryptoSession':
      return `op_code=${p.opCode} (${p.length} bytes)`;
    case 'deviceState':
      return `direction=${p.direction} phase=${p.phase}`;
    case 'uuid':
      return `uuid=${p.uuid}`;
    case 'shmemConfig':
      return `nregions=${p.nregions} ${(p.sizes as { shmid: number; size: bigint }[]).map((s) => `shm${s.shmid}=${size(s.size)}`).join(' ')}`;
    case 'mmapRequest':
      return `shmid=${p.shmid} fd_offset=${hex(p.fdOffset)} shm_offset=${hex(p.shmOffset)} len=${hex(p.len)} ${p.writable ? 'rw' : 'ro'}`;
    case 'vringArea':
      return `vring=${p.index}${p.nofd ? ' NOFD' : ''} size=${hex(p.size)} offset=${hex(p.offset)}`;
    case 'gpuProtocolFeatures':
      return `${hex(p.gpuProtocolFeatures)} (${gpuProtocolFeatureNames(p.gpuProtocolFeatures).join('|')})`;
    case 'gpuDisplayInfo': {
      const d = p.displays as { scanout: number; x: number; y: number; width: number; height: number }[];
      return d.map((s) => `scanout${s.scanout}=${s.width}x${s.height}+${s.x}+${s.y}`).join(' ') || 'no display enabled';
    }
    case 'gpuScanoutId':
      return `scanout=${p.scanoutId}`;
    case 'gpuEdid':
      return `edid ${p.size} bytes${p.vendor ? ` vendor=${p.vendor}` : ''}`;
    case 'gpuCursorPos':
      return `scanout=${p.scanoutId} x=${p.x} y=${p.y}`;
    case 'gpuCursorUpdate':
      return `scanout=${p.scanoutId} x=${p.x} y=${p.y} hot=${p.hotX},${p.hotY} image ${p.pixelBytes} bytes`;
    case 'gpuScanout':
      return `scanout=${p.scanoutId} ${p.width}x${p.height}`;
    case 'gpuUpdate':
      return `scanout=${p.scanoutId} rect=${p.width}x${p.height}+${p.x}+${p.y} pixels=${p.pixelBytes} bytes${p.firstPixel !== undefined ? ` first=#${(p.firstPixel as number).toString(16).padStart(8, '0')}` : ''}${p.truncated ? ' (pixels not recorded)' : ''}`;
    case 'gpuRect':
      return `scanout=${p.scanoutId} rect=${p.width}x${p.height}+${p.x}+${p.y}`;
    case 'gpuDmabufScanout':
      return `scanout=${p.scanoutId} rect=${p.width}x${p.height}+${p.x}+${p.y} buffer=${p.fdWidth}x${p.fdHeight} stride=${p.stride} fourcc=${fourcc(p.fourcc)}${p.modifier !== undefined ? ` modifier=${hex(p.modifier)}` : ''}`;
    case 'opaque':
      return `${p.length} bytes`;
  }
}

/** A JSON-friendly copy: bigints become hex strings, buffers hex, feature words gain names. */
export function toJsonSafe(m: DecodedMessage, device: DeviceType = 'generic'): Record<string, unknown> {
  const conv = (v: unknown): unknown => {
    if (typeof v === 'bigint') return hex(v);
    if (Buffer.isBuffer(v)) return v.toString('hex');
    if (Array.isArray(v)) return v.map(conv);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, conv(x)]));
    return v;
  };
  const out = conv(m.payload) as Record<string, unknown>;
  const p = m.payload as Record<string, bigint>;
  if (m.layout === 'features') out.names = virtioFeatureNames(p.features, device);
  if (m.layout === 'protocolFeatures') out.names = protocolFeatureNames(p.protocolFeatures);
  if (m.layout === 'gpuProtocolFeatures') out.names = gpuProtocolFeatureNames(p.gpuProtocolFeatures);
  return out;
}
