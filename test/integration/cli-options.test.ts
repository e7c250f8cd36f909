/** `vhostscope proxy` refuses option values it cannot mean, before it opens anything. */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Command } from 'commander';
import { numberOption, modeOption } from '../../src/cli/numbers';
import { deviceOption, dialectOption, jsonOption, numberOpt } from '../../src/cli/options';
import { CLI, startProxy } from '../../lab/proxy-process';
import { tmpDir } from '../helpers';

describe('numeric options', () => {
  it('accepts numbers in range and names the option of one that is not', () => {
    expect(numberOption('--connect-timeout', '30000', { min: 0, integer: true })).toBe(30000);
    expect(numberOption('--stats-interval', '0.5', { min: 0 })).toBe(0.5);
    expect(() => numberOption('--connect-timeout', 'abc', { min: 0, integer: true })).toThrow('--connect-timeout "abc": want an integer >= 0');
    expect(() => numberOption('--relay-nice', '25', { min: -20, max: 19, integer: true })).toThrow('--relay-nice "25": want an integer >= -20 <= 19');
    expect(() => numberOption('--stats-interval', '', { min: 0 })).toThrow(/--stats-interval/);
    expect(() => numberOption('--relay-spin-us', '1e400', { min: 0 })).toThrow(/--relay-spin-us/);
    expect(modeOption('--mode', '0660')).toBe(0o660);
    expect(() => modeOption('--mode', '999')).toThrow('--mode "999": want an octal file mode such as 0600');
  });

  it.each([
    [['--connect-timeout', 'abc'], /--connect-timeout "abc"/],
    [['--mode', '999'], /--mode "999"/],
    [['--stats-interval', '-1'], /--stats-interval "-1"/],
    [['--metrics', 'localhost'], /--metrics localhost: give HOST:PORT/],
    [['--metrics', '127.0.0.1:70000'], /--metrics 127.0.0.1:70000: give HOST:PORT/],
    [['--owner', 'no-such-user-here'], /--owner no-such-user-here: no such user in \/etc\/passwd/],
    [['--group', 'no-such-group-here'], /--group no-such-group-here: no such group in \/etc\/group/],
  ])('proxy %j exits 2 with a clear message and leaves no socket or recording behind', (args, message) => {
    const dir = tmpDir('cli-opt');
    const r = spawnSync(
      process.execPath,
      [CLI, 'proxy', '--listen', path.join(dir, 'fe.sock'), '--connect', path.join(dir, 'be.sock'), '--record', path.join(dir, 'r.vhsrec'), ...args],
      { encoding: 'utf8', timeout: 20_000 },
    );
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(fs.readdirSync(dir)).toEqual([]);
  });

  it('proxy --metrics on an address in use exits 2 before it listens or records', async () => {
    const dir = tmpDir('cli-metrics');
    const busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as net.AddressInfo).port;
    try {
      const r = spawnSync(
        process.execPath,
        [
          CLI,
          'proxy',
          '--listen',
          path.join(dir, 'fe.sock'),
          '--connect',
          path.join(dir, 'be.sock'),
          '--record',
          path.join(dir, 'r.vhsrec'),
          '--metrics',
          `127.0.0.1:${port}`,
        ],
        { encoding: 'utf8', timeout: 20_000 },
      );
      expect(r.status).toBe(2);
      expect(r.stderr).toContain(`--metrics 127.0.0.1:${port}: the address is in use`);
      expect(fs.readdirSync(dir)).toEqual([]);
    } finally {
      busy.close();
    }
  });
});

describe("the listening socket's owner", () => {
  it('--owner nobody --group nogroup --mode 660: a socket a non-root peer of that group can use, no world bits', async () => {
    const dir = tmpDir('cli-owner');
    const fe = path.join(dir, 'fe.sock');
    const p = await startProxy({
      listen: fe,
      connect: path.join(dir, 'be.sock'),
      args: ['--owner', 'nobody', '--group', 'nogroup', '--mode', '660', '--no-control'],
      logFile: path.join(dir, 'proxy.log'),
    });
    try {
      const st = fs.lstatSync(fe);
      expect([st.isSocket(), st.uid, st.gid, st.mode & 0o777]).toEqual([true, 65534, 65534, 0o660]);
    } finally {
      p.kill('SIGTERM');
      expect(await p.waitExit(10_000)).toBe(0);
    }
  });
});

describe('shared option builders', () => {
  const parse = (args: string[]): Record<string, unknown> => {
    const cmd = new Command().exitOverride().configureOutput({ writeErr: () => undefined });
    cmd
      .addOption(deviceOption('generic'))
      .addOption(dialectOption())
      .addOption(numberOpt('--session <n>', 'a session', { min: 1, integer: true }))
      .addOption(numberOpt('--timeout <ms>', 'ms', { min: 0 }, 5000))
      .addOption(jsonOption());
    return cmd.parse(args, { from: 'user' }).opts();
  };

  it('hand the command checked values, and defaults as numbers', () => {
    expect(parse([])).toEqual({ device: 'generic', timeout: 5000 });
    expect(parse(['--device', 'blk', '--dialect', 'crosvm', '--session', '3', '--timeout', '2.5', '--json'])).toEqual({
      device: 'blk',
      dialect: 'crosvm',
      session: 3,
      timeout: 2.5,
      json: true,
    });
  });

  it('refuse a value the option cannot mean, naming it', () => {
    expect(() => parse(['--device', 'nic'])).toThrow(/--device nic: one of net, blk/);
    expect(() => parse(['--dialect', 'qemu'])).toThrow(/--dialect qemu: one of standard/);
    expect(() => parse(['--session', '0'])).toThrow(/--session "0": want an integer >= 1/);
    expect(() => parse(['--timeout', 'soon'])).toThrow(/--timeout "soon": want a number >= 0/);
  });

  it('proxy --observe-priority takes realtime, normal or auto, and nothing else, before it listens', () => {
    const r = spawnSync(
      process.execPath,
      [CLI, 'proxy', '--listen', '/nonexistent/l.sock', '--connect', '/nonexistent/c.sock', '--observe', '--observe-priority', 'fast'],
      {
        encoding: 'utf8',
      },
    );
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--observe-priority must be realtime, normal or auto, not fast/);
  });

  it('reach the commands: `top --interval` out of range stops before connecting', () => {
    const r = spawnSync(process.execPath, [CLI, 'top', '--interval', '0', '--control', '/nonexistent.ctl'], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--interval "0": want a number >= 0.1 <= 3600/);
  });
});
