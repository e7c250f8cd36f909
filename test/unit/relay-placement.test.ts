/** --relay-cpu auto: reading /proc for a pinned, busy thread. */
import { describe, expect, it } from 'vitest';
import { findPollingThread, parseCpuList, statTicks } from '../../src/proxy/relay-placement';

describe('relay placement', () => {
  it('reads CPU lists and thread stat lines', () => {
    expect(parseCpuList('0-2,5\n')).toEqual([0, 1, 2, 5]);
    expect(parseCpuList('1')).toEqual([1]);
    // a name with spaces and parentheses, as thread names may have
    const stat = '1234 (rte (worker) 0) R 1 1234 1234 0 -1 4194368 100 0 0 0 250 17 0 0 20 0 3 0 9999 0 0';
    expect(statTicks(stat)).toEqual({ name: 'rte (worker) 0', ticks: 267 });
  });

  it('finds no polling thread in an idle process, and tolerates a vanished one', async () => {
    expect(await findPollingThread(process.pid, 100)).toBeUndefined();
    expect(await findPollingThread(0x7ffffff0, 50)).toBeUndefined();
  });
});
