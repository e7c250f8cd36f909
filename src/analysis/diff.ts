/**
 * Aligns the message sequences of two sessions (longest common subsequence over "direction,
 * channel, request, reply") and reports insertions, deletions and changed fields. Fields that
 * legitimately differ between runs (addresses, fd numbers, timestamps) are ignored; feature
 * words are compared bit by bit by name.
 */
import { protocolFeatureNames, virtioFeatureNames, type DeviceType } from '../protocol';
import type { MessageEvent } from '../events/events';

export type DiffLine =
  | { op: 'same'; a: MessageEvent; b: MessageEvent }
  | { op: 'changed'; a: MessageEvent; b: MessageEvent; fields: string[] }
  | { op: 'only-a'; a: MessageEvent }
  | { op: 'only-b'; b: MessageEvent };

/** Payload fields that carry addresses or other per-run values. */
const VOLATILE = new Set(['desc', 'used', 'avail', 'logGuestAddr', 'userspaceAddr', 'uaddr', 'iova', 'mmapOffset']);

export const keyOf = (m: MessageEvent): string => `${m.dir} ${m.channel} ${m.decoded.name}${m.decoded.reply ? ' reply' : ''}`;

function bitsDiff(a: bigint, b: bigint, names: (v: bigint) => string[]): string {
  const on = names(b & ~a).map((n) => `+${n}`);
  const off = names(a & ~b).map((n) => `-${n}`);
  return [...off, ...on].join(' ');
}

function flatten(v: unknown, prefix: string, out: Map<string, string>): void {
  if (v === undefined) return;
  if (typeof v === 'bigint') out.set(prefix, `0x${v.toString(16)}`);
  else if (Buffer.isBuffer(v)) out.set(prefix, v.toString('hex'));
  else if (Array.isArray(v)) v.forEach((x, i) => flatten(x, `${prefix}[${i}]`, out));
  else if (v && typeof v === 'object') for (const [k, x] of Object.entries(v)) flatten(x, prefix ? `${prefix}.${k}` : k, out);
  else out.set(prefix, String(v));
}

/** The fields that differ between two aligned messages, as "field: a -> b" (features by name). */
export function changedFields(a: MessageEvent, b: MessageEvent, device: DeviceType = 'generic'): string[] {
  const out: string[] = [];
  const pa = a.decoded.payload as Record<string, unknown>;
  const pb = b.decoded.payload as Record<string, unknown>;
  if (a.decoded.layout === 'features' && b.decoded.layout === 'features' && pa.features !== pb.features)
    return [`features: ${bitsDiff(pa.features as bigint, pb.features as bigint, (v) => virtioFeatureNames(v, device))}`];
  if (a.decoded.layout === 'protocolFeatures' && b.decoded.layout === 'protocolFeatures' && pa.protocolFeatures !== pb.protocolFeatures)
    return [`protocol features: ${bitsDiff(pa.protocolFeatures as bigint, pb.protocolFeatures as bigint, protocolFeatureNames)}`];
  if (a.decoded.flags !== b.decoded.flags) out.push(`flags: 0x${a.decoded.flags.toString(16)} -> 0x${b.decoded.flags.toString(16)}`);
  if (a.decoded.size !== b.decoded.size) out.push(`size: ${a.decoded.size} -> ${b.decoded.size}`);
  const fa = new Map<string, string>();
  const fb = new Map<string, string>();
  flatten(pa, '', fa);
  flatten(pb, '', fb);
  for (const k of new Set([...fa.keys(), ...fb.keys()])) {
    const leaf = k
      .split('.')
      .pop()!
      .replace(/\[\d+\]$/, '');
    if (VOLATILE.has(leaf)) continue;
    if (fa.get(k) !== fb.get(k)) out.push(`${k}: ${fa.get(k) ?? '(none)'} -> ${fb.get(k) ?? '(none)'}`);
  }
  const kinds = (m: MessageEvent): string => m.fds.map((f) => f.kind).join(',');
  if (kinds(a) !== kinds(b)) out.push(`fds: [${kinds(a)}] -> [${kinds(b)}]`);
  return out;
}

export function diffMessages(a: MessageEvent[], b: MessageEvent[], device: DeviceType = 'generic'): DiffLine[] {
  const n = a.length;
  const m = b.length;
  const ka = a.map(keyOf);
  const kb = b.map(keyOf);
  // LCS table, from the end
  const L: Uint32Array[] = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = ka[i] === kb[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out: DiffLine[] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (ka[i] === kb[j]) {
      const fields = changedFields(a[i], b[j], device);
      out.push(fields.length ? { op: 'changed', a: a[i], b: b[j], fields } : { op: 'same', a: a[i], b: b[j] });
      i++;
      j++;
    } else if (L[i + 1][j] >= L[i][j + 1]) out.push({ op: 'only-a', a: a[i++] });
    else out.push({ op: 'only-b', b: b[j++] });
  }
  while (i < n) out.push({ op: 'only-a', a: a[i++] });
  while (j < m) out.push({ op: 'only-b', b: b[j++] });
  return out;
}
