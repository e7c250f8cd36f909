/** The reply watchdog on a hand-driven clock: an alarm once per overdue reply, the late answer told, nothing for replies in time. */
import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage, Request } from '../../src/protocol';
import type { ProxyEvent } from '../../src/events/events';
import { ReplyWatchdog, type OverdueReply } from '../../src/service/reply-watchdog';

const message = (
  session: number,
  sender: 'frontend' | 'backend',
  code: number,
  flags: number,
  o: { replyExpected?: boolean; channel?: 'main' | 'backend'; undelivered?: 'dropped' } = {},
): ProxyEvent => {
  const raw = encodeMessage(code, flags, Buffer.alloc(8));
  return {
    type: 'message',
    ts: 0n,
    session,
    channel: o.channel ?? 'main',
    sender,
    dir: sender === 'frontend' ? 'F>B' : 'B>F',
    raw,
    decoded: decodeMessage(o.channel ?? 'main', raw, sender),
    fds: [],
    findings: [],
    ...(o.replyExpected !== undefined ? { replyExpected: o.replyExpected } : {}),
    ...(o.undelivered ? { undelivered: o.undelivered } : {}),
  } as ProxyEvent;
};

function rig() {
  let now = 1000;
  const overdue: OverdueReply[] = [];
  const late: OverdueReply[] = [];
  const w = new ReplyWatchdog(
    5000,
    (o) => overdue.push(o),
    (o) => late.push(o),
    () => now,
  );
  return { w, overdue, late, at: (ms: number) => (now = 1000 + ms) };
}

describe('the reply watchdog', () => {
  it('alarms once when a due reply is late, then tells when it came', () => {
    const { w, overdue, late, at } = rig();
    w.onEvent(message(1, 'frontend', Request.GET_VRING_BASE, 1, { replyExpected: true }));
    at(4999);
    w.check();
    expect(overdue).toEqual([]);
    at(5000);
    w.check();
    at(7000);
    w.check();
    expect(overdue).toEqual([{ session: 1, channel: 'main', request: 'GET_VRING_BASE', waiting: 'frontend', owing: 'backend', waitedMs: 5000 }]);
    at(8000);
    w.onEvent(message(1, 'backend', Request.GET_VRING_BASE, 5));
    expect(late).toEqual([{ session: 1, channel: 'main', request: 'GET_VRING_BASE', waiting: 'frontend', owing: 'backend', waitedMs: 8000 }]);
    w.close();
  });

  it('stays quiet for replies in time, requests that take none, dropped ones, and a session that ended', () => {
    const { w, overdue, late, at } = rig();
    w.onEvent(message(1, 'frontend', Request.GET_FEATURES, 1, { replyExpected: true }));
    at(100);
    w.onEvent(message(1, 'backend', Request.GET_FEATURES, 5));
    w.onEvent(message(1, 'frontend', Request.SET_OWNER, 1, { replyExpected: false }));
    w.onEvent(message(2, 'frontend', Request.GET_FEATURES, 1, { replyExpected: true, undelivered: 'dropped' }));
    w.onEvent(message(3, 'frontend', Request.GET_FEATURES, 1, { replyExpected: true }));
    w.onEvent({ type: 'session-end', ts: 0n, session: 3, reason: 'x', messages: { 'F>B': 0, 'B>F': 0 }, fdsForwarded: 0, vrings: [], relayPairs: [] });
    at(60_000);
    w.check();
    expect([overdue, late]).toEqual([[], []]);
    w.close();
  });

  it('keeps channels and sessions apart: the back-end waiting on its channel, a reply to another request', () => {
    const { w, overdue, at } = rig();
    w.onEvent(message(1, 'backend', 3, 9, { replyExpected: true, channel: 'backend' }));
    w.onEvent(message(2, 'frontend', Request.GET_FEATURES, 1, { replyExpected: true }));
    w.onEvent(message(2, 'backend', Request.GET_PROTOCOL_FEATURES, 5)); // not the reply it waits for
    at(6000);
    w.check();
    expect(overdue.map((o) => `${o.session} ${o.channel} ${o.request} ${o.waiting}`)).toEqual([
      '1 backend VRING_HOST_NOTIFIER_MSG backend',
      '2 main GET_FEATURES frontend',
    ]);
    w.close();
  });

  it('names both requests when each side waits on the other (R60), and not for one side alone or another session', () => {
    const { w, overdue, at } = rig();
    w.onEvent(message(1, 'frontend', Request.SET_MEM_TABLE, 9, { replyExpected: true }));
    at(1000);
    w.onEvent(message(1, 'backend', 1, 9, { replyExpected: true, channel: 'backend' })); // an IOTLB miss, NEED_REPLY
    w.onEvent(message(2, 'backend', 2, 9, { replyExpected: true, channel: 'backend' }));
    at(5000);
    w.check();
    expect(overdue).toEqual([
      {
        session: 1,
        channel: 'main',
        request: 'SET_MEM_TABLE',
        waiting: 'frontend',
        owing: 'backend',
        waitedMs: 5000,
        alsoWaiting: { channel: 'backend', request: 'IOTLB_MSG', waitedMs: 4000 },
      },
    ]);
    at(6000);
    w.check();
    expect(overdue.slice(1).map((o) => `${o.session} ${o.request} ${o.alsoWaiting?.request}`)).toEqual([
      '1 IOTLB_MSG SET_MEM_TABLE',
      '2 CONFIG_CHANGE_MSG undefined',
    ]);
    w.close();
  });
});
