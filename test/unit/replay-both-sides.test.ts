/**
 * A recording replayed against itself, in process: its front-end (replayAsFrontend) against its
 * back-end (replayAsBackend). Whatever the replay sends is what was recorded and whatever it
 * answers is what was recorded, so every reply matches but one: the back-end serves replies as
 * the front-end got them, and the front-end compares with what the back-end really said, so the
 * notification features the recording proxy masked in GET_PROTOCOL_FEATURES show as the one
 * difference. The events and log lines are what `vhostscope replay` prints. The CLI's end-to-end test runs the same in other processes, where
 * mutation testing cannot see.
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { MessageEvent, ProxyEvent } from '../../src/events/events';
import { replayAsBackend } from '../../src/replay/backend';
import { replayAsFrontend } from '../../src/replay/frontend';
import { buildScript, loadRecording } from '../../src/replay/script';
import { tmpDir } from '../helpers';

const REC = path.resolve(__dirname, '..', '..', 'recordings');

/** The one expected difference: the protocol features the recording proxy masked. */
const MASKED = { index: 2, request: 'GET_PROTOCOL_FEATURES', kind: 'reply-differs', fields: ['protocol features: -HOST_NOTIFIER'] };

async function bothSides(file: string, opts: { until?: number; pace?: 'original' | 'fast'; frontendListens?: boolean } = {}) {
  const script = buildScript(loadRecording(path.join(REC, file)).records);
  const sock = path.join(tmpDir('replay-both'), 'vhost.sock');
  const feEvents: ProxyEvent[] = [];
  const beEvents: ProxyEvent[] = [];
  const feLog: string[] = [];
  const beLog: string[] = [];
  const steps: number[] = [];
  const [be, fe] = await Promise.all([
    replayAsBackend(script, {
      ...(opts.frontendListens ? { connect: sock } : { listen: sock }),
      idleTimeoutMs: 500,
      timeoutMs: 10_000,
      emit: (e) => beEvents.push(e),
      log: (l) => beLog.push(l),
    }),
    replayAsFrontend(script, {
      ...(opts.frontendListens ? { listen: sock } : { connect: sock }),
      pace: opts.pace ?? 'fast',
      timeoutMs: 10_000,
      emit: (e) => feEvents.push(e),
      log: (l) => feLog.push(l),
      beforeStep: async (_s, n) => void steps.push(n),
      ...(opts.until !== undefined ? { until: opts.until } : {}),
    }),
  ]);
  return { script, fe, be, feEvents, beEvents, feLog, beLog, steps };
}

describe('a recording replayed against itself', () => {
  it("qemu-blk-qsd: every reply matches, both sides say so, and the events are the session's", async () => {
    const r = await bothSides('qemu-blk-qsd.vhsrec');
    expect(r.fe.divergences).toEqual([expect.objectContaining(MASKED)]);
    expect(r.be.divergences).toEqual([]);
    expect(r.fe.sent).toBe(33);
    expect(r.steps).toEqual(Array.from({ length: 33 }, (_, i) => i));
    // a line per request that expects a reply, each the same
    const replied = r.script.frontend.filter((s) => s.reply);
    expect(r.feLog).toEqual(replied.map((s) => `#${s.index} ${s.request.decoded.name}: ${s.index === 2 ? 'DIFFERS' : 'same reply'}`));
    // the front-end's events: the session, each request sent, each reply received, the end
    expect(r.feEvents[0]).toMatchObject({ type: 'session-start', session: 1 });
    expect(r.feEvents.at(-1)).toMatchObject({ type: 'session-end', reason: 'replay finished', messages: { 'F>B': 33 } });
    const sent = r.feEvents.filter((e): e is MessageEvent => e.type === 'message' && e.dir === 'F>B' && e.channel === 'main');
    expect(sent.map((e) => e.decoded.name)).toEqual(r.script.frontend.map((s) => s.request.decoded.name));
    const got = r.feEvents.filter((e): e is MessageEvent => e.type === 'message' && e.dir === 'B>F' && e.channel === 'main');
    expect(got.map((e) => e.decoded.name)).toEqual(replied.map((s) => s.request.decoded.name));
  }, 30_000);

  it('--until N sends the first N requests only', async () => {
    const r = await bothSides('qemu-net-testpmd.vhsrec', { until: 5 });
    expect(r.fe.sent).toBe(5);
    expect(r.fe.divergences.map((d) => d.request)).toEqual(r.fe.divergences.length ? ['GET_PROTOCOL_FEATURES'] : []);
    expect(r.feEvents.filter((e) => e.type === 'message' && e.dir === 'F>B')).toHaveLength(5);
  }, 30_000);

  it("the front-end listening (a back-end that connects, as QEMU's server mode has it), at the recorded pace", async () => {
    // (the first ten requests of qemu-blk-qsd came within 10 ms: the recorded pace keeps the back-end's 500 ms idle bound)
    const r = await bothSides('qemu-blk-qsd.vhsrec', { frontendListens: true, pace: 'original', until: 8 });
    expect(r.fe.sent).toBe(8);
    expect(r.fe.divergences).toEqual([expect.objectContaining(MASKED)]);
    expect(r.be.divergences).toEqual([]);
  }, 30_000);
});
