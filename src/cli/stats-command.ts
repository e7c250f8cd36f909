/** `vhostscope stats FILE`: per-vring notification figures of a recording, with a terminal histogram. */
import type { Command } from 'commander';
import { recordingArg } from './recording-arg';
import { jsonOption } from './options';
import { printable } from '../log/format';
import { statsJson, statsText } from '../views/stats';

export function registerStats(program: Command): void {
  program
    .command('stats')
    .description(
      'per request (recorded with --rings): latency per vring and device operation (blk read/write by size, FUSE opcode, net tx), outstanding requests; per vring: kick/call/err counts and rates, kick→next-call times',
    )
    .argument('<file>', 'a recording made with proxy --record')
    .addOption(jsonOption('the figures as JSON'))
    .action((arg: string, o: { json?: boolean }) => {
      const file = recordingArg(arg);
      if (o.json) process.stdout.write(JSON.stringify(statsJson(file), (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
      else process.stdout.write(statsText(file).map(printable).join('\n') + '\n');
    });
}
