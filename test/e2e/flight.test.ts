/**
 * End to end: the flight recorder around a real DPDK session (testpmd virtio-user <-> proxy <->
 * testpmd vhost). The session is rotated into segment files that each read on their own and
 * together hold every message the daemon logged; `vhostscope mark` and SIGUSR1 pin windows that
 * `vhostscope ls` shows; retention deletes a previous daemon's recordings older than --keep-for
 * at start and keeps the recent one.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runDpdkScenario } from '../../src/demo/dpdk-scenario';
import { listSegments, readPins } from '../../src/recording/flight';
import { readRecording } from '../../src/recording/reader';
import type { HeaderRecord } from '../../src/recording/records';
import { tmpDir } from '../helpers';
import { CLI, ProxyProcess } from './harness/proxy';

const DAY = 86_400_000;
const cli = (...args: string[]): string => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 20_000 });

describe('flight recorder with a DPDK session', () => {
  it('rotates, pins on mark and SIGUSR1, lists, and applies retention to what an earlier daemon left', async () => {
    const work = tmpDir('flight-e2e');
    const dir = path.join(work, 'rec');
    fs.mkdirSync(dir);
    // an earlier daemon's recordings: two from a month ago, one from yesterday
    const ageDays = [31, 30, 1];
    const earlier = ageDays.map((d) => `${new Date(Date.now() - d * DAY).toISOString().replace(/[:.]/g, '-')}-s1`);
    earlier.forEach((name, i) => {
      const f = path.join(dir, `${name}.vhsrec`);
      fs.copyFileSync(path.join(__dirname, '../../recordings/dpdk-net-txonly.vhsrec'), f);
      const t = (Date.now() - ageDays[i] * DAY) / 1000;
      fs.utimesSync(f, t, t);
    });
    const proxy = new ProxyProcess(work, [
      '--record',
      `${dir}/`,
      '--keep',
      '1GiB',
      '--keep-for',
      '7d',
      '--segment-for',
      '1s',
      '--pin-before',
      '2s',
      '--pin-after',
      '1s',
      '--rings',
    ]);
    let listen = '';
    let marked = '';
    try {
      const r = await runDpdkScenario({
        workDir: work,
        mode: 'loop',
        durationS: 3,
        proxy: async (l, c) => {
          listen = l;
          await proxy.starter(l, c);
        },
        onReady: () => {
          marked = cli('mark', '--control', `${listen}.ctl`, 'virtio ready, traffic starts');
          proxy.peer!.child.kill('SIGUSR1');
        },
      });
      expect(r.problems).toEqual([]);
    } finally {
      expect(await proxy.stop()).toBe(0);
    }
    expect(marked).toMatch(/^marked; pin 1 keeps /);
    // retention at start: the month-old recordings went, yesterday's stayed
    const notices = proxy
      .records()
      .filter((r) => r.event === 'notice')
      .map((r) => String(r.msg));
    expect(notices).toContainEqual(expect.stringMatching(/^retention: deleted 2 segment file\(s\)/));
    const segs = listSegments(dir);
    expect(segs.filter((s) => earlier.slice(0, 2).includes(s.session))).toEqual([]);
    expect(segs.filter((s) => s.session === earlier[2])).toHaveLength(1);
    // the session: several segments, each starting with its header and the session's start
    const mine = segs.filter((s) => s.session !== earlier[2]);
    expect(new Set(mine.map((s) => s.session)).size).toBe(1);
    expect(mine.length).toBeGreaterThanOrEqual(2);
    let messages = 0;
    for (const s of mine) {
      const { records, torn } = readRecording(s.file);
      expect(torn).toBeUndefined();
      expect(records.slice(0, 2).map((x) => x.type)).toEqual(['header', 'session-start']);
      expect((records[0] as HeaderRecord).part).toEqual(s.index ? { session: s.session, index: s.index } : undefined);
      messages += records.filter((x) => x.type === 'message').length;
    }
    expect(messages).toBe(proxy.messages().length);
    expect(readRecording(mine.at(-1)!.file).records.at(-1)?.type).toBe('session-end');
    // the pins, as the daemon logged them and as `ls` lists them
    expect(readPins(dir).map((p) => [p.id, p.reason, p.session])).toEqual([
      [1, 'mark: virtio ready, traffic starts', undefined],
      [2, 'SIGUSR1', undefined],
    ]);
    expect(
      proxy
        .records()
        .filter((r) => r.event === 'mark')
        .map((r) => r.msg),
    ).toEqual(['mark: virtio ready, traffic starts', 'mark: SIGUSR1']);
    const ls = cli('ls', dir);
    expect(ls).toMatch(/^.*: 2 session\(s\), .* in \d+ segment file\(s\); 2 pin\(s\)/);
    expect(ls).toMatch(new RegExp(`${mine[0]!.session} .*pinned by 1, 2`));
    expect(ls).toMatch(/pin 1: .*, every session: mark: virtio ready, traffic starts/);
    expect(ls).toMatch(/pin 2: .*, every session: SIGUSR1/);
  }, 120_000);
});
