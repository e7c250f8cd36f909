/**
 * Every request code of the three vhost-user channels, as data: one entry per request with a
 * one-line doc, the protocol feature that gates it, its payload layouts, the fds it carries and
 * whether a reply always follows (reference §2, §3, §4.6; QEMU docs/interop/vhost-user.rst).
 */
import type { ChannelKind } from './header';
import type { PayloadKind } from './payloads';

/** How many fds a message may carry: [min, max]. Context-dependent rules live in validate.ts. */
export type FdRange = readonly [number, number];

export interface RequestSpec {
  code: number;
  name: string;
  /** names used by older specs and code (master/slave era) */
  legacy?: readonly string[];
  doc: string;
  /** protocol feature (by name) or virtio feature needed before sending */
  gate?: string;
  request: PayloadKind;
  requestFds: FdRange;
  /** layout of the reply when one is sent; 'ack' means a u64 REPLY_ACK */
  reply: PayloadKind;
  replyFds: FdRange;
  /** a reply follows whatever the flags say (reference §1.4) */
  alwaysReply: boolean;
  /** a reply in postcopy mode echoes this layout instead of an ack */
  postcopyReply?: PayloadKind;
}

const NO_FDS: FdRange = [0, 0];

function req(
  code: number,
  name: string,
  doc: string,
  request: PayloadKind,
  opts: Partial<Omit<RequestSpec, 'code' | 'name' | 'doc' | 'request'>> = {},
): RequestSpec {
  return {
    code,
    name,
    doc,
    request,
    requestFds: opts.requestFds ?? NO_FDS,
    reply: opts.reply ?? 'ack',
    replyFds: opts.replyFds ?? NO_FDS,
    alwaysReply: opts.alwaysReply ?? false,
    ...(opts.legacy ? { legacy: opts.legacy } : {}),
    ...(opts.gate ? { gate: opts.gate } : {}),
    ...(opts.postcopyReply ? { postcopyReply: opts.postcopyReply } : {}),
  };
}

/** Front-end to back-end requests on the main socket. */
export const MAIN_REQUESTS: readonly RequestSpec[] = [
  req(1, 'GET_FEATURES', 'Get the virtio feature bits the back-end offers (plus bit 30).', 'none', { reply: 'features', alwaysReply: true }),
  req(2, 'SET_FEATURES', 'Set the virtio features the front-end acked.', 'features'),
  req(3, 'SET_OWNER', 'Claim the back-end for this front-end session.', 'none'),
  req(4, 'RESET_OWNER', 'Deprecated: release the session (ignore, or disable all rings).', 'none'),
  req(5, 'SET_MEM_TABLE', 'Replace the guest memory table; one fd per region.', 'memTable', { requestFds: [0, 8], postcopyReply: 'memTable' }),
  req(6, 'SET_LOG_BASE', 'Set the dirty-log memory area (fd with LOG_SHMFD).', 'log', { requestFds: [0, 1], reply: 'log' }),
  req(7, 'SET_LOG_FD', 'Set the eventfd signalled when the log changed.', 'none', { requestFds: [0, 1] }),
  req(8, 'SET_VRING_NUM', 'Set the size of a vring.', 'vringState'),
  req(9, 'SET_VRING_ADDR', 'Set the descriptor, used and available ring addresses of a vring.', 'vringAddr'),
  req(10, 'SET_VRING_BASE', 'Set the next available index of a vring.', 'vringState'),
  req(11, 'GET_VRING_BASE', 'Stop a vring and get its next available index.', 'vringState', { reply: 'vringState', alwaysReply: true }),
  req(12, 'SET_VRING_KICK', 'Set the eventfd the front-end kicks (NOFD: the back-end polls).', 'vringFd', { requestFds: [0, 1] }),
  req(13, 'SET_VRING_CALL', 'Set the eventfd the back-end calls (re-sent on MSI-X mask changes).', 'vringFd', { requestFds: [0, 1] }),
  req(14, 'SET_VRING_ERR', 'Set the eventfd the back-end signals on vring errors.', 'vringFd', { requestFds: [0, 1] }),
  req(15, 'GET_PROTOCOL_FEATURES', 'Get the vhost-user protocol features the back-end offers.', 'none', { reply: 'protocolFeatures', alwaysReply: true }),
  req(16, 'SET_PROTOCOL_FEATURES', 'Set the vhost-user protocol features in use.', 'protocolFeatures'),
  req(17, 'GET_QUEUE_NUM', 'Get the maximum number of queues (pairs for net).', 'none', { gate: 'MQ', reply: 'u64', alwaysReply: true }),
  req(18, 'SET_VRING_ENABLE', 'Enable (num=1) or disable (num=0) a vring.', 'vringState'),
  req(19, 'SEND_RARP', 'Ask the back-end to announce the guest MAC after migration.', 'mac', { gate: 'RARP' }),
  req(20, 'NET_SET_MTU', 'Tell the back-end the MTU.', 'u64', { gate: 'MTU' }),
  req(21, 'SET_BACKEND_REQ_FD', 'Pass the socket of the back-end request channel.', 'none', {
    legacy: ['SET_SLAVE_REQ_FD'],
    gate: 'BACKEND_REQ',
    requestFds: [1, 1],
  }),
  req(22, 'IOTLB_MSG', 'Send an IOTLB update or invalidation.', 'iotlb', { gate: 'ACCESS_PLATFORM', alwaysReply: true }),
  req(23, 'SET_VRING_ENDIAN', 'Set the endianness of a legacy vring.', 'vringState', { gate: 'CROSS_ENDIAN' }),
  req(24, 'GET_CONFIG', 'Read device config space (reply size 0 = error).', 'config', { gate: 'CONFIG', reply: 'config', alwaysReply: true }),
  req(25, 'SET_CONFIG', 'Write device config space.', 'config', { gate: 'CONFIG' }),
  req(26, 'CREATE_CRYPTO_SESSION', 'Create a crypto session (layout differs between QEMU and DPDK).', 'cryptoSession', {
    gate: 'CRYPTO_SESSION',
    reply: 'cryptoSession',
    alwaysReply: true,
  }),
  req(27, 'CLOSE_CRYPTO_SESSION', 'Close a crypto session.', 'u64', { gate: 'CRYPTO_SESSION' }),
  req(28, 'POSTCOPY_ADVISE', 'Start postcopy; the reply carries a userfaultfd.', 'none', {
    gate: 'PAGEFAULT',
    reply: 'none',
    replyFds: [0, 1],
    alwaysReply: true,
  }),
  req(29, 'POSTCOPY_LISTEN', 'Enter postcopy listening mode.', 'none', { gate: 'PAGEFAULT', alwaysReply: true }),
  req(30, 'POSTCOPY_END', 'End postcopy.', 'none', { gate: 'PAGEFAULT', alwaysReply: true }),
  req(31, 'GET_INFLIGHT_FD', 'Get the inflight-tracking buffer (reply carries its memfd).', 'inflight', {
    gate: 'INFLIGHT_SHMFD',
    reply: 'inflight',
    replyFds: [0, 1],
    alwaysReply: true,
  }),
  req(32, 'SET_INFLIGHT_FD', 'Give the inflight-tracking buffer back after a reconnect.', 'inflight', { gate: 'INFLIGHT_SHMFD', requestFds: [1, 1] }),
  req(33, 'GPU_SET_SOCKET', 'Pass the vhost-user-gpu socket.', 'none', { requestFds: [1, 1] }),
  req(34, 'RESET_DEVICE', 'Reset the device.', 'none', { gate: 'RESET_DEVICE' }),
  req(35, 'VRING_KICK', 'In-band kick of a vring.', 'vringState', { gate: 'INBAND_NOTIFICATIONS' }),
  req(36, 'GET_MAX_MEM_SLOTS', 'Get how many memory regions ADD_MEM_REG may create.', 'none', { gate: 'CONFIGURE_MEM_SLOTS', reply: 'u64', alwaysReply: true }),
  req(37, 'ADD_MEM_REG', 'Add one guest memory region (one fd).', 'memRegion', { gate: 'CONFIGURE_MEM_SLOTS', requestFds: [1, 1], postcopyReply: 'memRegion' }),
  req(38, 'REM_MEM_REG', 'Remove one guest memory region (old QEMU attaches a stray fd).', 'memRegion', { gate: 'CONFIGURE_MEM_SLOTS', requestFds: [0, 1] }),
  req(39, 'SET_STATUS', 'Set the virtio device status byte.', 'status', { gate: 'STATUS' }),
  req(40, 'GET_STATUS', 'Get the virtio device status byte.', 'none', { gate: 'STATUS', reply: 'status', alwaysReply: true }),
  req(41, 'GET_SHARED_OBJECT', 'Get the dma-buf of a shared object by UUID.', 'uuid', {
    gate: 'SHARED_OBJECT',
    reply: 'none',
    replyFds: [0, 1],
    alwaysReply: true,
  }),
  req(42, 'SET_DEVICE_STATE_FD', 'Pass a pipe for device state transfer (migration).', 'deviceState', {
    gate: 'DEVICE_STATE',
    requestFds: [1, 1],
    reply: 'u64',
    replyFds: [0, 1],
    alwaysReply: true,
  }),
  req(43, 'CHECK_DEVICE_STATE', 'Ask whether the transferred device state was processed.', 'none', { gate: 'DEVICE_STATE', reply: 'u64', alwaysReply: true }),
  // Yandex's libvhost-server uses 44 for GET_VRING_BASE_SKIP_DRAIN (field notes #26).
  req(44, 'GET_SHMEM_CONFIG', 'Get the shared-memory regions (44 means other things in some implementations).', 'none', {
    gate: 'SHMEM',
    reply: 'shmemConfig',
    alwaysReply: true,
  }),
  // 2026 (mst's tree, after QEMU 11.1); crosvm's 2023 RESTORE used 45 too (dialects.ts)
  req(
    45,
    'GET_VRING_BASE_SKIP_DRAIN',
    'Stop a vring without draining its in-flight requests (they stay in the inflight region), and get its next available index.',
    'vringState',
    {
      gate: 'GET_VRING_BASE_SKIP_DRAIN',
      reply: 'vringState',
      alwaysReply: true,
    },
  ),
];

/** Back-end to front-end requests on the channel passed with SET_BACKEND_REQ_FD. */
export const BACKEND_REQUESTS: readonly RequestSpec[] = [
  req(1, 'IOTLB_MSG', 'Report an IOTLB miss or access failure.', 'iotlb', { legacy: ['SLAVE_IOTLB_MSG'], gate: 'ACCESS_PLATFORM' }),
  req(2, 'CONFIG_CHANGE_MSG', 'Device config changed: the front-end re-reads it with GET_CONFIG.', 'none', {
    legacy: ['SLAVE_CONFIG_CHANGE_MSG'],
    gate: 'CONFIG',
  }),
  req(3, 'VRING_HOST_NOTIFIER_MSG', 'Map (fd) or unmap (NOFD) a host notifier page for a vring.', 'vringArea', {
    legacy: ['SLAVE_VRING_HOST_NOTIFIER_MSG'],
    gate: 'HOST_NOTIFIER',
    requestFds: [0, 1],
  }),
  req(4, 'VRING_CALL', 'In-band call of a vring.', 'vringState', { legacy: ['SLAVE_VRING_CALL'], gate: 'INBAND_NOTIFICATIONS' }),
  req(5, 'VRING_ERR', 'In-band error notification of a vring.', 'vringState', { legacy: ['SLAVE_VRING_ERR'], gate: 'INBAND_NOTIFICATIONS' }),
  req(6, 'SHARED_OBJECT_ADD', 'Register a shared object by UUID.', 'uuid', { gate: 'SHARED_OBJECT' }),
  req(7, 'SHARED_OBJECT_REMOVE', 'Unregister a shared object (owner only).', 'uuid', { gate: 'SHARED_OBJECT' }),
  req(8, 'SHARED_OBJECT_LOOKUP', 'Look up a shared object; the reply carries its dma-buf.', 'uuid', {
    gate: 'SHARED_OBJECT',
    reply: 'u64',
    replyFds: [0, 1],
    alwaysReply: true,
  }),
  req(9, 'SHMEM_MAP', 'Map an fd into a shared-memory region.', 'mmapRequest', { gate: 'SHMEM', requestFds: [1, 1] }),
  req(10, 'SHMEM_UNMAP', 'Unmap a whole mapping of a shared-memory region.', 'mmapRequest', { gate: 'SHMEM' }),
  // crosvm's non-standard back-end requests (current google/crosvm vmm_vhost)
  req(1002, 'CROSVM_FS_MAP', 'crosvm (deprecated): map a file range for virtio-fs DAX.', 'opaque', { requestFds: [0, 8] }),
  req(1003, 'CROSVM_FS_UNMAP', 'crosvm (deprecated): unmap a virtio-fs DAX range.', 'opaque'),
  req(1004, 'CROSVM_FS_SYNC', 'crosvm (deprecated): sync a virtio-fs DAX range.', 'opaque'),
  req(1005, 'CROSVM_FS_IO', 'crosvm (deprecated): virtio-fs I/O through the front-end.', 'opaque', { requestFds: [0, 8] }),
  req(1006, 'CROSVM_GPU_MAP', 'crosvm: map a GPU buffer into shared memory.', 'opaque', { requestFds: [0, 8] }),
  req(1007, 'CROSVM_EXTERNAL_MAP', 'crosvm: map an external memory object.', 'opaque'),
];

/** Back-end to front-end requests on the vhost-user-gpu socket (docs/interop/vhost-user-gpu.rst). */
export const GPU_REQUESTS: readonly RequestSpec[] = [
  req(1, 'GPU_GET_PROTOCOL_FEATURES', 'Get the GPU protocol features the front-end supports.', 'none', { reply: 'gpuProtocolFeatures', alwaysReply: true }),
  req(2, 'GPU_SET_PROTOCOL_FEATURES', 'Enable GPU protocol features.', 'gpuProtocolFeatures'),
  req(3, 'GPU_GET_DISPLAY_INFO', 'Get the preferred display configuration (virtio_gpu_resp_display_info).', 'none', {
    reply: 'gpuDisplayInfo',
    alwaysReply: true,
  }),
  req(4, 'GPU_CURSOR_POS', 'Set and show the cursor position.', 'gpuCursorPos'),
  req(5, 'GPU_CURSOR_POS_HIDE', 'Set the cursor position and hide it.', 'gpuCursorPos'),
  req(6, 'GPU_CURSOR_UPDATE', 'Update the cursor image (64x64 ARGB) and position.', 'gpuCursorUpdate'),
  req(7, 'GPU_SCANOUT', 'Set a scanout resolution (0x0 disables it).', 'gpuScanout'),
  req(8, 'GPU_UPDATE', 'Update a scanout rectangle, carrying its pixels.', 'gpuUpdate'),
  req(9, 'GPU_DMABUF_SCANOUT', 'Set a scanout from a dma-buf (the fd; none disables it).', 'gpuDmabufScanout', { requestFds: [0, 1] }),
  req(10, 'GPU_DMABUF_UPDATE', 'A dma-buf scanout rectangle changed; the back-end waits for the reply.', 'gpuRect', { reply: 'none', alwaysReply: true }),
  req(11, 'GPU_GET_EDID', 'Get the EDID of a scanout (with the EDID protocol feature).', 'gpuScanoutId', {
    gate: 'GPU:EDID',
    reply: 'gpuEdid',
    alwaysReply: true,
  }),
  req(12, 'GPU_DMABUF_SCANOUT2', 'Set a scanout from a dma-buf with a format modifier (with DMABUF2).', 'gpuDmabufScanout', {
    gate: 'GPU:DMABUF2',
    requestFds: [0, 1],
  }),
];

const TABLES: Record<ChannelKind, ReadonlyMap<number, RequestSpec>> = {
  main: new Map(MAIN_REQUESTS.map((r) => [r.code, r])),
  backend: new Map(BACKEND_REQUESTS.map((r) => [r.code, r])),
  gpu: new Map(GPU_REQUESTS.map((r) => [r.code, r])),
};

export function requestSpec(channel: ChannelKind, code: number): RequestSpec | undefined {
  return TABLES[channel].get(code);
}

export function requestName(channel: ChannelKind, code: number): string {
  return TABLES[channel].get(code)?.name ?? `UNKNOWN_${code}`;
}

/** Looks a request up by its current or legacy name, with or without a VHOST_USER_(BACKEND_|SLAVE_) prefix. */
export function requestByName(channel: ChannelKind, name: string): RequestSpec | undefined {
  const n = name
    .toUpperCase()
    .replace(/^VHOST_USER_/, '')
    .replace(/^(BACKEND_|SLAVE_)(?=.)/, channel === 'backend' ? '' : '$1');
  for (const spec of TABLES[channel].values()) {
    if (spec.name === n || spec.legacy?.some((l) => l === n || l.replace(/^SLAVE_/, '') === n)) return spec;
  }
  return undefined;
}

/** Main-channel request codes by name, for code that names a request (Request.SET_MEM_TABLE). */
export const Request = Object.fromEntries(MAIN_REQUESTS.map((r) => [r.name, r.code])) as {
  readonly [K in (typeof MAIN_REQUESTS)[number]['name']]: number;
} & Record<string, number>;

export const BackendRequest = Object.fromEntries(BACKEND_REQUESTS.map((r) => [r.name, r.code])) as Record<string, number>;
