/**
 * Replay as the back-end, in process, against scripted front-ends: the recorded replies served
 * byte for byte to a faithful front-end, and every way a live front-end can differ reported.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { isReplyExpected, newNegotiation, applyMainMessage, parseHeader, encodeMessage, HEADER_SIZE, Request } from '../../src/protocol';
import { replayAsBackend } from '../../src/replay/backend';
import type { ReplayResult } from '../../src/replay/frontend';
import type { FdDescription, MessageEvent, ProxyEvent } from '../../src/events/events';
import { buildScript, loadRecording, type Script, type Step } from '../../src/replay/script';
import { tmpDir, until } from '../helpers';

const REC = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-blk-qsd.vhsrec');
const script: Script = buildScript(loadRecording(REC).records);

const channels: Channel[] = [];
afterEach(() => {
  for (const c of channels.splice(0)) c.close();
});

/** a fresh fd of the kind the recording describes (as the live front-end would send) */
function fdLike(f: FdDescription): number {
  if (f.kind === 'memfd') return native.memfdCreate(f.memfdName ?? 'guest', f.size ?? 4096);
  if (f.kind === 'socket') {
    const [a, b] = native.socketpair();
    native.close(b);
    return a;
  }
  return native.eventfd(0);
}

/**
 * Runs the replayed back-end and a front-end that sends `steps` in order, each once the reply of
 * the one before (if due) has come; resolves with the replay's result and the replies received.
 */
async function frontendSends(
  steps: Step[],
  opts: { strict?: boolean; emit?: (e: ProxyEvent) => void; closeAfter?: boolean } = {},
): Promise<{ result: ReplayResult; replies: Buffer[]; sock: string }> {
  const sock = path.join(tmpDir('replay-be'), 'be.sock');
  const { closeAfter, ...replayOpts } = opts;
  const replay = replayAsBackend(script, { listen: sock, idleTimeoutMs: 300, timeoutMs: 5000, ...replayOpts });
  const replies: Buffer[] = [];
  let closed = false;
  let fe: Channel | undefined;
  for (const end = Date.now() + 5000; !fe && Date.now() < end; ) {
    try {
      fe = new native.Channel(
        native.connectUnix(sock),
        1 << 20,
        (m, fds) => {
          for (const f of fds) native.close(f);
          replies.push(m);
        },
        () => (closed = true),
      );
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  fe!.start();
  channels.push(fe!);
  const n = newNegotiation();
  for (const s of steps) {
    if (closed) break;
    fe!.send(s.raw, s.fds.map(fdLike));
    const h = parseHeader(s.raw);
    applyMainMessage(n, h.request, h.flags, s.raw.subarray(HEADER_SIZE));
    if (isReplyExpected('main', h.request, h.flags, n)) {
      const want = replies.length + 1;
      await until(() => replies.length >= want || closed, 5000, `the reply to ${s.request.decoded.name}`);
    }
  }
  if (closeAfter) fe!.close();
  return { result: await replay, replies, sock };
}

describe('replay as the back-end', () => {
  it('serves a faithful front-end the recorded replies, byte for byte, with nothing to report but its silence', async () => {
    const { result, replies } = await frontendSends(script.frontend);
    expect(result.divergences).toEqual([]);
    const served = script.frontend.filter((s) => s.replyServed).map((s) => s.replyServed!.toString('hex'));
    expect(replies.map((r) => r.toString('hex'))).toEqual(served);
    expect(result.sent).toBe(served.length);
    expect(result.notes).toEqual(['the frontend was silent for 300 ms: replay ended']);
  });

  it('a front-end that skips a request: the difference reported, the replay resynchronised after it', async () => {
    const skip = script.frontend.findIndex((s, i) => i > 0 && !s.replyServed && script.frontend[i + 1]?.request.decoded.request !== s.request.decoded.request);
    const steps = script.frontend.filter((_, i) => i !== skip);
    const { result } = await frontendSends(steps);
    expect(result.divergences[0]).toMatchObject({
      index: script.frontend[skip]!.index,
      kind: 'reply-differs',
      recorded: script.frontend[skip]!.request.decoded.name,
      fields: ['request'],
    });
    expect(result.divergences).toHaveLength(1);
    // the skipped request counts as passed over: the rest of the recording came
    expect(result.notes).toEqual([
      `resynchronised: skipped 1 recorded request(s) to ${script.frontend[skip + 1]!.request.decoded.name}`,
      'the frontend was silent for 300 ms: replay ended',
    ]);
  });

  it('a request whose payload differs: reported at its step with the field, and the session goes on', async () => {
    const at = script.frontend.findIndex((s) => parseHeader(s.raw).request === Request.SET_FEATURES);
    const changed = Buffer.from(script.frontend[at]!.raw);
    changed.writeBigUInt64LE(changed.readBigUInt64LE(HEADER_SIZE) ^ (1n << 28n), HEADER_SIZE); // INDIRECT_DESC flipped
    const steps = script.frontend.map((s, i) => (i === at ? { ...s, raw: changed } : s));
    const { result } = await frontendSends(steps);
    expect(result.divergences).toHaveLength(1);
    expect(result.divergences[0]).toMatchObject({ index: script.frontend[at]!.index, request: 'SET_FEATURES', kind: 'reply-differs' });
    expect(result.divergences[0]!.fields.join(' ')).toMatch(/INDIRECT_DESC/);
    expect(result.notes).toEqual(['the frontend was silent for 300 ms: replay ended']);
  });

  it('--strict ends at a differing payload, and counts what never came', async () => {
    const at = script.frontend.findIndex((s) => parseHeader(s.raw).request === Request.SET_FEATURES);
    const changed = Buffer.from(script.frontend[at]!.raw);
    changed.writeBigUInt64LE(changed.readBigUInt64LE(HEADER_SIZE) ^ (1n << 28n), HEADER_SIZE);
    const { result } = await frontendSends(
      script.frontend.map((s, i) => (i === at ? { ...s, raw: changed } : s)),
      { strict: true },
    );
    expect(result.divergences).toHaveLength(1);
    expect(result.notes).toContain(`${script.frontend.length - at - 1} recorded request(s) never came from the live frontend`);
  });

  it('a request the recording never had: reported, answered with the success its layout allows, no resync', async () => {
    const at = script.frontend.findIndex((s) => parseHeader(s.raw).request === Request.SET_BACKEND_REQ_FD);
    const getStatus = { ...script.frontend[0]!, raw: encodeMessage(Request.GET_STATUS, 1, Buffer.alloc(0)), fds: [] };
    const steps = [...script.frontend.slice(0, at), getStatus, ...script.frontend.slice(at)];
    const { result, replies } = await frontendSends(steps);
    expect(result.divergences).toEqual([
      expect.objectContaining({ index: script.frontend[at]!.index, request: 'GET_STATUS', recorded: 'SET_BACKEND_REQ_FD', fields: ['request'] }),
    ]);
    expect(result.notes).toEqual(['GET_STATUS: no recorded reply, answered 8 bytes of success', 'the frontend was silent for 300 ms: replay ended']);
    // the status reply: a u64 of 0 with the reply flag, between the recorded ones
    const served = script.frontend.filter((s) => s.replyServed);
    const before = served.filter((s) => script.frontend.indexOf(s) < at).length;
    expect(replies[before]).toEqual(encodeMessage(Request.GET_STATUS, 5, Buffer.alloc(8)));
    expect(replies).toHaveLength(served.length + 1);
  });

  it('acks a NEED_REPLY the recording never saw answered with a u64 0, as QEMU 10 sets it on SET_VRING_ENABLE', async () => {
    const at = script.frontend.findIndex((s) => parseHeader(s.raw).request === Request.SET_VRING_ENABLE);
    const flagged = Buffer.from(script.frontend[at]!.raw);
    flagged.writeUInt32LE(flagged.readUInt32LE(4) | 0x8, 4);
    const { result, replies } = await frontendSends(script.frontend.map((s, i) => (i === at ? { ...s, raw: flagged } : s)));
    const ack = replies.find((r) => r.readUInt32LE(0) === Request.SET_VRING_ENABLE);
    expect(ack).toEqual(encodeMessage(Request.SET_VRING_ENABLE, 5, Buffer.alloc(8)));
    expect(result.notes).toContain('SET_VRING_ENABLE: no recorded reply, answered 8 bytes of success');
  });

  it('--strict ends at the first difference', async () => {
    const steps = [...script.frontend];
    const swapped = steps.splice(2, 1)[0]!;
    steps.splice(5, 0, swapped);
    const { result } = await frontendSends(steps, { strict: true });
    expect(result.divergences).toHaveLength(1);
    expect(result.notes.some((n) => /never came from the live frontend/.test(n))).toBe(true);
  });

  it('records its own run: one session from start to end, every request and answer in order, counted', async () => {
    const events: ProxyEvent[] = [];
    const steps = script.frontend.slice(0, 8);
    const { result, sock } = await frontendSends(steps, { emit: (e) => events.push(e) });
    expect(events[0]).toMatchObject({
      type: 'session-start',
      session: script.session,
      listenPath: sock,
      connectPath: '',
      frontend: 'connect',
      interpose: false,
    });
    const msgs = events.filter((e): e is MessageEvent => e.type === 'message');
    expect(msgs.every((m) => m.channel === 'main' && m.session === script.session)).toBe(true);
    expect(msgs.filter((m) => m.dir === 'F>B').map((m) => m.decoded.name)).toEqual(steps.map((st) => st.request.decoded.name));
    expect(msgs.filter((m) => m.dir === 'B>F').map((m) => m.decoded.reply)).toEqual(Array(result.sent).fill(true));
    expect(result.sent).toBeGreaterThan(0);
    // the front-end stayed, silent: the replay ended on its own and says why
    expect(result.notes).toContain('the frontend was silent for 300 ms: replay ended');
    expect(events.at(-1)).toEqual(
      expect.objectContaining({
        type: 'session-end',
        session: script.session,
        reason: 'closed by the replay',
        by: 'proxy',
        messages: { 'F>B': steps.length, 'B>F': result.sent },
        fdsForwarded: 0,
        vrings: [],
        relayPairs: [],
      }),
    );
  });

  it('a front-end that hangs up ends the replay without a note of silence, the reason in the session end', async () => {
    const events: ProxyEvent[] = [];
    const { result } = await frontendSends(script.frontend.slice(0, 3), { emit: (e) => events.push(e), closeAfter: true });
    expect(result.notes.filter((n) => /silent/.test(n))).toEqual([]);
    expect(events.at(-1)).toMatchObject({ type: 'session-end', reason: 'the peer closed the connection', messages: { 'F>B': 3 } });
  });

  it('a request repeated past the recording: answered with the reply its code got, the difference reported at the end of the recording', async () => {
    const features = script.frontend.find((s) => parseHeader(s.raw).request === Request.GET_FEATURES && s.replyServed)!;
    const { result, replies } = await frontendSends([...script.frontend, features]);
    expect(result.divergences).toEqual([
      expect.objectContaining({ index: -1, request: 'GET_FEATURES', kind: 'reply-differs', recorded: '(end of recording)', fields: ['request'] }),
    ]);
    expect(replies.at(-1)!.toString('hex')).toBe(features.replyServed!.toString('hex'));
  });
});
