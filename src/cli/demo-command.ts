/**
 * `vhostscope demo`: a real DPDK testpmd virtio-user frontend and a testpmd vhost backend,
 * talking through the proxy running in this process. Prints the decoded handshake as it
 * happens and the packet counts of both sides. Needs dpdk-testpmd (Debian: dpdk-dev) and root.
 */
import type { Command } from 'commander';
import { jsonOption, numberOpt } from './options';
import * as os from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { chooseFormat, createLogger } from '../log/logger';
import { ProxyService } from '../service/service';
import { runDpdkScenario, type DpdkMode } from '../demo/dpdk-scenario';

export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('run a real DPDK virtio-user frontend and vhost backend through the proxy and show the handshake')
    .option('--mode <mode>', 'txonly (frontend sends), rxonly (backend sends) or loop', 'txonly')
    .addOption(numberOpt('--seconds <n>', 'seconds of traffic', { min: 1, max: 3600, integer: true }, 3))
    .addOption(jsonOption('JSON lines instead of human-readable lines'))
    .option('--work <dir>', 'scratch directory (default: a new private one in the temporary directory)')
    .action(async (o: { mode: DpdkMode; seconds: number; json?: boolean; work?: string }) => {
      const { logger, flush } = createLogger(chooseFormat({ json: o.json, pretty: !o.json }, true));
      // a fresh private directory: a fixed name in /tmp is one another user can make first (and fill with links)
      const work = o.work ?? fs.mkdtempSync(path.join(os.tmpdir(), 'vhostscope-demo-'));
      let service: ProxyService | undefined;
      process.stdout.write(`vhostscope demo: testpmd virtio-user (frontend) -> vhostscope proxy -> testpmd vhost (backend), ${o.mode}\n`);
      try {
        const r = await runDpdkScenario({
          workDir: work,
          mode: o.mode,
          durationS: o.seconds,
          proxy: async (listen, connect) => {
            // the same wiring as `vhostscope proxy --device net --no-control`
            service = new ProxyService({ devices: [{ name: 'demo', listen, connect, daemon: { device: 'net' }, device: 'net', control: false }] }, logger);
            await service.start();
          },
          onReady: () => process.stdout.write('--- handshake complete; packets flowing\n'),
        });
        await service?.stop('demo finished');
        flush();
        const f = r.frontend;
        const b = r.backend;
        process.stdout.write(
          `--- packet counts\n` +
            `frontend (virtio-user): rx=${f.rx} tx=${f.tx} tx_dropped=${f.txDropped}\n` +
            `backend  (vhost)      : rx=${b.rx} tx=${b.tx} tx_dropped=${b.txDropped}\n` +
            `throughput: ${(r.rxPps / 1e6).toFixed(2)} Mpps (64-byte packets, through the proxy)\n` +
            (r.problems.length ? `PROBLEMS: ${r.problems.join('; ')}\n` : 'counts match on both sides: every packet crossed\n'),
        );
        process.exitCode = r.problems.length ? 1 : 0;
      } catch (err) {
        await service?.stop('demo failed');
        process.stderr.write(`demo failed: ${(err as Error).message}\nlogs in ${work}\n`);
        process.exitCode = 1;
      }
    });
}
