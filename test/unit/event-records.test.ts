/**
 * What each event becomes in a recording (src/recording/event-records.ts): a message's optional
 * marks present exactly when set, a large payload cut at exactly 64 KiB, the notification batch's
 * time deltas when the relay's timestamps go back, a session end's optional fields; and which
 * device each recorded session carries (src/recording/devices.ts).
 */
import { describe, expect, it } from 'vitest';
import { encodeMessage, HEADER_SIZE, Request } from '../../src/protocol';
import type { MessageEvent, NotificationEvent, SessionEndEvent } from '../../src/events/events';
import { deviceOf, recordingDevices } from '../../src/recording/devices';
import {
  deviceStateRecord,
  messageRecord,
  NotifyBatch,
  RECORD_PAYLOAD_PREFIX,
  RECORD_WHOLE_PAYLOAD,
  recordedBytes,
  sessionEndRecord,
} from '../../src/recording/event-records';
import type { RecordingRecord } from '../../src/recording/records';

const msg = (extra: Partial<MessageEvent> = {}): MessageEvent => ({
  type: 'message',
  ts: 7n,
  session: 1,
  channel: 'main',
  sender: 'frontend',
  dir: 'F>B',
  raw: encodeMessage(Request.GET_FEATURES, 1),
  decoded: undefined as never,
  fds: [],
  findings: [],
  ...extra,
});
const note = (ts: bigint, replaced?: boolean): NotificationEvent => ({
  type: 'notification',
  ts,
  session: 1,
  vring: 3,
  kind: 'call',
  count: 2,
  ...(replaced ? { replaced } : {}),
});

describe('event records', () => {
  it("a message's marks are recorded exactly when set", () => {
    expect(Object.keys(messageRecord(msg())).sort()).toEqual(['channel', 'dir', 'fds', 'raw', 'session', 'ts', 'type']);
    const received = encodeMessage(Request.GET_FEATURES, 5);
    const all = messageRecord(
      msg({ received, interposed: true, injected: true, absorbed: true, faults: ['r1'], undelivered: 'answered', heldNs: 0n, fdsAt: 12 }),
    );
    expect(all).toEqual({
      type: 'message',
      ts: 7n,
      session: 1,
      channel: 'main',
      dir: 'F>B',
      raw: received,
      fds: [],
      forwarded: encodeMessage(Request.GET_FEATURES, 1),
      interposed: true,
      injected: true,
      absorbed: true,
      faults: ['r1'],
      undelivered: 'answered',
      heldNs: 0n, // held for no time is still held
      fdsAt: 12,
    });
    expect(messageRecord(msg({ fdsAt: 0 }))).not.toHaveProperty('fdsAt'); // with the header's first byte, as it should
  });

  it('keeps a payload of up to 64 KiB whole, and of a larger one the header and its first 4 KiB', () => {
    const whole = encodeMessage(Request.GPU_SET_SOCKET, 1, Buffer.alloc(RECORD_WHOLE_PAYLOAD, 1));
    expect(recordedBytes(whole)).toBe(whole);
    const big = encodeMessage(Request.GPU_SET_SOCKET, 1, Buffer.alloc(RECORD_WHOLE_PAYLOAD + 1, 2));
    const cut = recordedBytes(big);
    expect(cut.length).toBe(HEADER_SIZE + RECORD_PAYLOAD_PREFIX);
    expect(cut.readUInt32LE(8)).toBe(RECORD_WHOLE_PAYLOAD + 1); // the header keeps the real size
    expect(cut.equals(big.subarray(0, cut.length))).toBe(true);
    big.fill(0); // a copy, not a view of the sender's buffer
    expect(cut[HEADER_SIZE]).toBe(2);
  });

  it('batches notifications as time deltas from the latest so far (0 when the relay stamped one earlier), and marks replaced ones', () => {
    const b = new NotifyBatch(1, 100n);
    expect(b.add(note(150n))).toBe(1);
    b.add(note(120n, true)); // earlier than the last: 0, and the last stays 150
    b.add(note(160n));
    expect(b.record).toEqual({ type: 'notify', session: 1, ts0: 100n, dt: [50, 0, 10], vk: [3 * 4 + 1, 13, 13], c: [2, 2, 2], replaced: [1] });
  });

  it("a session's end and a device-state transfer carry their optional fields only when there is something", () => {
    const end: SessionEndEvent = {
      type: 'session-end',
      ts: 1n,
      session: 1,
      reason: 'x',
      messages: { 'F>B': 1, 'B>F': 2 },
      fdsForwarded: 3,
      vrings: [],
      relayPairs: [],
    };
    expect(sessionEndRecord(end, 0, 0)).not.toHaveProperty('by');
    expect(sessionEndRecord(end, 0, 0)).not.toHaveProperty('droppedRings');
    expect(sessionEndRecord({ ...end, by: 'backend' }, 4, 5)).toMatchObject({ by: 'backend', droppedNotifications: 4, droppedRings: 5 });
    const ds = { type: 'device-state', ts: 1n, session: 1, direction: 'save', startNs: 0n, bytes: 10 } as const;
    expect(Object.keys(deviceStateRecord(ds as never)).sort()).toEqual(['bytes', 'direction', 'session', 'startNs', 'ts', 'type']);
    expect(deviceStateRecord({ ...ds, error: 'e', data: Buffer.from('d'), truncated: true, heldMs: 5 } as never)).toMatchObject({
      error: 'e',
      data: Buffer.from('d'),
      truncated: true,
      heldMs: 5,
    });
  });
});

describe('recorded devices', () => {
  const start = (session: number): RecordingRecord =>
    ({ type: 'session-start', ts: 0n, session, listen: '/l', connect: '/c', frontend: 'auto', interpose: true, peers: {} }) as never;
  const gpuSocket = (session: number): RecordingRecord =>
    ({ type: 'message', ts: 1n, session, channel: 'main', dir: 'F>B', raw: encodeMessage(Request.GPU_SET_SOCKET, 1), fds: [] }) as never;
  const device = (session: number, d: string, reason: string): RecordingRecord => ({ type: 'device', ts: 2n, session, device: d, reason }) as never;

  it('--device names every session; else the device records; else the inference run again for sessions without one', () => {
    const records = [start(1), start(2), start(3), gpuSocket(2), device(1, 'net', 'config size 12'), gpuSocket(1), gpuSocket(9)];
    expect([...recordingDevices(records, 'blk')]).toEqual([
      [1, { device: 'blk', reason: '--device' }],
      [2, { device: 'blk', reason: '--device' }],
      [3, { device: 'blk', reason: '--device' }],
    ]);
    const found = recordingDevices(records);
    expect(found.get(1)).toEqual({ device: 'net', reason: 'config size 12' }); // its record wins over what its messages say
    expect(found.get(2)).toEqual({ device: 'gpu', reason: 'GPU_SET_SOCKET' });
    expect(found.has(3)).toBe(false);
    expect(deviceOf(found, 3)).toBe('generic');
    expect(deviceOf(found, 2)).toBe('gpu');
    // every session has its record: the messages are not read (session 1's GPU_SET_SOCKET does not count)
    expect([...recordingDevices([start(1), gpuSocket(1), device(1, 'net', 'r')])]).toEqual([[1, { device: 'net', reason: 'r' }]]);
    expect(recordingDevices([device(5, 'fs', 'r')]).get(5)).toEqual({ device: 'fs', reason: 'r' });
  });
});
