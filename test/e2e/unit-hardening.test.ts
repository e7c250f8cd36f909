/**
 * The systemd unit's confinement, proven without systemd as PID 1 (there is none here): the
 * daemon runs attached between two real testpmd peers with exactly the unit's capability
 * bounding set and no new privileges (setpriv), under strace, with the features the unit's
 * comments name (owner and mode of a peer's socket that only its owner may use, --rings,
 * a flight recording, --metrics, a negative relay niceness, the control socket). Every system
 * call it made must be inside the unit's SystemCallFilter, and systemd-analyze's exposure score
 * must be the one docs/proxy-config.md states.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client';
import { runDpdkScenario } from '../../src/demo/dpdk-scenario';
import { freePort, Peer } from '../../src/demo/process';
import { CLI } from '../../lab/proxy-process';
import { readRecording } from '../../src/recording/reader';
import { tmpDir, until } from '../helpers';

const ROOT = path.resolve(__dirname, '../..');
const UNIT = fs.readFileSync(path.join(ROOT, 'packaging', 'systemd', 'vhostscope@.service'), 'utf8');
const directive = (name: string): string => {
  const m = new RegExp(`^${name}=(.*)$`, 'm').exec(UNIT);
  if (!m) throw new Error(`the unit has no ${name}=`);
  return m[1].trim();
};

/** Every system call a SystemCallFilter= line allows, its @groups expanded as this systemd has them. */
function allowedSyscalls(filter: string): Set<string> {
  const groups = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const line of execFileSync('systemd-analyze', ['syscall-filter'], { encoding: 'utf8' }).split('\n')) {
    if (/^@\S+$/.test(line)) groups.set(line, (current = []));
    else if (current && /^\s+[@a-z0-9_-]+$/.test(line)) current.push(line.trim());
  }
  const out = new Set<string>();
  const add = (name: string): void => {
    if (!name.startsWith('@')) return void out.add(name);
    for (const m of groups.get(name) ?? []) add(m);
  };
  for (const n of filter.split(/\s+/)) add(n);
  return out;
}

/** Names of the system calls in `strace -c` output. */
function syscallsUsed(summary: string): string[] {
  return summary
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5 && /^\d/.test(f[0]) && /^[a-z_0-9]+$/.test(f.at(-1)!) && f.at(-1) !== 'total')
    .map((f) => f.at(-1)!);
}

describe('the systemd unit', () => {
  it('systemd-analyze verifies it and scores its exposure as docs/proxy-config.md says', () => {
    const dir = tmpDir('unit-score');
    const file = path.join(dir, 'vhostscope@test.service');
    fs.writeFileSync(file, UNIT.replace('/usr/bin/vhostscope', `${process.execPath} ${CLI}`).replace(/^Documentation=.*$/m, 'Documentation=file:///dev/null'));
    const r = spawnSync('systemd-analyze', ['security', '--offline=true', file], { encoding: 'utf8' });
    const score = /Overall exposure level for .*: (\d+\.\d) (\S+)/.exec(r.stdout);
    expect(score, r.stdout + r.stderr).not.toBeNull();
    expect(Number(score![1])).toBeLessThan(4);
    const doc = fs.readFileSync(path.join(ROOT, 'docs', 'proxy-config.md'), 'utf8');
    expect(doc).toContain(`\`systemd-analyze security\` scores the unit ${score![1]} (${score![2]})`);
  });

  it('its capabilities and system calls are all a daemon between real peers needs', async () => {
    const work = tmpDir('unit-caps');
    const caps = directive('CapabilityBoundingSet')
      .split(/\s+/)
      .map((c) => '+' + c.replace(/^CAP_/, '').toLowerCase());
    const allowed = allowedSyscalls(directive('SystemCallFilter'));
    const rec = path.join(work, 'rec') + '/';
    const summary = path.join(work, 'strace.txt');
    const logFile = path.join(work, 'attach.log');
    const port = await freePort();
    let daemon: Peer | undefined;
    let daemonPid = 0;
    try {
      const r = await runDpdkScenario({
        workDir: work,
        durationS: 2,
        attach: async (shared) => {
          // the peer's socket belongs to another user, usable by it alone: root needs CAP_DAC_OVERRIDE
          // to connect and CAP_CHOWN to give its own socket that owner
          fs.chownSync(shared, 65534, 65534);
          fs.chmodSync(shared, 0o600);
          daemon = new Peer(
            'setpriv',
            [
              '--no-new-privs',
              `--bounding-set=-all,${caps.join(',')}`,
              '--inh-caps=-all',
              'strace',
              '-f',
              '-c',
              '-o',
              summary,
              process.execPath,
              CLI,
              'attach',
              shared,
              '--json',
              '--device',
              'net',
              '--rings',
              '--record',
              rec,
              '--keep',
              '64MiB',
              '--metrics',
              `127.0.0.1:${port}`,
              '--relay-nice',
              '-5',
            ],
            { name: 'attach', logFile, timeoutMs: 300_000 },
          );
          await daemon.waitForLog(/"msg":"attached to /, 60_000);
          // setpriv became strace, which started the daemon
          daemonPid = Number(
            execFileSync('pgrep', ['-P', String(daemon.pid)], { encoding: 'utf8' })
              .trim()
              .split('\n')[0],
          );
        },
      });
      expect(r.problems).toEqual([]);
      const scrape = await fetch(`http://127.0.0.1:${port}/metrics`).then((x) => x.text());
      expect(scrape).toMatch(/vhostscope_sessions_started_total\{listen="[^"]+"\} 1/);
      const control = `${path.join(work, 'vhu.sock')}.ctl`;
      const mark = spawnSync(process.execPath, [CLI, 'mark', '--control', control, "under the unit's confinement"], { encoding: 'utf8' });
      expect(mark.status, mark.stderr).toBe(0);
      // the relay thread got its negative niceness (CAP_SYS_NICE)
      expect(JSON.stringify(await controlRequest(control, { cmd: 'status' }))).toContain('"niceApplied":true');
      process.kill(daemonPid, 'SIGTERM');
      expect(await daemon!.waitExit(20_000)).toBe(0);
    } finally {
      await daemon?.stop(); // (a failure before the SIGTERM must not leave it running)
    }
    const log = daemon!.log();
    expect(log).not.toMatch(/EPERM|Operation not permitted|EACCES|permission denied/i);
    expect(log).not.toMatch(/"level":50/);
    // the recording holds the session, rings included
    const files = fs.readdirSync(rec).filter((f) => f.endsWith('.vhsrec'));
    const records = files.flatMap((f) => readRecording(path.join(rec, f)).records);
    expect(records.some((x) => x.type === 'ring')).toBe(true);
    // and every system call it made is one the unit allows
    await until(() => fs.existsSync(summary) && fs.statSync(summary).size > 0, 10_000, 'the strace summary');
    const used = syscallsUsed(fs.readFileSync(summary, 'utf8'));
    expect(used.length).toBeGreaterThan(30);
    expect(used.filter((s) => !allowed.has(s))).toEqual([]);
  }, 240_000);
});
