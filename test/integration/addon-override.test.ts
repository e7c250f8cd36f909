/**
 * VHOSTSCOPE_ADDON as root (sudo -E keeps it): only a root-owned file no one else may change,
 * in a directory no one else controls; anything else would run another user's code as root.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkAddonOverride } from '../../src/native';
import { tmpDir } from '../helpers';

const BUILT = path.resolve(__dirname, '../../build/Release/vhostscope_native.node');

describe('VHOSTSCOPE_ADDON as root', () => {
  it('refuses a file another user owns or may write, or one in a directory others control', () => {
    const dir = tmpDir('addon');
    const f = path.join(dir, 'a.node');
    fs.copyFileSync(BUILT, f);
    fs.chmodSync(f, 0o644);
    expect(() => checkAddonOverride(f)).not.toThrow();
    fs.chmodSync(f, 0o666);
    expect(() => checkAddonOverride(f)).toThrow(`VHOSTSCOPE_ADDON=${f}: refusing to load it as root: others may write it (mode 666)`);
    fs.chmodSync(f, 0o644);
    fs.chownSync(f, 65534, 65534);
    expect(() => checkAddonOverride(f)).toThrow(/refusing to load it as root: it is owned by uid 65534/);
    fs.chownSync(f, 0, 0);
    fs.chmodSync(dir, 0o777);
    expect(() => checkAddonOverride(f)).toThrow(/refusing to load it as root: .* is writable by every user/);
  });

  it('the daemon does not start with such an addon, and says why', () => {
    const dir = tmpDir('addon-cli');
    const f = path.join(dir, 'a.node');
    fs.copyFileSync(BUILT, f);
    fs.chownSync(f, 65534, 65534);
    // the built CLI, as root runs it (npm test builds dist/ first)
    const r = spawnSync(
      process.execPath,
      [path.resolve(__dirname, '../../dist/cli/main.js'), 'proxy', '--listen', path.join(dir, 'l.sock'), '--connect', path.join(dir, 'c.sock')],
      { env: { ...process.env, VHOSTSCOPE_ADDON: f }, encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('refusing to load it as root: it is owned by uid 65534');
  });
});
