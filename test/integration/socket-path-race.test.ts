/**
 * The attach privilege escalation (security review finding 1), attempted for real: a process
 * running as `nobody` owns the directory of the socket path and, in a loop, moves any new socket
 * at the path away and puts a symlink to a root-owned file there. Root creating its socket at the
 * path and then chmod/chown-ing the path hands the file to nobody (the control below shows the
 * racer winning such a window); listenOn never does anything to the path but one rename, so the
 * file stays root's whatever the racer does.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { listenOn } from '../../src/native/socket-path';
import { tmpDir } from '../helpers';

const NOBODY = 65534;

/** nobody's loop: whatever socket appears at `name` in `dir` is swapped for a symlink to `target`. */
const RACER = `
const fs = require('fs'), path = require('path');
const [dir, name, target, stop] = process.argv.slice(1);
const p = path.join(dir, name);
let swaps = 0;
for (let i = 0; ; i++) {
  if (i % 1000 === 0 && fs.existsSync(stop)) { console.log(String(swaps)); process.exit(0); }
  try {
    if (fs.lstatSync(p).isSocket()) {
      fs.renameSync(p, p + '.moved-' + swaps);
      fs.symlinkSync(target, p);
      swaps++;
    }
  } catch {}
}`;

const racers: ChildProcess[] = [];
afterEach(() => {
  for (const r of racers.splice(0)) r.kill('SIGKILL');
});

/** The racer's swap count, once it has seen `stop` (its loop never yields to a signal handler). */
function stopRacer(r: ChildProcess, stop: string): Promise<number> {
  let out = '';
  r.stdout!.on('data', (d) => (out += d));
  const exited = new Promise<number>((res) => r.on('exit', () => res(Number(out.trim()))));
  fs.writeFileSync(stop, '');
  return exited;
}

async function startRacer(dir: string, name: string, target: string): Promise<ChildProcess> {
  const r = spawn(
    'setpriv',
    [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, '-e', RACER, dir, name, target, `${path.dirname(dir)}/stop`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  racers.push(r);
  await new Promise((res) => setTimeout(res, 300)); // node's start-up, as nobody
  expect(r.exitCode).toBeNull();
  return r;
}

/** A directory nobody owns (as OVS's run dir is OVS's), and a root-owned file next to it. */
function scene(): { dir: string; victim: string } {
  const base = tmpDir('sockrace');
  fs.chmodSync(base, 0o755);
  const dir = path.join(base, 'peer-run');
  fs.mkdirSync(dir, { mode: 0o755 });
  fs.chownSync(dir, NOBODY, NOBODY);
  const victim = path.join(base, 'root-only');
  fs.writeFileSync(victim, 'secret\n', { mode: 0o600 });
  return { dir, victim };
}

const ownedByRoot = (f: string): boolean => {
  const st = fs.statSync(f);
  return st.uid === 0 && st.gid === 0 && (st.mode & 0o777) === 0o600;
};

describe('creating a socket in a directory another user can write', () => {
  it("control: the racer turns a bind-then-chown at the path into a chown of root's file", async () => {
    const { dir, victim } = scene();
    await startRacer(dir, 'vhost.sock', victim);
    const p = path.join(dir, 'vhost.sock');
    for (let i = 0; i < 50 && ownedByRoot(victim); i++) {
      try {
        fs.unlinkSync(p);
      } catch {
        /* nothing there */
      }
      const fd = native.listenUnix(p, 4, 0o660);
      await new Promise((res) => setTimeout(res, 20)); // the window between bind and chown
      try {
        fs.chownSync(p, NOBODY, NOBODY); // what attach did: follows the racer's symlink
      } catch {
        /* the racer's link may be mid-swap */
      }
      native.close(fd);
    }
    expect(fs.statSync(victim).uid).toBe(NOBODY);
  }, 30_000);

  it('listenOn with an owner never touches what the racer links to, and fails or succeeds cleanly', async () => {
    const { dir, victim } = scene();
    const racer = await startRacer(dir, 'vhost.sock', victim);
    const p = path.join(dir, 'vhost.sock');
    let made = 0;
    const errors = new Set<string>();
    for (let i = 0; i < 300; i++) {
      try {
        fs.unlinkSync(p);
      } catch {
        /* nothing there */
      }
      try {
        native.close(listenOn(p, 0o660, { uid: NOBODY, gid: NOBODY }));
        made++;
      } catch (err) {
        errors.add((err as Error).message.replace(/\d+/g, 'N'));
      }
      expect(ownedByRoot(victim), `after attempt ${i}`).toBe(true);
    }
    const swaps = await stopRacer(racer, `${path.dirname(dir)}/stop`);
    expect(swaps, 'the racer swapped the sockets that appeared').toBeGreaterThan(0);
    expect(made, `sockets made (errors: ${[...errors].join(' | ')})`).toBeGreaterThan(0);
    expect(fs.readFileSync(victim, 'utf8')).toBe('secret\n');
    // the private directories went with each attempt
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('.vhostscope-bind-'))).toEqual([]);
  }, 60_000);
});
