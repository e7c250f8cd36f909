/** `vhostscope report FILE -o report.html`: one self-contained HTML file. */
import { deviceOption } from './options';
import { recordingArg } from './recording-arg';
import type { Command } from 'commander';
import * as fs from 'node:fs';
import { renderReport } from '../analysis/report';
import type { DeviceType } from '../protocol';
import { readRecording, recordingEvents } from '../recording/reader';

export function reportHtml(file: string, device?: DeviceType): string {
  const scan = readRecording(file);
  return renderReport(file, scan.records, recordingEvents(scan.records, { notifications: true }), device);
}

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write one self-contained HTML report: handshake table, check findings, latency histograms, timeline')
    .argument('<file>', 'a recording made with proxy --record')
    .requiredOption('-o, --output <path>', 'the HTML file to write')
    .addOption(deviceOption('infer'))
    .action((file: string, o: { output: string; device?: DeviceType }) => {
      fs.writeFileSync(o.output, reportHtml(recordingArg(file), o.device));
    });
}
