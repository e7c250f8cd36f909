/** --observe-priority: the observer's priority as each device's daemon gets it. */
import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { addProxyOptions, resolveDevices, serviceOptions, type ProxyCliOptions } from '../../src/cli/proxy-options';

function observeRealtime(args: string[]): boolean | undefined {
  // the proxy command's own --listen and --connect, as src/cli/proxy-command.ts declares them
  const cmd = addProxyOptions(new Command('proxy').exitOverride().option('--listen <path>').option('--connect <path>'));
  cmd.parse(['--listen', '/tmp/l.sock', '--connect', '/tmp/c.sock', '--observe', ...args], { from: 'user' });
  const { global, devices } = resolveDevices(cmd.opts() as ProxyCliOptions, cmd);
  return serviceOptions(global, devices).devices[0].daemon.observeRealtime;
}

describe('--observe-priority', () => {
  it('auto (the default): real-time only with --rings, whose per-request latencies need its stamps', () => {
    expect(observeRealtime([])).toBe(false);
    expect(observeRealtime(['--rings=headers', '--device', 'blk'])).toBe(true);
  });

  it('realtime and normal say so whatever --rings is', () => {
    expect(observeRealtime(['--observe-priority', 'realtime'])).toBe(true);
    expect(observeRealtime(['--observe-priority', 'normal', '--rings'])).toBe(false);
  });
});
