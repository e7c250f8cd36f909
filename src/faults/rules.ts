/**
 * Fault rules as plain data (what a rules file, a `--fault` flag or `vhostscope rules add`
 * says), kept apart from the code that applies them (src/proxy/fault-runner.ts), so that a rule
 * can be validated, listed, logged, recorded and sent over the control socket as it is.
 */
import type { ChannelKind, Side } from '../protocol';
import type { ChaosProfile } from './chaos';

/** Which messages a rule applies to. Requests unless `reply` is set. */
export interface MessageMatch {
  /** request name (current or legacy) or code */
  request: string | number;
  /** default main */
  channel?: ChannelKind;
  /** default: the side that sends this request (or, with `reply`, answers it) on that channel */
  from?: Side;
  /** match the reply rather than the request */
  reply?: boolean;
  /** only messages about this vring (payloads that start with a vring index) */
  vring?: number;
  /** only messages whose u64 payload has all these bits (SET_STATUS: a number or status names) */
  bits?: number | string[];
  /** only the n-th matching message of a session (1-based) */
  nth?: number;
}

export interface NotificationMatch {
  notification: 'kick' | 'call' | 'err';
  /** any vring when absent */
  vring?: number;
}

/**
 * When a one-shot action fires: once a matching message has been handled (plus delayMs), or
 * this long after the session started.
 */
export type Trigger = { after: MessageMatch; delayMs?: number } | { afterMs: number };

interface RuleBase {
  /** a name of the user's; the daemon numbers rules that have none */
  id?: string;
  /** stop applying the rule after this many applications, across every session */
  limit?: number;
  /** a note for the humans reading `rules list` and the log */
  comment?: string;
  /**
   * only sessions of this device (a `--config` device's name): in a daemon that carries both
   * ends of a migration, a rule for the destination alone
   */
  device?: string;
}

export interface DelayRule extends RuleBase {
  action: 'delay';
  match: MessageMatch;
  /** milliseconds; later messages of the same direction wait behind it, as on a slow stream */
  ms: number;
}

export interface DropRule extends RuleBase {
  action: 'drop';
  match: MessageMatch;
}

export interface AnswerRule extends RuleBase {
  action: 'answer';
  match: MessageMatch;
  /** the u64 of the reply (ack: 0 = success); default 0 */
  value?: number | string;
}

export interface HoldRule extends RuleBase {
  action: 'hold';
  match: MessageMatch;
  /** released right after this message has been forwarded or this notification has passed */
  until: MessageMatch | NotificationMatch;
  /** released anyway after this long (default 5000 ms), with a log line saying so */
  maxMs?: number;
}

/**
 * Holds the bytes of a device-state transfer (SET_DEVICE_STATE_FD's pipe, interposed) for `ms`
 * before copying them on: a back-end slow to save or load its state, which the guest feels as
 * migration downtime.
 */
export interface HoldStateRule extends RuleBase {
  action: 'hold-state';
  /** save (the source's back-end writes), load (the destination's reads), or both (default) */
  phase?: 'save' | 'load' | 'both';
  ms: number;
}

export interface InjectRule extends RuleBase {
  action: 'inject';
  notification: 'kick' | 'call';
  vring: number;
  when: Trigger;
}

export interface MaskRule extends RuleBase {
  action: 'mask';
  features: 'virtio' | 'protocol';
  /** bits to clear (names or numbers) */
  bits?: (string | number)[];
  /** or: clear every bit but these */
  keep?: (string | number)[];
  /** offer: GET_*_FEATURES replies; ack: SET_*_FEATURES requests; both (default) */
  in?: 'offer' | 'ack' | 'both';
}

export interface DisconnectRule extends RuleBase {
  action: 'disconnect';
  /** the side whose connection is closed first; the session then ends on both sides */
  side: Side;
  when: Trigger;
}

export interface FilterRule extends RuleBase {
  action: 'filter';
  /** requests the far side accepts; every other request is not forwarded (and answered when a reply is due) */
  allow: (string | number)[];
  /** default main */
  channel?: ChannelKind;
  /** the ack for a filtered request: ok (0, default) or fail (1) */
  answer?: 'ok' | 'fail';
}

/** Chaos mode: perturbations drawn from `seed` for every message (src/faults/chaos.ts). */
export interface ChaosRule extends RuleBase {
  action: 'chaos';
  seed: number;
  /** which perturbations (default all) */
  profile?: ChaosProfile;
  /** the longest delay, ms (default 20) */
  maxMs?: number;
}

export type FaultRule = DelayRule | DropRule | AnswerRule | HoldRule | HoldStateRule | InjectRule | MaskRule | DisconnectRule | FilterRule | ChaosRule;
export type FaultAction = FaultRule['action'];

/** A rule as the daemon holds it: with its id and how often it has been applied. */
export interface ActiveRule {
  id: string;
  rule: FaultRule;
  /** the rule in the short syntax of --fault */
  text: string;
  applied: number;
}

export const isNotificationMatch = <M extends object>(m: M | NotificationMatch): m is NotificationMatch => 'notification' in m;

function matchText(m: MessageMatch): string {
  const parts = [String(m.request)];
  if (m.reply) parts.push('reply');
  if (m.channel && m.channel !== 'main') parts.push(`channel=${m.channel}`);
  if (m.from) parts.push(`from=${m.from}`);
  if (m.vring !== undefined) parts.push(`vring=${m.vring}`);
  if (m.bits !== undefined) parts.push(`bits=${Array.isArray(m.bits) ? m.bits.join(',') : m.bits}`);
  if (m.nth !== undefined) parts.push(`nth=${m.nth}`);
  return parts.join(' ');
}

/** A trigger or `until` as one token: REQUEST[:VRING|:BITS][#NTH] or kick:N. */
export function refText(m: MessageMatch | NotificationMatch): string {
  if (isNotificationMatch(m)) return `${m.notification}${m.vring !== undefined ? `:${m.vring}` : ''}`;
  const suffix = m.vring !== undefined ? `:${m.vring}` : m.bits !== undefined ? `:${Array.isArray(m.bits) ? m.bits.join('|') : m.bits}` : '';
  return `${m.request}${m.reply ? '.reply' : ''}${suffix}${m.nth !== undefined ? `#${m.nth}` : ''}`;
}

const triggerText = (t: Trigger): string => ('afterMs' in t ? `ms=${t.afterMs}` : `after=${refText(t.after)}${t.delayMs ? `+${t.delayMs}` : ''}`);

/** The rule in the short syntax `--fault` takes (parse.ts reads it back). */
export function describeRule(r: FaultRule): string {
  const common = `${r.limit !== undefined ? ` limit=${r.limit}` : ''}${r.device !== undefined ? ` device=${r.device}` : ''}`;
  switch (r.action) {
    case 'delay':
      return `delay ${matchText(r.match)} ms=${r.ms}${common}`;
    case 'drop':
      return `drop ${matchText(r.match)}${common}`;
    case 'answer':
      return `answer ${matchText(r.match)}${r.value !== undefined ? ` value=${r.value}` : ''}${common}`;
    case 'hold':
      return `hold ${matchText(r.match)} until=${refText(r.until)}${r.maxMs !== undefined ? ` max=${r.maxMs}` : ''}${common}`;
    case 'hold-state':
      return `hold-state ${r.phase ?? 'both'} ms=${r.ms}${common}`;
    case 'inject':
      return `inject ${r.notification}:${r.vring} ${triggerText(r.when)}${common}`;
    case 'mask':
      return `mask ${r.features}:${r.keep ? `~${r.keep.join(',')}` : (r.bits ?? []).join(',')}${r.in && r.in !== 'both' ? ` in=${r.in}` : ''}${common}`;
    case 'disconnect':
      return `disconnect ${r.side} ${triggerText(r.when)}${common}`;
    case 'chaos':
      return `chaos seed=${r.seed}${r.profile && r.profile !== 'all' ? ` profile=${r.profile}` : ''}${r.maxMs !== undefined ? ` max=${r.maxMs}` : ''}${common}`;
    case 'filter':
      return `filter ${r.allow.join(',')}${r.channel && r.channel !== 'main' ? ` channel=${r.channel}` : ''}${r.answer === 'fail' ? ' answer=fail' : ''}${common}`;
  }
}
