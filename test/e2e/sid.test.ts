/**
 * The newest peers, from Debian sid: QEMU 11.1, qemu-storage-daemon 11.1, DPDK 25.11 and
 * virtiofsd 1.14, each through `vhostscope proxy` with the data checked, against each other and
 * against Debian 12's and 13's (QEMU 7.2, DPDK 22.11 and 24.11, vhost-device-vsock,
 * vhost-user-gpu). What a sid peer sends that older releases did not is asserted, so a
 * change in either shows up here (README, compatibility table).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { rootMissing } from '../../src/demo/roots';
import type { Release } from '../../src/demo/release';
import { tmpDir } from '../helpers';
import { runGpuGuest } from './harness/gpu';
import { blkPair, dpdkPair, fsPair, netGuest, passtGuest, vsockGuest, type Pair } from './harness/interop';
import { expectClean, needReply, offered, unanswered } from './harness/matrix';
import { checkFindings, ProxyProcess, type LogRecord } from './harness/proxy';

const mkdir = (d: string): string => {
  fs.mkdirSync(d, { recursive: true });
  return d;
};
const D12: Release = 'debian12';
const D13: Release = 'debian13';
const SID: Release = 'sid';
const name = (p: Pair) => `${p.frontend} -> ${p.backend}`;
/**
 * New in QEMU 11.1: with REPLY_ACK negotiated it asks for an ack of every vring fd and of
 * SET_VRING_ENABLE and waits for each (QEMU 10 asks only for SET_VRING_ENABLE's, 7.2 for none
 * of them: test/e2e/interop.test.ts).
 */
const QEMU11_ACKED = ['SET_VRING_CALL', 'SET_VRING_ENABLE', 'SET_VRING_ERR', 'SET_VRING_KICK'];
function expectQemu11Acks(msgs: LogRecord[], pair: Pair): void {
  if (pair.frontend !== SID) return;
  expect(needReply(msgs), name(pair)).toEqual(expect.arrayContaining(QEMU11_ACKED));
  expect(unanswered(msgs), name(pair)).toEqual({});
}

describe('Debian sid peers (QEMU 11.1, DPDK 25.11, virtiofsd 1.14) through the proxy', () => {
  beforeAll(() => {
    for (const r of ['sid', 'debian13'] as const) {
      const missing = rootMissing(r);
      if (missing) throw new Error(`${missing} (scripts/install-deps.sh builds every root)`);
    }
  });

  it('QEMU 11.1 virtio-net <-> testpmd 25.11, and QEMU 7.2 <-> testpmd 25.11: the guest pings; QEMU 11.1 waits for an ack of every vring fd', async () => {
    const work = tmpDir('sid-net');
    // QEMU 11.1 against an older back-end: blk and fs below, and the rust-vmm back-end (interop.test.ts)
    for (const pair of [
      { frontend: SID, backend: SID },
      { frontend: D12, backend: SID },
    ]) {
      const run = await netGuest(mkdir(path.join(work, `${pair.frontend}-${pair.backend}`)), pair);
      expect(run.qemuLog, name(pair)).toMatch(/GUEST-RESULT: PASS/);
      expect(run.backendLog, name(pair)).toMatch(/ICMP/);
      expectQemu11Acks(expectClean(run, 'net'), pair);
    }
  }, 420_000);

  it('DPDK 25.11 virtio-user <-> DPDK 25.11 vhost, and mixed with 22.11 and 24.11: packets cross both ways', async () => {
    const work = tmpDir('sid-dpdk');
    for (const pair of [
      { frontend: SID, backend: SID },
      { frontend: SID, backend: D12 },
      { frontend: D13, backend: SID },
    ]) {
      const run = await dpdkPair(mkdir(path.join(work, `${pair.frontend}-${pair.backend}`)), pair);
      expect(run.backendRx, name(pair)).toBeGreaterThan(1000);
      expect(run.frontendRx, name(pair)).toBeGreaterThan(1000);
      const msgs = expectClean(run, 'net');
      expect(
        msgs.some((m) => m.request === 'SET_STATUS'),
        name(pair),
      ).toBe(true);
    }
  }, 300_000);

  it('QEMU 11.1 vhost-user-blk <-> qemu-storage-daemon 11.1 and 7.2, and QEMU 7.2 <-> 11.1: the guest reads the host pattern and writes its own', async () => {
    const work = tmpDir('sid-blk');
    for (const pair of [
      { frontend: SID, backend: SID },
      { frontend: SID, backend: D12 },
      { frontend: D12, backend: SID },
    ]) {
      const run = await blkPair(mkdir(path.join(work, `${pair.frontend}-${pair.backend}`)), pair);
      expect(run.qemuLog, name(pair)).toMatch(/GUEST-RESULT: PASS/);
      expect(run.qemuLog, name(pair)).toContain(`GUEST-READ-SHA: ${run.hostSha}`);
      expect(run.imageSha, name(pair)).toBe(run.guestWriteSha);
      const msgs = expectClean(run, 'blk');
      expect(offered(msgs), name(pair)).toMatch(/CONFIGURE_MEM_SLOTS/);
      expectQemu11Acks(msgs, pair);
    }
  }, 420_000);

  it('QEMU 11.1 vhost-user-fs <-> virtiofsd 1.14, and QEMU 7.2 <-> virtiofsd 1.14: a host file read, a guest file written', async () => {
    const work = tmpDir('sid-fs');
    for (const pair of [
      { frontend: SID, backend: SID },
      { frontend: D12, backend: SID },
    ]) {
      const run = await fsPair(mkdir(path.join(work, `${pair.frontend}-${pair.backend}`)), pair);
      expect(run.qemuLog, name(pair)).toMatch(/GUEST-RESULT: PASS/);
      expect(run.qemuLog, name(pair)).toContain(`GUEST-READ-SHA: ${run.hostSha}`);
      expect(run.fromGuest, name(pair)).toBe(`guest wrote this ${run.token}\n`);
      const msgs = expectClean(run, 'fs');
      expect(offered(msgs), name(pair)).toMatch(/DEVICE_STATE/);
      expectQemu11Acks(msgs, pair);
    }
  }, 300_000);

  it("QEMU 11.1 virtio-net <-> sid's passt: DHCP from passt, 1 MiB fetched and 256 KiB posted over TCP to the host loopback", async () => {
    const run = await passtGuest(tmpDir('sid-passt'), SID, 'sid');
    expect(run.qemuLog).toMatch(/GUEST-RESULT: PASS/);
    expect(run.fetchedSha).toBe(run.servedSha);
    expect(run.postedSha).toBe(run.guestSha);
    expectQemu11Acks(expectClean(run, 'net'), { frontend: SID, backend: SID });
  }, 240_000);

  it('QEMU 11.1 vhost-user-vsock <-> rust-vmm vhost-device-vsock: 256 KiB from the guest to a host unix socket and back', async () => {
    const run = await vsockGuest(tmpDir('sid-vsock'), SID);
    expect(run.qemuLog).toMatch(/GUEST-RESULT: PASS/);
    expect(run.hostReceivedSha).toBe(run.sentSha);
    expect(run.echoedSha).toBe(run.sentSha);
    expectQemu11Acks(expectClean(run, 'vsock'), { frontend: SID, backend: D13 });
  }, 240_000);

  it('QEMU 11.1 vhost-user-gpu-pci <-> vhost-user-gpu 11.1: the framebuffer reaches the display; with vhost-user-gpu 10 the device fails, and check names why (VU047)', async () => {
    const work = tmpDir('sid-gpu');
    const runs: Record<string, { proxy: ProxyProcess; run?: Awaited<ReturnType<typeof runGpuGuest>>; error?: string }> = {};
    for (const backend of ['sid', 'debian13'] as const) {
      const proxy = new ProxyProcess(path.join(work, backend));
      fs.mkdirSync(proxy.workDir, { recursive: true });
      runs[backend] = { proxy };
      try {
        runs[backend].run = await runGpuGuest(path.join(work, backend, 'guest'), proxy, 'sid', backend);
      } catch (err) {
        runs[backend].error = String(err);
      } finally {
        await proxy.stop();
      }
    }
    const same = runs.sid!;
    expect(same.error).toBeUndefined();
    expect(same.run!.orange).toBeGreaterThan((same.run!.width * same.run!.height) / 2);
    expect(same.proxy.messages().some((m) => m.channel === 'gpu' && m.request === 'GPU_UPDATE')).toBe(true);
    // vhost-user-gpu's uninitialised GPU_UPDATE flags are flagged and forwarded, as with QEMU 10 (gpu.test.ts)
    expectQemu11Acks(expectClean(same, 'gpu', ['request-flags']), { frontend: SID, backend: SID });

    // QEMU 11.1 asks for 20 bytes of virtio-gpu config; vhost-user-gpu 10 has 16 and refuses
    // (libvhost-user's zero-size reply), which QEMU takes as a broken back-end: no GPU in the guest
    const old = runs.debian13!;
    const qemuLog = fs.readFileSync(path.join(work, 'debian13', 'guest', 'qemu.log'), 'utf8');
    expect(qemuLog).toMatch(/Received bad msg size/);
    expect(qemuLog).toMatch(/GUEST-RESULT: FAIL no \/dev\/fb0/);
    expect(
      old.proxy
        .messages()
        .filter((m) => m.request === 'GET_CONFIG')
        .map((m) => `${m.dir} ${m.size}`),
    ).toEqual(['F>B 32', 'B>F 0']);
    expect(checkFindings(old.proxy.recordFile).map((f) => `${f.id} ${f.detail}`)).toEqual([
      'VU047 GET_CONFIG for 20 bytes at offset 0 answered with a 0-byte payload: the back-end refused it',
    ]);
  }, 300_000);
});
