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
import { Recorder } from '../../src/recording/recorder';

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

  it('says when the session ran in chaos mode, and how to make the same perturbations again', async () => {
    const dir = tmpDir('bugreport-chaos');
    const file = path.join(dir, 'chaos.vhsrec');
    const rec = new Recorder(file);
    const t = 1_000_000_000n;
    rec.onEvent({ type: 'session-start', ts: t, session: 1, listenPath: '/l', connectPath: '/c', frontend: 'auto', interpose: true, peers: {} });
    const detail = 'F>B SET_VRING_ENABLE(vring 0) held until a kick on vring 0 has passed (at most 30000 ms); later messages go ahead of it';
    rec.onEvent({ type: 'fault', ts: t + 10n, session: 1, rule: '1', text: 'chaos seed=7 profile=enable', action: 'chaos', detail });
    await rec.close();
    const out = path.join(dir, 'br.tar.gz');
    cli(['bugreport', file, '-o', out]);
    const readme = execFileSync('tar', ['xzOf', out, './README.txt'], { encoding: 'utf8' });
    expect(readme).toContain('The session ran in chaos mode: chaos seed=7 profile=enable (--chaos 7:enable on the proxy makes the same perturbations again).');
    expect(execFileSync('tar', ['xzOf', out, './info.txt'], { encoding: 'utf8' })).toContain('chaos seed=7 profile=enable');
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
