/** `vhostscope status`, `tail` and `rules`: talk to a running daemon over its control socket. */
import type { Command } from 'commander';
import { controlOption, deviceOption, jsonOption } from './options';
import { controlRequest, resolveControlPath } from '../control/client';
import { loadRulesFile, type ActiveRule } from '../faults';
import { humanLine } from '../log/format';
import type { ChannelKind, DeviceType } from '../protocol';
import type { DaemonStatus } from '../events/status';
import type { MarkResult } from '../control/protocol';
import { statusText, rulesText } from '../views/status';

const out = (l: string): boolean => process.stdout.write(l + '\n');

interface ControlOpt {
  control?: string;
  json?: boolean;
}

export function registerControlCommands(program: Command): void {
  program
    .command('status')
    .description('sessions, channels, vrings, counts and active fault rules of a running daemon')
    .addOption(controlOption())
    .addOption(jsonOption())
    .addOption(deviceOption('generic'))
    .action(async (o: ControlOpt & { device: DeviceType }) => {
      const s = (await controlRequest(resolveControlPath(o.control), { cmd: 'status', device: o.device })) as DaemonStatus;
      if (o.json) out(JSON.stringify(s, null, 2));
      else statusText(s).forEach(out);
    });
  program
    .command('tail')
    .description('the live decoded log of a running daemon (the same filters as show)')
    .addOption(controlOption())
    .option('--session <n>', 'only this session')
    .option('--channel <channel>', 'only this channel: main, backend or gpu')
    .option('--request <name>', 'only this request (current or legacy name)')
    .option('--notifications', 'also every relayed kick/call/err')
    .option('--rings', 'also the vring snapshots (a daemon running with --rings)')
    .addOption(jsonOption('JSON lines'))
    .addOption(deviceOption('generic'))
    .action(
      async (o: ControlOpt & { session?: string; channel?: ChannelKind; request?: string; notifications?: boolean; rings?: boolean; device: DeviceType }) => {
        const filter = {
          ...(o.session ? { session: o.session } : {}),
          ...(o.channel ? { channel: o.channel } : {}),
          ...(o.request ? { request: o.request } : {}),
          notifications: Boolean(o.notifications),
          rings: Boolean(o.rings),
        };
        await controlRequest(resolveControlPath(o.control), { cmd: 'tail', filter, device: o.device }, (rec) =>
          out(o.json ? JSON.stringify(rec) : humanLine(rec)),
        );
      },
    );
  const rules = program.command('rules').description('list, add and remove fault rules of a running daemon');
  rules
    .command('list')
    .addOption(controlOption())
    .addOption(jsonOption())
    .action(async (o: ControlOpt) => {
      const list = (await controlRequest(resolveControlPath(o.control), { cmd: 'rules-list' })) as ActiveRule[];
      if (o.json) out(JSON.stringify(list, null, 2));
      else rulesText(list).forEach(out);
    });
  rules
    .command('add')
    .description('add rules (short syntax, as proxy --fault) and/or the rules of a JSON file; all or none become active')
    .argument('[rule...]', 'e.g. "delay GET_VRING_BASE reply ms=2000"')
    .addOption(controlOption())
    .option('--file <rules.json>', 'rules from a file')
    .addOption(jsonOption())
    .action(async (specs: string[], o: ControlOpt & { file?: string }) => {
      const added = (await controlRequest(resolveControlPath(o.control), {
        cmd: 'rules-add',
        specs,
        rules: o.file ? loadRulesFile(o.file) : [],
      })) as ActiveRule[];
      if (o.json) out(JSON.stringify(added, null, 2));
      else added.forEach((r) => out(`added rule ${r.id}: ${r.text}`));
    });
  program
    .command('mark')
    .description("write a note into the daemon's log and pin its recording around now (proxy --keep: retention keeps --pin-before/--pin-after around it)")
    .argument('<text...>', 'what happened, e.g. "guest stalled after migration 112"')
    .addOption(controlOption())
    .action(async (text: string[], o: ControlOpt) => {
      const r = (await controlRequest(resolveControlPath(o.control), { cmd: 'mark', text: text.join(' ') })) as MarkResult;
      out(
        r.pinned
          ? `marked; pin ${r.pinned.id} keeps ${new Date(r.pinned.fromMs).toISOString()} to ${new Date(r.pinned.toMs).toISOString()}`
          : 'marked (the daemon keeps no flight recording: nothing pinned)',
      );
    });
  rules
    .command('remove')
    .argument('<id...>', 'rule ids (see rules list)')
    .addOption(controlOption())
    .action(async (ids: string[], o: ControlOpt) => {
      const removed = (await controlRequest(resolveControlPath(o.control), { cmd: 'rules-remove', ids })) as { id: string; text: string; applied: number }[];
      removed.forEach((r) => out(`removed rule ${r.id}: ${r.text} (applied ${r.applied})`));
    });
}
