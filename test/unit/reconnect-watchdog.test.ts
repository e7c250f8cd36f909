/** The reconnect watchdog on a hand-driven clock: down only when no session works, the back-end ended the last, and long enough. */
import { describe, expect, it } from 'vitest';
import type { ProxyEvent, SessionEndEvent } from '../../src/events/events';
import { ReconnectWatchdog, type DeviceDown } from '../../src/service/reconnect-watchdog';

const message = (session: number): ProxyEvent => ({ type: 'message', session }) as ProxyEvent;
const end = (session: number, by: SessionEndEvent['by'], reason = 'the backend closed the connection'): ProxyEvent =>
  ({ type: 'session-end', session, by, reason }) as ProxyEvent;

function rig() {
  let now = 0;
  const alarms: DeviceDown[] = [];
  const backs: DeviceDown[] = [];
  const w = new ReconnectWatchdog(
    1000,
    (d) => alarms.push(d),
    (d) => backs.push(d),
    () => now,
  );
  return { w, alarms, backs, at: (ms: number) => ((now = ms), w.check()) };
}

describe('the reconnect watchdog', () => {
  it('waits for the threshold, alarms once, and tells the return with how long it was down', () => {
    const { w, alarms, backs, at } = rig();
    w.onEvent(message(1));
    at(100);
    w.onEvent(end(1, 'backend'));
    at(1099);
    expect(alarms).toEqual([]);
    at(1100);
    at(5000);
    expect(alarms).toEqual([{ downMs: 1000, reason: 'the backend closed the connection' }]);
    w.onEvent(message(2));
    expect(backs).toEqual([{ downMs: 4900, reason: 'the backend closed the connection' }]);
    w.close();
  });

  it('is quiet while another session works, after a front-end ends, and when a session works in time', () => {
    const { w, alarms, backs, at } = rig();
    w.onEvent(message(1));
    w.onEvent(message(2));
    w.onEvent(end(1, 'connect'));
    at(5000);
    w.onEvent(end(2, 'frontend'));
    at(10_000);
    w.onEvent(message(3));
    w.onEvent(end(3, 'backend'));
    at(10_500);
    w.onEvent(message(4));
    at(20_000);
    expect(alarms).toEqual([]);
    expect(backs).toEqual([]);
    w.close();
  });
});
