/** `vhostscope proxy` and `attach`: run the proxy service until SIGINT/SIGTERM; `detach`. */
import type { Command } from 'commander';
import * as path from 'node:path';
import { chooseFormat, createLogger } from '../log/logger';
import { detachPath, movedPath } from '../service/options';
import { ProxyService } from '../service/service';
import { boundHeapGrowth } from './daemon-heap';
import { loadProxyConfig, type ProxyConfig } from './proxy-config';
import { addProxyOptions, fileRules, resolveDevices, serviceOptions, type DeviceRun, type ProxyCliOptions } from './proxy-options';

export { knownOptions } from './proxy-options';

export function registerProxy(program: Command): void {
  const cmd = program
    .command('proxy')
    .description('sit between a vhost-user frontend and backend, forward everything, log every message')
    .option('--listen <path>', 'unix socket to listen on (the connecting peer uses this path)')
    .option('--connect <path>', "unix socket to connect to (the listening peer's path)")
    .option(
      '--config <file>',
      'many devices in one daemon: a JSON file of options and "devices" [{name, listen, connect, ...}] (docs/proxy-config.md); SIGHUP re-reads its fault rules',
    );
  addProxyOptions(cmd).action((o: ProxyCliOptions, c: Command) => {
    const { global, devices, config } = resolveDevices(o, c);
    return runProxy(global, devices, config);
  });
  const attach = program
    .command('attach')
    .description(
      'take over a listening peer\'s socket path without touching either peer: its socket is moved aside, vhostscope listens at the path (same owner, group, mode) and forwards to it; SIGINT/SIGTERM put it back (docs: README "Insert into a running system", docs/attach.md)',
    )
    .argument('<path>', 'the socket a peer (QEMU server, DPDK/OVS vhost, virtiofsd, ...) listens on');
  attach.option(
    '--reconnect',
    'also end the connections the peer accepted before (shutting down its end of each, with pidfd_getfd: root), so that peers that reconnect (QEMU reconnect=N, OVS dpdkvhostuserclient, DPDK virtio-user server mode) come back through vhostscope',
  );
  addProxyOptions(attach).action((p: string, o: ProxyCliOptions) =>
    runProxy(o, [{ name: path.basename(p).replace(/\.sock$/, ''), o: { ...o, listen: p, connect: movedPath(p) }, attach: true }]),
  );
  program
    .command('detach')
    .description('put back the socket an attach moved aside (after vhostscope attach was killed; a running attach detaches itself on SIGINT/SIGTERM)')
    .argument('<path>', 'the path given to attach')
    .action((p: string) => void process.stdout.write(detachPath(p) + '\n'));
}

export async function runProxy(global: ProxyCliOptions, runs: DeviceRun[], config?: ProxyConfig): Promise<void> {
  boundHeapGrowth(); // a daemon that runs for days: its heap near twice its live data (daemon-heap.ts)
  const opts = serviceOptions(global, runs, config);
  const { logger, flush, dropped } = createLogger(chooseFormat(global, Boolean(process.stdout.isTTY)));
  const service = new ProxyService(opts, logger, dropped);
  const stop = (sig: string): void => {
    logger.info({ event: 'notice', msg: `${sig}: closing every session` });
    void service.stop(`daemon received ${sig}`).then(() => {
      flush();
      process.exit(0);
    });
  };
  // SIGUSR1: "something just went wrong", from a script or a person who saw it
  process.on('SIGUSR1', () => service.mark('SIGUSR1', 'SIGUSR1'));
  // SIGHUP: re-read the rules files (--rules, the config's "fault" and "rules"); all or nothing
  process.on('SIGHUP', () => {
    try {
      const fresh = config ? loadProxyConfig(config.file, config.known) : undefined;
      const { removed, added } = service.reloadRules(
        fileRules(fresh ? ({ ...global, rules: (fresh.options.rules as string | undefined) ?? global.rules } as ProxyCliOptions) : global, fresh),
      );
      logger.warn({
        event: 'notice',
        msg: `SIGHUP: fault rules reloaded: removed ${removed.join(', ') || 'none'}; active from files: ${added.map((e) => `${e.id}: ${e.text}`).join('; ') || 'none'}`,
      });
    } catch (err) {
      logger.error({ event: 'notice', msg: `SIGHUP: the rules were not reloaded, the old ones stay: ${(err as Error).message}` });
    }
  });
  // Before any socket exists: a signal that comes as soon as a peer can see the daemon listening
  // must find its handler (without one, the default action would end the daemon at once).
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  await service.start();
}
