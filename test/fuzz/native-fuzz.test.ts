/** A short fixed-seed pass of the libFuzzer target for the native framing (bench/fuzz/run.sh runs it long). */
import { execFileSync, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers';

const ROOT = path.resolve(__dirname, '..', '..');

describe('native framing fuzzer', () => {
  it('runs 30000 fixed-seed cases with no crash, no sanitizer finding and no fd leak', () => {
    const dir = tmpDir('fuzz');
    const bin = path.join(dir, 'framing_fuzzer');
    execFileSync('clang++-14', [
      '-g',
      '-O1',
      '-std=c++17',
      '-fsanitize=fuzzer,address,undefined',
      `-I${path.join(ROOT, 'native')}`,
      path.join(ROOT, 'native', 'framing.cc'),
      path.join(ROOT, 'native', 'closer.cc'),
      path.join(ROOT, 'native', 'fuzz', 'framing_fuzzer.cc'),
      '-o',
      bin,
    ]);
    const r = spawnSync(bin, ['-seed=1', '-runs=30000', '-max_len=4096', '-print_final_stats=1', `-artifact_prefix=${dir}/`], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, r.stderr.slice(-2000)).toBe(0);
    expect(Number(r.stderr.match(/stat::number_of_executed_units:\s+(\d+)/)?.[1])).toBeGreaterThanOrEqual(30000);
  }, 180_000);
});
