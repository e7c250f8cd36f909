/** Chaos mode's draws: the same seed and message, the same perturbation; each profile perturbs what it says, within its bounds. */
import { describe, expect, it } from 'vitest';
import { chaosPerturbation, draw, type ChaosMessage, type ChaosProfile } from '../../src/faults/chaos';
import { describeRule, parseFaultSpec } from '../../src/faults';
import { chaosSpec } from '../../src/cli/proxy-options';
import { Request } from '../../src/protocol';

const msg = (index: number, o: Partial<ChaosMessage> = {}): ChaosMessage => ({
  channel: 'main',
  sender: 'frontend',
  request: Request.SET_VRING_NUM,
  reply: false,
  index,
  size: 20,
  ...o,
});
const over = (profile: ChaosProfile, o: Partial<ChaosMessage> = {}, seed = 42, n = 400) =>
  Array.from({ length: n }, (_, i) => chaosPerturbation(seed, profile, 20, msg(i, o)));

describe('chaos mode', () => {
  it('a seed means the same perturbations in every build: a bug report names one, and another vhostscope must replay it', () => {
    expect([draw(0, '', 0, 0), draw(7, 'main/frontend', 0, 1), draw(7, 'main/frontend', 5, 4), draw(0xffffffff, 'backend/backend', 123456, 3)]).toEqual([
      2427423377, 678465472, 3742379875, 3339090256,
    ]);
    const seq = Array.from({ length: 8 }, (_, i) =>
      chaosPerturbation(
        7,
        'all',
        20,
        msg(i, { sender: i % 2 ? 'backend' : 'frontend', request: i % 3 ? Request.SET_VRING_NUM : Request.SET_VRING_CALL, reply: i % 2 === 1 }),
      ),
    );
    expect(seq.map((p) => (p && 'delayMs' in p ? `${p.delayMs} ${p.why}` : '-'))).toEqual([
      '13 call fd swap late',
      '5 reply late',
      '-',
      '18 reply late',
      '-',
      '13 reply late',
      '15 call fd swap late',
      '7 reply late',
    ]);
  });

  it('draws the same for the same seed, stream and place, and otherwise differs', () => {
    expect(draw(42, 'main/frontend', 3, 1)).toBe(draw(42, 'main/frontend', 3, 1));
    const a = Array.from({ length: 64 }, (_, i) => draw(42, 'main/frontend', i, 1));
    expect(new Set(a).size).toBe(64);
    expect(Array.from({ length: 64 }, (_, i) => draw(43, 'main/frontend', i, 1))).not.toEqual(a);
    expect(Array.from({ length: 64 }, (_, i) => draw(42, 'main/backend', i, 1))).not.toEqual(a);
    expect(over('all')).toEqual(over('all'));
  });

  it('delays: about one message in four, each 1 to max ms late; nothing else', () => {
    const d = over('delays');
    const late = d.filter((p) => p !== undefined);
    expect(late.length).toBeGreaterThan(60);
    expect(late.length).toBeLessThan(140);
    for (const p of late) expect(p).toEqual({ delayMs: expect.any(Number), why: 'message late' });
    const ms = late.map((p) => (p as { delayMs: number }).delayMs);
    expect(Math.min(...ms)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...ms)).toBeLessThanOrEqual(20);
    expect(new Set(ms).size).toBeGreaterThan(10);
  });

  it('enable: every SET_VRING_ENABLE(1) is held until its own vring is kicked; a disable, and other requests, pass', () => {
    for (const p of over('enable', { request: Request.SET_VRING_ENABLE, vring: 3, num: 1 }, 42, 50))
      expect(p).toEqual({ holdUntilKick: 3, maxMs: 30000, why: 'enable held until vring 3 is kicked' });
    expect(over('enable', { request: Request.SET_VRING_ENABLE, vring: 3, num: 0 }).every((p) => p === undefined)).toBe(true);
    expect(over('enable').every((p) => p === undefined)).toBe(true);
    // with every profile at once, one enable in two
    const both = over('all', { request: Request.SET_VRING_ENABLE, vring: 0, num: 1 }).filter((p) => p && 'holdUntilKick' in p).length;
    expect(both).toBeGreaterThan(150);
    expect(both).toBeLessThan(250);
  });

  it('call: every SET_VRING_CALL is late; replies: about one reply in two', () => {
    expect(over('call', { request: Request.SET_VRING_CALL }).every((p) => p !== undefined && 'delayMs' in p && p.why === 'call fd swap late')).toBe(true);
    expect(over('call', { request: Request.SET_VRING_CALL, sender: 'backend', channel: 'backend' }).every((p) => p === undefined)).toBe(true);
    const replies = over('replies', { reply: true, sender: 'backend' }).filter((p) => p !== undefined).length;
    expect(replies).toBeGreaterThan(150);
    expect(replies).toBeLessThan(250);
    expect(over('replies').every((p) => p === undefined)).toBe(true);
  });

  it('split: about one message in two cut at a byte inside it, the rest 1 to max ms later; not part of "all"', () => {
    const cuts = over('split', { size: 52 }).filter((p) => p !== undefined);
    expect(cuts.length).toBeGreaterThan(150);
    expect(cuts.length).toBeLessThan(250);
    for (const p of cuts) expect(p).toEqual({ splitAt: expect.any(Number), restMs: expect.any(Number), why: 'split in two writes' });
    const at = cuts.map((p) => (p as { splitAt: number }).splitAt);
    expect(Math.min(...at)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...at)).toBeLessThanOrEqual(51);
    // inside the header as well as the payload: a reader may see any prefix
    expect(at.some((a) => a < 12)).toBe(true);
    expect(at.some((a) => a > 12)).toBe(true);
    const ms = cuts.map((p) => (p as { restMs: number }).restMs);
    expect(Math.min(...ms)).toBeGreaterThanOrEqual(1);
    expect(Math.max(...ms)).toBeLessThanOrEqual(20);
    // a one-byte message cannot be cut; "all" (older seeds' perturbations) never splits
    expect(over('split', { size: 1 }).every((p) => p === undefined)).toBe(true);
    expect(over('all', { size: 52 }).some((p) => p !== undefined && 'splitAt' in p)).toBe(false);
  });

  it('--chaos SEED[:PROFILE] is the chaos rule, and the rule reads back as it is written', () => {
    expect(chaosSpec('42')).toBe('chaos seed=42');
    expect(chaosSpec('7:enable')).toBe('chaos seed=7 profile=enable');
    expect(() => chaosSpec('x')).toThrow('--chaos: SEED[:PROFILE], e.g. 42 or 42:enable (got "x")');
    const [r] = parseFaultSpec('chaos seed=7 profile=call max=5');
    expect(describeRule(r)).toBe('chaos seed=7 profile=call max=5');
    expect(describeRule(parseFaultSpec('chaos seed=7 profile=all')[0])).toBe('chaos seed=7');
  });
});
