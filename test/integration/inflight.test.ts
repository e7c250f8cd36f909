/**
 * `--rings` reads the inflight region a front-end hands the back-end with SET_INFLIGHT_FD, through
 * a daemon: as handed over (what a restarted back-end must resubmit) and as the session leaves
 * it; only memfds are read, and check names a region no back-end would write (VU045).
 * test/e2e/dpdk-vhost-blk.test.ts reads a real one (QEMU and DPDK's vhost_blk).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Checker } from '../../src/analysis/checker';
import type { InflightEvent, NoticeEvent, ProxyEvent } from '../../src/events/events';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import { ProxyDaemon } from '../../src/proxy/daemon';
import { INFLIGHT_DESC, INFLIGHT_QUEUE_HEADER } from '../../src/rings/inflight';
import { tmpDir, until } from '../helpers';
import { scriptedBackend, scriptedFrontend, u64 } from '../peers';

const cleanup: (() => void)[] = [];
afterEach(() => {
  while (cleanup.length) cleanup.pop()!();
});

const QUEUE = 8;
const STRIDE = 192; // align64(16 x 8 + 16)

/** SET_INFLIGHT_FD's payload: mmap_size, mmap_offset, num_queues, queue_size */
const inflightPayload = (mmapSize: number, queues: number): Buffer => {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(BigInt(mmapSize), 0);
  b.writeUInt16LE(queues, 16);
  b.writeUInt16LE(QUEUE, 18);
  return b;
};
/** marks `head` of queue `q` in flight in the region behind `fd`, as a back-end would */
const take = (fd: number, q: number, head: number, counter: number): void => {
  const d = Buffer.alloc(INFLIGHT_DESC);
  d[0] = 1;
  d.writeBigUInt64LE(BigInt(counter), 8);
  fs.writeSync(fd, d, 0, d.length, q * STRIDE + INFLIGHT_QUEUE_HEADER + head * INFLIGHT_DESC);
};
const setUp = (fd: number, q: number, version: number, descNum: number): void => {
  const h = Buffer.alloc(4);
  h.writeUInt16LE(version, 0);
  h.writeUInt16LE(descNum, 2);
  fs.writeSync(fd, h, 0, 4, q * STRIDE + 8);
};

/** One session through a --rings daemon: SET_FEATURES, then `times` SET_INFLIGHT_FD of `region`; `between` runs before it ends. */
async function session(region: number, queues: number, between: () => void = () => {}, times = 1): Promise<ProxyEvent[]> {
  const dir = tmpDir('inflight');
  const be = scriptedBackend(path.join(dir, 'be.sock'), (g) => g.fds.forEach((fd) => native.close(fd)));
  cleanup.push(() => be.close());
  const events: ProxyEvent[] = [];
  const daemon = new ProxyDaemon({ listenPath: path.join(dir, 'fe.sock'), connectPath: be.path, rings: 'headers', emit: (e) => events.push(e) });
  daemon.start();
  cleanup.push(() => daemon.stop());
  const fe = scriptedFrontend(path.join(dir, 'fe.sock'));
  cleanup.push(() => fe.close());
  fe.send(encodeMessage(Request.SET_FEATURES, 1, u64(1n << 32n)));
  for (let i = 0; i < times; i++) fe.send(encodeMessage(Request.SET_INFLIGHT_FD, 1, inflightPayload(queues * STRIDE, queues)), [native.dup(region)]);
  await until(() => be.got.length === 1 + times, 5000, 'the back-end to get every SET_INFLIGHT_FD');
  between();
  fe.close();
  await until(() => events.some((e) => e.type === 'session-end'), 5000, 'the session to end');
  return events;
}

describe('the inflight region (--rings)', () => {
  it('is read as handed over and as the session leaves it: version, size, the heads in flight in the order taken', async () => {
    const region = native.memfdCreate('inflight', 2 * STRIDE);
    cleanup.push(() => native.close(region));
    setUp(region, 0, 1, QUEUE);
    take(region, 0, 5, 2);
    take(region, 0, 3, 1);
    const events = await session(region, 2, () => {
      // the back-end completes 3 and 5 and takes 7, and sets up queue 1
      fs.writeSync(region, Buffer.alloc(INFLIGHT_DESC), 0, INFLIGHT_DESC, INFLIGHT_QUEUE_HEADER + 3 * INFLIGHT_DESC);
      fs.writeSync(region, Buffer.alloc(INFLIGHT_DESC), 0, INFLIGHT_DESC, INFLIGHT_QUEUE_HEADER + 5 * INFLIGHT_DESC);
      take(region, 0, 7, 3);
      setUp(region, 1, 1, QUEUE);
    });
    const readings = events.filter((e): e is InflightEvent => e.type === 'inflight');
    expect(
      readings.map((r) => [r.when, r.numQueues, r.queueSize, r.mmapSize, r.queues.map((q) => `${q.version}/${q.descNum}: ${q.inflight.join(',')}`)]),
    ).toEqual([
      ['SET_INFLIGHT_FD', 2, QUEUE, 2 * STRIDE, ['1/8: 3,5', '0/0: ']],
      ['session end', 2, QUEUE, 2 * STRIDE, ['1/8: 7', '1/8: ']],
    ]);
    const checker = new Checker();
    expect(events.flatMap((e) => checker.onEvent(e)).filter((f) => f.rule.id === 'VU045')).toEqual([]);
  });

  it('names a region no back-end writes, and reads a short file as far as it goes', async () => {
    const region = native.memfdCreate('inflight', STRIDE);
    cleanup.push(() => native.close(region));
    setUp(region, 0, 3, 16);
    const events = await session(region, 2); // SET_INFLIGHT_FD says two queues; the file holds one
    const [handed] = events.filter((e): e is InflightEvent => e.type === 'inflight');
    expect(handed!.error).toBe(`the file holds ${STRIDE} of the ${2 * STRIDE} bytes SET_INFLIGHT_FD gave`);
    const checker = new Checker();
    const found = events.flatMap((e) => checker.onEvent(e)).filter((f) => f.rule.id === 'VU045');
    expect(found.map((f) => `${f.at}: ${f.detail}`)).toEqual([
      'inflight region at SET_INFLIGHT_FD: vring 0: version 3, not 1',
      'inflight region at SET_INFLIGHT_FD: vring 0: desc_num 16, but the queues have 8 descriptors',
      'inflight region at session end: vring 0: version 3, not 1',
      'inflight region at session end: vring 0: desc_num 16, but the queues have 8 descriptors',
    ]);
  });

  it('reads at most 16 handed-over regions per session, then only the last one at its end', async () => {
    const region = native.memfdCreate('inflight', STRIDE);
    cleanup.push(() => native.close(region));
    const events = await session(region, 1, () => {}, 20);
    const readings = events.filter((e): e is InflightEvent => e.type === 'inflight').map((r) => r.when);
    expect(readings).toEqual([...Array(16).fill('SET_INFLIGHT_FD'), 'session end']);
    expect(events.filter((e): e is NoticeEvent => e.type === 'notice').map((n) => n.msg)).toContain(
      'inflight region: more than 16 SET_INFLIGHT_FD in this session; from now on read only at its end',
    );
  });

  it('reads no fd that is not memory', async () => {
    const [r, w] = native.pipe();
    cleanup.push(() => native.close(w));
    const events = await session(r, 1);
    native.close(r);
    expect(events.filter((e) => e.type === 'inflight')).toEqual([]);
    expect(events.filter((e): e is NoticeEvent => e.type === 'notice').map((n) => n.msg)).toContainEqual(
      expect.stringMatching(/^inflight region: pipe:\[\d+\], not a memfd; not read$/),
    );
  });
});
