/** Bad or truncated recordings, and peers that never come: clear errors, exit 2, no hang. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers';

const CLI = path.resolve(__dirname, '..', '..', 'dist', 'cli', 'main.js');
const REC = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-blk-qsd.vhsrec');
const run = (...args: string[]) => spawnSync(process.execPath, [CLI, 'replay', ...args], { encoding: 'utf8', timeout: 20_000 });

describe('replay with bad input', () => {
  it('refuses a file that is not a recording, naming the frame', () => {
    const dir = tmpDir('rp-bad');
    const f = path.join(dir, 'junk.vhsrec');
    fs.writeFileSync(f, Buffer.from('this is not a recording at all, just text\n'));
    const r = run(f, '--as', 'frontend', '--connect', path.join(dir, 'x.sock'), '--record', path.join(dir, 'out.vhsrec'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/frame 0 is not a vhostscope recording header \(.*frame 0 \(at byte 0\) is torn/);
  });

  it('replays the complete frames of a truncated recording and says which frame was torn', () => {
    const dir = tmpDir('rp-trunc');
    const f = path.join(dir, 'cut.vhsrec');
    const whole = fs.readFileSync(REC);
    fs.writeFileSync(f, whole.subarray(0, Math.floor(whole.length * 0.6)));
    const r = run(f, '--as', 'frontend', '--connect', path.join(dir, 'nobody.sock'), '--timeout', '500', '--record', path.join(dir, 'out.vhsrec'));
    expect(r.stderr).toMatch(/warning: .*cut\.vhsrec: frame \d+ \(at byte \d+\) is torn: incomplete frame/);
    expect(r.stderr).toMatch(/cannot connect to .*nobody\.sock/);
    expect(r.status).toBe(2);
  });

  it('gives up waiting for a frontend after --timeout', () => {
    const dir = tmpDir('rp-wait');
    const t0 = Date.now();
    const r = run(REC, '--as', 'backend', '--listen', path.join(dir, 'l.sock'), '--timeout', '500', '--record', path.join(dir, 'out.vhsrec'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/nobody connected to .*l\.sock within 500 ms/);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });

  it('names a missing session', () => {
    const dir = tmpDir('rp-sess');
    const r = run(REC, '--as', 'frontend', '--connect', path.join(dir, 'x.sock'), '--session', '9', '--record', path.join(dir, 'out.vhsrec'));
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/session 9 has no messages in this recording/);
  });
});
