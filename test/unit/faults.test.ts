/** Fault rules as data: the short syntax, the schema's errors, compiling names, presets. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { compileRule, describeRule, parseFaultSpec, parseRulesDocument, PRESETS, RULES_FILE_SCHEMA, FaultRuleSet, VVU_ALLOWED } from '../../src/faults';

describe('fault rule short syntax', () => {
  const cases = [
    'delay SET_MEM_TABLE ms=500',
    'drop SET_VRING_KICK vring=0',
    'answer GET_VRING_BASE value=7',
    'hold SET_VRING_ENABLE vring=0 until=kick:0 max=2000',
    'inject kick:0 after=SET_VRING_ENABLE:0',
    'inject call:1 ms=3000',
    'mask protocol:REPLY_ACK',
    'mask virtio:~VERSION_1,RING_PACKED in=offer',
    'disconnect backend after=SET_STATUS:DRIVER_OK limit=1',
    'disconnect backend after=SET_STATUS:DRIVER_OK+8000 limit=1',
    'delay GET_VRING_BASE reply ms=2000',
    'filter GET_FEATURES,SET_FEATURES answer=fail',
    'hold-state save ms=3000',
    'hold-state both ms=500 limit=1',
    'disconnect backend after=SET_VRING_BASE device=dst',
    'drop CONFIG_CHANGE_MSG channel=backend from=backend nth=2',
    'drop SET_STATUS bits=ACKNOWLEDGE,DRIVER limit=3 device=a',
    'drop SET_STATUS bits=4',
    'answer SET_OWNER',
    'hold SET_MEM_TABLE until=GET_FEATURES.reply#2',
    'hold SET_VRING_CALL vring=1 until=call',
    'hold-state load ms=1',
    'inject kick:3 after=SET_STATUS:ACKNOWLEDGE|DRIVER#2',
    'mask protocol:REPLY_ACK,MQ in=ack limit=1',
    'filter CONFIG_CHANGE_MSG channel=backend',
  ];
  it.each(cases)('reads and writes back "%s"', (spec) => {
    const [rule] = parseFaultSpec(spec);
    expect(() => compileRule(rule)).not.toThrow();
    expect(describeRule(rule)).toBe(spec);
    expect(parseFaultSpec(describeRule(rule))).toEqual([rule]);
  });

  it('says what is wrong, and never widens a rule silently', () => {
    expect(() => parseFaultSpec('drop SET_VRING_KICK vrng=0')).toThrow(/unknown option\(s\) vrng/);
    expect(() => parseFaultSpec('explode SET_OWNER')).toThrow(/action must be one of/);
    expect(() => parseFaultSpec('delay SET_OWNER')).toThrow(/ms=N/);
    expect(() => parseFaultSpec('inject kick:0')).toThrow(/after=REQUEST/);
    expect(() => parseFaultSpec('hold-state save')).toThrow(/ms=N/);
    expect(() => parseFaultSpec('hold-state restore ms=5')).toThrow(/save, load or both/);
    expect(() => compileRule(parseFaultSpec('drop SET_VRING_KIK')[0])).toThrow(
      /SET_VRING_KIK is not a request of the main channel \(did you mean SET_VRING_KICK\?\)/,
    );
    expect(() => compileRule(parseFaultSpec('mask protocol:REPLY_ACKS')[0])).toThrow(/did you mean REPLY_ACK/);
    expect(() => compileRule(parseFaultSpec('disconnect backend after=SET_STATUS:DRIVER_KO')[0])).toThrow(/device status bit/);
  });

  it('accepts legacy names and resolves bits', () => {
    const c = compileRule(parseFaultSpec('drop SET_SLAVE_REQ_FD')[0]);
    expect(c.match).toMatchObject({ name: 'SET_BACKEND_REQ_FD', code: 21, from: 'frontend', reply: false });
    expect(compileRule(parseFaultSpec('disconnect backend after=SET_STATUS:DRIVER_OK')[0]).when).toMatchObject({ after: { bits: 4n } });
    expect(compileRule(parseFaultSpec('mask protocol:REPLY_ACK,MQ')[0]).clear).toBe(0b1001n);
    expect(compileRule(parseFaultSpec('answer GET_FEATURES')[0]).match).toMatchObject({ from: 'frontend' });
    expect(compileRule(parseFaultSpec('delay GET_FEATURES reply ms=1')[0]).match).toMatchObject({ from: 'backend', reply: true });
  });
});

describe('rules that are not', () => {
  it('a time a timer cannot hold (over 2^31-1 ms: it would fire after 1 ms) is refused, in both syntaxes', () => {
    expect(() => new FaultRuleSet(parseFaultSpec('delay SET_MEM_TABLE ms=2147483648'))).toThrow(/ms: must be <= 2147483647/);
    expect(() => new FaultRuleSet(parseFaultSpec('disconnect backend ms=99999999999'))).toThrow(/afterMs: must be <= 2147483647/);
    expect(() => parseRulesDocument([{ action: 'hold-state', ms: 2 ** 31 }], 'a.json')).toThrow(/rules\[0\]\.ms: must be <= 2147483647/);
    expect(new FaultRuleSet(parseFaultSpec('delay SET_MEM_TABLE ms=2147483647')).list()).toHaveLength(1);
  });

  it('a preset named after an Object property is an unknown preset, not a TypeError', () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty'])
      expect(() => parseFaultSpec(`preset ${name}`)).toThrow(/^preset: one of virtio-vhost-user$/);
  });
});

describe('rules files', () => {
  it('reports every problem with its path', () => {
    const doc = {
      rules: [
        { action: 'drop' },
        { action: 'delay', match: { request: 'SET_OWNER', nth: 0 }, ms: -1 },
        { action: 'hold', match: { request: 'SET_VRING_ENABLE' }, until: { notification: 'poke' } },
        { action: 'mask', features: 'protocol', bits: ['REPLY_ACK'], extra: 1 },
      ],
    };
    let msg = '';
    try {
      parseRulesDocument(doc, 'r.json');
    } catch (err) {
      msg = (err as Error).message;
    }
    expect(msg).toContain('r.json: 5 problem(s)');
    expect(msg).toContain('rules[0]: match is required');
    expect(msg).toContain('rules[1].match.nth: must be >= 1');
    expect(msg).toContain('rules[1].ms: must be >= 0');
    expect(msg).toContain('rules[2].until.notification: must be one of kick, call, err');
    expect(msg).toContain('rules[3].extra: unknown field');
  });

  it('expands presets and takes a bare array', () => {
    expect(parseRulesDocument({ presets: ['virtio-vhost-user'] }, 'p.json')).toEqual(PRESETS['virtio-vhost-user'].rules);
    expect(parseRulesDocument([{ action: 'drop', match: { request: 'SET_VRING_ERR' } }], 'a.json')).toHaveLength(1);
    expect(() => parseRulesDocument({ presets: ['nope'] }, 'p.json')).toThrow(/presets\[0\]: must be one of virtio-vhost-user/);
  });

  it('the published schema is the one the validator uses', () => {
    const file = path.join(__dirname, '../../docs/fault-rules.schema.json');
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(RULES_FILE_SCHEMA);
  });

  it('the virtio-vhost-user preset allows exactly the 15 requests of the device', () => {
    expect(VVU_ALLOWED).toHaveLength(15);
    const filter = compileRule(PRESETS['virtio-vhost-user'].rules[1]);
    expect(filter.allow!.size).toBe(15);
    for (const code of [14 /* SET_VRING_ERR */, 21 /* SET_BACKEND_REQ_FD */, 24 /* GET_CONFIG */, 39 /* SET_STATUS */])
      expect(filter.allow!.has(code)).toBe(false);
    expect(filter.allow!.has(18)).toBe(true); // SET_VRING_ENABLE
  });
});

describe('FaultRuleSet', () => {
  it('numbers rules, refuses duplicates, spends limits', () => {
    const set = new FaultRuleSet(parseFaultSpec('drop SET_VRING_ERR limit=1'));
    const e = set.add(parseFaultSpec('drop SET_OWNER id=own')[0]);
    expect(set.list().map((r) => r.id)).toEqual(['1', 'own']);
    expect(() => set.add(parseFaultSpec('drop SET_OWNER id=own')[0])).toThrow(/exists already/);
    const first = set.live()[0];
    expect(set.use(first)).toBe(true);
    expect(set.use(first)).toBe(false);
    expect(set.live()).toEqual([e]);
    expect(set.remove('own')?.id).toBe('own');
    expect(set.use(e)).toBe(false);
    expect(set.remove('own')).toBeUndefined();
    expect(set.size).toBe(1);
  });

  it('replaces rules from a file all at once: an invalid or clashing rule changes nothing', () => {
    const set = new FaultRuleSet([
      ...parseFaultSpec('drop SET_OWNER'),
      ...parseFaultSpec('delay GET_FEATURES ms=1'),
      ...parseFaultSpec('drop SET_VRING_ERR id=keep'),
    ]);
    const seen: string[] = [];
    const off = set.onChange((change, e) => seen.push(`${change} ${e.id}`));
    const before = set.list();
    // invalid: nothing changes, nothing is told
    expect(() => set.replace(['1', '2'], [...parseFaultSpec('drop SET_OWNER'), { kind: 'delay', request: 'GET_FEATURES', ms: -1 } as never])).toThrow();
    // an id that stays, or one given twice
    expect(() => set.replace(['1'], parseFaultSpec('drop SET_OWNER id=keep'))).toThrow(/id keep exists already/);
    expect(() => set.replace(['1'], [...parseFaultSpec('drop SET_OWNER id=x'), ...parseFaultSpec('drop GET_FEATURES id=x')])).toThrow(/id x exists already/);
    expect(set.list()).toEqual(before);
    expect(seen).toEqual([]);
    // the ids a replaced rule had go; the new ones get fresh numbers; the rule given on its own stays
    const { removed, added } = set.replace(['1', '2'], [...parseFaultSpec('drop SET_VRING_CALL'), ...parseFaultSpec('drop SET_VRING_KICK id=k')]);
    expect(removed.map((e) => e.id)).toEqual(['1', '2']);
    expect(added.map((e) => e.id)).toEqual(['3', 'k']);
    expect(set.list().map((r) => `${r.id}: ${r.text}`)).toEqual(['keep: drop SET_VRING_ERR', '3: drop SET_VRING_CALL', 'k: drop SET_VRING_KICK']);
    expect(seen).toEqual(['removed 1', 'removed 2', 'added 3', 'added k']);
    // a listener that unsubscribed hears nothing more
    off();
    set.remove('3');
    expect(seen).toHaveLength(4);
  });
});
