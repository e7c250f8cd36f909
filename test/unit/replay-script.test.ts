/**
 * What a replay plays (src/replay/script.ts) and the resources it sends (resources.ts), in
 * process: the replay end-to-end tests run the CLI in other processes, where a mutation testing
 * tool's mutants are not active. Real recordings where they show it, made-up records for what
 * no recorded peer did.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { u64 } from '../../lab/synthetic-peers';
import { native } from '../../src/native';
import { encodeMessage, FLAG_NEED_REPLY, FLAG_REPLY, Request } from '../../src/protocol';
import type { MessageRecord, RecordingRecord } from '../../src/recording/records';
import { encodeFrame } from '../../src/recording/frames';
import { makeFds } from '../../src/replay/resources';
import { buildScript, loadRecording, RecordingError } from '../../src/replay/script';
import { tmpDir } from '../helpers';

const REC = path.resolve(__dirname, '../../recordings');

function msg(session: number, channel: MessageRecord['channel'], dir: MessageRecord['dir'], raw: Buffer, extra: Partial<MessageRecord> = {}): MessageRecord {
  return { type: 'message', ts: 1000n, session, channel, dir, raw, fds: [], ...extra };
}

describe('a replay script from a real recording', () => {
  it("qemu-blk-qsd: the frontend's requests in order, each with its reply, the injected ones left out", () => {
    const { records, torn } = loadRecording(path.join(REC, 'qemu-blk-qsd.vhsrec'));
    expect(torn).toBeUndefined();
    const s = buildScript(records);
    expect(s.session).toBe(1);
    expect(s.frontend).toHaveLength(33);
    expect(s.frontend.slice(0, 6).map((x) => [x.index, x.request.decoded.name, x.reply?.decoded.name ?? null])).toEqual([
      [0, 'GET_FEATURES', 'GET_FEATURES'],
      [2, 'GET_PROTOCOL_FEATURES', 'GET_PROTOCOL_FEATURES'],
      [4, 'SET_PROTOCOL_FEATURES', null],
      [5, 'GET_QUEUE_NUM', 'GET_QUEUE_NUM'],
      [7, 'GET_MAX_MEM_SLOTS', 'GET_MAX_MEM_SLOTS'],
      [9, 'SET_BACKEND_REQ_FD', 'SET_BACKEND_REQ_FD'],
    ]);
    expect(s.frontend[5].fds.map((f) => f.kind)).toEqual(['socket']);
    expect(s.frontend.filter((x) => x.reply)).toHaveLength(11);
    // the one reply the proxy changed (it masks the notification features it cannot see):
    // compared as the backend sent it, served as the frontend got it
    const masked = s.frontend.filter((x) => x.replyRaw && x.replyServed && !x.replyRaw.equals(x.replyServed));
    expect(masked.map((x) => x.request.decoded.name)).toEqual(['GET_PROTOCOL_FEATURES']);
    expect(masked[0].reply!.raw.equals(masked[0].replyRaw!)).toBe(true);
    expect(masked[0].replyRaw!.readBigUInt64LE(12) & ~masked[0].replyServed!.readBigUInt64LE(12)).not.toBe(0n);
    // the proxy's own CONFIG_CHANGE_MSG and the reply it kept are no steps
    expect(s.backendChannel).toEqual([]);
    expect(s.frontend.some((x) => x.request.injected || x.reply?.absorbed)).toBe(false);
  });

  it('a session chosen by id; an id without messages is refused', () => {
    const { records } = loadRecording(path.join(REC, 'qemu-net-migration.vhsrec'));
    expect(buildScript(records).session).toBe(1);
    const two = buildScript(records, 2);
    expect([two.session, two.frontend.length]).toEqual([2, 40]);
    expect(two.frontend.every((x) => x.request.session === 2)).toBe(true);
    expect(() => buildScript(records, 99)).toThrow(new RecordingError('session 99 has no messages in this recording'));
    expect(() => buildScript(records.filter((r) => r.type !== 'message'))).toThrow('the recording holds no session with messages');
  });
});

describe('a replay script from made-up records', () => {
  it("the backend channel: the backend's requests with the frontend's replies; a reply finds the latest open request of its code", () => {
    const records: RecordingRecord[] = [
      msg(1, 'main', 'F>B', encodeMessage(Request.GET_FEATURES, 1)),
      msg(1, 'backend', 'B>F', encodeMessage(3, 1 | FLAG_NEED_REPLY, Buffer.alloc(8))), // VRING_HOST_NOTIFIER_MSG... any code
      msg(1, 'backend', 'B>F', encodeMessage(2, 1 | FLAG_NEED_REPLY)), // CONFIG_CHANGE_MSG
      msg(1, 'backend', 'F>B', encodeMessage(2, 1 | FLAG_REPLY, u64(0n))), // answers the second
      msg(1, 'backend', 'F>B', encodeMessage(7, 1 | FLAG_REPLY, u64(0n))), // answers nothing open
      msg(1, 'main', 'B>F', encodeMessage(Request.GET_FEATURES, 1 | FLAG_REPLY, u64(1n << 32n))),
      msg(2, 'main', 'F>B', encodeMessage(Request.GET_FEATURES, 1)), // another session
    ];
    const s = buildScript(records);
    expect(s.frontend.map((x) => [x.index, x.request.decoded.name, x.reply?.raw.readBigUInt64LE(12)])).toEqual([[0, 'GET_FEATURES', 1n << 32n]]);
    expect(s.backendChannel.map((x) => [x.index, x.request.decoded.request, x.reply ? x.reply.decoded.request : null])).toEqual([
      [1, 3, null],
      [2, 2, 2],
    ]);
    expect(buildScript(records, 2).frontend.map((x) => [x.index, x.reply ?? null])).toEqual([[0, null]]);
  });

  it('a reply the proxy changed: compared as received, served as forwarded', () => {
    const received = encodeMessage(Request.GET_PROTOCOL_FEATURES, 1 | FLAG_REPLY, u64(0x3n));
    const forwarded = encodeMessage(Request.GET_PROTOCOL_FEATURES, 1 | FLAG_REPLY, u64(0x1n));
    const s = buildScript([msg(1, 'main', 'F>B', encodeMessage(Request.GET_PROTOCOL_FEATURES, 1)), msg(1, 'main', 'B>F', received, { forwarded })]);
    const step = s.frontend[0];
    expect(step.replyRaw!.equals(received)).toBe(true);
    expect(step.replyServed!.equals(forwarded)).toBe(true);
    expect(step.reply!.raw.equals(received)).toBe(true);
    expect(step.reply!.decoded.payload).toMatchObject({ protocolFeatures: 0x3n }); // decoded from what was received
  });

  it('a request the proxy changed is replayed as the peer sent it', () => {
    const sent = encodeMessage(Request.SET_FEATURES, 1, u64(0x3n));
    const forwarded = encodeMessage(Request.SET_FEATURES, 1, u64(0x1n));
    const s = buildScript([msg(1, 'main', 'F>B', sent, { forwarded })]);
    expect(s.frontend[0].raw.equals(sent)).toBe(true);
  });
});

describe('loading a recording to replay', () => {
  it('says why a file is not one: unreadable, no header first, torn at the end', () => {
    const dir = tmpDir('replay-load');
    const missing = path.join(dir, 'missing.vhsrec');
    expect(() => loadRecording(missing)).toThrow(new RegExp(`^${missing}: cannot read: ENOENT`));
    const headless = path.join(dir, 'headless.vhsrec');
    fs.writeFileSync(headless, encodeFrame(msg(1, 'main', 'F>B', encodeMessage(Request.GET_FEATURES, 1))));
    expect(() => loadRecording(headless)).toThrow(`${headless}: frame 0 is not a vhostscope recording header`);
    const torn = path.join(dir, 'torn.vhsrec');
    const whole = fs.readFileSync(path.join(REC, 'dpdk-net-txonly.vhsrec'));
    fs.writeFileSync(torn, Buffer.concat([whole, Buffer.from([40, 0, 0, 0, 1, 2, 3])]));
    const r = loadRecording(torn);
    const frames = loadRecording(path.join(REC, 'dpdk-net-txonly.vhsrec')).records.length;
    expect(r.records).toHaveLength(frames);
    expect(r.torn).toBe(`${torn}: frame ${frames} (at byte ${whole.length}) is torn: ${r.torn!.split('is torn: ')[1]}`);
    expect(r.torn).toMatch(new RegExp(`using the ${frames} complete frames before it$`));
    // torn with no header at all: both said
    const tornHeadless = path.join(dir, 'torn-headless.vhsrec');
    fs.writeFileSync(tornHeadless, Buffer.from([40, 0, 0, 0, 1, 2, 3]));
    expect(() => loadRecording(tornHeadless)).toThrow(/frame 0 is not a vhostscope recording header \(.*frame 0 \(at byte 0\) is torn/);
  });
});

describe('resources for a replayed request', () => {
  it('makes each recorded kind afresh, sends one copy and keeps another of the same object', () => {
    const made = makeFds(
      [
        { slot: 0, kind: 'eventfd' },
        { slot: 1, kind: 'socket' },
        { slot: 2, kind: 'memfd', size: 1 << 20 },
        { slot: 3, kind: 'memfd' },
        { slot: 4, kind: 'file', size: 10 },
      ],
      'mem',
    );
    const sent = made.send.map((fd) => native.fdInfo(fd));
    expect(sent.map((i) => i.kind)).toEqual(['eventfd', 'socket', 'memfd', 'memfd', 'memfd']);
    expect(sent.slice(2).map((i) => i.size)).toEqual([1 << 20, 4096, 4096]); // at least a page
    expect(sent.slice(2).map((i) => i.memfdName)).toEqual(['vhostscope-replay-mem', 'vhostscope-replay-mem', 'vhostscope-replay-mem']);
    // kept: the eventfd and the memfds, the same objects as sent
    expect(made.keep).toHaveLength(4);
    expect(native.fdInfo(made.keep[0]).eventfdId).toBe(sent[0].eventfdId);
    expect(made.keep.slice(1).map((fd) => native.fdInfo(fd).inode)).toEqual(sent.slice(2).map((i) => i.inode));
    // the socket: our end is connected to the one sent
    expect(made.sockets).toHaveLength(1);
    fs.writeSync(made.sockets[0], 'x');
    const buf = Buffer.alloc(1);
    expect(fs.readSync(made.send[1], buf)).toBe(1);
    for (const fd of [...made.send, ...made.keep, ...made.sockets]) native.close(fd);
  });
});
