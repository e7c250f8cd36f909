#!/usr/bin/env node
/** vhostscope: a transparent vhost-user proxy, recorder and replayer. */
import { Command } from 'commander';
import { registerProxy } from './proxy-command';
import { registerDemo } from './demo-command';
import { registerRecordingCommands } from './recording-commands';
import { registerCheck } from './check-command';
import { registerStats } from './stats-command';
import { registerDiff } from './diff-command';
import { registerExport } from './export-command';
import { registerReport } from './report-command';
import { registerBugReport } from './bugreport-command';
import { registerReplay } from './replay-command';
import { registerControlCommands } from './control-commands';
import { registerTop } from './top-command';
import { registerLs } from './ls-command';
import { registerCompletion } from './completion-command';

// `vhostscope show x | head`: a closed pipe ends the output quietly, as for any Unix tool
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command();
program
  .name('vhostscope')
  .description('transparent vhost-user proxy: forwards every message and fd between a frontend and a backend, and decodes them')
  .version(require('../../package.json').version);
registerProxy(program);
registerDemo(program);
registerRecordingCommands(program);
registerCheck(program);
registerStats(program);
registerDiff(program);
registerExport(program);
registerReport(program);
registerBugReport(program);
registerReplay(program);
registerControlCommands(program);
registerTop(program);
registerLs(program);
registerCompletion(program);
program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`vhostscope: ${err.message}\n`);
  process.exit(2);
});
