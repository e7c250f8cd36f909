/**
 * Once per test run, before any test file and after the last:
 * - the native addon under test is the one native/ builds now (a reused checkout may hold a
 *   build/Release from older sources: it is rebuilt, never tested);
 * - no peer of an earlier, killed run is still running, and none of this run outlives it: every
 *   peer (src/demo/process.ts) registers its process group, while it runs, in this run's own
 *   directory of the registry (named by the run's pid). At the start, the directories of runs
 *   that are gone are swept; at the end, this run's. A run going on beside this one (a developer's
 *   unit test while the suite runs) keeps its peers.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { processStart } from '../src/demo/process';

const ROOT = path.resolve(__dirname, '..');
export const PEER_REGISTRY = '/tmp/vhostscope-test-peers';

const nativeSources = createRequire(__filename)(path.join(ROOT, 'scripts', 'native-sources.js')) as { staleReason(): string | undefined };

function ensureFreshAddon(): void {
  const why = nativeSources.staleReason();
  if (!why) return;
  console.log(`global setup: ${why}: building the addon from native/`);
  const r = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build-native.js')], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('global setup: the native addon did not build from native/ (see above)');
  const still = nativeSources.staleReason();
  if (still) throw new Error(`global setup: after the build, ${still}`);
}

/** Ends the process groups still registered (a peer whose test was killed or timed out). */
export function endLeftoverPeers(registry: string): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(registry);
  } catch {
    return [];
  }
  const ended: string[] = [];
  for (const name of entries) {
    const file = path.join(registry, name);
    let peer: { pid: number; cmd: string; start?: number };
    try {
      peer = JSON.parse(fs.readFileSync(file, 'utf8')) as typeof peer;
    } catch {
      fs.rmSync(file, { force: true });
      continue;
    }
    fs.rmSync(file, { force: true });
    // the pid may have been reused since: only a process still running that command is ours
    let cmdline = '';
    try {
      cmdline = fs.readFileSync(`/proc/${peer.pid}/cmdline`, 'latin1').split('\0').join(' ');
    } catch {
      continue;
    }
    if (!cmdline.includes(path.basename(peer.cmd))) continue;
    // the same pid and command may be another process by now (a bench's node): the start time says
    if (peer.start !== undefined && processStart(peer.pid) !== peer.start) continue;
    try {
      process.kill(-peer.pid, 'SIGKILL');
    } catch {
      try {
        process.kill(peer.pid, 'SIGKILL');
      } catch {
        continue;
      }
    }
    ended.push(`${path.basename(peer.cmd)} (pid ${peer.pid})`);
  }
  return ended;
}

/** The top test's tmux server of run `run` (test/e2e/top.test.ts names it so). */
function endTmuxOf(run: string): void {
  spawnSync('tmux', ['-L', `vhs-top-test-${run}`, 'kill-server'], { stdio: 'ignore', timeout: 10_000 });
}

/** Is `pid` a test run still going (a live process whose command line is vitest's)? */
function runAlive(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('vitest');
  } catch {
    return false;
  }
}

/** Ends the peers of every run in the registry that is no longer running. */
function endPeersOfGoneRuns(): string[] {
  let runs: string[];
  try {
    runs = fs.readdirSync(PEER_REGISTRY);
  } catch {
    return [];
  }
  const ended: string[] = [];
  for (const run of runs) {
    if (!/^\d+$/.test(run) || runAlive(Number(run))) continue;
    const dir = path.join(PEER_REGISTRY, run);
    ended.push(...endLeftoverPeers(dir));
    endTmuxOf(run);
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return ended;
}

export default function setup(): () => void {
  ensureFreshAddon();
  const before = endPeersOfGoneRuns();
  if (before.length) console.warn(`global setup: ended ${before.length} peer(s) an earlier run left running: ${before.join(', ')}`);
  const mine = path.join(PEER_REGISTRY, String(process.pid));
  process.env.VHS_PEER_REGISTRY = mine;
  return () => {
    const after = endLeftoverPeers(mine);
    fs.rmSync(mine, { recursive: true, force: true });
    endTmuxOf(String(process.pid));
    if (after.length) console.warn(`global teardown: ended ${after.length} peer(s) that tests left running: ${after.join(', ')}`);
  };
}
