/**
 * `proxy --config FILE`: several devices in one daemon (one session id space, each log line
 * naming its device, a control socket each), SIGHUP re-reading the fault rules all or nothing,
 * and config errors that name the key.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client';
import { Peer, waitForSocket } from '../../src/demo/process';
import { CLI } from '../../lab/proxy-process';
import { native } from '../../src/native';
import { encodeMessage, Request } from '../../src/protocol';
import type { DaemonStatus } from '../../src/events/status';
import { tmpDir, until } from '../helpers';
import { answering, scriptedBackend, type ScriptedBackend } from '../peers';
import { Command } from 'commander';
import { knownOptions, registerProxy } from '../../src/cli/proxy-command';
import { loadProxyConfig } from '../../src/cli/proxy-config';

const ROOT = path.resolve(__dirname, '..', '..');

/** A backend that answers GET_FEATURES and GET_PROTOCOL_FEATURES. */
const backend = (sock: string): ScriptedBackend =>
  scriptedBackend(sock, answering({ [Request.GET_FEATURES]: Buffer.alloc(8), [Request.GET_PROTOCOL_FEATURES]: Buffer.alloc(8) }));

/** A frontend on `sock`; ask() sends a request and resolves with whether a reply came within `ms`. */
function frontend(sock: string) {
  const replies: Buffer[] = [];
  const ch = new native.Channel(
    native.connectUnix(sock),
    65536,
    (m) => replies.push(m),
    () => {},
  );
  ch.start();
  return {
    ch,
    async ask(req: number, ms = 3000): Promise<boolean> {
      const before = replies.length;
      ch.send(encodeMessage(req, 1));
      try {
        await until(() => replies.length > before, ms, 'a reply');
        return true;
      } catch {
        return false;
      }
    },
  };
}

const logOf = (file: string): Record<string, unknown>[] =>
  fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('proxy --config', () => {
  it('runs every device of the file in one daemon, with one session id space and SIGHUP rule reloads', async () => {
    const dir = tmpDir('config');
    const p = (n: string): string => path.join(dir, n);
    const rules = p('rules.json');
    fs.writeFileSync(rules, '[]');
    fs.writeFileSync(
      p('proxy.json'),
      JSON.stringify({
        rules,
        'stats-interval': 0,
        devices: [
          { name: 'vm1-net0', listen: p('a.sock'), connect: p('ba.sock'), device: 'net' },
          { name: 'vm2-blk0', listen: p('b.sock'), connect: p('bb.sock'), control: p('vm2.ctl'), fault: ['drop GET_FEATURES nth=2'] },
        ],
      }),
    );
    const ba = backend(p('ba.sock'));
    const bb = backend(p('bb.sock'));
    const log = p('proxy.log');
    const daemon = new Peer(process.execPath, [CLI, 'proxy', '--config', p('proxy.json'), '--json'], { name: 'proxy', logFile: log, timeoutMs: 60_000 });
    try {
      await waitForSocket(p('b.sock'), 20_000, daemon);
      const a = frontend(p('a.sock'));
      const b = frontend(p('b.sock'));
      expect(await a.ask(Request.GET_FEATURES)).toBe(true);
      expect(await b.ask(Request.GET_FEATURES)).toBe(true);
      // one session per device, numbered from one counter, each on its own control socket
      const sa = (await controlRequest(p('a.sock.ctl'), { cmd: 'status' })) as DaemonStatus;
      const sb = (await controlRequest(p('vm2.ctl'), { cmd: 'status' })) as DaemonStatus;
      expect([sa.listen, sa.sessions.map((s) => s.session)]).toEqual([p('a.sock'), [1]]);
      expect([sb.listen, sb.sessions.map((s) => s.session)]).toEqual([p('b.sock'), [2]]);
      const messages = logOf(log).filter((r) => r.event === 'message');
      expect(new Set(messages.map((r) => `${r.dev} s${r.session}`))).toEqual(new Set(['vm1-net0 s1', 'vm2-blk0 s2']));
      // a device's own "fault" rules apply to its sessions only
      expect(logOf(log).some((r) => r.msg === 'fault rule 1: drop GET_FEATURES nth=2 device=vm2-blk0')).toBe(true);
      expect(await a.ask(Request.GET_FEATURES)).toBe(true);
      expect(await b.ask(Request.GET_FEATURES, 500)).toBe(false);

      // SIGHUP: the rules file now drops GET_PROTOCOL_FEATURES; applies to every device at once
      expect(await a.ask(Request.GET_PROTOCOL_FEATURES)).toBe(true);
      fs.writeFileSync(rules, JSON.stringify([{ action: 'drop', match: { request: 'GET_PROTOCOL_FEATURES' } }]));
      daemon.child.kill('SIGHUP');
      await until(() => logOf(log).some((r) => /SIGHUP: fault rules reloaded/.test(String(r.msg))), 5000, 'the reload');
      expect(await a.ask(Request.GET_PROTOCOL_FEATURES, 500)).toBe(false);
      expect(await b.ask(Request.GET_PROTOCOL_FEATURES, 500)).toBe(false);
      // a broken file changes nothing, and says why
      fs.writeFileSync(rules, '[{"action": "explode"}]');
      daemon.child.kill('SIGHUP');
      await until(() => logOf(log).some((r) => /SIGHUP: the rules were not reloaded, the old ones stay/.test(String(r.msg))), 5000, 'the refusal');
      expect(await b.ask(Request.GET_PROTOCOL_FEATURES, 500)).toBe(false);
      fs.writeFileSync(rules, '[]');
      daemon.child.kill('SIGHUP');
      await until(() => logOf(log).filter((r) => /SIGHUP: fault rules reloaded/.test(String(r.msg))).length === 2, 5000, 'the second reload');
      expect(await b.ask(Request.GET_PROTOCOL_FEATURES)).toBe(true);
      expect(daemon.alive).toBe(true);
      a.ch.close();
      b.ch.close();
    } finally {
      daemon.kill('SIGTERM');
      expect(await daemon.waitExit(10_000)).toBe(0);
      ba.close();
      bb.close();
    }
    expect(fs.existsSync(p('a.sock'))).toBe(false);
    expect(fs.existsSync(p('vm2.ctl'))).toBe(false);
  });

  it.each([
    [{ devices: [] }, /"devices" must list at least one/],
    [{ devices: [{ listen: '/x' }] }, /devices\[0\] needs "listen" and "connect"/],
    [{ devices: [{ listen: '/x', connect: '/y', rings: true }] }, /devices\[0\]\."rings": a device sets only/],
    [{ listn: '/x', devices: [{ listen: '/x', connect: '/y' }] }, /"listn" is not an option a config file sets/],
    [{ 'connect-timeout': 'abc', devices: [{ listen: '/x', connect: '/y' }] }, /--connect-timeout "abc"/],
    [
      {
        devices: [
          { listen: '/x', connect: '/y' },
          { listen: '/x', connect: '/z' },
        ],
      },
      /two devices listen on \/x/,
    ],
  ])('refuses %j with a message naming the problem', (config, message) => {
    const dir = tmpDir('config-bad');
    fs.writeFileSync(path.join(dir, 'c.json'), JSON.stringify(config));
    const r = spawnSync(process.execPath, [CLI, 'proxy', '--config', path.join(dir, 'c.json')], { encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(fs.readdirSync(dir)).toEqual(['c.json']);
  });

  it('accepts the example config shipped in packaging/', () => {
    const program = new Command();
    registerProxy(program);
    const proxy = program.commands.find((c) => c.name() === 'proxy')!;
    const config = loadProxyConfig(path.join(ROOT, 'packaging', 'vhostscope.example.json'), knownOptions(proxy));
    expect(config.devices.map((d) => [d.name, d.options.device])).toEqual([
      ['vm1-net0', 'net'],
      ['vm1-fs0', 'fs'],
    ]);
    expect(config.options).toMatchObject({ keep: '2GiB', keepFor: '7d', check: true, metrics: '127.0.0.1:9464' });
  });

  it('ships a systemd unit that systemd-analyze accepts', () => {
    const dir = tmpDir('unit');
    const unit = fs.readFileSync(path.join(ROOT, 'packaging', 'systemd', 'vhostscope@.service'), 'utf8');
    // the unit as installed runs /usr/bin/vhostscope; here, the CLI of this checkout
    const local = unit.replace('/usr/bin/vhostscope', `${process.execPath} ${CLI}`).replace(/^Documentation=.*$/m, 'Documentation=file:///dev/null');
    expect(local).not.toBe(unit);
    fs.writeFileSync(path.join(dir, 'vhostscope@test.service'), local);
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', path.join(dir, 'vhostscope@test.service')], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    expect([r.status, r.stderr.trim()]).toEqual([0, '']);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/vhostscope proxy --config \/etc\/vhostscope\/%i\.json --json$/m);
    expect(unit).toMatch(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  });
});
