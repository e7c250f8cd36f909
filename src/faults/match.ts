/** Does a message or a notification match a compiled reference? Pure. */
import { decodeMessage, HEADER_SIZE, type ChannelKind, type Side } from '../protocol';
import type { CompiledMatch } from './compile';
import type { NotificationMatch } from './rules';

export interface MessageFacts {
  channel: ChannelKind;
  sender: Side;
  request: number;
  reply: boolean;
  raw: Buffer;
}

/** The vring index a payload is about, for the layouts that start with one. */
export function vringOf(f: MessageFacts): number | undefined {
  const p = decodeMessage(f.channel, f.raw, f.sender).payload as { index?: unknown } | undefined;
  return typeof p?.index === 'number' ? p.index : undefined;
}

/** Everything but nth (which counts per session: see the fault runner). */
export function matchesMessage(m: CompiledMatch, f: MessageFacts): boolean {
  if (m.channel !== f.channel || m.code !== f.request || m.reply !== f.reply || m.from !== f.sender) return false;
  if (m.vring !== undefined && vringOf(f) !== m.vring) return false;
  if (m.bits !== undefined) {
    if (f.raw.length < HEADER_SIZE + 8) return false;
    if ((f.raw.readBigUInt64LE(HEADER_SIZE) & m.bits) !== m.bits) return false;
  }
  return true;
}

export function matchesNotification(m: NotificationMatch, kind: string, vring: number): boolean {
  return m.notification === kind && (m.vring === undefined || m.vring === vring);
}
