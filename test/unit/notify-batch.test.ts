/** A recording's notification batches keep which counts came on a replaced fd, and stay small when none did. */
import { describe, expect, it } from 'vitest';
import { pack, unpack } from 'msgpackr';
import { NotifyBatch } from '../../src/recording/event-records';
import { unpackBatch, type NotifyBatchRecord } from '../../src/recording/records';
import type { NotificationEvent } from '../../src/events/events';

const call = (ts: bigint, replaced?: true): NotificationEvent => ({
  type: 'notification',
  ts,
  session: 1,
  vring: 0,
  kind: 'call',
  count: 1,
  ...(replaced ? { replaced } : {}),
});

describe('notification batches', () => {
  it('round-trip the replaced flag by position, through msgpack', () => {
    const b = new NotifyBatch(1, 100n);
    for (const e of [call(100n), call(200n, true), call(300n), call(400n, true)]) b.add(e);
    expect(b.record.replaced).toEqual([1, 3]);
    const back = unpack(pack(b.record)) as NotifyBatchRecord;
    expect([...unpackBatch(back)].map((n) => `${n.ts}${n.replaced ? ' replaced' : ''}`)).toEqual(['100', '200 replaced', '300', '400 replaced']);
  });

  it('leave the column out when no count came on a replaced fd, and read older batches without it', () => {
    const b = new NotifyBatch(1, 100n);
    b.add(call(150n));
    expect('replaced' in b.record).toBe(false);
    const old: NotifyBatchRecord = { type: 'notify', session: 1, ts0: 0n, dt: [5], vk: [1], c: [2] };
    expect([...unpackBatch(old)]).toEqual([{ ts: 5n, session: 1, vring: 0, kind: 'call', count: 2 }]);
  });
});
