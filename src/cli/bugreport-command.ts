/**
 * `vhostscope bugreport RECORDING`: one archive another person can open with `report`, `show` or
 * `replay` as it is (recording-arg.ts takes it in place of a recording).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { bugReportTexts } from '../views/bugreport';
import { BUG_REPORT_RECORDING } from './recording-arg';

export function writeBugReport(recording: string, out: string): void {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vhs-bugreport-'));
  try {
    for (const [name, text] of Object.entries(bugReportTexts(recording))) fs.writeFileSync(path.join(dir, name), text);
    fs.copyFileSync(recording, path.join(dir, BUG_REPORT_RECORDING));
    execFileSync('tar', ['-czf', path.resolve(out), '-C', dir, '.'], { stdio: ['ignore', 'ignore', 'pipe'] });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function registerBugReport(program: Command): void {
  program
    .command('bugreport')
    .description('one archive for a bug report: the recording, check findings explained, info, the peers; report, show and replay open it as it is')
    .argument('<file>', 'a recording made with proxy --record')
    .option('-o, --output <path>', 'the archive to write', 'vhostscope-bugreport.tar.gz')
    .action((file: string, o: { output: string }) => {
      writeBugReport(file, o.output);
      process.stdout.write(`${o.output}: open it with "vhostscope report ${o.output} -o report.html", or "tar xzf" it\n`);
    });
}
