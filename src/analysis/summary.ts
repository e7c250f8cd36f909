/**
 * A recording summarised per session: peers, negotiated features by name, message and
 * notification counts, duration. Pure over the records (what `vhostscope info` prints).
 */
import {
  applyMainMessage,
  HEADER_SIZE,
  messageIsReply,
  newNegotiation,
  parseHeader,
  protocolFeatureNames,
  requestName,
  virtioFeatureNames,
  type DeviceType,
  type Negotiation,
} from '../protocol';
import type { PeerIdentity } from '../events/events';
import { deviceOf, recordingDevices } from '../recording/devices';
import { unpackBatch, type HeaderRecord, type RecordingRecord } from '../recording/records';

export interface SessionSummary {
  session: number;
  listen: string;
  connect: string;
  interpose: boolean;
  observe?: boolean;
  peers: { listen?: PeerIdentity; connect?: PeerIdentity };
  startNs: bigint;
  endNs?: bigint;
  durationS?: number;
  endReason?: string;
  messages: { 'F>B': number; 'B>F': number };
  fds: number;
  requests: Record<string, number>;
  features: { offered?: string[]; acked?: string[]; protocolOffered?: string[]; protocolInUse?: string[] };
  /** the virtio device, inferred (or --device) */
  device?: DeviceType;
  /** what the device was inferred from */
  deviceReason?: string;
  /** per vring and kind: relayed notifications and the sum of their counts */
  notifications: Record<string, { events: number; count: number }>;
  droppedNotifications: number;
  /** fault rules that acted in this session: "id (text)" -> how many times, by action */
  faults: Record<string, Record<string, number>>;
}

export interface RecordingSummary {
  headers: HeaderRecord[];
  sessions: SessionSummary[];
}

function names(n: Negotiation, device: DeviceType): SessionSummary['features'] {
  const f: SessionSummary['features'] = {};
  if (n.offeredFeatures !== undefined) f.offered = virtioFeatureNames(n.offeredFeatures, device);
  if (n.ackedFeatures !== undefined) f.acked = virtioFeatureNames(n.ackedFeatures, device);
  if (n.offeredProtocolFeatures !== undefined) f.protocolOffered = protocolFeatureNames(n.offeredProtocolFeatures);
  if (n.protocolFeatures !== undefined) f.protocolInUse = protocolFeatureNames(n.protocolFeatures);
  return f;
}

/** `device`: name feature bits by this device in every session (--device); by default each session's own, inferred. */
export function summarize(records: RecordingRecord[], device?: DeviceType): RecordingSummary {
  const devices = recordingDevices(records, device);
  const headers: HeaderRecord[] = [];
  const sessions = new Map<number, SessionSummary & { negotiation: Negotiation }>();
  for (const r of records) {
    if (r.type === 'header') headers.push(r);
    else if (r.type === 'session-start') {
      sessions.set(r.session, {
        session: r.session,
        listen: r.listen,
        connect: r.connect,
        interpose: r.interpose,
        ...(r.observe ? { observe: true } : {}),
        peers: r.peers,
        startNs: r.ts,
        messages: { 'F>B': 0, 'B>F': 0 },
        fds: 0,
        requests: {},
        features: {},
        notifications: {},
        droppedNotifications: 0,
        faults: {},
        negotiation: newNegotiation(),
      });
    } else if (r.type === 'message') {
      const s = sessions.get(r.session);
      if (!s) continue;
      const fwd = r.forwarded ?? r.raw;
      const h = parseHeader(fwd);
      // what the backend offered is what it sent; what the frontend saw may have been masked
      if (r.channel === 'main') applyMainMessage(s.negotiation, h.request, h.flags, r.raw.subarray(HEADER_SIZE));
      s.messages[r.dir]++;
      s.fds += r.fds.length;
      const name = `${r.channel === 'main' ? '' : `${r.channel}:`}${requestName(r.channel, h.request)}`;
      if (!messageIsReply(r.channel, h.flags, r.dir === 'F>B' ? 'frontend' : 'backend')) s.requests[name] = (s.requests[name] ?? 0) + 1;
    } else if (r.type === 'notify') {
      const s = sessions.get(r.session);
      if (!s) continue;
      for (const e of unpackBatch(r)) {
        const key = `vring ${e.vring} ${e.kind}`;
        const n = (s.notifications[key] ??= { events: 0, count: 0 });
        n.events++;
        n.count += e.count;
      }
    } else if (r.type === 'fault') {
      const s = sessions.get(r.session);
      if (!s) continue;
      const f = (s.faults[`${r.rule} (${r.text})`] ??= {});
      f[r.action] = (f[r.action] ?? 0) + 1;
    } else if (r.type === 'session-end') {
      const s = sessions.get(r.session);
      if (!s) continue;
      s.endNs = r.ts;
      s.durationS = Number(r.ts - s.startNs) / 1e9;
      s.endReason = r.reason;
      s.droppedNotifications = r.droppedNotifications;
    }
  }
  return {
    headers,
    sessions: [...sessions.values()].map(({ negotiation, ...s }) => {
      const d = devices.get(s.session);
      return { ...s, ...(d ? { device: d.device, deviceReason: d.reason } : {}), features: names(negotiation, deviceOf(devices, s.session)) };
    }),
  };
}
