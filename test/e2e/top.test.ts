/**
 * `vhostscope top` in a real terminal (tmux), on a live daemon: a QEMU (TCG) guest pings testpmd
 * through `vhostscope proxy --rings=headers` while top runs; the test reads the screen with
 * capture-pane and drives it with send-keys.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { controlRequest } from '../../src/control/client';
import type { LiveSession } from '../../src/control/live-requests';
import { sleep } from '../../src/demo/process';
import { CLI } from '../../lab/proxy-process';
import { runQemuPing } from '../../lab/qemu-net';
import { tmpDir } from '../helpers';

// one tmux server per test run (named by the run, as the peer registry is): a server left by a
// killed run cannot get in this one's way, and the run's teardown ends its own
const TMUX_SOCKET = `vhs-top-test-${path.basename(process.env.VHS_PEER_REGISTRY ?? String(process.pid))}`;
const tmux = (...args: string[]): string => execFileSync('tmux', ['-L', TMUX_SOCKET, ...args], { encoding: 'utf8', timeout: 20_000 });
const screen = (): string => tmux('capture-pane', '-p', '-t', 'top');

async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end)
      throw new Error(
        `timed out waiting for ${what}; screen:\n${(() => {
          try {
            return screen();
          } catch {
            return '(none)';
          }
        })()}`,
      );
    await sleep(250);
  }
}

describe('vhostscope top', () => {
  it('shows the live session with its peers, request rate and per-operation latency; keys sort, pick and quit', async () => {
    const work = tmpDir('top');
    let seen = '';
    let detail = '';
    let sorted = '';
    let exited = false;
    const r = await runQemuPing({
      workDir: work,
      pings: 150,
      interval: 0.1,
      proxyArgs: ['--rings=headers', '--device', 'net'],
      whileRunning: async (feSock) => {
        const ctl = `${feSock}.ctl`;
        // wait until the guest pings: testpmd's replies fill the buffers the guest offered
        await until(
          "the guest's pings",
          async () => {
            try {
              const req = (await controlRequest(ctl, { cmd: 'requests' })) as LiveSession[];
              return req.some((s) => s.operations.some((o) => o.op === 'rx fill' && o.count >= 5));
            } catch {
              return false;
            }
          },
          120_000,
        );
        tmux('new-session', '-d', '-s', 'top', '-x', '180', '-y', '45', `${process.execPath} ${CLI} top --control ${ctl} --interval 0.5`);
        try {
          // a row for session 1: net, QEMU in front, testpmd behind, requests per second > 0
          await until('the session row', () => /^[ >]\s+1 net\s+qemu-system-x86\S*\s+dpdk-testpmd/m.test(screen()));
          await until('a request rate', () => {
            const m = /^[ >]\s+1 net .*$/m.exec(screen());
            const cols = m?.[0].trim().replace(/^>\s*/, '').split(/\s+/) ?? [];
            return Number(cols[7]) > 0; // REQ/s
          });
          seen = screen();
          tmux('send-keys', '-t', 'top', 'Enter');
          await until('the details', () => /session 1: messages F>B \d+/.test(screen()) && /^\s+0 rx fill\s+\d+/m.test(screen()));
          detail = screen();
          tmux('send-keys', '-t', 'top', 's');
          await until('sort by p99', () => /sort: p99/.test(screen()));
          sorted = screen();
          tmux('send-keys', '-t', 'top', 'q');
          await until(
            'top to quit',
            () => {
              try {
                tmux('has-session', '-t', 'top');
                return false;
              } catch {
                return true;
              }
            },
            10_000,
          );
          exited = true;
        } finally {
          try {
            tmux('kill-server');
          } catch {
            /* already gone */
          }
        }
      },
    });
    expect(r.replied).toBeGreaterThan(100);
    expect(seen).toMatch(/vhostscope top: .*fe\.sock → .*be\.sock/);
    expect(seen).toMatch(/SESS DEVICE\s+FRONTEND\s+BACKEND\s+MSGS\s+KICK\/s\s+CALL\/s\s+REQ\/s\s+OUTST\s+OLDEST\s+p50\s+p99/);
    // rx fills: how long the guest's buffers waited for a reply; the others are outstanding
    expect(detail).toMatch(/^\s+0 rx fill\s+\d+\s+[\d.]+(µs|ms|s)\s+[\d.]+(µs|ms|s)/m);
    expect(detail).toMatch(/outstanding: \d+/);
    expect(detail).toMatch(/^\s+0 started, enabled\s+\d+\s+\d+\s+\d+\s+-$/m); // vring 0 (rx): its spec state; kicks never paired with calls
    expect(sorted).toMatch(/sort: p99/);
    expect(seen).toMatch(/relay's own time \(wake-up → forwarding write issued\): p50 < [\d.]+(µs|ms) p99 < [\d.]+(µs|ms) over \d+/); // requests moved in this interval: so did the relay
    expect(exited).toBe(true);
  }, 300_000);

  it('says which control socket it could not reach, rather than hang', async () => {
    let err = '';
    try {
      execFileSync(process.execPath, [CLI, 'top', '--once', '--control', path.join(tmpDir('top-none'), 'nope.ctl')], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
    } catch (e) {
      err = String((e as { stderr?: string }).stderr);
    }
    expect(err).toMatch(/nope\.ctl/);
  });
});
