/**
 * The interop matrix's scenarios: one guest (or DPDK pair) per device class, with each side's
 * binaries from Debian 12 or Debian 13, always through `vhostscope proxy`. Each returns what
 * crossed (checked by the caller) and the proxy, whose log and recording the caller reads.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { rootOf, type RootRelease } from '../../../src/demo/roots';
import { buildInitramfs, qemuCommand, vhostUserNetArgs } from '../../../lab/guest';
import { Peer, waitForSocket } from '../../../src/demo/process';
import { fromRelease, type Release, type Spawnable } from '../../../src/demo/release';
import { OvsDpdk } from '../../../lab/ovs';
import { storageDaemonCommand } from '../../../lab/storage-daemon';
import { Testpmd } from '../../../src/demo/testpmd';
import { guestBody } from './qemu-net';
import { ProxyProcess } from './proxy';
import { blkGuest, fsGuest, guestWritten, pattern, sha } from './storage-guests';

export interface Pair {
  frontend: Release;
  backend: Release;
}

function qemuPeer(work: string, pair: Pair, initrd: string, append: string, device: string[]): Peer {
  const run = qemuCommand(pair.frontend, [work], initrd, append, device);
  return new Peer(run.cmd, run.args, { name: 'qemu', logFile: path.join(work, 'qemu.log'), env: run.env, timeoutMs: 240_000 });
}

export interface GuestRun {
  proxy: ProxyProcess;
  qemuLog: string;
  backendLog: string;
}

/**
 * QEMU virtio-net (MSI-X with QEMU 10) <-> testpmd net_vhost icmpecho: the guest pings.
 * `frontendListens`: QEMU listens (server=on), the proxy connects to it, testpmd (client=1)
 * connects to the proxy.
 */
export async function netGuest(work: string, pair: Pair, pings = 10, frontendListens = false): Promise<GuestRun> {
  const initrd = buildInitramfs(work, guestBody(pings, pings - 2), ['virtio_pci', 'virtio_net']);
  const fe = path.join(work, 'fe.sock');
  const be = path.join(work, 'be.sock');
  const proxy = new ProxyProcess(work);
  const qemuArgsFor = (chardev: string) => vhostUserNetArgs(chardev, pair.frontend !== 'debian12');
  let tp: Testpmd | undefined;
  let q: Peer | undefined;
  try {
    if (frontendListens) {
      q = qemuPeer(work, pair, initrd, '', qemuArgsFor(`socket,id=c0,path=${fe},server=on,wait=on`));
      await waitForSocket(fe, 30_000, q);
      await proxy.starter(be, fe);
      tp = new Testpmd({
        name: 'be',
        workDir: work,
        mainLcore: 1,
        forwardMode: 'icmpecho',
        mbufs: 8192,
        vdev: `net_vhost0,iface=${be},queues=1,client=1`,
        release: pair.backend,
      });
      await tp.peer.waitForLog(/testpmd> /, 60_000);
      tp.cmd('set verbose 1');
      tp.cmd('start');
    } else {
      tp = new Testpmd({
        name: 'be',
        workDir: work,
        mainLcore: 1,
        forwardMode: 'icmpecho',
        mbufs: 8192,
        vdev: `net_vhost0,iface=${be},queues=1`,
        release: pair.backend,
      });
      await tp.peer.waitForLog(/binding succeeded/, 60_000);
      tp.cmd('set verbose 1');
      tp.cmd('start');
      await proxy.starter(fe, be);
      q = qemuPeer(work, pair, initrd, '', qemuArgsFor(`socket,id=c0,path=${fe}`));
    }
    const rc = await q.waitExit(180_000);
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}\n${q.log().slice(-1500)}`);
  } finally {
    await q?.stop();
    await tp?.peer.stop();
    await proxy.stop();
  }
  return { proxy, qemuLog: q.log(), backendLog: tp.peer.log() };
}

export interface BlkRun extends GuestRun {
  hostSha: string;
  guestWriteSha: string;
  imageSha: string;
}

/**
 * QEMU vhost-user-blk <-> a vhost-user-blk back-end (qemu-storage-daemon of `pair.backend`'s
 * release unless `backend` says another): the guest reads a host pattern and writes one.
 */
export async function blkPair(
  work: string,
  pair: Pair,
  backend = (w: string, img: string, sock: string): Spawnable => storageDaemonCommand(pair.backend, w, img, sock),
): Promise<BlkRun> {
  const { img, token, host, guestWrite, initrd } = blkGuest(work);
  const fe = path.join(work, 'fe.sock');
  const be = path.join(work, 'be.sock');
  const proxy = new ProxyProcess(work);
  const run = backend(work, img, be);
  const qsd = new Peer(run.cmd, run.args, { name: 'blk-backend', logFile: path.join(work, 'qsd.log'), env: run.env });
  let q: Peer | undefined;
  try {
    await waitForSocket(be, 30_000, qsd);
    await proxy.starter(fe, be);
    q = qemuPeer(work, pair, initrd, `lab.token=${token}`, ['-chardev', `socket,id=c0,path=${fe}`, '-device', 'vhost-user-blk-pci,chardev=c0,num-queues=1']);
    const rc = await q.waitExit(180_000);
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}\n${q.log().slice(-1500)}`);
  } finally {
    await q?.stop();
    await qsd.stop(); // flushes and closes the image
    await proxy.stop();
  }
  return { proxy, qemuLog: q.log(), backendLog: qsd.log(), hostSha: sha(host), guestWriteSha: sha(guestWrite), imageSha: sha(guestWritten(img)) };
}

export interface FsRun extends GuestRun {
  hostSha: string;
  token: string;
  fromGuest: string;
}

/** QEMU vhost-user-fs <-> virtiofsd (Debian 12: the C one in QEMU; Debian 13 and sid: the Rust one). */
export async function fsPair(work: string, pair: Pair): Promise<FsRun> {
  const { share, token, hello, initrd } = fsGuest(work);
  const fe = path.join(work, 'fe.sock');
  const be = path.join(work, 'be.sock');
  const proxy = new ProxyProcess(work);
  const run =
    pair.backend === 'debian12'
      ? fromRelease('debian12', [], '/usr/lib/qemu/virtiofsd', [
          '-f',
          `--socket-path=${be}`,
          '-o',
          `source=${share}`,
          '-o',
          'cache=none',
          '-o',
          'sandbox=namespace',
        ])
      : fromRelease(pair.backend, [work], '/usr/libexec/virtiofsd', [`--socket-path=${be}`, `--shared-dir=${share}`, '--cache=never', '--sandbox=namespace']);
  const vfs = new Peer(run.cmd, run.args, { name: 'virtiofsd', logFile: path.join(work, 'virtiofsd.log'), env: run.env });
  let q: Peer | undefined;
  try {
    await waitForSocket(be, 30_000, vfs);
    await proxy.starter(fe, be);
    q = qemuPeer(work, pair, initrd, `lab.token=${token}`, [
      '-chardev',
      `socket,id=c0,path=${fe}`,
      '-device',
      'vhost-user-fs-pci,chardev=c0,tag=t0,queue-size=1024',
    ]);
    const rc = await q.waitExit(180_000);
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}\n${q.log().slice(-1500)}`);
  } finally {
    await q?.stop();
    await vfs.stop();
    await proxy.stop();
  }
  const out = path.join(share, 'from-guest.txt');
  return { proxy, qemuLog: q.log(), backendLog: vfs.log(), hostSha: sha(hello), token, fromGuest: fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '' };
}

export interface DpdkRun {
  proxy: ProxyProcess;
  frontendRx: number;
  backendRx: number;
}

/**
 * testpmd virtio-user (frontend) <-> testpmd net_vhost (backend), io forwarding with tx_first.
 * `frontendListens`: virtio-user is the server (server=1) and net_vhost connects (client=1).
 */
export async function dpdkPair(work: string, pair: Pair, frontendListens = false): Promise<DpdkRun> {
  const fe = path.join(work, 'fe.sock');
  const be = path.join(work, 'be.sock');
  const proxy = new ProxyProcess(work);
  const makeBack = () =>
    new Testpmd({
      name: 'be',
      workDir: work,
      mainLcore: 1,
      forwardMode: 'io',
      vdev: `net_vhost0,iface=${be},queues=1${frontendListens ? ',client=1' : ''}`,
      release: pair.backend,
    });
  const makeFront = () =>
    new Testpmd({
      name: 'fe',
      workDir: work,
      mainLcore: 0,
      forwardMode: 'io',
      vdev: `net_virtio_user0,path=${fe},queues=1${frontendListens ? ',server=1' : ''}`,
      release: pair.frontend,
    });
  let back: Testpmd | undefined;
  let front: Testpmd | undefined;
  try {
    if (frontendListens) {
      front = makeFront(); // its EAL init waits until a backend connects
      await waitForSocket(fe, 60_000, front.peer);
      await proxy.starter(be, fe);
      back = makeBack();
    } else {
      back = makeBack();
      await back.peer.waitForLog(/binding succeeded/, 60_000);
      await proxy.starter(fe, be);
      front = makeFront();
    }
    await back.peer.waitForLog(/testpmd> /, 60_000);
    await front.peer.waitForLog(/testpmd> /, 60_000);
    await back.start();
    await front.start(32);
    await new Promise((r) => setTimeout(r, 3000));
    const f = await front.stopForwarding();
    const b = await back.stopForwarding();
    await front.quit();
    return { proxy, frontendRx: f.rx, backendRx: b.rx };
  } finally {
    await front?.peer.stop();
    await back?.peer.stop();
    await proxy.stop();
  }
}

/** passt from a root, run on the host through the root's loader: its sandbox makes a user namespace, which a chrooted process may not. */
export function passtCommand(sock: string, release: RootRelease = 'debian13'): { cmd: string; args: string[] } {
  const r = rootOf(release);
  return {
    cmd: `${r}/lib64/ld-linux-x86-64.so.2`,
    // -4: IPv4 only; no inbound port forwarding; the guest's DNS is never used
    args: [
      '--library-path',
      `${r}/lib/x86_64-linux-gnu:${r}/usr/lib/x86_64-linux-gnu`,
      `${r}/usr/bin/passt`,
      '--vhost-user',
      '-f',
      '-4',
      '-t',
      'none',
      '-u',
      'none',
      '--no-dhcp-dns',
      '-s',
      sock,
    ],
  };
}

/**
 * Guest shell: eth0 up, an address from passt's DHCP (printed as GUEST-DHCP), the router in $GW
 * (passt maps it to the host's loopback); "GUEST-RESULT: FAIL …" and exit when that fails.
 */
export const PASST_GUEST_DHCP = `ip link set lo up; ip link set eth0 up || { echo "GUEST-RESULT: FAIL no eth0"; exit 0; }
i=0; until [ "$(cat /sys/class/net/eth0/operstate)" = up ] || [ $i -ge 50 ]; do sleep 0.1; i=$((i+1)); done
cat > /tmp/dhcp.sh <<'S'
#!/bin/sh
[ "$1" = bound ] || exit 0
ifconfig $interface $ip netmask $subnet up
route add default gw \${router%% *}
echo "GUEST-DHCP: $ip router \${router%% *}" > /dev/console
echo \${router%% *} > /tmp/gw
S
chmod +x /tmp/dhcp.sh
udhcpc -i eth0 -n -q -t 5 -T 2 -s /tmp/dhcp.sh >/dev/null 2>&1 || { echo "GUEST-RESULT: FAIL no DHCP lease"; exit 0; }
GW=$(cat /tmp/gw)`;

export interface PasstRun extends GuestRun {
  /** what the guest fetched, by sha256, and what the host served */
  fetchedSha?: string;
  servedSha: string;
  /** what the guest posted, as the host received it, and what it should be */
  postedSha?: string;
  guestSha?: string;
  dhcp?: string;
}

/**
 * QEMU (10 or newer) virtio-net <-> passt --vhost-user (Debian 13's or sid's): the guest takes its address from passt's DHCP and
 * moves data over TCP to an HTTP server on the host's loopback (passt maps the router address
 * to 127.0.0.1); no other address is ever used.
 */
export async function passtGuest(work: string, frontend: Release, backend: RootRelease = 'debian13'): Promise<PasstRun> {
  const served = pattern(`passt host data ${Date.now()}\n`, 1 << 20);
  let posted: Buffer | undefined;
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'POST') posted = Buffer.concat(chunks);
      res.end(req.method === 'POST' ? 'ok\n' : served);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const initrd = buildInitramfs(
    work,
    `
${PASST_GUEST_DHCP}
echo "GUEST-DHCP: $(ip -4 addr show eth0 | grep inet)"
wget -q -O /tmp/got http://$GW:${port}/data || { echo "GUEST-RESULT: FAIL fetch"; exit 0; }
echo "GUEST-FETCHED-SHA: $(sha256sum < /tmp/got | cut -d' ' -f1)"
# text: busybox wget --post-file stops at a NUL byte
head -c 131072 /dev/urandom | od -An -tx1 | head -c 262144 > /tmp/up

echo "GUEST-POSTED-SHA: $(sha256sum < /tmp/up | cut -d' ' -f1)"
wget -q -O - --post-file /tmp/up http://$GW:${port}/up >/dev/null || { echo "GUEST-RESULT: FAIL post"; exit 0; }
echo "GUEST-RESULT: PASS"
`,
    ['virtio_pci', 'virtio_net'],
  );
  const fe = path.join(work, 'fe.sock');
  const be = path.join(work, 'be.sock');
  const proxy = new ProxyProcess(work);
  const p = passtCommand(be, backend);
  const passt = new Peer(p.cmd, p.args, { name: 'passt', logFile: path.join(work, 'passt.log') });
  let q: Peer | undefined;
  try {
    await waitForSocket(be, 30_000, passt);
    await proxy.starter(fe, be);
    q = qemuPeer(work, { frontend, backend }, initrd, '', vhostUserNetArgs(`socket,id=c0,path=${fe}`, frontend !== 'debian12'));
    const rc = await q.waitExit(180_000);
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}\n${q.log().slice(-1500)}`);
  } finally {
    await q?.stop();
    await passt.stop();
    await proxy.stop();
    server.close();
  }
  const log = q.log();
  return {
    proxy,
    qemuLog: log,
    backendLog: passt.log(),
    servedSha: sha(served),
    fetchedSha: log.match(/GUEST-FETCHED-SHA: (\w+)/)?.[1],
    guestSha: log.match(/GUEST-POSTED-SHA: (\w+)/)?.[1],
    postedSha: posted && sha(posted),
    dhcp: log.match(/GUEST-DHCP: (\S+) router/)?.[1],
  };
}

export interface OvsRun {
  /** the proxy between QEMU and OVS's dpdkvhostuser port (OVS listens) */
  serverPortProxy: ProxyProcess;
  /** the proxy between OVS's dpdkvhostuserclient port and testpmd virtio-user (server=1) */
  clientPortProxy: ProxyProcess;
  qemuLog: string;
  testpmdLog: string;
  ovsLog: string;
}

/**
 * A QEMU guest on an OVS-DPDK dpdkvhostuser port and a testpmd virtio-user (icmpecho, server=1)
 * on a dpdkvhostuserclient port, each through its own proxy: the guest pings testpmd across
 * OVS's bridge. `release`: QEMU 7.2, OVS 3.1 and DPDK 22.11, or QEMU 10, OVS 3.5 and DPDK 24.11.
 */
export async function ovsGuest(work: string, release: Release = 'debian12', pings = 12): Promise<OvsRun> {
  const initrd = buildInitramfs(work, guestBody(pings, pings / 2), ['virtio_pci', 'virtio_net']);
  const ovs = new OvsDpdk(work, release);
  const qemuSock = path.join(work, 'qemu-fe.sock');
  const clientPath = path.join(work, 'ovs-client.sock'); // OVS connects here (the proxy listens)
  const tpSock = path.join(work, 'testpmd.sock'); // testpmd virtio-user listens here
  const serverPortProxy = new ProxyProcess(path.join(work, 'p-server'));
  const clientPortProxy = new ProxyProcess(path.join(work, 'p-client'));
  fs.mkdirSync(serverPortProxy.workDir, { recursive: true });
  fs.mkdirSync(clientPortProxy.workDir, { recursive: true });
  let tp: Testpmd | undefined;
  let q: Peer | undefined;
  try {
    await ovs.start(0);
    const vhu0 = await ovs.addServerPort('vhu0');
    await serverPortProxy.starter(qemuSock, vhu0);
    // testpmd is the frontend and listens (server=1); EAL init waits until OVS has connected
    tp = new Testpmd({
      name: 'tp',
      workDir: work,
      mainLcore: 1,
      forwardMode: 'icmpecho',
      mbufs: 8192,
      vdev: `net_virtio_user0,path=${tpSock},queues=1,server=1`,
      release,
    });
    await waitForSocket(tpSock, 30_000, tp.peer);
    await clientPortProxy.starter(clientPath, tpSock);
    ovs.addClientPort('vhuc1', clientPath);
    await tp.peer.waitForLog(/testpmd> /, 60_000);
    tp.cmd('set verbose 1');
    tp.cmd('start');
    q = qemuPeer(work, { frontend: release, backend: release }, initrd, '', vhostUserNetArgs(`socket,id=c0,path=${qemuSock}`, release !== 'debian12'));
    const rc = await q.waitExit(180_000);
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}\n${q.log().slice(-1500)}`);
    return {
      serverPortProxy,
      clientPortProxy,
      qemuLog: q.log(),
      testpmdLog: tp.peer.log(),
      ovsLog: ovs.log(),
    };
  } finally {
    await q?.stop();
    await tp?.peer.stop();
    await ovs.stop();
    await serverPortProxy.stop();
    await clientPortProxy.stop();
  }
}

export interface VsockRun extends GuestRun {
  sentSha?: string;
  echoedSha?: string;
  hostReceivedSha?: string;
}

/** Builds test/e2e/guest/vsock-pipe.c, static, for the guest. */
function vsockPipe(work: string): string {
  const out = path.join(work, 'vsock-pipe');
  execFileSync('gcc', ['-static', '-O2', '-o', out, path.join(__dirname, '../guest/vsock-pipe.c')]);
  return out;
}

/**
 * QEMU vhost-user-vsock-pci <-> rust-vmm's vhost-device-vsock (Debian sid): the guest connects
 * to the host (CID 2) port 1234, which vhost-device-vsock turns into a connection to the unix
 * socket <uds>_1234 where the test listens and echoes; 256 KiB cross each way.
 */
export async function vsockGuest(work: string, frontend: Release): Promise<VsockRun> {
  const uds = path.join(work, 'vm.vsock');
  let hostReceived: Buffer | undefined;
  const echo = net.createServer((c) => {
    // echo as it arrives: the guest reads back as many bytes as it sent
    const chunks: Buffer[] = [];
    c.on('data', (d: Buffer) => {
      chunks.push(d);
      hostReceived = Buffer.concat(chunks);
      c.write(d);
    });
    c.on('error', () => {});
  });
  await new Promise<void>((r) => echo.listen(`${uds}_1234`, r));
  const initrd = buildInitramfs(
    work,
    `
head -c 131072 /dev/urandom | od -An -tx1 | head -c 262144 > /tmp/up

echo "GUEST-SENT-SHA: $(sha256sum < /tmp/up | cut -d' ' -f1)"
i=0; until /bin/vsock-pipe 2 1234 < /tmp/up > /tmp/down 2>/tmp/err || [ $i -ge 20 ]; do sleep 0.5; i=$((i+1)); done
cat /tmp/err
echo "GUEST-ECHOED-SHA: $(sha256sum < /tmp/down | cut -d' ' -f1)"
[ -s /tmp/down ] && echo "GUEST-RESULT: PASS" || echo "GUEST-RESULT: FAIL nothing came back"
`,
    ['virtio_pci', 'vmw_vsock_virtio_transport'],
    [vsockPipe(work)],
  );
  const fe = path.join(work, 'fe.sock');
  const be = path.join(work, 'be.sock');
  const proxy = new ProxyProcess(work);
  const run = fromRelease('debian13', [work], '/usr/bin/vhost-device-vsock', ['--guest-cid', '3', '--socket', be, '--uds-path', uds]);
  const vsock = new Peer(run.cmd, run.args, { name: 'vhost-device-vsock', logFile: path.join(work, 'vsock.log'), env: run.env });
  let q: Peer | undefined;
  try {
    await waitForSocket(be, 30_000, vsock);
    await proxy.starter(fe, be);
    q = qemuPeer(work, { frontend, backend: 'debian13' }, initrd, '', ['-chardev', `socket,id=c0,path=${fe}`, '-device', 'vhost-user-vsock-pci,chardev=c0']);
    const rc = await q.waitExit(120_000);
    if (rc !== 0) throw new Error(`QEMU exited with ${rc}\n${q.log().slice(-1500)}`);
  } finally {
    await q?.stop();
    await vsock.stop();
    await proxy.stop();
    echo.close();
  }
  const log = q.log();
  return {
    proxy,
    qemuLog: log,
    backendLog: vsock.log(),
    sentSha: log.match(/GUEST-SENT-SHA: (\w+)/)?.[1],
    echoedSha: log.match(/GUEST-ECHOED-SHA: (\w+)/)?.[1],
    hostReceivedSha: hostReceived && sha(hostReceived),
  };
}

/** The rust-vmm test crates: their sources here, and where each is built (cargo's target and home), reused across runs. */
export type RustCrate = 'rust-frontend' | 'rust-backend';
const rustTarget = (crate: RustCrate): string => `/var/cache/vhostscope/${crate}-target`;
const rustSource = (crate: RustCrate): string => path.join(__dirname, '..', crate);

/**
 * Builds test/e2e/<crate> inside the Debian 13 root, offline, against Debian's packaged crates
 * (librust-vhost-dev 0.13, librust-vhost-user-backend-dev 0.17); returns the binary's path (the
 * same inside the root and on the host).
 */
export function buildRustCrate(crate: RustCrate): string {
  const target = rustTarget(crate);
  const src = rustSource(crate);
  fs.mkdirSync(target, { recursive: true });
  // from the crate's directory: cargo reads .cargo/config.toml (Debian's registry) from the cwd
  const run = fromRelease('debian13', [src, target], '/bin/sh', [
    '-c',
    `cd '${src}' && CARGO_HOME='${target}/cargo-home' CARGO_TARGET_DIR='${target}' exec cargo build --release --offline`,
  ]);
  try {
    execFileSync(run.cmd, run.args, { env: run.env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
  } catch (err) {
    throw new Error(`cargo build of ${src} failed:\n${String((err as { stderr?: Buffer }).stderr ?? err).slice(-3000)}`);
  }
  return path.join(target, 'release', `vhs-${crate}`);
}

export interface RustFrontendRun {
  proxy: ProxyProcess;
  output: string;
  rc: number | null;
  backendRx: number;
}

/** The rust-vmm frontend <-> testpmd net_vhost (io forwarding: every frame comes back), through the proxy. */
export async function rustFrontendPair(work: string, backend: Release, binary: string, packets = 64): Promise<RustFrontendRun> {
  const fe = path.join(work, 'fe.sock');
  const be = path.join(work, 'be.sock');
  const proxy = new ProxyProcess(work);
  const tp = new Testpmd({ name: 'be', workDir: work, mainLcore: 1, forwardMode: 'io', vdev: `net_vhost0,iface=${be},queues=1`, release: backend });
  try {
    await tp.peer.waitForLog(/binding succeeded/, 60_000);
    await tp.start();
    await proxy.starter(fe, be);
    const run = fromRelease('debian13', [work, path.dirname(binary)], binary, [fe, String(packets)]);
    const front = new Peer(run.cmd, run.args, { name: 'rust-frontend', logFile: path.join(work, 'rust-frontend.log'), env: run.env, timeoutMs: 120_000 });
    const rc = await front.waitExit(90_000);
    const stats = await tp.stopForwarding();
    return { proxy, output: front.log(), rc, backendRx: stats.rx };
  } finally {
    await tp.peer.stop();
    await proxy.stop();
  }
}
