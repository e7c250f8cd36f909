/** The interposition table (src/proxy/interpositions.ts): handlers chosen by sender, direction and request, in table order. */
import { describe, expect, it } from 'vitest';
import { Request } from '../../src/protocol';
import { InterpositionTable, type Interposition } from '../../src/proxy/interpositions';

describe('InterpositionTable', () => {
  const h = (name: string, sender: 'frontend' | 'backend', reply: boolean, requests?: number[]): Interposition => ({ name, sender, reply, ...(requests ? { requests } : {}) });
  const table = new InterpositionTable([
    h('eventfd interposer', 'frontend', false, [Request.SET_VRING_KICK, Request.SET_VRING_CALL]),
    h('ring tracker', 'frontend', false),
    h('feature mask', 'backend', true, [Request.GET_PROTOCOL_FEATURES]),
    h('relay stop', 'backend', true, [Request.GET_VRING_BASE]),
  ]);
  const names = (sender: 'frontend' | 'backend', reply: boolean, request: number): string[] => table.for(sender, reply, request).map((x) => x.name);

  it('runs the handlers a message matches, in table order, and only those', () => {
    expect(names('frontend', false, Request.SET_VRING_CALL)).toEqual(['eventfd interposer', 'ring tracker']);
    expect(names('frontend', false, Request.SET_MEM_TABLE)).toEqual(['ring tracker']);
    expect(names('backend', true, Request.GET_PROTOCOL_FEATURES)).toEqual(['feature mask']);
    // the same code in the other direction (a request, or from the other peer) matches nothing
    expect(names('frontend', true, Request.GET_PROTOCOL_FEATURES)).toEqual([]);
    expect(names('backend', false, Request.GET_VRING_BASE)).toEqual([]);
    expect(table.for('frontend', false, Request.SET_VRING_CALL)).toBe(table.for('frontend', false, Request.SET_VRING_CALL));
  });
});
