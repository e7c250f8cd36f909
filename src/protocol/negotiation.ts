/**
 * What one session has negotiated so far, as far as the protocol rules need it: the acked
 * virtio features, the protocol features in use and the postcopy state. Pure state,
 * updated from the messages of the main channel.
 */
import { hasBit, ProtocolFeature, VirtioFeature } from './features';
import { isReply } from './header';
import { Request } from './requests';

export interface Negotiation {
  /** virtio features offered by the back-end (GET_FEATURES reply) */
  offeredFeatures?: bigint;
  /** virtio features the front-end set (SET_FEATURES) */
  ackedFeatures?: bigint;
  /** protocol features offered (GET_PROTOCOL_FEATURES reply) */
  offeredProtocolFeatures?: bigint;
  /** protocol features in use (SET_PROTOCOL_FEATURES) */
  protocolFeatures?: bigint;
  /** after POSTCOPY_LISTEN: SET_MEM_TABLE and ADD_MEM_REG are answered with their layout */
  postcopyListening: boolean;
}

export function newNegotiation(): Negotiation {
  return { postcopyListening: false };
}

export function protocolFeatureInUse(n: Negotiation, bit: number): boolean {
  return hasBit(n.protocolFeatures, bit);
}

/** Updates `n` with one main-channel message (request or reply); returns `n`. */
export function applyMainMessage(n: Negotiation, request: number, flags: number, payload: Buffer): Negotiation {
  const u64 = payload.length >= 8 ? payload.readBigUInt64LE(0) : undefined;
  if (isReply(flags)) {
    if (request === Request.GET_FEATURES && u64 !== undefined) n.offeredFeatures = u64;
    if (request === Request.GET_PROTOCOL_FEATURES && u64 !== undefined) n.offeredProtocolFeatures = u64;
    return n;
  }
  switch (request) {
    case Request.SET_FEATURES:
      if (u64 !== undefined) n.ackedFeatures = u64;
      break;
    case Request.SET_PROTOCOL_FEATURES:
      if (u64 !== undefined) n.protocolFeatures = u64;
      break;
    case Request.POSTCOPY_LISTEN:
      n.postcopyListening = true;
      break;
    case Request.POSTCOPY_END:
      n.postcopyListening = false;
      break;
  }
  return n;
}

/**
 * Whether `request` (a front-end request, or the reply to one) stops a vring: GET_VRING_BASE, and
 * GET_VRING_BASE_SKIP_DRAIN once its feature is in use (45 is something else in crosvm's 2023 dialect).
 */
export function stopsVring(n: Negotiation, request: number): boolean {
  return (
    request === Request.GET_VRING_BASE || (request === Request.GET_VRING_BASE_SKIP_DRAIN && protocolFeatureInUse(n, ProtocolFeature.GET_VRING_BASE_SKIP_DRAIN))
  );
}

export const replyAckInUse = (n: Negotiation): boolean => protocolFeatureInUse(n, ProtocolFeature.REPLY_ACK);

/**
 * Whether the feature a request needs (its RequestSpec gate: a protocol feature or a virtio
 * feature by name) is negotiated. Undefined when the gate is not one of those (the GPU socket's
 * own features), or when nothing was negotiated yet and `assumeNone` is not set.
 */
export function gateOpen(n: Negotiation, gate: string, assumeNone = false): boolean | undefined {
  if (gate in ProtocolFeature) {
    if (n.protocolFeatures === undefined && !assumeNone) return undefined;
    return hasBit(n.protocolFeatures, ProtocolFeature[gate as keyof typeof ProtocolFeature]);
  }
  if (gate in VirtioFeature) {
    if (n.ackedFeatures === undefined && !assumeNone) return undefined;
    return hasBit(n.ackedFeatures, VirtioFeature[gate as keyof typeof VirtioFeature]);
  }
  return undefined;
}
