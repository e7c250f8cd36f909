/** Replaying a chaos recording: the split rule is found in the session's fault events, and the replay cuts the same messages at the same bytes. */
import { describe, expect, it } from 'vitest';
import { chaosPerturbation } from '../../src/faults/chaos';
import type { Channel } from '../../src/native';
import type { ProxyEvent } from '../../src/events/events';
import { encodeMessage, Request } from '../../src/protocol';
import type { FaultRecord } from '../../src/recording/records';
import { recordedSplit, SplitSender } from '../../src/replay/chaos';
import { u64 } from '../sessions';

const fault = (session: number, text: string, action = 'chaos'): FaultRecord => ({ type: 'fault', ts: 1n, session, rule: '1', text, action, detail: 'x' });

describe('replaying a chaos recording', () => {
  it("finds the session's split rule, and only a split rule", () => {
    expect(recordedSplit([fault(1, 'chaos seed=3 profile=split max=7')], 1)).toEqual({ seed: 3, maxMs: 7, text: 'chaos seed=3 profile=split max=7' });
    expect(recordedSplit([fault(1, 'chaos seed=3 profile=split')], 1)?.maxMs).toBe(20);
    expect(recordedSplit([fault(1, 'chaos seed=3 profile=split')], 2)).toBeUndefined();
    expect(recordedSplit([fault(1, 'chaos seed=3 profile=enable'), fault(1, 'delay SET_OWNER ms=5', 'delay')], 1)).toBeUndefined();
    expect(recordedSplit([fault(1, 'chaos seed=x profile=split')], 1)).toBeUndefined(); // a text this build cannot read
  });

  it('cuts the messages the proxy cut, at the same byte, fds with the first part, in order', async () => {
    const sent: { bytes: Buffer; fds: number[] }[] = [];
    const channel = { send: (bytes: Buffer, fds: number[] = []) => sent.push({ bytes: Buffer.from(bytes), fds }) } as unknown as Channel;
    const events: ProxyEvent[] = [];
    const splitter = new SplitSender({ seed: 3, maxMs: 2, text: 'chaos seed=3 profile=split max=2' }, 'backend', 1, (e) => events.push(e));
    const replies = Array.from({ length: 6 }, (_, i) => encodeMessage(Request.GET_FEATURES, 5, u64(BigInt(i))));
    for (const r of replies) await splitter.send(channel, r, [7]);
    // what the proxy drew for the same stream positions
    const cuts = replies.map((r, index) =>
      chaosPerturbation(3, 'split', 2, { channel: 'main', sender: 'backend', request: 1, reply: true, index, size: r.length }),
    );
    const expected = replies.flatMap((r, i) => {
      const c = cuts[i];
      return c && 'splitAt' in c ? [r.subarray(0, c.splitAt), r.subarray(c.splitAt)] : [r];
    });
    expect(sent.map((s) => s.bytes.toString('hex'))).toEqual(expected.map((b) => b.toString('hex')));
    expect(Buffer.concat(sent.map((s) => s.bytes))).toEqual(Buffer.concat(replies));
    // the fds ride with each message's first write only
    expect(sent.filter((s) => s.fds.length).length).toBe(replies.length);
    const splits = cuts.filter((c) => c && 'splitAt' in c).length;
    expect(splits).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'fault')).toHaveLength(splits);
  });
});
