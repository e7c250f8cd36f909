import { catalogueOf } from './catalogue';

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
  /** what to change, and on which side */
  fix: string;
}

/** How to fix what each rule finds (`check --explain`), by id. */
const FIXES: Record<string, string> = {
  VU001: 'the back-end: answer with flags exactly 0x5 (version 1 | REPLY); do not echo the request flags (NEED_REPLY) into the reply',
  VU002: 'the side that answered: send a reply only for requests that take one, or whose NEED_REPLY asked for one with REPLY_ACK negotiated',
  VU003:
    'the back-end: answer every request the spec says is answered, and every NEED_REPLY once REPLY_ACK is negotiated; a fault rule named in the finding is the cause instead',
  VU004: 'the front-end: set NEED_REPLY only once REPLY_ACK is in use (SET_PROTOCOL_FEATURES), or negotiate REPLY_ACK',
  VU005:
    "the sender: give the request its layout's size (docs of the request in vhost-user.rst); a peer of another dialect may use the code for something else (--dialect)",
  VU006: 'the sender: pass exactly the fds the request carries (one per region, one eventfd unless the NOFD bit 8 is set)',
  VU007: 'the front-end: send SET_MEM_TABLE (or ADD_MEM_REG) before SET_VRING_ADDR',
  VU008: 'the front-end: set the memory table before starting a ring; the back-end cannot read a ring it cannot translate',
  VU009:
    'the front-end: give ring addresses inside a region, in the address space the negotiation says (its own virtual addresses, or guest-physical with GPA_ADDRESSES)',
  VU010:
    'the back-end: look at the ring again when it is enabled (a kick before SET_VRING_ENABLE(1) must not be lost); or the front-end: enable before kicking',
  VU011: 'the front-end: ack only features the back-end offered in this connection',
  VU012: 'the front-end: stay within 8 regions without CONFIGURE_MEM_SLOTS, and within GET_MAX_MEM_SLOTS with it',
  VU013: "both: agree on the ring layout; a split ring's SET_VRING_BASE uses bits 0-15, a packed ring's SET_VRING_ADDR lays out the descriptor ring only",
  VU014: 'the front-end: send SET_INFLIGHT_FD after the rings are set up (after SET_VRING_BASE), as QEMU does',
  VU015: 'the sender: use a code of the spec, or tell vhostscope the dialect (--dialect) when the peers speak a private one',
  VU016: 'nothing on the wire, when the peers agree: tell vhostscope which implementation family this is with --dialect',
  VU017: 'the sender: on this channel only the requester (front-end on main, back-end on the backend channel) sends requests',
  VU018: 'the front-end: send SET_VRING_KICK for every ring it starts; a fault rule named in the finding is the cause instead',
  VU019: 'the back-end: keep its ring position across a stop; answer GET_VRING_BASE with the next avail index it would process, never a reset 0',
  VU020: 'the front-end: send SET_LOG_BASE before it acks LOG_ALL (QEMU does at the start of a migration); the back-end: refuse LOG_ALL without a log',
  VU021: 'the front-end: size the log for the highest guest address, one bit per 4 KiB page',
  VU022: 'the back-end: answer GET_VRING_BASE with where the ring is, not 0, for a ring it used',
  VU023: "the back-end: answer the source's GET_VRING_BASE with its real position; the destination front-end: resume from the value the source answered",
  VU024: "the front-end: follow SET_DEVICE_STATE_FD's transfer with CHECK_DEVICE_STATE once the pipe reached end of file",
  VU025: 'the back-end: answer quickly while dirty logging (the guest is paused for the downtime); a fault rule named in the finding is the cause instead',
  VU026: "the back-end: save or load its state faster, or the operator: raise QEMU's downtime-limit; a hold-state rule named is the cause instead",
  VU027: 'both: upgrade the rust-vmm peer past vhost 0.16 (SHMEM at bit 22), or keep bit 21 unoffered until both number it the same',
  VU028: 'the front-end: remove a region (REM_MEM_REG) before adding one that overlaps it; never put overlapping regions in one table',
  VU029: 'the front-end: do not start postcopy once CONFIGURE_MEM_SLOTS is negotiated (or negotiate it only without postcopy)',
  VU030: 'the front-end: send GET_PROTOCOL_FEATURES / SET_PROTOCOL_FEATURES only when GET_FEATURES offered bit 30 (VHOST_USER_F_PROTOCOL_FEATURES)',
  VU031:
    'the front-end: ask GET_PROTOCOL_FEATURES on every connection (a restarted back-end forgets what was set before); the back-end: take a SET_PROTOCOL_FEATURES without a GET as it comes',
  VU032: 'the sender: negotiate the feature the request needs first (the finding names it), or do not send the request',
  VU033: 'the front-end: set INBAND_NOTIFICATIONS only together with BACKEND_REQ and REPLY_ACK; the back-end: close the connection when it is set alone',
  VU034: 'the front-end: stop the rings with GET_VRING_BASE and use RESET_DEVICE (with its protocol feature) instead of the deprecated RESET_OWNER',
  VU035: 'the back-end: send nothing on the backend channel while every ring is stopped (the device is suspended for a migration or a reset)',
  VU036:
    'both: never wait for a reply on one channel while the other side waits on the other; the front-end should serve the backend channel while it waits for a main-channel reply, or the back-end not ask with NEED_REPLY while it owes one',
  VU037:
    'the back-end: map within the shared-memory region GET_SHMEM_CONFIG gave, page aligned, without overlapping a mapping; unmap exactly what one SHMEM_MAP mapped',
  VU038: 'the back-end: remove only the shared objects it added itself (SHARED_OBJECT_REMOVE is for the owner)',
  VU039:
    'the back-end: switch to the new call fd as soon as it reads SET_VRING_CALL; the front-end: send SET_VRING_CALL with NEED_REPLY (REPLY_ACK) and wait for the ack before it relies on the new fd, as QEMU does since 1ba9a5220325',
  VU040:
    "the sender: keep version 1, no reserved flag bits, payloads within the channel's maximum and at most 8 fds (the proxy closes the session on such a header)",
  VU041:
    'the back-end: look at a ring when it is kicked, and again when it is enabled (a kick before SET_VRING_ENABLE must not be lost); keep serving the rings across a SET_FEATURES that only toggles LOG_ALL',
  VU043:
    'the front-end: ask the back-end again after a reconnect (GET_FEATURES, GET_PROTOCOL_FEATURES) and ack the same device it had; a back-end that came back as another implementation or version needs the guest told',
  VU044:
    "the sender: pass a message's fds in the same sendmsg as its header's first byte; a receiver that reads the header with its fds and the payload without (QEMU, libvhost-user) loses fds that come later, so a peer pair that works through vhostscope (which forwards them with the header) can fail direct",
  VU045:
    "the back-end: set the region up as the spec's inflight layout says (version 1, desc_num the queue size, marks only for requests it took); the front-end: hand a restarted back-end the region it kept, unchanged",
  VU042: 'the back-end: keep its used index across a stop and a reconnect; after a ring is set up again, continue from the used index in guest memory',
  VU047:
    "the back-end: answer GET_CONFIG with as many bytes as were asked (its config space may be shorter than a newer front-end's: fill the rest, or check what it supports before it refuses); the front-end: treat a short config as the device's own size rather than failing the device",
  VU048:
    'the front-end: send SET_MEM_TABLE / ADD_MEM_REG with NEED_REPLY (REPLY_ACK) and let the guest use new memory only after the ack (without REPLY_ACK, after the reply to a later request, as QEMU 28ed5ef16384 did with GET_FEATURES); the back-end: ack a table change only once it is mapped',
  VU049:
    'the peers: agree on bit 21 before acking it (QEMU 11 and the 2026 spec: GPA_ADDRESSES; rust-vmm vhost 0.16: SHMEM); a front-end that acks it must give ring addresses as guest-physical, or not ack it',
  VU046:
    'the front-end: back guest memory with a shareable file (memory-backend-memfd, or memory-backend-file with share=on on hugetlbfs or a shared file) at least as large as every region it hands out: mmap_offset + size within the file',
};

const rule = (id: string, name: string, severity: Rule['severity'], section: string, explain: string): Rule => ({
  id,
  name,
  severity,
  section,
  explain,
  fix: FIXES[id] ?? '',
});

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
  protocolFeaturesWithoutBit30: rule(
    'VU030',
    'protocol-features-without-bit30',
    'error',
    'vhost-user.rst "Protocol features" (only when VHOST_USER_F_PROTOCOL_FEATURES is offered)',
    'GET_PROTOCOL_FEATURES or SET_PROTOCOL_FEATURES although GET_FEATURES did not offer bit 30: a back-end without protocol features does not know the request and may close the connection',
  ),
  protocolFeaturesUnasked: rule(
    'VU031',
    'protocol-features-unasked',
    'warning',
    'rust-vmm/vhost 14db3cd (field-bugs C3: cloud-hypervisor + virtiofsd hang after migration)',
    'SET_PROTOCOL_FEATURES with no GET_PROTOCOL_FEATURES before it on this connection: a back-end that keeps its REPLY_ACK state from the GET (rust-vmm before 14db3cd) never acks, and the front-end waits forever',
  ),
  requestWithoutFeature: rule(
    'VU032',
    'request-without-feature',
    'error',
    'vhost-user.rst "Message types" (each request names the feature it needs)',
    'a request sent while the feature it needs is not negotiated (GET_QUEUE_NUM without MQ, GET_INFLIGHT_FD without INFLIGHT_SHMFD, a device-state request without DEVICE_STATE, ...): the peer may not know it or may close the connection',
  ),
  inbandWithoutBackendReq: rule(
    'VU033',
    'inband-without-backend-req',
    'error',
    'vhost-user.rst VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS (needs BACKEND_REQ and REPLY_ACK)',
    'INBAND_NOTIFICATIONS set without BACKEND_REQ and REPLY_ACK: calls would travel on a backend channel that does not exist, or without the acks that keep them ordered',
  ),
  resetOwner: rule(
    'VU034',
    'reset-owner',
    'warning',
    'vhost-user.rst VHOST_USER_RESET_OWNER (deprecated)',
    'RESET_OWNER is deprecated: back-ends either ignore it or disable every ring, so what follows depends on the implementation',
  ),
  backendRequestWhileSuspended: rule(
    'VU035',
    'backend-request-while-suspended',
    'warning',
    'vhost-user.rst "Suspended device state" (field-bugs C15)',
    'a backend-channel request while every started ring was stopped: a suspended device must not act, and a front-end busy migrating or resetting may not serve the channel',
  ),
  bothSidesBlocked: rule(
    'VU036',
    'both-sides-blocked',
    'error',
    'vhost-user.rst "Back-end communication"; field-bugs C15 (IOTLB miss during SET_MEM_TABLE)',
    'each side waited for a reply from the other at the same time, the front-end on the main channel and the back-end on the backend channel, for longer than the reply timeout: a deadlock unless one side serves both channels',
  ),
  shmemMapInvalid: rule(
    'VU037',
    'shmem-map-invalid',
    'error',
    'vhost-user.rst VHOST_USER_BACKEND_SHMEM_MAP / SHMEM_UNMAP (2026)',
    'a SHMEM_MAP outside its shared-memory region, not page aligned or over another mapping, or a SHMEM_UNMAP that is not exactly one earlier mapping: the front-end refuses it or maps the wrong memory',
  ),
  sharedObjectNotOwner: rule(
    'VU038',
    'shared-object-not-owner',
    'error',
    'vhost-user.rst VHOST_USER_BACKEND_SHARED_OBJECT_REMOVE (2026: owner only)',
    'a back-end removed a shared object another back-end added: the owner still hands it out, and its users lose it',
  ),
  callOnReplacedFd: rule(
    'VU039',
    'call-on-replaced-fd',
    'warning',
    'QEMU 1ba9a5220325 "make vhost_set_vring_file() synchronous"; virtiofsd #101, #133, #213 (field-bugs C2)',
    'the back-end signalled a call fd the front-end had already replaced with SET_VRING_CALL, after the back-end had answered a later request: the interrupt goes where nobody waits for it, and the guest can hang',
  ),
  headerInvalid: rule(
    'VU040',
    'header-invalid',
    'error',
    'vhost-user.rst "Header"; rust-vmm vhost message.rs (version 1, reserved flags 0, size within the maximum)',
    'a header no peer accepts: another version, reserved flag bits, a size beyond the maximum, or more than 8 fds',
  ),
  kickWithoutProgress: rule(
    'VU041',
    'kick-without-progress',
    'warning',
    'rust-vmm/vhost#247 (kick lost before SET_VRING_ENABLE), rust-vmm/vhost 7f326dd (SET_FEATURES stopped the rings); field cases C1, C5 (needs --rings)',
    'a kick made requests available and the proxy saw no progress on that ring (no call, no used-index change at a later kick or call) for longer than the reply timeout: a kick the back-end lost, a ring it stopped serving, or an interrupt that went nowhere; a request that legitimately blocks that long (a FUSE lock wait) looks the same',
  ),
  usedIndexRegressed: rule(
    'VU042',
    'used-index-regressed',
    'error',
    'rust-vmm/vhost 958cdec / 8a4ba9d (used index after a guest reboot); field case C6 (needs --rings)',
    "the ring's used index went backwards with no re-initialisation of the ring in between: the back-end reset its position, and the driver sees old completions again or waits for ones that never come",
  ),
  handshakeChangedAfterReconnect: rule(
    'VU043',
    'handshake-changed-after-reconnect',
    'warning',
    'field cases C3 (rust-vmm/vhost 14db3cd), C9; catalogue R71',
    'after the back-end ended a session and the front-end came back, it acked other features or protocol features than before: the device the guest drives is not the one the back-end now serves',
  ),
  fdsAfterHeader: rule(
    'VU044',
    'fds-after-header',
    'warning',
    'vhost-user.rst (2026 text) "Communication": ancillary data travels with the first byte of the header',
    "a message's fds arrived with a later byte than its header's first: the sender passed them in another sendmsg (with the payload, or after it)",
  ),
  inflightRegionInconsistent: rule(
    'VU045',
    'inflight-region-inconsistent',
    'error',
    'vhost-user.rst "Inflight I/O tracking"; field case C9 (catalogue R52; needs --rings)',
    'the inflight region holds what no back-end writes: another version than 1, a desc_num other than the queue size, or requests marked in flight in a region never set up; a restarted back-end resubmits from it, so it resubmits the wrong requests or none',
  ),
  regionFdUnmappable: rule(
    'VU046',
    'region-fd-unmappable',
    'error',
    'vhost-user.rst "Memory region description" (each region with its fd, mapped at mmap_offset); field case Kata #1690 (catalogue R22)',
    "a memory region's fd is one no back-end can map (a socket, a pipe, an eventfd), or the file ends before the region does (mmap_offset + size beyond its size): the back-end's mmap fails and it ends the session, or its first access past the end faults",
  ),
  configRefused: rule(
    'VU047',
    'config-refused',
    'error',
    'vhost-user.rst "VHOST_USER_GET_CONFIG"; libvhost-user vu_get_config (a zero-size reply is its error), QEMU vhost_user_get_config ("Received bad msg size")',
    'the back-end answered GET_CONFIG with another size than asked, a zero-size payload being its error: QEMU fails the device on any such reply (seen: QEMU 11.1 asks vhost-user-gpu 10 for 20 bytes of virtio-gpu config, it refuses, and the guest has no GPU)',
  ),
  descriptorOutsideAckedMemory: rule(
    'VU048',
    'descriptor-outside-acked-memory',
    'error',
    'vhost-user.rst "REPLY_ACK" and "Memory region description"; field case C12, QEMU 28ed5ef16384 (catalogue R32; needs --rings)',
    'a kick made a buffer available in guest memory that a SET_MEM_TABLE or ADD_MEM_REG had just added and the back-end had not acknowledged yet (no ack, no later reply): it may not have mapped it, and fails the request or the session',
  ),
  gpaAddressesIgnored: rule(
    'VU049',
    'gpa-addresses-ignored',
    'error',
    'vhost-user.rst (2026 text) "VHOST_USER_PROTOCOL_F_GPA_ADDRESSES"; field case C16 (catalogue R05, R31)',
    "protocol feature 21 is negotiated, which the 2026 spec and QEMU 11 call GPA_ADDRESSES (ring addresses are guest-physical), yet the front-end's SET_VRING_ADDR gives its own virtual addresses: it numbers bit 21 otherwise (rust-vmm vhost 0.16's SHMEM) or acked a bit it does not implement; a back-end that follows the spec looks the rings up in the wrong address space",
  ),
} as const satisfies Record<string, Rule>;

export type RuleKey = keyof typeof RULES;
export const ALL_RULES: Rule[] = Object.values(RULES);

/** A rule by id (VU010) or name (kick-before-enable), any case. */
export function findRule(idOrName: string): Rule | undefined {
  const k = idOrName.toLowerCase();
  return ALL_RULES.find((r) => r.id.toLowerCase() === k || r.name === k);
}

/** What `check --explain` prints: what the rule finds and why it matters, its source, how to fix it. */
export function explainRule(r: Rule): string {
  const field = catalogueOf(r.id);
  return `${r.id} ${r.name} (${r.severity})${field.length ? ` [catalogue ${field.join(', ')}]` : ''}\n  what:   ${r.explain}\n  source: ${r.section}\n  fix:    ${r.fix}\n`;
}
