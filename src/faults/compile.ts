/**
 * From rule data to what the proxy matches against: request names resolved on their channel
 * (with a "did you mean" when they are not), feature names to bit masks, defaults filled in.
 * Everything a rule can get wrong is reported here, before the rule is active.
 */
import {
  DeviceFeatures,
  DeviceStatus,
  MAIN_REQUESTS,
  BACKEND_REQUESTS,
  GPU_REQUESTS,
  ProtocolFeature,
  requestByName,
  requestSpec,
  requesterOf,
  VirtioFeature,
  type ChannelKind,
  type Side,
} from '../protocol';
import { isNotificationMatch, type FaultRule, type MessageMatch, type NotificationMatch, type Trigger } from './rules';
import { RULE_VARIANTS, validateAgainst } from './schema';

export interface CompiledMatch {
  channel: ChannelKind;
  code: number;
  name: string;
  from: Side;
  reply: boolean;
  vring?: number;
  bits?: bigint;
  nth?: number;
}

export type CompiledTrigger = { after: CompiledMatch; delayMs: number } | { afterMs: number };

export interface CompiledRule {
  rule: FaultRule;
  match?: CompiledMatch;
  until?: CompiledMatch | NotificationMatch;
  when?: CompiledTrigger;
  /** mask: the bits to clear */
  clear?: bigint;
  /** filter: request codes let through */
  allow?: Set<number>;
  /** answer: the reply's u64 */
  value?: bigint;
}

const TABLES = { main: MAIN_REQUESTS, backend: BACKEND_REQUESTS, gpu: GPU_REQUESTS };

function closest(word: string, options: string[]): string | undefined {
  const dist = (a: string, b: string): number => {
    const d = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let prev = d[0];
      d[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const tmp = d[j];
        d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = tmp;
      }
    }
    return d[b.length];
  };
  const best = options.map((o) => ({ o, d: dist(word.toUpperCase(), o) })).sort((x, y) => x.d - y.d)[0];
  return best && best.d <= Math.max(2, word.length / 4) ? best.o : undefined;
}

export function resolveRequest(channel: ChannelKind, ref: string | number, path: string): { code: number; name: string } {
  if (typeof ref === 'number') {
    const spec = requestSpec(channel, ref);
    return { code: ref, name: spec?.name ?? `UNKNOWN_${ref}` };
  }
  if (/^\d+$/.test(ref)) return resolveRequest(channel, Number(ref), path);
  const spec = requestByName(channel, ref);
  if (!spec) {
    const guess = closest(
      ref.replace(/^VHOST_USER_/i, ''),
      TABLES[channel].map((r) => r.name),
    );
    throw new Error(`${path}: ${ref} is not a request of the ${channel} channel${guess ? ` (did you mean ${guess}?)` : ''}`);
  }
  return { code: spec.code, name: spec.name };
}

function bitsOf(names: (string | number)[], table: Record<string, number>, what: string, path: string): bigint {
  let mask = 0n;
  for (const n of names) {
    if (typeof n === 'number' || /^\d+$/.test(n)) {
      const bit = Number(n);
      if (bit > 63) throw new Error(`${path}: bit ${bit} is beyond 63`);
      mask |= 1n << BigInt(bit);
      continue;
    }
    const key = n.toUpperCase().replace(/^VIRTIO_(NET_|BLK_|F_)?F?_?|^VHOST_USER_PROTOCOL_F_/, '');
    const bit = table[n.toUpperCase()] ?? table[key];
    if (bit === undefined) {
      const guess = closest(key, Object.keys(table));
      throw new Error(`${path}: ${n} is not a ${what}${guess ? ` (did you mean ${guess}?)` : ''}`);
    }
    mask |= 1n << BigInt(bit);
  }
  return mask;
}

/** SET_STATUS names are masks, not bit numbers (DRIVER_OK = 4). */
function statusMask(names: string[], path: string): bigint {
  let mask = 0n;
  for (const n of names) {
    const v = (DeviceStatus as Record<string, number>)[n.toUpperCase()];
    if (v === undefined) {
      const guess = closest(n, Object.keys(DeviceStatus));
      throw new Error(`${path}: ${n} is not a device status bit (${Object.keys(DeviceStatus).join(', ')})${guess ? `; did you mean ${guess}?` : ''}`);
    }
    mask |= BigInt(v);
  }
  return mask;
}

const ALL_VIRTIO = Object.assign({}, ...Object.values(DeviceFeatures), VirtioFeature) as Record<string, number>;

function compileMatch(m: MessageMatch, path: string): CompiledMatch {
  const channel = m.channel ?? 'main';
  const { code, name } = resolveRequest(channel, m.request, `${path}.request`);
  const requester = requesterOf(channel);
  const answerer: Side = requester === 'frontend' ? 'backend' : 'frontend';
  let bits: bigint | undefined;
  if (m.bits !== undefined) bits = typeof m.bits === 'number' ? BigInt(m.bits) : statusMask(m.bits, `${path}.bits`);
  return {
    channel,
    code,
    name,
    from: m.from ?? (m.reply ? answerer : requester),
    reply: m.reply ?? false,
    ...(m.vring !== undefined ? { vring: m.vring } : {}),
    ...(bits !== undefined ? { bits } : {}),
    ...(m.nth !== undefined ? { nth: m.nth } : {}),
  };
}

function compileTrigger(t: Trigger, path: string): CompiledTrigger {
  return 'afterMs' in t ? { afterMs: t.afterMs } : { after: compileMatch(t.after, `${path}.after`), delayMs: t.delayMs ?? 0 };
}

/** Validates one rule (schema, then meaning) and compiles it; throws with every problem found. */
export function compileRule(rule: unknown, path = 'rule'): CompiledRule {
  const action = (rule as { action?: string } | null)?.action;
  const variant = typeof action === 'string' ? RULE_VARIANTS[action as FaultRule['action']] : undefined;
  const errors = variant
    ? validateAgainst(variant, rule, path)
    : [`${path}.action: must be one of ${Object.keys(RULE_VARIANTS).join(', ')} (got ${JSON.stringify(action)})`];
  if (errors.length) throw new Error(errors.join('\n'));
  const r = rule as FaultRule;
  switch (r.action) {
    case 'delay':
    case 'drop':
      return { rule: r, match: compileMatch(r.match, `${path}.match`) };
    case 'answer': {
      let value: bigint;
      try {
        value = BigInt(r.value ?? 0);
      } catch {
        throw new Error(`${path}.value: ${r.value} is not an integer`);
      }
      return { rule: r, match: compileMatch(r.match, `${path}.match`), value };
    }
    case 'hold':
      return { rule: r, match: compileMatch(r.match, `${path}.match`), until: isNotificationMatch(r.until) ? r.until : compileMatch(r.until, `${path}.until`) };
    case 'hold-state':
    case 'chaos':
      return { rule: r };
    case 'inject':
    case 'disconnect':
      return { rule: r, when: compileTrigger(r.when, `${path}.when`) };
    case 'mask': {
      if (!r.bits === !r.keep) throw new Error(`${path}: give either bits (to clear) or keep (to clear all others)`);
      const table = r.features === 'protocol' ? ProtocolFeature : ALL_VIRTIO;
      const what = r.features === 'protocol' ? 'protocol feature' : 'virtio feature';
      const clear = r.bits ? bitsOf(r.bits, table, what, `${path}.bits`) : ~bitsOf(r.keep!, table, what, `${path}.keep`) & ((1n << 64n) - 1n);
      return { rule: r, clear };
    }
    case 'filter': {
      const channel = r.channel ?? 'main';
      return { rule: r, allow: new Set(r.allow.map((a, i) => resolveRequest(channel, a, `${path}.allow[${i}]`).code)) };
    }
  }
}
