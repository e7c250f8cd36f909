/**
 * The recordings of real sessions in recordings/ (scripts/make-recordings.sh): every frame
 * reads back, every message is a known request that validates, and each holds what its
 * scenario must show.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { summarize } from '../../src/analysis/summary';
import type { MessageEvent } from '../../src/events/events';
import { readRecording, recordingEvents } from '../../src/recording/reader';

const DIR = path.resolve(__dirname, '..', '..', 'recordings');
const files = fs
  .readdirSync(DIR)
  .filter((f) => f.endsWith('.vhsrec'))
  .sort();

const expected: Record<string, { sessions: number; requests: string[]; notes?: string }> = {
  'dpdk-net-txonly.vhsrec': { sessions: 1, requests: ['SET_OWNER', 'SET_MEM_TABLE', 'SET_VRING_KICK', 'SET_STATUS', 'GET_VRING_BASE'] },
  'qemu-net-testpmd.vhsrec': { sessions: 1, requests: ['SET_BACKEND_REQ_FD', 'SET_MEM_TABLE', 'SET_VRING_KICK', 'SET_VRING_CALL', 'SET_VRING_ENABLE'] },
  'qemu-net-backend-restart.vhsrec': { sessions: 2, requests: ['SET_MEM_TABLE', 'SET_VRING_BASE', 'SET_VRING_KICK'] },
  'qemu-blk-qsd.vhsrec': { sessions: 1, requests: ['GET_CONFIG', 'GET_MAX_MEM_SLOTS', 'ADD_MEM_REG', 'GET_VRING_BASE'] },
  'qemu-fs-virtiofsd.vhsrec': { sessions: 1, requests: ['ADD_MEM_REG', 'SET_VRING_NUM', 'SET_VRING_KICK'] },
  // source and destination QEMU of a live migration, through one daemon to one testpmd
  'qemu-net-migration.vhsrec': { sessions: 2, requests: ['SET_FEATURES', 'SET_MEM_TABLE', 'SET_VRING_BASE', 'GET_VRING_BASE'] },
  // the same with vhost-user-blk (one qemu-storage-daemon, two exports of one image)
  'qemu-blk-migration.vhsrec': { sessions: 2, requests: ['SET_FEATURES', 'ADD_MEM_REG', 'SET_VRING_BASE', 'GET_VRING_BASE'] },
  // QEMU 10 with the Rust virtiofsd: the device state moves through SET_DEVICE_STATE_FD's pipe
  'qemu10-fs-migration.vhsrec': { sessions: 2, requests: ['SET_DEVICE_STATE_FD', 'CHECK_DEVICE_STATE', 'SET_VRING_BASE', 'GET_VRING_BASE'] },
};

describe('recordings of real sessions', () => {
  it('has one for each real scenario, each at most 1 MiB', () => {
    expect(files).toEqual(Object.keys(expected).sort());
    for (const f of files) expect(fs.statSync(path.join(DIR, f)).size).toBeLessThanOrEqual(1 << 20);
  });

  it.each(files)('%s reads back whole, known and valid', (f) => {
    const scan = readRecording(path.join(DIR, f));
    expect(scan.torn).toBeUndefined();
    expect(scan.records[0]).toMatchObject({ type: 'header', version: 1, host: { byteOrder: 'LE' } });
    const events = recordingEvents(scan.records, { notifications: true });
    const msgs = events.filter((e): e is MessageEvent => e.type === 'message');
    expect(msgs.filter((m) => !m.decoded.known)).toEqual([]);
    expect(msgs.flatMap((m) => m.findings.map((x) => `${m.decoded.name}: ${x.rule}`))).toEqual([]);
    const sum = summarize(scan.records);
    const want = expected[f];
    expect(sum.sessions).toHaveLength(want.sessions);
    for (const s of sum.sessions) {
      for (const r of want.requests) expect(Object.keys(s.requests)).toContain(r);
      expect(s.endReason).toBeDefined();
      // the session end's own message counts agree with the messages recorded
      const end = scan.records.find((r) => r.type === 'session-end' && r.session === s.session) as { messages: { 'F>B': number; 'B>F': number } };
      expect(s.messages).toEqual(end.messages);
      expect(s.features.protocolInUse).toContain('REPLY_ACK');
      // notifications recorded = notifications the session end counted
      const counted = (
        scan.records.find((r) => r.type === 'session-end' && r.session === s.session) as { vrings: { kicks: number; calls: number; errs: number }[] }
      ).vrings.reduce((n, v) => n + v.kicks + v.calls + v.errs, 0);
      expect(Object.values(s.notifications).reduce((n, v) => n + v.events, 0)).toBe(counted);
    }
    // every fd that came with a message was identified
    expect(msgs.flatMap((m) => m.fds).filter((d) => d.kind === 'unknown')).toEqual([]);
  });
});
