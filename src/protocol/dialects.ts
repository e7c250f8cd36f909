/**
 * Request codes that mean different things in different implementations ("dialects"), and how
 * a message's meaning is decided: by what the session negotiated, by the payload where that is
 * not enough, by a `--dialect` the user names for recordings of private builds, and otherwise
 * shown as ambiguous with every meaning (field notes #25, #26; crosvm's vmm_vhost history).
 *
 * - standard: QEMU's docs/interop/vhost-user.rst (and rust-vmm, libvhost-user, DPDK).
 * - crosvm: current google/crosvm third_party/vmm_vhost (GET_SHMEM_CONFIG = 44 as the
 *   standard, no SHARED_OBJECT, back-end requests 1002-1007 of its own).
 * - crosvm-2024: crosvm before Dec 2025 ("Update GET_SHMEM_CONFIG messages"): the front-end's
 *   GET_SHARED_MEMORY_REGIONS = 1004, the back-end's SHMEM_MAP = 1000 and SHMEM_UNMAP = 1001.
 * - crosvm-2023: older crosvm: GET_SHARED_MEMORY_REGIONS = 41, SLEEP 42, WAKE 43, SNAPSHOT 44,
 *   RESTORE 45.
 * - yandex: yc-libvhost-server, whose 44 is GET_VRING_BASE_SKIP_DRAIN (a GET_VRING_BASE that
 *   does not wait for in-flight requests).
 */
import type { ChannelKind } from './header';
import { ProtocolFeature } from './features';
import { protocolFeatureInUse, type Negotiation } from './negotiation';
import type { PayloadKind } from './payloads';
import { requestSpec, type RequestSpec } from './requests';

export const DIALECTS = ['standard', 'crosvm', 'crosvm-2024', 'crosvm-2023', 'yandex'] as const;
export type Dialect = (typeof DIALECTS)[number];

/** One meaning of a code that is not (or not only) the standard one. */
interface Variant {
  channel: ChannelKind;
  code: number;
  dialects: readonly Dialect[];
  name: string;
  doc: string;
  request: PayloadKind;
  reply?: PayloadKind;
  alwaysReply?: boolean;
}

const VARIANTS: readonly Variant[] = [
  {
    channel: 'main',
    code: 41,
    dialects: ['crosvm-2023'],
    name: 'GET_SHARED_MEMORY_REGIONS',
    doc: 'crosvm (2023): list the shared-memory regions.',
    request: 'none',
    reply: 'opaque',
    alwaysReply: true,
  },
  { channel: 'main', code: 42, dialects: ['crosvm-2023'], name: 'SLEEP', doc: 'crosvm (2023): stop the queue handlers, keep their state.', request: 'none' },
  { channel: 'main', code: 43, dialects: ['crosvm-2023'], name: 'WAKE', doc: 'crosvm (2023): restart the queue handlers.', request: 'none' },
  {
    channel: 'main',
    code: 44,
    dialects: ['crosvm-2023'],
    name: 'SNAPSHOT',
    doc: 'crosvm (2023): ask for the serialized device state.',
    request: 'none',
    reply: 'opaque',
    alwaysReply: true,
  },
  {
    channel: 'main',
    code: 44,
    dialects: ['yandex'],
    name: 'GET_VRING_BASE_SKIP_DRAIN',
    doc: 'yc-libvhost-server: GET_VRING_BASE without draining in-flight requests.',
    request: 'vringState',
    reply: 'vringState',
    alwaysReply: true,
  },
  { channel: 'main', code: 45, dialects: ['crosvm-2023'], name: 'RESTORE', doc: 'crosvm (2023): restore a serialized device state.', request: 'opaque' },
  {
    channel: 'main',
    code: 1004,
    dialects: ['crosvm-2024'],
    name: 'GET_SHARED_MEMORY_REGIONS',
    doc: 'crosvm (to 2025): list the shared-memory regions.',
    request: 'none',
    reply: 'opaque',
    alwaysReply: true,
  },
  {
    channel: 'backend',
    code: 1000,
    dialects: ['crosvm-2024'],
    name: 'SHMEM_MAP',
    doc: 'crosvm (to 2025): map an fd into a shared-memory region.',
    request: 'opaque',
  },
  { channel: 'backend', code: 1001, dialects: ['crosvm-2024'], name: 'SHMEM_UNMAP', doc: 'crosvm (to 2025): unmap a shared-memory range.', request: 'opaque' },
];

/** The protocol feature whose negotiation makes a code's standard meaning certain. */
const STANDARD_GATE: Record<number, number> = {
  41: ProtocolFeature.SHARED_OBJECT,
  42: ProtocolFeature.DEVICE_STATE,
  43: ProtocolFeature.DEVICE_STATE,
  44: ProtocolFeature.SHMEM,
  45: ProtocolFeature.GET_VRING_BASE_SKIP_DRAIN,
};

export interface Resolution {
  /** the meaning used to decode (the standard one when ambiguous and it exists) */
  spec?: RequestSpec;
  /** the dialect that meaning comes from, when not the standard */
  dialect?: Dialect;
  /** every meaning the code has when what was negotiated does not decide it, "NAME (dialect)" */
  ambiguous?: string[];
  /** why this meaning: a negotiated feature, the payload, the override */
  because?: string;
}

function variantSpec(v: Variant): RequestSpec {
  return {
    code: v.code,
    name: v.name,
    doc: v.doc,
    request: v.request,
    requestFds: [0, 8],
    reply: v.reply ?? 'ack',
    replyFds: [0, 8],
    alwaysReply: v.alwaysReply ?? false,
  };
}

export interface DialectContext {
  negotiation?: Negotiation;
  /** the user's --dialect: wins over everything but a feature that makes the standard certain */
  dialect?: Dialect;
  /** the request's payload size (a reply's meaning is decided from its request's) */
  payloadSize?: number;
}

/** What `code` on `channel` means in this session. */
export function resolveRequest(channel: ChannelKind, code: number, ctx: DialectContext = {}): Resolution {
  const standard = requestSpec(channel, code);
  const variants = VARIANTS.filter((v) => v.channel === channel && v.code === code);
  if (!variants.length) return { spec: standard };
  const gate = channel === 'main' ? STANDARD_GATE[code] : undefined;
  if (standard && gate !== undefined && ctx.negotiation && protocolFeatureInUse(ctx.negotiation, gate))
    return { spec: standard, because: 'its protocol feature is negotiated' };
  if (ctx.dialect) {
    const v = variants.find((x) => x.dialects.includes(ctx.dialect!));
    if (v) return { spec: variantSpec(v), dialect: ctx.dialect, because: `--dialect ${ctx.dialect}` };
    if (standard) return { spec: standard, because: `--dialect ${ctx.dialect}` };
  }
  if (!standard && variants.length === 1)
    return { spec: variantSpec(variants[0]), dialect: variants[0].dialects[0], because: 'no standard request has this code' };
  // GET_VRING_BASE_SKIP_DRAIN carries a vring state; crosvm's RESTORE a serialized device
  if (code === 45 && channel === 'main' && standard && ctx.payloadSize === 8) return { spec: standard, because: 'an 8-byte payload (a vring state)' };
  // yc-libvhost-server's 44 carries a vring index; GET_SHMEM_CONFIG and SNAPSHOT carry nothing
  if (code === 44 && channel === 'main' && ctx.payloadSize === 8) {
    const y = variants.find((v) => v.dialects.includes('yandex'))!;
    return { spec: variantSpec(y), dialect: 'yandex', because: 'an 8-byte payload (a vring state)' };
  }
  const meanings = [...(standard ? [`${standard.name} (standard)`] : []), ...variants.map((v) => `${v.name} (${v.dialects.join(', ')})`)];
  return { spec: standard ?? variantSpec(variants[0]), ambiguous: meanings, because: 'the negotiated features do not decide it' };
}
