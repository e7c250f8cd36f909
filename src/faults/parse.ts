/**
 * The short syntax of `--fault` and `vhostscope rules add`, one rule per string, read into the
 * same data a rules file holds (then validated by the same code):
 *
 *   delay SET_MEM_TABLE ms=500            drop SET_VRING_KICK vring=0
 *   answer GET_VRING_BASE value=7         hold SET_VRING_ENABLE vring=0 until=kick:0 max=2000
 *   inject kick:0 after=SET_VRING_ENABLE:0   inject call:1 ms=3000
 *   mask protocol:REPLY_ACK               mask virtio:~VERSION_1,RING_PACKED in=offer
 *   disconnect backend after=SET_STATUS:DRIVER_OK limit=1
 *   filter GET_FEATURES,SET_FEATURES,... answer=fail      preset virtio-vhost-user
 *   hold-state save ms=3000               disconnect backend after=SET_VRING_BASE device=dst
 *
 * Message options: reply, channel=, from=, vring=, bits=, nth=; every rule: id=, limit=, device=.
 * A reference (after=, until=) is REQUEST[.reply][:VRING or :STATUS|BITS][#NTH], or kick:N / call:N / err:N;
 * after= may end in +MS: that long after the message.
 */
import type { ChannelKind, Side } from '../protocol';
import { PRESETS } from './presets';
import { CHAOS_PROFILES, type ChaosProfile } from './chaos';
import type { FaultRule, MessageMatch, NotificationMatch, Trigger } from './rules';

const NUM = /^\d+$/;

function num(key: string, v: string): number {
  if (!NUM.test(v)) throw new Error(`${key}=${v}: not a whole number`);
  return Number(v);
}

/** REQUEST[.reply][:VRING|:BITS][#NTH] or kick:N */
export function parseRef(text: string): MessageMatch | NotificationMatch {
  const n = text.match(/^(kick|call|err)(?::(\d+))?$/i);
  if (n) return { notification: n[1].toLowerCase() as NotificationMatch['notification'], ...(n[2] !== undefined ? { vring: Number(n[2]) } : {}) };
  const m = text.match(/^([A-Za-z_0-9]+)(\.reply)?(?::([A-Za-z_0-9|]+))?(?:#(\d+))?$/);
  if (!m) throw new Error(`"${text}": expected REQUEST[.reply][:VRING|:BITS][#NTH] or kick:N / call:N`);
  const out: MessageMatch = { request: NUM.test(m[1]) ? Number(m[1]) : m[1] };
  if (m[2]) out.reply = true;
  if (m[3] !== undefined) {
    if (NUM.test(m[3])) out.vring = Number(m[3]);
    else out.bits = m[3].split('|');
  }
  if (m[4] !== undefined) out.nth = Number(m[4]);
  return out;
}

function parseTrigger(opts: Map<string, string>): Trigger {
  const after = opts.get('after');
  const ms = opts.get('ms');
  if ((after === undefined) === (ms === undefined)) throw new Error('give when it fires: after=REQUEST[...] or ms=N (after the session started)');
  opts.delete('after');
  opts.delete('ms');
  if (ms !== undefined) return { afterMs: num('ms', ms) };
  const [refPart, delay] = after!.split('+');
  const ref = parseRef(refPart);
  if ('notification' in ref) throw new Error(`after=${after}: a trigger is a message, not a notification`);
  return { after: ref, ...(delay !== undefined ? { delayMs: num('after=...+MS', delay) } : {}) };
}

/**
 * One rule (or, for `preset NAME`, the preset's rules) from the short syntax. Unknown options
 * are errors, so that a typo never silently widens a rule.
 */
export function parseFaultSpec(spec: string): FaultRule[] {
  const words = spec.trim().split(/\s+/).filter(Boolean);
  const action = words.shift()?.toLowerCase();
  const positional = words.filter((w) => !w.includes('=') && w !== 'reply');
  const opts = new Map<string, string>();
  for (const w of words.filter((x) => x.includes('='))) {
    const i = w.indexOf('=');
    opts.set(w.slice(0, i).toLowerCase(), w.slice(i + 1));
  }
  const flagReply = words.includes('reply');
  const take = (k: string): string | undefined => {
    const v = opts.get(k);
    opts.delete(k);
    return v;
  };
  const common = (): { id?: string; limit?: number; device?: string } => {
    const id = take('id');
    const limit = take('limit');
    const device = take('device');
    return { ...(id !== undefined ? { id } : {}), ...(limit !== undefined ? { limit: num('limit', limit) } : {}), ...(device !== undefined ? { device } : {}) };
  };
  const matchFrom = (request: string | undefined): MessageMatch => {
    if (!request) throw new Error(`${action}: which request? e.g. "${action} SET_VRING_KICK"`);
    const m = parseRef(request);
    if ('notification' in m) throw new Error(`${action} ${request}: rules act on messages; use inject for notifications`);
    if (flagReply) m.reply = true;
    const channel = take('channel');
    const from = take('from');
    const vring = take('vring');
    const bits = take('bits');
    const nth = take('nth');
    if (channel !== undefined) m.channel = channel as ChannelKind;
    if (from !== undefined) m.from = from as Side;
    if (vring !== undefined) m.vring = num('vring', vring);
    if (bits !== undefined) m.bits = NUM.test(bits) ? Number(bits) : bits.split(/[|,]/);
    if (nth !== undefined) m.nth = num('nth', nth);
    return m;
  };
  let rules: FaultRule[];
  switch (action) {
    case 'delay': {
      const match = matchFrom(positional[0]);
      const ms = take('ms');
      if (ms === undefined) throw new Error('delay: how long? ms=N');
      rules = [{ action, match, ms: num('ms', ms), ...common() }];
      break;
    }
    case 'drop':
      rules = [{ action, match: matchFrom(positional[0]), ...common() }];
      break;
    case 'answer': {
      const match = matchFrom(positional[0]);
      const value = take('value');
      rules = [{ action, match, ...(value !== undefined ? { value: NUM.test(value) ? Number(value) : value } : {}), ...common() }];
      break;
    }
    case 'hold': {
      const match = matchFrom(positional[0]);
      const until = take('until');
      if (!until) throw new Error('hold: until what? until=REQUEST or until=kick:N');
      const max = take('max');
      rules = [{ action, match, until: parseRef(until), ...(max !== undefined ? { maxMs: num('max', max) } : {}), ...common() }];
      break;
    }
    case 'hold-state': {
      const phase = positional[0] ?? 'both';
      if (phase !== 'save' && phase !== 'load' && phase !== 'both') throw new Error('hold-state: which transfer? save, load or both');
      const ms = take('ms');
      if (ms === undefined) throw new Error('hold-state: how long? ms=N');
      rules = [{ action, phase, ms: num('ms', ms), ...common() }];
      break;
    }
    case 'inject': {
      const n = positional[0]?.match(/^(kick|call):(\d+)$/i);
      if (!n) throw new Error('inject: what? kick:VRING or call:VRING');
      rules = [{ action, notification: n[1].toLowerCase() as 'kick' | 'call', vring: Number(n[2]), when: parseTrigger(opts), ...common() }];
      break;
    }
    case 'mask': {
      const m = positional[0]?.match(/^(virtio|protocol):(~?)(.+)$/i);
      if (!m) throw new Error('mask: which bits? protocol:REPLY_ACK[,MQ] or virtio:EVENT_IDX, or protocol:~MQ,REPLY_ACK to keep only those');
      const list = m[3].split(',').map((b) => (NUM.test(b) ? Number(b) : b));
      const where = take('in');
      rules = [
        {
          action,
          features: m[1].toLowerCase() as 'virtio' | 'protocol',
          ...(m[2] ? { keep: list } : { bits: list }),
          ...(where ? { in: where as 'offer' } : {}),
          ...common(),
        },
      ];
      break;
    }
    case 'disconnect': {
      const sideWord = positional[0];
      if (sideWord !== 'frontend' && sideWord !== 'backend') throw new Error('disconnect: which side? frontend or backend');
      rules = [{ action, side: sideWord, when: parseTrigger(opts), ...common() }];
      break;
    }
    case 'filter': {
      if (!positional[0]) throw new Error('filter: which requests does the far side accept? a comma-separated list');
      const channel = take('channel');
      const answer = take('answer');
      rules = [
        {
          action,
          allow: positional[0].split(','),
          ...(channel ? { channel: channel as ChannelKind } : {}),
          ...(answer ? { answer: answer as 'ok' } : {}),
          ...common(),
        },
      ];
      break;
    }
    case 'chaos': {
      const seed = take('seed');
      if (seed === undefined) throw new Error('chaos: which seed? seed=N');
      const profile = take('profile');
      if (profile !== undefined && !Object.hasOwn(CHAOS_PROFILES, profile))
        throw new Error(`chaos: profile is one of ${Object.keys(CHAOS_PROFILES).join(', ')}`);
      const max = take('max');
      rules = [
        {
          action,
          seed: num('seed', seed),
          ...(profile !== undefined ? { profile: profile as ChaosProfile } : {}),
          ...(max !== undefined ? { maxMs: num('max', max) } : {}),
          ...common(),
        },
      ];
      break;
    }
    case 'preset': {
      const name = positional[0] ?? '';
      const p = Object.hasOwn(PRESETS, name) ? PRESETS[name] : undefined; // not "constructor" or "__proto__"
      if (!p) throw new Error(`preset: one of ${Object.keys(PRESETS).join(', ')}`);
      rules = p.rules.map((r) => ({ ...r }));
      break;
    }
    default:
      throw new Error(`"${spec}": the action must be one of delay, drop, answer, hold, hold-state, inject, mask, disconnect, filter, chaos, preset`);
  }
  if (opts.size) throw new Error(`"${spec}": unknown option(s) ${[...opts.keys()].join(', ')} for ${action}`);
  const extra = positional.slice(1);
  if (extra.length) throw new Error(`"${spec}": unexpected ${extra.join(' ')}`);
  return rules;
}
