/** `vhostscope ls DIR`: the sessions of a recording directory, their segment files, and the pins that keep them. */
import type { Command } from 'commander';
import { jsonOption } from './options';
import { listDirectory, lsText } from '../views/ls';

export function registerLs(program: Command): void {
  program
    .command('ls')
    .description('list a recording directory (proxy --record DIR/): sessions, segment files, pins and their reasons')
    .argument('<dir>', 'the recording directory')
    .addOption(jsonOption())
    .action((dir: string, o: { json?: boolean }) => {
      if (o.json) process.stdout.write(JSON.stringify(listDirectory(dir), null, 2) + '\n');
      else process.stdout.write(lsText(dir).join('\n') + '\n');
    });
}
