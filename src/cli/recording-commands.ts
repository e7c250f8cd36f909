/** `vhostscope show` and `vhostscope info`: read a recording back. */
import { deviceOption, dialectOption, jsonOption } from './options';
import { recordingArg } from './recording-arg';
import type { Command } from 'commander';
import { findMigrations } from '../analysis/migration';
import { summarize } from '../analysis/summary';
import { printable } from '../log/format';
import type { DeviceType } from '../protocol';
import { readRecording, recordingEvents } from '../recording/reader';
import { type ShowOptions, showRecording, infoText } from '../views/recording';

export function registerRecordingCommands(program: Command): void {
  program
    .command('show')
    .description('print a recording with the same formatter as the live log')
    .argument('<file>', 'a recording made with proxy --record')
    .option('--session <n>', 'only this session')
    .option('--channel <channel>', 'only this channel: main, backend or gpu')
    .option('--request <name>', 'only this request (current or legacy name)')
    .option('--since <seconds>', 'from this many seconds after the first record')
    .option('--until <seconds>', 'up to this many seconds after the first record')
    .option('--notifications', 'also every relayed kick/call/err')
    .option('--rings', 'also the vring snapshots (recorded with proxy --rings): indices, descriptor chains, decoded buffer headers (with --device)')
    .addOption(jsonOption('JSON lines'))
    .addOption(deviceOption('infer'))
    .addOption(dialectOption())
    .action((file: string, o: ShowOptions) => showRecording(recordingArg(file), o, (l) => process.stdout.write(printable(l) + '\n')));
  program
    .command('info')
    .description(
      'summarise a recording: peers, negotiated features, message and notification counts, duration; a live migration between its sessions as one story',
    )
    .argument('<file>', 'a recording made with proxy --record')
    .addOption(jsonOption('the summary as JSON'))
    .addOption(deviceOption('infer'))
    .action((arg: string, o: { json?: boolean; device?: DeviceType }) => {
      const file = recordingArg(arg);
      if (o.json) {
        const scan = readRecording(file);
        const s = summarize(scan.records, o.device);
        process.stdout.write(
          JSON.stringify(
            { ...s, migrations: findMigrations(recordingEvents(scan.records)), torn: scan.torn },
            (_k, v) => (typeof v === 'bigint' ? v.toString() : v),
            2,
          ) + '\n',
        );
      } else process.stdout.write(infoText(file, o.device).map(printable).join('\n') + '\n');
    });
}
