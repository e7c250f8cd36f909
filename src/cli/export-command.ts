/** `vhostscope export FILE --format perfetto|pcapng`, and the Wireshark dissector. */
import type { Command } from 'commander';
import { recordingArg } from './recording-arg';
import * as fs from 'node:fs';
import { toPcapng, wiresharkDissector } from '../analysis/pcapng';
import { toPerfetto } from '../analysis/perfetto';
import { readRecording, recordingEvents } from '../recording/reader';
import type { HeaderRecord } from '../recording/records';

export function exportRecording(file: string, format: 'perfetto' | 'pcapng', frames = false): Buffer {
  const scan = readRecording(file);
  const events = recordingEvents(scan.records, { notifications: format === 'perfetto' });
  if (format === 'perfetto') return Buffer.from(JSON.stringify(toPerfetto(events)));
  const h = scan.records.find((r): r is HeaderRecord => r.type === 'header');
  return toPcapng(events, h ? h.host : { monotonicNs: 0n, wallClockMs: 0 }, { frames });
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('export a recording: perfetto (Chrome trace JSON for ui.perfetto.dev) or pcapng (Wireshark, with wireshark/vhostscope.lua)')
    .argument('[file]', 'a recording made with proxy --record')
    .option('--format <format>', 'perfetto or pcapng', 'perfetto')
    .option('-o, --output <path>', 'output file (default: stdout)')
    .option('--frames', 'pcapng: also the Ethernet frames on virtio-net vrings (recorded with proxy --rings=headers) as ordinary packets on a second interface')
    .option('--dissector', 'print the Wireshark Lua dissector for the pcapng export and exit')
    .action((file: string | undefined, o: { format: string; output?: string; dissector?: boolean; frames?: boolean }) => {
      let out: Buffer;
      if (o.dissector) out = Buffer.from(wiresharkDissector());
      else {
        if (!file) throw new Error('export: a recording file is needed');
        if (o.format !== 'perfetto' && o.format !== 'pcapng') throw new Error(`export: --format must be perfetto or pcapng, not ${o.format}`);
        out = exportRecording(recordingArg(file), o.format, Boolean(o.frames));
      }
      if (o.output) fs.writeFileSync(o.output, out);
      else process.stdout.write(out);
    });
}
