/**
 * OVS-DPDK (Debian 12's openvswitch-switch-dpdk 3.1, or Debian 13's 3.5 from the Debian 13 root)
 * run by hand in a work directory, the way
 * an operator's deployment runs it but without systemd, a kernel module or hugepages:
 * ovsdb-server and ovs-vswitchd-dpdk as foreground processes, a netdev bridge, and
 * dpdkvhostuser ports (OVS listens at <rundir>/<port>) or dpdkvhostuserclient ports (OVS
 * connects to options:vhost-server-path and keeps retrying).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { rootOf } from '../src/demo/roots';
import { Peer, sleep, waitForSocket } from '../src/demo/process';
import { fromRelease, type Release, type Spawnable } from '../src/demo/release';

export const OVS_VSWITCHD = '/usr/lib/openvswitch-switch-dpdk/ovs-vswitchd-dpdk';

export function ovsMissing(release: Release = 'debian12'): string | undefined {
  const where = release === 'debian12' ? OVS_VSWITCHD : path.join(rootOf('debian13'), OVS_VSWITCHD);
  return fs.existsSync(where)
    ? undefined
    : `${where} missing: ${release === 'debian12' ? 'apt-get install --no-install-recommends openvswitch-switch-dpdk' : 'scripts/debian-root.sh trixie'}`;
}

export class OvsDpdk {
  readonly runDir: string;
  private readonly db: string;
  private readonly env: NodeJS.ProcessEnv;
  private ovsdb: Peer | undefined;
  private vswitchd: Peer | undefined;

  constructor(
    readonly workDir: string,
    readonly release: Release = 'debian12',
  ) {
    this.runDir = path.join(workDir, 'ovs');
    this.db = path.join(this.runDir, 'conf.db');
    this.env = { ...process.env, OVS_RUNDIR: this.runDir, OVS_LOGDIR: this.runDir, OVS_DBDIR: this.runDir, OVS_SYSCONFDIR: this.runDir };
  }

  /** An OVS program of this instance's release, seeing the work directory. */
  private program(cmd: string, args: string[]): Spawnable & { env: NodeJS.ProcessEnv } {
    const run = fromRelease(this.release, [this.workDir], cmd, args);
    return { ...run, env: { ...this.env, ...(run.env ?? {}) } };
  }

  /** ovs-vsctl against this instance's database. */
  vsctl(...args: string[]): string {
    const run = this.program('/usr/bin/ovs-vsctl', [`--db=unix:${this.runDir}/db.sock`, '--timeout=30', ...args]);
    return execFileSync(run.cmd, run.args, { env: run.env, encoding: 'utf8' });
  }

  /**
   * Starts OVS with DPDK on `pmdCpu`: no hugepages (--no-huge --legacy-mem, 2 GiB of
   * malloc'd memory: with 1 GiB a busy machine sometimes fails a port's mempool), no PCI.
   * The PMD thread sleeps up to `maxSleepUs` when idle so it does not take a whole CPU.
   */
  async start(pmdCpu = 0, maxSleepUs = 1000): Promise<void> {
    fs.mkdirSync(this.runDir, { recursive: true });
    fs.rmSync(this.db, { force: true });
    const create = this.program('/usr/bin/ovsdb-tool', ['create', this.db, '/usr/share/openvswitch/vswitch.ovsschema']);
    execFileSync(create.cmd, create.args, { env: create.env });
    const db = this.program('/usr/sbin/ovsdb-server', [
      this.db,
      `--remote=punix:${this.runDir}/db.sock`,
      `--unixctl=${this.runDir}/ovsdb-server.ctl`,
      `--log-file=${this.runDir}/ovsdb-server.log`,
      `--pidfile=${this.runDir}/ovsdb-server.pid`,
    ]);
    this.ovsdb = new Peer(db.cmd, db.args, { name: 'ovsdb-server', logFile: path.join(this.workDir, 'ovsdb-server.out'), env: db.env });
    await waitForSocket(`${this.runDir}/db.sock`, 20_000, this.ovsdb);
    const mask = `0x${(1 << pmdCpu).toString(16)}`;
    this.vsctl('--no-wait', 'init');
    this.vsctl(
      '--no-wait',
      'set',
      'Open_vSwitch',
      '.',
      'other_config:dpdk-init=true',
      'other_config:dpdk-extra="--no-huge --legacy-mem -m 2048 --no-pci --no-shconf"',
      `other_config:dpdk-lcore-mask=${mask}`,
      `other_config:pmd-cpu-mask=${mask}`,
      `other_config:pmd-maxsleep=${maxSleepUs}`,
    );
    const sw = this.program(OVS_VSWITCHD, [
      `unix:${this.runDir}/db.sock`,
      `--unixctl=${this.runDir}/ovs-vswitchd.ctl`,
      `--log-file=${this.runDir}/ovs-vswitchd.log`,
      `--pidfile=${this.runDir}/ovs-vswitchd.pid`,
    ]);
    this.vswitchd = new Peer(sw.cmd, sw.args, { name: 'ovs-vswitchd', logFile: path.join(this.workDir, 'ovs-vswitchd.out'), env: sw.env });
    const end = Date.now() + 60_000;
    while (!/true/.test(this.vsctl('get', 'Open_vSwitch', '.', 'dpdk_initialized'))) {
      if (!this.vswitchd.alive) throw new Error(`ovs-vswitchd exited\n${this.log().slice(-2000)}`);
      if (Date.now() > end) throw new Error(`OVS DPDK did not initialise within 60 s\n${this.log().slice(-2000)}`);
      await sleep(250);
    }
    this.vsctl('add-br', 'br0', '--', 'set', 'bridge', 'br0', 'datapath_type=netdev');
  }

  /** ovs-appctl against this instance's ovs-vswitchd. */
  appctl(...args: string[]): string {
    const run = this.program('/usr/bin/ovs-appctl', ['-t', `${this.runDir}/ovs-vswitchd.ctl`, '--timeout=30', ...args]);
    return execFileSync(run.cmd, run.args, { env: run.env, encoding: 'utf8' });
  }

  /** Packets the PMD threads have received from every port (their own counters, not the periodic statistics). */
  pmdPacketsReceived(): number {
    return [...this.appctl('dpif-netdev/pmd-stats-show').matchAll(/packets received: (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
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

  async stop(): Promise<void> {
    await this.vswitchd?.stop();
    await this.ovsdb?.stop();
  }
}
