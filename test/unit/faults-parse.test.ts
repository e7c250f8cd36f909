/**
 * The short fault syntax as a table: each spec and the exact rule it reads into, and each
 * mistake and the exact message a user sees for it (the message is the interface: it names the
 * option and shows the form that would have worked).
 */
import { describe, expect, it } from 'vitest';
import { parseFaultSpec, parseRef } from '../../src/faults/parse';

const READS: [string, unknown][] = [
  ['delay SET_MEM_TABLE ms=500', { action: 'delay', match: { request: 'SET_MEM_TABLE' }, ms: 500 }],
  ['DELAY set_mem_table ms=5 id=d1 limit=2 device=vm1', { action: 'delay', match: { request: 'set_mem_table' }, ms: 5, id: 'd1', limit: 2, device: 'vm1' }],
  ['drop SET_VRING_KICK vring=0', { action: 'drop', match: { request: 'SET_VRING_KICK', vring: 0 } }],
  ['drop GET_FEATURES reply', { action: 'drop', match: { request: 'GET_FEATURES', reply: true } }],
  ['drop GET_FEATURES.reply', { action: 'drop', match: { request: 'GET_FEATURES', reply: true } }],
  ['drop 24 from=frontend channel=main nth=3', { action: 'drop', match: { request: 24, from: 'frontend', channel: 'main', nth: 3 } }],
  ['drop SET_STATUS bits=ACKNOWLEDGE|DRIVER', { action: 'drop', match: { request: 'SET_STATUS', bits: ['ACKNOWLEDGE', 'DRIVER'] } }],
  ['drop SET_STATUS bits=ACKNOWLEDGE,DRIVER', { action: 'drop', match: { request: 'SET_STATUS', bits: ['ACKNOWLEDGE', 'DRIVER'] } }],
  ['drop SET_STATUS bits=4', { action: 'drop', match: { request: 'SET_STATUS', bits: 4 } }],
  ['drop SET_STATUS:DRIVER_OK|FEATURES_OK#2', { action: 'drop', match: { request: 'SET_STATUS', bits: ['DRIVER_OK', 'FEATURES_OK'], nth: 2 } }],
  ['answer GET_VRING_BASE value=7', { action: 'answer', match: { request: 'GET_VRING_BASE' }, value: 7 }],
  ['answer GET_FEATURES value=0x10', { action: 'answer', match: { request: 'GET_FEATURES' }, value: '0x10' }],
  ['answer SET_OWNER', { action: 'answer', match: { request: 'SET_OWNER' } }],
  [
    'hold SET_VRING_ENABLE vring=0 until=kick:0 max=2000',
    { action: 'hold', match: { request: 'SET_VRING_ENABLE', vring: 0 }, until: { notification: 'kick', vring: 0 }, maxMs: 2000 },
  ],
  ['hold SET_MEM_TABLE until=GET_FEATURES.reply', { action: 'hold', match: { request: 'SET_MEM_TABLE' }, until: { request: 'GET_FEATURES', reply: true } }],
  ['hold-state save ms=3000', { action: 'hold-state', phase: 'save', ms: 3000 }],
  ['hold-state ms=10', { action: 'hold-state', phase: 'both', ms: 10 }],
  ['inject kick:0 after=SET_VRING_ENABLE:0', { action: 'inject', notification: 'kick', vring: 0, when: { after: { request: 'SET_VRING_ENABLE', vring: 0 } } }],
  ['inject CALL:1 ms=3000', { action: 'inject', notification: 'call', vring: 1, when: { afterMs: 3000 } }],
  [
    'inject kick:2 after=SET_STATUS:DRIVER_OK+250',
    { action: 'inject', notification: 'kick', vring: 2, when: { after: { request: 'SET_STATUS', bits: ['DRIVER_OK'] }, delayMs: 250 } },
  ],
  ['mask protocol:REPLY_ACK', { action: 'mask', features: 'protocol', bits: ['REPLY_ACK'] }],
  ['mask Virtio:~VERSION_1,32 in=offer', { action: 'mask', features: 'virtio', keep: ['VERSION_1', 32], in: 'offer' }],
  [
    'disconnect backend after=SET_STATUS:DRIVER_OK limit=1',
    { action: 'disconnect', side: 'backend', when: { after: { request: 'SET_STATUS', bits: ['DRIVER_OK'] } }, limit: 1 },
  ],
  ['disconnect frontend ms=0', { action: 'disconnect', side: 'frontend', when: { afterMs: 0 } }],
  ['filter GET_FEATURES,SET_FEATURES', { action: 'filter', allow: ['GET_FEATURES', 'SET_FEATURES'] }],
  ['filter CONFIG_CHANGE_MSG channel=backend answer=fail', { action: 'filter', allow: ['CONFIG_CHANGE_MSG'], channel: 'backend', answer: 'fail' }],
  ['chaos seed=42', { action: 'chaos', seed: 42 }],
  ['chaos seed=7 profile=enable max=50 limit=3', { action: 'chaos', seed: 7, profile: 'enable', maxMs: 50, limit: 3 }],
];

const MISTAKES: [string, string][] = [
  [
    'explode SET_OWNER',
    '"explode SET_OWNER": the action must be one of delay, drop, answer, hold, hold-state, inject, mask, disconnect, filter, chaos, preset',
  ],
  ['chaos', 'chaos: which seed? seed=N'],
  ['chaos seed=1 profile=storm', 'chaos: profile is one of all, delays, replies, enable, call, split'],
  ['', '"": the action must be one of delay, drop, answer, hold, hold-state, inject, mask, disconnect, filter, chaos, preset'],
  ['drop', 'drop: which request? e.g. "drop SET_VRING_KICK"'],
  ['drop kick:0', 'drop kick:0: rules act on messages; use inject for notifications'],
  ['drop SET_OWNER extra', '"drop SET_OWNER extra": unexpected extra'],
  ['drop SET_OWNER vrng=0 x=1', '"drop SET_OWNER vrng=0 x=1": unknown option(s) vrng, x for drop'],
  ['drop SET_OWNER vring=a', 'vring=a: not a whole number'],
  ['drop SET_OWNER nth=-1', 'nth=-1: not a whole number'],
  ['drop SET_OWNER limit=1.5', 'limit=1.5: not a whole number'],
  ['drop SET-OWNER', '"SET-OWNER": expected REQUEST[.reply][:VRING|:BITS][#NTH] or kick:N / call:N'],
  ['delay SET_OWNER', 'delay: how long? ms=N'],
  ['delay SET_OWNER ms=soon', 'ms=soon: not a whole number'],
  ['hold SET_OWNER', 'hold: until what? until=REQUEST or until=kick:N'],
  ['hold SET_OWNER until=GET_FEATURES max=long', 'max=long: not a whole number'],
  ['hold-state restore ms=5', 'hold-state: which transfer? save, load or both'],
  ['hold-state save', 'hold-state: how long? ms=N'],
  ['inject', 'inject: what? kick:VRING or call:VRING'],
  ['inject err:0 ms=1', 'inject: what? kick:VRING or call:VRING'],
  ['inject kick:0', 'give when it fires: after=REQUEST[...] or ms=N (after the session started)'],
  ['inject kick:0 ms=1 after=SET_OWNER', 'give when it fires: after=REQUEST[...] or ms=N (after the session started)'],
  ['inject kick:0 after=call:1', 'after=call:1: a trigger is a message, not a notification'],
  ['inject kick:0 after=SET_OWNER+x', 'after=...+MS=x: not a whole number'],
  ['mask REPLY_ACK', 'mask: which bits? protocol:REPLY_ACK[,MQ] or virtio:EVENT_IDX, or protocol:~MQ,REPLY_ACK to keep only those'],
  ['disconnect both ms=1', 'disconnect: which side? frontend or backend'],
  ['filter', 'filter: which requests does the far side accept? a comma-separated list'],
  ['preset constructor', 'preset: one of virtio-vhost-user'],
  ['preset', 'preset: one of virtio-vhost-user'],
];

describe('the short fault syntax', () => {
  it.each(READS)('%s', (spec, rule) => {
    expect(parseFaultSpec(spec)).toEqual([rule]);
  });

  it.each(MISTAKES)('%s: says what is wrong and what would do', (spec, message) => {
    expect(() => parseFaultSpec(spec)).toThrow(new Error(message));
  });

  it('a preset is its rules, copied (changing one leaves the preset as it was)', () => {
    const a = parseFaultSpec('preset virtio-vhost-user');
    expect(a.length).toBeGreaterThan(0);
    (a[0] as { id?: string }).id = 'changed';
    expect((parseFaultSpec('preset virtio-vhost-user')[0] as { id?: string }).id).not.toBe('changed');
  });

  it('references: notifications with and without a vring, message references in every form', () => {
    expect(parseRef('kick')).toEqual({ notification: 'kick' });
    expect(parseRef('ERR:3')).toEqual({ notification: 'err', vring: 3 });
    expect(parseRef('GET_VRING_BASE.reply:1#2')).toEqual({ request: 'GET_VRING_BASE', reply: true, vring: 1, nth: 2 });
    expect(parseRef('13')).toEqual({ request: 13 });
    expect(parseRef('kick:x')).toEqual({ request: 'kick', bits: ['x'] }); // not a notification: a request named so, with a bit
    expect(() => parseRef('a:b:c')).toThrow('"a:b:c": expected REQUEST[.reply][:VRING|:BITS][#NTH] or kick:N / call:N');
  });
});
