/** Compiling fault rules (src/faults/compile.ts): names resolved, defaults filled, and each error's exact words. */
import { describe, expect, it } from 'vitest';
import { compileRule, type FaultRule } from '../../src/faults';
import { resolveRequest } from '../../src/faults/compile';
import { Request } from '../../src/protocol';

const compile = (r: unknown) => compileRule(r);

describe('compiling fault rules', () => {
  it('resolves requests by name, number or numeric string, with the spec prefix or without', () => {
    expect(resolveRequest('main', 'SET_OWNER', 'p')).toEqual({ code: Request.SET_OWNER, name: 'SET_OWNER' });
    expect(resolveRequest('main', 3, 'p')).toEqual({ code: 3, name: 'SET_OWNER' });
    expect(resolveRequest('main', '3', 'p')).toEqual({ code: 3, name: 'SET_OWNER' });
    expect(resolveRequest('main', 999, 'p')).toEqual({ code: 999, name: 'UNKNOWN_999' });
    expect(resolveRequest('backend', 'CONFIG_CHANGE_MSG', 'p')).toEqual({ code: 2, name: 'CONFIG_CHANGE_MSG' });
  });

  it('names the closest request only when it is close', () => {
    expect(() => resolveRequest('main', 'VHOST_USER_SET_VRING_KIK', 'r.request')).toThrow(
      'r.request: VHOST_USER_SET_VRING_KIK is not a request of the main channel (did you mean SET_VRING_KICK?)',
    );
    expect(() => resolveRequest('main', 'COMPLETELY_DIFFERENT_THING', 'r.request')).toThrow(
      /^r\.request: COMPLETELY_DIFFERENT_THING is not a request of the main channel$/,
    );
    expect(() => resolveRequest('backend', 'SET_OWNER', 'r.request')).toThrow(/is not a request of the backend channel/);
  });

  it("fills a match's defaults: the requester sends requests, the other side replies", () => {
    expect(compile({ action: 'drop', match: { request: 'GET_FEATURES' } }).match).toEqual({
      channel: 'main',
      code: Request.GET_FEATURES,
      name: 'GET_FEATURES',
      from: 'frontend',
      reply: false,
    });
    expect(compile({ action: 'drop', match: { request: 'GET_FEATURES', reply: true } }).match).toMatchObject({ from: 'backend', reply: true });
    expect(compile({ action: 'drop', match: { channel: 'backend', request: 'CONFIG_CHANGE_MSG' } }).match).toMatchObject({ from: 'backend', reply: false });
    expect(compile({ action: 'drop', match: { request: 'SET_VRING_KICK', vring: 1, nth: 2 } }).match).toMatchObject({ vring: 1, nth: 2 });
    // SET_STATUS bits: names are masks (DRIVER_OK = 4, FEATURES_OK = 8), a number is taken as it is
    expect(compile({ action: 'drop', match: { request: 'SET_STATUS', bits: ['driver_ok', 'FEATURES_OK'] } }).match!.bits).toBe(12n);
    expect(compile({ action: 'drop', match: { request: 'SET_STATUS', bits: 5 } }).match!.bits).toBe(5n);
    expect(() => compile({ action: 'drop', match: { request: 'SET_STATUS', bits: ['DRIVER_OKK'] } })).toThrow(
      /rule\.match\.bits: DRIVER_OKK is not a device status bit \(.*DRIVER_OK.*\); did you mean DRIVER_OK\?/,
    );
  });

  it('answers with the value given, 0 by default, and refuses a value that is not an integer', () => {
    expect(compile({ action: 'answer', match: { request: 'GET_FEATURES' } }).value).toBe(0n);
    expect(compile({ action: 'answer', match: { request: 'GET_FEATURES' }, value: '0x10' }).value).toBe(16n);
    expect(compile({ action: 'answer', match: { request: 'GET_FEATURES' }, value: 7 }).value).toBe(7n);
    expect(() => compile({ action: 'answer', match: { request: 'GET_FEATURES' }, value: 'lots' })).toThrow('rule.value: lots is not an integer');
  });

  it('masks feature bits by name (with or without the spec prefixes) or number, or keeps only some', () => {
    expect(compile({ action: 'mask', features: 'virtio', bits: ['VIRTIO_NET_F_MRG_RXBUF'] }).clear).toBe(1n << 15n);
    expect(compile({ action: 'mask', features: 'virtio', bits: ['mrg_rxbuf', 32] }).clear).toBe((1n << 15n) | (1n << 32n));
    expect(compile({ action: 'mask', features: 'protocol', bits: ['VHOST_USER_PROTOCOL_F_REPLY_ACK'] }).clear).toBe(1n << 3n);
    expect(compile({ action: 'mask', features: 'protocol', keep: ['REPLY_ACK'] }).clear).toBe(((1n << 64n) - 1n) & ~(1n << 3n));
    expect(() => compile({ action: 'mask', features: 'virtio', bits: [64] })).toThrow('rule.bits: bit 64 is beyond 63');
    expect(() => compile({ action: 'mask', features: 'protocol', keep: ['REPLY_ACKS'] })).toThrow(
      'rule.keep: REPLY_ACKS is not a protocol feature (did you mean REPLY_ACK?)',
    );
    expect(() => compile({ action: 'mask', features: 'virtio', bits: ['NOTHING_LIKE_IT_AT_ALL'] })).toThrow(
      /^rule\.bits: NOTHING_LIKE_IT_AT_ALL is not a virtio feature$/,
    );
    expect(() => compile({ action: 'mask', features: 'virtio', bits: ['MRG_RXBUF'], keep: ['MQ'] })).toThrow(
      'rule: give either bits (to clear) or keep (to clear all others)',
    );
    expect(() => compile({ action: 'mask', features: 'virtio' })).toThrow('rule: give either bits (to clear) or keep (to clear all others)');
  });

  it('compiles triggers, holds and filters', () => {
    expect(compile({ action: 'disconnect', side: 'backend', when: { afterMs: 5 } }).when).toEqual({ afterMs: 5 });
    expect(compile({ action: 'disconnect', side: 'backend', when: { after: { request: 'SET_OWNER' } } }).when).toMatchObject({
      after: { code: Request.SET_OWNER, from: 'frontend' },
      delayMs: 0,
    });
    expect(compile({ action: 'inject', notification: 'kick', vring: 0, when: { after: { request: 'SET_VRING_KICK' }, delayMs: 9 } }).when).toMatchObject({
      delayMs: 9,
    });
    expect(compile({ action: 'hold', match: { request: 'GET_VRING_BASE' }, until: { notification: 'call', vring: 0 } }).until).toEqual({
      notification: 'call',
      vring: 0,
    });
    expect(compile({ action: 'hold', match: { request: 'GET_VRING_BASE' }, until: { request: 'SET_VRING_ENABLE' } }).until).toMatchObject({
      code: Request.SET_VRING_ENABLE,
    });
    expect([...compile({ action: 'filter', allow: ['GET_FEATURES', 3, '15'] }).allow!]).toEqual([Request.GET_FEATURES, 3, 15]);
    expect([...compile({ action: 'filter', channel: 'backend', allow: ['CONFIG_CHANGE_MSG'] }).allow!]).toEqual([2]);
    expect(() => compile({ action: 'filter', allow: ['SET_OWNR'] })).toThrow(
      'rule.allow[0]: SET_OWNR is not a request of the main channel (did you mean SET_OWNER?)',
    );
    expect(compile({ action: 'hold-state', ms: 5 } satisfies FaultRule)).toEqual({ rule: { action: 'hold-state', ms: 5 } });
  });

  it('names the action that is missing or unknown, and every schema problem at once', () => {
    expect(() => compile({ match: { request: 'SET_OWNER' } })).toThrow(
      'rule.action: must be one of delay, drop, answer, hold, hold-state, inject, mask, disconnect, filter, chaos (got undefined)',
    );
    expect(() => compile({ action: 'explode' })).toThrow('(got "explode")');
    expect(() => compile(null)).toThrow(/rule\.action: must be one of/);
    const e = (() => {
      try {
        compile({ action: 'delay', match: { request: 'SET_OWNER', vring: -1 }, ms: -5 });
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    })();
    expect(e.split('\n').length).toBeGreaterThanOrEqual(2);
  });
});
