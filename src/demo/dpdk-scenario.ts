/**
 * DPDK only, no VM: testpmd net_virtio_user (the vhost-user frontend) and testpmd net_vhost
 * (the backend) exchange real packets, optionally through a proxy, and the packet counts of
 * both sides are cross-checked exactly. Used by the demo, the benchmarks and the e2e tests.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { sleep, waitForSocket } from './process';
import { Testpmd, type ForwardStats } from './testpmd';

export type DpdkMode = 'txonly' | 'rxonly' | 'loop';
export type Roles = 'backend-server' | 'frontend-server';

/** Starts something between the two sockets; resolves once it listens (or at once). */
export type ProxyStarter = (listenPath: string, connectPath: string) => Promise<void>;

export interface DpdkScenarioOptions {
  workDir: string;
  mode?: DpdkMode;
  roles?: Roles;
  /** seconds of the measurement window */
  durationS?: number;
  /** extra virtio_user devargs, e.g. ",packed_vq=1" */
  vuArgs?: string;
  queues?: number;
  /** without it the peers share one socket (direct connection) */
  proxy?: ProxyStarter;
  /**
   * the peers share one socket path (no proxy in between by configuration); called with it once
   * the listening peer has bound it and before the other connects (`vhostscope attach` tests)
   */
  attach?: (sharedPath: string) => Promise<void>;
  /** called once the vhost-user session is ready and before traffic starts */
  onReady?: () => void;
  /** called at the start and the end of the measurement window with the peers' pids */
  onWindow?: (phase: 'start' | 'end', pids: { frontend: number; backend: number }) => void;
  /**
   * false: the backend is not expected to become ready (a fault rule broke the handshake);
   * wait this long for it instead, then run the traffic anyway and report what crossed.
   */
  expectReady?: false;
  notReadyWaitMs?: number;
}

export interface DpdkResult {
  frontend: ForwardStats;
  backend: ForwardStats;
  /** packets per second over the window, on the receiving side (loop: frontend->backend) */
  rxPps: number;
  /** ms from starting the connecting peer to the backend's "virtio is now ready" */
  handshakeMs: number;
  /** the backend said "virtio is now ready for processing" */
  ready: boolean;
  problems: string[];
}

const MIN_PKTS = 100_000;

export async function runDpdkScenario(o: DpdkScenarioOptions): Promise<DpdkResult> {
  const mode = o.mode ?? 'txonly';
  const roles = o.roles ?? 'backend-server';
  const q = o.queues ?? 1;
  fs.mkdirSync(o.workDir, { recursive: true });
  const feSock = path.join(o.workDir, o.proxy ? 'fe.sock' : 'vhu.sock');
  const beSock = path.join(o.workDir, o.proxy ? 'be.sock' : 'vhu.sock');
  for (const s of new Set([feSock, beSock])) fs.rmSync(s, { force: true });
  const [beFwd, feFwd] = mode === 'txonly' ? ['rxonly', 'txonly'] : mode === 'rxonly' ? ['txonly', 'rxonly'] : ['io', 'io'];
  const feServer = roles === 'frontend-server';
  const makeBe = (): Testpmd =>
    new Testpmd({
      name: 'be',
      workDir: o.workDir,
      mainLcore: 0,
      forwardMode: beFwd,
      queues: q,
      vdev: `net_vhost0,iface=${beSock},queues=${q}${feServer ? ',client=1' : ''}`,
    });
  const makeFe = (): Testpmd =>
    new Testpmd({
      name: 'fe',
      workDir: o.workDir,
      mainLcore: 1,
      forwardMode: feFwd,
      queues: q,
      vdev: `net_virtio_user0,path=${feSock},queues=${q}${feServer ? ',server=1' : ''}${o.vuArgs ?? ''}`,
    });

  let be: Testpmd | undefined;
  let fe: Testpmd | undefined;
  try {
    let t0: number;
    if (!feServer) {
      be = makeBe();
      await be.peer.waitForLog(/binding succeeded/, 30_000);
      if (o.proxy) await o.proxy(feSock, beSock);
      if (o.attach) await o.attach(beSock);
      await waitForSocket(feSock, 20_000);
      t0 = Date.now();
      fe = makeFe();
    } else {
      fe = makeFe(); // blocks in EAL init until a client connects
      await waitForSocket(feSock, 30_000, fe.peer);
      if (o.proxy) await o.proxy(beSock, feSock);
      if (o.attach) await o.attach(feSock);
      await waitForSocket(beSock, 20_000);
      t0 = Date.now();
      be = makeBe();
    }
    const readyRe = /virtio is now ready for processing/;
    if (o.expectReady === false) {
      await fe.peer.waitForLog(/testpmd> /, 60_000);
      await sleep(o.notReadyWaitMs ?? 3000);
    } else await be.peer.waitForLog(readyRe, 60_000, 5); // fine-grained: this is the handshake time
    const handshakeMs = Date.now() - t0;
    const ready = readyRe.test(be.peer.log());
    await fe.peer.waitForLog(/testpmd> /, 60_000);
    await be.peer.waitForLog(/testpmd> /, 60_000);
    o.onReady?.();

    await be.start();
    await fe.start(mode === 'loop' ? 8 : undefined);
    await sleep(1000);
    await fe.portStats();
    await be.portStats(); // baseline: pps is computed since the last 'show'
    o.onWindow?.('start', { frontend: fe.peer.pid, backend: be.peer.pid });
    await sleep((o.durationS ?? 3) * 1000);
    const feNic = await fe.portStats();
    const beNic = await be.portStats();
    o.onWindow?.('end', { frontend: fe.peer.pid, backend: be.peer.pid });
    const rxPps = mode === 'rxonly' ? feNic.rxPps : beNic.rxPps;

    let feStats: ForwardStats;
    let beStats: ForwardStats;
    // stop the sender first so the receiver can drain the ring
    if (mode === 'rxonly') {
      beStats = await be.stopForwarding();
      await sleep(1000);
      feStats = await fe.stopForwarding();
    } else {
      feStats = await fe.stopForwarding();
      await sleep(1000);
      beStats = await be.stopForwarding();
    }
    // the frontend quits first: it sends SET_VRING_ENABLE 0 / GET_VRING_BASE while the backend lives
    await fe.quit();
    await be.quit();

    const problems: string[] = [];
    if (!ready) problems.push('the backend never became ready');
    if (mode === 'txonly') {
      if (feStats.tx < MIN_PKTS) problems.push(`frontend sent only ${feStats.tx} packets`);
      if (beStats.rx !== feStats.tx) problems.push(`backend received ${beStats.rx} != frontend sent ${feStats.tx}`);
    } else if (mode === 'rxonly') {
      if (beStats.tx < MIN_PKTS) problems.push(`backend sent only ${beStats.tx} packets`);
      if (feStats.rx !== beStats.tx) problems.push(`frontend received ${feStats.rx} != backend sent ${beStats.tx}`);
    } else {
      if (feStats.rx < MIN_PKTS || beStats.rx < MIN_PKTS) problems.push(`loop carried too little: fe rx ${feStats.rx}, be rx ${beStats.rx}`);
      if (beStats.rx !== feStats.tx) problems.push(`backend rx ${beStats.rx} != frontend tx ${feStats.tx}`);
      if (beStats.tx + beStats.txDropped !== beStats.rx) problems.push(`backend forwarded ${beStats.tx}+${beStats.txDropped} of ${beStats.rx}`);
      const inflight = beStats.tx - feStats.rx;
      if (inflight < 0 || inflight > 256 * q) problems.push(`frontend rx ${feStats.rx} vs backend tx ${beStats.tx} (in flight ${inflight})`);
    }
    return { frontend: feStats, backend: beStats, rxPps, handshakeMs, ready, problems };
  } finally {
    await fe?.peer.stop();
    await be?.peer.stop();
  }
}
