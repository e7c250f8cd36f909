/**
 * Rules on what the peers negotiate and the requests it allows (VU030-VU034): protocol features
 * asked and set as the spec orders, each request only once the feature it needs is in use, and
 * the deprecated RESET_OWNER. Runs on requests the far side received, before the negotiation
 * takes them in.
 */
import { gateOpen, hasBit, ProtocolFeature, protocolFeatureNames, Request, requestSpec, VirtioFeature } from '../../protocol';
import type { MessageEvent } from '../../events/events';
import { RULES } from '../rules';
import type { AddFinding, SessionState } from './state';

/** INBAND_NOTIFICATIONS needs both of these (spec). */
const INBAND_NEEDS = [ProtocolFeature.BACKEND_REQ, ProtocolFeature.REPLY_ACK];

export function negotiationRules(s: SessionState, e: MessageEvent, add: AddFinding): void {
  const d = e.decoded;
  const requester = e.channel === 'main' ? 'frontend' : 'backend';
  if (d.reply || e.sender !== requester || e.channel === 'gpu') return;
  // the handshake is in this recording (not an attach half-way): what was never set is not in use
  const fromTheStart = s.offered !== undefined;
  if (e.channel === 'main') {
    const isProtocolRequest = d.request === Request.GET_PROTOCOL_FEATURES || d.request === Request.SET_PROTOCOL_FEATURES;
    if (isProtocolRequest && fromTheStart && !hasBit(s.offered, VirtioFeature.PROTOCOL_FEATURES))
      add(RULES.protocolFeaturesWithoutBit30, `${d.name}, but GET_FEATURES offered 0x${s.offered?.toString(16)} (no bit 30)`);
    if (d.request === Request.SET_PROTOCOL_FEATURES) {
      if (fromTheStart && s.offeredProtocol === undefined)
        add(RULES.protocolFeaturesUnasked, 'SET_PROTOCOL_FEATURES with no GET_PROTOCOL_FEATURES on this connection');
      const set = (d.payload as { protocolFeatures?: bigint }).protocolFeatures;
      const missing = INBAND_NEEDS.filter((b) => !hasBit(set, b));
      if (hasBit(set, ProtocolFeature.INBAND_NOTIFICATIONS) && missing.length)
        add(RULES.inbandWithoutBackendReq, `INBAND_NOTIFICATIONS set without ${missing.map((b) => protocolFeatureNames(1n << BigInt(b))[0]).join(' and ')}`);
    }
    if (d.request === Request.RESET_OWNER) add(RULES.resetOwner, 'RESET_OWNER (deprecated)');
    if (d.request === Request.SET_VRING_ENABLE && fromTheStart && !hasBit(s.offered, VirtioFeature.PROTOCOL_FEATURES))
      add(RULES.requestWithoutFeature, 'SET_VRING_ENABLE needs PROTOCOL_FEATURES (bit 30), which GET_FEATURES did not offer');
  }
  // a code whose meaning a dialect decides follows that dialect's rules, not the spec's gates
  if (d.dialect || d.ambiguous) return;
  const gate = requestSpec(e.channel, d.request)?.gate;
  // SHMEM's requests with bit 21 as rust-vmm vhost 0.16 numbers it: VU027 says so
  if (gate === 'SHMEM' && hasBit(s.negotiation.protocolFeatures, ProtocolFeature.GPA_ADDRESSES)) return;
  if (gate && gateOpen(s.negotiation, gate, fromTheStart) === false) add(RULES.requestWithoutFeature, `${d.name} needs ${gate}, which is not negotiated`);
}
