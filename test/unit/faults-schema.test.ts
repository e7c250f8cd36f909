/**
 * A rules file's mistakes as a table: each bad document and the exact lines a user reads, each
 * naming the path of the field and what it must be.
 */
import { describe, expect, it } from 'vitest';
import { parseRulesDocument } from '../../src/faults';

const PROBLEMS: [string, unknown, string[]][] = [
  ['not an object', 'rules', ['$: must be object (got string)']],
  ['an unknown top-level field', { rule: [] }, ['$.rule: unknown field (known: presets, rules)']],
  ['rules not an array', { rules: {} }, ['$.rules: must be array (got object)']],
  ['a rule that is not an object', [7], ['rules[0]: must be an object']],
  [
    'an unknown action',
    [{ action: 'explode' }],
    ['rules[0].action: must be one of delay, drop, answer, hold, hold-state, inject, mask, disconnect, filter, chaos (got "explode")'],
  ],
  ['a missing field', [{ action: 'delay', match: { request: 'SET_OWNER' } }], ['rules[0]: ms is required']],
  ['a field of another type', [{ action: 'drop', match: { request: true } }], ['rules[0].match.request: must be string or integer (got boolean)']],
  ['null where an object goes', [{ action: 'drop', match: null }], ['rules[0].match: must be object (got null)']],
  ['a number below its minimum', [{ action: 'drop', match: { request: 'SET_OWNER', nth: 0 } }], ['rules[0].match.nth: must be >= 1']],
  ['a time beyond a timer', [{ action: 'delay', match: { request: 1 }, ms: 2 ** 31 }], ['rules[0].ms: must be <= 2147483647']],
  ['a fraction where a whole number goes', [{ action: 'delay', match: { request: 1 }, ms: 1.5 }], ['rules[0].ms: must be integer (got number)']],
  ['an id of the wrong form', [{ action: 'drop', match: { request: 1 }, id: 'a b' }], ['rules[0].id: must match ^[A-Za-z0-9_.-]{1,40}$']],
  ['an empty list', [{ action: 'filter', allow: [] }], ['rules[0].allow: needs at least 1 item(s)']],
  ['a bad item in a list', [{ action: 'filter', allow: ['GET_FEATURES', null] }], ['rules[0].allow[1]: must be string or integer (got null)']],
  [
    'an unknown field in a match',
    [{ action: 'drop', match: { request: 1, vrng: 0 } }],
    ['rules[0].match.vrng: unknown field (known: request, channel, from, reply, vring, bits, nth)'],
  ],
  [
    'an enum value it does not have',
    [{ action: 'disconnect', side: 'both', when: { afterMs: 1 } }],
    ['rules[0].side: must be one of frontend, backend (got "both")'],
  ],
  [
    'a notification as until, with a bad vring',
    [{ action: 'hold', match: { request: 1 }, until: { notification: 'kick', vring: -1 } }],
    ['rules[0].until.vring: must be >= 0'],
  ],
  [
    'a notification as until, with a message field',
    [{ action: 'hold', match: { request: 1 }, until: { notification: 'kick', request: 1 } }],
    ['rules[0].until.notification: unknown field (known: request, channel, from, reply, vring, bits, nth)'],
  ],
  ['a trigger with neither form', [{ action: 'inject', notification: 'kick', vring: 0, when: {} }], ['rules[0].when: after is required']],
  [
    'a trigger after a time, with a stray field',
    [{ action: 'inject', notification: 'kick', vring: 0, when: { afterMs: 5, delayMs: 1 } }],
    ['rules[0].when.delayMs: unknown field (known: afterMs)'],
  ],
  ['a preset it does not have', { presets: ['nope'] }, ['$.presets[0]: must be one of virtio-vhost-user (got "nope")']],
  [
    'several problems at once, all of them',
    [{ action: 'delay', ms: -1, extra: 1 }],
    ['rules[0]: match is required', 'rules[0].ms: must be >= 0', 'rules[0].extra: unknown field (known: action, match, ms, id, limit, comment, device)'],
  ],
];

describe('a rules file with mistakes', () => {
  it.each(PROBLEMS)('%s', (_what, doc, lines) => {
    expect(() => parseRulesDocument(doc, 'r.json')).toThrow(new Error(`r.json: ${lines.length} problem(s):\n  ${lines.join('\n  ')}`));
  });

  it('a good document reads: presets first, then its rules', () => {
    const rules = parseRulesDocument({ presets: ['virtio-vhost-user'], rules: [{ action: 'drop', match: { request: 'SET_OWNER' } }] }, 'r.json');
    expect(rules.at(-1)).toEqual({ action: 'drop', match: { request: 'SET_OWNER' } });
    expect(rules.length).toBeGreaterThan(1);
    expect(parseRulesDocument([], 'empty.json')).toEqual([]);
  });
});
