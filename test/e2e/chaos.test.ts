/**
 * Chaos mode against real peers: QEMU 7.2 (TCG) virtio-net <-> testpmd, the guest pinging.
 * Through a plain proxy the guest's first kick comes after SET_VRING_ENABLE (the race of
 * rust-vmm/vhost#247 never shows with these two: recordings/qemu-net-testpmd.vhsrec is such a
 * run, and test/unit/check.test.ts finds nothing in it); with `--chaos SEED:enable` it comes
 * before, every run, and `check` names it. The same seed perturbs the same messages each run.
 * With `--chaos SEED:split` a message reaches its reader in two writes: DPDK 22.11's virtio-user
 * reads a header with one recv and fails the device, every run (through a plain proxy it works).
 */
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Peer, waitForSocket } from '../../src/demo/process';
import { Testpmd } from '../../src/demo/testpmd';
import { tmpDir } from '../helpers';
import { buildInitramfs } from '../../lab/guest';
import { backend, guestBody, qemu, startForwarding } from './harness/qemu-net';
import { checkFindings as findings, CLI, ProxyProcess } from './harness/proxy';

/** One VM pinging testpmd through a proxy with `args`: the proxy's fault lines and the recording's findings. */
async function pingRun(name: string, args: string[]) {
  const work = tmpDir(name);
  const initrd = buildInitramfs(work, guestBody(3, 3), ['virtio_pci', 'virtio_net']);
  const fe = path.join(work, 'fe.sock');
  const be = path.join(work, 'be.sock');
  const proxy = new ProxyProcess(work, ['--device', 'net', ...args]);
  const tp = backend(work, 'be', be, false);
  let q: Peer | undefined;
  try {
    await startForwarding(tp, true);
    await proxy.starter(fe, be);
    q = qemu(work, initrd, `socket,id=c0,path=${fe}`);
    expect(await q.waitExit(150_000)).toBe(0);
    await tp.quit();
  } finally {
    await q?.stop();
    await tp.peer.stop();
    expect(await proxy.stop()).toBe(0);
  }
  expect(q.log()).toMatch(/GUEST-RESULT: PASS/); // testpmd polls its rings: it copes with the early kick
  const faults = proxy.records().filter((r) => r.event === 'fault');
  return { faults, findings: findings(proxy.recordFile) };
}

describe('chaos mode with real peers', () => {
  it('--chaos 7:enable turns the kick before SET_VRING_ENABLE from never into every run, check names it, and the seed decides what is held', async () => {
    const runs = [await pingRun('chaos-a', ['--chaos', '7:enable']), await pingRun('chaos-b', ['--chaos', '7:enable'])];
    for (const r of runs) {
      expect(r.findings.filter((f) => f.id === 'VU010').map((f) => f.detail)).toContain('vring 0 kicked before SET_VRING_ENABLE(0, 1)');
      expect(r.faults.every((f) => f.action === 'chaos' && f.text === 'chaos seed=7 profile=enable')).toBe(true);
    }
    // what was held is the seed's decision, run after run (when each was let go is the peers' timing)
    const held = (r: (typeof runs)[0]) => r.faults.map((f) => String(f.detail)).filter((d) => d.includes(' held until '));
    expect(held(runs[0]).length).toBeGreaterThan(0);
    expect(held(runs[1])).toEqual(held(runs[0]));
  }, 420_000);

  it("--chaos 3:split cuts the GET_FEATURES reply after 11 bytes, every run: DPDK 22.11's virtio-user expects a header in one recv and gives up", async () => {
    const run = async (args: string[]) => {
      const work = tmpDir('chaos-split');
      const fe = path.join(work, 'fe.sock');
      const be = path.join(work, 'be.sock');
      const proxy = new ProxyProcess(work, args);
      const back = new Testpmd({ name: 'be', workDir: work, mainLcore: 1, forwardMode: 'io', vdev: `net_vhost0,iface=${be},queues=1` });
      let front: Testpmd | undefined;
      try {
        await back.peer.waitForLog(/binding succeeded/, 60_000);
        await proxy.starter(fe, be);
        front = new Testpmd({ name: 'fe', workDir: work, mainLcore: 0, forwardMode: 'io', vdev: `net_virtio_user0,path=${fe},queues=1` });
        await front.peer.waitForLog(/testpmd> |EAL: Error - exiting/, 60_000);
      } finally {
        await front?.peer.stop();
        await back.peer.stop();
        expect(await proxy.stop()).toBe(0);
      }
      return {
        log: front.peer.log(),
        faults: proxy
          .records()
          .filter((r) => r.event === 'fault')
          .map((r) => String(r.detail)),
        recording: proxy.recordFile,
      };
    };
    const plain = await run([]);
    expect(plain.log).toMatch(/testpmd> /);
    const runs = [await run(['--chaos', '3:split']), await run(['--chaos', '3:split'])];
    for (const r of runs) {
      expect(r.faults[0]).toMatch(/^B>F GET_FEATURES reply split in two writes: 11 of 20 bytes, the rest \d+ ms later$/);
      expect(r.log).toMatch(/Failed to recv msg hdr: 11 instead of 12/);
      expect(r.log).not.toMatch(/testpmd> /);
    }

    // the recording replayed as the back-end to a new virtio-user repeats the cut; --no-chaos does not
    const replayed = async (args: string[]) => {
      const work = tmpDir('chaos-split-replay');
      const sock = path.join(work, 'replay.sock');
      const replay = new Peer(
        process.execPath,
        [
          CLI,
          'replay',
          runs[0]!.recording,
          '--as',
          'backend',
          '--listen',
          sock,
          '--idle-timeout',
          '3000',
          '--record',
          path.join(work, 'replay.vhsrec'),
          ...args,
        ],
        { name: 'replay', logFile: path.join(work, 'replay.log') },
      );
      let front: Testpmd | undefined;
      try {
        await waitForSocket(sock, 30_000, replay);
        front = new Testpmd({ name: 'fe', workDir: work, mainLcore: 0, forwardMode: 'io', vdev: `net_virtio_user0,path=${sock},queues=1` });
        await front.peer.waitForLog(/testpmd> |EAL: Error - exiting/, 60_000);
      } finally {
        await front?.peer.stop();
        await replay.stop();
      }
      return { log: front.peer.log(), replay: replay.log() };
    };
    const again = await replayed([]);
    expect(again.replay).toMatch(/repeating the recording's chaos seed=3 profile=split/);
    expect(again.replay).not.toMatch(/vhostscope replay: /); // the peer leaving between the parts is no error of the replay's
    expect(again.log).toMatch(/Failed to recv msg hdr: 11 instead of 12/);
    expect((await replayed(['--no-chaos'])).log).not.toMatch(/Failed to recv msg hdr/);
  }, 300_000);
});
