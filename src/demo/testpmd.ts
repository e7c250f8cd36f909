/**
 * Driving dpdk-testpmd (Debian's dpdk-dev) through its interactive prompt: a real vhost-user
 * backend (net_vhost) or frontend (net_virtio_user) with no VM and no hugepages.
 * testpmd's memory: --no-huge -m 256 shares one memfd region; the default mbuf pool does not
 * fit, hence --total-num-mbufs.
 */
import * as path from 'node:path';
import { Peer, sleep } from './process';
import { fromRelease, type Release } from './release';

export interface TestpmdOptions {
  name: string;
  workDir: string;
  /** e.g. "net_vhost0,iface=/tmp/x.sock,queues=1" */
  vdev: string;
  mainLcore: 0 | 1;
  forwardMode: string;
  queues?: number;
  mbufs?: number;
  extraArgs?: string[];
  timeoutMs?: number;
  /** where dpdk-testpmd comes from (default Debian 12's, DPDK 22.11; Debian 13 has 24.11, sid 25.11) */
  release?: Release;
  /** directories the peer must see (its socket's): only for a release other than the host's */
  dirs?: string[];
}

export interface PortStats {
  rxPackets: number;
  txPackets: number;
  rxPps: number;
  txPps: number;
}

export interface ForwardStats {
  rx: number;
  tx: number;
  txDropped: number;
}

let prefixCounter = 0;

export class Testpmd {
  readonly peer: Peer;

  constructor(readonly opts: TestpmdOptions) {
    const q = opts.queues ?? 1;
    const args = [
      '-oL',
      '-eL',
      (opts.release ?? 'debian12') === 'debian12' ? 'dpdk-testpmd' : '/usr/bin/dpdk-testpmd',
      '-l',
      '0,1',
      '--main-lcore',
      String(opts.mainLcore),
      '--no-pci',
      '--no-huge',
      '--no-shconf',
      '-m',
      '256',
      `--file-prefix=vhs-${opts.name}-${process.pid}-${prefixCounter++}`,
      '--vdev',
      opts.vdev,
      '--',
      '-i',
      '--nb-cores=1',
      `--rxq=${q}`,
      `--txq=${q}`,
      `--total-num-mbufs=${opts.mbufs ?? 16384}`,
      '--no-flush-rx',
      `--forward-mode=${opts.forwardMode}`,
      ...(opts.extraArgs ?? []),
    ];
    const run = fromRelease(opts.release ?? 'debian12', [opts.workDir, ...(opts.dirs ?? [])], '/usr/bin/stdbuf', args);
    this.peer = new Peer(run.cmd, run.args, {
      name: opts.name,
      env: run.env,
      logFile: path.join(opts.workDir, `${opts.name}.log`),
      stdinPipe: true,
      timeoutMs: opts.timeoutMs ?? 300_000,
    });
  }

  cmd(line: string): void {
    this.peer.write(line);
  }

  private count(re: RegExp): number {
    return (this.peer.log().match(re) ?? []).length;
  }

  /** Sends `command` and waits until `marker` appears once more than before, then returns the log after it. */
  private async roundTrip(command: string, marker: RegExp, complete: RegExp, timeoutMs = 15_000): Promise<string> {
    const global = new RegExp(marker.source, 'g');
    const before = this.count(global);
    this.cmd(command);
    const end = Date.now() + timeoutMs;
    for (;;) {
      const log = this.peer.log();
      if ((log.match(global) ?? []).length > before) {
        const block = log.slice(log.lastIndexOf(log.match(global)!.at(-1)!));
        if (complete.test(block)) return block;
      }
      if (!this.peer.alive) throw new Error(`${this.opts.name} exited during "${command}"`);
      if (Date.now() > end) throw new Error(`${this.opts.name}: no answer to "${command}" within ${timeoutMs} ms`);
      await sleep(50);
    }
  }

  async portStats(): Promise<PortStats> {
    const b = await this.roundTrip('show port stats all', /NIC statistics for port 0/, /Tx-pps:\s+\d+[\s\S]*#{5,}/);
    const num = (re: RegExp): number => Number(b.match(re)?.[1] ?? NaN);
    return {
      rxPackets: num(/RX-packets:\s+(\d+)/),
      txPackets: num(/TX-packets:\s+(\d+)/),
      rxPps: num(/Rx-pps:\s+(\d+)/),
      txPps: num(/Tx-pps:\s+(\d+)/),
    };
  }

  async start(txFirst?: number): Promise<void> {
    const n = this.count(/packet forwarding - ports=/g);
    this.cmd(txFirst ? `start tx_first ${txFirst}` : 'start');
    const end = Date.now() + 10_000;
    while (this.count(/packet forwarding - ports=/g) <= n) {
      if (Date.now() > end || !this.peer.alive) throw new Error(`${this.opts.name}: forwarding did not start`);
      await sleep(50);
    }
  }

  /** `stop`: returns the accumulated forward statistics. */
  async stopForwarding(): Promise<ForwardStats> {
    const b = await this.roundTrip('stop', /Accumulated forward statistics/, /TX-packets:\s+\d+/);
    const num = (re: RegExp): number => Number(b.match(re)?.[1] ?? NaN);
    return { rx: num(/RX-packets:\s+(\d+)/), tx: num(/TX-packets:\s+(\d+)/), txDropped: num(/TX-dropped:\s+(\d+)/) };
  }

  async quit(timeoutMs = 20_000): Promise<void> {
    this.cmd('quit');
    try {
      await this.peer.waitExit(timeoutMs);
    } finally {
      await this.peer.stop();
    }
  }
}
