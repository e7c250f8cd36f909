/**
 * The interop matrix: each vhost-user implementation Debian 13 ships, and Debian 12 and 13
 * peers mixed, through `vhostscope proxy`, with data crossing in each (pings answered, blocks
 * read and written, files read and written, packets forwarded). The quirks each pair shows on
 * the wire are asserted, so a change in either peer or in vhostscope shows up here.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { rootMissing } from '../../src/demo/roots';
import { fromRelease } from '../../src/demo/release';
import { ovsMissing } from '../../lab/ovs';
import { tmpDir } from '../helpers';
import { blkPair, buildRustCrate, dpdkPair, fsPair, netGuest, ovsGuest, passtGuest, rustFrontendPair, vsockGuest, type Pair } from './harness/interop';
import { expectClean, needReply, offered, unanswered } from './harness/matrix';

const mkdir = (d: string): string => {
  fs.mkdirSync(d, { recursive: true });
  return d;
};
const D12: Pair['frontend'] = 'debian12';
const D13: Pair['frontend'] = 'debian13';

describe('interop matrix through the proxy', () => {
  beforeAll(() => {
    const missing = rootMissing('debian13');
    if (missing) throw new Error(missing);
  });

  it('QEMU 10 virtio-net (MSI-X) <-> testpmd 24.11: the guest pings; QEMU 10 waits for SET_VRING_ENABLE acks', async () => {
    const run = await netGuest(tmpDir('io-net13'), { frontend: D13, backend: D13 });
    expect(run.qemuLog).toMatch(/GUEST-RESULT: PASS/);
    expect(run.backendLog).toMatch(/ICMP/);
    const msgs = expectClean(run, 'net');
    // QEMU 10 sets NEED_REPLY on SET_VRING_ENABLE once REPLY_ACK is negotiated (7.2 does not), not
    // yet on the vring fds (11.1 does: test/e2e/sid.test.ts)
    expect(msgs.filter((m) => m.request === 'SET_VRING_ENABLE' && m.dir === 'F>B').every((m) => m.flags === 'v1|NEED_REPLY')).toBe(true);
    expect(needReply(msgs)).toEqual(['SET_BACKEND_REQ_FD', 'SET_MEM_TABLE', 'SET_VRING_ENABLE']);
    expect(unanswered(msgs)).toEqual({});
  }, 240_000);

  it('QEMU 10 vhost-user-blk <-> qemu-storage-daemon 10: the guest reads the host pattern and writes its own', async () => {
    const run = await blkPair(tmpDir('io-blk13'), { frontend: D13, backend: D13 });
    expect(run.qemuLog).toMatch(/GUEST-RESULT: PASS/);
    expect(run.qemuLog).toContain(`GUEST-READ-SHA: ${run.hostSha}`);
    expect(run.imageSha).toBe(run.guestWriteSha);
    const msgs = expectClean(run, 'blk');
    expect(offered(msgs)).toMatch(/CONFIGURE_MEM_SLOTS/);
    expect(msgs.some((m) => m.request === 'ADD_MEM_REG')).toBe(true);
  }, 240_000);

  it('QEMU 10 vhost-user-fs <-> the Rust virtiofsd: a host file read, a guest file written; QEMU sends RESET_DEVICE', async () => {
    const run = await fsPair(tmpDir('io-fs13'), { frontend: D13, backend: D13 });
    expect(run.qemuLog).toMatch(/GUEST-RESULT: PASS/);
    expect(run.qemuLog).toContain(`GUEST-READ-SHA: ${run.hostSha}`);
    expect(run.fromGuest).toBe(`guest wrote this ${run.token}\n`);
    const msgs = expectClean(run, 'fs');
    expect(offered(msgs)).toMatch(/DEVICE_STATE/);
    expect(msgs.some((m) => m.request === 'RESET_DEVICE' && m.dir === 'F>B')).toBe(true);
  }, 240_000);

  it('DPDK 24.11 virtio-user <-> DPDK 24.11 vhost, either side listening: packets cross both ways', async () => {
    const work = tmpDir('io-dpdk13');
    for (const frontendListens of [false, true]) {
      const run = await dpdkPair(mkdir(path.join(work, frontendListens ? 'fe-listens' : 'be-listens')), { frontend: D13, backend: D13 }, frontendListens);
      expect(run.backendRx, `frontend listens: ${frontendListens}`).toBeGreaterThan(1000);
      expect(run.frontendRx, `frontend listens: ${frontendListens}`).toBeGreaterThan(1000);
      const msgs = expectClean(run, 'net');
      expect(msgs.some((m) => m.request === 'SET_STATUS')).toBe(true);
    }
  }, 240_000);

  it('QEMU 10 listens (server=on), testpmd 24.11 connects (client=1): the guest pings', async () => {
    const run = await netGuest(tmpDir('io-net13-srv'), { frontend: D13, backend: D13 }, 10, true);
    expect(run.qemuLog).toMatch(/GUEST-RESULT: PASS/);
    expectClean(run, 'net');
    // the frontend was found on the connect side, by who spoke first
    expect(run.proxy.messages()[0].dir).toBe('F>B');
  }, 240_000);

  it('mixed: QEMU 7.2 <-> testpmd 24.11, and QEMU 10 <-> testpmd 22.11: the guest pings', async () => {
    const work = tmpDir('io-mixed-net');
    for (const pair of [
      { frontend: D12, backend: D13 },
      { frontend: D13, backend: D12 },
    ]) {
      const run = await netGuest(mkdir(path.join(work, `${pair.frontend}-${pair.backend}`)), pair);
      expect(run.qemuLog, `${pair.frontend} -> ${pair.backend}`).toMatch(/GUEST-RESULT: PASS/);
      expectClean(run, 'net');
    }
  }, 420_000);

  it('mixed: QEMU 7.2 <-> qemu-storage-daemon 10 and the Rust virtiofsd; QEMU 10 <-> qemu-storage-daemon 7.2 and the C virtiofsd', async () => {
    const work = tmpDir('io-mixed-storage');
    for (const pair of [
      { frontend: D12, backend: D13 },
      { frontend: D13, backend: D12 },
    ]) {
      const blk = await blkPair(mkdir(path.join(work, `blk-${pair.frontend}-${pair.backend}`)), pair);
      expect(blk.imageSha, `blk ${pair.frontend} -> ${pair.backend}`).toBe(blk.guestWriteSha);
      expectClean(blk, 'blk');
      const fsRun = await fsPair(mkdir(path.join(work, `fs-${pair.frontend}-${pair.backend}`)), pair);
      expect(fsRun.fromGuest, `fs ${pair.frontend} -> ${pair.backend}`).toBe(`guest wrote this ${fsRun.token}\n`);
      expectClean(fsRun, 'fs');
    }
  }, 600_000);

  it('QEMU 10 virtio-net <-> passt --vhost-user: DHCP from passt, 1 MiB fetched and 256 KiB posted over TCP to the host loopback', async () => {
    const run = await passtGuest(tmpDir('io-passt'), D13);
    expect(run.qemuLog).toMatch(/GUEST-RESULT: PASS/);
    expect(run.dhcp).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
    expect(run.fetchedSha).toBe(run.servedSha);
    expect(run.postedSha).toBe(run.guestSha);
    const msgs = expectClean(run, 'net');
    expect(offered(msgs)).toMatch(/DEVICE_STATE/);
  }, 240_000);

  it.each([
    ['3.1 (Debian 12, with QEMU 7.2 and DPDK 22.11)', D12],
    ['3.5 (Debian 13, with QEMU 10 and DPDK 24.11)', D13],
  ] as const)(
    'OVS-DPDK %s: a QEMU guest on a dpdkvhostuser port (OVS listens) pings a testpmd on a dpdkvhostuserclient port (OVS connects), both through the proxy',
    async (_name, release) => {
      const missing = ovsMissing(release);
      if (missing) throw new Error(missing);
      const run = await ovsGuest(tmpDir('io-ovs'), release);
      expect(run.qemuLog).toMatch(/GUEST-RESULT: PASS/);
      expect(run.testpmdLog).toMatch(/ICMP/);
      // OVS took both devices (its packet counters refresh every 5 s: the guest's replies are the proof of traffic)
      expect(run.ovsLog).toMatch(/vHost Device '[^']*ovs-client\.sock' has been added/);
      expect(run.ovsLog).toMatch(/vHost Device '[^']*\/vhu0' has been added/);
      for (const proxy of [run.serverPortProxy, run.clientPortProxy]) {
        const msgs = expectClean({ proxy }, 'net');
        expect(msgs.some((m) => m.request === 'SET_MEM_TABLE')).toBe(true);
      }
      // on the client port OVS is the backend and connected to the proxy: the frontend (testpmd) is on the connect side
      expect(run.clientPortProxy.records().find((r) => r.event === 'session-end')).toBeDefined();
    },
    300_000,
  );

  it('rust-vmm vhost-device-vsock (sid) with QEMU 10 and QEMU 7.2: 256 KiB from the guest to a host unix socket and back', async () => {
    const work = tmpDir('io-vsock');
    for (const frontend of [D13, D12]) {
      const run = await vsockGuest(mkdir(path.join(work, frontend)), frontend);
      expect(run.qemuLog, frontend).toMatch(/GUEST-RESULT: PASS/);
      expect(run.hostReceivedSha, frontend).toBe(run.sentSha);
      expect(run.echoedSha, frontend).toBe(run.sentSha);
      expectClean(run, 'vsock');
    }
  }, 420_000);

  it("a back-end on rust-vmm's vhost-user-backend 0.17 (Debian 13 librust-vhost-user-backend-dev, built offline) <-> QEMU 7.2, 10 and 11.1 vhost-user-blk: the guest reads the host pattern and writes its own", async () => {
    const binary = buildRustCrate('rust-backend');
    const backend = (work: string, img: string, sock: string) => fromRelease('debian13', [work, path.dirname(binary)], binary, [sock, img]);
    const work = tmpDir('io-rust-be');
    for (const frontend of [D12, D13, 'sid'] as const) {
      const run = await blkPair(mkdir(path.join(work, frontend)), { frontend, backend: D13 }, backend);
      expect(run.qemuLog, frontend).toMatch(/GUEST-RESULT: PASS/);
      expect(run.qemuLog, frontend).toContain(`GUEST-READ-SHA: ${run.hostSha}`);
      expect(run.imageSha, frontend).toBe(run.guestWriteSha);
      const msgs = expectClean(run, 'blk');
      expect(offered(msgs), frontend).toMatch(/REPLY_ACK\|CONFIG/);
      expect(unanswered(msgs), frontend).toEqual({});
    }
  }, 420_000);

  it('a frontend on the rust-vmm vhost crate (Debian 13 librust-vhost-dev 0.13, built offline) <-> testpmd 24.11 and 22.11: full handshake, 64 frames out and back byte for byte', async () => {
    const binary = buildRustCrate('rust-frontend');
    const work = tmpDir('io-rust');
    for (const backend of [D13, D12]) {
      const run = await rustFrontendPair(mkdir(path.join(work, backend)), backend, binary);
      expect(run.output, backend).toMatch(/RUST-FRONTEND: PASS/);
      expect(run.rc, backend).toBe(0);
      expect(run.backendRx, backend).toBeGreaterThanOrEqual(64);
      const msgs = expectClean(run, 'net');
      // the crate's handshake, as the proxy saw it
      const fromFrontend = msgs.filter((m) => m.dir === 'F>B').map((m) => m.request);
      for (const r of [
        'SET_OWNER',
        'GET_FEATURES',
        'SET_PROTOCOL_FEATURES',
        'SET_FEATURES',
        'SET_MEM_TABLE',
        'SET_VRING_ADDR',
        'SET_VRING_KICK',
        'SET_VRING_ENABLE',
        'GET_VRING_BASE',
      ])
        expect(fromFrontend, `${backend}: ${r}`).toContain(r);
    }
  }, 300_000);
});
