/**
 * OVS-DPDK (Debian 12's openvswitch-switch-dpdk 3.1) run by hand in a work directory, the way
 * an operator's deployment runs it but without systemd, a kernel module or hugepages:
 * ovsdb-server and ovs-vswitchd-dpdk as foreground processes, a netdev bridge, and
 * dpdkvhostuser ports (OVS listens at <rundir>/<port>) or dpdkvhostuserclient ports (OVS
 * connects to options:vhost-server-path and keeps retrying).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Peer, sleep, waitForSocket } from './process';

export const OVS_VSWITCHD = '/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk';

export function ovsMissing(): string | undefined {
  return fs.existsSync(OVS_VSWITCHD) ? undefined : `${OVS_VSWITCHD} missing: apt-get install --no-install-recommends openvswitch-switch-dpdk`;
}

export class OvsDpdk {
  readonly runDir: string;
  private readonly db: string;
  private readonly env: NodeJS.ProcessEnv;
  private ovsdb: Peer | undefined;
  private vswitchd: Peer | undefined;

  constructor(readonly workDir: string) {
    this.runDir = path.join(workDir, 'ovs');
    this.db = path.join(this.runDir, 'conf.db');
    this.env = { ...process.env, OVS_RUNDIR: this.runDir, OVS_LOGDIR: this.runDir, OVS_DBDIR: this.runDir, OVS_SYSCONFDIR: this.runDir };
  }

  /** ovs-vsctl against this instance's database. */
  vsctl(...args: string[]): string {
    return execFileSync('ovs-vsctl', [`--db=unix:${this.runDir}/db.sock`, '--timeout=30', ...args], { env: this.env, encoding: 'utf8' });
  }

  /**
   * Starts OVS with DPDK on `pmdCpu`: no hugepages (--no-huge --legacy-mem, 2 GiB of
   * malloc'd memory: with 1 GiB a busy machine sometimes fails a port's mempool), no PCI.
   * The PMD thread sleeps up to `maxSleepUs` when idle so it does not take a whole CPU.
   */
  async start(pmdCpu = 0, maxSleepUs = 1000): Promise<void> {
    fs.mkdirSync(this.runDir, { recursive: true });
    fs.rmSync(this.db, { force: true });
    execFileSync('ovsdb-tool', ['create', this.db, '/usr/share/openvswitch/vswitch.ovsschema'], { env: this.env });
    this.ovsdb = new Peer('ovsdb-server', [this.db, `--remote=punix:${this.runDir}/db.sock`, `--unixctl=${this.runDir}/ovsdb-server.ctl`, `--log-file=${this.runDir}/ovsdb-server.log`, `--pidfile=${this.runDir}/ovsdb-server.pid`],
      { name: 'ovsdb-server', logFile: path.join(this.workDir, 'ovsdb-server.out'), env: this.env });
    await waitForSocket(`${this.runDir}/db.sock`, 20_000, this.ovsdb);
    const mask = `0x${(1 << pmdCpu).toString(16)}`;
    this.vsctl('--no-wait', 'init');
    this.vsctl('--no-wait', 'set', 'Open_vSwitch', '.',
      'other_config:dpdk-init=true',
      'other_config:dpdk-extra="--no-huge --legacy-mem -m 2048 --no-pci --no-shconf"',
      `other_config:dpdk-lcore-mask=${mask}`,
      `other_config:pmd-cpu-mask=${mask}`,
      `other_config:pmd-maxsleep=${maxSleepUs}`);
    this.vswitchd = new Peer(OVS_VSWITCHD, [`unix:${this.runDir}/db.sock`, `--unixctl=${this.runDir}/ovs-vswitchd.ctl`, `--log-file=${this.runDir}/ovs-vswitchd.log`, `--pidfile=${this.runDir}/ovs-vswitchd.pid`],
      { name: 'ovs-vswitchd', logFile: path.join(this.workDir, 'ovs-vswitchd.out'), env: this.env });
    const end = Date.now() + 60_000;
    while (!/true/.test(this.vsctl('get', 'Open_vSwitch', '.', 'dpdk_initialized'))) {
      if (!this.vswitchd.alive) throw new Error(`ovs-vswitchd exited\n${this.log().slice(-2000)}`);
      if (Date.now() > end) throw new Error(`OVS DPDK did not initialise within 60 s\n${this.log().slice(-2000)}`);
      await sleep(250);
    }
    this.vsctl('add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev');
  }

  /** A dpdkvhostuser port: OVS is the vhost-user server at <runDir>/<name>. Returns that path. */
  async addServerPort(name: string): Promise<string> {
    this.vsctl('add-port', 'br0', name, '--', 'set', 'Interface', name, 'type=dpdkvhostuser');
    const sock = path.join(this.runDir, name);
    await waitForSocket(sock, 30_000, this.vswitchd);
    return sock;
  }

  /** A dpdkvhostuserclient port: OVS connects to `serverPath` (and retries until it can). */
  addClientPort(name: string, serverPath: string): void {
    this.vsctl('add-port', 'br0', name, '--', 'set', 'Interface', name, 'type=dpdkvhostuserclient', `options:vhost-server-path=${serverPath}`);
  }

  /** OVS's own log (ovs-vswitchd.log in the run directory). */
  log(): string {
    try {
      return fs.readFileSync(path.join(this.runDir, 'ovs-vswitchd.log'), 'utf8');
    } catch {
      return '';
    }
  }

  /** rx/tx packet counters of a port, from the Interface table. */
  stats(name: string): Record<string, number> {
    const out = this.vsctl('get', 'Interface', name, 'statistics');
    return Object.fromEntries([...out.matchAll(/"?(\w+)"?=(\d+)/g)].map((m) => [m[1], Number(m[2])]));
  }

  async stop(): Promise<void> {
    await this.vswitchd?.stop();
    await this.ovsdb?.stop();
  }
}
