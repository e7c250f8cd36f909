/**
 * Out of fds half-way through interposing (the eventfd made, its dup refused): nothing of the
 * proxy's stays open. The process's own fd limit is lowered so that exactly one fd is left.
 */
import { execFileSync, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { native } from '../../src/native';
import { Interposer } from '../../src/proxy/interposer';
import type { RelayHub } from '../../src/proxy/relay-hub';

const fdNumbers = (): number[] => fs.readdirSync('/proc/self/fd').map(Number);

describe('interposing at EMFILE', () => {
  it('an eventfd made but not dup()ed is closed again', async () => {
    const hub = { add: () => 1 } as unknown as RelayHub;
    const it = new Interposer(hub, () => {});
    const peer = native.eventfd(0);
    const [soft, hard] = execFileSync('prlimit', ['--pid', String(process.pid), '--nofile', '--noheadings', '--raw', '-o', 'SOFT,HARD'], { encoding: 'utf8' })
      .trim()
      .split(/\s+/);
    // out of fds, this process could not start the prlimit that gives them back: a child started now does, in a second
    const restorer = spawn('sh', ['-c', `sleep 1; prlimit --pid ${process.pid} --nofile=${soft}:${hard}`], { stdio: 'ignore' });
    const restored = new Promise((r) => restorer.on('exit', r));
    // fill every hole below the highest fd, so that the next fd is numbered top+1
    const fillers: number[] = [];
    const top = Math.max(...fdNumbers());
    for (;;) {
      const fd = native.eventfd(0);
      if (fd > top) {
        native.close(fd);
        break;
      }
      fillers.push(fd);
    }
    const before = fdNumbers().length;
    let error: Error | undefined;
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${top + 2}:${hard}`]); // one fd left: top+1
    try {
      it.interpose('call', 0, false, [peer]);
    } catch (err) {
      error = err as Error;
    }
    let after: number | Error;
    try {
      after = fdNumbers().length;
    } catch (err) {
      after = err as Error; // the leaked fd took the last one: even /proc/self/fd cannot be read
    }
    await restored; // whatever happened: the next test gets its fds back
    expect(fs.readFileSync('/proc/self/limits', 'utf8')).toMatch(new RegExp(`Max open files\\s+${soft}\\s`));
    expect(error?.message).toMatch(/EMFILE|Too many open files/);
    expect(after).toBe(before);
    for (const fd of [...fillers, peer]) native.close(fd);
  });
});
