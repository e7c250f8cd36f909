/**
 * VU043 (catalogue R71): the handshake after a reconnect against the one before it. When the
 * back-end ended a session and the front-end came back, it should ack what it acked before: a
 * front-end that sets other features (or protocol features it remembered from another back-end)
 * resumes a device the back-end no longer describes (field cases C3, C9).
 */
import { protocolFeatureNames, Request, VirtioFeature, virtioFeatureNames } from '../../protocol';
import { endedByBackend, type MessageEvent, type SessionEndEvent } from '../../events/events';
import { RULES } from '../rules';
import type { AddFinding, Handshake, SessionState } from './state';

const LOG_ALL = 1n << BigInt(VirtioFeature.LOG_ALL);

/** What `s` acked, when the back-end ended it (LOG_ALL aside: a migration toggles it). */
export function handshakeAtEnd(s: SessionState, e: SessionEndEvent): Handshake | undefined {
  if (!endedByBackend(e)) return undefined;
  const n = s.negotiation;
  return {
    session: e.session,
    ...(n.ackedFeatures !== undefined ? { features: n.ackedFeatures & ~LOG_ALL } : {}),
    ...(n.protocolFeatures !== undefined ? { protocol: n.protocolFeatures } : {}),
  };
}

const diff = (before: bigint, now: bigint, names: (v: bigint) => string[]): string => {
  const parts = [...names(now & ~before).map((n) => `+${n}`), ...names(before & ~now).map((n) => `-${n}`)];
  return parts.join(' ');
};

/** On the first SET_FEATURES and SET_PROTOCOL_FEATURES of a session that follows a reconnect. */
export function reconnectRules(s: SessionState, e: MessageEvent, add: AddFinding): void {
  const before = s.reconnectOf;
  const d = e.decoded;
  if (!before || d.reply || e.sender !== 'frontend') return;
  if (d.request === Request.SET_FEATURES && s.negotiation.ackedFeatures === undefined && before.features !== undefined) {
    const now = (d.payload as { features: bigint }).features & ~LOG_ALL;
    if (now !== before.features)
      add(
        RULES.handshakeChangedAfterReconnect,
        `SET_FEATURES after the reconnect: ${diff(before.features, now, (v) => virtioFeatureNames(v))} against session ${before.session}`,
      );
  }
  if (d.request === Request.SET_PROTOCOL_FEATURES && s.negotiation.protocolFeatures === undefined && before.protocol !== undefined) {
    const now = (d.payload as { protocolFeatures: bigint }).protocolFeatures;
    if (now !== before.protocol)
      add(
        RULES.handshakeChangedAfterReconnect,
        `SET_PROTOCOL_FEATURES after the reconnect: ${diff(before.protocol, now, protocolFeatureNames)} against session ${before.session}`,
      );
  }
}
