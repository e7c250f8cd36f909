/**
 * Replay as the front-end serves the live back-end's request channel (SET_BACKEND_REQ_FD): a
 * request that wants an answer gets the recorded one, or an ack; one that wants none gets none;
 * both directions go into the replay's own recording.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native, type Channel } from '../../src/native';
import { BackendRequest, encodeMessage, FLAG_NEED_REPLY, HEADER_SIZE, parseHeader, Request } from '../../src/protocol';
import type { ProxyEvent } from '../../src/events/events';
import { replayAsFrontend, type ReplayResult } from '../../src/replay/frontend';
import { buildScript, loadRecording, type Script, type Step } from '../../src/replay/script';
import { u64 } from '../../lab/synthetic-peers';
import { until } from '../helpers';
import { scriptedBackend } from '../peers';

const REC = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-blk-qsd.vhsrec');
const script: Script = buildScript(loadRecording(REC).records);
const CONFIG_CHANGE_MSG = BackendRequest.CONFIG_CHANGE_MSG!;
const BACKEND_REQ_AT = script.frontend.findIndex((s) => parseHeader(s.raw).request === Request.SET_BACKEND_REQ_FD);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/**
 * Replays the first steps against a back-end that answers as recorded and, once it has the
 * back-end channel, sends `requests` on it; returns what came back on that channel.
 */
async function replayWithRequests(
  s: Script,
  requests: Buffer[],
  expectAnswers: number,
): Promise<{ result: ReplayResult; answers: Buffer[]; events: ProxyEvent[] }> {
  const answers: Buffer[] = [];
  const events: ProxyEvent[] = [];
  const subs: Channel[] = [];
  let n = 0;
  const peer = scriptedBackend('replay-bechan', ({ msg: raw, fds }, { ch }) => {
    const step = s.frontend[n++]!;
    if (parseHeader(raw).request === Request.SET_BACKEND_REQ_FD && fds.length === 1) {
      const sub: Channel = new native.Channel(
        fds[0]!,
        1 << 20,
        (reply, more) => {
          for (const f of more) native.close(f);
          answers.push(Buffer.from(reply));
        },
        () => {},
      );
      sub.start();
      subs.push(sub);
      for (const r of requests) sub.send(r);
    } else for (const f of fds) native.close(f);
    if (step.replyRaw) ch.send(step.replyRaw);
  });
  cleanups.push(() => {
    peer.close();
    for (const c of subs) c.close();
  });
  const sock = peer.path;
  // the step after SET_BACKEND_REQ_FD waits for the answers (or for long enough that none will come)
  const beforeStep = async (_s: Step, i: number): Promise<void> => {
    if (i === BACKEND_REQ_AT + 1) await until(() => answers.length >= expectAnswers, 3000).catch(() => undefined);
    if (i === BACKEND_REQ_AT + 1) await new Promise((r) => setTimeout(r, 100));
  };
  const result = await replayAsFrontend(
    { ...s, frontend: s.frontend.slice(0, BACKEND_REQ_AT + 2) },
    { connect: sock, pace: 'fast', timeoutMs: 1000, beforeStep, emit: (e) => events.push(e) },
  );
  return { result, answers, events };
}

const configChange = (flags: number): Buffer => encodeMessage(CONFIG_CHANGE_MSG, flags, Buffer.alloc(0));

describe('replay as the front-end, the back-end request channel', () => {
  it('the recording negotiates REPLY_ACK and hands the back-end its channel', () => {
    expect(BACKEND_REQ_AT).toBeGreaterThan(0);
    const proto = script.frontend.find((s) => parseHeader(s.raw).request === Request.SET_PROTOCOL_FEATURES)!;
    expect(proto.raw.readBigUInt64LE(HEADER_SIZE) & (1n << 3n)).toBe(1n << 3n);
  });

  it('acks a request that asks for a reply, answers nothing to one that does not, and records both ways', async () => {
    const { result, answers, events } = await replayWithRequests(script, [configChange(1), configChange(1 | FLAG_NEED_REPLY)], 1);
    expect(result.divergences).toEqual([]);
    expect(answers).toHaveLength(1);
    // an ack of 0 with the reply flag (the recording holds no back-end request to answer from)
    expect(answers[0]).toEqual(encodeMessage(CONFIG_CHANGE_MSG, 5, Buffer.alloc(8)));
    const backend = events
      .filter((e) => e.type === 'message' && e.channel === 'backend')
      .map((e) => (e.type === 'message' ? `${e.dir} ${e.decoded.name}` : ''));
    expect(backend).toEqual(['B>F CONFIG_CHANGE_MSG', 'B>F CONFIG_CHANGE_MSG', 'F>B CONFIG_CHANGE_MSG']);
  });

  it('answers from the recording when it holds the same request with a reply', async () => {
    const recordedReply = encodeMessage(CONFIG_CHANGE_MSG, 5, u64(7));
    const recorded = {
      ...script.frontend[0]!,
      request: { ...script.frontend[0]!.request, decoded: { ...script.frontend[0]!.request.decoded, request: CONFIG_CHANGE_MSG } },
      replyRaw: recordedReply,
    } as Step;
    const other = {
      ...recorded,
      request: { ...recorded.request, decoded: { ...recorded.request.decoded, request: 3 } },
      replyRaw: encodeMessage(3, 5, u64(9)),
    } as Step;
    const { answers } = await replayWithRequests({ ...script, backendChannel: [other, recorded] }, [configChange(1 | FLAG_NEED_REPLY)], 1);
    expect(answers).toEqual([recordedReply]);
  });
});
