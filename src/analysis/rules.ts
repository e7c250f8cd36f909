/**
 * The protocol checks, as data: a stable id, a name, the spec section (or field report) it comes
 * from, and a one-line explanation. The logic lives in checker.ts.
 */
export interface Rule {
  id: string;
  name: string;
  severity: 'error' | 'warning';
  section: string;
  explain: string;
}

const rule = (id: string, name: string, severity: Rule['severity'], section: string, explain: string): Rule => ({ id, name, severity, section, explain });

export const RULES = {
  replyFlags: rule(
    'VU001',
    'reply-flags',
    'error',
    'vhost-user.rst "Header"; QEMU vhost_user_read_header',
    'a reply whose flags are not exactly version 1 | REPLY (0x5): QEMU drops the connection',
  ),
  unexpectedReply: rule(
    'VU002',
    'unexpected-reply',
    'error',
    'vhost-user.rst "Communication" / REPLY_ACK',
    'a reply where none was expected: every later reply is shifted by one',
  ),
  missingReply: rule(
    'VU003',
    'missing-reply',
    'error',
    'vhost-user.rst "Communication" / REPLY_ACK',
    'no reply where one is expected (before the next request, the timeout, or the end of the session)',
  ),
  needReplyWithoutAck: rule(
    'VU004',
    'need-reply-without-reply-ack',
    'warning',
    'vhost-user.rst VHOST_USER_PROTOCOL_F_REPLY_ACK',
    'NEED_REPLY set although REPLY_ACK was not negotiated: the peer will not answer',
  ),
  payloadSize: rule('VU005', 'payload-size', 'error', 'vhost-user.rst "Message types"', "the payload size does not fit the request's layout"),
  fdCount: rule('VU006', 'fd-count', 'error', 'vhost-user.rst "Message types" (fds)', 'the message carries more or fewer fds than the request takes'),
  ringBeforeMemTable: rule(
    'VU007',
    'ring-before-mem-table',
    'error',
    'vhost-user.rst "Ring addresses"; field report xen+vhost-user-input 2024',
    'SET_VRING_ADDR before any memory table: the back-end cannot translate the ring addresses',
  ),
  kickBeforeMemTable: rule('VU008', 'kick-before-mem-table', 'error', 'vhost-user.rst "Ring states"', 'a vring was kicked before any memory table was set'),
  ringOutsideRegions: rule(
    'VU009',
    'ring-outside-regions',
    'error',
    'vhost-user.rst "Memory regions" / address translation',
    'a ring address of SET_VRING_ADDR lies outside every memory region',
  ),
  kickBeforeEnable: rule(
    'VU010',
    'kick-before-enable',
    'warning',
    'vhost-user.rst "Ring states"; rust-vmm/vhost#247',
    'a kick before SET_VRING_ENABLE(1) with PROTOCOL_FEATURES negotiated: some back-ends drop it and never look at the ring again',
  ),
  featureNotOffered: rule(
    'VU011',
    'feature-not-offered',
    'error',
    'vhost-user.rst "Feature negotiation"',
    'a feature bit was acked that the back-end never offered',
  ),
  tooManyRegions: rule(
    'VU012',
    'too-many-regions',
    'error',
    'vhost-user.rst VHOST_USER_GET_MAX_MEM_SLOTS; rust-vmm/vhost#17',
    'more memory regions than the back-end allows (GET_MAX_MEM_SLOTS, or 8 for SET_MEM_TABLE)',
  ),
  packedLayoutMismatch: rule(
    'VU013',
    'packed-layout-mismatch',
    'warning',
    'virtio spec "Packed Virtqueues"; cloud-hypervisor#2834',
    'the ring layout disagrees with the negotiated ring format (RING_PACKED vs split)',
  ),
  inflightBeforeVringBase: rule(
    'VU014',
    'inflight-before-vring-base',
    'warning',
    'vhost-user.rst "Inflight I/O tracking"; cloud-hypervisor#2931',
    'SET_INFLIGHT_FD before any SET_VRING_BASE: DPDK allocates its queues lazily and crashed on this',
  ),
  unknownRequest: rule('VU015', 'unknown-request', 'warning', 'vhost-user.rst "Message types"', 'a request code that is not defined on this channel'),
  ambiguousRequest: rule(
    'VU016',
    'ambiguous-request',
    'warning',
    'field notes #25, #26 (crosvm, yc-libvhost-server)',
    'a request code that means different things in different implementations',
  ),
  direction: rule(
    'VU017',
    'wrong-direction',
    'error',
    'vhost-user.rst "Communication"',
    'a request from the side that only answers on this channel, or a reply from the side that asks',
  ),
  vringWithoutKick: rule(
    'VU018',
    'vring-without-kick',
    'error',
    'vhost-user.rst "Ring states" (a ring starts once it has a kick fd)',
    "a vring was set up and the device started, but the back-end never received a SET_VRING_KICK for it: it never learns of the driver's buffers and the queue stalls",
  ),
  vringBaseMismatch: rule(
    'VU019',
    'vring-base-mismatch',
    'error',
    'vhost-user.rst VHOST_USER_GET_VRING_BASE; rust-vmm/vhost#154 (needs --rings)',
    "GET_VRING_BASE answered an index outside the ring's [used idx, avail idx]: the back-end lost its place (a reset vring answers 0), and a resumed device would redo or skip requests",
  ),
  logAllWithoutLogBase: rule(
    'VU020',
    'log-all-without-log-base',
    'error',
    'vhost-user.rst "Migration" (VHOST_F_LOG_ALL, VHOST_USER_SET_LOG_BASE)',
    'dirty logging (LOG_ALL) was acked but no SET_LOG_BASE gave the back-end a log before its rings stopped: pages it wrote during the migration were never marked, and the destination gets stale memory',
  ),
  logTooSmall: rule(
    'VU021',
    'log-too-small',
    'error',
    'vhost-user.rst "Migration" (one bit per 4 KiB page of guest memory)',
    'the dirty log of SET_LOG_BASE is smaller than the memory table needs (one bit per 4 KiB page up to the highest guest address): the back-end writes past it or skips pages',
  ),
  vringBaseZeroAfterUse: rule(
    'VU022',
    'vring-base-zero-after-use',
    'error',
    'vhost-user.rst VHOST_USER_GET_VRING_BASE; rust-vmm/vhost#154, virtiofsd#110',
    'GET_VRING_BASE answered 0 for a ring the back-end had used (it called the driver, or was set up from a non-zero base): a back-end that reset its ring state loses its place, and the destination redoes or skips requests',
  ),
  migratedBaseMismatch: rule(
    'VU023',
    'migrated-base-mismatch',
    'error',
    'vhost-user.rst "Migration" (the destination resumes from the source\'s GET_VRING_BASE)',
    "the destination's SET_VRING_BASE differs from what the source's back-end answered to GET_VRING_BASE when it stopped: the guest sees requests redone or lost after the migration",
  ),
  deviceStateUnchecked: rule(
    'VU024',
    'device-state-unchecked',
    'warning',
    'vhost-user.rst VHOST_USER_SET_DEVICE_STATE_FD / VHOST_USER_CHECK_DEVICE_STATE',
    'a device state transfer was started (SET_DEVICE_STATE_FD) and never checked (CHECK_DEVICE_STATE): a failed save or load goes unnoticed',
  ),
  replyBeyondDowntime: rule(
    'VU025',
    'reply-beyond-downtime',
    'warning',
    'QEMU migration downtime-limit (300 ms by default); OVS-DPDK + cloud-hypervisor SET_LOG_BASE hang',
    "during a migration (LOG_ALL on) a request waited longer for its reply than QEMU's default downtime limit: the guest stays paused that long, or the migration stalls",
  ),
  deviceStateBeyondDowntime: rule(
    'VU026',
    'device-state-beyond-downtime',
    'warning',
    'vhost-user.rst VHOST_USER_SET_DEVICE_STATE_FD; QEMU migration downtime-limit (300 ms by default)',
    "a device-state transfer took longer than QEMU's default downtime limit: the source saves its back-end's state with the guest stopped, the destination loads it before the guest runs, so the guest stays paused that long",
  ),
  shmemBit: rule(
    'VU027',
    'shmem-bit',
    'warning',
    'vhost-user.rst protocol features (2026: 21 GPA_ADDRESSES, 22 SHMEM); rust-vmm vhost 0.16 (SHMEM at 21)',
    "SHMEM's messages while protocol feature 21, not 22, is negotiated: rust-vmm vhost 0.16 numbers SHMEM 21, which the spec and QEMU 11 give GPA_ADDRESSES; a QEMU 11 front-end then sends guest-physical ring addresses the back-end reads as its own",
  ),
  regionsOverlap: rule(
    'VU028',
    'regions-overlap',
    'error',
    'vhost-user.rst "Memory region description" (2026: overlapping regions are a bug in the front-end)',
    'two memory regions overlap in guest-physical or in front-end address space: an address then translates through either, and a back-end may read the wrong memory',
  ),
  postcopyWithMemSlots: rule(
    'VU029',
    'postcopy-with-mem-slots',
    'error',
    'vhost-user.rst "Postcopy" (2026: unsupported with CONFIGURE_MEM_SLOTS)',
    'a POSTCOPY_* request while CONFIGURE_MEM_SLOTS is negotiated: the spec says postcopy is not supported then and these requests MUST NOT be sent',
  ),
} as const satisfies Record<string, Rule>;

export type RuleKey = keyof typeof RULES;
export const ALL_RULES: Rule[] = Object.values(RULES);
