/** The test run's safety net: peers a killed test left running are found and ended. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Peer, processStart } from '../../src/demo/process';
import { endLeftoverPeers, PEER_REGISTRY } from '../global-setup';
import { tmpDir, until } from '../helpers';

/** this process's ancestors' pids */
function ancestors(): number[] {
  const out: number[] = [];
  for (let pid = process.ppid; pid > 1; pid = Number(fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1])) out.push(pid);
  return out;
}

const saved = process.env.VHS_PEER_REGISTRY;
afterEach(() => {
  process.env.VHS_PEER_REGISTRY = saved;
});

describe('peer registry', () => {
  it("is this run's own directory, so that a run beside it keeps its peers", () => {
    const run = Number(path.basename(saved ?? ''));
    expect(saved).toBe(path.join(PEER_REGISTRY, String(run)));
    expect(ancestors()).toContain(run); // the vitest process running this worker
  });

  it('ends the process group of a peer nobody stopped, and forgets a peer that exited', async () => {
    const dir = tmpDir('registry');
    const registry = path.join(dir, 'peers');
    process.env.VHS_PEER_REGISTRY = registry;
    // a peer with a child of its own (a shell running sleep): the whole group must go
    const left = new Peer('sh', ['-c', 'sleep 300 & wait'], { name: 'left', logFile: path.join(dir, 'left.log') });
    const done = new Peer('true', [], { name: 'done', logFile: path.join(dir, 'done.log') });
    await done.waitExit(5000);
    expect(fs.readdirSync(registry)).toEqual([String(left.pid)]);
    await until(() => fs.readFileSync(`/proc/${left.pid}/task/${left.pid}/children`, 'utf8').trim() !== '', 5000, "the shell's sleep");
    const sleeper = Number(fs.readFileSync(`/proc/${left.pid}/task/${left.pid}/children`, 'utf8').trim().split(' ')[0]);
    expect(endLeftoverPeers(registry)).toEqual([`sh (pid ${left.pid})`]);
    await left.waitExit(5000);
    await until(() => !fs.existsSync(`/proc/${sleeper}`) || fs.readFileSync(`/proc/${sleeper}/stat`, 'utf8').split(' ')[2] === 'Z', 5000, 'the sleep ended');
    expect(fs.readdirSync(registry)).toEqual([]);
    expect(endLeftoverPeers(registry)).toEqual([]);
  });

  it("never ends a process that took a registered peer's pid and command later (a bench's node): the start time tells", async () => {
    const dir = tmpDir('registry-reuse');
    const registry = path.join(dir, 'peers');
    fs.mkdirSync(registry);
    // a "peer" entry whose pid is now another process running the same command (this test's own
    // sleep stands for it), started at another time
    const other = new Peer('sleep', ['300'], { name: 'other', logFile: path.join(dir, 'other.log') });
    fs.writeFileSync(
      path.join(registry, String(other.pid)),
      JSON.stringify({ pid: other.pid, cmd: 'sleep', args: ['300'], start: processStart(other.pid)! - 1 }),
    );
    expect(endLeftoverPeers(registry)).toEqual([]);
    expect(other.alive).toBe(true);
    await other.stop();
  });
});
