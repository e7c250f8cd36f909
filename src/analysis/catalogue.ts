/**
 * The field catalogue (R01-R71): the checks a vhost-user debugger needs, derived from the spec
 * and from the interop bugs users hit (field-bugs C1-C16), and which rules of `check` implement
 * each. An entry no rule implements yet says why (`gap`); rules keep their stable VU ids.
 */
export interface CatalogueEntry {
  id: string;
  /** what must hold */
  what: string;
  /** where it comes from: the spec, or the field case */
  source: string;
  /** the rules that check it */
  rules: string[];
  /** what of it is not checked, and why */
  gap?: string;
}

const entry = (id: string, what: string, source: string, rules: string[], gap?: string): CatalogueEntry => ({
  id,
  what,
  source,
  rules,
  ...(gap ? { gap } : {}),
});

export const CATALOGUE: readonly CatalogueEntry[] = [
  entry('R01', 'GET/SET_PROTOCOL_FEATURES only when GET_FEATURES offered bit 30', 'spec', ['VU030']),
  entry('R02', 'SET_PROTOCOL_FEATURES within the offered set, and after a GET on this connection', 'spec; C3 (rust-vmm/vhost 14db3cd)', ['VU011', 'VU031']),
  entry('R03', 'each request only with the feature it needs; no POSTCOPY_* with CONFIGURE_MEM_SLOTS', 'spec', ['VU032', 'VU029']),
  entry('R04', 'INBAND_NOTIFICATIONS only with BACKEND_REQ and REPLY_ACK', 'spec', ['VU033']),
  entry('R05', "each implementation family's numbering recognised (bits 20-22, crosvm's and others' request codes)", 'C16', [
    'VU015',
    'VU016',
    'VU027',
    'VU049',
  ]),
  entry(
    'R06',
    "the back-end's ring writes follow the negotiated ring features (EVENT_IDX, IN_ORDER, packed)",
    'spec',
    [],
    'needs every used-ring write; the proxy reads the rings at notifications only',
  ),
  entry(
    'R07',
    'rings are enabled without PROTOCOL_FEATURES; a SET_FEATURES that only toggles LOG_ALL must not stop ring progress',
    'spec; C5 (rust-vmm/vhost 7f326dd)',
    ['VU010', 'VU041'],
  ),
  entry('R08', 'RESET_OWNER is deprecated', 'spec', ['VU034']),
  entry('R10', 'every expected reply arrives in time (live: proxy --reply-watchdog)', 'spec; C3, C11', ['VU003', 'VU025']),
  entry('R11', 'a reply has the REPLY flag, the request code, a size for its type (GET_CONFIG: the size asked) and the fds bit 8 says', 'spec', [
    'VU001',
    'VU002',
    'VU005',
    'VU006',
    'VU047',
  ]),
  entry('R12', 'no reply where none is expected; NEED_REPLY only with REPLY_ACK', 'spec; C2, C16', ['VU002', 'VU004']),
  entry('R13', 'headers: version 1, reserved bits 0, size within the maximum', 'rust-vmm vhost message.rs', ['VU040', 'VU005']),
  entry('R20', 'the fds each request carries (one per region, one eventfd unless NOFD, ...)', 'spec', ['VU006']),
  entry('R21', "fds ride with the header's first byte", 'spec 2026', ['VU044']),
  entry(
    'R22',
    'memory-region fds are shareable',
    'Kata #1690',
    ['VU046'],
    "a private mapping of a shareable file (memory-backend-memfd with share=off) cannot be seen from the fd: only the fd's kind and size are checked",
  ),
  entry('R30', 'regions never overlap', 'spec 2026', ['VU028']),
  entry('R31', 'ring addresses inside the regions, in the address space the negotiation says', 'spec', ['VU009', 'VU049']),
  entry('R32', 'no descriptor points outside the last acknowledged memory table', 'C12', ['VU048']),
  entry('R33', 'at most 8 regions without CONFIGURE_MEM_SLOTS, GET_MAX_MEM_SLOTS with it', 'spec', ['VU012']),
  entry('R40', 'per-ring state machine; a kick while stopped or disabled; a kick the back-end never processes', 'C1 (rust-vmm/vhost#247)', [
    'VU008',
    'VU010',
    'VU018',
    'VU041',
  ]),
  entry('R41', 'after SET_VRING_KICK on a restore with avail != used, a kick is injected', 'spec RFC 2026-04; C1', [], 'needs the ring read at SET_VRING_KICK'),
  entry('R42', 'a signal on a call fd after SET_VRING_CALL replaced it is a lost interrupt', 'C2 (QEMU 1ba9a5220325)', ['VU039']),
  entry(
    'R43',
    'SET_VRING_BASE after a migration or reconnect resumes from the last GET_VRING_BASE',
    'C6, C9',
    ['VU019', 'VU022', 'VU023'],
    'a reconnect without a stop (the back-end crashed) resumes from the used index, which needs the ring read',
  ),
  entry(
    'R44',
    'a suspended device (all rings stopped) does nothing',
    'spec; C15',
    ['VU035'],
    'calls after a stop are not seen: the proxy ends its relay of a stopped ring',
  ),
  entry('R45', 'GET_VRING_BASE latency, drain or skip-drain', 'C11', ['VU025']),
  entry(
    'R46',
    'the used index never regresses; after re-initialisation it continues from the guest',
    'C6',
    ['VU042', 'VU019'],
    "the first used index after a re-initialisation is not compared with the guest's",
  ),
  entry(
    'R50',
    'with LOG_ALL, every used-ring write has its dirty bit',
    'spec',
    ['VU020', 'VU021'],
    "each write's bit is not checked (the dirty log is read at the stop)",
  ),
  entry('R51', 'device state: direction and phase, reply bits, CHECK_DEVICE_STATE after EOF', 'spec', ['VU024', 'VU026']),
  entry(
    'R52',
    'inflight region: version 1, desc_num == queue size, used_idx coherent on reconnect',
    'spec; C9',
    ['VU045'],
    "used_idx against the ring's is not compared",
  ),
  entry('R60', 'backend channel: both sides blocked (live: proxy --reply-watchdog)', 'C15', ['VU036']),
  entry('R61', 'SHMEM_MAP within GET_SHMEM_CONFIG, page aligned, not overlapping; UNMAP matches a map', 'spec 2026', ['VU037']),
  entry('R62', 'SHARED_OBJECT_REMOVE only by its owner', 'spec 2026', ['VU038']),
  entry(
    'R70',
    'reconnect lifecycle: a front-end that never reconnects',
    'C7, C8',
    [],
    'live only, not a rule: proxy --reconnect-watchdog S tells a device left without a working session after its back-end ended one (a recording cannot tell a reconnect that never came from one that came after it ended)',
  ),
  entry('R71', 'the handshake after a reconnect against the one before it', 'C3, C9', ['VU043']),
];

/** A catalogue entry by id (R42), any case. */
export function findCatalogueEntry(id: string): CatalogueEntry | undefined {
  return CATALOGUE.find((c) => c.id.toLowerCase() === id.toLowerCase());
}

/** The catalogue entries a rule implements. */
export function catalogueOf(ruleId: string): string[] {
  return CATALOGUE.filter((c) => c.rules.includes(ruleId)).map((c) => c.id);
}

/** One line per entry: what, the rules that check it, what is missing. */
export function catalogueText(): string {
  return CATALOGUE.map(
    (c) => `${c.id} ${c.what} [${c.source}]: ${c.rules.length ? c.rules.join(', ') : 'not checked'}${c.gap ? ` (not yet: ${c.gap})` : ''}\n`,
  ).join('');
}
