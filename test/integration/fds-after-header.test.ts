/**
 * fds sent after the header's first byte (vhost-user.rst, 2026: ancillary data travels with the
 * first byte of the header): the native reader says at which byte a message's fds came, the
 * proxy forwards them with the header as the spec asks, and the finding (VU044) is in the live
 * message, in the recording and in `check` on it. A peer that splits its sendmsg this way works
 * through vhostscope and may lose its fds direct, so the finding is what explains the difference.
 */
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Checker } from '../../src/analysis/checker';
import type { MessageEvent, ProxyEvent } from '../../src/events/events';
import { native } from '../../src/native';
import { encodeHeader, encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import { readRecording, recordingEvents } from '../../src/recording/reader';
import { Recorder } from '../../src/recording/recorder';
import { tmpDir, until } from '../helpers';
import { scriptedBackend, scriptedFrontend, u64 } from '../peers';

const cleanup: (() => void)[] = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

describe('fds after the header', () => {
  it('are forwarded with the header, and the finding says at which byte they came', async () => {
    const dir = tmpDir('fds-at');
    const be = scriptedBackend(path.join(dir, 'be.sock'));
    cleanup.push(() => be.close());
    const events: ProxyEvent[] = [];
    const file = path.join(dir, 'rec.vhsrec');
    const rec = new Recorder(file);
    const daemon = new ProxyDaemon({
      listenPath: path.join(dir, 'fe.sock'),
      connectPath: be.path,
      interpose: false,
      emit: (e) => {
        events.push(e);
        rec.onEvent(e);
      },
    });
    daemon.start();
    cleanup.push(() => daemon.stop());
    const fe = scriptedFrontend(path.join(dir, 'fe.sock'));
    cleanup.push(() => fe.close());
    // as the spec asks: one sendmsg, the fd with the header's first byte
    fe.send(encodeMessage(Request.SET_VRING_KICK, 1, u64(0n)), [native.eventfd(0)]);
    // split: the header alone, then the payload with the fd
    fe.send(encodeHeader({ request: Request.SET_VRING_CALL, flags: 1, size: 8 }));
    await new Promise((r) => setTimeout(r, 50)); // two segments on the socket, not one
    fe.send(u64(1n), [native.eventfd(0)]);
    await until(() => be.got.length === 2, 5000, 'both messages at the back-end');
    expect(be.got.map((g) => [g.code, g.fds.length, g.fdsAt])).toEqual([
      [Request.SET_VRING_KICK, 1, 0],
      [Request.SET_VRING_CALL, 1, 0], // forwarded with the header
    ]);
    for (const g of be.got) for (const fd of g.fds) native.close(fd);
    const msgs = events.filter((e): e is MessageEvent => e.type === 'message');
    expect(msgs.map((m) => m.fdsAt)).toEqual([undefined, 12]);
    expect(msgs[0]!.findings).toEqual([]);
    expect(msgs[1]!.findings).toEqual([
      { severity: 'warning', rule: 'fds-after-header', message: "the fd of SET_VRING_CALL came with byte 12 of the message, not with its header's first byte" },
    ]);
    fe.close();
    await until(() => events.some((e) => e.type === 'session-end'), 5000, 'the session to end');
    await rec.close();
    // the recording keeps it, and check names it
    const replayed = recordingEvents(readRecording(file).records);
    expect(replayed.filter((e): e is MessageEvent => e.type === 'message').map((m) => m.fdsAt)).toEqual([undefined, 12]);
    const checker = new Checker();
    const found = replayed.flatMap((e) => checker.onEvent(e)).filter((f) => f.rule.id === 'VU044');
    expect(found.map((f) => `${f.at}: ${f.detail}`)).toEqual([
      "F>B SET_VRING_CALL: the fd of SET_VRING_CALL came with byte 12 of the message, not with its header's first byte",
    ]);
  });
});
