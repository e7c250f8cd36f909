/**
 * Finding 4 (--rings): a peer that shrinks a memfd and seals it against shrinking while the
 * daemon looks at it must never get a mapping past the file's end (a read there is a SIGBUS on
 * the relay thread). native/tests/seal_race.cc races GuestMemory::Add against a thread doing
 * exactly that, as fast as both go; with the size read before the seals (the old order) it
 * finds hundreds of such mappings in two seconds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers';

const NATIVE = path.resolve(__dirname, '../../native');

describe('GuestMemory against a peer that shrinks and seals', () => {
  it('never maps more of a file than it holds once sealed', () => {
    const bin = path.join(tmpDir('seal-race'), 'seal_race');
    execFileSync('g++', [
      '-O2',
      '-pthread',
      '-std=c++17',
      `-I${NATIVE}`,
      path.join(NATIVE, 'rings.cc'),
      path.join(NATIVE, 'closer.cc'),
      path.join(NATIVE, 'tests', 'seal_race.cc'),
      '-o',
      bin,
    ]);
    const r = spawnSync(bin, ['2'], { encoding: 'utf8', timeout: 30_000 });
    const m = /^tries (\d+) mapped (\d+) violations (\d+)$/m.exec(r.stdout);
    expect(m, r.stdout + r.stderr).not.toBeNull();
    expect(Number(m![1])).toBeGreaterThan(1000);
    expect(Number(m![3])).toBe(0);
    expect(r.status).toBe(0);
  }, 60_000);
});
