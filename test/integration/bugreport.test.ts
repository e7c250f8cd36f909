/**
 * `vhostscope bugreport`: one archive with the recording, the findings explained, the summary and
 * the peers; report, info, check and show open the archive as they open the recording.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI } from '../../lab/proxy-process';
import { tmpDir } from '../helpers';

const REC = path.resolve(__dirname, '..', '..', 'recordings', 'qemu-blk-qsd.vhsrec');
const cli = (args: string[]): string => execFileSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 60_000 });

describe('vhostscope bugreport', () => {
  it('writes one archive that the other commands open as the recording it holds', () => {
    const dir = tmpDir('bugreport');
    const out = path.join(dir, 'br.tar.gz');
    expect(cli(['bugreport', REC, '-o', out])).toContain(`${out}: open it with "vhostscope report ${out} -o report.html"`);
    expect(
      execFileSync('tar', ['tzf', out], { encoding: 'utf8' })
        .split('\n')
        .filter((l) => l && l !== './')
        .sort(),
    ).toEqual(['./README.txt', './check.txt', './info.txt', './peers.txt', './recording.vhsrec'].sort());
    const inside = (name: string): Buffer => execFileSync('tar', ['xzOf', out, `./${name}`]);
    expect(inside('recording.vhsrec').equals(fs.readFileSync(REC))).toBe(true);
    // the findings with their explanation: QEMU 7.2's kick before enable
    const check = inside('check.txt').toString();
    expect(check).toMatch(/^2 finding\(s\)\n/);
    expect(check).toContain('VU010 kick-before-enable (warning) [catalogue R07, R40]\n  what:   ');
    expect(check).toContain('  fix:    the back-end: look at the ring again when it is enabled');
    expect(inside('peers.txt').toString()).toMatch(/session 1 listen side: pid \d+ uid 0 \/usr\/bin\/qemu-system-x86_64\n {2}qemu-system-x86_64 -machine q35/);
    // the commands take the archive in place of the recording, and say the same
    expect(cli(['check', out])).toBe(cli(['check', REC]));
    expect(cli(['show', out])).toBe(cli(['show', REC]));
    expect(cli(['info', out]).split('\n').slice(1)).toEqual(cli(['info', REC]).split('\n').slice(1)); // (the first line names the file)
    expect(cli(['info', REC])).toMatch(/^ {2}rings at the end: vring 0 stopped, disabled \(since GET_VRING_BASE reply at \d+\.\d+\)$/m);
    const html = path.join(dir, 'r.html');
    cli(['report', out, '-o', html]);
    expect(fs.readFileSync(html, 'utf8')).toContain('<a href="#rule-VU010">');
  });

  it('a gzip file that is not a bug report is refused with a reason', () => {
    const dir = tmpDir('bugreport-bad');
    const gz = path.join(dir, 'x.gz');
    fs.writeFileSync(path.join(dir, 'x'), 'not a recording');
    execFileSync('gzip', [path.join(dir, 'x')]);
    const r = spawnSync(process.execPath, [CLI, 'info', gz], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain(`${gz}: a gzip file, but not a vhostscope bug report (no recording.vhsrec in it)`);
  });
});
