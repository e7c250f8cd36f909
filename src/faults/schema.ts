/**
 * The schema of a fault-rules file (JSON Schema, draft 2020-12 subset), and the one validator
 * every rule goes through, whatever its source (file, --fault, control socket). The schema is
 * data: docs/fault-rules.schema.json is generated from it (a test keeps the two equal) for
 * editors; errors name the path of the bad field, e.g. `rules[2].match.nth: must be >= 1`.
 */
import type { FaultRule } from './rules';
import { CHAOS_PROFILES } from './chaos';

type Schema = Record<string, unknown>;

const str = { type: 'string' };
const nonNegInt = { type: 'integer', minimum: 0 };
/** a time in ms: a timer takes at most 2^31-1 (about 24.8 days; more would fire after 1 ms) */
const ms = { type: 'integer', minimum: 0, maximum: 2147483647 };
const side = { enum: ['frontend', 'backend'] };
const channel = { enum: ['main', 'backend', 'gpu'] };
const requestRef = { type: ['string', 'integer'], description: 'request name (current or legacy, e.g. SET_VRING_KICK or SET_SLAVE_REQ_FD) or code' };

const messageMatch: Schema = {
  type: 'object',
  description: 'which messages: requests unless reply is true',
  properties: {
    request: requestRef,
    channel,
    from: side,
    reply: { type: 'boolean' },
    vring: nonNegInt,
    bits: { type: ['integer', 'array'], items: str, description: 'the u64 payload has all these bits (a number, or SET_STATUS names such as DRIVER_OK)' },
    nth: { type: 'integer', minimum: 1, description: 'only the n-th matching message of each session' },
  },
  required: ['request'],
  additionalProperties: false,
};

const notificationMatch: Schema = {
  type: 'object',
  properties: { notification: { enum: ['kick', 'call', 'err'] }, vring: nonNegInt },
  required: ['notification'],
  additionalProperties: false,
};

const trigger: Schema = {
  type: 'object',
  description: 'after: once a matching message has been handled (plus delayMs); afterMs: this long after the session started',
  oneOf: [
    { type: 'object', properties: { after: messageMatch, delayMs: ms }, required: ['after'], additionalProperties: false },
    { type: 'object', properties: { afterMs: ms }, required: ['afterMs'], additionalProperties: false },
  ],
};

const common = {
  id: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,40}$' },
  limit: { type: 'integer', minimum: 1, description: 'stop after this many applications across all sessions' },
  comment: str,
  device: { type: 'string', description: "only sessions of this device (a --config device's name)" },
};

const bitList = { type: 'array', items: { type: ['string', 'integer'] }, minItems: 1 };

const action = (name: string, description: string, properties: Schema, required: string[]): Schema => ({
  type: 'object',
  description,
  properties: { action: { const: name }, ...properties, ...common },
  required: ['action', ...required],
  additionalProperties: false,
});

export const RULE_VARIANTS: Record<FaultRule['action'], Schema> = {
  delay: action('delay', 'forward the message N ms late; later messages of that direction wait behind it', { match: messageMatch, ms }, ['match', 'ms']),
  drop: action('drop', 'do not forward the message (its fds are closed)', { match: messageMatch }, ['match']),
  answer: action('answer', "do not forward the request; reply on the far side's behalf", { match: messageMatch, value: { type: ['integer', 'string'] } }, [
    'match',
  ]),
  hold: action(
    'hold',
    'keep the message back, letting others pass, until another message or a notification has passed',
    { match: messageMatch, until: { oneOf: [messageMatch, notificationMatch] }, maxMs: ms },
    ['match', 'until'],
  ),
  'hold-state': action(
    'hold-state',
    "hold the bytes of a device-state transfer (SET_DEVICE_STATE_FD's pipe) this long before copying them on",
    { phase: { enum: ['save', 'load', 'both'] }, ms },
    ['ms'],
  ),
  inject: action(
    'inject',
    'signal a kick (to the back-end) or a call (to the front-end) on a vring',
    { notification: { enum: ['kick', 'call'] }, vring: nonNegInt, when: trigger },
    ['notification', 'vring', 'when'],
  ),
  mask: action(
    'mask',
    'clear feature bits in GET_*_FEATURES replies (offer) and/or SET_*_FEATURES requests (ack)',
    { features: { enum: ['virtio', 'protocol'] }, bits: bitList, keep: bitList, in: { enum: ['offer', 'ack', 'both'] } },
    ['features'],
  ),
  disconnect: action('disconnect', "close one side's connection (then the other): a crash seen through the proxy", { side, when: trigger }, ['side', 'when']),
  filter: action(
    'filter',
    'forward only these requests; answer the others when a reply is due',
    { allow: { type: 'array', items: requestRef, minItems: 1 }, channel, answer: { enum: ['ok', 'fail'] } },
    ['allow'],
  ),
  chaos: action(
    'chaos',
    'perturb what the spec leaves free (delays, a kick before SET_VRING_ENABLE, a late SET_VRING_CALL), drawn from the seed: the same seed, the same perturbations',
    { seed: { type: 'integer', minimum: 0, maximum: 4294967295 }, profile: { enum: Object.keys(CHAOS_PROFILES) }, maxMs: ms },
    ['seed'],
  ),
};

export const RULES_FILE_SCHEMA: Schema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  $id: 'https://vhostscope.dev/fault-rules.schema.json',
  title: 'vhostscope fault rules',
  description: 'Rules for `vhostscope proxy --rules FILE`: an object with a rules array (or presets), or a bare array of rules.',
  type: 'object',
  properties: {
    presets: { type: 'array', items: { enum: ['virtio-vhost-user'] } },
    rules: { type: 'array', items: { oneOf: Object.values(RULE_VARIANTS) } },
  },
  additionalProperties: false,
};

const typeOf = (v: unknown): string => (Array.isArray(v) ? 'array' : v === null ? 'null' : Number.isInteger(v) ? 'integer' : typeof v);

/** Validates `value` against the subset of JSON Schema used above; returns "path: problem" lines. */
export function validateAgainst(schema: Schema, value: unknown, path: string): string[] {
  const errors: string[] = [];
  if ('const' in schema && value !== schema.const) return [`${path}: must be ${JSON.stringify(schema.const)}`];
  if (schema.enum && !(schema.enum as unknown[]).includes(value))
    return [`${path}: must be one of ${(schema.enum as unknown[]).join(', ')} (got ${JSON.stringify(value)})`];
  if (schema.oneOf) return validateOneOf(schema.oneOf as Schema[], value, path);
  if (schema.type) {
    const want = ([] as string[]).concat(schema.type as string | string[]);
    const got = typeOf(value);
    if (!want.includes(got) && !(got === 'integer' && want.includes('number'))) return [`${path}: must be ${want.join(' or ')} (got ${got})`];
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) errors.push(`${path}: must be >= ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) errors.push(`${path}: must be <= ${schema.maximum}`);
  }
  if (typeof value === 'string' && typeof schema.pattern === 'string' && !new RegExp(schema.pattern).test(value))
    errors.push(`${path}: must match ${schema.pattern}`);
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) errors.push(`${path}: needs at least ${schema.minItems} item(s)`);
    if (schema.items) value.forEach((v, i) => errors.push(...validateAgainst(schema.items as Schema, v, `${path}[${i}]`)));
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (schema.properties ?? {}) as Record<string, Schema>;
    for (const k of (schema.required as string[] | undefined) ?? []) if (!(k in obj)) errors.push(`${path}: ${k} is required`);
    for (const [k, v] of Object.entries(obj)) {
      if (props[k]) errors.push(...validateAgainst(props[k], v, `${path}.${k}`));
      else if (schema.additionalProperties === false) errors.push(`${path}.${k}: unknown field (known: ${Object.keys(props).join(', ')})`);
    }
  }
  return errors;
}

/** oneOf: rule variants are told apart by `action`, matches by `notification`; say which branch was meant. */
function validateOneOf(branches: Schema[], value: unknown, path: string): string[] {
  if (typeOf(value) !== 'object') return [`${path}: must be an object`];
  const obj = value as Record<string, unknown>;
  const actions = branches.map((b) => ((b.properties as Record<string, Schema> | undefined)?.action as { const?: string } | undefined)?.const).filter(Boolean);
  if (actions.length) {
    const branch = branches.find((b) => ((b.properties as Record<string, Schema>).action as { const: string }).const === obj.action);
    if (!branch) return [`${path}.action: must be one of ${actions.join(', ')} (got ${JSON.stringify(obj.action)})`];
    return validateAgainst(branch, value, path);
  }
  const branch = branches.find((b) => ((b.required as string[]) ?? []).every((k) => k in obj)) ?? branches[0];
  return validateAgainst(branch, value, path);
}
