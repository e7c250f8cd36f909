/**
 * Replay as the front-end against scripted back-ends that misbehave in one way each: every kind
 * of divergence is reported where it happened, and a GET_VRING_BASE answer is excused only when
 * it is exactly the base the replay set.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { HEADER_SIZE, parseHeader, Request } from '../../src/protocol';
import { replayAsFrontend, type ReplayResult } from '../../src/replay/frontend';
import { buildScript, loadRecording, type Script, type Step } from '../../src/replay/script';
import type { MessageEvent, ProxyEvent } from '../../src/events/events';
import { until } from '../helpers';
import { scriptedBackend } from '../peers';

const REC = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-blk-qsd.vhsrec');
const script: Script = buildScript(loadRecording(REC).records);

/** What the scripted back-end does with the n-th request it receives (the replay's step n). */
type Answer = (step: Step, n: number, send: (raw: Buffer) => void) => void;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function replayAgainst(answer: Answer, steps: number, emit?: (e: ProxyEvent) => void): Promise<ReplayResult> {
  let n = 0;
  let handled = 0;
  const peer = scriptedBackend('replay-div', ({ fds }, { ch }) => {
    for (const f of fds) native.close(f);
    const i = n++;
    answer(script.frontend[i], i, (raw) => ch.send(raw));
    handled++;
  });
  cleanups.push(peer.close);
  const sock = peer.path;
  // each request goes out once the back-end has answered the one before and the loop has taken in
  // what it sent: what arrives unasked is then always seen before the next request, never as its reply
  const beforeStep = async (_s: Step, i: number): Promise<void> => {
    await until(() => handled >= i);
    await new Promise((r) => setTimeout(r, 20));
  };
  return replayAsFrontend(
    { ...script, frontend: script.frontend.slice(0, steps) },
    { connect: sock, pace: 'fast', timeoutMs: 300, beforeStep, ...(emit ? { emit } : {}) },
  );
}

/** the recorded back-end's own answer */
const faithful: Answer = (step, _n, send) => {
  if (step.replyRaw) send(step.replyRaw);
};

const firstWithReply = script.frontend.findIndex((s) => s.replyRaw);

describe('replay as the front-end reports each divergence', () => {
  it('the recording has the shape these cases rely on', () => {
    expect(firstWithReply).toBeGreaterThanOrEqual(0);
    expect(script.frontend.some((s) => parseHeader(s.raw).request === Request.GET_VRING_BASE && s.replyRaw)).toBe(true);
  });

  it('none against the recorded answers', async () => {
    const r = await replayAgainst(faithful, firstWithReply + 3);
    expect(r.divergences).toEqual([]);
    expect(r.sent).toBe(firstWithReply + 3);
  });

  it('records its own run: one session from start to end, every request and answer in order, counted', async () => {
    const events: ProxyEvent[] = [];
    const steps = firstWithReply + 3;
    const r = await replayAgainst(faithful, steps, (e) => events.push(e));
    expect(events[0]).toMatchObject({ type: 'session-start', session: script.session, listenPath: '', frontend: 'listen', interpose: false });
    expect((events[0] as { connectPath: string }).connectPath).toMatch(/peer\.sock$/);
    const msgs = events.filter((e): e is MessageEvent => e.type === 'message' && e.channel === 'main');
    expect(msgs.every((m) => m.findings.length === 0 && m.session === script.session)).toBe(true);
    const sent = msgs.filter((m) => m.dir === 'F>B');
    expect(sent.map((m) => [m.sender, m.decoded.name])).toEqual(script.frontend.slice(0, steps).map((s) => ['frontend', s.request.decoded.name]));
    const answered = msgs.filter((m) => m.dir === 'B>F');
    expect(answered.every((m) => m.sender === 'backend' && m.decoded.reply)).toBe(true);
    expect(answered.length).toBeGreaterThan(0);
    expect(events.at(-1)).toEqual(
      expect.objectContaining({
        type: 'session-end',
        session: script.session,
        reason: 'replay finished',
        by: 'proxy',
        messages: { 'F>B': r.sent, 'B>F': answered.length },
        fdsForwarded: 0,
        vrings: [],
        relayPairs: [],
      }),
    );
  });

  it('no-reply: a back-end that stays silent where a reply is due', async () => {
    const r = await replayAgainst((step, n, send) => n !== firstWithReply && faithful(step, n, send), firstWithReply + 2);
    const step = script.frontend[firstWithReply];
    expect(r.divergences).toEqual([
      expect.objectContaining({ index: step.index, request: step.request.decoded.name, kind: 'no-reply', live: 'nothing within 300 ms' }),
    ]);
  });

  it('unexpected-message: a back-end that sends what nobody asked for, mid-session and after the last request', async () => {
    const extra = script.frontend[firstWithReply].replyRaw!;
    const name = script.frontend[firstWithReply].request.decoded.name;
    const r = await replayAgainst((step, n, send) => {
      faithful(step, n, send);
      if (n === 0 || n === firstWithReply + 1) send(extra); // one more answer than was asked for
    }, firstWithReply + 2);
    expect(r.divergences.map((d) => `${d.kind} ${d.request} at ${d.index}`)).toEqual([
      `unexpected-message ${name} at ${script.frontend[1].index}`,
      `unexpected-message ${name} at -1`,
    ]);
  });

  it('reply-differs: a reply to another request, and a reply whose fields differ', async () => {
    const step = script.frontend[firstWithReply];
    const other = script.frontend.find((s, i) => i > firstWithReply && s.replyRaw && parseHeader(s.raw).request !== parseHeader(step.raw).request)!;
    const wrongCode = await replayAgainst((st, n, send) => (n === firstWithReply ? send(other.replyRaw!) : faithful(st, n, send)), firstWithReply + 1);
    expect(wrongCode.divergences).toEqual([
      expect.objectContaining({
        index: step.index,
        kind: 'reply-differs',
        recorded: `${step.request.decoded.name} reply`,
        live: `${other.request.decoded.name} reply`,
        fields: ['request code'],
      }),
    ]);
    // GET_FEATURES answered with INDIRECT_DESC flipped
    const features = script.frontend.findIndex((s) => parseHeader(s.raw).request === Request.GET_FEATURES && s.replyRaw);
    const more = Buffer.from(script.frontend[features].replyRaw!);
    more.writeBigUInt64LE(more.readBigUInt64LE(HEADER_SIZE) ^ (1n << 28n), HEADER_SIZE);
    const changed = await replayAgainst((st, n, send) => (n === features ? send(more) : faithful(st, n, send)), features + 1);
    expect(changed.divergences).toHaveLength(1);
    expect(changed.divergences[0]).toMatchObject({ index: script.frontend[features].index, request: 'GET_FEATURES', kind: 'reply-differs' });
    expect(changed.divergences[0]!.fields.join(' ')).toMatch(/INDIRECT_DESC/);
  });

  it('a live answer the recording has no reply for is a note, not a divergence', async () => {
    const noReply: Script = {
      ...script,
      frontend: script.frontend.map((st, i) => (i === firstWithReply ? { ...st, reply: undefined, replyRaw: undefined } : st)),
    };
    let n = 0;
    const peer = scriptedBackend('replay-noreply', ({ fds }, { ch }) => {
      for (const f of fds) native.close(f);
      const st = script.frontend[n++];
      if (st?.replyRaw) ch.send(st.replyRaw);
    });
    cleanups.push(peer.close);
    const sock = peer.path;
    const r = await replayAsFrontend({ ...noReply, frontend: noReply.frontend.slice(0, firstWithReply + 1) }, { connect: sock, pace: 'fast', timeoutMs: 1000 });
    expect(r.divergences).toEqual([]);
    expect(r.notes).toEqual([
      `#${script.frontend[firstWithReply].index} ${script.frontend[firstWithReply].request.decoded.name}: answered live, but the recording has no reply to compare with`,
    ]);
  });

  it('connection-closed: a back-end that hangs up mid-session ends the replay at the next request', async () => {
    let n = 0;
    const peer = scriptedBackend('replay-closed', ({ fds }, { ch }) => {
      for (const f of fds) native.close(f);
      const st = script.frontend[n++]!;
      if (n === 1 && st.replyRaw) ch.send(st.replyRaw);
      if (n === 1) setTimeout(() => ch.close(), 10);
    });
    cleanups.push(peer.close);
    const sock = peer.path;
    const beforeStep = async (_s: Step, i: number): Promise<void> => {
      if (i === 1) await new Promise((r) => setTimeout(r, 200));
    };
    const r = await replayAsFrontend({ ...script, frontend: script.frontend.slice(0, 6) }, { connect: sock, pace: 'fast', timeoutMs: 1000, beforeStep });
    expect(r.divergences).toEqual([
      expect.objectContaining({ index: script.frontend[1].index, kind: 'connection-closed', live: 'the peer closed the connection' }),
    ]);
    expect(r.sent).toBe(1);
  });

  it('reply-differs on GET_VRING_BASE unless the back-end answers the base the replay set', async () => {
    // the replayed SET_VRING_BASE before a GET_VRING_BASE (0 when none)
    const baseBefore = (i: number): number => {
      const vring = script.frontend[i]!.raw.readUInt32LE(HEADER_SIZE);
      const set = script.frontend
        .slice(0, i)
        .filter((s) => parseHeader(s.raw).request === Request.SET_VRING_BASE && s.raw.readUInt32LE(HEADER_SIZE) === vring)
        .at(-1);
      return set ? set.raw.readUInt32LE(HEADER_SIZE + 4) : 0;
    };
    // one whose recorded answer reflects guest I/O (it differs from the base the replay sets)
    const at = script.frontend.findIndex(
      (s, i) => parseHeader(s.raw).request === Request.GET_VRING_BASE && s.replyRaw && s.replyRaw.readUInt32LE(HEADER_SIZE + 4) !== baseBefore(i),
    );
    expect(at).toBeGreaterThan(0);
    const vring = script.frontend[at].raw.readUInt32LE(HEADER_SIZE);
    const base = baseBefore(at);
    const answering =
      (num: number): Answer =>
      (step, n, send) => {
        if (n !== at) return faithful(step, n, send);
        const raw = Buffer.from(step.replyRaw!);
        raw.writeUInt32LE(num, HEADER_SIZE + 4);
        send(raw);
      };
    const recordedNum = script.frontend[at].replyRaw!.readUInt32LE(HEADER_SIZE + 4);
    const wrong = Math.max(base, recordedNum) + 17;
    const bad = await replayAgainst(answering(wrong), at + 1);
    expect(bad.divergences).toEqual([
      expect.objectContaining({ index: script.frontend[at].index, kind: 'reply-differs', fields: [expect.stringMatching(/^num:/)] }),
    ]);
    const good = await replayAgainst(answering(base), at + 1);
    expect(good.divergences).toEqual([]);
    expect(good.notes).toContain(
      `#${script.frontend[at].index} GET_VRING_BASE vring ${vring}: ${base} (= the replayed SET_VRING_BASE; the recorded ${recordedNum} reflects guest I/O a replay does not reproduce)`,
    );
    // the recorded value itself is taken as it is (it is what the recording says)
    expect((await replayAgainst(answering(recordedNum), at + 1)).divergences).toEqual([]);
  });
});
