/**
 * The installable package: `npm pack` makes a tarball with the prebuilt addon and without tests or the test harness (lab/)
 * or fixtures; `npm install -g` of it (into a scratch prefix) uses the prebuild instead of
 * compiling, and the installed `vhostscope` runs.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tmpDir } from '../helpers';

const ROOT = path.resolve(__dirname, '..', '..');
const npm = (args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string =>
  execFileSync('npm', args, { cwd, encoding: 'utf8', timeout: 300_000, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });

describe('npm package', () => {
  it('packs the prebuilt addon and no tests, installs without compiling, and runs', () => {
    const work = tmpDir('pack');
    const out = npm(['pack', '--json', '--pack-destination', work], ROOT);
    const tarball = path.join(work, (JSON.parse(out.slice(out.indexOf('['))) as { filename: string }[])[0]!.filename);
    const files = execFileSync('tar', ['tzf', tarball], { encoding: 'utf8' }).split('\n').filter(Boolean);
    expect(files).toContain(`package/prebuilds/${process.platform}-${process.arch}/vhostscope_native.node`);
    expect(files).toContain('package/dist/cli/main.js');
    // cross-built for arm64 (g++-aarch64-linux-gnu): an ELF shared object for AArch64 (e_machine 183)
    expect(files).toContain('package/prebuilds/linux-arm64/vhostscope_native.node');
    const arm = execFileSync('tar', ['xzOf', tarball, 'package/prebuilds/linux-arm64/vhostscope_native.node']);
    expect([arm.subarray(0, 4).toString('latin1'), arm.readUInt16LE(16), arm.readUInt16LE(18)]).toEqual(['\x7fELF', 3, 183]);
    expect(files).toContain('package/packaging/systemd/vhostscope@.service');
    for (const dir of ['test/', 'bench/', 'recordings/', 'src/', 'build/', 'node_modules/', 'lab/'])
      expect(
        files.filter((f) => f.startsWith(`package/${dir}`)),
        dir,
      ).toEqual([]);

    const prefix = path.join(work, 'prefix');
    const log = npm(['install', '-g', '--prefix', prefix, '--foreground-scripts', tarball], work, { npm_config_cache: path.join(work, 'npm-cache') });
    expect(log).toMatch(/using the prebuilt addon prebuilds\/linux-x64\/vhostscope_native\.node/);
    const installed = path.join(prefix, 'lib', 'node_modules', 'vhostscope');
    expect(fs.existsSync(path.join(installed, 'build'))).toBe(false); // nothing was compiled
    const bin = path.join(prefix, 'bin', 'vhostscope');
    expect(execFileSync(bin, ['--help'], { encoding: 'utf8' })).toMatch(/proxy .*\n[\s\S]*attach/);
    expect(execFileSync(bin, ['info', path.join(ROOT, 'recordings', 'dpdk-net-txonly.vhsrec')], { encoding: 'utf8' })).toMatch(/session 1: /);
    // the addon loads from the prebuild and works
    expect(
      execFileSync(
        process.execPath,
        [
          '-e',
          `const { native } = require(${JSON.stringify(path.join(installed, 'dist', 'native'))}); const fd = native.eventfd(0); native.close(fd); console.log('addon ok')`,
        ],
        { encoding: 'utf8' },
      ),
    ).toBe('addon ok\n');
    expect(execFileSync(bin, ['completion', 'bash'], { encoding: 'utf8' })).toMatch(/complete -o filenames -F _vhostscope vhostscope/);
    // the installed demo: real testpmd peers through the installed proxy
    expect(execFileSync(bin, ['demo', '--seconds', '1', '--work', path.join(work, 'demo')], { encoding: 'utf8', timeout: 180_000 })).toMatch(
      /counts match on both sides: every packet crossed/,
    );
  }, 600_000);
});
